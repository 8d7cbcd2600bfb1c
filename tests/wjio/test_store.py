"""The object-store layer against the rig: listing pages, suffix reads, typed errors."""

from __future__ import annotations

import pytest

from tests.conftest import TEST_BUCKET
from wjio import errors
from wjio.options import StoreOptions
from wjio.stats import ScanStats
from wjio.store import S3Store
from wjio.uri import S3Path


@pytest.fixture
async def store():
    s = S3Store(StoreOptions())
    yield s
    await s.close()


async def test_listing_follows_continuation_tokens(store, put, prefix):
    keys = [f"{prefix}k{i:02d}" for i in range(7)]
    for key in keys:
        put(key, b"x" * 3)
    stats = ScanStats()
    listed = await store.list(S3Path(TEST_BUCKET, prefix), stats=stats, page_size=2)
    assert [o.path.key for o in listed] == keys
    assert all(o.size == 3 and o.etag for o in listed)
    assert stats.list_requests == 4  # 2 + 2 + 2 + 1


async def test_suffix_and_range_reads(store, put, prefix):
    put(prefix + "obj", bytes(range(100)))
    path = S3Path(TEST_BUCKET, prefix + "obj")
    tail, info = await store.get_suffix(path, 10)
    assert tail == bytes(range(90, 100)) and info.size == 100 and info.etag
    whole, info2 = await store.get_suffix(path, 1000)  # longer than the object
    assert whole == bytes(range(100)) and info2.size == 100
    assert await store.get_range(path, 5, 9, etag=info.etag) == bytes(range(5, 9))


async def test_empty_object_suffix_is_empty(store, put, prefix):
    put(prefix + "empty", b"")
    data, info = await store.get_suffix(S3Path(TEST_BUCKET, prefix + "empty"), 10)
    assert data == b"" and info.size == 0


async def test_stale_etag_is_object_changed(store, put, prefix):
    put(prefix + "obj", b"first version")
    path = S3Path(TEST_BUCKET, prefix + "obj")
    _, info = await store.get_suffix(path, 4)
    put(prefix + "obj", b"second version!")
    with pytest.raises(errors.ObjectChangedError) as e:
        await store.get_range(path, 0, 4, etag=info.etag)
    assert prefix + "obj" in str(e.value)


async def test_missing_bucket_and_key(store, prefix):
    with pytest.raises(errors.NoSuchBucketError):
        await store.get_range(S3Path("no-such-bucket-wjio", "k"), 0, 1)
    with pytest.raises(errors.ObjectNotFoundError):
        await store.get_suffix(S3Path(TEST_BUCKET, prefix + "nope"), 8)
    with pytest.raises(errors.ObjectNotFoundError):
        await store.head(S3Path(TEST_BUCKET, prefix + "nope"))
