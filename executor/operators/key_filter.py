"""``KeyFilterExec``: a runtime filter. Rows of the child whose join keys occur among the
values the other side of the join has (see :class:`executor.ir.relations.KeyFilter`).

The other side's rows are read whole first (every partition of its exchange), and each key's
distinct non-null values become a lookup: a bit table over the values' range when that is
at most :data:`TABLE_SLOTS` (or a few slots per value), else a sorted array searched with
``numpy.searchsorted``. Integer and date keys only, whose equality is plain value equality.

A filter that would drop little is wasted work, so after :data:`SAMPLE_ROWS` rows, if more
than :data:`KEEP_LIMIT` of them passed, the rest pass untested.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from executor.context import ExecContext
from executor.eval import evaluate
from executor.ir import relations as rel
from executor.operators.base import Operator, coalesced

TABLE_SLOTS = 1 << 25
"""Largest value range looked up through a bit table without regard to the value count."""
SAMPLE_ROWS = 256 * 1024
KEEP_LIMIT = 0.8


def filterable(dtype: pa.DataType) -> bool:
    """Whether keys of ``dtype`` can be tested here (integers and dates)."""
    return pa.types.is_integer(dtype) or pa.types.is_date32(dtype)


def _ints(arr: pa.Array) -> np.ndarray:
    """The values of ``arr`` as int64 (nulls as 0: callers mask them)."""
    if pa.types.is_date32(arr.type):
        arr = arr.view(pa.int32())  # days since the epoch, nulls kept
    if arr.null_count:
        arr = pc.fill_null(arr, 0)
    return arr.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


class _Lookup:
    """Membership in one key's set of values."""

    def __init__(self, values: np.ndarray) -> None:
        self.empty = not len(values)
        if self.empty:
            return
        self.lo = int(values.min())
        span = int(values.max()) - self.lo + 1
        if span <= max(TABLE_SLOTS, 8 * len(values)):
            self.table: np.ndarray | None = np.zeros(span, dtype=bool)
            self.table[values - self.lo] = True
        else:
            self.table = None
            self.sorted = np.unique(values)

    def contains(self, arr: pa.Array) -> np.ndarray:
        if self.empty:
            return np.zeros(len(arr), dtype=bool)
        data = _ints(arr)
        if self.table is not None:
            idx = data - self.lo
            inside = (idx >= 0) & (idx < len(self.table))
            hit = self.table[np.where(inside, idx, 0)] & inside
        else:
            pos = np.searchsorted(self.sorted, data)
            pos[pos == len(self.sorted)] = 0
            hit = self.sorted[pos] == data
        if arr.null_count:
            hit &= np.asarray(arr.is_valid())
        return hit


class KeyFilterExec(Operator):
    def __init__(self, node: rel.KeyFilter, child: Operator, source: Operator) -> None:
        self.children = (child, source)
        self.schema = child.schema
        self.keys, self.source_keys = node.keys, node.source_keys

    def _lookups(self, ctx: ExecContext) -> list[_Lookup]:
        batches = list(self.children[1].execute(0, ctx))
        lookups = []
        for key in self.source_keys:
            parts = [_ints(a.drop_null()) for a in (evaluate(key, b) for b in batches)]
            lookups.append(_Lookup(np.concatenate(parts) if parts else np.empty(0, np.int64)))
        return lookups

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        return coalesced(self._filtered(partition, ctx), max(1, ctx.batch_size // 4))

    def _filtered(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        lookups: list[_Lookup] | None = None
        tested = kept = 0
        for batch in self.children[0].execute(partition, ctx):
            if tested >= SAMPLE_ROWS and kept > KEEP_LIMIT * tested:
                yield batch
                continue
            if lookups is None:
                lookups = self._lookups(ctx)
            mask = lookups[0].contains(evaluate(self.keys[0], batch))
            for key, lookup in zip(self.keys[1:], lookups[1:], strict=True):
                mask &= lookup.contains(evaluate(key, batch))
            out = batch.filter(pa.array(mask))
            tested += batch.num_rows
            kept += out.num_rows
            if out.num_rows:
                yield out
