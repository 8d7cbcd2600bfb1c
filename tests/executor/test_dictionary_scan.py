"""Scans that read low-cardinality string columns as Parquet dictionaries yield what pyarrow's
plain read and filter yield: the same rows, plain columns of the same types, on local files
and on S3, whichever conjuncts touch dictionary columns. Local scans filter with polars where
the filter translates (``local``), or read dictionaries as S3 scans do (``local-arrow``)."""

from __future__ import annotations

import functools
import operator
import random

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from executor import ir, sources
from executor.context import ExecContext
from executor.operators.scan import ScanExec
from executor.sources import LocalParquetSource
from tests.conftest import parquet_bytes
from wjio import dictionary
from wjio.dictionary import RowFilter

I64, S = pa.int64(), pa.string()
ROWS, ROW_GROUP = 12_000, 3_000

rng = random.Random(11)
DATA = pa.table({
    "n": pa.array(range(ROWS), I64),
    "flag": pa.array([rng.choice(["A", "N", "R", None]) for _ in range(ROWS)], S),
    "mode": pa.array([rng.choice(["AIR", "MAIL", "RAIL", "SHIP", "TRUCK"])
                      for _ in range(ROWS)], S),
    "comment": pa.array([f"{rng.random():.12f} {'xyz'[i % 3]}" for i in range(ROWS)], S),
    "tag": pa.array([rng.choice([b"p", b"q", None]) for _ in range(ROWS)], pa.binary()),
})
FILE = parquet_bytes(DATA, row_group_size=ROW_GROUP)
SCHEMA = ir.Schema.from_arrow(DATA.schema.remove(DATA.schema.get_field_index("tag")))


def _col(name: str) -> ir.ColumnRef:
    f = SCHEMA.field(name)
    return ir.ColumnRef(name, f.dtype, f.nullable)


def _s(v: str) -> ir.Literal:
    return ir.Literal(v, S)


flag, mode, comment, n = (_col(c) for c in ("flag", "mode", "comment", "n"))
f = pc.field

# (id, IR filter, the same filter as a pyarrow expression for the plain reference read, rows?)
CASES = [
    ("eq", ir.EqualTo(mode, _s("MAIL")), f("mode") == "MAIL", True),
    ("in", ir.In(mode, (_s("MAIL"), _s("SHIP"))), f("mode").isin(["MAIL", "SHIP"]), True),
    ("in-nulls", ir.In(flag, (_s("A"), _s("R"))), f("flag").isin(["A", "R"]), True),
    ("like-prefix", ir.StartsWith(mode, "TR"), pc.starts_with(f("mode"), "TR"), True),
    ("like-contains", ir.Contains(mode, "AI"), pc.match_substring(f("mode"), "AI"), True),
    ("like", ir.Like(mode, "_A%L"), pc.match_like(f("mode"), "_A%L"), True),
    ("not", ir.Not(ir.EqualTo(flag, _s("A"))), ~(f("flag") == "A"), True),
    ("not-in", ir.Not(ir.In(flag, (_s("A"),))), ~(f("flag") == "A"), True),
    ("is-null", ir.IsNull(flag), f("flag").is_null(), True),
    ("is-not-null", ir.IsNotNull(flag), f("flag").is_valid(), True),
    ("two-dict", ir.And(ir.EqualTo(flag, _s("N")), ir.In(mode, (_s("AIR"), _s("RAIL")))),
     (f("flag") == "N") & f("mode").isin(["AIR", "RAIL"]), True),
    ("dict-and-plain", ir.And(ir.EqualTo(mode, _s("MAIL")),
                              ir.GreaterThan(n, ir.Literal(7_000, I64))),
     (f("mode") == "MAIL") & (f("n") > 7_000), True),
    ("mixed-conjunct", ir.Or(ir.EqualTo(flag, _s("R")), ir.LessThan(n, ir.Literal(100, I64))),
     (f("flag") == "R") | (f("n") < 100), True),
    ("two-columns-one-conjunct", ir.Or(ir.EqualTo(flag, _s("R")), ir.EqualTo(mode, _s("AIR"))),
     (f("flag") == "R") | (f("mode") == "AIR"), True),
    ("plain-column", ir.Contains(comment, "9 x"), pc.match_substring(f("comment"), "9 x"), True),
    ("empty", ir.EqualTo(mode, _s("BOAT")), f("mode") == "BOAT", False),
    ("empty-two", ir.And(ir.IsNull(flag), ir.EqualTo(flag, _s("A"))),
     f("flag").is_null() & (f("flag") == "A"), False),
    ("no-filter", None, None, True),
]


@pytest.fixture(scope="module")
def local_table(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("dict_scan") / "t"
    root.mkdir()
    (root / "part-0.parquet").write_bytes(FILE)
    return str(root)


@pytest.fixture
def s3_table(put, prefix) -> str:
    return put(prefix + "t/part-0.parquet", FILE).rsplit("/", 1)[0] + "/"


@pytest.fixture(params=["local", "local-arrow", "s3"])
def where(request) -> tuple[str, bool]:
    """The table, and whether a local scan may filter with polars."""
    kind = request.param.split("-")[0]
    return request.getfixturevalue(f"{kind}_table"), request.param == "local"


@pytest.fixture(params=["local-arrow", "s3"])
def dictionary_where(request) -> tuple[str, bool]:
    """The tables read through :class:`RowFilter`."""
    return request.getfixturevalue(f"{request.param.split('-')[0]}_table"), False


def _scan(where: tuple[str, bool], columns: tuple[str, ...], filter: ir.Expr | None,
          partitions: int = 1) -> pa.Table:
    table, polars = where
    node = ir.Scan(table, SCHEMA, columns, filter)
    op = ScanExec(node)
    ctx = ExecContext(num_partitions=partitions, source_factory=lambda uri: (
        LocalParquetSource(uri, polars_filter=polars) if not uri.startswith("s3://")
        else sources.open_source(uri)))
    batches = [b for p in range(partitions) for b in op.execute(p, ctx)]
    return pa.Table.from_batches(batches, op.schema).sort_by("n")


def _reference(columns: tuple[str, ...], expr: pc.Expression | None) -> pa.Table:
    """pyarrow's plain read of the same bytes, filtered by pyarrow."""
    plain = pq.read_table(pa.BufferReader(FILE))
    return (plain.filter(expr) if expr is not None else plain).select(list(columns))


def _assert_same(got: pa.Table, want: pa.Table) -> None:
    assert got.column_names == want.column_names
    for name in want.column_names:
        assert got.schema.field(name).type == want.schema.field(name).type, name
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name


@pytest.mark.parametrize("columns", [("n", "flag", "mode", "comment"), ("n", "comment")],
                         ids=["all", "filter-columns-not-read"])
@pytest.mark.parametrize(("case", "filter", "expr", "rows"), CASES, ids=[c[0] for c in CASES])
def test_scan_equals_plain_read_and_filter(where, case, filter, expr, rows, columns):
    want = _reference(columns, expr)
    assert (want.num_rows > 0) == rows
    _assert_same(_scan(where, columns, filter), want)


@pytest.mark.parametrize("case", ["in-nulls", "dict-and-plain", "two-columns-one-conjunct"])
def test_partitioned_scans_together_equal_the_plain_read(where, case):
    _, filter, expr, _ = next(c for c in CASES if c[0] == case)
    columns = ("n", "flag", "mode")
    _assert_same(_scan(where, columns, filter, partitions=3), _reference(columns, expr))


def test_a_conjunct_on_one_dictionary_column_is_evaluated_on_its_distinct_values(
        dictionary_where, monkeypatch):
    seen: list[int] = []
    real = RowFilter._on_values
    monkeypatch.setattr(RowFilter, "_on_values",
                        lambda self, i, name, d: seen.append(len(d)) or real(self, i, name, d))
    filter = ir.And(ir.In(mode, (_s("MAIL"), _s("SHIP"))), ir.IsNull(flag))
    _assert_same(_scan(dictionary_where, ("n", "comment"), filter),
                 _reference(("n", "comment"), f("mode").isin(["MAIL", "SHIP"])
                            & f("flag").is_null()))
    # Once per conjunct and row group at most, each on the chunk's distinct values only.
    assert seen and len(seen) <= 2 * (ROWS // ROW_GROUP)
    assert max(seen) <= 5


def test_row_groups_are_still_pruned_by_statistics(dictionary_where, monkeypatch):
    decoded: list[int] = []
    real = RowFilter.apply
    monkeypatch.setattr(RowFilter, "apply", lambda self, data, *a, **k:
                        decoded.append(data.num_rows) or real(self, data, *a, **k))
    filter = ir.And(ir.LessThan(n, ir.Literal(ROW_GROUP, I64)), ir.EqualTo(mode, _s("AIR")))
    _assert_same(_scan(dictionary_where, ("n", "mode"), filter),
                 _reference(("n", "mode"), (f("n") < ROW_GROUP) & (f("mode") == "AIR")))
    assert sum(decoded) == ROW_GROUP  # only the first row group was read


def test_rule_picks_chunks_of_indices_not_strings(tmp_path):
    md = pq.read_metadata(pa.BufferReader(FILE))
    assert dictionary.dictionary_columns(md, DATA.column_names) == {"flag", "mode", "tag"}
    # Unique values: the chunk holds every string (> 4 bytes each), not indices.
    assert "comment" not in dictionary.dictionary_columns(md, ["comment"])
    plain = pq.read_metadata(pa.BufferReader(parquet_bytes(DATA, use_dictionary=False)))
    assert dictionary.dictionary_columns(plain, DATA.column_names) == frozenset()
    # The writer falls back to plain pages once the dictionary page outgrows its limit.
    words = pa.array([f"w{i % 400:05d}" for i in range(ROWS)], S)
    fallback = pq.read_metadata(pa.BufferReader(parquet_bytes(
        pa.table({"w": words}), dictionary_pagesize_limit=1024)))
    assert dictionary.dictionary_columns(fallback, ["w"]) == frozenset()
    assert dictionary.dictionary_columns(pq.read_metadata(pa.BufferReader(parquet_bytes(
        pa.table({"w": words})))), ["w"]) == {"w"}


def test_row_filter_on_dictionary_batches_equals_plain_filter():
    """The binary column (which the IR does not carry) and the chunked, table-shaped input
    wjio hands over: same rows, same plain types."""
    conjuncts = [f("tag") == b"p", f("mode").isin(["AIR", "SHIP"]), f("n") > 5_000]
    table = pq.read_table(pa.BufferReader(FILE), read_dictionary=["tag", "mode"])
    assert pa.types.is_dictionary(table.schema.field("tag").type)
    plain_types = {c: DATA.schema.field(c).type for c in ("tag", "mode")}
    row_filter = RowFilter(dictionary.conjuncts(conjuncts, DATA.schema))
    got = row_filter.apply(table, plain_types)
    want = DATA.filter(functools.reduce(lambda a, b: a & b, conjuncts))
    assert want.num_rows > 0
    _assert_same(got, want)
    batch = table.to_batches()[0]
    _assert_same(pa.Table.from_batches([row_filter.apply(batch, plain_types, keep=["n", "tag"])]),
                 DATA.slice(0, batch.num_rows).filter(
                     functools.reduce(lambda a, b: a & b, conjuncts)).select(["n", "tag"]))


@pytest.mark.parametrize("partitions", [1, 3])
def test_hive_partitioned_local_table(tmp_path, partitions):
    """A conjunct on the partition column prunes files and row groups (bound to the table's
    schema, which holds the partition column the files do not), one on a dictionary column
    is applied per distinct value."""
    for part in ("x", "y"):
        (tmp_path / f"p={part}").mkdir()
        (tmp_path / f"p={part}" / "f.parquet").write_bytes(FILE)
    conjuncts = [f("p") == "y", f("mode").isin(["AIR", "SHIP"])]
    source = LocalParquetSource(str(tmp_path))
    columns = ["n", "p", "flag"]
    got = pa.Table.from_batches([b for p in range(partitions)
                                 for b in source.read(columns, conjuncts, p, partitions)])
    want = ds.dataset(str(tmp_path), format="parquet", partitioning="hive").to_table(
        columns=columns, filter=functools.reduce(operator.and_, conjuncts))
    assert want.num_rows > 0
    _assert_same(got.sort_by("n"), want.sort_by("n"))


def test_without_null_checks_drops_only_is_not_null_on_the_given_columns():
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    conjuncts = dictionary.conjuncts([pc.field("a").is_valid(), pc.field("b").is_valid(),
                                      pc.field("a") > 1, ~pc.field("a").is_valid()], schema)
    row_filter = RowFilter(conjuncts)
    kept = row_filter.without_null_checks({"a"})
    assert [str(c.expression) for c in kept.conjuncts] == [
        "is_valid(b)", "(a > 1)", "invert(is_valid(a))"]
    assert row_filter.without_null_checks({"c"}) is row_filter
    data = pa.table({"a": pa.array([1, 2, 3]), "b": pa.array(["x", None, "z"])})
    assert kept.apply(data, {}).equals(row_filter.apply(data, {}))
