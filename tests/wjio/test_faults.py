"""Faults injected by the shaping proxy (tools/proxy.py) between wjio and the rig's endpoint."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import wjio
from tests.conftest import TEST_BUCKET, parquet_bytes
from tools.proxy import Faults, ShapingProxy
from wjio import errors


@pytest.fixture
def proxy(rig):
    with ShapingProxy(upstream=rig.endpoint_url, seed=42) as p:
        yield p


def _store(proxy, **kw) -> wjio.StoreOptions:
    # A tiny backoff keeps fault tests fast; the policy itself is the production one.
    return wjio.StoreOptions(
        endpoint_url=proxy.url, backoff_base_s=0.005, backoff_cap_s=0.05, **kw
    )


def _dataset(put, prefix, files=3):
    tables = []
    for k in range(files):
        rng = np.random.default_rng(k)
        t = pa.table(
            {
                "id": pa.array(np.arange(k * 5000, (k + 1) * 5000)),
                "x": pa.array(rng.normal(size=5000)),
                "s": pa.array([f"v{i % 313}" for i in range(5000)]),
            }
        )
        put(f"{prefix}part-{k}.parquet", t, row_group_size=500)
        tables.append(t)
    return f"s3://{TEST_BUCKET}/{prefix}", pa.concat_tables(tables)


def test_burst_of_503_gives_identical_result(put, prefix, proxy):
    uri, expected = _dataset(put, prefix)
    proxy.set_faults(Faults(burst=6, burst_kind="slowdown_503"))
    scan = wjio.ParquetScan(uri, store=_store(proxy))
    assert scan.to_table().equals(expected)
    assert proxy.stats().faults_injected == {"slowdown_503": 6}
    assert scan.stats.retries >= 6


@pytest.mark.parametrize(
    "faults",
    [
        Faults(reset_mid_body=0.3),
        Faults(truncate_body=0.3),
        Faults(error_500=0.2, slowdown_503=0.1, reset_mid_body=0.1, truncate_body=0.1),
    ],
    ids=["resets", "truncations", "mixed"],
)
def test_random_faults_give_identical_results(put, prefix, proxy, faults):
    uri, expected = _dataset(put, prefix)
    proxy.set_faults(faults)
    scan = wjio.ParquetScan(
        uri, columns=["id", "s"],
        store=_store(proxy, max_attempts=10),
    )
    assert scan.to_table().equals(expected.select(["id", "s"]))
    injected = sum(proxy.stats().faults_injected.values())
    assert injected > 0 and scan.stats.retries >= injected


def test_retries_are_bounded(put, prefix, proxy):
    uri = put(prefix + "f.parquet", pa.table({"a": [1, 2, 3]}))
    proxy.set_faults(Faults(slowdown_503=1.0))
    t0 = time.monotonic()
    with pytest.raises(errors.StoreUnavailableError, match=r"after 3 attempts.*SlowDown"):
        wjio.read_parquet(uri, store=_store(proxy, max_attempts=3))
    assert time.monotonic() - t0 < 5


def test_stalled_endpoint_times_out(put, prefix, proxy):
    uri = put(prefix + "f.parquet", pa.table({"a": [1, 2, 3]}))
    proxy.set_shaping(latency_s=3.0)
    t0 = time.monotonic()
    with pytest.raises(errors.StoreUnavailableError) as info:
        wjio.read_parquet(uri, store=_store(proxy, read_timeout_s=0.3, max_attempts=2))
    assert time.monotonic() - t0 < 2.5
    assert "X-Amz-" not in str(info.value) and "X-Amz-" not in str(info.value.__cause__)


async def test_object_replaced_mid_scan_fails_loudly(put, prefix):
    # Larger than the footer's tail read, so data GETs (with If-Match) must follow. A file
    # read whole with its footer is one consistent version and needs no check.
    values = np.random.default_rng(3).integers(0, 2**62, 100_000)
    data = parquet_bytes(pa.table({"a": values}), row_group_size=10_000)
    assert len(data) > 4 * wjio.ScanOptions().footer_read_size
    uri = put(prefix + "f.parquet", data)
    scan = wjio.ParquetScan(uri)
    await scan.plan()  # footer (and its ETag) read
    put(prefix + "f.parquet", parquet_bytes(pa.table({"a": list(range(5))})))
    with pytest.raises(errors.ObjectChangedError, match="replaced during the scan"):
        async for _ in scan:
            pass


async def test_cancellation_is_prompt(put, prefix, rig):
    uri, _ = _dataset(put, prefix, files=2)
    with ShapingProxy(upstream=rig.endpoint_url, latency_s=0.5) as slow:
        scan = wjio.ParquetScan(uri, store=_store(slow))
        task = asyncio.create_task(scan.to_table_async())
        await asyncio.sleep(0.7)  # footers done, data requests in flight
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 0.3
        await asyncio.sleep(0.6)
        # Nothing of the scan is left running on the loop.
        leftovers = [t for t in asyncio.all_tasks() if "_fetch_and_decode" in repr(t)]
        assert leftovers == []


def test_closing_reader_early_stops_fetching(put, prefix, proxy):
    uri, _ = _dataset(put, prefix, files=3)
    reader = wjio.open_reader(uri, store=_store(proxy), options=wjio.ScanOptions(
        memory_budget=64 * 1024, batch_size=100))
    next(iter(reader))
    reader.close()
    time.sleep(0.2)  # a request already on the wire may still land
    before = proxy.stats().requests
    time.sleep(0.3)
    assert proxy.stats().requests == before
    assert before < 20  # the whole scan takes ~34 requests


def test_scan_larger_than_budget_stays_within_it(put, prefix, proxy):
    n = 200_000
    t = pa.table({"id": pa.array(np.arange(n)), "x": pa.array(np.random.default_rng(0).normal(
        size=n))})
    data = parquet_bytes(t, row_group_size=10_000, compression="none")
    uri = put(prefix + "big.parquet", data)
    md = pq.read_metadata(pa.BufferReader(data))
    rg_bytes = md.row_group(0).total_byte_size
    budget = 4 * rg_bytes  # the whole scan is ~20 row groups: 5x the budget
    scan = wjio.ParquetScan(uri, store=_store(proxy),
                            options=wjio.ScanOptions(memory_budget=budget, concurrency=16))
    rows = 0
    arrow_high = 0
    base = pa.total_allocated_bytes()
    for batch in scan.to_batches():
        rows += batch.num_rows
        arrow_high = max(arrow_high, pa.total_allocated_bytes() - base)
        del batch
    assert rows == n
    # Decoded data really is bounded too (Arrow's allocator, sampled as batches arrive).
    assert arrow_high <= 2 * budget
    assert scan.stats.bytes_fetched > 4 * budget
    assert scan.stats.peak_memory <= budget
