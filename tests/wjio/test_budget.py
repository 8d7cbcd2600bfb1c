"""The memory budget: FIFO waits, one oversized reservation alone, cancellation-safe."""

from __future__ import annotations

import asyncio

import pytest

from wjio.budget import MemoryBudget


async def test_waits_until_released_and_tracks_peak():
    b = MemoryBudget(100)
    await b.acquire(60)
    waiter = asyncio.create_task(b.acquire(50))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    b.release(60)
    await asyncio.wait_for(waiter, 1)
    assert b.used == 50 and b.peak == 60


async def test_oversized_reservation_granted_alone():
    b = MemoryBudget(100)
    await b.acquire(500)  # nothing else held: granted
    waiter = asyncio.create_task(b.acquire(1))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    b.release(500)
    await asyncio.wait_for(waiter, 1)


async def test_fifo_order_and_cancelled_waiter_skipped():
    b = MemoryBudget(100)
    await b.acquire(100)
    order = []

    async def take(n, tag):
        await b.acquire(n)
        order.append(tag)

    first = asyncio.create_task(take(80, "first"))
    second = asyncio.create_task(take(10, "second"))
    cancelled = asyncio.create_task(take(10, "cancelled"))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    b.release(100)
    await asyncio.wait_for(asyncio.gather(first, second), 1)
    assert order == ["first", "second"] and b.used == 90


def test_over_release_is_a_bug():
    b = MemoryBudget(10)
    with pytest.raises(AssertionError):
        b.release(1)
