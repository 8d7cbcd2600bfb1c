"""``DistinctExec``: distinct rows, through Acero's hash aggregate with keys only."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from executor.context import ExecContext
from executor.operators import acero as ac
from executor.operators.base import Operator, batches_of, to_table


class DistinctExec(Operator):
    def __init__(self, child: Operator) -> None:
        self.children = (child,)
        self.schema = child.schema

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        table = to_table(self.children[0].execute(partition, ctx), self.schema)
        if table.num_rows == 0:
            return
        names = list(self.schema.names)
        out = ac.Declaration.from_sequence([
            ac.Declaration("table_source", ac.TableSourceNodeOptions(table)),
            ac.Declaration("aggregate", ac.AggregateNodeOptions([], keys=names)),
        ]).to_table(use_threads=False)
        yield from batches_of(out.select(names), self.schema, ctx.batch_size)
