"""One local SparkSession per test process, TPC-H temp views, and Arrow reference results.

Usage in tests (pyspark is an optional extra; import this module only after
``pytest.importorskip("pyspark")`` and ``skip_reason()`` said Spark can run)::

    spark = local_spark()
    register_tpch(spark, data_dir)
    table = spark_reference(spark, "select ...")   # -> pyarrow.Table, exact types

Starting the JVM costs ~8-10 s, so the session is created once per process and shared; never
call ``spark.stop()`` from a test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa

TPCH_TABLES = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders",
               "lineitem")

# Test settings on top of profile ``local`` of spark_conf/config.py (local[2] on loopback, 4
# shuffle partitions, UI off, UTC, Arrow on). ANSI mode stays at the Spark 4 default (on),
# because that is what users run and what the executor must match.
TEST_CONF = {
    "spark.app.name": "wjio-tests",
    "spark.driver.memory": "2g",
    "spark.network.timeout": "120s",
}


def java_available() -> bool:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return True
    return shutil.which("java") is not None


def skip_reason() -> str | None:
    """Why Spark cannot run here (pyspark not installed, no Java), or None when it can."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'wjio[spark]')"
    if not java_available():
        return "no Java runtime (java not on PATH and JAVA_HOME unset); Spark needs Java 17+"
    return None


def require_spark() -> None:
    """Skip the calling test (or fixture) with :func:`skip_reason` when Spark cannot run."""
    import pytest

    reason = skip_reason()
    if reason:
        pytest.skip(reason)


def local_spark(**conf: str):
    """The process-wide ``local[2]`` SparkSession bound to 127.0.0.1 (created on first call):
    ``spark_conf.session.local_session`` with ``TEST_CONF``.

    Extra ``conf`` entries apply only when this call creates the session; later calls with
    different values raise instead of silently ignoring them.
    """
    from spark_conf.session import local_session

    return local_session(**{**TEST_CONF, **{k: str(v) for k, v in conf.items()}})


def register_tpch(spark, data_dir: str | os.PathLike, tables=TPCH_TABLES) -> dict:
    """Register the TPC-H tables under ``data_dir/<table>/`` (local Parquet) as temp views named
    after the tables; returns ``{table: DataFrame}``."""
    base = Path(data_dir).resolve()
    frames = {}
    for table in tables:
        path = base / table
        if not path.exists():
            raise FileNotFoundError(f"TPC-H table {table!r}: no directory {path}")
        df = spark.read.parquet(str(path))
        df.createOrReplaceTempView(table)
        frames[table] = df
    return frames


def to_arrow(df) -> pa.Table:
    """Collect a DataFrame as an Arrow table with Spark's exact types (decimals stay decimals).

    Spark 4 has ``DataFrame.toArrow()``; older versions go through ``toPandas`` and are cast back
    to the Arrow schema derived from the Spark schema (decimal columns come back as Python
    ``Decimal`` objects in pandas, which converts exactly).
    """
    if hasattr(df, "toArrow"):
        return df.toArrow()
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(df.schema)
    pdf = df.toPandas()
    return pa.Table.from_pandas(pdf, schema=schema, preserve_index=False)


def spark_reference(spark, sql: str) -> pa.Table:
    """Run ``sql`` on Spark and return the result as a ``pyarrow.Table``."""
    return to_arrow(spark.sql(sql))


def sorted_rows(table: pa.Table) -> list[tuple]:
    """The rows as tuples in a canonical order (for results without ORDER BY)."""
    return sorted((tuple(r.values()) for r in table.to_pylist()), key=repr)


def native_equals_spark(spark, sql: str, ctx=None) -> pa.Table:
    """Run ``sql`` natively (``executor.sql``), assert it ran natively and equals Spark's own
    result (names, types, rows in any order; NaN-safe, decimals digit for digit); return it."""
    import executor
    from executor.frontend import last_result

    got = executor.sql(spark, sql, ctx=ctx)
    outcome = last_result()
    assert outcome.native, f"fell back: {outcome.reason}"
    expected = spark_reference(spark, sql)
    assert [(f.name, f.type) for f in got.schema] == [(f.name, f.type) for f in expected.schema]
    assert got.num_rows == expected.num_rows
    assert repr(sorted_rows(got)) == repr(sorted_rows(expected))  # NaN != NaN in tuples
    return got
