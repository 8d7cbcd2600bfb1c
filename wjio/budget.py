"""A byte budget shared by the fetchers and the consumer of one scan (backpressure).

Fetching a row group reserves its bytes first and waits while the budget is spent; the
reservation is released when the consumer has taken the decoded batches. One reservation
larger than the whole budget is granted when nothing else is held, so a huge row group is
read alone instead of deadlocking.

A scan holds two: its memory budget, and the window of bytes its range requests may have in
flight (each request reserves its size while it runs; FIFO, so requests start in plan order).
"""

from __future__ import annotations

import asyncio
from collections import deque


class MemoryBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def _fits(self, n: int) -> bool:
        return self.used == 0 or self.used + n <= self.limit

    async def acquire(self, n: int) -> None:
        """Reserve ``n`` bytes, waiting (FIFO) until they fit."""
        if not self._waiters and self._fits(n):
            self._take(n)
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((n, fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(n)  # granted just as we were cancelled: give it back
            else:
                self._waiters.remove((n, fut))
            raise

    def add(self, n: int) -> None:
        """Account for ``n`` bytes already allocated (may exceed the limit; fetches then wait)."""
        self._take(n)

    def release(self, n: int) -> None:
        self.used -= n
        if self.used < 0:
            raise AssertionError(f"memory budget released more than it held ({self.used})")
        while self._waiters:
            want, fut = self._waiters[0]
            if fut.cancelled():
                self._waiters.popleft()
                continue
            if not self._fits(want):
                break
            self._waiters.popleft()
            self._take(want)
            fut.set_result(None)

    def _take(self, n: int) -> None:
        self.used += n
        self.peak = max(self.peak, self.used)
