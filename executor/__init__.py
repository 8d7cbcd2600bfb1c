"""Native, vectorized execution of Spark's optimized plans on Arrow.

>>> from executor import ir, run
>>> table = run(plan)                     # one partition, this thread
>>> table = run_parallel(plan)            # stages cut at Exchange nodes, tasks on a pool
"""

from executor.context import ExecContext
from executor.errors import ExecutorError, PlanError, UnsupportedError
from executor.frontend.spark import explain, sql  # noqa: F401  (public, re-exported)
from executor.run import run
from executor.stages import run_parallel

__all__ = ["ExecContext", "ExecutorError", "PlanError", "UnsupportedError", "run",
           "run_parallel"]
