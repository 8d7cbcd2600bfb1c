"""Each operator against results computed in plain Python over small tables."""

from __future__ import annotations

import math
import random

import pyarrow as pa
import pytest

from executor import ir, planner, run
from executor.context import ExecContext
from executor.errors import UnsupportedError
from executor.operators.base import Operator
from tests.executor.conftest import col

I64, S, F64 = pa.int64(), pa.string(), pa.float64()

rng = random.Random(7)
ROWS = [(rng.choice([None, *range(5)]), rng.choice(["x", "y", "z", None]),
         rng.choice([None, math.nan, -1.5, 0.0, 2.5])) for _ in range(60)]


@pytest.fixture
def t(table):
    return table("t", pa.table({"a": pa.array([r[0] for r in ROWS], I64),
                                "s": pa.array([r[1] for r in ROWS], S),
                                "f": pa.array([r[2] for r in ROWS], F64)}), files=3)


def rows(tbl: pa.Table) -> list[tuple]:
    return [tuple(r.values()) for r in tbl.to_pylist()]


def same(a, b) -> bool:
    return repr(a) == repr(b)  # NaN-aware equality of row lists


def test_scan_with_pushed_and_residual_filters(t):
    pushed = t.replace(filter=ir.GreaterThan(col(t, "a"), ir.Literal(2, I64)))
    assert same(sorted(rows(run(pushed)), key=repr), sorted(
        [r for r in ROWS if r[0] is not None and r[0] > 2], key=repr))
    # Float comparisons are not pushed (NaN semantics): evaluated here instead.
    residual = t.replace(columns=("a",), filter=ir.GreaterThan(col(t, "f"), ir.Literal(0.0, F64)))
    expected = [(r[0],) for r in ROWS if r[2] is not None and (math.isnan(r[2]) or r[2] > 0)]
    assert sorted(rows(run(residual)), key=repr) == sorted(expected, key=repr)


def test_filter_and_project(t):
    plan = ir.Project(ir.Filter(t, ir.IsNotNull(col(t, "a"))), (
        ir.Alias(ir.Multiply(col(t, "a"), ir.Literal(10, I64)), "a10"), col(t, "s")))
    assert rows(run(plan)) == [(r[0] * 10, r[1]) for r in ROWS if r[0] is not None]


def test_sort_nulls_and_nan_per_key(t):
    keys = (ir.SortKey(col(t, "f"), ascending=False),              # DESC NULLS LAST
            ir.SortKey(col(t, "a"), ascending=True, nulls_first=False))
    got = rows(run(ir.Sort(t, keys)))

    def k(r):
        f, a = r[2], r[0]
        fk = (2,) if f is None else ((1, 0) if math.isnan(f) else (1, 1, -f))
        ak = (1, 0) if a is None else (0, a)
        return (fk, ak)

    expected = sorted(ROWS, key=k)
    assert same([(r[2], r[0]) for r in got], [(r[2], r[0]) for r in expected])


def test_limit_offset_and_topn(t):
    assert rows(run(ir.Limit(t, 5, offset=3))) == ROWS[3:8]
    assert rows(run(ir.Limit(t, 0))) == []
    top = ir.TopN(t, (ir.SortKey(col(t, "a"), ascending=False),), 4, offset=1)
    got = [r[0] for r in rows(run(top))]
    expected = sorted((r[0] for r in ROWS), key=lambda a: (a is None, -(a or 0)))[1:5]
    assert got == expected


def test_union_distinct_expand_values(t):
    proj = ir.Project(t, (col(t, "s"),))
    u = ir.Union((proj, proj))
    assert run(u).num_rows == 2 * len(ROWS)
    assert sorted(rows(run(ir.Distinct(u))), key=repr) == sorted(
        {(r[1],) for r in ROWS}, key=repr)
    ex = ir.Expand(t, ((col(t, "a"), ir.Literal(0, I64)), (ir.Literal(None, I64),
                                                            ir.Literal(1, I64))), ("a", "g"))
    got = rows(run(ex))
    assert len(got) == 2 * len(ROWS)
    assert sorted(got, key=repr) == sorted([(r[0], 0) for r in ROWS] + [(None, 1)] * len(ROWS),
                                           key=repr)
    vals = ir.Values(ir.Schema.of(("v", I64)), ((ir.Literal(1, I64),), (ir.Literal(None, I64),)))
    assert rows(run(vals)) == [(1,), (None,)]


def test_nested_loop_join(table):
    left = table("l", pa.table({"a": pa.array([1, 2, 3], I64)}))
    right = table("r", pa.table({"b": pa.array([2, 3], I64)}))
    cond = ir.LessThan(col(left, "a"), col(right, "b"))
    inner = ir.Join(left, right, "inner", condition=cond)
    assert sorted(rows(run(inner))) == [(1, 2), (1, 3), (2, 3)]
    outer = ir.Join(left, right, "left", condition=cond)
    assert sorted(rows(run(outer)), key=repr) == sorted([(1, 2), (1, 3), (2, 3), (3, None)],
                                                        key=repr)
    anti = ir.Join(left, right, "anti", condition=cond)
    assert rows(run(anti)) == [(3,)]
    cross = ir.Join(left, right, "inner")
    assert run(cross).num_rows == 6


def test_operators_do_no_work_before_the_first_batch(t):
    class Exploding(Operator):
        schema = pa.schema([("a", I64)])

        def execute(self, partition, ctx):
            raise AssertionError("work started")
            yield  # pragma: no cover

    from executor.operators.filter import FilterExec
    from executor.operators.sort import SortExec
    scan = ir.Scan("t", ir.Schema.of(("a", I64)), ("a",))
    f = FilterExec(ir.Filter(scan, ir.IsNull(col(scan, "a"))), Exploding())
    stream = SortExec(f, (ir.SortKey(col(scan, "a")),)).execute(0, ExecContext())
    with pytest.raises(AssertionError, match="work started"):
        next(stream)  # errors flow down the stream, raised only when asked


@pytest.mark.parametrize(("make", "node"), [
    (lambda t: ir.Window(t, (ir.Alias(ir.WindowExpr(ir.Sum(col(t, "f")), ir.WindowFrame(
        ir.FrameKind.ROWS, -100, 0)), "w"),), order_by=(ir.SortKey(col(t, "a")),)), "Window"),
    (lambda t: ir.Project(t, (ir.Alias(ir.Cast(col(t, "s"), I64), "x"),)), "Cast"),
    (lambda t: ir.Project(t, (ir.Alias(ir.Cast(col(t, "f"), pa.decimal128(10, 2)), "x"),)),
     "Cast"),
])
def test_unsupported_nodes_raise_naming_the_node(t, make, node):
    with pytest.raises(UnsupportedError) as info:
        planner.plan(make(t))
    assert info.value.node == node


def test_unsupported_at_runtime_for_non_ascii_upper(table):
    t = table("u", pa.table({"s": ["straße"]}))
    with pytest.raises(UnsupportedError, match="Upper"):
        run(ir.Project(t, (ir.Alias(ir.Upper(col(t, "s")), "u"),)))


def test_plan_from_json_runs_the_same(t):
    plan = ir.Sort(ir.Aggregate(t, (col(t, "s"),), (ir.Alias(ir.Count(), "n"),)),
                   (ir.SortKey(col(t, "s")),))
    assert run(ir.from_json(ir.to_json(plan))).equals(run(plan))
