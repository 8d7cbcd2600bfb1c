"""Running coroutines together: all succeed, or the first real error is raised as itself.

``asyncio.TaskGroup`` cancels the siblings of a failed task (what we want: no orphaned
requests) but wraps the failure in an ``ExceptionGroup``; callers of wjio expect the typed
error, so the first non-cancellation error is re-raised unwrapped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import TypeVar

T = TypeVar("T")


async def gather_all(coros: Iterable[Coroutine[object, object, T]]) -> list[T]:
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(c) for c in coros]
    except BaseExceptionGroup as group:
        raise _first(group) from None
    return [t.result() for t in tasks]


def _first(group: BaseExceptionGroup) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]
