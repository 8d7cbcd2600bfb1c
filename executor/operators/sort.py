"""``SortExec`` and ``TopNExec``: a total order with Spark's rules.

Arrow's sort has one null placement for all keys and puts NaN after the numbers but next to
the nulls in both directions; Spark places nulls per key and sorts NaN as the largest value.
So each key becomes up to three sort columns: is-null, is-NaN (floats), value.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from executor.context import ExecContext
from executor.eval import evaluate
from executor.ir import relations as rel
from executor.operators.base import Operator, batches_of, to_table


def sort_indices(table: pa.Table, keys: tuple[rel.SortKey, ...]) -> pa.Array:
    """Stable indices ordering ``table``'s rows by ``keys`` (Spark's ordering)."""
    batch = table.combine_chunks().to_batches()
    batch = batch[0] if batch else pa.RecordBatch.from_pylist([], schema=table.schema)
    columns, order = {}, []
    for i, key in enumerate(keys):
        value = evaluate(key.expr, batch)
        direction = "ascending" if key.ascending else "descending"
        columns[f"n{i}"] = pc.is_null(value, nan_is_null=False)
        order.append((f"n{i}", "descending" if key.nulls_first else "ascending"))
        if pa.types.is_floating(value.type):
            columns[f"f{i}"] = pc.fill_null(pc.is_nan(value), False)
            order.append((f"f{i}", direction))
        columns[f"v{i}"] = value
        order.append((f"v{i}", direction))
    return pc.sort_indices(pa.table(columns), sort_keys=order)


class SortExec(Operator):
    def __init__(self, child: Operator, keys: tuple[rel.SortKey, ...],
                 limit: int | None = None, offset: int = 0) -> None:
        self.children = (child,)
        self.schema = child.schema
        self.keys, self.limit, self.offset = keys, limit, offset

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        table = to_table(self.children[0].execute(partition, ctx), self.schema)
        if table.num_rows == 0:
            return
        indices = sort_indices(table, self.keys)
        if self.limit is not None:
            indices = indices.slice(self.offset, self.limit)
        yield from batches_of(table.take(indices), self.schema, ctx.batch_size)
