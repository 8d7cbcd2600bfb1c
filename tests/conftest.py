"""Shared fixtures: one real S3 endpoint per test session, reached over HTTP.

The endpoint is the rig (MinIO when its binary is on PATH, else moto's server), or an existing
endpoint named by ``WJ_TEST_S3_ENDPOINT`` (credentials then come from the usual AWS variables).
"""

from __future__ import annotations

import io
import itertools
import os
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import pytest_asyncio

from wjio import rig as rig_mod
from wjio.store import close_shared_stores

TEST_BUCKET = "wjio-test"


@pytest.fixture(scope="session")
def rig():
    external = os.environ.get("WJ_TEST_S3_ENDPOINT")
    if external:
        r = rig_mod.Rig(
            external, "external",
            access_key=os.environ.get("AWS_ACCESS_KEY_ID", rig_mod.ACCESS_KEY),
            secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", rig_mod.SECRET_KEY),
        )
        r.create_buckets(TEST_BUCKET)
        yield r
        return
    with rig_mod.start(buckets=(TEST_BUCKET,)) as r:
        yield r


@pytest.fixture(scope="session", autouse=True)
def aws_env(rig):
    """Point the standard AWS variables at the rig for the whole session, then restore them."""
    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            mp.delenv(key, raising=False)
        for key, value in rig.env().items():
            mp.setenv(key, value)
        yield


@pytest.fixture(scope="session")
def s3(rig):
    return rig.client()


_counter = itertools.count()


@pytest.fixture
def prefix(request) -> str:
    """A fresh key prefix per test: tests never see each other's objects."""
    name = request.node.name.replace("[", "_").replace("]", "").replace("/", "_")[:60]
    return f"t/{next(_counter)}-{name}-{uuid.uuid4().hex[:6]}/"


def parquet_bytes(table: pa.Table, **kwargs) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kwargs)
    return buf.getvalue()


@pytest.fixture
def put(s3):
    """put(key, table_or_bytes, **write_options) -> s3:// URI of the uploaded object."""

    def _put(key: str, data, **kwargs) -> str:
        body = data if isinstance(data, bytes | bytearray) else parquet_bytes(data, **kwargs)
        s3.put_object(Bucket=TEST_BUCKET, Key=key, Body=bytes(body))
        return f"s3://{TEST_BUCKET}/{key}"

    return _put


@pytest_asyncio.fixture(scope="session", loop_scope="session", autouse=True)
async def _close_async_stores():
    """Async tests share the session loop's S3 client; close it when the session ends."""
    yield
    await close_shared_stores()
