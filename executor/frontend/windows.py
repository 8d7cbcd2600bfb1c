"""Spark window expressions -> IR: a ``WindowExpression`` (function + ``WindowSpecDefinition``
with its ``SpecifiedWindowFrame``) becomes a :class:`~executor.ir.windows.WindowExpr`.

Spark fixes the frames of ranking functions (``ROWS UNBOUNDED PRECEDING..CURRENT ROW``, ``RANGE``
for ``cume_dist``) and of ``lag``/``lead`` (``ROWS offset..offset``); the IR computes those from
the order alone, so only aggregates keep the frame Spark planned. The spec's partition and order
keys are returned untranslated: the caller checks they are its ``Window`` node's (Spark groups
window expressions by spec).

Spark's optimizer rewrites ``sum`` of a decimal of precision <= 8 to
``MakeDecimal(sum(UnscaledValue(x)))`` (a long sum); that is the exact decimal sum of ``x``
at the same type, so it becomes ``Sum(x)``. Its ``avg`` counterpart divides a double average
and casts it back to decimal, which a decimal average does not reproduce digit for digit: it
falls back.
"""

from __future__ import annotations

from executor import ir
from executor.errors import InternalError
from executor.frontend.expressions import ExprTranslator, is_expr, short_class
from executor.frontend.plan_json import TreeNode, object_name
from executor.frontend.types import arrow_type
from executor.ir import windows as win
from executor.ir.expressions import Expr

Spec = tuple[list[TreeNode], list[TreeNode]]
"""A window spec's partition expressions and ``SortOrder`` nodes."""

_RANKING = {"RowNumber": win.RowNumber, "Rank": win.Rank, "DenseRank": win.DenseRank,
            "PercentRank": win.PercentRank, "CumeDist": win.CumeDist}
_INTEGRAL = ("byte", "short", "integer", "long")
_FRAME_TYPES = {"RowFrame": win.FrameKind.ROWS, "RangeFrame": win.FrameKind.RANGE}


def window_function(t: ExprTranslator, n: TreeNode) -> tuple[win.WindowExpr, Spec]:
    """The IR of the child ``n`` of an ``Alias`` in a ``Window``'s list, and its spec."""
    if is_expr(n, "MakeDecimal") and is_expr(n.child("child"), "WindowExpression"):
        return _small_decimal_sum(t, n), _spec(n.child("child"))
    if not is_expr(n, "WindowExpression"):
        raise t.unsupported(n, "expression over a window function (Spark computes avg of a "
                            "decimal of precision <= 11 as a double average cast to decimal)")
    out = _window_expression(t, n)
    t._check_type(n, out)
    return out, _spec(n)


def _spec(n: TreeNode) -> Spec:
    spec = n.child("windowSpec")
    return ([spec.children[i] for i in spec.fields.get("partitionSpec", [])],
            [spec.children[i] for i in spec.fields.get("orderSpec", [])])


def _window_expression(t: ExprTranslator, n: TreeNode) -> win.WindowExpr:
    fn_node = n.child("windowFunction")
    kind = short_class(fn_node)
    if kind == "aggregate.AggregateExpression":
        fn = t.aggregate_function(fn_node)
        return win.WindowExpr(fn, _frame(t, n.child("windowSpec").child("frameSpecification")))
    if kind in _RANKING:
        return win.WindowExpr(_RANKING[kind]())
    if kind == "NTile":
        return win.WindowExpr(win.NTile(t._int_literal(fn_node, "buckets")))
    if kind in ("Lag", "Lead"):
        return win.WindowExpr(_offset_value(t, fn_node))
    raise t.unsupported(fn_node, "window function has no IR counterpart")


def _small_decimal_sum(t: ExprTranslator, n: TreeNode) -> win.WindowExpr:
    """``MakeDecimal(sum(UnscaledValue(x)) OVER w, p, s)`` -> ``sum(x) OVER w``."""
    we = n.child("child")
    agg = we.child("windowFunction")
    fn = agg.child("aggregateFunction") if is_expr(agg, "aggregate.AggregateExpression") \
        else agg
    if not (is_expr(fn, "aggregate.Sum") and is_expr(fn.child("child"), "UnscaledValue")):
        raise t.unsupported(n, f"MakeDecimal over {short_class(fn)}")
    if object_name(agg.fields.get("mode")) != "Complete" or agg.fields.get("isDistinct") \
            or "filter" in agg.fields:
        raise t.unsupported(agg, "aggregate mode, DISTINCT or FILTER")
    if n.fields.get("nullOnOverflow") is not False:
        raise t.unsupported(n, "MakeDecimal returning null on overflow (non-ANSI)")
    t._require_ansi(fn)
    out = ir.Sum(t.translate(fn.child("child").child("child")))
    dtype = arrow_type(f"decimal({n.fields['precision']},{n.fields['scale']})")
    if out.dtype != dtype:
        raise InternalError(f"translator bug: sum of a small decimal at {n.path} is {dtype} in "
                            f"Spark, {out.dtype} in the IR")
    return win.WindowExpr(out, _frame(t, we.child("windowSpec").child("frameSpecification")))


def _offset_value(t: ExprTranslator, n: TreeNode) -> win.OffsetValue:
    if n.fields.get("ignoreNulls") is not False:
        raise t.unsupported(n, "IGNORE NULLS")
    # Lag(input, inputOffset, default) looks inputOffset rows back, Lead(input, offset, ...)
    # offset rows ahead; the IR's offset is signed.
    steps = t._int_literal(n, "inputOffset" if n.name == "Lag" else "offset")
    default: Expr | None = t.translate(n.child("default"))
    if isinstance(default, ir.Literal) and default.value is None:
        default = None
    return win.OffsetValue(t.translate(n.child("input")), -steps if n.name == "Lag" else steps,
                           default)


def _frame(t: ExprTranslator, n: TreeNode) -> win.WindowFrame:
    if not is_expr(n, "SpecifiedWindowFrame"):
        raise t.unsupported(n, "window frame not specified by the analyzer")
    kind = _FRAME_TYPES.get(object_name(n.fields.get("frameType")) or "")
    if kind is None:
        raise t.unsupported(n, f"frame type {n.fields.get('frameType')}")
    return win.WindowFrame(kind, _bound(t, n.child("lower"), kind),
                           _bound(t, n.child("upper"), kind))


def _bound(t: ExprTranslator, n: TreeNode, kind: win.FrameKind) -> int | None:
    """A frame boundary as the IR's signed offset (``None``: unbounded)."""
    if n.name in ("UnboundedPreceding$", "UnboundedFollowing$"):
        return None
    if n.name == "CurrentRow$":
        return 0
    dtype = n.fields.get("dataType")
    if n.name != "Literal" or dtype not in _INTEGRAL:
        raise t.unsupported(n, f"{kind.value} frame boundary {n.name} of type {dtype} (only "
                            "integer offsets run natively, for RANGE over an integral order key)")
    value = t.translate(n)
    if not isinstance(value, ir.Literal) or value.value is None:
        raise t.unsupported(n, "null frame boundary")
    return value.value
