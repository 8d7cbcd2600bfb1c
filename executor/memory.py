"""Peak Arrow memory of a piece of work, sampled.

Arrow reports only the process-wide peak since start (``MemoryPool.max_memory``), which says
nothing about one query in a long-lived process. :class:`PeakMemory` samples the pool's
current allocation on a daemon thread while its block runs (plus at entry and exit, so a
short block still gets a reading) and keeps the largest rise above the lowest level seen
before it: in a process where earlier work's buffers are freed while the block runs, the
level at entry overstates the block's baseline. Allocations that live and die between two
samples are missed: it is a lower bound, to the sampling interval.
"""

from __future__ import annotations

import threading

import pyarrow as pa


class PeakMemory:
    """``with PeakMemory() as peak: ...`` then ``peak.bytes`` (the largest rise of Arrow bytes
    above the lowest level seen before it) and ``peak.absolute`` (the pool's largest
    allocation seen)."""

    def __init__(self, interval: float = 0.005, pool: pa.MemoryPool | None = None) -> None:
        self.interval = interval
        self.pool = pool or pa.default_memory_pool()
        self.absolute = 0
        self.bytes = 0
        self._low = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _see(self) -> None:
        now = self.pool.bytes_allocated()
        self._low = min(self._low, now)
        self.absolute = max(self.absolute, now)
        self.bytes = max(self.bytes, now - self._low)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._see()

    def __enter__(self) -> PeakMemory:
        self._low = self.absolute = self.pool.bytes_allocated()
        self.bytes = 0
        self._thread = threading.Thread(target=self._sample, name="wj-peak-memory",
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._see()
