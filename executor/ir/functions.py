"""String and date functions (Spark's semantics: 1-based substrings, character lengths)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from executor.ir.expressions import BOOL, Expr
from executor.ir.node import check
from executor.ir.types import is_integer, is_string

# -- strings ------------------------------------------------------------------------------


def _check_string(node: Expr, *operands: Expr) -> None:
    for e in operands:
        check(is_string(e.dtype), node, f"needs a string operand, got {e.dtype}")


@dataclass(frozen=True)
class Substring(Expr):
    """``substring(child, pos, length)``: 1-based; pos 0 acts as 1; negative pos counts from
    the end; ``length=None`` takes the rest. Positions count characters."""

    child: Expr
    pos: int
    length: int | None = None

    def _validate(self) -> None:
        _check_string(self, self.child)
        check(isinstance(self.pos, int), self, "pos must be an int")
        check(self.length is None or isinstance(self.length, int), self, "length must be int")

    @property
    def dtype(self) -> pa.DataType:
        return pa.string()


@dataclass(frozen=True)
class Like(Expr):
    """``child LIKE pattern`` with ``%``, ``_`` and ``\\`` as escape; case-sensitive."""

    child: Expr
    pattern: str

    def _validate(self) -> None:
        _check_string(self, self.child)
        check(isinstance(self.pattern, str), self, "pattern must be a str")

    @property
    def dtype(self) -> pa.DataType:
        return BOOL


@dataclass(frozen=True)
class StartsWith(Expr):
    """``startswith(child, prefix)``."""

    child: Expr
    prefix: str

    def _validate(self) -> None:
        _check_string(self, self.child)

    @property
    def dtype(self) -> pa.DataType:
        return BOOL


@dataclass(frozen=True)
class EndsWith(Expr):
    """``endswith(child, suffix)``."""

    child: Expr
    suffix: str

    def _validate(self) -> None:
        _check_string(self, self.child)

    @property
    def dtype(self) -> pa.DataType:
        return BOOL


@dataclass(frozen=True)
class Contains(Expr):
    """``contains(child, substring)``."""

    child: Expr
    substring: str

    def _validate(self) -> None:
        _check_string(self, self.child)

    @property
    def dtype(self) -> pa.DataType:
        return BOOL


@dataclass(frozen=True)
class Concat(Expr):
    """``concat(a, b, ...)``: null if any argument is null."""

    args: tuple[Expr, ...]

    def _validate(self) -> None:
        check(len(self.args) > 0, self, "needs at least one argument")
        _check_string(self, *self.args)

    @property
    def dtype(self) -> pa.DataType:
        return pa.string()


@dataclass(frozen=True)
class Upper(Expr):
    """``upper(child)``."""

    child: Expr

    def _validate(self) -> None:
        _check_string(self, self.child)

    @property
    def dtype(self) -> pa.DataType:
        return pa.string()


@dataclass(frozen=True)
class Lower(Expr):
    """``lower(child)``."""

    child: Expr

    def _validate(self) -> None:
        _check_string(self, self.child)

    @property
    def dtype(self) -> pa.DataType:
        return pa.string()


@dataclass(frozen=True)
class Length(Expr):
    """``length(child)``: number of characters, as int."""

    child: Expr

    def _validate(self) -> None:
        _check_string(self, self.child)

    @property
    def dtype(self) -> pa.DataType:
        return pa.int32()


# -- dates --------------------------------------------------------------------------------


def _check_date(node: Expr, *operands: Expr) -> None:
    for e in operands:
        check(pa.types.is_date32(e.dtype), node, f"needs a date operand, got {e.dtype}")


@dataclass(frozen=True)
class ExtractDatePart(Expr):
    """``year(d)`` / ``month(d)`` / ``dayofmonth(d)`` as int."""

    child: Expr
    part: str

    def _validate(self) -> None:
        _check_date(self, self.child)
        check(self.part in ("year", "month", "day"), self, f"unknown part {self.part!r}")

    @property
    def dtype(self) -> pa.DataType:
        return pa.int32()


@dataclass(frozen=True)
class DateAdd(Expr):
    """``date_add(start, days)`` (``date_sub`` is a negated ``days``)."""

    start: Expr
    days: Expr

    def _validate(self) -> None:
        _check_date(self, self.start)
        check(is_integer(self.days.dtype) and self.days.dtype.bit_width <= 32, self,
              f"days must be int8/16/32, got {self.days.dtype}")

    @property
    def dtype(self) -> pa.DataType:
        return pa.date32()


@dataclass(frozen=True)
class DateDiff(Expr):
    """``datediff(end, start)``: days from start to end, as int."""

    end: Expr
    start: Expr

    def _validate(self) -> None:
        _check_date(self, self.end, self.start)

    @property
    def dtype(self) -> pa.DataType:
        return pa.int32()
