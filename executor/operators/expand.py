"""``ExpandExec``: one output batch per projection for each input batch."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from executor.context import ExecContext
from executor.eval import lower
from executor.ir import relations as rel
from executor.operators.base import Operator, physical_schema
from executor.operators.project import project_batch


class ExpandExec(Operator):
    def __init__(self, node: rel.Expand, child: Operator) -> None:
        self.children = (child,)
        self.schema = physical_schema(node.schema)
        self.projections = [[lower(e) for e in p] for p in node.projections]

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        for batch in self.children[0].execute(partition, ctx):
            for kernels in self.projections:
                yield project_batch(kernels, self.schema, batch)
