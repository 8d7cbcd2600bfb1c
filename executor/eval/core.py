"""Lowering IR expressions to vectorized kernels: ``lower(expr) -> Kernel``.

A kernel maps a ``pyarrow.RecordBatch`` to an Arrow array or scalar (a "datum"), built from
``pyarrow.compute`` calls. Lowering is ``functools.singledispatch`` on the node class; a node
without a rule raises :class:`UnsupportedError` naming it, which is what drives fallback to
Spark. Rules for the core nodes are here; arithmetic, casts, strings and dates register theirs
from their own modules (imported by :mod:`executor.eval`).

Why kernels rather than one ``pc.Expression`` for Acero's project/filter nodes: Spark's exact
semantics (decimal rounding and overflow, ANSI errors, NaN ordering) need kernel sequences and
checks between them that an Arrow expression cannot state. Scan filters and join residuals
that *can* be stated exactly go to Arrow as expressions (:mod:`executor.eval.pushdown`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import singledispatch
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from executor.errors import InternalError, UnsupportedError
from executor.ir import expressions as ex
from executor.ir import subqueries as sub

Datum = pa.Array | pa.ChunkedArray | pa.Scalar
Kernel = Callable[[pa.RecordBatch], Datum]


@singledispatch
def lower(expr: Any) -> Kernel:
    """The kernel computing ``expr`` over a batch; :class:`UnsupportedError` if none exists."""
    raise UnsupportedError(type(expr).__name__, "no evaluation rule")


def evaluate(expr: ex.Expr, batch: pa.RecordBatch) -> pa.Array:
    """Evaluate ``expr`` over ``batch`` as an array of ``batch.num_rows`` values."""
    return as_array(lower(expr)(batch), batch.num_rows, expr.dtype)


def as_array(value: Datum, length: int, dtype: pa.DataType | None = None) -> pa.Array:
    """Broadcast a scalar to ``length`` rows; combine chunks of a chunked array."""
    if isinstance(value, pa.Scalar):
        if not value.is_valid:
            return pa.nulls(length, dtype or value.type)
        return pa.repeat(value, length)
    if isinstance(value, pa.ChunkedArray):
        return value.combine_chunks()
    return value


def null_bool(batch: pa.RecordBatch) -> pa.Scalar:
    return pa.scalar(None, pa.bool_())


# -- references, literals, alias ------------------------------------------------------------


@lower.register
def _(e: ex.ColumnRef) -> Kernel:
    name = e.name
    return lambda batch: batch.column(name)


@lower.register
def _(e: ex.BoundRef) -> Kernel:
    index = e.index
    return lambda batch: batch.column(index)


@lower.register
def _(e: ex.Literal) -> Kernel:
    scalar = e.to_arrow()
    return lambda batch: scalar


@lower.register
def _(e: ex.Alias) -> Kernel:
    return lower(e.child)


@lower.register
def _(e: sub.ScalarSubquery) -> Kernel:
    # Lowering succeeds so that planning (and check_executable) accepts the plan; the runners
    # substitute every subquery's value before executing (executor.subqueries).
    def kernel(batch: pa.RecordBatch) -> Datum:
        raise InternalError("a scalar subquery reached execution without being computed "
                            "first (run it with executor.run/run_parallel)")

    return kernel


# -- boolean logic --------------------------------------------------------------------------


@lower.register
def _(e: ex.And) -> Kernel:
    left, right = lower(e.left), lower(e.right)
    return lambda b: pc.and_kleene(_as_bool(left(b)), _as_bool(right(b)))


@lower.register
def _(e: ex.Or) -> Kernel:
    left, right = lower(e.left), lower(e.right)
    return lambda b: pc.or_kleene(_as_bool(left(b)), _as_bool(right(b)))


@lower.register
def _(e: ex.Not) -> Kernel:
    child = lower(e.child)
    return lambda b: pc.invert(_as_bool(child(b)))


def _as_bool(d: Datum) -> Datum:
    """Null-typed operands (an untyped NULL) behave as a null bool."""
    return d.cast(pa.bool_()) if pa.types.is_null(d.type) else d


@lower.register
def _(e: ex.IsNull) -> Kernel:
    child = lower(e.child)
    # nan_is_null=False: in Spark NaN is a value, not a null.
    return lambda b: pc.is_null(child(b), nan_is_null=False)


@lower.register
def _(e: ex.IsNotNull) -> Kernel:
    child = lower(e.child)
    return lambda b: pc.is_valid(child(b))


@lower.register
def _(e: ex.IsNaN) -> Kernel:
    child = lower(e.child)
    return lambda b: pc.fill_null(pc.is_nan(child(b)), False)


# -- comparisons ----------------------------------------------------------------------------

_ARROW_CMP = {
    ex.EqualTo: pc.equal, ex.NotEqualTo: pc.not_equal, ex.LessThan: pc.less,
    ex.LessThanOrEqual: pc.less_equal, ex.GreaterThan: pc.greater,
    ex.GreaterThanOrEqual: pc.greater_equal,
}


def _nan_lt(a: Datum, b: Datum) -> Datum:
    """a < b with NaN greater than everything and equal to itself (Spark's float order)."""
    return pc.or_kleene(pc.less(a, b), pc.and_kleene(pc.invert(pc.is_nan(a)), pc.is_nan(b)))


def _nan_eq(a: Datum, b: Datum) -> Datum:
    return pc.or_kleene(pc.equal(a, b), pc.and_kleene(pc.is_nan(a), pc.is_nan(b)))


_FLOAT_CMP: dict[type, Callable[[Datum, Datum], Datum]] = {
    ex.EqualTo: _nan_eq,
    ex.NotEqualTo: lambda a, b: pc.invert(_nan_eq(a, b)),
    ex.LessThan: _nan_lt,
    ex.GreaterThan: lambda a, b: _nan_lt(b, a),
    ex.LessThanOrEqual: lambda a, b: pc.invert(_nan_lt(b, a)),
    ex.GreaterThanOrEqual: lambda a, b: pc.invert(_nan_lt(a, b)),
}


@lower.register
def _(e: ex.Comparison) -> Kernel:
    left, right = lower(e.left), lower(e.right)
    if pa.types.is_null(e.left.dtype) or pa.types.is_null(e.right.dtype):
        return null_bool
    if pa.types.is_floating(e.left.dtype):
        # NaN-aware; for null operands every branch yields null, as IEEE/Arrow would.
        fn = _FLOAT_CMP[type(e)]
    else:
        fn = _ARROW_CMP[type(e)]
    return lambda b: fn(left(b), right(b))


@lower.register
def _(e: ex.EqualNullSafe) -> Kernel:
    left, right = lower(e.left), lower(e.right)
    float_type = pa.types.is_floating(e.left.dtype)

    def kernel(b: pa.RecordBatch) -> Datum:
        a, c = left(b), right(b)
        both_null = pc.and_(pc.is_null(a), pc.is_null(c))
        eq = _nan_eq(a, c) if float_type else pc.equal(a, c)
        return pc.or_(pc.fill_null(eq, False), both_null)

    return kernel


# -- IN, conditionals -----------------------------------------------------------------------


def normalize_float(d: Datum) -> Datum:
    """-0.0 -> 0.0 (NaN payloads are not observable through Arrow's kernels)."""
    zero = pa.scalar(0.0, d.type)
    return pc.if_else(pc.equal(d, zero), zero, d)


@lower.register
def _(e: ex.NormalizeNaNAndZero) -> Kernel:
    child = lower(e.child)
    return lambda b: normalize_float(child(b))


@lower.register
def _(e: ex.In) -> Kernel:
    child = lower(e.child)
    values = [v.value for v in e.values if v.value is not None]
    has_null = len(values) < len(e.values)
    value_set = pa.array(values, e.child.dtype)
    is_float = pa.types.is_floating(e.child.dtype)
    if is_float:
        value_set = normalize_float(value_set)

    def kernel(b: pa.RecordBatch) -> Datum:
        x = as_array(child(b), b.num_rows, e.child.dtype)
        if is_float:
            x = normalize_float(x)
        found = pc.is_in(x, value_set=value_set, skip_nulls=True)
        found = pc.if_else(pc.is_null(x), pa.scalar(None, pa.bool_()), found)
        if has_null:  # x IN (..., NULL) is null unless it matched
            found = pc.if_else(found, True, pa.scalar(None, pa.bool_()))
        return found

    return kernel


@lower.register
def _(e: ex.If) -> Kernel:
    pred, then, other = lower(e.predicate), lower(e.then), lower(e.otherwise)
    dtype = e.dtype

    def kernel(b: pa.RecordBatch) -> Datum:
        cond = pc.fill_null(_as_bool(pred(b)), False)  # null predicate -> otherwise
        return pc.if_else(cond, _typed(then(b), dtype), _typed(other(b), dtype))

    return kernel


def _typed(d: Datum, dtype: pa.DataType) -> Datum:
    """Give an untyped NULL operand the branch type."""
    return d.cast(dtype) if pa.types.is_null(d.type) and not pa.types.is_null(dtype) else d


@lower.register
def _(e: ex.CaseWhen) -> Kernel:
    conds = [lower(br.condition) for br in e.branches]
    values = [lower(br.value) for br in e.branches]
    other = lower(e.otherwise) if e.otherwise is not None else None
    dtype = e.dtype
    names = [f"c{i}" for i in range(len(conds))]

    def kernel(b: pa.RecordBatch) -> Datum:
        n = b.num_rows
        cs = [as_array(pc.fill_null(_as_bool(c(b)), False), n, pa.bool_()) for c in conds]
        vs = [as_array(_typed(v(b), dtype), n, dtype) for v in values]
        if other is not None:
            vs.append(as_array(_typed(other(b), dtype), n, dtype))
        return pc.case_when(pc.make_struct(*cs, field_names=names), *vs)

    return kernel


@lower.register
def _(e: ex.Coalesce) -> Kernel:
    args = [lower(a) for a in e.args]
    dtype = e.dtype
    return lambda b: pc.coalesce(*[_typed(a(b), dtype) for a in args])
