"""One attempt's output encoded off the task's thread, while the task computes on.

A sink's ``add`` queues the batch and returns: a job on this process's encode pool writes
the queued batches into their partitions' IPC streams (compressing them) in the order they
were added, so the task's operators compute the next batch while the last one compresses.
Measured on TPC-H SF1 q05 through moto (2 cores): the task threads had spent 1-1.6 s of a
4.3-5.6 s checkpointed run waiting in ``add`` for compression, with ~0.8 core idle.

Memory is bounded: ``add`` waits while more than ``limit`` bytes of batches are queued, and
the partitions' writers hold at most about ``limit / 2`` more, batches waiting to be written
coalesced (:data:`~checkpoint.codec.COALESCE_BYTES`). An encoding error is raised by the next
``add`` or by ``close``; nothing of a failed encoding is uploaded (the sink fails before its
upload).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from checkpoint.codec import COALESCE_BYTES, PartitionWriter
from wjio.threads import process_pool

MIN_COALESCE = 64 * 1024
"""The least a partition's writer coalesces to, however many partitions share the bound."""


def encode_pool() -> ThreadPoolExecutor:
    """The process's encode pool, one thread per core (started on first use): a sink's
    queue is drained by one job at a time, so a pool thread never waits on another."""
    return process_pool("wj-encode", os.cpu_count() or 2)


def finish_pool() -> ThreadPoolExecutor:
    """Threads that finish encodings handed off by their tasks (wait for the encode pool,
    then compress each partition's last batch): never the encode pool itself, where a
    finish waiting for a drain queued behind it would deadlock, nor the IO loop's default
    executor, which the loop's own work (e.g. planning a scan) needs while these wait."""
    return process_pool("wj-finish", os.cpu_count() or 2)


class Encoder:
    """The partitions of one attempt's output, encoded in the background in ``add`` order."""

    def __init__(self, options: pa.ipc.IpcWriteOptions, limit: int, partitions: int = 1
                 ) -> None:
        self.options, self.limit = options, limit
        self.coalesce = max(MIN_COALESCE, min(COALESCE_BYTES, limit // (2 * max(partitions, 1))))
        """What each of the ``partitions`` writers coalesces batches to."""
        self.writers: dict[int, PartitionWriter] = {}
        self._queue: deque[tuple[int, pa.RecordBatch, int]] = deque()
        self._queued = 0
        self._draining = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()

    def add(self, partition: int, batch: pa.RecordBatch, size: int | None = None) -> None:
        """Queue ``batch`` for ``partition``; waits while over ``limit`` bytes are queued.
        ``size``: the batch's ``nbytes`` when the caller has it (each ``nbytes`` releases
        the GIL: on a busy process, a wait for it again per call)."""
        size = batch.nbytes if size is None else size
        with self._cond:
            self._raise_error()
            while self._queued > self.limit and self._error is None:
                self._cond.wait()
            self._raise_error()
            self._queue.append((partition, batch, size))
            self._queued += size
            if self._draining:
                return
            self._draining = True
        try:
            encode_pool().submit(self._drain)
        except RuntimeError as err:  # the pool shut down with the interpreter
            with self._cond:
                self._draining = False
                self._error = err
            raise

    def close(self) -> dict[int, PartitionWriter]:
        """Wait until every queued batch is encoded; the partitions' writers (raises what
        an encoding raised)."""
        with self._cond:
            while self._draining:
                self._cond.wait()
            self._raise_error()
            return self.writers

    def cancel(self) -> None:
        """Drop what is queued; a running drain stops after its current batch."""
        with self._cond:
            self._queue.clear()
            self._queued = 0
            self._cond.notify_all()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _drain(self) -> None:
        while True:
            with self._cond:
                if not self._queue or self._error is not None:
                    self._draining = False
                    self._cond.notify_all()
                    return
                partition, batch, size = self._queue.popleft()
            try:
                writer = self.writers.get(partition)
                if writer is None:
                    writer = self.writers[partition] = PartitionWriter(self.options,
                                                                       self.coalesce)
                writer.write(batch, size)
            except BaseException as err:  # handed to the task's thread
                with self._cond:
                    self._error = err
                    self._queue.clear()
                    self._queued = 0
            with self._cond:
                self._queued = max(0, self._queued - size)
                self._cond.notify_all()
