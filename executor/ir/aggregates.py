"""Aggregate functions. They appear only as the child of an ``Alias`` in an ``Aggregate``'s
function list (or inside a ``WindowExpr``, :mod:`.windows`), never inside scalar expressions:
the translator puts a ``Project`` above for expressions over aggregate results
(``sum(a) / sum(b)``)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from executor.ir import rules
from executor.ir.expressions import Expr
from executor.ir.node import check
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
