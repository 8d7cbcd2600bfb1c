"""``FilterExec``: rows where the condition is true (null is false)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from executor.context import ExecContext
from executor.eval import as_array, lower
from executor.ir import relations as rel
from executor.operators.base import Operator, coalesced


class FilterExec(Operator):
    def __init__(self, node: rel.Filter, child: Operator) -> None:
        self.children = (child,)
        self.schema = child.schema
        self.predicate = lower(node.condition)

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        return coalesced(self._filtered(partition, ctx), max(1, ctx.batch_size // 4))

    def _filtered(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        for batch in self.children[0].execute(partition, ctx):
            mask = as_array(self.predicate(batch), batch.num_rows, pa.bool_())
            out = batch.filter(pc.fill_null(mask, False))
            if out.num_rows:
                yield out
