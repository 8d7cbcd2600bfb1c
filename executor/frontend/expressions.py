"""Spark Catalyst expressions (parsed plan JSON + annotations) -> IR expressions.

One rule per Catalyst class, in a table. Each rule translates exactly or raises
:class:`UnsupportedError` naming the class and why (the query then falls back to Spark). Result
types are derived by the IR and checked against the types Spark resolved (the annotations): a
difference is a translator bug (:class:`InternalError`), never a fallback.

Columns are ``ColumnRef(f"{name}#{exprId}")``: Spark's names are not unique within a plan
(Q21 reads ``lineitem`` three times), exprIds are.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pyarrow as pa

from executor import ir
from executor.errors import InternalError, UnsupportedError
from executor.frontend.annotations import PlanFacts
from executor.frontend.plan_json import TreeNode, expr_id, object_name, walk
from executor.frontend.types import arrow_type, literal_value
from executor.ir.expressions import Expr
from executor.ir.relations import Relation

EXPR_PKG = "org.apache.spark.sql.catalyst.expressions."

AggregateSlot = Callable[[TreeNode], Expr]
SubqueryPlan = Callable[[TreeNode], Relation]


def column_name(name: str, exprid: int) -> str:
    """The IR column name of the Spark attribute ``name#exprid``."""
    return f"{name}#{exprid}"


def spark_name(column: str) -> str:
    """Spark's name of an IR column named by :func:`column_name`."""
    return column.rsplit("#", 1)[0]


def short_class(node: TreeNode) -> str:
    """``Add``, ``aggregate.Sum``: the class relative to Catalyst's expressions package."""
    return node.cls[len(EXPR_PKG):] if node.cls.startswith(EXPR_PKG) else node.cls


def is_expr(node: TreeNode, *names: str) -> bool:
    return short_class(node) in names


class ExprTranslator:
    """Translates the expression trees of one plan (``facts`` are that plan's annotations)."""

    def __init__(self, facts: PlanFacts, subquery_plan: SubqueryPlan | None = None) -> None:
        self.facts = facts
        self._aggregate_slot: AggregateSlot | None = None
        # Translates a subquery's plan (the plan translator owning this one supplies it).
        self.subquery_plan = subquery_plan

    # -- entry points ----------------------------------------------------------------------

    def translate(self, node: TreeNode) -> Expr:
        rule = _RULES.get(short_class(node))
        if rule is None:
            raise self.unsupported(node, "no translation rule")
        out = rule(self, node)
        self._check_type(node, out)
        return out

    def over_aggregates(self, node: TreeNode, slot: AggregateSlot) -> Expr:
        """Translate an expression of an Aggregate's output list: each ``AggregateExpression``
        inside becomes what ``slot`` returns (a reference to the aggregate's column)."""
        saved, self._aggregate_slot = self._aggregate_slot, slot
        try:
            return self.translate(node)
        finally:
            self._aggregate_slot = saved

    def aggregate_function(self, node: TreeNode) -> Expr:
        """An ``AggregateExpression`` -> the IR aggregate function it computes."""
        if not is_expr(node, "aggregate.AggregateExpression"):
            raise InternalError(f"{node.path}: expected AggregateExpression, got {node.name}")
        mode = object_name(node.fields.get("mode"))
        if mode != "Complete":
            raise self.unsupported(node, f"aggregate mode {mode}")
        if "filter" in node.fields:
            raise self.unsupported(node, "aggregate FILTER (WHERE ...)")
        distinct = node.fields.get("isDistinct") is True
        fn = node.child("aggregateFunction")
        kind = short_class(fn)
        if kind == "aggregate.Count":
            args = [fn.children[i] for i in fn.fields.get("children", [])]
            ir_args = tuple(self.translate(a) for a in args)
            if not distinct and all(isinstance(a, ir.Literal) and a.value is not None
                                    for a in ir_args):
                out: Expr = ir.Count()  # count(1) = count(*)
            else:
                out = ir.Count(ir_args, distinct=distinct)
        elif kind in ("aggregate.Min", "aggregate.Max"):
            # min/max of the distinct values are the min/max of all values.
            child = self.translate(fn.child("child"))
            out = ir.Min(child) if kind == "aggregate.Min" else ir.Max(child)
        elif kind in ("aggregate.Sum", "aggregate.Average"):
            if distinct:
                raise self.unsupported(fn, "DISTINCT has no IR counterpart for sum/avg")
            self._require_ansi(fn)
            child = self.translate(fn.child("child"))
            out = ir.Sum(child) if kind == "aggregate.Sum" else ir.Avg(child)
        else:
            raise self.unsupported(fn, "aggregate function has no IR counterpart")
        self._check_type(fn, out)
        return out

    # -- helpers ---------------------------------------------------------------------------

    def unsupported(self, node: TreeNode, detail: str) -> UnsupportedError:
        where = f" at {node.path}" + (f" ({self.facts.query})" if self.facts.query else "")
        return UnsupportedError(f"expression {node.name}", detail + where)

    def _check_type(self, node: TreeNode, out: Expr) -> None:
        note = self.facts.node(node.path)
        if "dataType" not in note or isinstance(out, ir.Alias):
            return
        try:
            expected = arrow_type(note["dataType"])
        except UnsupportedError:
            return  # the IR expression was built, so its own type is supported
        if out.dtype != expected:
            raise InternalError(f"translator bug: {node.name} at {node.path} is "
                                f"{note['dataType']} in Spark, {out.dtype} in the IR")

    def _require_ansi(self, node: TreeNode, decimal_result: bool = False) -> None:
        """The IR implements ANSI evaluation (Spark 4's default) with precision loss allowed;
        the JSON drops the mode (``evalContext``/``evalMode`` are null), the annotations
        carry it."""
        note = self.facts.node(node.path)
        mode = note.get("evalMode")
        if mode is None:
            raise self.unsupported(node, "evaluation mode unknown (no annotation)")
        if mode != "ANSI":
            raise self.unsupported(node, f"evaluation mode {mode} (the IR implements ANSI)")
        if decimal_result and note.get("allowDecimalPrecisionLoss") is not True:
            raise self.unsupported(node, "decimal arithmetic without allowPrecisionLoss=true")

    def _string_literal(self, node: TreeNode, key: str) -> str:
        lit = self.translate(node.child(key))
        if not (isinstance(lit, ir.Literal) and isinstance(lit.value, str)):
            raise self.unsupported(node, f"{key} is not a non-null string literal")
        return lit.value

    def _int_literal(self, node: TreeNode, key: str) -> int:
        lit = self.translate(node.child(key))
        if not (isinstance(lit, ir.Literal) and pa.types.is_integer(lit.dtype)
                and lit.value is not None):
            raise self.unsupported(node, f"{key} is not a non-null integer literal")
        return lit.value


# -- rules ----------------------------------------------------------------------------------

Rule = Callable[[ExprTranslator, TreeNode], Expr]
_RULES: dict[str, Rule] = {}


def rule(*names: str):
    def register(fn: Rule) -> Rule:
        for n in names:
            _RULES[n] = fn
        return fn
    return register


@rule("AttributeReference")
def _attribute(t: ExprTranslator, n: TreeNode) -> Expr:
    f = n.fields
    return ir.ColumnRef(column_name(f["name"], expr_id(f["exprId"])), arrow_type(f["dataType"]),
                        bool(f.get("nullable", True)))


@rule("Literal")
def _literal(t: ExprTranslator, n: TreeNode) -> Expr:
    dtype = arrow_type(n.fields["dataType"])
    return ir.Literal(literal_value(n.fields.get("value"), dtype), dtype)


@rule("Alias")
def _alias(t: ExprTranslator, n: TreeNode) -> Expr:
    name = column_name(n.fields["name"], expr_id(n.fields["exprId"]))
    return ir.Alias(t.translate(n.child("child")), name)


_ARITHMETIC = {"Add": ir.Add, "Subtract": ir.Subtract, "Multiply": ir.Multiply,
               "Divide": ir.Divide, "Remainder": ir.Remainder, "IntegralDivide": ir.IntegralDivide}


@rule(*_ARITHMETIC)
def _arithmetic(t: ExprTranslator, n: TreeNode) -> Expr:
    left, right = t.translate(n.child("left")), t.translate(n.child("right"))
    t._require_ansi(n, decimal_result=pa.types.is_decimal(left.dtype))
    return _ARITHMETIC[n.name](left, right, ansi=True)


@rule("UnaryMinus")
def _negate(t: ExprTranslator, n: TreeNode) -> Expr:
    if n.fields.get("failOnError") is not True:
        raise t.unsupported(n, "non-ANSI negation")
    return ir.Negate(t.translate(n.child("child")), ansi=True)


_COMPARISONS = {"EqualTo": ir.EqualTo, "LessThan": ir.LessThan,
                "LessThanOrEqual": ir.LessThanOrEqual, "GreaterThan": ir.GreaterThan,
                "GreaterThanOrEqual": ir.GreaterThanOrEqual, "EqualNullSafe": ir.EqualNullSafe}


@rule(*_COMPARISONS)
def _comparison(t: ExprTranslator, n: TreeNode) -> Expr:
    return _COMPARISONS[n.name](t.translate(n.child("left")), t.translate(n.child("right")))


@rule("And", "Or")
def _logic(t: ExprTranslator, n: TreeNode) -> Expr:
    op = ir.And if n.name == "And" else ir.Or
    return op(t.translate(n.child("left")), t.translate(n.child("right")))


_UNARY = {"Not": ir.Not, "IsNull": ir.IsNull, "IsNotNull": ir.IsNotNull, "IsNaN": ir.IsNaN,
          "NormalizeNaNAndZero": ir.NormalizeNaNAndZero}


@rule(*_UNARY)
def _unary(t: ExprTranslator, n: TreeNode) -> Expr:
    return _UNARY[n.name](t.translate(n.child("child")))


@rule("KnownFloatingPointNormalized")
def _known_normalized(t: ExprTranslator, n: TreeNode) -> Expr:
    return t.translate(n.child("child"))  # a marker for the optimizer: no computation


@rule("In")
def _in(t: ExprTranslator, n: TreeNode) -> Expr:
    value = t.translate(n.child("value"))
    items = [t.translate(n.children[i]) for i in n.fields.get("list", [])]
    if not items or not all(isinstance(v, ir.Literal) for v in items):
        raise t.unsupported(n, "IN list with non-literal items")
    return ir.In(value, tuple(items))


@rule("CaseWhen")
def _case_when(t: ExprTranslator, n: TreeNode) -> Expr:
    # Translated from the children (pairs, then the else value): the branches/elseValue fields
    # repeat them inline (PLANS.md 2.3).
    kids = [t.translate(c) for c in n.children]
    otherwise = kids.pop() if len(kids) % 2 else None
    branches = tuple(ir.When(kids[i], kids[i + 1]) for i in range(0, len(kids), 2))
    return ir.CaseWhen(branches, otherwise)


@rule("If")
def _if(t: ExprTranslator, n: TreeNode) -> Expr:
    return ir.If(t.translate(n.child("predicate")), t.translate(n.child("trueValue")),
                 t.translate(n.child("falseValue")))


@rule("Coalesce")
def _coalesce(t: ExprTranslator, n: TreeNode) -> Expr:
    return ir.Coalesce(tuple(t.translate(c) for c in n.children))


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@rule("Cast")
def _cast(t: ExprTranslator, n: TreeNode) -> Expr:
    to = arrow_type(n.fields["dataType"])
    child = t.translate(n.child("child"))
    t._require_ansi(n)
    if pa.types.is_timestamp(to) or pa.types.is_timestamp(child.dtype):
        raise t.unsupported(n, "casts to/from timestamps depend on the session time zone")
    if pa.types.is_date32(to) and isinstance(child, ir.Literal) and pa.types.is_string(
            child.dtype):
        text = child.value
        if text is None:
            return ir.Literal(None, to)
        if _DATE.fullmatch(text):  # Spark accepts more spellings; fold only the plain one
            try:
                return ir.Literal(dt.date.fromisoformat(text), to)
            except ValueError:
                pass
        raise t.unsupported(n, f"string {text!r} -> date cast")
    return ir.Cast(child, to, ansi=True)


@rule("StartsWith", "EndsWith", "Contains")
def _string_match(t: ExprTranslator, n: TreeNode) -> Expr:
    child = t.translate(n.child("left"))
    text = t._string_literal(n, "right")
    return {"StartsWith": ir.StartsWith, "EndsWith": ir.EndsWith,
            "Contains": ir.Contains}[n.name](child, text)


@rule("Like")
def _like(t: ExprTranslator, n: TreeNode) -> Expr:
    escape = t.facts.node(n.path).get("escapeChar")
    if escape != "\\":
        raise t.unsupported(n, f"LIKE escape character {escape!r} (the IR implements '\\\\')")
    return ir.Like(t.translate(n.child("left")), t._string_literal(n, "right"))


@rule("Substring")
def _substring(t: ExprTranslator, n: TreeNode) -> Expr:
    child = t.translate(n.child("str"))
    if not pa.types.is_string(child.dtype):
        raise t.unsupported(n, f"substring of {child.dtype}")
    return ir.Substring(child, t._int_literal(n, "pos"), t._int_literal(n, "len"))


_DATE_PARTS = {"Year": "year", "Month": "month", "DayOfMonth": "day"}


@rule(*_DATE_PARTS)
def _date_part(t: ExprTranslator, n: TreeNode) -> Expr:
    return ir.ExtractDatePart(t.translate(n.child("child")), _DATE_PARTS[n.name])


@rule("aggregate.AggregateExpression")
def _aggregate(t: ExprTranslator, n: TreeNode) -> Expr:
    if t._aggregate_slot is None:
        raise InternalError(f"{n.path}: aggregate outside an Aggregate's output list")
    return t._aggregate_slot(n)


@rule("ScalarSubquery")
def _scalar_subquery(t: ExprTranslator, n: TreeNode) -> Expr:
    # Correlation shows as outer attributes / a join condition on the node, or as
    # OuterReference expressions inside its plan; the IR computes a subquery once per query.
    outer = n.fields.get("outerAttrs") or []
    join_cond = n.fields.get("joinCond") or []
    plan = n.fields.get("plan")
    if outer or join_cond or (isinstance(plan, TreeNode) and any(
            x.name == "OuterReference" for x in walk(plan))):
        raise t.unsupported(n, "correlated scalar subquery (it references columns of the "
                            "enclosing query; only uncorrelated ones run natively)")
    if not isinstance(plan, TreeNode):
        raise t.unsupported(n, "subquery plan missing from the JSON")
    if t.subquery_plan is None:
        raise InternalError(f"{n.path}: no plan translator for subqueries")
    relation = t.subquery_plan(plan)
    if len(relation.schema) != 1:
        raise InternalError(f"{n.path}: scalar subquery plan has {len(relation.schema)} "
                            "columns")
    # Always nullable (no rows gives null); the type is the plan's column's, which
    # _check_type compares with Spark's.
    return ir.ScalarSubquery(relation, relation.schema.fields[0].dtype)
