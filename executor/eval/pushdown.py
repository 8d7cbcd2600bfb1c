"""IR predicates as ``pyarrow.compute.Expression`` -- only where Arrow's semantics are Spark's.

Used for scan filters (pushed into ``pyarrow.dataset`` / wjio, which prune row groups with them
and apply them exactly) and for join residuals (Acero's hash join ``filter_expression``).
Covered: column refs, literals, comparisons of non-float values, AND/OR/NOT (Kleene),
IS [NOT] NULL, IN over non-float values, and LIKE / startswith / endswith / contains (the
kernels :mod:`executor.eval.strings` evaluates them with). Anything else raises
:class:`UnsupportedError`; callers then evaluate with :mod:`executor.eval.core` instead.
"""

from __future__ import annotations

from functools import singledispatch
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from executor.errors import UnsupportedError
from executor.eval.strings import match_kernel
from executor.ir import expressions as ex
from executor.ir import functions as fn

_CMP = {
    ex.EqualTo: "equal", ex.NotEqualTo: "not_equal", ex.LessThan: "less",
    ex.LessThanOrEqual: "less_equal", ex.GreaterThan: "greater",
    ex.GreaterThanOrEqual: "greater_equal",
}


@singledispatch
def to_arrow_expression(e: Any) -> pc.Expression:
    """The equivalent Arrow expression, or :class:`UnsupportedError`."""
    raise UnsupportedError(type(e).__name__, "not expressible as an Arrow expression")


@to_arrow_expression.register
def _(e: ex.ColumnRef) -> pc.Expression:
    return pc.field(e.name)


@to_arrow_expression.register
def _(e: ex.Literal) -> pc.Expression:
    return pc.scalar(e.to_arrow())


def _no_floats(e: ex.Expr) -> None:
    for side in e.children:
        if pa.types.is_floating(side.dtype) or pa.types.is_null(side.dtype):
            # NaN ordering and -0.0 differ between Spark and IEEE.
            raise UnsupportedError(type(e).__name__, f"{side.dtype} operands")


@to_arrow_expression.register
def _(e: ex.Comparison) -> pc.Expression:
    if type(e) not in _CMP:
        raise UnsupportedError(type(e).__name__, "not expressible as an Arrow expression")
    _no_floats(e)
    return pc.Expression._call(_CMP[type(e)], [to_arrow_expression(e.left),
                                               to_arrow_expression(e.right)])


@to_arrow_expression.register
def _(e: ex.And) -> pc.Expression:
    return pc.Expression._call("and_kleene", [to_arrow_expression(e.left),
                                              to_arrow_expression(e.right)])


@to_arrow_expression.register
def _(e: ex.Or) -> pc.Expression:
    return pc.Expression._call("or_kleene", [to_arrow_expression(e.left),
                                             to_arrow_expression(e.right)])


@to_arrow_expression.register
def _(e: ex.Not) -> pc.Expression:
    return pc.Expression._call("invert", [to_arrow_expression(e.child)])


@to_arrow_expression.register
def _(e: ex.IsNull) -> pc.Expression:
    return to_arrow_expression(e.child).is_null(nan_is_null=False)


@to_arrow_expression.register
def _(e: ex.IsNotNull) -> pc.Expression:
    return to_arrow_expression(e.child).is_valid()


@to_arrow_expression.register
def _(e: ex.In) -> pc.Expression:
    if pa.types.is_floating(e.child.dtype) or any(v.value is None for v in e.values):
        raise UnsupportedError("In", "float values or a NULL in the list")
    child = to_arrow_expression(e.child)
    values = pa.array([v.value for v in e.values], e.child.dtype)
    # is_in gives false for a null input; Spark gives null. Both drop the row in a filter,
    # but under NOT they differ, so keep the null explicitly.
    found = child.isin(values)
    return pc.Expression._call("if_else", [child.is_valid(), found,
                                           pc.scalar(pa.scalar(None, pa.bool_()))])


@to_arrow_expression.register(fn.Like)
@to_arrow_expression.register(fn.StartsWith)
@to_arrow_expression.register(fn.EndsWith)
@to_arrow_expression.register(fn.Contains)
def _(e) -> pc.Expression:
    name, options = match_kernel(e)
    return pc.Expression._call(name, [to_arrow_expression(e.child)], options)
