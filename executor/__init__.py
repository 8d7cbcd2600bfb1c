"""Native, vectorized execution of Spark's optimized plans on Arrow.

>>> from executor import ir, run
>>> table = run(plan)                     # one partition, this thread
>>> table = run_parallel(plan)            # stages cut at Exchange nodes, tasks on a pool
"""

from typing import Any

from executor.context import ExecContext
from executor.errors import ExecutorError, PlanError, UnsupportedError
from executor.run import run
from executor.stages import run_parallel

__all__ = ["ExecContext", "ExecutorError", "PlanError", "UnsupportedError", "explain", "run",
           "run_parallel", "sql"]


def __getattr__(name: str) -> Any:
    """``sql`` and ``explain`` (:mod:`executor.frontend.spark`), imported on first use: a
    process that runs plans without Spark (``wj resume``, a pool's worker) does not pay for
    the front end's modules (~50 ms)."""
    if name in ("sql", "explain"):
        from executor.frontend import spark

        return getattr(spark, name)
    raise AttributeError(f"module 'executor' has no attribute {name!r}")
