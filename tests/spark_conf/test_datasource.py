"""The ``wjio`` Spark data source against Spark's own Parquet reader of the same files.

One dataset (Hive partitions on an int and a string column incl. a null partition, several
files and row groups, nulls, decimals, dates, timestamps, strings, floats with NaN) is put in
the S3 rig and written byte for byte to a local directory; every query runs through
``format("wjio")`` on S3 and through ``spark.read.parquet`` on the local copy, and the results
must be equal as Arrow tables with exact types. Pushdown is checked in Spark's own plan and
by the number of Spark partitions, against row group counts from pyarrow's metadata.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import math

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests import spark_support
from tests.conftest import TEST_BUCKET

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'wjio[spark]')")
if spark_support.skip_reason():
    pytest.skip(spark_support.skip_reason(), allow_module_level=True)

from pyspark.errors import PySparkException

from spark_conf import datasource
from wjio.dataset import DataFile
from wjio.errors import ObjectChangedError
from wjio.scan import ParquetScan, RowGroupSelection
from wjio.store import ObjectInfo
from wjio.uri import S3Path

ROWS_PER_FILE = 600
ROW_GROUP = 150  # 4 row groups per file
PARTITIONS = [(k, r) for k in (0, 1, 2) for r in ("eu", "us", None)]
FILES_PER_PARTITION = 2


def _file(n0: int, n: int) -> pa.Table:
    ids = list(range(n0, n0 + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "i32": pa.array([None if i % 11 == 0 else i % 50 for i in ids], pa.int32()),
            "s": pa.array([None if i % 7 == 0 else f"{'abc'[i % 3]}{i % 13}z" for i in ids]),
            "dec": pa.array(
                [None if i % 5 == 0 else decimal.Decimal(i % 400) / 8 for i in ids],
                pa.decimal128(12, 3),
            ),
            "d": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i % 40) for i in ids]),
            "ts": pa.array(
                [dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i) for i in ids],
                pa.timestamp("us", tz="UTC"),
            ),
            "b": pa.array([None if i % 9 == 0 else i % 2 == 0 for i in ids]),
            "f": pa.array([math.nan if i % 17 == 0 else (i % 23) / 4 for i in ids]),
        }
    )


@pytest.fixture(scope="module")
def dataset(s3, tmp_path_factory):
    """(s3 uri, local dir, {key: bytes}) of the test dataset; ids increase with the key."""
    local = tmp_path_factory.mktemp("wjio-ds")
    base = f"t/datasource-{id(local):x}/"
    objects = {}
    n = 0
    for k, r in PARTITIONS:
        directory = f"k={k}/r={r if r is not None else '__HIVE_DEFAULT_PARTITION__'}"
        for j in range(FILES_PER_PARTITION):
            buf = io.BytesIO()
            pq.write_table(_file(n, ROWS_PER_FILE), buf, row_group_size=ROW_GROUP)
            n += ROWS_PER_FILE
            objects[f"{directory}/part-{j}.parquet"] = buf.getvalue()
    objects["_SUCCESS"] = b""
    for key, body in objects.items():
        s3.put_object(Bucket=TEST_BUCKET, Key=base + key, Body=body)
        path = local / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return f"s3://{TEST_BUCKET}/{base}", str(local), objects


@pytest.fixture(scope="module")
def spark():
    session = spark_support.local_spark()
    datasource.register(session)
    return session


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([(n, "ascending") for n in table.column_names
                          if not pa.types.is_floating(table.schema.field(n).type)])


def _nan_free(table: pa.Table) -> pa.Table:
    """``table`` with each floating point column ``c`` split into ``c`` (NaN as 0.0) and
    ``c is NaN``: Arrow's equality has NaN != NaN, Spark's has NaN = NaN."""
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_floating(column.type):
            nan = pc.is_nan(column)
            columns[name] = pc.if_else(nan, pa.scalar(0.0, column.type), column)
            columns[f"{name} is NaN"] = nan
        else:
            columns[name] = column
    return pa.table(columns)


def _same(got, expected) -> None:
    g, e = spark_support.to_arrow(got), spark_support.to_arrow(expected)
    assert g.schema == e.schema
    assert g.num_rows == e.num_rows
    assert _nan_free(_sorted(g)).equals(_nan_free(_sorted(e)))


def _plan(df) -> str:
    return df._sc._jvm.PythonSQLUtils.explainString(df._jdf.queryExecution(), "formatted")


def _pushed(df) -> str:
    (line,) = [x for x in _plan(df).splitlines() if x.startswith("PushedFilters:")]
    return line


def test_schema_and_all_rows_equal_sparks_parquet_reader(spark, dataset):
    uri, local, _ = dataset
    got = spark.read.format("wjio").load(uri)
    expected = spark.read.parquet(local)
    assert got.schema == expected.schema
    assert [f.name for f in got.schema] == ["id", "i32", "s", "dec", "d", "ts", "b", "f", "k", "r"]
    _same(got, expected)
    assert got.count() == len(PARTITIONS) * FILES_PER_PARTITION * ROWS_PER_FILE


WHERE = [
    "id >= 3000 and id < 4321",
    "i32 <= 7 and s like 'a%'",
    "s = 'b4z' or s is null",  # an OR is not pushed: Spark evaluates it
    "dec >= 12.5 and dec < 20",
    "dec <=> null",
    "not (dec <=> 3.125)",
    "d = date'2024-01-07'",
    "ts > timestamp'2024-01-03 10:00:00' and ts <= timestamp'2024-01-05 00:00:00'",
    "k = 1 and r = 'eu'",
    "r is null and k >= 1",
    "i32 in (1, 5, 7, null)",
    "not (i32 in (1, 2, 3))",
    "i32 <> 4 and b",
    "not b",
    "s like '%2z' and s like '%c1%'",
    "f > 2.0",  # floats stay with Spark (NaN)
    "id % 7 = 3",
]


@pytest.mark.parametrize("where", WHERE)
def test_filtered_projections_equal_sparks_parquet_reader(spark, dataset, where):
    uri, local, _ = dataset
    columns = ["id", "s", "dec", "k", "r"]
    got = spark.read.format("wjio").load(uri).where(where).select(*columns)
    expected = spark.read.parquet(local).where(where).select(*columns)
    _same(got, expected)


def test_nan_equality_keeps_the_nan_rows(spark, dataset):
    """``f = NaN`` holds for NaN rows in Spark. Spark's Parquet reader loses them when it
    pushes the filter into parquet-mr, whose row group statistics (which exclude NaN) drop
    every row group, so the reference here is Spark's reader without Parquet pushdown, and
    pyarrow's count of NaN in the files."""
    uri, local, objects = dataset
    got = spark.read.format("wjio").load(uri).where("f = 'NaN'").select("id", "f", "k")
    key = "spark.sql.parquet.filterPushdown"
    before = spark.conf.get(key)
    spark.conf.set(key, "false")
    try:
        expected = spark.read.parquet(local).where("f = 'NaN'").select("id", "f", "k")
        _same(got, expected)
    finally:
        spark.conf.set(key, before)
    nans = sum(pc.sum(pc.is_nan(pq.read_table(io.BytesIO(body), columns=["f"])["f"])).as_py()
               for name, body in objects.items() if name.endswith(".parquet"))
    assert got.count() == nans > 0


def test_pushdown_is_in_sparks_plan(spark, dataset):
    uri, _, _ = dataset
    df = spark.read.format("wjio").load(uri)
    pushed = _pushed(df.where("id > 5000 and s like 'ab%' and f > 1.0 and d >= date'2024-01-03'"))
    for f in ("GreaterThan(id,5000)", "StringStartsWith(s,ab)", "GreaterThanOrEqual(d,2024-01-03)"):
        assert f in pushed
    assert "(f," not in pushed  # a float filter is left to Spark
    plan = _plan(df.where("f > 1.0"))
    assert "Filter" in plan and "(f#" in plan


def _row_groups(objects: dict[str, bytes], keep) -> int:
    """Row groups whose statistics (read by pyarrow) may hold an id satisfying ``keep``."""
    count = 0
    for key, body in objects.items():
        if not key.endswith(".parquet"):
            continue
        md = pq.ParquetFile(io.BytesIO(body)).metadata
        for i in range(md.num_row_groups):
            stats = md.row_group(i).column(0).statistics
            count += keep(key, stats.min, stats.max)
    return count


def test_one_spark_partition_per_surviving_row_group(spark, dataset):
    uri, _, objects = dataset
    df = spark.read.format("wjio").option("rowGroupsPerPartition", "1").load(uri)
    assert df.rdd.getNumPartitions() == _row_groups(objects, lambda k, lo, hi: True)
    pruned = df.where("id >= 7000 and id < 7500")
    assert pruned.rdd.getNumPartitions() == _row_groups(
        objects, lambda k, lo, hi: hi >= 7000 and lo < 7500
    )
    by_partition = df.where("k = 2 and r = 'us'")
    assert by_partition.rdd.getNumPartitions() == _row_groups(
        objects, lambda k, lo, hi: k.startswith("k=2/r=us/")
    )
    assert 0 < pruned.rdd.getNumPartitions() < by_partition.rdd.getNumPartitions()
    nothing = df.where("id < 0")
    assert nothing.rdd.getNumPartitions() == 1 and nothing.count() == 0


def test_partitions_pack_row_groups_up_to_the_target(spark, dataset):
    uri, local, objects = dataset
    groups = _row_groups(objects, lambda k, lo, hi: True)
    packed = spark.read.format("wjio").load(uri)  # 128 MiB target: the whole small dataset
    assert packed.rdd.getNumPartitions() == 1
    by4 = spark.read.format("wjio").option("rowGroupsPerPartition", "4").load(uri)
    assert by4.rdd.getNumPartitions() == math.ceil(groups / 4)
    small = spark.read.format("wjio").option("targetPartitionBytes", "1").load(uri)
    assert small.rdd.getNumPartitions() == groups  # a row group over the target goes alone
    _same(by4, spark.read.parquet(local))


def test_columns_option_and_user_schema_read_only_those_columns(spark, dataset):
    uri, local, _ = dataset
    some = spark.read.format("wjio").option("columns", "dec, id ,k").load(uri)
    assert some.columns == ["dec", "id", "k"]
    _same(some.where("k = 0"), spark.read.parquet(local).select("dec", "id", "k").where("k = 0"))
    given = spark.read.format("wjio").schema("id bigint, s string, r string").load(uri)
    _same(given.where("r = 'us' and id > 100"),
          spark.read.parquet(local).select("id", "s", "r").where("r = 'us' and id > 100"))


def test_single_object_and_path_list(spark, dataset):
    uri, local, _ = dataset
    one = "k=1/r=eu/part-0.parquet"
    _same(spark.read.format("wjio").load(uri + one),
          spark.read.parquet(f"{local}/{one}"))
    two = ["k=0/r=us/part-1.parquet", "k=2/r=eu/part-0.parquet"]
    _same(spark.read.format("wjio").load([uri + p for p in two]).where("i32 > 10"),
          spark.read.parquet(*[f"{local}/{p}" for p in two]).where("i32 > 10"))


def _error(fn) -> str:
    with pytest.raises(PySparkException) as info:  # Spark wraps the worker's error
        fn()
    return str(info.value)


def test_bad_input_is_a_clear_error_through_spark(spark, dataset, s3):
    uri, _, _ = dataset
    def read():
        return spark.read.format("wjio")

    msg = _error(lambda: read().load("s3://wjio-no-such-bucket-xyz/t/").collect())
    assert "NoSuchBucketError" in msg and "wjio-no-such-bucket-xyz" in msg
    s3.put_object(Bucket=TEST_BUCKET, Key="t/datasource-bad/x.parquet", Body=b"not parquet!" * 9)
    msg = _error(lambda: read().load(f"s3://{TEST_BUCKET}/t/datasource-bad/x.parquet").collect())
    assert "NotParquetError" in msg and "Parquet magic" in msg
    msg = _error(lambda: read().load(uri + "no-such-dir/").collect())
    assert "ObjectNotFoundError" in msg and "no-such-dir" in msg
    msg = _error(lambda: read().option("rowGroupsPerPartition", "0").load(uri).collect())
    assert "DataSourceOptionError" in msg and "rowGroupsPerPartition" in msg
    msg = _error(lambda: read().load("/local/path").collect())
    assert "DataSourceOptionError" in msg and "not an S3 URI" in msg
    msg = _error(lambda: read().schema("id bigint, nope int").load(uri).collect())
    assert "ColumnNotFoundError" in msg and "nope" in msg


def test_an_object_replaced_after_planning_fails_the_read(spark, s3, prefix):
    """Partitions name objects by ETag: a file rewritten between Spark's planning and its
    tasks is not read as a mix of two versions."""
    base = f"s3://{TEST_BUCKET}/{prefix}"
    for j in range(2):
        s3.put_object(Bucket=TEST_BUCKET, Key=f"{prefix}part-{j}.parquet",
                      Body=_parquet(_file(j * 100, 100), row_group_size=50))
    rdd = spark.read.format("wjio").load(base).rdd  # plans: partitions() runs now
    assert rdd.getNumPartitions() == 1
    s3.put_object(Bucket=TEST_BUCKET, Key=f"{prefix}part-1.parquet",
                  Body=_parquet(_file(500, 100), row_group_size=50))
    msg = _error(rdd.count)
    assert "ObjectChangedError" in msg and "part-1.parquet" in msg
    assert spark.read.format("wjio").load(base).count() == 200  # planned afresh: fine


# -- the wjio hook the reader uses ----------------------------------------------------------


def _parquet(table: pa.Table, **kwargs) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kwargs)
    return buf.getvalue()


def _selection(s3, key: str, row_groups, partition=()) -> RowGroupSelection:
    head = s3.head_object(Bucket=TEST_BUCKET, Key=key)
    info = ObjectInfo(S3Path(TEST_BUCKET, key), head["ContentLength"], head["ETag"])
    return RowGroupSelection(DataFile(info, partition), tuple(row_groups))


def test_of_row_groups_reads_exactly_the_selected_row_groups(s3, prefix):
    bodies = {f"{prefix}k={k}/f.parquet": _parquet(_file(k * 1000, 400), row_group_size=100)
              for k in (1, 2)}
    for key, body in bodies.items():
        s3.put_object(Bucket=TEST_BUCKET, Key=key, Body=body)
    (a, b) = bodies
    picks = {a: (0, 2, 3), b: (1,)}
    partitions = pa.schema([("k", pa.int32())])
    scan = ParquetScan.of_row_groups(
        [_selection(s3, a, picks[a], (("k", "1"),)), _selection(s3, b, picks[b], (("k", "2"),))],
        partitions, columns=["id", "s", "k"])
    got = scan.to_table()
    expected = pa.concat_tables(
        pq.ParquetFile(io.BytesIO(bodies[key])).read_row_groups(list(picks[key]), ["id", "s"])
        .append_column("k", pa.array([k] * 100 * len(picks[key]), pa.int32()))
        for key, k in ((a, 1), (b, 2)))
    assert got.equals(expected)
    assert (scan.stats.row_groups_total, scan.stats.row_groups_pruned) == (4, 0)

    filtered = ParquetScan.of_row_groups(
        [_selection(s3, a, picks[a], (("k", "1"),))], partitions, columns=["id"],
        filter=pc.field("id") >= 1250)
    assert filtered.to_table()["id"].to_pylist() == list(range(1250, 1400))
    assert (filtered.stats.row_groups_total, filtered.stats.row_groups_pruned) == (3, 1)


def test_of_row_groups_rejects_bad_selections(s3, prefix):
    key = f"{prefix}f.parquet"
    s3.put_object(Bucket=TEST_BUCKET, Key=key, Body=_parquet(_file(0, 200), row_group_size=100))
    with pytest.raises(ValueError, match="has 2 row groups; selected"):
        ParquetScan.of_row_groups([_selection(s3, key, (1, 2))], pa.schema([])).to_table()
    with pytest.raises(ValueError, match="selected twice"):
        ParquetScan.of_row_groups([_selection(s3, key, (0,)), _selection(s3, key, (1,))],
                                  pa.schema([]))
    with pytest.raises(ValueError, match="at least one selection"):
        ParquetScan.of_row_groups([], pa.schema([]))
    stale = _selection(s3, key, (0,))
    s3.put_object(Bucket=TEST_BUCKET, Key=key, Body=_parquet(_file(5, 200), row_group_size=100))
    with pytest.raises(ObjectChangedError):
        ParquetScan.of_row_groups([stale], pa.schema([])).to_table()
