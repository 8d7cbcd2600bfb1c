"""Writing and reading whole objects of a query: outputs (multipart when large) and manifests."""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections.abc import Coroutine, Iterable, Sequence
from typing import TypeVar

from checkpoint.codec import dump_manifest, load_manifest
from wjio import errors as store_errors
from wjio.options import StoreOptions
from wjio.store import ObjectInfo, shared_store
from wjio.uri import S3Path

T = TypeVar("T")
AT_ONCE = 32
"""Requests one bulk operation (deletes, record reads) keeps in flight: enough to hide
latency, few enough to leave the connection pool to the query's own reads."""


async def bounded(calls: Iterable[Coroutine[object, object, T]], limit: int = AT_ONCE
                  ) -> list[T]:
    """Await ``calls`` at most ``limit`` at a time; their results in order. The first failure
    cancels the others (and waits for them) before it is raised."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Coroutine[object, object, T]) -> T:
        try:
            async with gate:
                return await call
        finally:
            call.close()  # a call cancelled before it started is never awaited: close it

    tasks = [asyncio.ensure_future(one(c)) for c in calls]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


PARTS_AT_ONCE = 4
"""Parts of one upload in flight. Each part is a copy of ``part_size`` bytes made when it is
sent, so an upload adds at most this many parts to the memory its body holds."""


async def upload(options: StoreOptions, path: S3Path, body: bytes | Sequence[bytes],
                 part_size: int, multipart_over: int | None = None) -> ObjectInfo:
    """Write ``body`` (bytes, or pieces that lie back to back) as one object: one PUT up to
    ``multipart_over`` (default ``part_size``) bytes, else a multipart upload of ``part_size``
    parts sent in parallel, aborted (its parts freed) if anything fails."""
    pieces = [body] if isinstance(body, bytes | bytearray | memoryview) else list(body)
    starts = list(itertools.accumulate((len(p) for p in pieces), initial=0))
    size = starts[-1]
    store = shared_store(options)
    if size <= (part_size if multipart_over is None else multipart_over):
        info = await store.put(path, b"".join(pieces))
        assert info is not None  # an unconditional put always creates
        return info

    def span(start: int, end: int) -> bytes:
        i = bisect.bisect_right(starts, start) - 1
        out = []
        while start < end:
            piece, base = pieces[i], starts[i]
            take = min(end, base + len(piece)) - start
            out.append(memoryview(piece)[start - base:start - base + take])
            start += take
            i += 1
        return b"".join(out)

    upload_id = await store.create_multipart(path)

    async def part(number: int, start: int) -> str:
        data = span(start, min(start + part_size, size))
        return await store.upload_part(path, upload_id, number, data)

    try:
        etags = await bounded((part(i + 1, off)
                               for i, off in enumerate(range(0, size, part_size))),
                              PARTS_AT_ONCE)
        return await store.complete_multipart(path, upload_id, etags)
    except BaseException:
        await asyncio.shield(store.abort_multipart(path, upload_id))
        raise


async def create_manifest(options: StoreOptions, path: S3Path, manifest: dict) -> bool:
    """Create the manifest object unless the key exists (``If-None-Match: *``); True if
    created by this call."""
    created = await shared_store(options).put(path, dump_manifest(manifest), if_none_match=True)
    return created is not None


async def replace_manifest(options: StoreOptions, path: S3Path, manifest: dict) -> None:
    await shared_store(options).put(path, dump_manifest(manifest))


async def read_manifest(options: StoreOptions, path: S3Path) -> dict | None:
    """The manifest at ``path``, None if there is none."""
    try:
        data, _ = await shared_store(options).get(path)
    except store_errors.ObjectNotFoundError:
        return None
    return load_manifest(data, str(path))


async def delete(options: StoreOptions, path: S3Path) -> None:
    await shared_store(options).delete(path)


async def get(options: StoreOptions, path: S3Path) -> bytes:
    data, _ = await shared_store(options).get(path)
    return data


async def listing(options: StoreOptions, prefix: S3Path) -> list[ObjectInfo]:
    return await shared_store(options).list(prefix)
