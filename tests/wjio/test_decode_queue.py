"""Small row groups decoded in batches (wjio.decode_queue): every result equals pyarrow's own
read of the same file, whatever the batching, the decoder of each column, or a failure."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import wjio
from tests.conftest import TEST_BUCKET, parquet_bytes
from tests.wjio.support import footer_of
from wjio import decode_queue, errors, polars_decode
from wjio.decode import FetchedRowGroup, decode_columns, decode_pool
from wjio.decode_queue import DecodeQueue
from wjio.ranges import column_chunk_range
from wjio.row_group_image import ThriftError

SIZES = (1_000, 37, 2_500, 1, 800, 4_000)  # rows of each row group


def _table(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    ints = rng.integers(-10**9, 10**9, n)
    valid = rng.random(n) > 0.1
    return pa.table({
        "i64": pa.array(ints),
        "f64": pa.array(rng.normal(size=n), mask=~valid),
        "s": pa.array([f"v{i % 301}-{i}" if v else None for i, v in zip(ints, valid, strict=True)]),
        "low": pa.array([["red", "green", "blue"][i % 3] for i in ints]),
        "ts": pa.array(ints * 1_000, pa.timestamp("us", tz="UTC")),
        "dec": pa.array([decimal.Decimal(int(i)).scaleb(-3) for i in ints], pa.decimal128(18, 3)),
        "day": pa.array([datetime.date(2021, 1, 1) + datetime.timedelta(days=int(i % 500))
                         for i in ints]),
        "bin": pa.array([bytes([i % 256]) * 2 for i in ints], pa.binary()),  # not polars'
        "li": pa.array([[int(i)] for i in ints]),  # not polars' (repeated)
    })


def _mixed_sizes(seed: int = 0, **write_opts) -> bytes:
    """A file whose row groups have the rows of :data:`SIZES`."""
    tables = [_table(n, seed + i) for i, n in enumerate(SIZES)]
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, tables[0].schema, **write_opts) as w:
        for t in tables:
            w.write_table(t, row_group_size=len(t))
    return buf.getvalue()


def _local(data: bytes, columns=None, filters=None) -> pa.Table:
    return pq.read_table(pa.BufferReader(data), columns=columns, filters=filters)


@pytest.fixture
def polars_calls(monkeypatch):
    """The row groups of each polars read, and the columns it decoded; polars reads every
    batch, however small (these files are)."""
    monkeypatch.setattr(decode_queue, "POLARS_BATCH_BYTES", 0)
    calls: list[tuple[list[int], list[str]]] = []
    real = polars_decode.decode

    def spy(footer, names, row_groups, leaves):
        tables = real(footer, names, row_groups, leaves)
        calls.append(([g for g, _ in row_groups],
                      tables[0].column_names if tables else []))
        return tables

    monkeypatch.setattr(polars_decode, "decode", spy)
    return calls


def _queue_inputs(data: bytes, names: list[str]):
    footer = footer_of(data)
    md = footer.metadata
    columns = decode_columns(md.schema, names)
    output = pa.schema([footer.schema.field(n) for n in names])

    def fetched(g: int) -> FetchedRowGroup:
        rg = md.row_group(g)
        pieces = []
        for c in columns:
            for leaf in c.leaves:
                r = column_chunk_range(rg.column(leaf), len(data), md.created_by)
                body = data[r.start : r.end]
                pieces.append((r.start, [body[: len(body) // 3], body[len(body) // 3 :]]))
        return FetchedRowGroup(g, pieces, {}, None)

    return footer, columns, output, fetched


NAMES = ["i64", "f64", "s", "ts", "dec", "day", "bin", "li"]


async def test_row_groups_waiting_for_a_thread_decode_together(polars_calls):
    data = _mixed_sizes()
    footer, columns, output, fetched = _queue_inputs(data, NAMES)
    queue = DecodeQueue(decode_pool(2), 1, 1 << 30, columns, output)
    first = asyncio.ensure_future(queue.decode(0, footer, fetched(0), {}, 1))
    for _ in range(3):
        await asyncio.sleep(0)  # the first is on its thread: the others wait
    rest = asyncio.gather(*(queue.decode(g, footer, fetched(g), {}, 1)
                            for g in range(1, len(SIZES))))
    got = [await first, *await rest]
    f = pq.ParquetFile(pa.BufferReader(data))
    for g, (table, size) in enumerate(got):
        assert table.equals(f.read_row_group(g, columns=NAMES))
        assert size == table.nbytes
    # one thread: the first row group alone, then all the others that waited, in one read
    assert [rgs for rgs, _ in polars_calls] == [[0], [1, 2, 3, 4, 5]]
    assert set(polars_calls[1][1]) == {"i64", "f64", "s", "ts", "dec", "day"}


async def test_batches_are_capped_by_bytes_and_shared_among_threads(polars_calls):
    data = _mixed_sizes()
    footer, columns, output, fetched = _queue_inputs(data, ["i64", "s"])
    queue = DecodeQueue(decode_pool(2), 1, 2, columns, output)  # two "bytes" a batch
    await asyncio.gather(*(queue.decode(g, footer, fetched(g), {}, 1) for g in range(6)))
    assert [rgs for rgs, _ in polars_calls] == [[0, 1], [2, 3], [4, 5]]
    polars_calls.clear()
    queue = DecodeQueue(decode_pool(2), 2, 1 << 30, columns, output)
    await asyncio.gather(*(queue.decode(g, footer, fetched(g), {}, 1) for g in range(6)))
    # two threads: the row groups that arrived together are shared out, half each
    assert sorted(rgs for rgs, _ in polars_calls) == [[0, 1, 2], [3, 4, 5]]


async def test_a_failed_batch_fails_each_of_its_row_groups_and_a_cancelled_one_is_skipped(
        polars_calls):
    data = _mixed_sizes()
    footer, columns, output, fetched = _queue_inputs(data, ["i64", "s"])
    queue = DecodeQueue(decode_pool(2), 1, 1 << 30, columns, output)
    good = fetched(0)
    broken = [fetched(g) for g in (1, 2)]
    for f in broken:  # every byte of the chunks garbled: neither polars nor pyarrow decodes
        f.pieces[:] = [(start, [b"\xff" * sum(len(p) for p in parts)])
                       for start, parts in f.pieces]
    first = asyncio.ensure_future(queue.decode(0, footer, good, {}, 1))
    for _ in range(3):
        await asyncio.sleep(0)  # the good one is on the thread, alone
    failing = [asyncio.ensure_future(queue.decode(g, footer, f, {}, 1))
               for g, f in zip((1, 2), broken, strict=True)]
    dropped = asyncio.ensure_future(queue.decode(3, footer, fetched(3), {}, 1))
    await asyncio.sleep(0)
    dropped.cancel()  # while it waits: it is left out of the next batch
    table, _ = await first
    assert table.equals(pq.ParquetFile(pa.BufferReader(data)).read_row_group(
        0, columns=["i64", "s"]))
    for f in failing:
        with pytest.raises(errors.ParquetFormatError, match="does not decode"):
            await f
    assert dropped.cancelled()
    assert [rgs for rgs, _ in polars_calls] == [[0], [1, 2]]


@pytest.mark.parametrize("write_opts", [
    {},
    {"compression": "zstd", "use_dictionary": False, "data_page_version": "2.0"},
    {"write_page_index": True, "compression": "none", "data_page_size": 1_024},
], ids=["default", "zstd-plain-v2", "page-index-uncompressed"])
def test_scan_of_small_row_groups_of_different_sizes_equals_local_read(
        put, prefix, polars_calls, write_opts):
    data = _mixed_sizes(**write_opts)
    uri = put(prefix + "f.parquet", data)
    one_batch_at_a_time = wjio.ScanOptions(decode_threads=2)  # more waiting, larger batches
    assert wjio.ParquetScan(uri, options=one_batch_at_a_time).to_table().equals(_local(data))
    decoded = {n for _, names in polars_calls for n in names}
    assert {"i64", "f64", "s", "ts", "dec", "day"} <= decoded
    assert not decoded & {"bin", "li"}
    assert sorted(g for rgs, _ in polars_calls for g in rgs) == list(range(len(SIZES)))


def test_a_batch_too_small_for_polars_is_pyarrows(put, prefix, monkeypatch):
    calls = []
    monkeypatch.setattr(polars_decode, "decode", lambda *a: calls.append(a))
    data = _mixed_sizes()  # ~1 MB in all, in six row groups
    uri = put(prefix + "f.parquet", data)
    assert wjio.ParquetScan(uri, columns=["i64"]).to_table().equals(_local(data, ["i64"]))
    assert calls == []


def test_files_batch_apart_with_filter_dictionary_and_partitions(put, prefix, polars_calls):
    datas = [_mixed_sizes(seed=10 * i) for i in range(3)]
    for i, data in enumerate(datas):
        put(f"{prefix}p={i}/f.parquet", data)
    conjuncts = [pc.field("i64") > 0, pc.field("low") == "green"]
    got = wjio.ParquetScan(f"s3://{TEST_BUCKET}/{prefix}", columns=["s", "dec", "low", "p"],
                           filter=conjuncts, dictionary=True,
                           options=wjio.ScanOptions(decode_threads=2)).to_table()
    parts = []
    for i, data in enumerate(datas):
        part = _local(data, ["s", "dec", "low"], conjuncts[0] & conjuncts[1])
        parts.append(part.append_column("p", pa.repeat(pa.scalar(i, pa.int32()),
                                                       part.num_rows)))
    assert got.equals(pa.concat_tables(parts))
    assert {"s", "dec", "i64"} <= {n for _, names in polars_calls for n in names}


def test_strings_polars_refuses_leave_the_batch_to_pyarrow(put, prefix, polars_calls):
    raw = [b"ok", b"\xff\xfe bad", b"fine"] * 300
    offsets = np.cumsum([0] + [len(v) for v in raw]).astype(np.int32)
    strings = pa.Array.from_buffers(pa.string(), len(raw),
                                    [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(raw))])
    data = _mixed_sizes_of(pa.table({"s": strings, "n": np.arange(len(raw))}), (500, 7, 393))
    uri = put(prefix + "f.parquet", data)
    assert wjio.ParquetScan(uri).to_table().equals(_local(data))
    assert polars_calls and not any(names for _, names in polars_calls)


def test_a_footer_polars_images_cannot_be_made_of_is_read_by_pyarrow(
        put, prefix, monkeypatch, polars_calls):
    def refuse(*_):
        raise ThriftError("not this footer")

    monkeypatch.setattr(polars_decode, "image", refuse)
    data = _mixed_sizes()
    uri = put(prefix + "f.parquet", data)
    assert wjio.ParquetScan(uri, columns=["s", "i64"]).to_table().equals(
        _local(data, ["s", "i64"]))
    assert polars_calls and not any(names for _, names in polars_calls)


def _mixed_sizes_of(table: pa.Table, sizes: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, table.schema) as w:
        start = 0
        for n in sizes:
            w.write_table(table.slice(start, n), row_group_size=n)
            start += n
    return buf.getvalue()


def test_a_small_scan_spreads_its_ranges_over_more_connections(put, prefix):
    values = np.random.default_rng(5).integers(0, 2**62, (2, 50_000))
    data = parquet_bytes(pa.table({"a": values[0], "b": values[1]}), compression="none",
                         use_dictionary=False)  # ~400 kB a column
    uri = put(prefix + "f.parquet", data)
    small_tail = {"footer_read_size": 4_096}  # no chunk at hand in the footer's read
    scan = wjio.ParquetScan(uri, options=wjio.ScanOptions(**small_tail))
    assert scan.to_table().equals(_local(data))
    # the two chunks are one range of ~800 kB: over twelve connections, pieces of ~67 kB,
    # but not under min_range_size (128 KiB)
    total = scan.stats.bytes_needed
    assert 12 * 128 * 1024 > total > 4 * 128 * 1024
    assert scan.stats.requests - scan.stats.footer_requests == -(-total // (128 * 1024))
    assert scan.stats.bytes_fetched - total < 4_096 + 8  # (the footer's read)
    whole = wjio.ParquetScan(uri, options=wjio.ScanOptions(**small_tail,
                                                           min_range_size=8 << 20))
    assert whole.to_table().equals(_local(data))
    assert whole.stats.requests - whole.stats.footer_requests == 1
