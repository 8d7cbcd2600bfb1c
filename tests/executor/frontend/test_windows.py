"""Window functions: Spark's ``Window`` plans run natively and equal Spark's own results.

Every query runs through ``executor.sql`` (partition-parallel: the window's input is
hash-partitioned by its partition keys) and again on Spark; columns, types and rows must be the
same, and ``last_result()`` must say it ran natively, or fell back with the expected reason.
The data has null and NaN values, null partition keys, ties in the order keys and a unique
``id`` for the functions whose result depends on the order among ties (Spark's too).
The first tests need no Spark: the IR node's validation, serde and explain.
"""

from __future__ import annotations

import re
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import executor
from executor import ir
from executor.context import ExecContext
from executor.errors import ArithmeticOverflowError, PlanError
from executor.frontend import last_result
from executor.ir import windows as win
from tests import spark_support

VIEW = "win_t"
ROWS = 3000
# Two tasks: the window's input goes through a hash exchange on its partition keys.
CTX = ExecContext(parallelism=2, num_partitions=3)


# -- the IR node (no Spark) -----------------------------------------------------------------


def _values() -> ir.Values:
    schema = ir.Schema.of(("g", pa.int32()), ("k", pa.int64()), ("s", pa.string()))
    return ir.Values(schema, ((ir.Literal(1, pa.int32()), ir.Literal(5, pa.int64()),
                               ir.Literal("a", pa.string())),))


def _col(t: ir.Relation, name: str) -> ir.ColumnRef:
    f = t.schema.field(name)
    return ir.ColumnRef(f.name, f.dtype, f.nullable)


def test_window_node_validation():
    t = _values()
    lag = ir.Alias(win.WindowExpr(win.OffsetValue(_col(t, "s"), -1)), "l")
    with pytest.raises(PlanError, match="OffsetValue needs an ordered window"):
        ir.Window(t, (lag,), (_col(t, "g"),))
    ranged = ir.Alias(win.WindowExpr(ir.Count(), win.WindowFrame(win.FrameKind.RANGE, -2, 0)),
                      "c")
    with pytest.raises(PlanError, match="one integral order key"):
        ir.Window(t, (ranged,), order_by=(ir.SortKey(_col(t, "s")),))
    with pytest.raises(PlanError, match="lower bound is after upper bound"):
        win.WindowFrame(win.FrameKind.ROWS, 1, -1)
    with pytest.raises(PlanError, match="not a window function"):
        win.WindowExpr(_col(t, "k"))
    with pytest.raises(PlanError, match="default is string, input int64"):
        win.OffsetValue(_col(t, "k"), 1, ir.Literal("x", pa.string()))
    with pytest.raises(PlanError, match="buckets must be a positive integer"):
        win.NTile(0)


def test_window_node_serde_and_explain():
    t = _values()
    node = ir.Window(t, (
        ir.Alias(win.WindowExpr(ir.Sum(_col(t, "k")), win.WindowFrame(win.FrameKind.RANGE, -3,
                                                                      None)), "sk"),
        ir.Alias(win.WindowExpr(win.NTile(4)), "n"),
        ir.Alias(win.WindowExpr(win.OffsetValue(_col(t, "k"), 2, ir.Literal(0, pa.int64()))),
                 "l"),
    ), (_col(t, "g"),), (ir.SortKey(_col(t, "k"), ascending=False),))
    assert ir.from_json(ir.to_json(node)) == node
    assert ir.fingerprint(ir.from_json(ir.to_json(node))) == ir.fingerprint(node)
    assert node.schema.names == ("g", "k", "s", "sk", "n", "l")
    assert [f.dtype for f in node.schema.fields[3:]] == [pa.int64(), pa.int32(), pa.int64()]
    shown = ir.explain(node)
    assert "sum(k) OVER (range -3..unbounded following) AS sk" in shown
    assert "ntile(4) AS n, lead(k, 2, 0) AS l] partition=[g] order=[k DESC" in shown


@pytest.mark.parametrize("groups", [3, 900])  # few long partitions / many short ones
def test_running_float_sums_add_in_window_order(table, groups):
    # Spark adds a running frame's doubles one by one in window order; the reference is that
    # loop in Python floats.
    rng = np.random.default_rng(groups)
    n = 3000
    data = pa.table({"g": rng.integers(0, groups, n), "id": rng.permutation(n),
                     "f": rng.normal(0, 1e6, n) * 10.0 ** rng.integers(-8, 8, n)})
    t = table("t", data, files=2)
    frame = win.WindowFrame(win.FrameKind.ROWS, None, 0)
    node = ir.Window(t, (ir.Alias(win.WindowExpr(ir.Sum(_col(t, "f")), frame), "s"),),
                     (_col(t, "g"),), (ir.SortKey(_col(t, "id")),))
    got = executor.run(node)
    expected: dict[int, float] = {}
    running: dict[int, float] = {}
    for g, i, f in sorted(zip(data["g"].to_pylist(), data["id"].to_pylist(),
                              data["f"].to_pylist(), strict=True), key=lambda r: r[:2]):
        running[g] = running.get(g, 0.0) + f
        expected[i] = running[g]
    assert dict(zip(got["id"].to_pylist(), got["s"].to_pylist(), strict=True)) == expected


# -- against Spark ----------------------------------------------------------------------------


def _table(seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = ROWS

    def nulls(p: float) -> np.ndarray:
        return rng.random(n) < p

    f = np.round(rng.normal(0, 100, n), 3)
    f[rng.random(n) < 0.02] = np.nan
    return pa.table({
        "id": pa.array(rng.permutation(n), pa.int64()),
        "g": pa.array(rng.integers(0, 12, n), pa.int32(), mask=nulls(0.05)),
        "k": pa.array(rng.integers(-20, 40, n), pa.int64(), mask=nulls(0.05)),
        "d": pa.array([Decimal(int(x)).scaleb(-2) for x in rng.integers(-10**9, 10**9, n)],
                      pa.decimal128(10, 2), mask=nulls(0.1)),
        "e": pa.array([Decimal(int(x)).scaleb(-2) for x in rng.integers(-10**11, 10**11, n)],
                      pa.decimal128(12, 2), mask=nulls(0.1)),
        "m": pa.array([Decimal(int(x)).scaleb(-2) for x in rng.integers(-10**7, 10**7, n)],
                      pa.decimal128(7, 2), mask=nulls(0.1)),
        "q": pa.array(rng.integers(-400, 400, n) / 4, pa.float64(), mask=nulls(0.1)),
        "f": pa.array(f, pa.float64(), mask=nulls(0.05)),
        "s": pa.array([f"s{x:03d}" for x in rng.integers(0, 500, n)], mask=nulls(0.05)),
        "dt": pa.array(rng.integers(8000, 8100, n).astype(np.int32), pa.int32()).cast(
            pa.date32()),
    })


@pytest.fixture(scope="module")
def data() -> pa.Table:
    return _table()


@pytest.fixture(scope="module")
def spark(tmp_path_factory, data):
    spark_support.require_spark()
    path = tmp_path_factory.mktemp("windows") / "t"
    path.mkdir()
    # Three files, so the scan has several tasks and the hash exchange moves rows.
    for i in range(3):
        part = data.slice(i * ROWS // 3, ROWS // 3)
        pq.write_table(part, path / f"part-{i}.parquet", row_group_size=400)
    session = spark_support.local_spark()
    session.read.parquet(str(path)).createOrReplaceTempView(VIEW)
    return session


def _rows(table: pa.Table) -> list[tuple]:
    return spark_support.sorted_rows(table)


def _same_as_spark(spark, sql: str) -> pa.Table:
    return spark_support.native_equals_spark(spark, sql, ctx=CTX)


def _windows_in(plan: ir.Relation) -> int:
    count = int(isinstance(plan, ir.Window))
    return count + sum(_windows_in(c) for c in plan.inputs)


def test_default_frames_peers_and_whole_partition(spark):
    # With ORDER BY: RANGE UNBOUNDED PRECEDING..CURRENT ROW, so ties in k (peers) share one
    # value; without ORDER BY: the whole partition. Null g rows are one partition.
    _same_as_spark(spark, f"""
        select id, g, k,
               sum(d) over (partition by g order by k) as sd,
               count(d) over (partition by g order by k) as cd,
               count(*) over (partition by g order by k) as cs,
               avg(e) over (partition by g order by k) as ae,
               sum(q) over (partition by g order by k) as sq,
               min(s) over (partition by g order by k) as mins,
               max(f) over (partition by g order by k) as maxf,
               sum(d) over (partition by g) as sd_all,
               avg(k) over (partition by g) as ak_all,
               max(s) over (partition by g) as maxs_all
        from {VIEW}""")
    assert _windows_in(last_result().plan) == 2  # two specs: Spark plans two Windows


def test_decimal_result_types(spark):
    # sum of decimal(p <= 8) is planned by Spark as a long sum of unscaled values: the same
    # decimal(p + 10, s) sum.
    got = _same_as_spark(spark, f"""
        select id, sum(d) over (partition by g order by id) as s,
               avg(e) over (partition by g order by id rows between 3 preceding
                            and 3 following) as a,
               sum(m) over (partition by g order by k) as sm,
               sum(m) over (partition by g order by id rows between 2 preceding
                            and current row) as sm2
        from {VIEW}""")
    assert [got.schema.field(c).type for c in ("s", "a", "sm", "sm2")] == [
        pa.decimal128(20, 2), pa.decimal128(16, 6), pa.decimal128(17, 2), pa.decimal128(17, 2)]


def test_null_partition_keys_form_one_partition(spark, data):
    got = _same_as_spark(spark, f"""
        select id, g, count(*) over (partition by g) as n,
               row_number() over (partition by g order by id) as rn
        from {VIEW}""")
    null_rows = got.filter(pc.is_null(got.column("g")))
    expected = data.column("g").null_count
    assert null_rows.num_rows == expected > 0
    assert set(null_rows.column("n").to_pylist()) == {expected}
    assert sorted(null_rows.column("rn").to_pylist()) == list(range(1, expected + 1))


ORDERS = ("k", "k desc", "k asc nulls last", "k desc nulls first")


def test_ranking_functions_with_ties_and_nulls(spark):
    cols = ",\n".join(f"""
        rank() over (partition by g order by {o}) as r{i},
        dense_rank() over (partition by g order by {o}) as dr{i},
        percent_rank() over (partition by g order by {o}) as pr{i},
        cume_dist() over (partition by g order by {o}) as cd{i},
        row_number() over (partition by g order by {o}, id) as rn{i},
        ntile(7) over (partition by g order by {o}, id) as nt{i}""" for i, o in enumerate(ORDERS))
    # Partitions of one to a few rows (by g, s): percent_rank 0 alone, ntile buckets > rows.
    tiny = """
        percent_rank() over (partition by g, s order by k) as tpr,
        cume_dist() over (partition by g, s order by k) as tcd,
        ntile(3) over (partition by g, s order by k, id) as tnt,
        lead(id, 1, -1L) over (partition by g, s order by k, id) as tld"""
    _same_as_spark(spark, f"select id, g, k, {cols}, {tiny} from {VIEW}")


def test_lag_lead_offsets_and_defaults(spark):
    _same_as_spark(spark, f"""
        select id, g,
               lag(d) over (partition by g order by id) as l1,
               lag(s, 3, 'none') over (partition by g order by id) as l3,
               lead(k, 2, -1L) over (partition by g order by id) as ld2,
               lead(d, 1, 0) over (partition by g order by id) as ld1,
               lag(k, 1, g) over (partition by g order by id) as lcol,
               lead(f, 0) over (partition by g order by id) as l0,
               lag(q, -2) over (partition by g order by id) as lneg
        from {VIEW}""")


def test_rows_frames(spark):
    # Ordered by the unique id: a ROWS frame is then the same set of rows in Spark.
    _same_as_spark(spark, f"""
        select id,
               sum(d) over w1 as sd, sum(k) over w1 as sk, count(*) over w1 as c,
               avg(f) over w1 as af, sum(f) over w1 as sf, min(f) over w1 as minf,
               max(s) over w1 as maxs, avg(k) over w1 as ak,
               sum(e) over w2 as se, min(s) over w2 as mins, max(f) over w2 as maxf,
               count(f) over w2 as cf,
               sum(f) over w3 as sf3, max(d) over w3 as maxd3, min(k) over w3 as mink3,
               sum(d) over w4 as sd4, min(d) over w4 as mind4, count(s) over w4 as cs4
        from {VIEW}
        window w1 as (partition by g order by id rows between 2 preceding and 1 following),
               w2 as (partition by g order by id rows between current row
                      and unbounded following),
               w3 as (partition by g order by id rows between unbounded preceding
                      and 3 following),
               w4 as (partition by g order by id rows between 5 following and 9 following)""")


def test_range_frames_with_offsets(spark):
    # RANGE offsets over the integral key k, with ties and null keys (a null key's frame is
    # its null peers), in every direction and null placement.
    cols = ",\n".join(f"""
        sum(d) over (partition by g order by {o} range between 3 preceding and 2 following)
            as sd{i},
        count(k) over (partition by g order by {o} range between 3 preceding and 2 following)
            as ck{i},
        min(s) over (partition by g order by {o} range between 3 preceding and 2 following)
            as mins{i},
        avg(e) over (partition by g order by {o} range between 3 preceding and 2 following)
            as ae{i},
        sum(d) over (partition by g order by {o} range between current row
                     and unbounded following) as sd2{i},
        max(s) over (partition by g order by {o} range between current row
                     and unbounded following) as maxs2{i},
        sum(k) over (partition by g order by {o} range between 1 following and 4 following)
            as sk3{i},
        min(f) over (partition by g order by {o} range between 1 following and 4 following)
            as minf3{i},
        count(*) over (partition by g order by {o} range between 6 preceding and 2 preceding)
            as c4{i}""" for i, o in enumerate(ORDERS))
    _same_as_spark(spark, f"select id, g, k, {cols} from {VIEW}")


def test_float_sums_match_bit_for_bit(spark):
    # Random doubles added in Spark's order: running sums per partition (few long partitions
    # by g, many short ones by s), and frames Spark re-adds row by row. Over the unique id
    # only: among peers Spark's own order of additions is not defined. RANGE frames (peers
    # included) sum q, quarters whose sums are exact in any order.
    _same_as_spark(spark, f"""
        select id, sum(f) over (partition by g order by id) as s,
               avg(f) over (partition by g order by id) as a,
               sum(f) over (partition by s order by id) as ss,
               sum(f) over (order by id) as total,
               sum(f) over (partition by g, s order by id rows between current row
                            and unbounded following) as rest,
               avg(f) over (partition by g order by id rows between 20 preceding
                            and 20 following) as wide,
               sum(q) over (partition by g order by k range between 1 preceding
                            and 1 following) as rq,
               avg(q) over (partition by g order by k range between current row
                            and 2 following) as aq
        from {VIEW}""")


def test_several_specs_and_expressions_over_windows(spark):
    _same_as_spark(spark, f"""
        select id, g,
               sum(d) over (partition by g order by k) - lag(d) over (partition by g
                                                                    order by id) as x,
               row_number() over (order by id) as rn,
               max(k) over () as mk,
               dense_rank() over (partition by g, s order by dt) as dr,
               rank() over (partition by g % 3 order by k + 1 desc) as r
        from {VIEW}""")
    assert _windows_in(last_result().plan) == 6  # one Window per distinct spec


def test_window_over_aggregate_and_empty_input(spark):
    _same_as_spark(spark, f"""
        select g, sum(d) as t, rank() over (order by sum(d) desc) as r,
               sum(sum(d)) over (order by g rows between unbounded preceding
                                 and current row) as running
        from {VIEW} group by g""")
    empty = _same_as_spark(spark, f"""
        select id, sum(d) over (partition by g order by k) as s,
               row_number() over (partition by g order by id) as rn
        from {VIEW} where id < 0""")
    assert empty.num_rows == 0


def test_ansi_overflow_raises_as_in_spark(spark):
    sql = f"select id, sum(k + 9000000000000000000) over (order by id) as s from {VIEW}"
    with pytest.raises(ArithmeticOverflowError, match=r"^\[ARITHMETIC_OVERFLOW\]"):
        executor.sql(spark, sql, ctx=CTX)
    with pytest.raises(Exception, match="ARITHMETIC_OVERFLOW"):
        spark_support.spark_reference(spark, sql)


@pytest.mark.parametrize(("sql", "reason"), [
    (f"select id, sum(q) over (order by dt range between interval 1 day preceding and "
     f"current row) as s from {VIEW}",
     r"range frame boundary Literal of type interval day"),
    (f"select id, first(s) over (partition by g order by id) as s from {VIEW}",
     r"expression First \(aggregate function has no IR counterpart"),
    (f"select id, lag(s) ignore nulls over (partition by g order by id) as s from {VIEW}",
     r"IGNORE NULLS"),
    (f"select id, nth_value(s, 2) over (partition by g order by id) as s from {VIEW}",
     r"NthValue \(window function has no IR counterpart"),
    (f"select id, sum(e) over (partition by g order by e range between 1 preceding and "
     f"current row) as s from {VIEW}",
     r"range frame boundary Literal of type decimal"),
    (f"select id, avg(m) over (partition by g order by id) as s from {VIEW}",
     r"expression over a window function \(Spark computes avg of a decimal of precision"),
    (f"select id, sum(f) over (partition by g order by id rows between current row and "
     f"unbounded following) as s from {VIEW}",
     r"^at run time: .*sum of double over rows 0..None \(frames of \d+ rows\)"),
    (f"select id, avg(f) over (partition by g order by id rows between 100 preceding and "
     f"current row) as s from {VIEW}",
     r"^unsupported: Window \(avg of double over rows -100..0 \(frames of 101 rows\)"),
])
def test_unsupported_windows_fall_back_with_the_reason(spark, sql, reason):
    got = executor.sql(spark, sql, ctx=CTX)
    outcome = last_result()
    assert not outcome.native
    assert re.search(reason, outcome.reason), outcome.reason
    assert got.column_names == ["id", "s"] and got.num_rows == ROWS  # Spark's own result
