"""Large row groups decoded by polars from row-group images: every result equals pyarrow's own
read of the same file (types included), and pyarrow reads the images as the row groups."""

from __future__ import annotations

import datetime
import decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import wjio
import wjio.scan as scan_module
from tests.conftest import parquet_bytes
from tests.wjio.support import chunks_of, footer_of
from wjio import polars_decode
from wjio.decode import FetchedBytes, decode_row_group
from wjio.ranges import column_chunk_range
from wjio.row_group_image import ThriftError, footer_layout, image


def _table(n: int) -> pa.Table:
    rng = np.random.default_rng(11)
    ints = rng.integers(-1_000_000, 1_000_000, n)
    valid = rng.random(n) > 0.1
    base = datetime.datetime(2024, 1, 1)
    return pa.table({
        "i8": pa.array(ints % 100, pa.int8()),
        "u16": pa.array(np.abs(ints) % 60_000, pa.uint16()),
        "i32": pa.array(ints, pa.int32(), mask=~valid),
        "i64": pa.array(ints * 1_000_003, pa.int64()),
        "f32": pa.array(rng.normal(size=n), pa.float32()),
        "f64": pa.array(np.where(valid, rng.normal(size=n), np.nan)),
        "flag": pa.array(ints % 3 == 0, mask=~valid),
        "day": pa.array([datetime.date(2020, 1, 1) + datetime.timedelta(days=int(i % 900))
                         for i in ints], pa.date32()),
        "ts_us": pa.array([base + datetime.timedelta(microseconds=int(i) * 7) for i in ints],
                          pa.timestamp("us")),
        "ts_ms_utc": pa.array([int(i) * 1_000 for i in ints], pa.timestamp("ms", tz="UTC")),
        "ts_ns_paris": pa.array([int(i) * 10**9 for i in ints],
                                pa.timestamp("ns", tz="Europe/Paris")),
        "dec": pa.array([decimal.Decimal(int(i)).scaleb(-2) for i in ints], pa.decimal128(18, 2)),
        "dec38": pa.array([decimal.Decimal(int(i) * 10**20).scaleb(-10) for i in ints],
                          pa.decimal128(38, 10)),
        "s": pa.array([f"value-{i % 977}-{i}" if v else None
                       for i, v in zip(ints, valid, strict=True)]),
        "low": pa.array([["red", "green", "blue"][i % 3] for i in ints]),
        "large": pa.array([f"L{i}" for i in ints], pa.large_string()),
        "bin": pa.array([bytes([i % 256]) * 3 for i in ints], pa.binary()),
        "st": pa.array([{"x": int(i), "y": f"y{i}"} for i in ints]),
        "li": pa.array([[int(i), int(i) + 1] for i in ints], pa.list_(pa.int64())),
    })


def _local(data: bytes, columns=None, filter=None) -> pa.Table:
    return pq.read_table(pa.BufferReader(data), columns=columns, filters=filter)


def _same(got: pa.Table, expected: pa.Table) -> bool:
    """Equal schemas and values, a NaN equal to a NaN (``Table.equals`` holds them unequal)."""
    if not got.schema.equals(expected.schema) or got.num_rows != expected.num_rows:
        return False
    for a, b in zip(got.columns, expected.columns, strict=True):
        if pa.types.is_floating(a.type):
            if not (a.is_null().equals(b.is_null()) and np.array_equal(
                    a.to_numpy(), b.to_numpy(), equal_nan=True)):
                return False
        elif not a.equals(b):
            return False
    return True


@pytest.fixture
def polars_used(monkeypatch):
    """Every row group counts as large (decoded by polars where it can); the names of the
    columns polars decoded are collected."""
    monkeypatch.setattr(scan_module, "_LARGE_ROW_GROUP_BYTES", 0)
    used: list[str] = []
    real = polars_decode.decode

    def spy(*args):
        tables = real(*args)
        for table in tables or ():
            used.extend(table.column_names)
        return tables

    monkeypatch.setattr(polars_decode, "decode", spy)
    return used


@pytest.mark.parametrize("write_opts", [
    {},
    {"compression": "zstd", "use_dictionary": False, "data_page_version": "2.0"},
    {"write_page_index": True, "compression": "none", "data_page_size": 4_096},
], ids=["default", "zstd-plain-v2", "page-index-uncompressed"])
def test_large_row_groups_equal_local_read(put, prefix, polars_used, write_opts):
    data = parquet_bytes(_table(5_000), row_group_size=1_200, **write_opts)
    uri = put(prefix + "f.parquet", data)
    assert _same(wjio.ParquetScan(uri).to_table(), _local(data))
    decoded = set(polars_used)
    # polars took every flat column of a type it decodes exactly, pyarrow the rest
    assert {"i8", "u16", "i32", "f64", "flag", "day", "ts_us", "ts_ns_paris", "dec38", "s",
            "large"} <= decoded
    assert not decoded & {"bin", "st", "li"}


def test_projection_filter_and_dictionary_columns(put, prefix, polars_used):
    data = parquet_bytes(_table(4_000), row_group_size=1_000)
    uri = put(prefix + "f.parquet", data)
    conjuncts = [pc.field("i32") > 0, pc.field("low") == "red"]
    got = wjio.ParquetScan(uri, columns=["s", "dec", "low", "st"], filter=conjuncts,
                           dictionary=True).to_table()
    expected = _local(data, ["s", "dec", "low", "st"], conjuncts[0] & conjuncts[1])
    assert got.equals(expected)
    assert "low" not in polars_used  # read as a dictionary: pyarrow's
    assert {"s", "dec", "i32"} <= set(polars_used)


def test_strings_polars_refuses_are_read_by_pyarrow(put, prefix, polars_used):
    # Not UTF-8: pyarrow writes and reads the bytes as they are; polars refuses them.
    raw = [b"ok", b"\xff\xfe bad", b"fine"] * 400
    offsets = np.cumsum([0] + [len(v) for v in raw]).astype(np.int32)
    strings = pa.Array.from_buffers(pa.string(), len(raw),
                                    [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(raw))])
    data = parquet_bytes(pa.table({"s": strings, "n": np.arange(len(raw))}),
                         row_group_size=500)
    uri = put(prefix + "f.parquet", data)
    got = wjio.ParquetScan(uri).to_table()
    assert got.equals(_local(data))
    assert "s" not in polars_used


@pytest.mark.parametrize("write_opts", [{}, {"write_page_index": True}])
def test_image_reads_as_its_row_group(write_opts):
    data = parquet_bytes(_table(3_000), row_group_size=1_000, **write_opts)
    footer = footer_of(data)
    md = footer.metadata
    names = ["i32", "s", "ts_ns_paris", "dec38"]
    leaves = {md.schema.column(i).path: i for i in range(md.num_columns)}
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        chunks = []
        for name in names:
            r = column_chunk_range(rg.column(leaves[name]), len(data), md.created_by)
            chunks.append((leaves[name], r, [memoryview(data)[r.start : r.end]]))
        one = image(footer.layout(leaves.values()), [(g, rg.num_rows, chunks)])
        assert len(one) < len(data) // 2  # only these chunks and the footer
        # pyarrow, not the decoder the image is made for, reads it as that row group
        assert pq.read_metadata(pa.BufferReader(one)).num_row_groups == 1
        got = pq.read_table(pa.BufferReader(one), columns=names)
        assert got.equals(_local(data, names).slice(g * 1_000, 1_000))


@pytest.mark.parametrize("order", [[3, 0, 2], [*range(19, -1, -1)]], ids=["three", "twenty"])
def test_image_of_several_row_groups_reads_as_them_in_its_order(order):
    # (twenty: a list of 15 or more row groups has a long header)
    data = parquet_bytes(_table(19_500), row_group_size=1_000)  # the last one is smaller
    footer = footer_of(data)
    md = footer.metadata
    names = ["i64", "s", "dec"]
    leaves = {md.schema.column(i).path: i for i in range(md.num_columns)}
    layout = footer.layout([leaves[n] for n in names])
    parts = []
    for g in order:
        rg = md.row_group(g)
        chunks = []
        for name in names:
            r = column_chunk_range(rg.column(leaves[name]), len(data), md.created_by)
            chunks.append((leaves[name], r, [data[r.start : r.end]]))
        parts.append((g, rg.num_rows, chunks))
    got = pq.read_table(pa.BufferReader(image(layout, parts)), columns=names)
    whole = _local(data, names)
    assert got.equals(pa.concat_tables([whole.slice(g * 1_000, 1_000) for g in order]))
    assert got.num_rows == sum(md.row_group(g).num_rows for g in order)
    assert pq.read_metadata(pa.BufferReader(image(layout, parts))).num_row_groups == len(order)
    # a chunk of a column the layout was not walked for cannot be placed
    r = column_chunk_range(md.row_group(0).column(leaves["f64"]), len(data), md.created_by)
    with pytest.raises(ValueError, match="not one the footer layout places"):
        image(layout, [(0, 1_000, [(leaves["f64"], r, [data[r.start : r.end]])])])


def test_footer_that_does_not_walk_is_refused():
    data = parquet_bytes(_table(100))
    raw = bytes(footer_of(data).footer_only[4:-8])
    assert footer_layout(raw, {0}).row_groups
    for cut in (raw[:-1], raw[: len(raw) // 2], raw + b"\x00"):
        with pytest.raises(ThriftError):
            footer_layout(cut, {0})


def test_chunk_outside_the_fetched_ranges_is_left_to_pyarrow():
    data = parquet_bytes(_table(2_000), row_group_size=1_000)
    footer, columns, output, ranges, whole = chunks_of(data, 1, ["i64", "s"])
    got = decode_row_group(footer, 1, [(whole, columns)], True, {}, None, output)
    assert got.equals(_local(data, ["i64", "s"]).slice(1_000))
    assert FetchedBytes("x", whole[:1]).slices(ranges[1]) is None
    short = [whole[0], (ranges[1].start, data[ranges[1].start : ranges[1].end - 1])]
    for pieces in (short, whole[:1]):
        with pytest.raises(wjio.errors.ParquetFormatError, match="fetched ranges"):
            decode_row_group(footer, 1, [(pieces, columns)], True, {}, None, output)
