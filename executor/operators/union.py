"""``UnionExec``: the inputs' batches one after the other (UNION ALL)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from executor.context import ExecContext
from executor.operators.base import Operator, conform


class UnionExec(Operator):
    def __init__(self, schema: pa.Schema, children: list[Operator]) -> None:
        self.children = tuple(children)
        self.schema = schema

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        for child in self.children:
            for batch in child.execute(partition, ctx):
                yield conform(batch, self.schema)
