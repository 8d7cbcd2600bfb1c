"""``spark_conf.enable(spark)``: DataFrame actions give stock Spark's answers, natively or not.

Every expected value is stock Spark's own: the same action on the same DataFrame with the
session not enabled. Data is Parquet written by pyarrow; the native path is the executor's scan
of it, the fallback path Spark's (a Python UDF, or a result type acceleration leaves alone).
``wj submit`` runs a small unmodified script in a fresh process.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'wjio[spark]')")

import spark_conf
from spark_conf import accelerate
from spark_conf.entry import main as wj_main
from tests import spark_support

ROOT = Path(__file__).resolve().parents[2]
N = 240


@pytest.fixture(scope="module")
def spark():
    spark_support.require_spark()
    return spark_support.local_spark()


@pytest.fixture(scope="module")
def rich(tmp_path_factory) -> str:
    """A Parquet file with every type acceleration converts, nulls included."""
    i = list(range(N))
    table = pa.table({
        "k": pa.array([x % 5 for x in i], pa.int32()),
        "id": pa.array(i, pa.int64()),
        "v": pa.array([None if x % 7 == 0 else x * 0.25 for x in i], pa.float64()),
        "s": pa.array([None if x % 11 == 0 else f"s{x % 13}" for x in i]),
        "d": pa.array([datetime.date(2024, 1, 1) + datetime.timedelta(days=x) for x in i]),
        "m": pa.array([decimal.Decimal(x) / 100 for x in i], pa.decimal128(12, 2)),
        "ts": pa.array([datetime.datetime(2024, 3, 1, tzinfo=datetime.UTC)
                        + datetime.timedelta(minutes=37 * x) for x in i],
                       pa.timestamp("us", tz="UTC")),
        "b": pa.array([None if x % 9 == 0 else bytes([x % 256, 7]) for x in i], pa.binary()),
        "flag": pa.array([x % 3 == 0 for x in i]),
        "small": pa.array([x % 100 for x in i], pa.int16()),
        "f": pa.array([x / 8 for x in i], pa.float32()),
        "arr": pa.array([[x, x + 1] if x % 4 else None for x in i], pa.list_(pa.int64())),
        "st": pa.array([{"x": x, "y": f"y{x}"} for x in i],
                       pa.struct([("x", pa.int32()), ("y", pa.string())])),
        "mp": pa.array([[(x, f"m{x}")] for x in i], pa.map_(pa.int32(), pa.string())),
    })
    path = tmp_path_factory.mktemp("accel") / "rich.parquet"
    pq.write_table(table, path)
    return str(path)


@pytest.fixture(scope="module")
def data(rich) -> str:
    """The flat columns of ``rich`` (the types the native scan reads)."""
    path = Path(rich).with_name("flat.parquet")
    pq.write_table(pq.read_table(rich, columns=["k", "id", "v", "s", "d", "m", "flag", "small",
                                                "f"]), path)
    return str(path)


@contextlib.contextmanager
def accelerated(spark):
    spark_conf.enable(spark)
    try:
        yield spark_conf.report(spark)
    finally:
        spark_conf.disable(spark)


@contextlib.contextmanager
def conf(spark, **settings):
    """Set session keys for the block, then put back what was there (the shared session's
    profile keys are checked by other tests)."""
    keys = {k: k.replace("__", ".") for k in settings}
    before = {k: spark.conf.get(key, None) for k, key in keys.items()}
    try:
        for k, value in settings.items():
            spark.conf.set(keys[k], value)
        yield
    finally:
        for k, key in keys.items():
            if before[k] is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, before[k])


def same(a, b) -> bool:
    """Equal values of the same Python types, recursively (Rows by field names too)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):  # Row
        return getattr(a, "__fields__", None) == getattr(b, "__fields__", None) \
            and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def stock_actions(df) -> tuple:
    assert not accelerate.enabled(df.sparkSession)
    return df.collect(), df.toArrow(), df.count()


def assert_same_answers(df, stock, rep, engine: str) -> None:
    before = len(rep.actions)
    rows, table, count = df.collect(), df.toArrow(), df.count()
    assert same(rows, stock[0])
    assert table.equals(stock[1], check_metadata=True)
    assert table.schema.equals(stock[1].schema, check_metadata=True)
    assert count == stock[2]
    recs = rep.actions[before:]
    assert [r.action for r in recs] == ["collect", "toArrow", "count"]
    assert [r.rows for r in recs] == [len(stock[0]), stock[1].num_rows, stock[2]]
    assert all(r.error is None for r in recs)
    if engine == "native":
        assert [r.native for r in recs[:2]] == [True, True], [r.reason for r in recs]
    else:
        assert [r.native for r in recs[:2]] == [False, False]
        assert all(r.reason for r in recs[:2])


def test_native_actions_give_stock_answers(spark, data):
    df = spark.read.parquet(data)
    queries = [
        df.filter("k > 1").select("k", "id", "s", "d", "m", "v", "flag", "small", "f"),
        df.groupBy("k").agg({"v": "sum", "m": "sum", "id": "max"}).orderBy("k"),
    ]
    stocks = [stock_actions(q) for q in queries]
    with accelerated(spark) as rep:
        for q, stock in zip(queries, stocks, strict=True):
            assert_same_answers(q, stock, rep, "native")
    assert rep.native >= 4
    text = str(rep)
    assert text.startswith(f"wjio acceleration: {len(rep.actions)} action(s)")
    assert "collect" in text and "native" in text


def test_every_handled_type_converts_like_stock(spark, rich):
    """All columns (nested, binary, timestamps, decimals, nulls): whichever engine runs the
    scan, Rows and Arrow equal stock Spark's, types included."""
    df = spark.read.parquet(rich)
    queries = [df, df.selectExpr("id", "cast(ts as timestamp_ntz) ntz", "null as n",
                                 "array(st) sts", "map(k, b) kb")]
    stocks = [stock_actions(q) for q in queries]
    with accelerated(spark) as rep:
        for q, stock in zip(queries, stocks, strict=True):
            before = len(rep.actions)
            assert same(q.collect(), stock[0])
            assert q.toArrow().equals(stock[1], check_metadata=True)
            assert q.count() == stock[2]
            assert all(r.error is None for r in rep.actions[before:])


def test_binary_as_bytearray_when_configured(spark, rich):
    df = spark.read.parquet(rich).select("id", "b", "arr")
    with conf(spark, spark__sql__execution__pyspark__binaryAsBytes="false"):
        stock = df.collect()
        with accelerated(spark):
            got = df.collect()
    assert any(type(r.b) is bytearray for r in stock)
    assert same(got, stock)


def test_fallback_actions_give_stock_answers(spark, data):
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType

    df = spark.read.parquet(data)
    plus_one = F.udf(lambda x: x + 1, LongType())
    udf_query = df.select("k", plus_one("id").alias("id1"), "s").filter("k < 3")
    interval = df.selectExpr("id", "make_dt_interval(0, 0, k, 0) as dt")
    stocks = [stock_actions(udf_query), stock_actions(interval)]
    with accelerated(spark) as rep:
        assert_same_answers(udf_query, stocks[0], rep, "spark")
        assert not rep.actions[-3].reason.startswith("result type")  # the executor's reason
        assert_same_answers(interval, stocks[1], rep, "spark")
        assert rep.actions[-3].reason == ("result type interval day to second is not "
                                          "converted by acceleration")


def test_pandas_conversion_gets_the_batches_spark_gets(spark, data):
    """toPandas runs pyspark's own conversion on the batches ``_collect_as_arrow`` returns;
    the accelerated batches equal Spark's (native here), so the frames do."""
    df = spark.read.parquet(data).filter("k = 2").select("id", "s", "d", "m", "v")
    from executor.frontend.spark import execute

    result = execute(spark, df)
    assert result.native, result.reason
    ours = pa.Table.from_batches(accelerate._view(df, result.table)._collect_as_arrow())
    theirs = pa.Table.from_batches(df._collect_as_arrow())
    assert ours.equals(theirs, check_metadata=True)
    assert accelerate._view(df, result.table.slice(0, 0))._collect_as_arrow() == []
    assert pa.Table.from_batches(accelerate._view(df, result.table.slice(0, 0))._collect_as_arrow(
        empty_list_if_zero_records=False)).schema.equals(theirs.schema, check_metadata=True)


def test_to_pandas_equals_stock(spark, data):
    pytest.importorskip("pandas", reason="pandas is not installed (toPandas needs it)")
    df = spark.read.parquet(data).filter("k = 2").select("id", "s", "d", "m", "v", "flag")
    stock = df.toPandas()
    with accelerated(spark) as rep:
        got = df.toPandas()
    assert got.equals(stock) and list(got.dtypes) == list(stock.dtypes)
    assert rep.actions[-1].action == "toPandas" and rep.actions[-1].native


def _compressions(root: Path) -> dict[str, set[str]]:
    """Partition directory -> compression codecs of its Parquet files."""
    out: dict[str, set[str]] = {}
    for p in root.rglob("*.parquet"):
        meta = pq.ParquetFile(p).metadata
        out.setdefault(str(p.parent.relative_to(root)), set()).update(
            meta.row_group(g).column(c).compression
            for g in range(meta.num_row_groups) for c in range(meta.num_columns))
    return out


def test_write_parquet_native_and_fallback_like_stock(spark, data, tmp_path):
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType

    df = spark.read.parquet(data)
    native_q = df.filter("id % 2 = 0").select("k", "id", "s", "m", "d")
    udf_q = df.select("k", F.udf(lambda x: x * 3, LongType())("id").alias("id3"))
    for name, q in (("native", native_q), ("udf", udf_q)):
        (q.write.mode("overwrite").partitionBy("k").option("compression", "gzip")
         .parquet(str(tmp_path / f"stock-{name}")))
    with accelerated(spark) as rep:
        for name, q in (("native", native_q), ("udf", udf_q)):
            w = q.write.mode("overwrite").partitionBy("k").option("compression", "gzip")
            w.parquet(str(tmp_path / f"acc-{name}"))
    native, fallback = rep.actions
    assert (native.action, native.native, native.rows) == ("write.parquet", True,
                                                           native_q.count())
    assert (fallback.native, fallback.rows) == (False, None) and fallback.reason
    for name in ("native", "udf"):
        ours, theirs = (spark.read.parquet(str(tmp_path / f"{w}-{name}")) for w in ("acc", "stock"))
        assert ours.schema == theirs.schema
        assert sorted(ours.collect()) == sorted(theirs.collect())
        assert _compressions(tmp_path / f"acc-{name}") == \
            _compressions(tmp_path / f"stock-{name}") == {f"k={k}": {"GZIP"} for k in range(5)}
    # The writer's settings were replayed: a second write without overwrite is refused.
    from pyspark.errors import AnalysisException

    with accelerated(spark), pytest.raises(AnalysisException, match="already exists"):
        native_q.write.partitionBy("k").parquet(str(tmp_path / "acc-native"))


def test_only_enabled_sessions_are_accelerated_and_disable_restores(spark, data):
    from pyspark.sql.classic.dataframe import DataFrame

    stock_collect = DataFrame.collect
    other = spark.newSession()
    with accelerated(spark) as rep:
        assert DataFrame.collect is not stock_collect
        rows = other.read.parquet(data).filter("k = 1").collect()
        assert rep.actions == []
        assert spark.read.parquet(data).filter("k = 1").collect() == rows
        assert len(rep.actions) == 1
        with pytest.raises(spark_conf.AccelerationError, match="not enabled"):
            spark_conf.report(other)
    assert DataFrame.collect is stock_collect
    assert not accelerate.enabled(spark)
    with pytest.raises(spark_conf.AccelerationError, match="not enabled"):
        spark_conf.disable(spark)


def test_session_keys_switch_native_off_or_forbid_fallback(spark, data):
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType

    df = spark.read.parquet(data).filter("k = 4").select("id", "s")
    udf_q = df.select(F.udf(lambda x: -x, LongType())("id").alias("neg"))
    stock = df.collect()
    with accelerated(spark) as rep:
        with conf(spark, spark__wjio__native__enabled="false"):
            assert same(df.collect(), stock)
        assert rep.actions[-1].reason == "spark.wjio.native.enabled=false"
        assert not rep.actions[-1].native
        with conf(spark, spark__wjio__fallback="error"):
            assert same(df.collect(), stock)  # native: allowed
            with pytest.raises(spark_conf.AccelerationError, match=r"spark\.wjio\.fallback=error"):
                udf_q.collect()
            with pytest.raises(spark_conf.AccelerationError, match="fallback=error"):
                udf_q.write.parquet("/nonexistent/never-written")
        assert rep.actions[-3].native
        assert rep.actions[-2].error.startswith("AccelerationError")
        assert rep.actions[-1].error.startswith("AccelerationError")
        with conf(spark, spark__wjio__native__enabled="maybe"), \
                pytest.raises(spark_conf.config.ConfigError, match="true or false"):
            df.count()


def test_enable_refuses_what_is_not_a_classic_session():
    with pytest.raises(spark_conf.AccelerationError, match="not a classic SparkSession"):
        spark_conf.enable(object())


SCRIPT = r'''
import json, sys
from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("wj-submit-test").getOrCreate()
df = spark.read.parquet(sys.argv[1])
out = {
    "argv": sys.argv[2:],
    "groups": [list(r) for r in df.groupBy("k").count().orderBy("k").collect()],
    "count": df.filter("k > 1").count(),
    "arrow_rows": df.select("id", "m").toArrow().num_rows,
    "conf": spark.conf.get("spark.sql.shuffle.partitions"),
}
print("RESULT " + json.dumps(out))
spark.stop()
sys.exit(3)
'''


def test_wj_submit_runs_an_unmodified_script_accelerated(spark, data, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.run(
        [sys.executable, "-m", "spark_conf.entry", "submit", "--profile", "local",
         str(script), data, "--flag", "x"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 3, proc.stderr[-3000:]
    out = json.loads(next(line for line in proc.stdout.splitlines()
                          if line.startswith("RESULT "))[len("RESULT "):])
    df = spark.read.parquet(data)
    assert out == {
        "argv": ["--flag", "x"],
        "groups": [list(r) for r in df.groupBy("k").count().orderBy("k").collect()],
        "count": df.filter("k > 1").count(),
        "arrow_rows": N,
        "conf": "4",  # profile local filled in what the script's builder did not set
    }
    report = proc.stderr[proc.stderr.index("wjio acceleration: 3 action(s)"):]
    lines = report.splitlines()
    assert [line.split()[1:3] for line in lines[2:5]] == [
        ["collect", "native"], ["count", "native"], ["toArrow", "native"]]


def test_wj_submit_errors(tmp_path, capsys):
    assert wj_main(["submit", str(tmp_path / "missing.py")]) == 2
    assert "missing.py: no such script" in capsys.readouterr().err
    script = tmp_path / "noop.py"
    script.write_text("print('hi')\n")
    assert wj_main(["submit", "--set", "spark.x=1", str(script)]) == 2
    assert "--set needs --profile" in capsys.readouterr().err
    assert wj_main(["submit", str(script)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "hi\n"
    assert "created no SparkSession" in captured.err
