"""``ProjectExec``: one output column per expression."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from executor.context import ExecContext
from executor.eval import as_array, lower
from executor.ir import relations as rel
from executor.operators.base import Operator, batch_of, physical_schema


def project_batch(kernels, schema: pa.Schema, batch: pa.RecordBatch) -> pa.RecordBatch:
    n = batch.num_rows
    arrays = [as_array(k(batch), n, f.type) for k, f in zip(kernels, schema, strict=True)]
    arrays = [a.cast(f.type) if a.type != f.type else a for a, f in zip(arrays, schema,
                                                                         strict=True)]
    return batch_of(arrays, schema, batch)


class ProjectExec(Operator):
    def __init__(self, node: rel.Project, child: Operator) -> None:
        self.children = (child,)
        self.schema = physical_schema(node.schema)
        self.kernels = [lower(e) for e in node.exprs]

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        for batch in self.children[0].execute(partition, ctx):
            yield project_batch(self.kernels, self.schema, batch)
