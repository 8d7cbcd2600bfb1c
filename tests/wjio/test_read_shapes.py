"""wjio over HTTP equals pyarrow's local read of the same bytes, across many data shapes."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import wjio
from tests.conftest import TEST_BUCKET, parquet_bytes


def _wide_table(n: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "id": pa.array(np.arange(n, dtype=np.int64)),
            "i32": pa.array(rng.integers(-1000, 1000, n).astype(np.int32)),
            "f64": pa.array(rng.normal(size=n)),
            "s": pa.array([f"str-{i % 1000}" for i in range(n)]),
            "cat": pa.array(rng.choice(["a", "b", "c"], n)).dictionary_encode(),
            "opt": pa.array([None if i % 7 == 0 else i for i in range(n)], pa.int64()),
            "ts": pa.array(np.arange(n, dtype=np.int64) * 1_000_003, pa.timestamp("us", tz="UTC")),
            "d": pa.array([dt.date(2020, 1, 1) + dt.timedelta(days=i % 365) for i in range(n)]),
            "dec": pa.array([decimal.Decimal(i) / 100 for i in range(n)], pa.decimal128(12, 2)),
            "flag": pa.array(rng.integers(0, 2, n).astype(bool)),
            "st": pa.array([{"x": i, "y": f"y{i % 5}", "z": {"w": float(i)}} for i in range(n)]),
            "lst": pa.array(
                [[i, i + 1] if i % 3 else None for i in range(n)], pa.list_(pa.int32())
            ),
        }
    )


def _local(data: bytes, **kwargs) -> pa.Table:
    return pq.read_table(pa.BufferReader(data), **kwargs)


@pytest.mark.parametrize(
    "write_opts",
    [
        {"row_group_size": 10_000},
        {"row_group_size": 500, "compression": "zstd"},
        {"row_group_size": 1_000, "compression": "none", "use_dictionary": False},
        {"row_group_size": 2_000, "data_page_size": 4096, "write_statistics": False},
    ],
    ids=["one-rg", "many-rg-zstd", "plain-uncompressed", "small-pages-no-stats"],
)
def test_full_read_equals_local(put, prefix, write_opts):
    table = _wide_table(10_000)
    data = parquet_bytes(table, **write_opts)
    uri = put(prefix + "f.parquet", data)
    got = wjio.read_parquet(uri)
    assert got.equals(_local(data))


@pytest.mark.parametrize(
    "columns",
    [["id"], ["s", "f64"], ["st"], ["st.x"], ["st.z.w", "st.y"], ["lst", "cat"], []],
)
def test_projection_equals_local(put, prefix, columns):
    table = _wide_table(4_000)
    data = parquet_bytes(table, row_group_size=700)
    uri = put(prefix + "f.parquet", data)
    scan = wjio.ParquetScan(uri, columns=columns)
    got = scan.to_table()
    # A dotted path keeps its struct, pruned: ParquetFile.read's shape (read_table would
    # return the bare leaf instead).
    expected = pq.ParquetFile(pa.BufferReader(data)).read(columns=columns)
    assert got.schema.equals(expected.schema), (got.schema, expected.schema)
    assert got.equals(expected)
    assert got.num_rows == 4_000
    # Precise: only the projected columns' chunks are counted as needed.
    md = pq.read_metadata(pa.BufferReader(data))
    wanted = {c.split(".")[0] for c in columns}
    needed = sum(
        md.row_group(r).column(c).total_compressed_size
        for r in range(md.num_row_groups)
        for c in range(md.num_columns)
        if md.row_group(r).column(c).path_in_schema.split(".")[0] in wanted
        and any(
            md.row_group(r).column(c).path_in_schema == col
            or md.row_group(r).column(c).path_in_schema.startswith(col + ".")
            for col in columns
        )
    )
    assert scan.stats.bytes_needed == needed


FILTERS = [
    pc.field("id") < 1234,
    (pc.field("id") >= 3000) & (pc.field("id") < 3100),
    pc.field("opt").is_null(),
    pc.field("s").isin(["str-1", "str-999"]),
    (pc.field("i32") > 900) | (pc.field("id") == 5),
    pc.field("st", "x") > 3900,
    ~(pc.field("id") < 3990),
    pc.field("d") == pa.scalar(dt.date(2020, 2, 1)),
    pc.field("dec") > pa.scalar(decimal.Decimal("35.00"), pa.decimal128(12, 2)),
    pc.field("id") < 0,
]


@pytest.mark.parametrize("expr", FILTERS, ids=[str(f)[:40] for f in FILTERS])
def test_filter_equals_local(put, prefix, expr):
    table = _wide_table(4_000)
    data = parquet_bytes(table, row_group_size=500)
    uri = put(prefix + "f.parquet", data)
    scan = wjio.ParquetScan(uri, columns=["id", "s", "opt"], filter=expr)
    got = scan.to_table()
    expected = _local(data, filters=expr).select(["id", "s", "opt"])
    assert got.equals(expected)
    assert scan.stats.rows == expected.num_rows


def test_row_groups_pruned_by_statistics(put, prefix):
    table = _wide_table(8_000)
    data = parquet_bytes(table, row_group_size=1_000)  # id sorted: rg k holds k*1000..
    uri = put(prefix + "f.parquet", data)
    scan = wjio.ParquetScan(uri, columns=["f64"], filter=(pc.field("id") >= 2500) &
                            (pc.field("id") < 4100))
    got = scan.to_table()
    assert got.num_rows == 1600
    assert scan.stats.row_groups_total == 8
    assert scan.stats.row_groups_pruned == 5  # rgs 2, 3, 4 survive


@pytest.mark.parametrize(("expr", "filtered"), [
    ((pc.field("id") >= 2000) & (pc.field("id") < 5000), set()),  # whole row groups 2-4
    ((pc.field("id") >= 2000) & (pc.field("id") < 4999), {4}),
    ((pc.field("id") >= 2001) & (pc.field("opt") >= 0), {2, 3, 4, 5, 6, 7}),  # opt has nulls
    (pc.field("opt").is_null() | (pc.field("id") >= 6000), {0, 1, 2, 3, 4, 5}),
])
def test_row_groups_the_statistics_prove_are_not_filtered(put, prefix, monkeypatch, expr,
                                                          filtered):
    """A row group whose statistics prove the filter true on every row is not filtered (its
    rows are all kept); the others are, and the result equals pyarrow's."""
    from wjio import decode_queue

    seen = []
    real = decode_queue.decode_row_groups
    monkeypatch.setattr(decode_queue, "decode_row_groups", lambda *a: seen.extend(
        (f.row_group, f.row_filter is not None) for f in a[2]) or real(*a))
    table = _wide_table(8_000)
    data = parquet_bytes(table, row_group_size=1_000)
    scan = wjio.ParquetScan(put(prefix + "f.parquet", data), columns=["id", "opt"],
                            filter=expr, dictionary=False)
    got = scan.to_table()
    assert got.equals(_local(data, filters=expr).select(["id", "opt"]))
    assert {rg for rg, with_filter in seen if with_filter} == filtered


@pytest.mark.parametrize(("conjuncts", "rows"), [
    ([pc.field("x") > 0], 750),  # not proven: the NaN rows are dropped
    ([~(pc.field("x") > 0)], 250),  # not pruned: the NaN rows are kept
    ([pc.field("k") >= 100, ~(pc.field("x") > 0)], 225),  # pruned by the conjunct on k alone
])
def test_float_statistics_neither_prune_nor_prove(put, prefix, conjuncts, rows):
    """Parquet's float min/max leave NaN out, so they say nothing about NaN rows. The
    reference filters pyarrow's unfiltered read (pyarrow's filtered read prunes by them and
    loses the NaN rows of ``NOT (x > 0)``)."""
    table = pa.table({"k": pa.array(range(1000)),
                      "x": pa.array([1.0, float("nan"), 2.0, 3.0] * 250)})
    data = parquet_bytes(table, row_group_size=100)
    scan = wjio.ParquetScan(put(prefix + "f.parquet", data), filter=conjuncts)
    expr = conjuncts[0] if len(conjuncts) == 1 else conjuncts[0] & conjuncts[1]
    got, want = scan.to_table(), _local(data).filter(expr)
    assert got.column("k").to_pylist() == want.column("k").to_pylist()
    assert str(got.column("x").to_pylist()) == str(want.column("x").to_pylist())  # NaN != NaN
    assert got.num_rows == rows
    assert scan.stats.row_groups_pruned == len(conjuncts) - 1


def test_dnf_filters(put, prefix):
    table = _wide_table(3_000)
    data = parquet_bytes(table, row_group_size=300)
    uri = put(prefix + "f.parquet", data)
    dnf = [[("id", "<", 100)], [("s", "=", "str-500"), ("i32", ">", 0)]]
    got = wjio.read_parquet(uri, columns=["id"], filters=dnf)
    assert got.equals(_local(data, filters=dnf).select(["id"]))


def test_many_row_groups_and_files_keep_order(put, prefix):
    tables = [_wide_table(3_000, seed=k).select(["id", "f64", "s"]) for k in range(5)]
    for k, t in enumerate(tables):
        put(f"{prefix}part-{k:05d}.parquet", t, row_group_size=100)
    got = wjio.read_parquet(f"s3://{TEST_BUCKET}/{prefix}")
    assert got.equals(pa.concat_tables(tables))


def test_footer_larger_than_speculative_read(put, prefix):
    # 200 columns x 40 row groups with statistics: a footer of several hundred KiB.
    n = 4_000
    table = pa.table({f"c{i:03d}": pa.array(np.arange(n) * i) for i in range(200)})
    data = parquet_bytes(table, row_group_size=100)
    md = pq.read_metadata(pa.BufferReader(data))
    assert md.serialized_size > wjio.ScanOptions().footer_read_size
    uri = put(prefix + "wide.parquet", data)
    scan = wjio.ParquetScan(uri, columns=["c007", "c150"])
    got = scan.to_table()
    assert got.equals(_local(data, columns=["c007", "c150"]))
    assert scan.stats.footer_requests == 2  # speculative tail + exactly the rest


def test_small_file_costs_one_request(put, prefix):
    data = parquet_bytes(_wide_table(1_000), row_group_size=250)
    assert len(data) < wjio.ScanOptions().footer_read_size
    uri = put(prefix + "small.parquet", data)
    scan = wjio.ParquetScan(uri, columns=["id", "st"], filter=pc.field("id") > 600)
    got = scan.to_table()
    assert got.equals(_local(data, filters=pc.field("id") > 600).select(["id", "st"]))
    assert scan.stats.requests == 1  # the footer read brought every needed chunk along
    assert scan.stats.bytes_fetched == len(data)


def test_footer_cache_by_etag(put, prefix):
    data = parquet_bytes(_wide_table(1000), row_group_size=100)
    put(prefix + "a.parquet", data)
    first = wjio.ParquetScan(f"s3://{TEST_BUCKET}/{prefix}")
    first.to_table()
    again = wjio.ParquetScan(f"s3://{TEST_BUCKET}/{prefix}", columns=["id"])
    assert again.to_table().equals(_local(data, columns=["id"]))
    assert first.stats.footer_requests == 1
    assert again.stats.footer_requests == 0  # the listing's ETag hits the cache


def test_empty_file_and_zero_row_groups(put, prefix):
    empty = _wide_table(10).slice(0, 0)
    uri = put(prefix + "empty.parquet", empty)
    got = wjio.read_parquet(uri)
    assert got.num_rows == 0
    assert got.schema.equals(_local(parquet_bytes(empty)).schema)
    # An empty file inside a dataset contributes nothing and breaks nothing.
    put(prefix + "full.parquet", _wide_table(10))
    both = wjio.read_parquet(f"s3://{TEST_BUCKET}/{prefix}", columns=["id"])
    assert both.column("id").to_pylist() == list(range(10))


def test_hive_partitions_and_pruning(put, prefix):
    base = pa.table({"v": pa.array(range(100), pa.int64())})
    for year in (2023, 2024):
        for region in ("eu", "us", "__HIVE_DEFAULT_PARTITION__"):
            put(f"{prefix}year={year}/region={region}/part-0.parquet", base, row_group_size=25)
    put(prefix + "_SUCCESS", b"")
    put(prefix + "year=2023/.hidden.parquet", b"junk")
    put(prefix + "_temporary/0/part.parquet", b"junk")
    root = f"s3://{TEST_BUCKET}/{prefix}"
    local = pa.concat_tables(
        [
            base.append_column("year", pa.repeat(pa.scalar(y, pa.int32()), 100)).append_column(
                "region", pa.repeat(pa.scalar(r, pa.string()), 100)
            )
            for y in (2023, 2024)
            for r in ("eu", "us", None)
        ]
    )
    got = wjio.read_parquet(root)
    assert got.schema.field("year").type == pa.int32()
    assert got.sort_by([("year", "ascending"), ("v", "ascending")]).num_rows == 600
    assert sorted(got.column("region").to_pylist(), key=str) == sorted(
        local.column("region").to_pylist(), key=str
    )

    expr = (pc.field("year") == 2024) & (pc.field("region") == "us") & (pc.field("v") < 30)
    scan = wjio.ParquetScan(root, columns=["v", "region"], filter=expr)
    got = scan.to_table()
    assert got.column("v").to_pylist() == list(range(30))
    assert set(got.column("region").to_pylist()) == {"us"}
    assert scan.stats.files == 6
    assert scan.stats.files_pruned == 5
    assert scan.stats.footer_requests <= 2  # partition pruning happens before footers

    nulls = wjio.read_parquet(root, columns=["year"], filter=pc.field("region").is_null())
    assert nulls.num_rows == 200


def test_object_uri_without_slash_lists_as_prefix(put, prefix):
    t = pa.table({"a": [1, 2, 3]})
    put(prefix + "tbl/part-0.parquet", t)
    got = wjio.read_parquet(f"s3://{TEST_BUCKET}/{prefix}tbl")
    assert got.equals(t)


def test_record_batch_reader_streams(put, prefix):
    table = _wide_table(20_000).select(["id", "s"])
    data = parquet_bytes(table, row_group_size=2_000)
    uri = put(prefix + "f.parquet", data)
    scan = wjio.ParquetScan(uri, options=wjio.ScanOptions(batch_size=1_000))
    assert scan.schema.names == ["id", "s"]  # plans on demand from blocking code
    reader = scan.to_reader()
    batches = list(reader)
    assert all(b.num_rows <= 1_000 for b in batches)
    assert pa.Table.from_batches(batches).equals(_local(data))


async def test_async_iteration(put, prefix):
    table = _wide_table(5_000).select(["id", "f64"])
    data = parquet_bytes(table, row_group_size=1_000)
    uri = put(prefix + "f.parquet", data)
    scan = wjio.ParquetScan(uri, filter=pc.field("f64") > 0)
    batches = [b async for b in scan]
    got = pa.Table.from_batches(batches, schema=scan.schema)
    assert got.equals(_local(data, filters=pc.field("f64") > 0))
    assert scan.stats.requests >= 1 and scan.stats.wall_time_s > 0


def test_parts_partition_the_rows(put, prefix):
    """``part=(i, n)`` scans read disjoint row-group shares whose union is the whole scan,
    each with the whole dataset's schema (also the shares that get no row group)."""
    table = _wide_table(3_000).select(["id", "s", "dec"])
    for i in range(2):
        put(f"{prefix}k={i}/f.parquet", table.slice(i * 1_500, 1_500), row_group_size=500)
    whole = wjio.read_parquet(f"s3://{TEST_BUCKET}/{prefix}", filter=pc.field("id") >= 100)
    shares = [wjio.read_parquet(f"s3://{TEST_BUCKET}/{prefix}", filter=pc.field("id") >= 100,
                                part=(i, 8)) for i in range(8)]
    assert all(s.schema == whole.schema for s in shares)
    assert [s.num_rows for s in shares][6:] == [0, 0]  # 6 row groups for 8 parts
    got = pa.concat_tables(shares).sort_by("id")
    assert got.equals(whole.sort_by("id"))
    with pytest.raises(ValueError, match="part"):
        wjio.ParquetScan(f"s3://{TEST_BUCKET}/{prefix}", part=(2, 2))
