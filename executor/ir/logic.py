"""Predicates and conditionals: comparisons (NaN-aware), three-valued AND/OR/NOT, null tests,
IN, IF/CASE/COALESCE. Re-exported by :mod:`executor.ir.expressions`."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from executor.ir.expressions import BOOL, Expr, Literal
from executor.ir.node import Node, check
from executor.ir.types import is_decimal, is_float, is_orderable

# -- comparisons --------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison(Expr):
    """``left op right`` -> bool; null if either side is null. NaN equals NaN and is greater
    than any other value (Spark's float ordering)."""

    abstract = True
    left: Expr
    right: Expr

    def _validate(self) -> None:
        lt, rt = self.left.dtype, self.right.dtype
        same = lt == rt or (is_decimal(lt) and is_decimal(rt))
        check(same, self, f"operand types differ ({lt} vs {rt}); the plan must cast them")
        check(is_orderable(lt) or pa.types.is_null(lt), self, f"{lt} is not comparable")

    @property
    def dtype(self) -> pa.DataType:
        return BOOL


@dataclass(frozen=True)
class EqualTo(Comparison):
    """``left = right``."""


@dataclass(frozen=True)
class NotEqualTo(Comparison):
    """``left <> right``."""


@dataclass(frozen=True)
class LessThan(Comparison):
    """``left < right``."""


@dataclass(frozen=True)
class LessThanOrEqual(Comparison):
    """``left <= right``."""


@dataclass(frozen=True)
class GreaterThan(Comparison):
    """``left > right``."""


@dataclass(frozen=True)
class GreaterThanOrEqual(Comparison):
    """``left >= right``."""


@dataclass(frozen=True)
class EqualNullSafe(Comparison):
    """``left <=> right``: never null; two nulls are equal."""

    @property
    def nullable(self) -> bool:
        return False


# -- boolean logic (three-valued) ---------------------------------------------------------


def _check_bool(node: Expr, *operands: Expr) -> None:
    for e in operands:
        check(e.dtype in (BOOL, pa.null()), node, f"operand must be bool, got {e.dtype}")


@dataclass(frozen=True)
class And(Expr):
    """``left AND right`` (Kleene: false AND null = false)."""

    left: Expr
    right: Expr

    def _validate(self) -> None:
        _check_bool(self, self.left, self.right)

    @property
    def dtype(self) -> pa.DataType:
        return BOOL


@dataclass(frozen=True)
class Or(Expr):
    """``left OR right`` (Kleene: true OR null = true)."""

    left: Expr
    right: Expr

    def _validate(self) -> None:
        _check_bool(self, self.left, self.right)

    @property
    def dtype(self) -> pa.DataType:
        return BOOL


@dataclass(frozen=True)
class Not(Expr):
    """``NOT child`` (NOT null = null)."""

    child: Expr

    def _validate(self) -> None:
        _check_bool(self, self.child)

    @property
    def dtype(self) -> pa.DataType:
        return BOOL


@dataclass(frozen=True)
class IsNull(Expr):
    """``child IS NULL`` (never null)."""

    child: Expr

    @property
    def dtype(self) -> pa.DataType:
        return BOOL

    @property
    def nullable(self) -> bool:
        return False


@dataclass(frozen=True)
class IsNotNull(Expr):
    """``child IS NOT NULL`` (never null)."""

    child: Expr

    @property
    def dtype(self) -> pa.DataType:
        return BOOL

    @property
    def nullable(self) -> bool:
        return False


@dataclass(frozen=True)
class IsNaN(Expr):
    """``isnan(child)``: false for null (Spark's IsNaN is never null)."""

    child: Expr

    def _validate(self) -> None:
        check(is_float(self.child.dtype), self, f"needs a float operand: {self.child.dtype}")

    @property
    def dtype(self) -> pa.DataType:
        return BOOL

    @property
    def nullable(self) -> bool:
        return False


@dataclass(frozen=True)
class In(Expr):
    """``child IN (values...)``: null if child is null, or if no match and a value is null."""

    child: Expr
    values: tuple[Literal, ...]

    def _validate(self) -> None:
        check(len(self.values) > 0, self, "needs at least one value")
        for v in self.values:
            check(isinstance(v, Literal), self, "values must be Literals")
            check(v.dtype == self.child.dtype or v.value is None, self,
                  f"value type {v.dtype} differs from {self.child.dtype}")

    @property
    def dtype(self) -> pa.DataType:
        return BOOL

    @property
    def nullable(self) -> bool:
        return self.child.nullable or any(v.value is None for v in self.values)


# -- conditionals -------------------------------------------------------------------------


def _common_type(node: Expr, values: list[Expr]) -> pa.DataType:
    types = {v.dtype for v in values if not pa.types.is_null(v.dtype)}
    check(len(types) <= 1, node, f"branches have different types {sorted(map(str, types))}")
    return types.pop() if types else pa.null()


@dataclass(frozen=True)
class If(Expr):
    """``IF(predicate, then, otherwise)``: a null predicate takes ``otherwise``."""

    predicate: Expr
    then: Expr
    otherwise: Expr

    def _validate(self) -> None:
        _check_bool(self, self.predicate)
        _common_type(self, [self.then, self.otherwise])

    @property
    def dtype(self) -> pa.DataType:
        return _common_type(self, [self.then, self.otherwise])

    @property
    def nullable(self) -> bool:
        return self.then.nullable or self.otherwise.nullable


@dataclass(frozen=True)
class When(Node):
    """One ``WHEN condition THEN value`` branch of a :class:`CaseWhen`."""

    condition: Expr
    value: Expr

    def _validate(self) -> None:
        check(self.condition.dtype in (BOOL, pa.null()), self, "condition must be bool")


@dataclass(frozen=True)
class CaseWhen(Expr):
    """``CASE WHEN c1 THEN v1 ... ELSE otherwise END``: the first true condition wins;
    without ``otherwise`` no match gives null."""

    branches: tuple[When, ...]
    otherwise: Expr | None = None

    def _validate(self) -> None:
        check(len(self.branches) > 0, self, "needs at least one WHEN")
        check(all(isinstance(b, When) for b in self.branches), self, "branches must be When")
        _common_type(self, self._values())

    def _values(self) -> list[Expr]:
        vals = [b.value for b in self.branches]
        return vals + ([self.otherwise] if self.otherwise is not None else [])

    @property
    def dtype(self) -> pa.DataType:
        return _common_type(self, self._values())

    @property
    def nullable(self) -> bool:
        return self.otherwise is None or any(v.nullable for v in self._values())


@dataclass(frozen=True)
class Coalesce(Expr):
    """``COALESCE(a, b, ...)``: the first non-null argument."""

    args: tuple[Expr, ...]

    def _validate(self) -> None:
        check(len(self.args) > 0, self, "needs at least one argument")
        _common_type(self, list(self.args))

    @property
    def dtype(self) -> pa.DataType:
        return _common_type(self, list(self.args))

    @property
    def nullable(self) -> bool:
        return all(a.nullable for a in self.args)


@dataclass(frozen=True)
class NormalizeNaNAndZero(Expr):
    """Spark's ``NormalizeNaNAndZero``: -0.0 -> 0.0 and every NaN -> the canonical NaN
    (inserted by Spark's optimizer around float grouping and join keys)."""

    child: Expr

    def _validate(self) -> None:
        check(is_float(self.child.dtype), self, f"needs a float operand: {self.child.dtype}")

    @property
    def dtype(self) -> pa.DataType:
        return self.child.dtype
