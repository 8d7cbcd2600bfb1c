"""Window functions: ranking and offset functions, and aggregates over a frame.

They appear only as the ``function`` of a :class:`WindowExpr`, itself the child of an
``Alias`` in a ``Window``'s function list. Result types are Spark's: ranks and ``ntile`` are
int, ``percent_rank``/``cume_dist`` double, ``lag``/``lead`` the input's type, aggregates the
types of :mod:`.aggregates` (``sum`` of decimal(p, s) is decimal(min(38, p + 10), s)...).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pyarrow as pa

from executor.ir.aggregates import AggregateFunction, Count
from executor.ir.expressions import Expr
from executor.ir.node import Node, check


@dataclass(frozen=True)
class RankingFunction(Expr):
    """Base of the functions computed from the window's order alone (no frame, no input)."""

    abstract = True

    @property
    def dtype(self) -> pa.DataType:
        return pa.int32()

    @property
    def nullable(self) -> bool:
        return False


@dataclass(frozen=True)
class RowNumber(RankingFunction):
    """``row_number()``: 1, 2, ... in the window's order (ties in input order)."""


@dataclass(frozen=True)
class Rank(RankingFunction):
    """``rank()``: 1 + number of rows strictly before (peers share, gaps follow)."""


@dataclass(frozen=True)
class DenseRank(RankingFunction):
    """``dense_rank()``: 1 + number of distinct order values before (peers share, no gaps)."""


@dataclass(frozen=True)
class PercentRank(RankingFunction):
    """``percent_rank()``: (rank - 1) / (partition rows - 1), 0 in a one-row partition."""

    @property
    def dtype(self) -> pa.DataType:
        return pa.float64()


@dataclass(frozen=True)
class CumeDist(RankingFunction):
    """``cume_dist()``: rows up to and including the current row's peers / partition rows."""

    @property
    def dtype(self) -> pa.DataType:
        return pa.float64()


@dataclass(frozen=True)
class NTile(RankingFunction):
    """``ntile(buckets)``: the partition split into ``buckets`` groups in order, sizes
    differing by at most one, the larger ones first."""

    buckets: int

    def _validate(self) -> None:
        check(isinstance(self.buckets, int) and self.buckets > 0, self,
              f"buckets must be a positive integer, got {self.buckets!r}")


@dataclass(frozen=True)
class OffsetValue(Expr):
    """``lead(input, offset, default)`` (``offset`` > 0) and ``lag`` (``offset`` < 0): the
    value of ``input`` ``offset`` rows from the current one in window order; ``default``
    (evaluated at the current row; null when absent) where that row is outside the partition.
    A null ``input`` there is returned as null (Spark's RESPECT NULLS)."""

    input: Expr
    offset: int
    default: Expr | None = None

    def _validate(self) -> None:
        check(isinstance(self.offset, int), self, f"offset must be an integer: {self.offset!r}")
        if self.default is not None:
            check(self.default.dtype == self.input.dtype, self,
                  f"default is {self.default.dtype}, input {self.input.dtype}")

    @property
    def dtype(self) -> pa.DataType:
        return self.input.dtype

    @property
    def nullable(self) -> bool:
        return True


class FrameKind(Enum):
    ROWS = "rows"
    RANGE = "range"


@dataclass(frozen=True)
class WindowFrame(Node):
    """``kind BETWEEN lower AND upper``. Bounds are offsets from the current row (negative =
    preceding, 0 = current row, positive = following); ``None`` is unbounded on that side.
    ROWS offsets count rows; RANGE offsets are added to the (single, integral) order key, and
    a RANGE ``0`` bound includes the current row's peers."""

    kind: FrameKind = FrameKind.RANGE
    lower: int | None = None
    upper: int | None = 0

    def _validate(self) -> None:
        self._coerce_enum("kind", FrameKind)
        for bound in (self.lower, self.upper):
            check(bound is None or (isinstance(bound, int) and not isinstance(bound, bool)),
                  self, f"bounds are integers or None, got {bound!r}")
        if self.lower is not None and self.upper is not None:
            check(self.lower <= self.upper, self, "lower bound is after upper bound")

    @property
    def has_offsets(self) -> bool:
        """A RANGE frame whose bounds need order-key arithmetic."""
        return self.kind is FrameKind.RANGE and any(
            b not in (None, 0) for b in (self.lower, self.upper))


WHOLE_PARTITION = WindowFrame(FrameKind.ROWS, None, None)
"""The frame of a window without ORDER BY (and Spark's for ranking functions it ignores)."""


@dataclass(frozen=True)
class WindowExpr(Expr):
    """``function`` over the window: ranking and offset functions ignore ``frame`` (Spark
    fixes theirs); aggregates (not DISTINCT) are computed over ``frame``."""

    function: Expr
    frame: WindowFrame = WindowFrame()

    def _validate(self) -> None:
        ok = isinstance(self.function, AggregateFunction | RankingFunction | OffsetValue)
        check(ok, self, f"{type(self.function).__name__} is not a window function")
        if isinstance(self.function, Count):
            check(not self.function.distinct, self, "DISTINCT is not allowed in a window")

    @property
    def dtype(self) -> pa.DataType:
        return self.function.dtype

    @property
    def nullable(self) -> bool:
        return self.function.nullable

    @property
    def is_aggregate(self) -> bool:
        return isinstance(self.function, AggregateFunction)
