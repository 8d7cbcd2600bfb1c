"""Errors raised by the executor, split by phase (as DataFusion's ``DataFusionError`` is).

All share one root, :class:`ExecutorError`. :class:`UnsupportedError` is the one the frontend
turns into a fallback to stock Spark: it names the IR node (or kernel) that has no exact
implementation here. Runtime errors that Spark itself raises carry Spark's error class
(``[DIVIDE_BY_ZERO]``, ``[ARITHMETIC_OVERFLOW]``...) at the start of the message, so a caller can
compare them with Spark's.
"""

from __future__ import annotations


class ExecutorError(Exception):
    """Root of every error the executor raises on purpose."""


class PlanError(ExecutorError):
    """The plan is malformed: a node failed validation, or a reference does not resolve."""


class UnsupportedError(ExecutorError):
    """No exact implementation for this node/type combination: fall back to Spark.

    ``node`` names the IR node class (or kernel) that is missing, ``detail`` says what about
    it is unsupported.
    """

    def __init__(self, node: str, detail: str = "") -> None:
        self.node = node
        self.detail = detail
        super().__init__(f"unsupported: {node}" + (f" ({detail})" if detail else ""))

    def __reduce__(self):  # pickled across processes: rebuild from the parts, not the message
        return type(self), (self.node, self.detail)


class ExecutionError(ExecutorError):
    """A query failed while running (the data, not the plan, caused it)."""


class SparkRuntimeError(ExecutionError):
    """An error Spark raises too, for the same input; ``error_class`` is Spark's name for it."""

    error_class = "INTERNAL_ERROR"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"[{self.error_class}] {detail}")

    def __reduce__(self):  # pickled across processes: rebuild from the detail
        return type(self), (self.detail,)


class DivideByZeroError(SparkRuntimeError):
    error_class = "DIVIDE_BY_ZERO"


class ArithmeticOverflowError(SparkRuntimeError):
    error_class = "ARITHMETIC_OVERFLOW"


class NumericOutOfRangeError(SparkRuntimeError):
    """A decimal result does not fit its declared precision."""

    error_class = "NUMERIC_VALUE_OUT_OF_RANGE"


class CastOverflowError(SparkRuntimeError):
    error_class = "CAST_OVERFLOW"


class InvalidCastInputError(SparkRuntimeError):
    error_class = "CAST_INVALID_INPUT"


class ScalarSubqueryTooManyRowsError(SparkRuntimeError):
    """A scalar subquery returned more than one row."""

    error_class = "SCALAR_SUBQUERY_TOO_MANY_ROWS"


class InternalError(ExecutorError):
    """A bug in the executor: an invariant did not hold."""


class ResourcesExhaustedError(ExecutorError):
    """A memory or task budget would be exceeded."""


class ExchangeError(ExecutorError):
    """An exchange was used out of its documented call order, or lost data."""


class TaskOutputLostError(ExchangeError):
    """A committed task output is missing or corrupt: its producer task must run again.

    ``stage`` and ``task`` name the producer, ``attempt`` the committed attempt that was lost.
    """

    def __init__(self, stage: int, task: int, attempt: str, detail: str) -> None:
        self.stage, self.task, self.attempt, self.detail = stage, task, attempt, detail
        super().__init__(f"stage {stage} task {task}: committed output of attempt {attempt} "
                         f"is lost ({detail}); the task will be recomputed")

    def __reduce__(self):  # it crosses process boundaries (process-pool tasks)
        return type(self), (self.stage, self.task, self.attempt, self.detail)
