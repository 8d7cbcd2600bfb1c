"""``ScanExec``: batches of a table's columns, with the filter pushed to the reader when it
is exactly expressible in Arrow, else applied here."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from executor.context import ExecContext
from executor.errors import UnsupportedError
from executor.eval import lower
from executor.eval.pushdown import to_arrow_expression
from executor.ir import relations as rel
from executor.operators.base import Operator, batch_of, physical_schema


class ScanExec(Operator):
    def __init__(self, node: rel.Scan) -> None:
        self.node = node
        self.schema = physical_schema(node.schema)
        self.pushed: pc.Expression | None = None
        self.residual = None
        if node.filter is not None:
            try:
                self.pushed = to_arrow_expression(node.filter)
            except UnsupportedError:
                self.residual = lower(node.filter)
        read = list(node.columns)
        if self.residual is not None:
            read += [r.name for r in node.filter.references() if r.name not in read]
        self.read_columns = read

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        source = ctx.source(self.node.table)
        for batch in source.read(self.read_columns, self.pushed, partition, ctx.num_partitions):
            if self.residual is not None:
                batch = batch.filter(pc.fill_null(self.residual(batch), False))
            if batch.num_rows == 0:
                continue
            cols = [batch.column(name) for name in self.node.columns]
            yield batch_of(
                [c.cast(f.type) if c.type != f.type else c for c, f in zip(cols, self.schema,
                                                                           strict=True)],
                self.schema, batch)
