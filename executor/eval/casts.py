"""``Cast`` with Spark's semantics, for the type pairs whose semantics are pinned down here.

Anything else raises :class:`UnsupportedError` (e.g. string -> number/date, where Spark's
parser accepts forms Arrow's does not; decimal <-> float, whose rounding in Spark depends on
the value's internal representation; float/decimal -> string, whose formats differ).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from executor.errors import CastOverflowError, UnsupportedError
from executor.eval import decimals
from executor.eval.core import Datum, Kernel, as_array, lower
from executor.ir import expressions as ex

_INT_BOUNDS = {8: 2**7, 16: 2**15, 32: 2**31, 64: 2**63}


def _int_narrow(ansi: bool):
    def cast(x: pa.Array, to: pa.DataType) -> pa.Array:
        if not ansi:
            return pc.cast(x, to, safe=False)  # Java narrowing keeps the low bits
        try:
            return pc.cast(x, to, safe=True)
        except pa.ArrowInvalid:
            raise CastOverflowError(f"a {x.type} value is out of range for {to}") from None
    return cast


def _int_to_decimal(ansi: bool):
    def cast(x: pa.Array, to: pa.DataType) -> pa.Array:
        return decimals.from_integers(x, to, ansi)
    return cast


def _decimal_to_decimal(ansi: bool):
    def cast(x: pa.Array, to: pa.DataType) -> pa.Array:
        return decimals.to_result(x, to, ansi, "cast")
    return cast


def _decimal_to_int(x: pa.Array, to: pa.DataType) -> pa.Array:
    # Spark truncates toward zero; under ANSI an out-of-range value raises.
    t = pc.round(decimals.widen(x), ndigits=0, round_mode="towards_zero")
    t = pc.cast(t, pa.decimal256(x.type.precision - x.type.scale + 1, 0))  # integral: exact
    bound = _INT_BOUNDS[to.bit_width]
    lo, hi = pa.scalar(-bound, pa.decimal256(20, 0)), pa.scalar(bound, pa.decimal256(20, 0))
    ok = pc.and_(pc.greater_equal(t, lo), pc.less(t, hi))
    if pc.any(pc.invert(ok)).as_py():
        raise CastOverflowError(f"a {x.type} value is out of range for {to}")
    return pc.cast(pc.cast(t, pa.decimal128(38, 0)), to)


def _float_to_int(ansi: bool):
    def cast(x: pa.Array, to: pa.DataType) -> pa.Array:
        x = pc.cast(x, pa.float64())
        t = pc.trunc(x)
        bound = float(_INT_BOUNDS[to.bit_width])
        in_range = pc.and_(pc.greater_equal(t, -bound), pc.less(t, bound))  # false for NaN
        if ansi:
            if pc.any(pc.invert(in_range)).as_py():
                raise CastOverflowError(f"a {x.type} value is out of range for {to}")
            return pc.cast(t, to)
        # Java's (int)/(long) saturate and map NaN to 0.
        sat = pc.if_else(pc.less(t, 0.0), -bound, bound - 1)
        t = pc.if_else(in_range, t, pc.if_else(pc.is_nan(t), 0.0, sat))
        return pc.cast(t, to, safe=False)
    return cast


def _plain(x: pa.Array, to: pa.DataType) -> pa.Array:
    return pc.cast(x, to, safe=False)


def _int_to_bool(x: pa.Array, to: pa.DataType) -> pa.Array:
    return pc.not_equal(x, pa.scalar(0, x.type))


def rule(src: pa.DataType, to: pa.DataType, ansi: bool):
    """The cast function for ``src -> to``, or None when unsupported."""
    t = pa.types
    if src == to:
        return lambda x, _: x
    if t.is_null(src):
        return lambda x, to: pa.nulls(len(x), to)
    if t.is_integer(src):
        if t.is_integer(to):
            return _plain if to.bit_width >= src.bit_width else _int_narrow(ansi)
        if t.is_floating(to):
            return _plain  # round-to-nearest-even, like Java's (double) long
        if t.is_decimal(to):
            return _int_to_decimal(ansi)
        if t.is_boolean(to):
            return _int_to_bool
        if t.is_string(to):
            return _plain
    if t.is_decimal(src):
        if t.is_decimal(to):
            return _decimal_to_decimal(ansi)
        if t.is_integer(to) and ansi:
            return _decimal_to_int
    if t.is_floating(src):
        if t.is_floating(to):
            return _plain
        if t.is_integer(to) and (ansi or to.bit_width >= 32):
            return _float_to_int(ansi)
    if t.is_boolean(src) and (t.is_integer(to) or t.is_string(to)):
        return _plain
    if t.is_date32(src) and t.is_string(to):
        return _plain
    return None


@lower.register
def _(e: ex.Cast) -> Kernel:
    src, to = e.child.dtype, e.to
    fn = rule(src, to, e.ansi)
    if fn is None:
        raise UnsupportedError("Cast", f"{src} -> {to} (ansi={e.ansi})")
    child = lower(e.child)

    def kernel(b: pa.RecordBatch) -> Datum:
        return fn(as_array(child(b), b.num_rows, src), to)

    return kernel
