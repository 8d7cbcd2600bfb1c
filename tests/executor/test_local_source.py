"""``LocalParquetSource`` yields what pyarrow's own local read and filter yield, whichever
decoder reads a file (polars for the types it decodes exactly, pyarrow for the rest and for
what polars refuses), in contiguous shares per partition; a file replaced or removed after its
footer was read fails the scan with a clear error instead of yielding rows located by the old
footer."""

from __future__ import annotations

import datetime
import decimal
import functools
import math
import operator
import os
import random

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from executor import sources
from executor.errors import ExecutionError
from executor.sources import LocalParquetSource

ROWS = 5_000
rng = random.Random(5)


def _maybe(values, nulls=0.1):
    return [None if rng.random() < nulls else v for v in values]


DATA = pa.table({
    "n": pa.array(range(ROWS), pa.int64()),
    "i8": pa.array(_maybe([rng.randint(-128, 127) for _ in range(ROWS)]), pa.int8()),
    "i32": pa.array(_maybe([rng.randint(-2**31, 2**31 - 1) for _ in range(ROWS)]), pa.int32()),
    "f64": pa.array(_maybe([rng.choice([math.nan, -0.0, 1.5, -math.inf, rng.random()])
                            for _ in range(ROWS)]), pa.float64()),
    "f32": pa.array(_maybe([rng.random() for _ in range(ROWS)]), pa.float32()),
    "b": pa.array(_maybe([rng.random() < 0.5 for _ in range(ROWS)]), pa.bool_()),
    "d": pa.array(_maybe([datetime.date(1992, 1, 1) + datetime.timedelta(days=rng.randint(0, 3000))
                          for _ in range(ROWS)]), pa.date32()),
    "dec": pa.array(_maybe([decimal.Decimal(rng.randint(-10**14, 10**14)).scaleb(-2)
                            for _ in range(ROWS)]), pa.decimal128(16, 2)),
    "wide": pa.array(_maybe([decimal.Decimal(rng.randint(-10**37, 10**37)).scaleb(-5)
                             for _ in range(ROWS)]), pa.decimal128(38, 5)),
    "s": pa.array(_maybe([rng.choice(["", "a", "ü€", "x" * 40, f"v{rng.random()}"])
                          for _ in range(ROWS)]), pa.string()),
    "ts": pa.array(_maybe([rng.randint(0, 2**40) for _ in range(ROWS)]), pa.timestamp("us")),
    "bin": pa.array(_maybe([rng.randbytes(rng.randint(0, 6)) for _ in range(ROWS)]),
                    pa.binary()),
})


def _read(source, columns, conjuncts=(), partitions=1):
    batches = [b for p in range(partitions)
               for b in source.read(columns, list(conjuncts), p, partitions)]
    return pa.Table.from_batches(batches, source._open().schema.empty_table()
                                 .select(columns).schema)


def _want(path, columns, conjuncts=()):
    filter = functools.reduce(operator.and_, conjuncts) if conjuncts else None
    return ds.dataset(path, format="parquet").to_table(columns=columns, filter=filter)


def _assert_same(got: pa.Table, want: pa.Table):
    assert got.schema == want.schema
    assert got.num_rows == want.num_rows
    for name in want.column_names:  # NaN != NaN: compare the Parquet-exact bit patterns
        a, b = got.column(name).combine_chunks(), want.column(name).combine_chunks()
        if pa.types.is_floating(a.type):
            width = pa.int64() if a.type == pa.float64() else pa.int32()
            a, b = a.view(width), b.view(width)
        assert a.equals(b), name


@pytest.fixture
def data_dir(tmp_path):
    pq.write_table(DATA.slice(0, 3_000), tmp_path / "a.parquet", row_group_size=700)
    pq.write_table(DATA.slice(3_000), tmp_path / "b.parquet", row_group_size=900)
    return tmp_path


@pytest.mark.parametrize("partitions", [1, 2, 5])
def test_every_type_equals_pyarrow(data_dir, partitions):
    """All rows of every column, in row order (contiguous shares in partition order)."""
    columns = DATA.column_names
    got = _read(LocalParquetSource(str(data_dir)), columns, partitions=partitions)
    _assert_same(got, _want(str(data_dir), columns))


def test_filters_and_both_decoders_agree(data_dir, monkeypatch):
    """A filtered read through polars equals the same read with polars turned off, and
    pyarrow's own filtered read."""
    conjuncts = [pc.field("d") >= pa.scalar(datetime.date(1995, 1, 1)),
                 pc.field("dec") < pa.scalar(decimal.Decimal("0"), pa.decimal128(16, 2)),
                 pc.field("s").is_valid()]
    columns = ["n", "i32", "dec", "s", "f64"]
    want = _want(str(data_dir), columns, conjuncts)
    assert 0 < want.num_rows < ROWS
    used = []
    polars_rows = sources._polars_rows
    monkeypatch.setattr(sources, "_polars_rows", lambda *a: used.append(a) or polars_rows(*a))
    _assert_same(_read(LocalParquetSource(str(data_dir)), columns, conjuncts, 2), want)
    assert used, "polars decoded none of these columns"
    monkeypatch.setattr(sources, "_polars_rows", lambda *a: None)  # as if polars refused
    _assert_same(_read(LocalParquetSource(str(data_dir)), columns, conjuncts, 2), want)


def test_columns_polars_does_not_decode_exactly_go_to_pyarrow(data_dir, monkeypatch):
    used = []
    polars_rows = sources._polars_rows
    monkeypatch.setattr(sources, "_polars_rows", lambda *a: used.append(a) or polars_rows(*a))
    got = _read(LocalParquetSource(str(data_dir)), ["n", "ts", "bin"])
    _assert_same(got, _want(str(data_dir), ["n", "ts", "bin"]))
    assert used == []


def test_invalid_utf8_is_read_as_pyarrow_reads_it(tmp_path):
    """polars refuses a string column holding invalid UTF-8; pyarrow's reader passes it
    through, and so does the source."""
    bad = pa.Array.from_buffers(pa.string(), 2, [None, pa.py_buffer(b"\x00\x00\x00\x00\x02\x00"
                                                                    b"\x00\x00\x03\x00\x00\x00"),
                                                 pa.py_buffer(b"\xff\xfeok")])
    pq.write_table(pa.table({"s": bad}), tmp_path / "bad.parquet")
    got = _read(LocalParquetSource(str(tmp_path)), ["s"])
    _assert_same(got, _want(str(tmp_path), ["s"]))


def test_string_view_files_read_as_the_dataset_schema(tmp_path):
    """Writers that store ``string_view`` (tpchgen-cli) are read with the table's plain
    ``string`` type."""
    view = pa.table({"s": pa.array(["a", None, "bc"] * 100, pa.string_view()),
                     "n": pa.array(range(300), pa.int32())})
    pq.write_table(view, tmp_path / "v.parquet", row_group_size=128)
    source = LocalParquetSource(str(tmp_path))
    got = _read(source, ["s", "n"], partitions=2)
    assert got.column("s").to_pylist() == ["a", None, "bc"] * 100
    assert got.column("n").to_pylist() == list(range(300))


@pytest.mark.parametrize("change", ["replace", "remove"])
def test_a_file_changed_after_its_footer_was_read_fails(data_dir, change):
    source = LocalParquetSource(str(data_dir))
    batches = source.read(["n"], [], 0, 1)
    next(batches)  # both footers are read now, the first run of a.parquet decoded
    path = data_dir / "b.parquet"
    if change == "replace":
        stat = path.stat()
        pq.write_table(DATA.slice(0, 10), path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    else:
        path.unlink()
    with pytest.raises(ExecutionError, match=r"b\.parquet"):
        list(batches)


def test_not_null_checks_on_null_free_columns_are_dropped_per_file(tmp_path, monkeypatch):
    """Spark's ``IS NOT NULL`` on a column a file proves null-free (required, or a null count
    of 0 in every row group) filters nothing there; where the column has nulls it still
    removes them."""
    clean = pa.table({"k": pa.array(range(100), pa.int64()),
                      "v": pa.array([f"s{i}" for i in range(100)])})
    nulls = pa.table({"k": pa.array([None if i % 3 == 0 else i for i in range(100)],
                                    pa.int64()),
                      "v": pa.array([f"t{i}" for i in range(100)])})
    pq.write_table(clean, tmp_path / "a.parquet", row_group_size=30)
    pq.write_table(nulls, tmp_path / "b.parquet", row_group_size=30)
    conjuncts = [pc.field("k").is_valid(), pc.field("v").is_valid()]
    applied = []
    apply = sources.dictionary.RowFilter.apply
    monkeypatch.setattr(sources.dictionary.RowFilter, "apply",
                        lambda self, *a, **k: applied.append(len(self.conjuncts))
                        or apply(self, *a, **k))
    got = _read(LocalParquetSource(str(tmp_path)), ["k", "v"], conjuncts)
    _assert_same(got, _want(str(tmp_path), ["k", "v"], conjuncts))
    assert got.num_rows == 100 + 66
    assert sorted(set(applied)) == [0, 1]  # a.parquet: none left; b.parquet: k's check
