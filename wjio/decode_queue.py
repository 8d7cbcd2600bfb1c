"""Small row groups waiting, fetched, for a decode thread; decoded several in one hand-off.

A small row group decodes in a few milliseconds, and a decoder's fixed cost per call (polars:
~1 ms to set up a read) is a large share of that. So fetched small row groups queue here, and
at most ``slots`` decodes run at once: one that is free takes every row group waiting of the
first one's object (the first in plan order), up to its share (the row groups waiting divided
by ``slots``) and ``batch_bytes`` of them, and decodes them together
(:func:`wjio.decode.decode_row_groups`). Row groups arriving while the threads are busy thus
form larger batches, one arriving to an idle thread is decoded alone at once, and row groups
arriving together (as the last ones of a scan often do) are shared out, decoding side by side
rather than in one thread's batch. A batch of less than :data:`POLARS_BATCH_BYTES` is decoded
by pyarrow alone.

Each row group still gets its own table (slices of the batch's columns), awaited by its own
caller, so delivery stays row group by row group in plan order. The slices of one batch share
its buffers, which stay allocated until the last of them is released: batches are capped so
that this sharing holds back little memory.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa

from wjio.decode import DecodeColumn, FetchedRowGroup, decode_row_groups, image_leaves
from wjio.footer import Footer
from wjio.row_group_image import ThriftError

POLARS_BATCH_BYTES = 1024 * 1024
"""Uncompressed bytes from which polars decodes a batch (the columns it decodes exactly): its
fixed cost per read (~1 ms, and the walk of the footer for its image, ~5 ms for 90 kB) is more
than it saves below (measured: ~0.7 ms per MiB against pyarrow's decoder)."""


@dataclass
class _Waiting:
    order: int
    footer: Footer
    fetched: FetchedRowGroup
    dictionary: Mapping[str, pa.DataType]
    size: int
    result: asyncio.Future[tuple[pa.Table, int]]


class DecodeQueue:
    """Decodes the small row groups of one scan in batches, at most ``slots`` at once, on
    ``pool``; ``columns`` and ``output`` are the scan's."""

    def __init__(self, pool: ThreadPoolExecutor, slots: int, batch_bytes: int,
                 columns: Sequence[DecodeColumn], output: pa.Schema) -> None:
        self.pool = pool
        self.slots = slots
        self.batch_bytes = batch_bytes
        self.columns = columns
        self.output = output
        self._waiting: list[_Waiting] = []
        self._running = 0
        self._start_soon = False

    def prepare(self, footers: Iterable[tuple[Footer, int]]) -> None:
        """Start walking, for polars' images, the first ``slots`` footers of ``footers`` (those
        of the scan's small row groups in plan order, with the uncompressed bytes of those row
        groups) that hold enough for polars, on the pool: while their ranges are on the wire,
        so the first decodes do not wait for it (later footers are walked by the decode that
        first needs them)."""
        loop = asyncio.get_running_loop()
        enough = (f for f, size in footers if size >= POLARS_BATCH_BYTES)
        for footer in itertools.islice(enough, self.slots):
            loop.run_in_executor(self.pool, _walk, footer, image_leaves(self.columns))

    async def decode(self, order: int, footer: Footer, fetched: FetchedRowGroup,
                     dictionary: Mapping[str, pa.DataType], size: int) -> tuple[pa.Table, int]:
        """The finished table of ``fetched``, a row group of ``footer`` whose place in the scan's
        plan is ``order`` and whose decoded size is about ``size`` bytes, and the bytes the
        table holds."""
        loop = asyncio.get_running_loop()
        result = loop.create_future()
        self._waiting.append(_Waiting(order, footer, fetched, dictionary, size, result))
        if not self._start_soon:
            # At the end of this turn of the loop: row groups whose ranges arrived together
            # are then all waiting, and shared out among the free threads.
            self._start_soon = True
            loop.call_soon(self._start)
        return await result

    def _start(self) -> None:
        self._start_soon = False
        self._waiting = [w for w in self._waiting if not w.result.done()]  # (cancelled)
        self._waiting.sort(key=lambda w: w.order)
        share = -(-len(self._waiting) // self.slots)
        while self._waiting and self._running < self.slots:
            first = self._waiting[0]
            batch, rest, size = [], [], 0
            for w in self._waiting:
                if w.footer is first.footer and (not batch or (
                        len(batch) < share and size + w.size <= self.batch_bytes)):
                    batch.append(w)
                    size += w.size
                else:
                    rest.append(w)
            self._waiting = rest
            self._running += 1
            job = asyncio.get_running_loop().run_in_executor(
                self.pool, decode_row_groups, first.footer, self.columns,
                [w.fetched for w in batch], self.output, first.dictionary or None,
                size >= POLARS_BATCH_BYTES)
            job.add_done_callback(lambda job, batch=batch: self._finished(job, batch))

    def _finished(self, job: asyncio.Future[list[tuple[pa.Table, int]]],
                  batch: list[_Waiting]) -> None:
        self._running -= 1
        error = job.exception() if not job.cancelled() else asyncio.CancelledError()
        for i, w in enumerate(batch):
            if w.result.done():
                continue
            if error is not None:
                w.result.set_exception(error)
            else:
                w.result.set_result(job.result()[i])
        self._start()


def _walk(footer: Footer, leaves: frozenset[int]) -> None:
    try:
        footer.layout(leaves)  # walked once, then kept by the footer
    except ThriftError:
        pass  # each decode then finds it cannot make an image, and leaves it to pyarrow
