"""The frontend: Spark's optimized logical plan -> Plan IR, and native-or-fallback execution.

:mod:`.plan_json` parses ``TreeNode.toJSON()``, :mod:`.annotations` holds what the JSON loses,
:mod:`.types`, :mod:`.expressions` and :mod:`.relations` translate, :mod:`.translate` is the
entry point, and :mod:`.spark` talks to a live session (pyspark imported lazily).
"""

from executor.frontend.annotations import PlanFacts
from executor.frontend.spark import (
    QueryResult,
    execute,
    explain,
    last_result,
    optimized_plan,
    sql,
    to_ir,
)
from executor.frontend.translate import check_executable, translate

__all__ = ["PlanFacts", "QueryResult", "check_executable", "execute", "explain", "last_result",
           "optimized_plan", "sql", "to_ir", "translate"]
