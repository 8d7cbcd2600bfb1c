"""The operator contract, written once.

``execute(partition, ctx)`` returns an iterator of ``pyarrow.RecordBatch`` of ``schema``:

* it does no work before the first batch is asked for (operators are generators);
* errors are raised from ``next()``, i.e. they flow down the stream to the consumer;
* dropping the iterator (``close()``) stops the work: generators close their children.

Physical schemas are the IR schema with every field nullable: nullability is a property the
plan declares, not one the kernels maintain.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

import pyarrow as pa

from executor.context import ExecContext
from executor.ir.types import Schema


def physical_schema(schema: Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, f.dtype, True) for f in schema])


class Operator(ABC):
    """A physical operator: a stream of batches per partition."""

    schema: pa.Schema
    children: tuple[Operator, ...] = ()

    @abstractmethod
    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        """The batches of ``partition`` (lazily; see the module docstring)."""

    def name(self) -> str:
        return type(self).__name__

    def collect(self, partition: int, ctx: ExecContext) -> pa.Table:
        return to_table(self.execute(partition, ctx), self.schema)


def to_table(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_batches(list(batches), schema=schema)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` under ``schema``'s names (columns are positional)."""
    if batch.schema.equals(schema):
        return batch
    return batch_of(batch.columns, schema, batch)


def batch_of(arrays: list, schema: pa.Schema, like: pa.RecordBatch) -> pa.RecordBatch:
    """A batch of ``arrays`` under ``schema``, with ``like``'s row count even when there are
    no columns (``count(*)`` projects none; ``RecordBatch.from_arrays([])`` has 0 rows)."""
    if not arrays:
        return like.select([])
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def batches_of(table: pa.Table, schema: pa.Schema, size: int) -> Iterator[pa.RecordBatch]:
    for b in table.to_batches(max_chunksize=size):
        if b.num_rows:
            yield conform(b, schema)


COALESCE_BATCHES = 16
"""The most batches :func:`coalesced` joins: a consumer that needs few rows (a limit above a
selective filter) waits for at most this many input batches, not for ``rows`` matches."""


def coalesced(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """``batches`` in order, those of fewer than ``rows`` rows joined until they reach it (or
    :data:`COALESCE_BATCHES` of them are held).

    A selective filter or join leaves many small batches (q03's lineitem stage on SF1: ~450
    of at most 150 rows per run), and every operator after it pays its per-batch cost for
    each: kernel calls, and at a stage's end a hash, a sort, a take, and per partition a
    slice and the sink's bookkeeping (for a checkpointed exchange, its encoder's queue).
    Joined, they pay once. Filters join their output, and tasks theirs before routing it
    (a join's output too). A batch of at least ``rows`` rows is passed on as it is (after
    those held before it); only batches of one schema are joined."""
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if held and (batch.num_rows >= rows or not batch.schema.equals(held[0].schema)):
            yield _joined(held)
            held, count = [], 0
        if batch.num_rows >= rows:
            yield batch
            continue
        held.append(batch)
        count += batch.num_rows
        if count >= rows or len(held) >= COALESCE_BATCHES:
            yield _joined(held)
            held, count = [], 0
    if held:
        yield _joined(held)


def _joined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    return batches[0] if len(batches) == 1 else pa.concat_batches(batches)
