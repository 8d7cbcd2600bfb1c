"""Peak Arrow memory of a piece of work, sampled.

Arrow reports only the process-wide peak since start (``MemoryPool.max_memory``), which says
nothing about one query in a long-lived process. :class:`PeakMemory` samples the pool's
current allocation on a daemon thread while its block runs and keeps the largest value seen
(plus the allocation at entry and exit, so a short block still gets a reading). Allocations
that live and die between two samples are missed: it is a lower bound, to the sampling
interval.
"""

from __future__ import annotations

import threading

import pyarrow as pa


class PeakMemory:
    """``with PeakMemory() as peak: ...`` then ``peak.bytes`` (Arrow bytes, above the level
    at entry) and ``peak.absolute`` (the pool's largest allocation seen)."""

    def __init__(self, interval: float = 0.005, pool: pa.MemoryPool | None = None) -> None:
        self.interval = interval
        self.pool = pool or pa.default_memory_pool()
        self.start = 0
        self.absolute = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def bytes(self) -> int:
        return max(0, self.absolute - self.start)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.absolute = max(self.absolute, self.pool.bytes_allocated())

    def __enter__(self) -> PeakMemory:
        self.start = self.absolute = self.pool.bytes_allocated()
        self._thread = threading.Thread(target=self._sample, name="wj-peak-memory",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.absolute = max(self.absolute, self.pool.bytes_allocated())
