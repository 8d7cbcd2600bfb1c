"""Scalar expressions: references, literals, casts, arithmetic, comparisons, logic, conditionals.

Every expression declares its output ``dtype`` (an Arrow type) and ``nullable``. Operands must
already have the types Spark's analyzer gives them (the translator keeps Spark's casts): the
IR never coerces implicitly, it rejects mismatches at construction.
String and date functions live in :mod:`executor.ir.functions`, aggregate functions in
:mod:`executor.ir.aggregates`, window functions in :mod:`executor.ir.windows`.
"""

from __future__ import annotations

import datetime as dt
import decimal as pydecimal
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from executor.errors import PlanError
from executor.ir import rules
from executor.ir.node import Node, check
from executor.ir.types import (
    check_type,
    is_decimal,
    is_float,
    is_integer,
    is_numeric,
)

BOOL = pa.bool_()


def iter_nodes(value: Any) -> Iterator[Node]:
    """The nodes directly held by a field value (a node, or a tuple nesting nodes)."""
    if isinstance(value, Node):
        yield value
    elif isinstance(value, tuple):
        for v in value:
            yield from iter_nodes(v)


@dataclass(frozen=True)
class Expr(Node):
    """A scalar expression evaluated row by row (vectorized over batches)."""

    abstract = True

    @property
    def dtype(self) -> pa.DataType:
        raise NotImplementedError(type(self).__name__)

    @property
    def nullable(self) -> bool:
        return any(c.nullable for c in self.children)

    @property
    def children(self) -> tuple[Expr, ...]:
        out: list[Expr] = []
        for value in self.field_values().values():
            for n in iter_nodes(value):
                if isinstance(n, Expr):
                    out.append(n)
                else:
                    out.extend(c for c in iter_nodes(tuple(n.field_values().values()))
                               if isinstance(c, Expr))
        return tuple(out)

    def walk(self) -> Iterator[Expr]:
        """This expression and all its sub-expressions, depth first."""
        yield self
        for c in self.children:
            yield from c.walk()

    def references(self) -> tuple[ColumnRef | BoundRef, ...]:
        return tuple(e for e in self.walk() if isinstance(e, ColumnRef | BoundRef))


# -- references and literals --------------------------------------------------------------


@dataclass(frozen=True)
class ColumnRef(Expr):
    """The input column named ``name`` (names are unique within a relation's output)."""

    name: str
    type: pa.DataType
    is_nullable: bool = True

    def _validate(self) -> None:
        check(isinstance(self.name, str) and self.name != "", self, "name must be non-empty")
        check_type(self.type, f"ColumnRef {self.name!r}")

    @property
    def dtype(self) -> pa.DataType:
        return self.type

    @property
    def nullable(self) -> bool:
        return self.is_nullable


@dataclass(frozen=True)
class BoundRef(Expr):
    """The input column at position ``index``."""

    index: int
    type: pa.DataType
    is_nullable: bool = True

    def _validate(self) -> None:
        check(isinstance(self.index, int) and self.index >= 0, self, "index must be >= 0")
        check_type(self.type, f"BoundRef {self.index}")

    @property
    def dtype(self) -> pa.DataType:
        return self.type

    @property
    def nullable(self) -> bool:
        return self.is_nullable


_INT_RANGES = {8: 2**7, 16: 2**15, 32: 2**31, 64: 2**63}
EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class Literal(Expr):
    """A typed constant. Values are Python objects: int, float, str, bytes, bool,
    ``decimal.Decimal`` (exactly at the type's scale), ``datetime.date``, and for timestamps
    an int of microseconds since the epoch (UTC). ``None`` is the typed null."""

    value: Any
    type: pa.DataType

    def _validate(self) -> None:
        t = check_type(self.type, "Literal")
        v = self.value
        if v is None:
            return
        if pa.types.is_null(t):
            raise PlanError("Literal: a null-typed literal must have value None")
        if pa.types.is_boolean(t):
            check(isinstance(v, bool), self, f"{v!r} is not a bool")
        elif is_integer(t):
            check(isinstance(v, int) and not isinstance(v, bool), self, f"{v!r} is not an int")
            bound = _INT_RANGES[t.bit_width]
            check(-bound <= v < bound, self, f"{v} out of range for {t}")
        elif is_float(t):
            check(isinstance(v, float), self, f"{v!r} is not a float")
            if t == pa.float32() and not math.isnan(v):
                exact = pa.scalar(v, pa.float32()).as_py()
                check(exact == v, self, f"{v!r} is not exactly representable as float32")
        elif is_decimal(t):
            check(isinstance(v, pydecimal.Decimal) and v.is_finite(), self, f"{v!r} not Decimal")
            exponent = v.as_tuple().exponent
            check(exponent == -t.scale, self, f"{v} must have exactly {t.scale} decimals")
            digits = len(v.as_tuple().digits)
            check(digits - t.scale <= t.precision - t.scale or v == 0, self,
                  f"{v} does not fit {t}")
        elif pa.types.is_string(t):
            check(isinstance(v, str), self, f"{v!r} is not a str")
        elif pa.types.is_binary(t):
            check(isinstance(v, bytes), self, f"{v!r} is not bytes")
        elif pa.types.is_date32(t):
            check(isinstance(v, dt.date) and not isinstance(v, dt.datetime), self,
                  f"{v!r} is not a date")
        elif pa.types.is_timestamp(t):
            check(isinstance(v, int) and not isinstance(v, bool), self,
                  "timestamp literals are int microseconds since the epoch")

    def __eq__(self, other: object) -> bool:
        # NaN literals are equal to themselves (value equality of the node, not SQL equality).
        if not isinstance(other, Literal) or self.type != other.type:
            return False
        a, b = self.value, other.value
        if isinstance(a, float) and isinstance(b, float):
            if math.isnan(a) and math.isnan(b):
                return True  # one NaN: Spark (and JSON) have no NaN payloads or signs
            return a == b and math.copysign(1, a) == math.copysign(1, b)
        return type(a) is type(b) and a == b

    def __hash__(self) -> int:
        return hash((type(self).__name__, str(self.type), repr(self.value)))

    @property
    def dtype(self) -> pa.DataType:
        return self.type

    @property
    def nullable(self) -> bool:
        return self.value is None

    def to_arrow(self) -> pa.Scalar:
        if pa.types.is_timestamp(self.type) and self.value is not None:
            return pa.scalar(self.value, pa.int64()).cast(self.type)
        return pa.scalar(self.value, self.type)


@dataclass(frozen=True)
class Alias(Expr):
    """Names the output column of ``child`` (in Project, Aggregate, Window, Expand)."""

    child: Expr
    name: str

    def _validate(self) -> None:
        check(isinstance(self.name, str) and self.name != "", self, "name must be non-empty")

    @property
    def dtype(self) -> pa.DataType:
        return self.child.dtype


def output_name(e: Expr) -> str:
    """The column name an expression produces in a projection list."""
    if isinstance(e, Alias | ColumnRef):
        return e.name
    raise PlanError(f"{type(e).__name__} in a projection list needs an Alias to name it")


# -- cast ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cast(Expr):
    """``CAST(child AS to)``; with ``ansi`` invalid input and overflow raise, else give null."""

    child: Expr
    to: pa.DataType
    ansi: bool = True

    def _validate(self) -> None:
        check_type(self.to, "Cast")

    @property
    def dtype(self) -> pa.DataType:
        return self.to

    @property
    def nullable(self) -> bool:
        return self.child.nullable or not self.ansi


# -- arithmetic ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BinaryArithmetic(Expr):
    """``left op right``; under ``ansi`` overflow and division by zero raise (Spark 4 default)."""

    abstract = True
    left: Expr
    right: Expr
    ansi: bool = True

    def _validate(self) -> None:
        lt, rt = self.left.dtype, self.right.dtype
        check(is_numeric(lt) and is_numeric(rt), self, f"needs numeric operands, got {lt}, {rt}")
        check(lt == rt or (is_decimal(lt) and is_decimal(rt)), self,
              f"operand types differ ({lt} vs {rt}); the plan must cast them")

    @property
    def is_decimal(self) -> bool:
        return is_decimal(self.left.dtype)

    @property
    def nullable(self) -> bool:
        # Without ANSI, overflow of decimals and division by zero give null.
        return super().nullable or not self.ansi


@dataclass(frozen=True)
class Add(BinaryArithmetic):
    """``left + right``."""

    @property
    def dtype(self) -> pa.DataType:
        if self.is_decimal:
            return rules.decimal_add(self.left.dtype, self.right.dtype)
        return self.left.dtype


@dataclass(frozen=True)
class Subtract(BinaryArithmetic):
    """``left - right``."""

    @property
    def dtype(self) -> pa.DataType:
        if self.is_decimal:
            return rules.decimal_add(self.left.dtype, self.right.dtype)
        return self.left.dtype


@dataclass(frozen=True)
class Multiply(BinaryArithmetic):
    """``left * right``."""

    @property
    def dtype(self) -> pa.DataType:
        if self.is_decimal:
            return rules.decimal_multiply(self.left.dtype, self.right.dtype)
        return self.left.dtype


@dataclass(frozen=True)
class Divide(BinaryArithmetic):
    """``left / right``: decimal by Spark's rule, everything else double (ints are cast)."""

    @property
    def dtype(self) -> pa.DataType:
        if self.is_decimal:
            return rules.decimal_divide(self.left.dtype, self.right.dtype)
        return pa.float64()


@dataclass(frozen=True)
class IntegralDivide(BinaryArithmetic):
    """``left div right``: truncated quotient as bigint."""

    def _validate(self) -> None:
        super()._validate()
        check(not is_float(self.left.dtype), self, "div needs integer or decimal operands")

    @property
    def dtype(self) -> pa.DataType:
        return pa.int64()


@dataclass(frozen=True)
class Remainder(BinaryArithmetic):
    """``left % right`` (sign of the dividend, like Java)."""

    @property
    def dtype(self) -> pa.DataType:
        if self.is_decimal:
            return rules.decimal_remainder(self.left.dtype, self.right.dtype)
        return self.left.dtype


@dataclass(frozen=True)
class Negate(Expr):
    """``-child``; under ``ansi`` negating the minimum integer raises."""

    child: Expr
    ansi: bool = True

    def _validate(self) -> None:
        check(is_numeric(self.child.dtype), self, f"needs a numeric operand: {self.child.dtype}")

    @property
    def dtype(self) -> pa.DataType:
        return self.child.dtype


# Predicates and conditionals live in their own module; re-exported so ``expressions.X``
# names every scalar expression. (Imported last: logic.py builds on the classes above.)
from executor.ir.logic import *  # noqa: E402, F403
