"""Spark's aggregate and join semantics: nulls in aggregates, result types, overflow,
NaN in min/max, null join keys. Expected values are computed in plain Python."""

from __future__ import annotations

import math
from decimal import Decimal as Dec

import pyarrow as pa
import pytest

from executor import ir, run
from executor.errors import ArithmeticOverflowError
from tests.executor.conftest import col

I64, D152 = pa.int64(), pa.decimal128(15, 2)


def agg(scan, keys, **aggs):
    return ir.Aggregate(scan, tuple(col(scan, k) for k in keys),
                        tuple(ir.Alias(f, n) for n, f in aggs.items()))


def test_global_aggregates_over_all_null_and_empty_input(table):
    t = table("t", pa.table({"v": pa.array([None, None], I64), "d": pa.array([None, None], D152)}))
    v, d = col(t, "v"), col(t, "d")
    plan = agg(t, [], s=ir.Sum(v), c=ir.Count((v,)), n=ir.Count(), a=ir.Avg(v), sd=ir.Sum(d),
               ad=ir.Avg(d), mn=ir.Min(v))
    assert run(plan).to_pylist() == [dict(s=None, c=0, n=2, a=None, sd=None, ad=None, mn=None)]
    empty = ir.Filter(t, ir.Literal(False, pa.bool_()))
    plan = ir.Aggregate(empty, (), (ir.Alias(ir.Count(), "n"), ir.Alias(ir.Sum(v), "s")))
    assert run(plan).to_pylist() == [{"n": 0, "s": None}]
    grouped = ir.Aggregate(empty, (v,), (ir.Alias(ir.Count(), "n"),))
    assert run(grouped).num_rows == 0


def test_result_types_and_values(table):
    rows = [("a", Dec("1.10"), 1), ("a", Dec("2.25"), None), ("b", None, 3), ("a", Dec("0.01"), 4)]
    t = table("t", pa.table({"k": [r[0] for r in rows],
                             "d": pa.array([r[1] for r in rows], D152),
                             "i": pa.array([r[2] for r in rows], pa.int32())}))
    d, i = col(t, "d"), col(t, "i")
    plan = ir.Sort(agg(t, ["k"], sd=ir.Sum(d), ad=ir.Avg(d), si=ir.Sum(i), ai=ir.Avg(i),
                       ci=ir.Count((i,)), cd=ir.Count((d, i)), dk=ir.Count((i,), distinct=True)),
                   (ir.SortKey(col(t, "k")),))
    out = run(plan)
    types = {f.name: f.type for f in out.schema}
    assert types["sd"] == pa.decimal128(25, 2) and types["ad"] == pa.decimal128(19, 6)
    assert types["si"] == I64 and types["ai"] == pa.float64() and types["ci"] == I64
    assert not out.schema.field("ci").nullable
    # a: d = 1.10, 2.25, 0.01 -> sum 3.36, avg 1.12; i = 1, 4 -> sum 5, avg 2.5
    assert out.to_pylist() == [
        dict(k="a", sd=Dec("3.36"), ad=Dec("1.120000"), si=5, ai=2.5, ci=2, cd=2, dk=2),
        dict(k="b", sd=None, ad=None, si=3, ai=3.0, ci=1, cd=0, dk=1),
    ]


def test_avg_decimal_rounds_half_up(table):
    # (0.01 + 0.01 + 0.00) / 3 = 0.006666.. -> decimal(19,6) 0.006667
    t = table("t", pa.table({"d": pa.array([Dec("0.01"), Dec("0.01"), Dec("0.00")], D152)}))
    out = run(agg(t, [], a=ir.Avg(col(t, "d")))).to_pylist()
    assert out == [{"a": Dec("0.006667")}]


def test_sum_of_bigint_overflow(table):
    t = table("t", pa.table({"v": pa.array([2**62, 2**62], I64)}))
    with pytest.raises(ArithmeticOverflowError):
        run(agg(t, [], s=ir.Sum(col(t, "v"))))
    out = run(agg(t, [], s=ir.Sum(col(t, "v"), ansi=False))).to_pylist()
    assert out == [{"s": -(2**63)}]  # wraps like Java's long


def test_min_max_with_nan(table):
    t = table("t", pa.table({"k": [1, 1, 2, 2], "f": [1.0, math.nan, math.nan, None]}))
    plan = ir.Sort(agg(t, ["k"], mn=ir.Min(col(t, "f")), mx=ir.Max(col(t, "f"))),
                   (ir.SortKey(col(t, "k")),))
    out = run(plan).to_pylist()
    assert out[0]["mn"] == 1.0 and math.isnan(out[0]["mx"])
    assert math.isnan(out[1]["mn"]) and math.isnan(out[1]["mx"])


def _join_tables(table):
    left = table("l", pa.table({"a": pa.array([1, 2, None, 3], I64),
                                "x": ["l1", "l2", "ln", "l3"]}))
    right = table("r", pa.table({"b": pa.array([1, 1, None, 4], I64), "y": ["r1", "r1b", "rn",
                                                                           "r4"]}))
    return left, right


def _expected(left_rows, right_rows, how):
    out = []
    matched_r = set()
    for la, lx in left_rows:
        ms = [(j, r) for j, r in enumerate(right_rows) if la is not None and la == r[0]]
        matched_r.update(j for j, _ in ms)
        if how == "semi":
            out += [(la, lx)] if ms else []
        elif how == "anti":
            out += [] if ms else [(la, lx)]
        else:
            out += [(la, lx, *r) for _, r in ms]
            if not ms and how in ("left", "full"):
                out.append((la, lx, None, None))
    if how in ("right", "full"):
        out += [(None, None, *r) for j, r in enumerate(right_rows) if j not in matched_r]
    return sorted(out, key=repr)


@pytest.mark.parametrize("how", ["inner", "left", "right", "full", "semi", "anti"])
def test_joins_never_match_null_keys(table, how):
    left, right = _join_tables(table)
    plan = ir.Join(left, right, how, (col(left, "a"),), (col(right, "b"),))
    got = sorted((tuple(r.values()) for r in run(plan).to_pylist()), key=repr)
    lrows = [(1, "l1"), (2, "l2"), (None, "ln"), (3, "l3")]
    rrows = [(1, "r1"), (1, "r1b"), (None, "rn"), (4, "r4")]
    assert got == _expected(lrows, rrows, how)


def test_semi_and_anti_with_residual(table):
    left, right = _join_tables(table)
    cond = ir.NotEqualTo(col(left, "x"), ir.Literal("l1", pa.string()))
    semi = ir.Join(left, right, "semi", (col(left, "a"),), (col(right, "b"),), cond)
    assert run(semi).num_rows == 0
    anti = ir.Join(left, right, "anti", (col(left, "a"),), (col(right, "b"),), cond)
    assert sorted(run(anti).column("x").to_pylist()) == ["l1", "l2", "l3", "ln"]
