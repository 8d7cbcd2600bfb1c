"""The batches of task outputs this process committed, kept for its own consumers.

With the thread runner the next stage's tasks run in the process that just encoded and
uploaded their input: they take a committed partition's batches from here instead of GETting
and decoding its bytes, which saves a GET per (producer, partition), the store reading the
object again (moto's server reads the whole object for every range GET), the decompression
and the checksum. What is served is what was committed: an entry is put only after its
attempt's commit record was created, it holds the very batches that attempt encoded (the
codecs are lossless), and it is found by the object key and ETag a commit record names (a
record carrying its output inline names no object: its own key and the attempt, which no
other attempt shares, stand for them). The
store's copy is what a resume or another process reads; losing it is noticed there, not by
this run.

Memory is bounded: an attempt whose batches outgrow the budget keeps none, entries are
dropped oldest first beyond it, and a consumer that misses reads the store as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import pyarrow as pa

Partitions = list[list[pa.RecordBatch]]


def size_of(partitions: Partitions) -> int:
    """Bytes of Arrow data the batches reference (``RecordBatch.nbytes``: it releases the
    GIL, so a busy process pays a GIL hand-off per call; a caller that counted them as they
    came passes its sum instead)."""
    return sum(b.nbytes for batches in partitions for b in batches)


class LocalCopies:
    """Committed outputs' partitions, by (object key, ETag) or, for inline outputs, (commit
    record key, attempt), up to ``budget`` bytes of Arrow data."""

    def __init__(self, budget: int) -> None:
        if budget < 0:
            raise ValueError(f"LocalCopies budget must be >= 0 bytes, got {budget}")
        self.budget = budget
        self.size = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str | None], tuple[Partitions, int]] = \
            OrderedDict()

    def put(self, key: str, etag: str | None, partitions: Partitions,
            size: int | None = None) -> None:
        """Keep the committed output ``key`` (version ``etag``): its partitions' batches,
        ``size`` bytes (default: :func:`size_of` them)."""
        size = size_of(partitions) if size is None else size
        if size > self.budget:
            return
        with self._lock:
            old = self._entries.pop((key, etag), None)
            self.size -= old[1] if old is not None else 0
            while self._entries and self.size + size > self.budget:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.size -= dropped
            self._entries[(key, etag)] = (partitions, size)
            self.size += size

    def get(self, key: str, etag: str | None, partition: int) -> list[pa.RecordBatch] | None:
        """Partition ``partition`` of the object, None unless it is kept."""
        with self._lock:
            entry = self._entries.get((key, etag))
        return None if entry is None else entry[0][partition]
