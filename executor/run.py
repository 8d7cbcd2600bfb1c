"""``run(plan, ctx)``: execute a plan in this process, as one partition."""

from __future__ import annotations

import pyarrow as pa

from executor import planner
from executor.context import ExecContext
from executor.ir import relations as rel
from executor.ir.node import Node
from executor.subqueries import resolve_subqueries


def result_schema(node: rel.Relation) -> pa.Schema:
    return node.schema.to_arrow()


def finalize(table: pa.Table, node: rel.Relation) -> pa.Table:
    """Apply the plan's declared nullability to the result (it is checked by Arrow: a null in
    a non-nullable column is a bug and raises)."""
    schema = result_schema(node)
    if table.schema.equals(schema):
        return table
    for f, col in zip(schema, table.columns, strict=True):
        if not f.nullable and col.null_count:
            from executor.errors import InternalError
            raise InternalError(f"column {f.name!r} is declared NOT NULL but holds nulls")
    return pa.Table.from_arrays(table.columns, schema=schema)


def run(plan: Node, ctx: ExecContext | None = None) -> pa.Table:
    """Run ``plan`` as a single partition and return its result (its scalar subqueries
    first, each the same way)."""
    if not isinstance(plan, rel.Relation):
        raise TypeError(f"run() takes a Relation, got {type(plan).__name__}")
    ctx = ctx or ExecContext()
    plan = resolve_subqueries(plan, lambda sub: run(sub, ctx))
    op = planner.plan(plan)
    single = ctx.for_stage(1, {})
    return finalize(op.collect(0, single), plan)
