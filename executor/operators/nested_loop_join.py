"""``NestedLoopJoinExec``: joins without equi keys (cross joins, Spark's
BroadcastNestedLoopJoin), by evaluating the condition over all row pairs. Bounded by
``ctx.max_nested_loop_rows`` pairs."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from executor.context import ExecContext
from executor.errors import ResourcesExhaustedError, UnsupportedError
from executor.eval import lower
from executor.ir import relations as rel
from executor.operators.base import Operator, batches_of, physical_schema, to_table

J = rel.JoinType


class NestedLoopJoinExec(Operator):
    def __init__(self, node: rel.Join, left: Operator, right: Operator) -> None:
        if node.how in (J.RIGHT, J.FULL):
            raise UnsupportedError("Join", f"{node.how.value} join without equi keys")
        self.children = (left, right)
        self.node = node
        self.schema = physical_schema(node.schema)
        self.condition = lower(node.condition) if node.condition is not None else None

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        left_op, right_op = self.children
        left = to_table(left_op.execute(partition, ctx), left_op.schema).combine_chunks()
        right = to_table(right_op.execute(partition, ctx), right_op.schema).combine_chunks()
        nl, nr = left.num_rows, right.num_rows
        if nl * nr > ctx.max_nested_loop_rows:
            raise ResourcesExhaustedError(
                f"nested loop join of {nl} x {nr} rows exceeds {ctx.max_nested_loop_rows} pairs")
        li = np.repeat(np.arange(nl), nr)
        ri = np.tile(np.arange(nr), nl)
        pairs = pa.Table.from_arrays(
            left.take(li).columns + right.take(ri).columns,
            names=left.column_names + right.column_names)
        if self.condition is not None and pairs.num_rows:
            batch = pairs.to_batches()[0] if pairs.num_rows else None
            mask = np.asarray(pc.fill_null(self.condition(batch), False), dtype=bool)
            li, ri = li[mask], ri[mask]
            pairs = pairs.filter(pa.array(mask))
        how = self.node.how
        matched = np.zeros(nl, dtype=bool)
        matched[li] = True
        if how is J.SEMI:
            out = left.filter(pa.array(matched))
        elif how is J.ANTI:
            out = left.filter(pa.array(~matched))
        elif how is J.LEFT:
            lone = left.filter(pa.array(~matched))
            pad = [pa.nulls(lone.num_rows, f.type) for f in right.schema]
            out = pa.concat_tables([pairs, pa.Table.from_arrays(
                lone.columns + pad, names=pairs.column_names)])
        else:
            out = pairs
        yield from batches_of(out.select(list(self.schema.names)), self.schema, ctx.batch_size)
