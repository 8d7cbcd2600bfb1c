"""Exact decimal arithmetic with Spark's rounding and overflow rules.

Spark computes a decimal op exactly (``*`` to 38 significant digits, ``/`` to 38 decimal
places, both HALF_UP), then rounds HALF_UP to the result type's scale and checks its precision
(``Decimal.toPrecision``): overflow raises ``NUMERIC_VALUE_OUT_OF_RANGE`` under ANSI, else
gives null. Vectorized path: exact intermediate in ``decimal256``, then one rounding.
Where Spark rounds twice (a product beyond 38 digits, every quotient), rows are computed with
Python integers -- exact, slower; quotients mostly appear on aggregated rows.
"""

from __future__ import annotations

import decimal as pydecimal
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from executor.errors import DivideByZeroError, NumericOutOfRangeError

MAX_256 = 76
HALF_UP = "half_towards_infinity"  # Arrow's name for Java's HALF_UP (ties away from zero)


def widen(a: pa.Array, scale: int | None = None) -> pa.Array:
    """``a`` as decimal256 at ``scale`` (>= its own), exactly."""
    t = a.type
    s = t.scale if scale is None else scale
    return pc.cast(a, pa.decimal256(min(MAX_256, t.precision + (s - t.scale)), s))


def to_result(exact: pa.Array, out: pa.Decimal128Type, ansi: bool, what: str) -> pa.Array:
    """Round ``exact`` HALF_UP to ``out.scale`` and check it fits ``out.precision``."""
    if exact.type.scale > out.scale:
        t = exact.type
        if t.precision < MAX_256:  # room for a carry out of the rounding (99.995 -> 100.00)
            exact = pc.cast(exact, pa.decimal256(t.precision + 1, t.scale))
        try:
            exact = pc.round(exact, ndigits=out.scale, round_mode=HALF_UP)
        except pa.ArrowInvalid:  # a 76-digit value carried out: far beyond any decimal128
            raise NumericOutOfRangeError(f"a value cannot be represented as {out}") from None
    int_digits, scale = out.precision - out.scale, exact.type.scale
    bound = pa.scalar(pydecimal.Decimal(10) ** int_digits,
                      pa.decimal256(int_digits + 1 + scale, scale))
    fits = pc.less(pc.abs(exact), bound)
    if pc.any(pc.invert(fits)).as_py():
        if ansi:
            bad = pc.filter(exact, pc.invert(fits))[0]
            raise NumericOutOfRangeError(f"{bad.as_py()} cannot be represented as {out} ({what})")
        exact = pc.if_else(fits, exact, pa.scalar(None, exact.type))
    return pc.cast(exact, out)


def add(a: pa.Array, b: pa.Array, out: pa.DataType, ansi: bool, subtract: bool) -> pa.Array:
    s = max(a.type.scale, b.type.scale)
    int_digits = max(a.type.precision - a.type.scale, b.type.precision - b.type.scale)
    what = "-" if subtract else "+"
    if int_digits + s + 1 > MAX_256:  # Arrow types the exact sum one digit too wide
        fn = _sub_unscaled if subtract else _add_unscaled
        return rowwise(a, b, out, ansi, fn, what)
    wide = pa.decimal256(int_digits + s, s)
    op = pc.subtract if subtract else pc.add
    return to_result(op(pc.cast(a, wide), pc.cast(b, wide)), out, ansi, what)


def multiply(a: pa.Array, b: pa.Array, out: pa.DataType, ansi: bool) -> pa.Array:
    pa_, pb = a.type.precision, b.type.precision
    if pa_ + pb + 1 <= MAX_256:
        exact = pc.multiply(widen(a), widen(b))
        scale = a.type.scale + b.type.scale
        # Beyond 38 significant digits Spark rounds the product first: do it row by row.
        limit = pa.scalar(pydecimal.Decimal(10) ** (38 - scale), pa.decimal256(39, scale))
        if not pc.any(pc.greater_equal(pc.abs(exact), limit)).as_py():
            return to_result(exact, out, ansi, "*")
    return rowwise(a, b, out, ansi, _mul_unscaled, "*")


def divide(a: pa.Array, b: pa.Array, out: pa.DataType, ansi: bool) -> pa.Array:
    return rowwise(a, b, out, ansi, _div_unscaled, "/")


# -- row-wise exact path ----------------------------------------------------------------------


def half_up_div(n: int, d: int) -> int:
    """n / d rounded half away from zero (Java's HALF_UP)."""
    q, r = divmod(abs(n), abs(d))
    if 2 * r >= abs(d):
        q += 1
    return q if (n < 0) == (d < 0) else -q


def _unscaled(x: pydecimal.Decimal, scale: int) -> int:
    return int(x.scaleb(scale, pydecimal.Context(prec=100)))


def _rescale(u: int, scale: int, target: int) -> int:
    if scale > target:
        return half_up_div(u, 10 ** (scale - target))
    return u * 10 ** (target - scale)


def _add_unscaled(x: int, sx: int, y: int, sy: int, out_scale: int) -> int:
    s = max(sx, sy)
    return _rescale(x * 10 ** (s - sx) + y * 10 ** (s - sy), s, out_scale)


def _sub_unscaled(x: int, sx: int, y: int, sy: int, out_scale: int) -> int:
    return _add_unscaled(x, sx, -y, sy, out_scale)


def _mul_unscaled(x: int, sx: int, y: int, sy: int, out_scale: int) -> int:
    u, scale = x * y, sx + sy
    digits = len(str(abs(u)))
    if digits > 38:  # MathContext(38, HALF_UP)
        u, scale = half_up_div(u, 10 ** (digits - 38)), scale - (digits - 38)
    return _rescale(u, scale, out_scale)


def _div_unscaled(x: int, sx: int, y: int, sy: int, out_scale: int) -> int:
    if y == 0:
        raise ZeroDivisionError
    q38 = half_up_div(x * 10 ** (38 - sx + sy), y)  # divide(that, 38, HALF_UP)
    return _rescale(q38, 38, out_scale)


def rowwise(a: pa.Array, b: pa.Array, out: pa.Decimal128Type, ansi: bool,
            fn: Callable[[int, int, int, int, int], int], what: str) -> pa.Array:
    sa, sb = a.type.scale, b.type.scale
    limit = 10 ** out.precision
    values: list[pydecimal.Decimal | None] = []
    for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True):
        if x is None or y is None:
            values.append(None)
            continue
        try:
            u = fn(_unscaled(x, sa), sa, _unscaled(y, sb), sb, out.scale)
        except ZeroDivisionError:
            if ansi:
                raise DivideByZeroError(f"{x} {what} {y}") from None
            values.append(None)
            continue
        if abs(u) >= limit:
            if ansi:
                raise NumericOutOfRangeError(
                    f"{x} {what} {y} cannot be represented as {out}")
            values.append(None)
            continue
        values.append(pydecimal.Decimal(u).scaleb(-out.scale, pydecimal.Context(prec=100)))
    return pa.array(values, out)
