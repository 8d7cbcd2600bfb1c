"""``explain()``: a readable, indented tree of a plan, one relation per line."""

from __future__ import annotations

import datetime as dt

from executor.ir import aggregates as agg
from executor.ir import expressions as ex
from executor.ir import functions as fn
from executor.ir import relations as rel
from executor.ir import subqueries as sub
from executor.ir import windows as win
from executor.ir.node import Node

_OPS = {
    ex.Add: "+", ex.Subtract: "-", ex.Multiply: "*", ex.Divide: "/", ex.IntegralDivide: "div",
    ex.Remainder: "%", ex.EqualTo: "=", ex.NotEqualTo: "<>", ex.LessThan: "<",
    ex.LessThanOrEqual: "<=", ex.GreaterThan: ">", ex.GreaterThanOrEqual: ">=",
    ex.EqualNullSafe: "<=>", ex.And: "AND", ex.Or: "OR",
}


def expr_str(e: Node) -> str:
    """SQL-like text of an expression."""
    if isinstance(e, ex.ColumnRef):
        return e.name
    if isinstance(e, ex.BoundRef):
        return f"#{e.index}"
    if isinstance(e, ex.Literal):
        return _literal(e)
    if isinstance(e, ex.Alias):
        return f"{expr_str(e.child)} AS {e.name}"
    if type(e) in _OPS:
        return f"({expr_str(e.left)} {_OPS[type(e)]} {expr_str(e.right)})"  # type: ignore
    if isinstance(e, ex.Cast):
        return f"{'' if e.ansi else 'try_'}cast({expr_str(e.child)} AS {e.to})"
    if isinstance(e, ex.Not):
        return f"NOT {expr_str(e.child)}"
    if isinstance(e, ex.In):
        return f"{expr_str(e.child)} IN ({', '.join(expr_str(v) for v in e.values)})"
    if isinstance(e, ex.CaseWhen):
        parts = [f"WHEN {expr_str(b.condition)} THEN {expr_str(b.value)}" for b in e.branches]
        if e.otherwise is not None:
            parts.append(f"ELSE {expr_str(e.otherwise)}")
        return f"CASE {' '.join(parts)} END"
    if isinstance(e, fn.Like):
        return f"{expr_str(e.child)} LIKE {e.pattern!r}"
    if isinstance(e, agg.Count):
        inner = ", ".join(expr_str(a) for a in e.args) or "*"
        return f"count({'DISTINCT ' if e.distinct else ''}{inner})"
    if isinstance(e, sub.ScalarSubquery):
        return f"scalar-subquery({e.dtype})"  # its plan is listed under the relation
    if isinstance(e, win.OffsetValue):
        default = f", {expr_str(e.default)}" if e.default is not None else ""
        name = "lag" if e.offset < 0 else "lead"
        return f"{name}({expr_str(e.input)}, {abs(e.offset)}{default})"
    if isinstance(e, win.WindowExpr):
        if not e.is_aggregate:  # computed from the window's order alone: no frame
            return expr_str(e.function)
        f = e.frame
        return f"{expr_str(e.function)} OVER ({f.kind.value} {_bound(f.lower, 'preceding')}"\
            f"..{_bound(f.upper, 'following')})"
    if isinstance(e, ex.Expr):
        args = [expr_str(c) for c in e.children]
        args += [repr(v) for k, v in e.field_values().items()
                 if not isinstance(v, Node | tuple) and k not in ("ansi",)]
        return f"{type(e).__name__.lower()}({', '.join(args)})"
    return repr(e)


def _bound(offset: int | None, unbounded: str) -> str:
    return f"unbounded {unbounded}" if offset is None else f"{offset:+d}" if offset else "current"


def _literal(e: ex.Literal) -> str:
    v = e.value
    if v is None:
        return f"null::{e.type}"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, dt.date):
        return f"DATE '{v.isoformat()}'"
    if isinstance(e.type, type(e.type)) and str(e.type).startswith("decimal"):
        return f"{v}BD"
    return str(v)


def _sort_keys(keys: tuple[rel.SortKey, ...]) -> str:
    return ", ".join(
        f"{expr_str(k.expr)} {'ASC' if k.ascending else 'DESC'} "
        f"NULLS {'FIRST' if k.nulls_first else 'LAST'}" for k in keys)


def _exprs(es) -> str:
    return ", ".join(expr_str(e) for e in es)


def describe(r: rel.Relation) -> str:
    """One line for one relation (without its inputs)."""
    name = type(r).__name__
    if isinstance(r, rel.Scan):
        flt = f" filter={expr_str(r.filter)}" if r.filter is not None else ""
        return f"Scan {r.table} [{', '.join(r.columns)}]{flt}"
    if isinstance(r, rel.Values):
        return f"Values {len(r.rows)} rows [{', '.join(r.schema.names)}]"
    if isinstance(r, rel.Filter):
        return f"Filter {expr_str(r.condition)}"
    if isinstance(r, rel.KeyFilter):
        return f"KeyFilter [{_exprs(r.keys)}] in [{_exprs(r.source_keys)}] of " \
            f"{describe(r.source)}"
    if isinstance(r, rel.Project):
        return f"Project [{_exprs(r.exprs)}]"
    if isinstance(r, rel.Aggregate):
        return f"Aggregate[{r.mode.value}] keys=[{_exprs(r.keys)}] aggs=[{_exprs(r.aggregates)}]"
    if isinstance(r, rel.Join):
        keys = ", ".join(f"{expr_str(a)} = {expr_str(b)}"
                         for a, b in zip(r.left_keys, r.right_keys, strict=True))
        cond = f" condition={expr_str(r.condition)}" if r.condition is not None else ""
        return f"Join[{r.how.value}] on [{keys}]{cond}"
    if isinstance(r, rel.Sort):
        return f"Sort [{_sort_keys(r.keys)}]"
    if isinstance(r, rel.TopN):
        return f"TopN {r.limit} offset {r.offset} [{_sort_keys(r.keys)}]"
    if isinstance(r, rel.Limit):
        return f"Limit {r.limit} offset {r.offset}"
    if isinstance(r, rel.Expand):
        return f"Expand {len(r.projections)} projections -> [{', '.join(r.names)}]"
    if isinstance(r, rel.Window):
        return (f"Window [{_exprs(r.functions)}] partition=[{_exprs(r.partition_by)}] "
                f"order=[{_sort_keys(r.order_by)}]")
    if isinstance(r, rel.Exchange):
        keys = f" [{_exprs(r.keys)}]" if r.keys else ""
        return f"Exchange {r.partitioning.value}({r.num_partitions}){keys}"
    return name


def explain(r: rel.Relation, *, schema: bool = False) -> str:
    """The plan as an indented tree; with ``schema`` each line ends with its output types.
    The plans of a relation's subqueries follow its line, marked ``:- subquery``."""
    lines: list[str] = []

    def visit(node: rel.Relation, depth: int) -> None:
        line = "  " * depth + ("+- " if depth else "") + describe(node)
        if schema:
            cols = ", ".join(f"{f.name}:{f.dtype}{'' if f.nullable else ' not null'}"
                             for f in node.schema)
            line += f"  => ({cols})"
        lines.append(line)
        for sq in sub.subqueries_of(node):
            lines.append("  " * (depth + 1) + f":- subquery ({sq.dtype})")
            visit(sq.plan, depth + 2)
        # A key filter's source is the input of the join above it: shown there.
        for child in (node.child,) if isinstance(node, rel.KeyFilter) else node.inputs:
            visit(child, depth + 1)

    visit(r, 0)
    return "\n".join(lines)
