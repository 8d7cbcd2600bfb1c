"""``HashJoinExec``: equi-joins through Acero's hash join (null keys never match).

Key expressions are evaluated into temporary columns first; a residual condition goes to
Acero as its ``filter_expression`` when it is exactly expressible in Arrow, else (inner joins
only) it is applied to the joined rows.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.acero as ac
import pyarrow.compute as pc

from executor.context import ExecContext
from executor.errors import UnsupportedError
from executor.eval import evaluate, lower
from executor.eval.pushdown import to_arrow_expression
from executor.ir import relations as rel
from executor.operators.base import Operator, batches_of, physical_schema, to_table

_ACERO_TYPES = {
    rel.JoinType.INNER: "inner", rel.JoinType.LEFT: "left outer",
    rel.JoinType.RIGHT: "right outer", rel.JoinType.FULL: "full outer",
    rel.JoinType.SEMI: "left semi", rel.JoinType.ANTI: "left anti",
}


def with_keys(table: pa.Table, keys, prefix: str) -> tuple[pa.Table, list[str]]:
    batch = table.combine_chunks().to_batches()
    batch = batch[0] if batch else pa.RecordBatch.from_pylist([], schema=table.schema)
    names = []
    for i, k in enumerate(keys):
        name = f"{prefix}{i}"
        table = table.append_column(name, evaluate(k, batch))
        names.append(name)
    return table, names


class HashJoinExec(Operator):
    def __init__(self, node: rel.Join, left: Operator, right: Operator) -> None:
        self.children = (left, right)
        self.node = node
        self.schema = physical_schema(node.schema)
        self.filter_expression = None
        self.post_filter = None
        if node.condition is not None:
            try:
                self.filter_expression = to_arrow_expression(node.condition)
            except UnsupportedError:
                if node.how is not rel.JoinType.INNER:
                    raise UnsupportedError(
                        "Join", f"{node.how.value} join residual not expressible in Arrow"
                    ) from None
                self.post_filter = lower(node.condition)

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        left_op, right_op = self.children
        left = to_table(left_op.execute(partition, ctx), left_op.schema)
        right = to_table(right_op.execute(partition, ctx), right_op.schema)
        left, lkeys = with_keys(left, self.node.left_keys, "__lk")
        right, rkeys = with_keys(right, self.node.right_keys, "__rk")
        options = ac.HashJoinNodeOptions(
            _ACERO_TYPES[self.node.how], lkeys, rkeys,
            filter_expression=self.filter_expression,
        )
        try:
            joined = ac.Declaration("hashjoin", options, inputs=[
                ac.Declaration("table_source", ac.TableSourceNodeOptions(left)),
                ac.Declaration("table_source", ac.TableSourceNodeOptions(right)),
            ]).to_table(use_threads=False)
        except pa.ArrowNotImplementedError as err:
            raise UnsupportedError("Join", str(err)) from None
        joined = joined.select(list(self.schema.names))
        if self.post_filter is not None and joined.num_rows:
            batch = joined.combine_chunks().to_batches()[0]
            joined = pa.Table.from_batches(
                [batch.filter(pc.fill_null(self.post_filter(batch), False))])
        yield from batches_of(joined, self.schema, ctx.batch_size)
