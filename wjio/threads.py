"""Thread pools that live as long as the process, one per name and size.

A pool kept for the process spares each scan, query or task output the start-up of its
threads and, as Arrow's allocator keeps memory per thread, fresh per-thread heaps (measured:
a new task pool per query made TPC-H SF1 queries ~15% slower on 2 cores). wjio's decode
threads, the executor's task threads and the checkpoint encoders each take theirs here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_pools: dict[tuple[str, int], ThreadPoolExecutor] = {}
_lock = threading.Lock()


def process_pool(name: str, threads: int,
                 initializer: Callable[[], None] | None = None) -> ThreadPoolExecutor:
    """The process's pool ``name`` of ``threads`` threads (named ``<name>-<threads>_<i>``),
    started on first use; ``initializer`` runs on each of its threads (the first caller's)."""
    with _lock:
        pool = _pools.get((name, threads))
        if pool is None:
            pool = _pools[(name, threads)] = ThreadPoolExecutor(
                threads, thread_name_prefix=f"{name}-{threads}", initializer=initializer)
        return pool
