"""Entry point of the frontend: Spark optimized-plan JSON + annotations -> IR relation.

``translate(plan_json, facts)`` raises :class:`~executor.errors.UnsupportedError` (with the
Spark class and JSON path it stopped at) when some part has no exact IR counterpart; callers
turn that into a fallback to Spark. ``check_executable`` additionally asks the planner whether
every IR node has an operator/kernel, so the fallback decision is made before anything runs.
"""

from __future__ import annotations

from typing import Any

from executor import planner
from executor.frontend.annotations import PlanFacts
from executor.frontend.plan_json import parse
from executor.frontend.relations import translate_plan
from executor.ir.relations import Relation
from executor.ir.scan_filters import push_filters_into_scans
from executor.ir.subqueries import all_subqueries


def translate(plan_json: Any, facts: PlanFacts) -> Relation:
    """The IR of ``plan_json`` (``optimizedPlan().toJSON()``, parsed or as text), with the
    filters over table scans merged into the scans (so readers prune row groups)."""
    return push_filters_into_scans(translate_plan(parse(plan_json), facts))


def check_executable(plan: Relation) -> None:
    """Raise :class:`UnsupportedError` if the executor cannot lower ``plan`` (no operator or
    no evaluation rule for some node), the plans of its scalar subqueries included. Builds
    operators only; reads nothing."""
    planner.plan(plan)
    for sq in all_subqueries(plan):
        planner.plan(sq.plan)
