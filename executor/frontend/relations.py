"""Spark logical plan nodes (parsed plan JSON + annotations) -> IR relations.

One rule per plan class. Every column is named ``name#exprId`` (see
:func:`~executor.frontend.expressions.column_name`); :func:`translate_plan` renames the root's
columns back to Spark's names. Anything without an exact IR counterpart raises
:class:`UnsupportedError`.
"""

from __future__ import annotations

from collections.abc import Callable

from executor import ir
from executor.errors import InternalError, UnsupportedError
from executor.frontend.annotations import PlanFacts
from executor.frontend.expressions import (
    ExprTranslator,
    column_name,
    is_expr,
    spark_name,
)
from executor.frontend.plan_json import TreeNode, expr_id, object_name
from executor.frontend.types import arrow_type
from executor.frontend.windows import window_function
from executor.ir.expressions import Expr
from executor.ir.relations import Relation

PLAN_PKG = "org.apache.spark.sql.catalyst.plans.logical."
LOGICAL_RELATION = "org.apache.spark.sql.execution.datasources.LogicalRelation"

_JOIN_TYPES = {"Inner": ir.JoinType.INNER, "Cross": ir.JoinType.INNER,
               "LeftOuter": ir.JoinType.LEFT, "RightOuter": ir.JoinType.RIGHT,
               "FullOuter": ir.JoinType.FULL, "LeftSemi": ir.JoinType.SEMI,
               "LeftAnti": ir.JoinType.ANTI}


def translate_plan(root: TreeNode, facts: PlanFacts) -> Relation:
    """The IR of the optimized plan ``root``, its output columns named as Spark names them."""
    return PlanTranslator(facts).translate(root)


class PlanTranslator:
    def __init__(self, facts: PlanFacts) -> None:
        self.facts = facts
        self.exprs = ExprTranslator(facts, subquery_plan=self.relation)
        self.used: set[int] = set()

    def translate(self, root: TreeNode) -> Relation:
        self.used = referenced_ids(root) | set(self.facts.output_ids)
        body = self.relation(root)
        names = [spark_name(n) for n in body.schema.names]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise UnsupportedError("plan", f"duplicate output column names {dupes}")
        out = ir.Project(body, tuple(
            ir.Alias(ir.ColumnRef(f.name, f.dtype, f.nullable), spark_name(f.name))
            for f in body.schema))
        self._check_output(out)
        return out

    def _check_output(self, out: Relation) -> None:
        expected = self.facts.output_schema
        if not expected:
            return
        want = [(f["name"], arrow_type(f["type"])) for f in expected["fields"]]
        got = [(f.name, f.dtype) for f in out.schema]
        if want != got:
            raise InternalError(f"translator bug: result schema {got} differs from Spark's "
                                f"{want}")

    def relation(self, node: TreeNode) -> Relation:
        cls = node.cls
        name = cls[len(PLAN_PKG):] if cls.startswith(PLAN_PKG) else cls
        rule = _RULES.get(name)
        if rule is None:
            raise self.unsupported(node, "no translation rule")
        return rule(self, node)

    def unsupported(self, node: TreeNode, detail: str) -> UnsupportedError:
        where = f" at {node.path}" + (f" ({self.facts.query})" if self.facts.query else "")
        return UnsupportedError(f"plan node {node.name}", detail + where)

    def expr(self, node: TreeNode) -> Expr:
        return self.exprs.translate(node)


def referenced_ids(root: TreeNode) -> set[int]:
    """exprIds of every attribute referenced anywhere above the relations (subquery plans
    included): the columns scans must read."""
    found: set[int] = set()

    def visit(value) -> None:
        if isinstance(value, TreeNode):
            if value.cls == LOGICAL_RELATION:
                return
            if value.name == "AttributeReference":
                found.add(expr_id(value.fields["exprId"]))
            for v in value.fields.values():
                visit(v)
            for c in value.children:
                visit(c)
        elif isinstance(value, list):
            for v in value:
                visit(v)
        elif isinstance(value, dict):
            for v in value.values():
                visit(v)

    visit(root)
    return found


# -- rules ----------------------------------------------------------------------------------

Rule = Callable[[PlanTranslator, TreeNode], Relation]
_RULES: dict[str, Rule] = {}


def rule(*names: str):
    def register(fn: Rule) -> Rule:
        for n in names:
            _RULES[n] = fn
        return fn
    return register


@rule(LOGICAL_RELATION)
def _relation(t: PlanTranslator, n: TreeNode) -> Relation:
    attrs = n.fields.get("output", [])
    ids = [expr_id(a.fields["exprId"]) for a in attrs]
    info = t.facts.relation(ids)
    if info is None:
        raise t.unsupported(n, "no relation facts (source, paths) for this scan")
    if not str(info.get("relation_class", "")).endswith(".HadoopFsRelation"):
        raise t.unsupported(n, f"source {info.get('relation_class')} is not a file source")
    if info.get("format") != "parquet":
        raise t.unsupported(n, f"file format {info.get('format')!r} (only parquet)")
    if info.get("partition_schema", {}).get("fields"):
        raise t.unsupported(n, "partitioned tables are not translated yet")
    if info.get("options"):
        raise t.unsupported(n, f"reader options {sorted(info['options'])}")
    paths = info.get("root_paths", [])
    if len(paths) != 1:
        raise t.unsupported(n, f"{len(paths)} root paths (one is supported)")
    location = table_location(paths[0], n, t)
    fields, renames = [], []
    for a, i in zip(attrs, ids, strict=True):
        fname, dtype = a.fields["name"], arrow_type(a.fields["dataType"])
        fields.append(ir.Field(fname, dtype, True))
        if i in t.used:
            renames.append(ir.Alias(ir.ColumnRef(fname, dtype, True), column_name(fname, i)))
    data_schema = info.get("data_schema", {}).get("fields")
    if data_schema is not None:
        if [(f["name"], f["type"]) for f in data_schema] != [
                (a.fields["name"], a.fields["dataType"]) for a in attrs]:
            raise InternalError(f"{n.path}: relation output differs from its data schema")
    if not renames:  # e.g. count(*): read one column for the row count
        a = attrs[0]
        renames.append(ir.Alias(ir.ColumnRef(fields[0].name, fields[0].dtype, True),
                                column_name(a.fields["name"], ids[0])))
    columns = tuple(r.child.name for r in renames)
    scan = ir.Scan(location, ir.Schema(tuple(fields)), columns)
    return ir.Project(scan, tuple(renames))


def table_location(path: str, n: TreeNode, t: PlanTranslator) -> str:
    """A Hadoop path as a ``Scan.table``: a local path or an ``s3://`` URI."""
    if path.startswith("file:"):
        rest = path[len("file:"):]
        while rest.startswith("//"):
            rest = rest[1:]
        return rest
    for scheme in ("s3://", "s3a://", "s3n://"):
        if path.startswith(scheme):
            return "s3://" + path[len(scheme):]
    if "://" in path or path.startswith("<"):
        raise t.unsupported(n, f"table location {path!r}")
    return path


@rule("Project")
def _project(t: PlanTranslator, n: TreeNode) -> Relation:
    child = t.relation(n.child("child"))
    return ir.Project(child, tuple(t.expr(e) for e in n.fields["projectList"]))


@rule("Filter")
def _filter(t: PlanTranslator, n: TreeNode) -> Relation:
    child = t.relation(n.child("child"))
    return ir.Filter(child, t.expr(n.fields["condition"]))


def _conjuncts(node: TreeNode) -> list[TreeNode]:
    if is_expr(node, "And"):
        return _conjuncts(node.child("left")) + _conjuncts(node.child("right"))
    return [node]


def _refs_within(e: Expr, schema: ir.Schema) -> bool:
    refs = e.references()
    return bool(refs) and all(r.name in schema.names for r in refs)


@rule("Join")
def _join(t: PlanTranslator, n: TreeNode) -> Relation:
    kind = object_name(n.fields.get("joinType"))
    if kind not in _JOIN_TYPES:
        raise t.unsupported(n, f"join type {kind or n.fields.get('joinType')}")
    left, right = t.relation(n.child("left")), t.relation(n.child("right"))
    left_keys: list[Expr] = []
    right_keys: list[Expr] = []
    residual: list[Expr] = []
    condition = n.fields.get("condition")
    # ExtractEquiJoinKeys: top-level `a = b` conjuncts with a over one side and b over the
    # other are hash keys (null never matches, as in EqualTo); the rest is a residual filter.
    for c in _conjuncts(condition) if condition is not None else []:
        e = t.expr(c)
        if isinstance(e, ir.EqualTo) and e.left.dtype == e.right.dtype:
            if _refs_within(e.left, left.schema) and _refs_within(e.right, right.schema):
                left_keys.append(e.left)
                right_keys.append(e.right)
                continue
            if _refs_within(e.right, left.schema) and _refs_within(e.left, right.schema):
                left_keys.append(e.right)
                right_keys.append(e.left)
                continue
        residual.append(e)
    cond = None
    for e in residual:
        cond = e if cond is None else ir.And(cond, e)
    return ir.Join(left, right, _JOIN_TYPES[kind], tuple(left_keys), tuple(right_keys), cond)


@rule("Aggregate")
def _aggregate(t: PlanTranslator, n: TreeNode) -> Relation:
    child = t.relation(n.child("child"))
    keys = []
    for g in n.fields["groupingExpressions"]:
        if g.name != "AttributeReference":
            raise t.unsupported(n, f"grouping by an expression ({g.name})")
        keys.append(t.expr(g))
    key_names = {k.name for k in keys}
    aggregates: dict[str, ir.Alias] = {}

    def slot(agg: TreeNode) -> Expr:
        name = f"_agg#{expr_id(agg.fields['resultId'])}"
        if name not in aggregates:
            aggregates[name] = ir.Alias(t.exprs.aggregate_function(agg), name)
        fn = aggregates[name].child
        return ir.ColumnRef(name, fn.dtype, fn.nullable)

    outputs: list[Expr] = []
    for e in n.fields["aggregateExpressions"]:
        if e.name == "AttributeReference":
            ref = t.expr(e)
            if ref.name not in key_names:
                raise t.unsupported(n, f"output {ref.name} is neither a key nor an aggregate")
            outputs.append(ref)
        elif e.name == "Alias":
            name = column_name(e.fields["name"], expr_id(e.fields["exprId"]))
            inner = e.child("child")
            if is_expr(inner, "aggregate.AggregateExpression"):
                fn = t.exprs.aggregate_function(inner)
                aggregates[name] = ir.Alias(fn, name)
                outputs.append(ir.ColumnRef(name, fn.dtype, fn.nullable))
            else:  # an expression over aggregates (or keys): computed in a Project above
                outputs.append(ir.Alias(t.exprs.over_aggregates(inner, slot), name))
        else:
            raise t.unsupported(n, f"aggregate output {e.name}")
    agg = ir.Aggregate(child, tuple(keys), tuple(aggregates.values()))
    if all(isinstance(o, ir.ColumnRef) for o in outputs) and tuple(
            o.name for o in outputs) == agg.schema.names:
        return agg
    return ir.Project(agg, tuple(outputs))


def _sort_keys(t: PlanTranslator, orders: list[TreeNode]) -> tuple[ir.SortKey, ...]:
    keys = []
    for o in orders:
        direction = object_name(o.fields.get("direction"))
        nulls = object_name(o.fields.get("nullOrdering"))
        if direction not in ("Ascending", "Descending") or nulls not in ("NullsFirst",
                                                                         "NullsLast"):
            raise t.unsupported(o, f"sort order {direction}/{nulls}")
        keys.append(ir.SortKey(t.expr(o.child("child")), direction == "Ascending",
                               nulls == "NullsFirst"))
    return tuple(keys)


@rule("Sort")
def _sort(t: PlanTranslator, n: TreeNode) -> Relation:
    # global=false (SORT BY) orders within partitions; a total order satisfies that too.
    return ir.Sort(t.relation(n.child("child")), _sort_keys(t, n.fields["order"]))


def _limit_value(t: PlanTranslator, n: TreeNode) -> int:
    lit = t.expr(n.fields["limitExpr"])
    if not (isinstance(lit, ir.Literal) and isinstance(lit.value, int) and lit.value >= 0):
        raise t.unsupported(n, "limit is not a non-negative integer literal")
    return lit.value


@rule("GlobalLimit")
def _global_limit(t: PlanTranslator, n: TreeNode) -> Relation:
    limit = _limit_value(t, n)
    child = n.child("child")
    if child.name == "LocalLimit" and _limit_value(t, child) >= limit:
        child = child.child("child")  # the per-partition pre-limit changes nothing
    if child.name == "Sort" and child.fields.get("global") is True:
        return ir.TopN(t.relation(child.child("child")), _sort_keys(t, child.fields["order"]),
                       limit)
    return ir.Limit(t.relation(child), limit)


@rule("Union")
def _union(t: PlanTranslator, n: TreeNode) -> Relation:
    if n.fields.get("byName") or n.fields.get("allowMissingCol"):
        raise t.unsupported(n, "unresolved by-name union")
    return ir.Union(tuple(t.relation(c) for c in n.children))


@rule("OneRowRelation")
def _one_row(t: PlanTranslator, n: TreeNode) -> Relation:
    # SELECT without FROM: one row, no columns.
    return ir.Values(ir.Schema(()), ((),))


@rule("Window")
def _window(t: PlanTranslator, n: TreeNode) -> Relation:
    # Spark's Window appends one column per window expression, all over one partition and
    # order spec (each expression's own spec repeats it; its frame may differ).
    child = t.relation(n.child("child"))
    partition_by = tuple(t.expr(p) for p in n.fields.get("partitionSpec", []))
    order_by = _sort_keys(t, n.fields.get("orderSpec", []))
    functions = []
    for e in n.fields["windowExpressions"]:
        if e.name != "Alias":
            raise t.unsupported(n, f"window output {e.name}")
        fn, spec = window_function(t.exprs, e.child("child"))
        parts, orders = spec
        if tuple(t.expr(p) for p in parts) != partition_by or _sort_keys(t, orders) != order_by:
            raise t.unsupported(n, f"window expression at {e.path} has a spec other than its "
                                "Window's")
        functions.append(ir.Alias(fn, column_name(e.fields["name"], expr_id(e.fields["exprId"]))))
    return ir.Window(child, tuple(functions), partition_by, order_by)
