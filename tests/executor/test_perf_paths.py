"""The executor's fast paths equal Spark's own results: decimal arithmetic, casts and avg in
int64 (with Spark's HALF_UP rounding, precision loss and overflow rules), and hash joins that
build on the smaller side (every join type, each side the smaller one, null and duplicate
keys, residual conditions, computed keys).

ANSI queries run through ``executor.sql`` (the plan is Spark's); non-ANSI semantics are IR
expressions with ``ansi=False`` over the same table, compared with Spark run with
``spark.sql.ansi.enabled=false``. Decimal inputs sit on rounding ties (x.xx5), are negative,
null, zero, and at the largest magnitude of their type.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import executor
from executor import ir
from executor.context import ExecContext
from executor.errors import DivideByZeroError, NumericOutOfRangeError
from tests import spark_support

ROWS = 400
SMALL = 40  # the join's small side; the big side is ROWS rows
CTX = ExecContext(parallelism=2, num_partitions=2)


def _decimals(rng, n: int, digits: int, scale: int, null: float) -> pa.Array:
    """decimal(digits, scale): random values, ties at the last digit (x.xx5 for scale 3),
    negatives, zeros, the type's extremes, and nulls."""
    top = 10**digits - 1
    u = rng.integers(-(10 ** min(digits, 9)), 10 ** min(digits, 9), n)
    u[::7] = (u[::7] // 10) * 10 + 5  # ties when rounded one digit less
    u[3::11] = 0
    u[5::37] = top
    u[6::37] = -top
    values = [Decimal(int(x)).scaleb(-scale) for x in u]
    return pa.array(values, pa.decimal128(digits, scale), mask=rng.random(n) < null)


def _table(seed: int = 11) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = ROWS
    return pa.table({
        "id": pa.array(np.arange(n), pa.int64()),
        "g": pa.array(rng.integers(0, 7, n), pa.int32()),
        "a": _decimals(rng, n, 12, 2, 0.08),
        "b": _decimals(rng, n, 15, 3, 0.08),
        "c": _decimals(rng, n, 5, 4, 0.05),
        "t": _decimals(rng, n, 10, 9, 0.05),
        "i": pa.array(rng.integers(-10**6, 10**6, n), pa.int64(), mask=rng.random(n) < 0.05),
        # even cents, plus one odd cent per 32 rows: each full group id div 32 has an odd sum,
        # so its avg (sum / 32, decimal(16, 6)) ends in 5 at the 7th decimal -- a tie
        "h": pa.array([Decimal(int(x) * 2 + (i % 32 == 0)).scaleb(-2)
                       for i, x in enumerate(rng.integers(-10**6, 10**6, n))],
                      pa.decimal128(12, 2)),
    })


def _join_tables(seed: int = 5) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)

    def side(n: int, tag: str) -> pa.Table:
        return pa.table({
            f"{tag}k": pa.array(rng.integers(0, 60, n), pa.int64(), mask=rng.random(n) < 0.1),
            f"{tag}s": pa.array([f"s{x}" for x in rng.integers(0, 5, n)],
                                mask=rng.random(n) < 0.1),
            f"{tag}v": pa.array(rng.integers(-50, 50, n), pa.int32()),
            f"{tag}id": pa.array(np.arange(n), pa.int64()),
        })

    return side(SMALL, "x"), side(ROWS, "y")


@pytest.fixture(scope="module")
def data() -> pa.Table:
    return _table()


@pytest.fixture(scope="module")
def spark(tmp_path_factory, data):
    spark_support.require_spark()
    root = tmp_path_factory.mktemp("perf_paths")
    session = spark_support.local_spark()
    small, big = _join_tables()
    for name, table in (("pp_d", data), ("pp_small", small), ("pp_big", big)):
        (root / name).mkdir()
        half = table.num_rows // 2  # two files: two scan tasks
        pq.write_table(table.slice(0, half), root / name / "part-0.parquet")
        pq.write_table(table.slice(half), root / name / "part-1.parquet")
        session.read.parquet(str(root / name)).createOrReplaceTempView(name)
    session.root = root
    return session


def _rows(table: pa.Table) -> list[tuple]:
    return spark_support.sorted_rows(table)


def _same_as_spark(spark, sql: str) -> pa.Table:
    return spark_support.native_equals_spark(spark, sql, ctx=CTX)


# -- decimals, ANSI (through Spark's plans) --------------------------------------------------

DECIMAL_QUERIES = {
    "add_sub": "select id, a + b as s, a - b as d, b - a as e, 1 - c as f, c + 1 as h "
               "from pp_d",
    "multiply": "select id, a * c as m, a * b as n, (1 - c) * a as p, a * (1 - c) * (1 + c) as q, "
                "c * c as r from pp_d",
    "divide": "select id, a / b as x, b / a as y, c / b as z, t / c as w, a / 7 as v, "
              "i / c as u from pp_d where b <> 0 and a <> 0 and c <> 0",
    # decimal(10,9) / decimal(10,9) is decimal(30,20): both of Spark's roundings matter
    "divide_fine_scale": "select id, t / (t + 1) as x, c / (t + 2) as y from pp_d",
    "casts": "select id, cast(b as decimal(15, 2)) as r, cast(c as decimal(3, 1)) as s, "
             "cast(a as decimal(20, 5)) as w, cast(i as decimal(12, 2)) as j, "
             "cast(g as decimal(3, 0)) as k from pp_d",
    # Spark rewrites avg of decimal(p <= 11) and sum of decimal(p <= 8) to UnscaledValue
    # arithmetic (DecimalAggregates), which does not translate: only wider inputs here.
    "avg_sum": "select g, avg(a) as aa, avg(b) as ab, sum(a * c) as sm, "
               "avg(a * (1 - c)) as am, sum(b) as sb, avg(t * 100) as at, count(*) as n "
               "from pp_d group by g",
    "global_avg": "select avg(a / 3) as ad, avg(-b) as ab, sum(a + c) as sc from pp_d",
    # aggregates read one column several times (computed once), counts of columns with and
    # without nulls (a count of rows where it has none), a key also summed
    "shared_aggregates": "select g, sum(a) as sa, avg(a) as aa, count(a) as ca, sum(b) as sb, "
                         "avg(b) as ab, count(id) as ci, count(*) as n, sum(i) as si, "
                         "avg(i) as ai, count(i) as ni, sum(g) as sg, count(g) as cg, "
                         "min(a) as mi, max(a) as ma from pp_d group by g",
    "shared_global": "select sum(b) as sb, avg(b) as ab, count(b) as cb, count(id) as ci, "
                     "count(*) as n from pp_d where g > 2",
}


@pytest.mark.parametrize("name", list(DECIMAL_QUERIES))
def test_decimal_results_equal_spark(spark, name):
    got = _same_as_spark(spark, DECIMAL_QUERIES[name])
    assert got.num_rows > 0


def test_aggregates_reading_one_input_are_computed_once():
    """Q1's shape: sum(x) and avg(x) share x's sum; counts of columns without nulls are the
    row count; what is left runs once (and the dropped outputs read the kept ones)."""
    from executor.operators.aggregate import _distinct_aggregates

    valid = pa.compute.CountOptions("only_valid")
    table = pa.table({"a0": [1, 2], "a1": [1, None], "a2": [1, 2], "a3": [5, 6]})
    aggs = [("a0", "hash_sum", None, "s0"), ("a2", "hash_sum", None, "s2"),
            ("a2", "hash_count", valid, "c2"), ("a1", "hash_count", valid, "c1"),
            ("a3", "hash_count", None, "c3"), ([], "hash_count_all", None, "n"),
            ("a3", "hash_sum", None, "s3")]
    kept, alias = _distinct_aggregates(aggs, {"a2": "a0"}, table)
    assert kept == [("a0", "hash_sum", None, "s0"), ([], "hash_count_all", None, "c2"),
                    ("a1", "hash_count", valid, "c1"), ("a3", "hash_sum", None, "s3")]
    assert alias == {"s2": "s0", "c3": "c2", "n": "c2"}


def test_avg_rounds_ties_half_up_like_spark(spark, data):
    got = _same_as_spark(spark, "select id div 32 as k, avg(h) as x, avg(-h) as y from pp_d "
                                "group by id div 32")
    ties = [r for r in got.to_pylist() if r["k"] < ROWS // 32]
    h = data.column("h").to_pylist()
    for r in ties:  # HALF_UP: away from zero at the tie
        exact = sum(h[32 * r["k"]:32 * r["k"] + 32]) / 32
        assert len(str(exact).split(".")[1]) == 7 and str(exact).endswith("5")
        assert abs(r["x"]) > abs(exact) and r["y"] == -r["x"]


@pytest.mark.parametrize(("sql", "error"), [
    ("select a / (c - c) as x from pp_d where a is not null", DivideByZeroError),
    ("select cast(b as decimal(6, 2)) as x from pp_d", NumericOutOfRangeError),
    ("select cast(i as decimal(5, 0)) as x from pp_d", NumericOutOfRangeError),
])
def test_ansi_errors_like_spark(spark, sql, error):
    with pytest.raises(Exception, match=r"DIVIDE_BY_ZERO|NUMERIC_VALUE_OUT_OF_RANGE"):
        spark_support.spark_reference(spark, sql)
    with pytest.raises(error):
        executor.sql(spark, sql, ctx=CTX)


# -- decimals, ANSI off (IR with ansi=False against Spark's legacy mode) ---------------------


def _legacy(spark, sql: str) -> pa.Table:
    spark.conf.set("spark.sql.ansi.enabled", "false")
    try:
        return spark_support.spark_reference(spark, sql)
    finally:
        spark.conf.set("spark.sql.ansi.enabled", "true")


def test_overflow_and_zero_divisor_give_null_without_ansi(spark, data):
    scan = ir.Scan(str(spark.root / "pp_d"), ir.Schema.from_arrow(data.schema),
                   tuple(data.column_names))

    def col(name):
        return ir.ColumnRef(name, data.schema.field(name).type)

    zero = ir.Subtract(col("c"), col("c"), ansi=False)
    plan = ir.Project(scan, (
        ir.Alias(col("id"), "id"),
        ir.Alias(ir.Divide(col("a"), zero, ansi=False), "q"),
        ir.Alias(ir.Divide(col("a"), col("c"), ansi=False), "r"),
        ir.Alias(ir.Cast(col("b"), pa.decimal128(6, 2), ansi=False), "s"),
        ir.Alias(ir.Cast(col("i"), pa.decimal128(5, 0), ansi=False), "u"),
        ir.Alias(ir.Cast(col("c"), pa.decimal128(2, 1), ansi=False), "v"),
    ))
    got = executor.run(plan)
    expected = _legacy(spark, "select id, a / (c - c) as q, a / c as r, "
                              "cast(b as decimal(6, 2)) as s, cast(i as decimal(5, 0)) as u, "
                              "cast(c as decimal(2, 1)) as v from pp_d")
    assert [f.type for f in got.schema] == [f.type for f in expected.schema]
    assert _rows(got) == _rows(expected)
    nulls = got.column("s").null_count - data.column("b").null_count
    assert nulls > 0  # some values overflowed decimal(6, 2)


# -- joins: each side the smaller one ---------------------------------------------------------

JOINS = ["inner", "left", "right", "full", "left semi", "left anti"]


def _join_sql(how: str, small_left: bool, residual: bool, computed: bool) -> str:
    left, right = ("pp_small", "pp_big") if small_left else ("pp_big", "pp_small")
    lk, rk = ("xk", "yk") if small_left else ("yk", "xk")
    lv, rv = ("xv", "yv") if small_left else ("yv", "xv")
    ls, rs = ("xs", "ys") if small_left else ("ys", "xs")
    on = f"{lk} + 1 = {rk} + 1" if computed else f"{lk} = {rk}"
    on += f" and {ls} = {rs}"
    if residual:
        on += f" and {lv} < {rv}"
    semi = how in ("left semi", "left anti")
    cols = f"{lk}, {lv}, {ls}" if semi else f"{lk}, {rk}, {lv}, {rv}, {ls}, {rs}"
    return f"select {cols} from {left} {how} join {right} on {on}"


@pytest.mark.parametrize("how", JOINS)
@pytest.mark.parametrize("small_left", [True, False], ids=["small_left", "small_right"])
def test_joins_equal_spark(spark, how, small_left):
    for residual, computed in ((True, False), (False, True)):
        _same_as_spark(spark, _join_sql(how, small_left, residual, computed))


# -- semi/anti joins whose residual is "another value": answered from per-key extremes ---------

DISTINCT_RESIDUAL = {
    "exists_string": "select yk, ys, yid from pp_big b where exists "
                     "(select 1 from pp_small s where s.xk = b.yk and s.xs <> b.ys)",
    "not_exists_string": "select yk, ys, yid from pp_big b where not exists "
                         "(select 1 from pp_small s where s.xk = b.yk and s.xs <> b.ys)",
    "semi_int": "select xk, xv, xid from pp_small left semi join pp_big on xk = yk and yv <> xv",
    "anti_int": "select xk, xv, xid from pp_small left anti join pp_big "
                "on xk = yk and not (xv = yv)",
    "semi_int_big_left": "select yk, yv, yid from pp_big left semi join pp_small "
                         "on xk = yk and yv <> xv and yid > xid",
}


@pytest.mark.parametrize("name", list(DISTINCT_RESIDUAL))
def test_semi_anti_with_not_equal_residual_equal_spark(spark, name):
    """Null keys, null values on either side (``xs``/``ys``) and keys whose partners hold one
    or several distinct values; the first four take the per-key extremes path."""
    from executor.frontend.spark import native_plan
    from executor.ir.node import transform_up
    from executor.operators.join import _distinct_columns

    sql = DISTINCT_RESIDUAL[name]
    _same_as_spark(spark, sql)
    joins = []
    transform_up(native_plan(spark, sql), lambda n: joins.append(n) or n)
    fast = [j for j in joins if isinstance(j, ir.Join) and _distinct_columns(j)]
    # a residual with a second conjunct keeps Acero's residual filter
    assert len(fast) == (0 if name == "semi_int_big_left" else 1)
