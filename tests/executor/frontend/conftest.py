"""Frontend fixtures: the TPC-H session fixtures (shared with tests/tpch) and the dumped plans
of ``tools/tpch/plans`` (no Spark needed)."""

from __future__ import annotations

import json
from pathlib import Path

from executor.frontend.annotations import PlanFacts
from tests.tpch.conftest import spark, tpch_dir  # noqa: F401  (fixtures)
from tools.tpch import TABLES

PLANS = Path(__file__).resolve().parents[3] / "tools" / "tpch" / "plans"


def load_dump(qname: str) -> dict:
    return json.loads((PLANS / f"{qname}.json").read_text())


def dump_facts(doc: dict, root: str = "/data/tpch") -> PlanFacts:
    """The dump's annotations, its ``<table>`` placeholders resolved under ``root``."""
    return PlanFacts.from_dump(doc, {t: f"{root}/{t}" for t in TABLES})
