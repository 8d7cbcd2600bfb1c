"""Aggregate and window functions. They appear only as the child of an ``Alias`` in an
``Aggregate``'s or ``Window``'s function list, never inside scalar expressions: the translator
puts a ``Project`` above for expressions over aggregate results (``sum(a) / sum(b)``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pyarrow as pa

from executor.ir import rules
from executor.ir.expressions import Expr
from executor.ir.node import Node, check
from executor.ir.types import is_numeric, is_orderable


@dataclass(frozen=True)
class AggregateFunction(Expr):
    """Base of aggregate function calls."""

    abstract = True


@dataclass(frozen=True)
class Sum(AggregateFunction):
    """``sum(child)``: null over no non-null input; integers sum to bigint (overflow raises
    under ANSI), decimal(p, s) to decimal(min(38, p + 10), s), floats to double."""

    child: Expr
    ansi: bool = True

    def _validate(self) -> None:
        check(is_numeric(self.child.dtype), self, f"needs numeric input: {self.child.dtype}")

    @property
    def dtype(self) -> pa.DataType:
        return rules.sum_type(self.child.dtype)

    @property
    def nullable(self) -> bool:
        return True


@dataclass(frozen=True)
class Avg(AggregateFunction):
    """``avg(child)``: decimal(p, s) -> decimal(min(38, p + 4), min(38, s + 4)) rounded half-up;
    anything else -> double."""

    child: Expr
    ansi: bool = True

    def _validate(self) -> None:
        check(is_numeric(self.child.dtype), self, f"needs numeric input: {self.child.dtype}")

    @property
    def dtype(self) -> pa.DataType:
        return rules.avg_type(self.child.dtype)

    @property
    def nullable(self) -> bool:
        return True


@dataclass(frozen=True)
class Count(AggregateFunction):
    """``count(*)`` (no args), ``count(a, ...)`` (rows where every arg is non-null), or with
    ``distinct`` the number of distinct non-null tuples. Never null."""

    args: tuple[Expr, ...] = ()
    distinct: bool = False

    def _validate(self) -> None:
        check(not (self.distinct and not self.args), self, "count(DISTINCT) needs arguments")

    @property
    def dtype(self) -> pa.DataType:
        return pa.int64()

    @property
    def nullable(self) -> bool:
        return False


@dataclass(frozen=True)
class Min(AggregateFunction):
    """``min(child)`` (NaN is the largest float)."""

    child: Expr

    def _validate(self) -> None:
        check(is_orderable(self.child.dtype), self, f"{self.child.dtype} is not orderable")

    @property
    def dtype(self) -> pa.DataType:
        return self.child.dtype

    @property
    def nullable(self) -> bool:
        return True


@dataclass(frozen=True)
class Max(AggregateFunction):
    """``max(child)`` (NaN is the largest float)."""

    child: Expr

    def _validate(self) -> None:
        check(is_orderable(self.child.dtype), self, f"{self.child.dtype} is not orderable")

    @property
    def dtype(self) -> pa.DataType:
        return self.child.dtype

    @property
    def nullable(self) -> bool:
        return True


# -- window functions ---------------------------------------------------------------------


@dataclass(frozen=True)
class RowNumber(Expr):
    """``row_number()`` over the window's order."""

    @property
    def dtype(self) -> pa.DataType:
        return pa.int32()

    @property
    def nullable(self) -> bool:
        return False


@dataclass(frozen=True)
class Rank(Expr):
    """``rank()``: 1 + number of rows strictly before (ties share, gaps follow)."""

    @property
    def dtype(self) -> pa.DataType:
        return pa.int32()

    @property
    def nullable(self) -> bool:
        return False


@dataclass(frozen=True)
class DenseRank(Expr):
    """``dense_rank()``: ties share, no gaps."""

    @property
    def dtype(self) -> pa.DataType:
        return pa.int32()

    @property
    def nullable(self) -> bool:
        return False


class FrameKind(Enum):
    ROWS = "rows"
    RANGE = "range"


@dataclass(frozen=True)
class WindowFrame(Node):
    """``kind BETWEEN lower AND upper``: offsets relative to the current row (negative =
    preceding, 0 = current row), ``None`` = unbounded on that side."""

    kind: FrameKind = FrameKind.RANGE
    lower: int | None = None
    upper: int | None = 0

    def _validate(self) -> None:
        self._coerce_enum("kind", FrameKind)
        if self.lower is not None and self.upper is not None:
            check(self.lower <= self.upper, self, "lower bound is after upper bound")


@dataclass(frozen=True)
class WindowExpr(Expr):
    """A window function (ranking or aggregate) evaluated over ``frame``."""

    function: Expr
    frame: WindowFrame = WindowFrame()

    def _validate(self) -> None:
        ok = isinstance(self.function, AggregateFunction | RowNumber | Rank | DenseRank)
        check(ok, self, f"{type(self.function).__name__} is not a window function")

    @property
    def dtype(self) -> pa.DataType:
        return self.function.dtype

    @property
    def nullable(self) -> bool:
        return self.function.nullable
