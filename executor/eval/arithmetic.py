"""Arithmetic with Spark's semantics: checked integer ops under ANSI, ``/`` on integers in
double, division by zero raising under ANSI (null otherwise), exact decimals."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from executor.errors import ArithmeticOverflowError, DivideByZeroError, UnsupportedError
from executor.eval import decimals
from executor.eval.core import Datum, Kernel, as_array, lower
from executor.ir import expressions as ex

_INT_OPS = {
    ex.Add: (pc.add_checked, pc.add, "+"),
    ex.Subtract: (pc.subtract_checked, pc.subtract, "-"),
    ex.Multiply: (pc.multiply_checked, pc.multiply, "*"),
}


def _binary(e: ex.BinaryArithmetic, fn) -> Kernel:
    left, right = lower(e.left), lower(e.right)
    lt, rt = e.left.dtype, e.right.dtype

    def kernel(b: pa.RecordBatch) -> Datum:
        n = b.num_rows
        return fn(as_array(left(b), n, lt), as_array(right(b), n, rt))

    return kernel


def _decimal_binary(e: ex.BinaryArithmetic, fn) -> Kernel:
    """Like ``_binary``, but a literal operand stays a scalar (the decimal kernels take an
    array and a scalar without repeating the scalar per row)."""
    left, right = lower(e.left), lower(e.right)
    lt, rt = e.left.dtype, e.right.dtype

    def kernel(b: pa.RecordBatch) -> Datum:
        x, y = left(b), right(b)
        if isinstance(x, pa.Scalar) and isinstance(y, pa.Scalar):
            n = b.num_rows
            return fn(as_array(x, n, lt), as_array(y, n, rt))
        return fn(x, y)

    return kernel


def _overflow_checked(checked, what: str):
    def fn(a: Datum, b: Datum) -> Datum:
        try:
            return checked(a, b)
        except pa.ArrowInvalid as err:
            if "overflow" in str(err).lower():
                raise ArithmeticOverflowError(f"{a.type} {what} overflowed") from None
            raise
    return fn


@lower.register(ex.Add)
@lower.register(ex.Subtract)
@lower.register(ex.Multiply)
def _(e: ex.BinaryArithmetic) -> Kernel:
    out = e.dtype
    if e.is_decimal:
        if isinstance(e, ex.Multiply):
            return _decimal_binary(e, lambda a, b: decimals.multiply(a, b, out, e.ansi))
        sub = isinstance(e, ex.Subtract)
        return _decimal_binary(e, lambda a, b: decimals.add(a, b, out, e.ansi, sub))
    checked, unchecked, what = _INT_OPS[type(e)]
    if pa.types.is_integer(out) and e.ansi:
        return _binary(e, _overflow_checked(checked, what))
    return _binary(e, unchecked)  # floats never raise; non-ANSI integers wrap like Java


def _zero_divisors(a: pa.Array, b: pa.Array) -> pa.Array:
    """Rows where the divisor is zero and the dividend is not null (Spark checks only those)."""
    return pc.and_(pc.fill_null(pc.equal(b, pa.scalar(0, b.type)), False), pc.is_valid(a))


def _guard_zero(a: pa.Array, b: pa.Array, ansi: bool, what: str) -> tuple[pa.Array, pa.Array]:
    """Raise on a zero divisor (ANSI) or null those rows out; returns a safe divisor."""
    zero = _zero_divisors(a, b)
    if pc.any(zero).as_py():
        if ansi:
            raise DivideByZeroError(f"division by zero in {what}")
        b = pc.if_else(zero, pa.scalar(None, b.type), b)
    return a, b


@lower.register
def _(e: ex.Divide) -> Kernel:
    out = e.dtype
    if e.is_decimal:
        return _decimal_binary(e, lambda a, b: decimals.divide(a, b, out, e.ansi))

    def fn(a: pa.Array, b: pa.Array) -> pa.Array:
        a, b = pc.cast(a, pa.float64(), safe=False), pc.cast(b, pa.float64(), safe=False)
        a, b = _guard_zero(a, b, e.ansi, "/")
        return pc.divide(a, b)

    return _binary(e, fn)


@lower.register
def _(e: ex.IntegralDivide) -> Kernel:
    if e.is_decimal:
        raise UnsupportedError("IntegralDivide", "decimal operands")

    def fn(a: pa.Array, b: pa.Array) -> pa.Array:
        a, b = pc.cast(a, pa.int64()), pc.cast(b, pa.int64())
        a, b = _guard_zero(a, b, e.ansi, "div")
        if e.ansi:
            return _overflow_checked(pc.divide_checked, "div")(a, b)
        # Long.MinValue div -1 wraps to Long.MinValue in Java.
        minus_one = pc.fill_null(pc.equal(b, -1), False)
        return pc.if_else(minus_one, pc.negate(a), pc.divide(a, pc.if_else(minus_one, 1, b)))

    return _binary(e, fn)


@lower.register
def _(e: ex.Remainder) -> Kernel:
    if e.is_decimal:
        raise UnsupportedError("Remainder", "decimal operands")

    def fn(a: pa.Array, b: pa.Array) -> pa.Array:
        a, b = _guard_zero(a, b, e.ansi, "%")
        valid = pc.and_(pc.is_valid(a), pc.is_valid(b))
        fill = pa.scalar(1, a.type)
        x = pc.fill_null(a, fill).to_numpy(zero_copy_only=False)
        y = pc.fill_null(b, fill).to_numpy(zero_copy_only=False)
        if np.issubdtype(x.dtype, np.integer):
            y = np.where(y == -1, 1, y)  # x % -1 == 0; avoids MIN % -1 trapping
        # C fmod (truncated, sign of the dividend) is Java's %, exact for floats too.
        with np.errstate(all="ignore"):
            r = np.fmod(x, y)
        return pc.if_else(valid, pa.array(r, a.type), pa.scalar(None, a.type))

    return _binary(e, fn)


@lower.register
def _(e: ex.Negate) -> Kernel:
    child = lower(e.child)
    t = e.dtype

    def kernel(b: pa.RecordBatch) -> Datum:
        x = as_array(child(b), b.num_rows, t)
        if pa.types.is_integer(t) and e.ansi:
            try:
                return pc.negate_checked(x)
            except pa.ArrowInvalid:
                raise ArithmeticOverflowError(f"-({t} minimum) overflowed") from None
        return pc.negate(x)

    return kernel
