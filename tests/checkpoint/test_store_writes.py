"""wjio's write methods (used by the checkpoint store) against the rig, checked with the
store's own answers (HEAD, GET, listings)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import TEST_BUCKET
from wjio import errors
from wjio.options import StoreOptions
from wjio.store import shared_store
from wjio.sync import run
from wjio.uri import S3Path


def _path(prefix: str, name: str) -> S3Path:
    return S3Path(TEST_BUCKET, prefix + name)


def test_put_if_none_match_creates_once(s3, prefix):
    path = _path(prefix, "commit.json")

    async def go():
        store = shared_store(StoreOptions())
        first = await store.put(path, b"first", if_none_match=True)
        second = await store.put(path, b"second", if_none_match=True)
        return first, second

    first, second = run(go())
    assert first is not None and first.size == 5
    assert second is None                      # the key existed: S3's 412, not an error
    assert s3.get_object(Bucket=TEST_BUCKET, Key=path.key)["Body"].read() == b"first"


def test_put_get_delete_round_trip(s3, prefix):
    path = _path(prefix, "x.bin")
    body = os.urandom(1000)

    async def go():
        store = shared_store(StoreOptions())
        info = await store.put(path, body)
        data, got = await store.get(path)
        await store.delete(path)
        await store.delete(path)  # deleting a missing key is not an error
        return info, data, got

    info, data, got = run(go())
    assert data == body and got.size == 1000 and got.etag == info.etag

    async def get_missing():
        return await shared_store(StoreOptions()).get(path)

    with pytest.raises(errors.ObjectNotFoundError):
        run(get_missing())


def test_multipart_complete_abort_and_listing(s3, prefix):
    path, aborted = _path(prefix, "big.bin"), _path(prefix, "aborted.bin")
    part = os.urandom(5 * 1024 * 1024)

    async def go():
        store = shared_store(StoreOptions())
        uid = await store.create_multipart(path)
        etags = [await store.upload_part(path, uid, 1, part),
                 await store.upload_part(path, uid, 2, b"tail")]
        other = await store.create_multipart(aborted)
        await store.upload_part(aborted, other, 1, b"x")
        pending = await store.list_multipart(S3Path(TEST_BUCKET, prefix))
        info = await store.complete_multipart(path, uid, etags)
        await store.abort_multipart(aborted, other)
        await store.abort_multipart(aborted, other)  # already gone: not an error
        left = await store.list_multipart(S3Path(TEST_BUCKET, prefix))
        return pending, info, left

    pending, info, left = run(go())
    assert {(u.path.key) for u in pending} == {path.key, aborted.key}
    assert info.size == len(part) + 4
    assert left == []
    head = s3.head_object(Bucket=TEST_BUCKET, Key=path.key)
    assert head["ContentLength"] == len(part) + 4


def test_server_side_encryption_reaches_every_write(s3, prefix):
    opts = StoreOptions(sse="AES256")
    plain, multi = _path(prefix, "plain"), _path(prefix, "multi")

    async def go():
        store = shared_store(opts)
        await store.put(plain, b"1")
        uid = await store.create_multipart(multi)
        etag = await store.upload_part(multi, uid, 1, b"2")
        await store.complete_multipart(multi, uid, [etag])

    run(go())
    for p in (plain, multi):
        assert s3.head_object(Bucket=TEST_BUCKET, Key=p.key)["ServerSideEncryption"] == "AES256"


def test_sse_options_are_validated():
    with pytest.raises(ValueError, match="sse must be"):
        StoreOptions(sse="rot13")
    with pytest.raises(ValueError, match="needs sse='aws:kms'"):
        StoreOptions(sse="AES256", sse_kms_key_id="k")
