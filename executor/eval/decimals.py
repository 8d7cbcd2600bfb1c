"""Exact decimal arithmetic with Spark's rounding and overflow rules.

Spark computes a decimal op exactly (``*`` to 38 significant digits, ``/`` to 38 decimal
places, both HALF_UP), then rounds HALF_UP to the result type's scale and checks its precision
(``Decimal.toPrecision``): overflow raises ``NUMERIC_VALUE_OUT_OF_RANGE`` under ANSI, else
gives null.

Three exact paths, fastest first:

* int64: when every operand's unscaled value fits 64 bits and the bounds of the operands
  (their largest magnitudes) prove the exact intermediate fits too, the op, Spark's HALF_UP
  rounding (both roundings of a quotient) and the precision check are numpy integer math;
* decimal256: exact intermediate in Arrow's ``decimal256``, then one rounding;
* row-wise: where Spark rounds twice beyond 64 bits (a product beyond 38 digits, a quotient),
  rows are computed with Python integers.
"""

from __future__ import annotations

import decimal as pydecimal
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from executor.errors import DivideByZeroError, NumericOutOfRangeError
from executor.ir.rules import integral_to_decimal

Datum = pa.Array | pa.ChunkedArray | pa.Scalar
MAX_256 = 76
HALF_UP = "half_towards_infinity"  # Arrow's name for Java's HALF_UP (ties away from zero)


def widen(a: pa.Array, scale: int | None = None) -> pa.Array:
    """``a`` as decimal256 at ``scale`` (>= its own), exactly."""
    t = a.type
    s = t.scale if scale is None else scale
    return pc.cast(a, pa.decimal256(min(MAX_256, t.precision + (s - t.scale)), s))


def to_result(exact: pa.Array, out: pa.Decimal128Type, ansi: bool, what: str) -> pa.Array:
    """Round ``exact`` HALF_UP to ``out.scale`` and check it fits ``out.precision``."""
    fast = _as_int64(exact)
    if fast is not None:
        u = _rescale_int64(fast.u, fast.bound, exact.type.scale, out.scale)
        if u is not None:
            return _finish(u, fast.valid, out, ansi, lambda i: f"{exact[i].as_py()} ({what})")
    if pa.types.is_decimal128(exact.type):
        exact = widen(exact)
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


# ``add``, ``multiply`` and ``divide`` take arrays of one length, or an array and a scalar.


def _arrays(a: Datum, b: Datum) -> tuple[pa.Array, pa.Array]:
    """Both operands as arrays (a scalar repeated to the other's length)."""
    def full(d: Datum, n: int) -> pa.Array:
        if isinstance(d, pa.Scalar):
            return pa.repeat(d, n) if d.is_valid else pa.nulls(n, d.type)
        return d.combine_chunks() if isinstance(d, pa.ChunkedArray) else d
    n = len(b) if isinstance(a, pa.Scalar) else len(a)
    return full(a, n), full(b, n)


def add(a: Datum, b: Datum, out: pa.DataType, ansi: bool, subtract: bool) -> pa.Array:
    fast = _add_int64(a, b, out, ansi, subtract)
    if fast is not None:
        return fast
    a, b = _arrays(a, b)
    s = max(a.type.scale, b.type.scale)
    int_digits = max(a.type.precision - a.type.scale, b.type.precision - b.type.scale)
    what = "-" if subtract else "+"
    if int_digits + s + 1 > MAX_256:  # Arrow types the exact sum one digit too wide
        fn = _sub_unscaled if subtract else _add_unscaled
        return rowwise(a, b, out, ansi, fn, what)
    wide = pa.decimal256(int_digits + s, s)
    op = pc.subtract if subtract else pc.add
    return to_result(op(pc.cast(a, wide), pc.cast(b, wide)), out, ansi, what)


def multiply(a: Datum, b: Datum, out: pa.DataType, ansi: bool) -> pa.Array:
    fast = _multiply_int64(a, b, out, ansi)
    if fast is not None:
        return fast
    a, b = _arrays(a, b)
    pa_, pb = a.type.precision, b.type.precision
    if pa_ + pb + 1 <= MAX_256:
        exact = pc.multiply(widen(a), widen(b))
        scale = a.type.scale + b.type.scale
        # Beyond 38 significant digits Spark rounds the product first: do it row by row.
        limit = pa.scalar(pydecimal.Decimal(10) ** (38 - scale), pa.decimal256(39, scale))
        if not pc.any(pc.greater_equal(pc.abs(exact), limit)).as_py():
            return to_result(exact, out, ansi, "*")
    return rowwise(a, b, out, ansi, _mul_unscaled, "*")


def divide(a: Datum, b: Datum, out: pa.DataType, ansi: bool) -> pa.Array:
    fast = _divide_int64(a, b, out, ansi)
    if fast is not None:
        return fast
    a, b = _arrays(a, b)
    return rowwise(a, b, out, ansi, _div_unscaled, "/")


def from_integers(x: pa.Array, out: pa.Decimal128Type, ansi: bool) -> pa.Array:
    """Integers ``x`` as ``out``, checking they fit its precision (Spark's cast)."""
    u = pc.fill_null(pc.cast(x, pa.int64()), 0).to_numpy(zero_copy_only=False)
    valid = x.is_valid().to_numpy(zero_copy_only=False) if x.null_count else None
    shift = 10 ** out.scale
    if _bound(u) * shift <= I64_MAX:
        return _finish(u * np.int64(shift), valid, out, ansi,
                       lambda i: f"{x[i].as_py()} (cast)")
    wide = pc.cast(pc.cast(x, integral_to_decimal(x.type)), pa.decimal256(76, 0))
    return to_result(widen(wide, out.scale), out, ansi, "cast")


# -- int64 exact path -----------------------------------------------------------------------
# Each function returns None when the operands' bounds do not prove that every intermediate
# fits 64 bits; the caller then takes a wider exact path. No int64 operation below can wrap:
# every product or sum is preceded by a bound check on Python integers.

I64_MAX = 2**63 - 1


@dataclass(frozen=True)
class _Ints:
    """A decimal operand as int64: unscaled values (0 at nulls; a 0-d array for a scalar),
    validity (None: all valid) and the largest magnitude among the values."""

    u: np.ndarray
    valid: np.ndarray | None
    bound: int


def _bound(u: np.ndarray) -> int:
    """The largest magnitude in ``u``, as an exact Python integer."""
    return max(int(u.max()), -int(u.min())) if u.size else 0


_RESULTS: dict[int, _Ints] = {}
"""The int64 paths' results without nulls, by ``id`` while they live: an operand that is one
is not converted again (``price * (1 - discount)`` reads ``1 - discount`` as computed)."""


def _remember(result: pa.Array, ints: _Ints) -> None:
    key = id(result)
    _RESULTS[key] = ints
    weakref.finalize(result, _RESULTS.pop, key, None)


def _as_int64(d: Datum) -> _Ints | None:
    """The unscaled values of decimal128 ``d`` as int64, or None when one needs more bits (or
    ``d`` is a null scalar). The arrays are read-only: they may be a result's own."""
    if not pa.types.is_decimal128(d.type):
        return None
    known = _RESULTS.get(id(d))
    if known is not None:
        return known
    if isinstance(d, pa.Scalar):
        if not d.is_valid:
            return None
        v = _unscaled(d.as_py(), d.type.scale)
        return _Ints(np.array(v, np.int64), None, abs(v)) if abs(v) <= I64_MAX else None
    if isinstance(d, pa.ChunkedArray):
        d = d.combine_chunks()
    n = len(d)
    if n == 0:
        return _Ints(np.zeros(0, np.int64), None, 0)
    words = np.frombuffer(d.buffers()[1], dtype=np.int64)[2 * d.offset:2 * (d.offset + n)]
    low = words[0::2].copy()  # little-endian two's complement halves; contiguous is faster
    valid = None
    if d.null_count:
        valid = d.is_valid().to_numpy(zero_copy_only=False)
        low[~valid] = 0  # null slots hold anything
    # A decimal128(p <= 18) value is below 10**18: its high half only repeats the sign.
    if d.type.precision > 18:
        high = words[1::2] if valid is None else np.where(valid, words[1::2], 0)
        if not np.array_equal(high, low >> 63):
            return None
    bound = _bound(low)
    return _Ints(low, valid, bound) if bound <= I64_MAX else None


def _both_valid(x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray | None:
    if x is None:
        return y
    return x if y is None else x & y


def _half_up_shift(u: np.ndarray, digits: int) -> np.ndarray | None:
    """``u / 10**digits`` rounded HALF_UP (ties away from zero)."""
    p = 10 ** digits
    if p > I64_MAX:
        return None
    magnitude = np.abs(u)
    q = magnitude // np.int64(p)  # numpy divides by a scalar far faster than divmod does
    q += (magnitude - q * np.int64(p)) * 2 >= p  # 2r < 2p <= 2**63: no wrap
    return np.where(u < 0, -q, q)


def _rescale_int64(u: np.ndarray, bound: int, scale: int, target: int) -> np.ndarray | None:
    if scale > target:
        return _half_up_shift(u, scale - target)
    shift = 10 ** (target - scale)
    if bound * shift > I64_MAX:
        return None
    return u * np.int64(shift) if shift > 1 else u


def _finish(u: np.ndarray, valid: np.ndarray | None, out: pa.Decimal128Type, ansi: bool,
            describe: Callable[[int], str]) -> pa.Array:
    """``u`` (unscaled at ``out.scale``) as ``out``: a value of more than ``out.precision``
    digits raises naming it (ANSI) or becomes null."""
    bound = _bound(u)
    if out.precision < 19 and bound >= 10 ** out.precision:
        fits = np.abs(u) < 10 ** out.precision
        if valid is not None:
            fits |= ~valid
        if not fits.all():
            if ansi:
                raise NumericOutOfRangeError(
                    f"{describe(int(np.argmin(fits)))} cannot be represented as {out}")
            valid = fits if valid is None else valid & fits
    n = len(u)
    words = np.empty(2 * n, np.int64)  # 3-4x faster to fill than an (n, 2) array's columns
    words[0::2] = u
    np.right_shift(u, 63, out=words[1::2])  # the sign, without a temporary array
    if valid is None or valid.all():
        result = pa.Array.from_buffers(out, n, [None, pa.py_buffer(words)], null_count=0)
        _remember(result, _Ints(u, None, bound))
        return result
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(out, n, [bitmap, pa.py_buffer(words)],
                                 null_count=n - int(np.count_nonzero(valid)))


def _pair(a: Datum, b: Datum, what: str) -> Callable[[int], str]:
    def describe(i: int) -> str:
        return f"{_at(a, i)} {what} {_at(b, i)}"
    return describe


def _at(d: Datum, i: int):
    return (d if isinstance(d, pa.Scalar) else d[i]).as_py()


def _add_int64(a: Datum, b: Datum, out: pa.Decimal128Type, ansi: bool,
               subtract: bool) -> pa.Array | None:
    x, y = _as_int64(a), _as_int64(b)
    if x is None or y is None:
        return None
    sa, sb = a.type.scale, b.type.scale
    s = max(sa, sb)
    fa, fb = 10 ** (s - sa), 10 ** (s - sb)
    bound = x.bound * fa + y.bound * fb
    if bound > I64_MAX:
        return None
    xs = x.u * np.int64(fa) if fa > 1 else x.u
    ys = y.u * np.int64(fb) if fb > 1 else y.u
    u = _rescale_int64(xs - ys if subtract else xs + ys, bound, s, out.scale)
    if u is None:
        return None
    return _finish(u, _both_valid(x.valid, y.valid), out, ansi,
                   _pair(a, b, "-" if subtract else "+"))


def _multiply_int64(a: Datum, b: Datum, out: pa.Decimal128Type,
                    ansi: bool) -> pa.Array | None:
    # A product within 64 bits has at most 19 digits: Spark's 38-digit rounding never applies.
    x, y = _as_int64(a), _as_int64(b)
    if x is None or y is None or x.bound * y.bound > I64_MAX:
        return None
    u = _rescale_int64(x.u * y.u, x.bound * y.bound, a.type.scale + b.type.scale, out.scale)
    if u is None:
        return None
    return _finish(u, _both_valid(x.valid, y.valid), out, ansi, _pair(a, b, "*"))


def _divide_int64(a: Datum, b: Datum, out: pa.Decimal128Type,
                  ansi: bool) -> pa.Array | None:
    """Spark's quotient: rounded HALF_UP to scale 38, then HALF_UP to ``out.scale``.

    With ``n / m`` the exact quotient in units of ``out.scale`` (``q`` whole, ``r`` left over)
    and ``k = 38 - out.scale``, the two roundings round up iff ``r/m`` rounded HALF_UP to
    ``k`` digits is >= 1/2, i.e. iff ``m - 2r <= m // 10**k`` (``k >= 1``), else (``k = 0``)
    iff ``m - 2r <= 0``. This differs from one rounding when ``r/m`` is just below 1/2.
    """
    x, y = _as_int64(a), _as_int64(b)
    if x is None or y is None:
        return None
    e = out.scale + b.type.scale - a.type.scale
    fn, fm = 10 ** max(e, 0), 10 ** max(-e, 0)
    if x.bound * fn > I64_MAX or y.bound * fm > I64_MAX:
        return None
    valid = _both_valid(x.valid, y.valid)
    zero = y.u == 0
    if valid is not None:
        zero = zero & valid
    if zero.any():
        if ansi:
            bad = int(np.argmax(zero))
            raise DivideByZeroError(f"{_at(a, bad)} / {_at(b, bad)}")
        valid = ~zero if valid is None else valid & ~zero
    n = np.abs(x.u) * np.int64(fn)
    m = np.where(y.u == 0, 1, np.abs(y.u)) * np.int64(fm)  # 0 at nulls and zeros
    q = n // m
    r = n - q * m
    k = 38 - out.scale
    slack = m // np.int64(10 ** k) if 1 <= k <= 18 else 0
    q += (m - r) - r <= slack
    u = np.where((x.u < 0) != (y.u < 0), -q, q)
    if valid is not None and valid.ndim == 0:  # a scalar zero divisor, non-ANSI
        valid = np.full(len(u), bool(valid))
    return _finish(u, valid, out, ansi, _pair(a, b, "/"))


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
