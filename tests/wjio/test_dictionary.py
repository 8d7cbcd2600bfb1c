"""``ParquetScan(dictionary=True)``: low-cardinality string columns decoded as dictionaries,
the filter's conjuncts on them evaluated per distinct value; the output is what a plain read
and filter give."""

from __future__ import annotations

import functools
import operator
import random

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import wjio
from tests.conftest import TEST_BUCKET
from wjio import errors

rng = random.Random(5)
ROWS = 8_000
DATA = pa.table({
    "id": pa.array(range(ROWS), pa.int64()),
    "kind": pa.array([rng.choice(["red", "green", "blue", None]) for _ in range(ROWS)]),
    "note": pa.array([f"note {rng.random():.10f}" for _ in range(ROWS)]),
    "s": pa.array([{"x": i, "y": rng.choice(["u", "v"])} for i in range(ROWS)]),
})
f = pc.field


def _reference(table: pa.Table, conjuncts: list[pc.Expression]) -> pa.Table:
    return table.filter(functools.reduce(operator.and_, conjuncts)) if conjuncts else table


@pytest.mark.parametrize("conjuncts", [
    [f("kind") == "red"],
    [f("kind").is_null()],
    [~(f("kind") == "red"), f("id") > 3_000],
    [(f("kind") == "blue") | (f("id") < 10)],
    [pc.starts_with(f("kind"), "gr"), f("s", "x") < 5_000],
    [f("kind") == "purple"],
    [],
], ids=["eq", "is-null", "not-and-plain", "mixed", "prefix-and-struct", "empty", "none"])
def test_dictionary_scan_equals_plain_read_and_filter(put, prefix, conjuncts):
    uri = put(prefix + "f.parquet", DATA, row_group_size=2_000)
    scan = wjio.ParquetScan(uri, filter=conjuncts, dictionary=True)
    got = scan.to_table()
    assert got.schema == DATA.schema
    assert got.equals(_reference(DATA, conjuncts))
    assert scan.stats.rows == got.num_rows


def test_hive_partitions_and_a_projection_without_the_filter_column(put, prefix):
    for part in ("a", "b"):
        put(f"{prefix}p={part}/f.parquet", DATA, row_group_size=2_000)
    conjuncts = [f("p") == "b", f("kind").isin(["red", "blue"])]
    got = wjio.ParquetScan(f"s3://{TEST_BUCKET}/{prefix}", columns=["id", "note"],
                           filter=conjuncts, dictionary=True).to_table()
    want = DATA.filter(f("kind").isin(["red", "blue"])).select(["id", "note"])
    assert got.num_rows == want.num_rows > 0
    assert got.equals(want)


def test_default_scan_reads_plain_columns_and_takes_a_list_of_conjuncts(put, prefix, monkeypatch):
    uri = put(prefix + "f.parquet", DATA, row_group_size=2_000)
    decoded_as: list = []
    real = pq.ParquetFile.__init__

    def spy(self, *args, read_dictionary=None, **kwargs):
        decoded_as.append(read_dictionary)
        real(self, *args, read_dictionary=read_dictionary, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "__init__", spy)
    conjuncts = [f("kind") == "green", f("id") >= 100]
    assert wjio.ParquetScan(uri, filter=conjuncts).to_table().equals(
        _reference(DATA, conjuncts))
    assert decoded_as and set(decoded_as) == {None}
    decoded_as.clear()
    wjio.ParquetScan(uri, filter=conjuncts, dictionary=True).to_table()
    assert set(map(tuple, decoded_as)) == {("kind",)}  # not the unique notes, not s.y


def test_conjunct_lists_are_checked():
    with pytest.raises(ValueError, match="not both"):
        wjio.ParquetScan("s3://b/k", filter=[f("id") > 1], filters=[("id", ">", 1)])
    with pytest.raises(errors.InvalidPredicateError, match="Expression"):
        wjio.ParquetScan("s3://b/k", filter=[f("id") > 1, "id > 1"])


def test_not_null_checks_are_dropped_per_file_where_the_file_has_no_nulls(put, prefix):
    """``IS NOT NULL`` on ``id`` (no nulls in either file) is dropped from each file's row
    filter; on ``kind`` it stays for the file with nulls and goes for the one without (whose
    row groups past the first have no filter left: their statistics prove ``id > 10``). The
    rows are those of the plain filter either way."""
    clean = DATA.filter(f("kind").is_valid())
    put(prefix + "a.parquet", DATA, row_group_size=2_000)
    put(prefix + "b.parquet", clean, row_group_size=2_000)
    conjuncts = [f("id").is_valid(), f("kind").is_valid(), f("id") > 10]
    scan = wjio.ParquetScan(f"s3://{TEST_BUCKET}/{prefix}", filter=conjuncts, dictionary=True)
    kept: dict[str, set] = {}
    for t in wjio.sync.run(scan.plan()).tasks:
        kept.setdefault(t.footer.path.key.rsplit("/", 1)[-1], set()).add(
            None if t.row_filter is None else
            tuple(str(c.expression) for c in t.row_filter.conjuncts))
    assert kept == {"a.parquet": {("is_valid(kind)", "(id > 10)")},
                    "b.parquet": {("(id > 10)",), None}}
    got = wjio.ParquetScan(f"s3://{TEST_BUCKET}/{prefix}", filter=conjuncts,
                           dictionary=True).to_table()
    want = pa.concat_tables([_reference(DATA, conjuncts), _reference(clean, conjuncts)])
    assert got.sort_by("id").equals(want.sort_by("id"))
