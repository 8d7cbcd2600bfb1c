"""``ValuesExec``: a literal table (partition 0 holds all rows)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from executor.context import ExecContext
from executor.ir import relations as rel
from executor.operators.base import Operator, physical_schema


class ValuesExec(Operator):
    def __init__(self, node: rel.Values) -> None:
        self.schema = physical_schema(node.schema)
        columns = list(zip(*[[lit.to_arrow() for lit in row] for row in node.rows], strict=True))
        self.arrays = [
            pa.array([s.as_py() for s in col], f.type) if col else pa.array([], f.type)
            for col, f in zip(columns or [()] * len(self.schema), self.schema, strict=True)
        ]
        self.num_rows = len(node.rows)

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        if partition != 0 or not self.num_rows:
            return
        if self.arrays:
            yield pa.RecordBatch.from_arrays(self.arrays, schema=self.schema)
        else:  # rows without columns (SELECT without FROM)
            yield pa.record_batch([pa.nulls(self.num_rows)], names=["_"]).select([])
