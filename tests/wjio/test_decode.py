"""Decoding from fetched ranges: chunks split across requests, struct leaves in separate
ranges, and the in-flight byte window, each compared with pyarrow's local read."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import wjio
import wjio.scan as scan_module
from tests.conftest import parquet_bytes
from tests.wjio.support import chunks_of, footer_of
from tools.proxy import ShapingProxy
from wjio import errors
from wjio.decode import (
    DecodeColumn,
    DecodeUnit,
    decode_columns,
    decode_pool,
    decode_row_group,
    plan_units,
)
from wjio.ranges import ByteRange, column_chunk_range, plan_fetch
from wjio.stats import ScanStats
from wjio.store import shared_store
from wjio.uri import S3Path


def _table(n: int) -> pa.Table:
    rng = np.random.default_rng(7)
    return pa.table(
        {
            "id": pa.array(np.arange(n, dtype=np.int64)),
            "s": pa.array([f"value-{i % 977}-{i}" for i in range(n)]),
            "st": pa.array(
                [{"x": i, "y": f"y{i}" * 3, "z": {"w": float(i)}} for i in range(n)]
            ),
            "f": pa.array(rng.normal(size=n)),
        }
    )


def _local(data: bytes, columns=None) -> pa.Table:
    return pq.ParquetFile(pa.BufferReader(data)).read(columns=columns)


@pytest.mark.parametrize(
    ("options", "columns"),
    [
        # every chunk is split into several requests: decoding joins the pieces
        ({"range_size_limit": 3_000}, None),
        ({"range_size_limit": 3_000}, ["st.z.w", "id"]),
        # no hole bridged: each chunk is its own request, a struct's leaves in separate ones
        ({"hole_size_limit": 0}, ["st.x", "st.z.w", "f"]),
        ({"hole_size_limit": 0}, None),
        ({}, ["s", "st"]),
    ],
    ids=["split", "split-struct-leaf", "struct-leaves-apart", "no-holes", "default"],
)
def test_decoded_pieces_equal_local_read(put, prefix, options, columns):
    data = parquet_bytes(_table(6_000), row_group_size=1_500)
    uri = put(prefix + "f.parquet", data)
    scan = wjio.ParquetScan(
        uri, columns=columns, options=wjio.ScanOptions(footer_read_size=64, **options)
    )
    got = scan.to_table()
    expected = _local(data, columns)
    assert got.schema.equals(expected.schema)
    assert got.equals(expected)
    assert scan.stats.bytes_fetched - 64 <= scan.stats.bytes_needed + 8 * 1024 * 4


@given(
    st.lists(st.tuples(st.integers(0, 5_000), st.integers(1, 400)), min_size=1, max_size=12),
    st.integers(0, 300),
    st.integers(50, 3_000),
)
def test_units_wait_for_exactly_the_ranges_holding_their_chunks(chunks, hole, limit):
    by_leaf = {}
    pos = 0
    for leaf, (gap, size) in enumerate(chunks):  # leaves in file order, as Parquet lays them
        by_leaf[leaf] = ByteRange(pos + gap, pos + gap + size)
        pos += gap + size
    fetch = plan_fetch(by_leaf.values(), hole_size_limit=hole, range_size_limit=limit)
    # top-level columns of one or two adjacent leaves (a struct)
    columns = [DecodeColumn(f"c{i}", (f"c{i}",), tuple(range(i, min(i + 1 + i % 2, len(chunks)))))
               for i in range(0, len(chunks), 2)]
    units = plan_units(columns, by_leaf, fetch)
    assert sorted(c.name for u in units for c in u.columns) == sorted(c.name for c in columns)
    for u in units:
        for c in u.columns:
            expected = {i for i, f in enumerate(fetch) for leaf in c.leaves
                        if f.start < by_leaf[leaf].end and by_leaf[leaf].start < f.end}
            assert set(u.fetch) == expected and expected
    assert plan_units([], by_leaf, fetch) == (DecodeUnit((), ()),)


def test_units_at_hand_decode_before_the_rest_arrives(put, prefix, monkeypatch):
    data = parquet_bytes(_table(3_000), row_group_size=1_000)
    md = pq.read_metadata(pa.BufferReader(data))
    last = md.row_group(md.num_row_groups - 1)
    # The speculative footer read also holds the last row group's last chunk: that column is
    # at hand and decodes first, alone; the others follow once fetched.
    tail_from = column_chunk_range(last.column(md.num_columns - 1), len(data), md.created_by)
    uri = put(prefix + "f.parquet", data)
    # (units are decoded early in large row groups; a small one waits for all its ranges)
    monkeypatch.setattr(scan_module, "_LARGE_ROW_GROUP_BYTES", 0)
    early = []
    real = scan_module.decode_units
    monkeypatch.setattr(scan_module, "decode_units",
                        lambda *a: early.append(a[1]) or real(*a))
    got = wjio.ParquetScan(uri, options=wjio.ScanOptions(
        footer_read_size=len(data) - tail_from.start, hole_size_limit=0)).to_table()
    assert got.equals(_local(data))
    assert early == [md.num_row_groups - 1]


def test_chunk_outside_the_fetched_ranges_is_an_error():
    data = parquet_bytes(_table(2_000), row_group_size=1_000)
    footer, columns, output, ranges, whole = chunks_of(data, 1, ["id", "s"])
    got = decode_row_group(footer, 1, [(whole, columns)], False, {}, None, output)
    assert got.equals(_local(data, ["id", "s"]).slice(1_000))
    # The second chunk cut short by one byte, or missing: never decoded from other memory.
    short = [whole[0], (ranges[1].start, data[ranges[1].start : ranges[1].end - 1])]
    for pieces in (short, whole[:1]):
        with pytest.raises(errors.ParquetFormatError, match=r"s3://b/t.parquet.*fetched ranges"):
            decode_row_group(footer, 1, [(pieces, columns)], False, {}, None, output)


def test_pieces_in_parts_decode_like_whole_ones():
    data = parquet_bytes(_table(3_000), row_group_size=1_000)
    footer = footer_of(data)
    md = footer.metadata
    columns = decode_columns(md.schema, footer.schema.names)
    output = footer.schema
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        start = column_chunk_range(rg.column(0), len(data), md.created_by).start
        end = column_chunk_range(rg.column(md.num_columns - 1), len(data), md.created_by).end
        # the row group as one response body that arrived in uneven parts
        cuts = [start, start + 1, start + 7, (start + end) // 2, end - 3, end]
        parts = [data[a:b] for a, b in itertools.pairwise(cuts)]
        got = decode_row_group(footer, g, [([(start, parts)], columns)], False, {}, None, output)
        assert got.equals(_local(data).slice(g * 1_000, 1_000))


async def test_range_parts_join_to_the_range(put, prefix):
    body = np.random.default_rng(3).bytes(3_000_000)
    uri = put(prefix + "blob.bin", body)
    store = shared_store(wjio.StoreOptions())
    path = S3Path.parse(uri)
    stats = ScanStats()
    parts = await store.get_range_parts(path, 1_000, 2_900_001, stats=stats)
    assert b"".join(parts) == body[1_000:2_900_001]
    assert stats.bytes_fetched == 2_899_001
    assert await store.get_range_parts(path, 5, 5) == []


def test_bytes_in_flight_bounds_the_requests(put, prefix, rig):
    data = parquet_bytes(_table(6_000), row_group_size=500)
    uri = put(prefix + "f.parquet", data)
    expected = _local(data)
    with ShapingProxy(upstream=rig.endpoint_url) as proxy:
        store = wjio.StoreOptions(endpoint_url=proxy.url)
        for limit, most in ((1, 1), (10**9, None)):
            proxy.reset_stats()
            scan = wjio.ParquetScan(uri, store=store, options=wjio.ScanOptions(
                bytes_in_flight=limit, footer_read_size=64))
            assert scan.to_table().equals(expected)
            in_flight = proxy.stats().max_in_flight
            if most is not None:
                assert in_flight == most  # one request at a time (each larger than the limit)
            else:
                assert in_flight > 1


def test_scans_share_the_decode_threads(put, prefix):
    uri = put(prefix + "f.parquet", parquet_bytes(_table(3_000), row_group_size=300))
    options = wjio.ScanOptions(decode_threads=3)
    assert decode_pool(3) is decode_pool(3)
    wjio.ParquetScan(uri, options=options).to_table()
    threads = {t.ident for t in threading.enumerate() if t.name.startswith("wjio-decode-3")}
    wjio.ParquetScan(uri, options=options).to_table()
    again = {t.ident for t in threading.enumerate() if t.name.startswith("wjio-decode-3")}
    # (the pool starts its threads as work comes: the second scan may start one more of them)
    pool_threads = {t.ident for t in decode_pool(3)._threads}
    assert threads and threads <= again <= pool_threads and len(pool_threads) <= 3
