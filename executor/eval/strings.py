"""String and date functions."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from executor.errors import ArithmeticOverflowError, UnsupportedError
from executor.eval.core import Datum, Kernel, as_array, lower
from executor.ir import functions as fn


def _unary(e, f) -> Kernel:
    child = lower(e.child)
    t = e.child.dtype
    return lambda b: f(as_array(child(b), b.num_rows, t))


@lower.register
def _(e: fn.Substring) -> Kernel:
    pos, length = e.pos, e.length
    # Spark's UTF8String.substringSQL: 1-based, 0 acts as 1, negative counts from the end.
    if pos > 0:
        start = pos - 1
    elif pos == 0:
        start = 0
    else:
        start = pos  # Arrow also counts a negative start from the end, clamping at 0

    def f(x: pa.Array) -> pa.Array:
        if length is None:
            return pc.utf8_slice_codeunits(x, start)
        if length <= 0:
            return pc.if_else(pc.is_valid(x), "", pa.scalar(None, pa.string()))
        stop = start + length
        if pos < 0 and stop >= 0:
            return pc.utf8_slice_codeunits(x, start)  # runs to the end
        return pc.utf8_slice_codeunits(x, start, stop)

    return _unary(e, f)


def match_kernel(e: fn.Like | fn.StartsWith | fn.EndsWith | fn.Contains
                 ) -> tuple[str, pc.MatchSubstringOptions]:
    """The Arrow kernel and options that evaluate a LIKE or substring test exactly as Spark
    does: used here and for the scan filters pushed to Arrow (:mod:`executor.eval.pushdown`)."""
    if isinstance(e, fn.Like):
        if e.pattern.endswith("\\") and not e.pattern.endswith("\\\\"):
            raise UnsupportedError("Like", "pattern ends with the escape character")
        return "match_like", pc.MatchSubstringOptions(e.pattern)
    if isinstance(e, fn.StartsWith):
        return "starts_with", pc.MatchSubstringOptions(e.prefix)
    if isinstance(e, fn.EndsWith):
        return "ends_with", pc.MatchSubstringOptions(e.suffix)
    return "match_substring", pc.MatchSubstringOptions(e.substring)


@lower.register(fn.Like)
@lower.register(fn.StartsWith)
@lower.register(fn.EndsWith)
@lower.register(fn.Contains)
def _(e) -> Kernel:
    name, options = match_kernel(e)
    return _unary(e, lambda x: pc.call_function(name, [x], options))


@lower.register
def _(e: fn.Concat) -> Kernel:
    args = [lower(a) for a in e.args]

    def kernel(b: pa.RecordBatch) -> Datum:
        vals = [as_array(a(b), b.num_rows, pa.string()) for a in args]
        return pc.binary_join_element_wise(*vals, "", null_handling="emit_null")

    return kernel


def _ascii_only(name: str, f):
    # Java's case mapping differs from utf8proc's beyond ASCII ('ß'.upper() == 'SS'):
    # refuse rather than guess.
    def g(x: pa.Array) -> pa.Array:
        if pc.all(pc.string_is_ascii(x)).as_py() is not False:
            return f(x)
        raise UnsupportedError(name, "non-ASCII input")
    return g


@lower.register
def _(e: fn.Upper) -> Kernel:
    return _unary(e, _ascii_only("Upper", pc.ascii_upper))


@lower.register
def _(e: fn.Lower) -> Kernel:
    return _unary(e, _ascii_only("Lower", pc.ascii_lower))


@lower.register
def _(e: fn.Length) -> Kernel:
    return _unary(e, pc.utf8_length)


# -- dates ----------------------------------------------------------------------------------

_PARTS = {"year": pc.year, "month": pc.month, "day": pc.day}


@lower.register
def _(e: fn.ExtractDatePart) -> Kernel:
    part = _PARTS[e.part]
    return _unary(e, lambda x: pc.cast(part(x), pa.int32()))


def _days(x: pa.Array) -> pa.Array:
    return x.view(pa.int32()) if isinstance(x, pa.Array) else pc.cast(x, pa.int32())


@lower.register
def _(e: fn.DateAdd) -> Kernel:
    start, days = lower(e.start), lower(e.days)

    def kernel(b: pa.RecordBatch) -> Datum:
        n = b.num_rows
        s = _days(as_array(start(b), n, pa.date32()))
        d = pc.cast(as_array(days(b), n, e.days.dtype), pa.int32())
        try:
            total = pc.add_checked(s, d)
        except pa.ArrowInvalid:
            raise ArithmeticOverflowError("date_add overflowed") from None
        return pc.cast(total, pa.date32())

    return kernel


@lower.register
def _(e: fn.DateDiff) -> Kernel:
    end, start = lower(e.end), lower(e.start)

    def kernel(b: pa.RecordBatch) -> Datum:
        n = b.num_rows
        return pc.subtract(_days(as_array(end(b), n, pa.date32())),
                           _days(as_array(start(b), n, pa.date32())))

    return kernel
