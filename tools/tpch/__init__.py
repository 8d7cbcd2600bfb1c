"""TPC-H developer tooling: data generation (``data``), the 22 queries, and Spark plan dumps.

The queries live as Spark SQL text in ``tools/tpch/queries/qNN.sql`` with the TPC-H validation
substitution parameters (spec clause 2.4, "Q1 DELTA = 90", "Q3 SEGMENT = BUILDING", ...).
"""

from __future__ import annotations

import re
from pathlib import Path

QUERY_DIR = Path(__file__).parent / "queries"
QUERY_NUMBERS = tuple(range(1, 23))
from spark_conf.tpch import TABLES  # noqa: E402,F401  (the product's list)


def query_name(n: int) -> str:
    """``7 -> "q07"``."""
    if n not in QUERY_NUMBERS:
        raise ValueError(f"TPC-H query number must be 1..22, got {n!r}")
    return f"q{n:02d}"


def query_text(n: int) -> str:
    """The Spark SQL text of TPC-H query ``n`` (1..22), comments included."""
    return (QUERY_DIR / f"{query_name(n)}.sql").read_text()


def queries() -> dict[str, str]:
    """``{"q01": sql, ..., "q22": sql}`` in query order."""
    return {query_name(n): query_text(n) for n in QUERY_NUMBERS}


def has_order_by(sql: str) -> bool:
    """Whether a query's text (comments aside) has ORDER BY: its row order is then defined."""
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return re.search(r"\border\s+by\b", code, re.IGNORECASE) is not None
