"""The blocking API's engine: one IO event loop on a daemon thread, shared by all sync calls.

Coroutines are submitted to it from any thread; calling the blocking API from that loop's own
thread would deadlock and is refused. Interrupting the caller (Ctrl-C) cancels the work.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import TypeVar

from wjio.store import close_shared_stores

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def io_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            _thread = threading.Thread(target=_loop.run_forever, name="wjio-io", daemon=True)
            _thread.start()
        return _loop


def run(coro: Coroutine[object, object, T]) -> T:
    """Run ``coro`` on the IO loop and wait for its result."""
    loop = io_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError("wjio's blocking API was called from its own IO loop; use await")
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


def iterate(agen: AsyncIterator[T]) -> Iterator[T]:
    """Drive an async iterator from blocking code; closing the iterator closes ``agen``."""
    try:
        while True:
            try:
                yield run(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None and _loop is not None and not _loop.is_closed():
            run(aclose())


@atexit.register
def _shutdown() -> None:
    loop = _loop
    if loop is None or loop.is_closed() or not loop.is_running():
        return
    try:
        asyncio.run_coroutine_threadsafe(close_shared_stores(), loop).result(timeout=5)
    except Exception:
        pass
    loop.call_soon_threadsafe(loop.stop)
