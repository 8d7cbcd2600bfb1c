"""Uncorrelated scalar subqueries: the IR node (validation, serde, explain) and its execution
(computed once before the plan, typed exactly, Spark's zero/one/many-rows rule) on both
runners. No Spark."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as Dec

import pyarrow as pa
import pytest

from executor import ir, run, run_parallel
from executor.errors import InternalError, PlanError, ScalarSubqueryTooManyRowsError
from executor.eval import evaluate
from executor.ir.subqueries import all_subqueries, substitute
from executor.subqueries import resolve_subqueries
from tests.executor.conftest import col, lit

I64, D = pa.int64(), pa.decimal128(12, 2)


def values(name: str, dtype: pa.DataType, *rows) -> ir.Values:
    return ir.Values(ir.Schema.of((name, dtype)), tuple((lit(v, dtype),) for v in rows))


def subquery(dtype: pa.DataType, *rows) -> ir.ScalarSubquery:
    return ir.ScalarSubquery(values("x", dtype, *rows), dtype)


def host(sq: ir.ScalarSubquery, *keys: int) -> ir.Relation:
    """SELECT k, (sq) AS s FROM (k values)."""
    t = values("k", I64, *keys)
    return ir.Project(t, (col(t, "k"), ir.Alias(sq, "s")))


# -- the node -----------------------------------------------------------------------------


def test_node_types_and_scope():
    sq = subquery(D, Dec("1.50"))
    assert sq.dtype == D and sq.nullable and sq.children == ()
    # The plan's columns are not references of the host: a Filter over other columns is valid.
    t = values("k", I64, 1)
    f = ir.Filter(t, ir.GreaterThan(ir.Cast(col(t, "k"), D), sq))
    assert [r.name for r in f.condition.references()] == ["k"]


@pytest.mark.parametrize(("plan", "dtype", "nullable", "message"), [
    (values("x", I64, 1), D, True, "plan's column is int64, the subquery is typed"),
    (ir.Values(ir.Schema.of(("a", I64), ("b", I64))), I64, True, "one column, it has 2"),
    (values("x", I64, 1), I64, False, "nullable"),
])
def test_node_validation(plan, dtype, nullable, message):
    with pytest.raises(PlanError, match=message):
        ir.ScalarSubquery(plan, dtype, nullable)


def test_serde_round_trip_fingerprint_and_explain():
    inner = ir.ScalarSubquery(values("y", I64, 7), I64)
    # A nested subquery: the outer subquery's plan filters by the inner one.
    v = values("x", I64, 1, 7)
    outer = ir.ScalarSubquery(ir.Filter(v, ir.EqualTo(col(v, "x"), inner)), I64)
    plan = ir.Filter(host(outer, 1, 2), ir.IsNotNull(ir.ColumnRef("s", I64)))
    text = ir.to_json(plan)
    back = ir.from_json(text)
    assert back == plan and ir.to_json(back) == text
    assert ir.fingerprint(back) == ir.fingerprint(plan)
    assert ir.fingerprint(host(subquery(I64, 1))) != ir.fingerprint(host(subquery(I64, 2)))
    assert list(all_subqueries(plan)) == [inner, outer]  # computable order
    shown = ir.explain(plan)
    assert "scalar-subquery(int64) AS s" in shown
    assert shown.count(":- subquery (int64)") == 2
    assert "Filter (x = scalar-subquery(int64))" in shown


def test_substitute_keeps_untouched_nodes():
    plan = host(subquery(I64, 5), 1)
    out = substitute(plan, lambda sq: lit(5, I64))
    assert out.exprs[1] == ir.Alias(lit(5, I64), "s")
    assert out.child is plan.child  # nothing to replace below: the same object
    assert substitute(out, lambda sq: pytest.fail("no subquery left")) is out
    with pytest.raises(PlanError, match="replacement is string"):
        substitute(plan, lambda sq: lit("5", pa.string()))


# -- execution ----------------------------------------------------------------------------


def test_zero_rows_is_a_typed_null():
    out = run(host(subquery(D), 1, 2))
    assert out.schema.field("s").type == D
    assert out.column("s").to_pylist() == [None, None]


def test_one_row_is_the_value():
    out = run(host(subquery(D, Dec("12.50")), 1, 2, 3))
    assert out.column("s").type == D
    assert out.column("s").to_pylist() == [Dec("12.50")] * 3


def test_one_null_row_is_null():
    assert run(host(subquery(I64, None), 1)).column("s").to_pylist() == [None]


def test_more_than_one_row_raises_sparks_error():
    with pytest.raises(ScalarSubqueryTooManyRowsError,
                       match=r"^\[SCALAR_SUBQUERY_TOO_MANY_ROWS\] More than one row"):
        run(host(subquery(I64, 1, 2), 1))


@pytest.mark.parametrize(("dtype", "value"), [
    (pa.int32(), -7), (pa.float64(), 0.25), (pa.float32(), 1.5), (pa.string(), "ab"),
    (pa.bool_(), True), (pa.date32(), dt.date(1994, 1, 1)), (pa.decimal128(38, 6), Dec("0E-6")),
    (pa.timestamp("us", "UTC"), 1_700_000_000_123_456), (pa.binary(), b"\x00\xff"),
])
def test_value_is_typed_exactly(dtype, value):
    sq = subquery(dtype, value)
    resolved = resolve_subqueries(host(sq, 1), run)
    assert resolved.exprs[1].child == lit(value, dtype)
    assert run(host(sq, 1)).column("s").type == dtype


def test_each_subquery_runs_once_nested_first():
    inner = subquery(I64, 3)
    v = values("x", I64, 1, 3)
    outer = ir.ScalarSubquery(ir.Filter(v, ir.EqualTo(col(v, "x"), inner)), I64)
    t = values("k", I64, 1, 2, 3)
    plan = ir.Project(ir.Filter(t, ir.LessThan(col(t, "k"), outer)),
                      (col(t, "k"), ir.Alias(outer, "o"), ir.Alias(inner, "i")))
    ran: list[ir.Relation] = []

    def counting_run(p):
        ran.append(p)
        return run(p)

    resolved = resolve_subqueries(plan, counting_run)
    assert ran == [inner.plan, substitute(outer.plan, lambda sq: lit(3, I64))]
    assert not list(all_subqueries(resolved))
    assert run(plan).to_pylist() == [{"k": 1, "o": 3, "i": 3}, {"k": 2, "o": 3, "i": 3}]


def test_unresolved_subquery_is_an_internal_error():
    batch = pa.record_batch({"k": pa.array([1], I64)})
    with pytest.raises(InternalError, match="without being computed first"):
        evaluate(subquery(I64, 1), batch)


@pytest.mark.parametrize("runner", ["thread", "process"])
def test_run_parallel(table, runner):
    data = pa.table({"k": pa.array(range(40), I64),
                     "v": pa.array([Dec(i).scaleb(-2) for i in range(40)], D)})
    t = table("t", data, files=4)
    k, v = col(t, "k"), col(t, "v")
    # max(v) over the table, two-phase so every partition contributes; the result is 0.39.
    partial = ir.Aggregate(t, (), (ir.Alias(ir.Max(v), "m"),), "partial")
    final = ir.Aggregate(ir.Exchange(partial, "single"), (), (ir.Alias(ir.Max(v), "m"),),
                         "final")
    sq = ir.ScalarSubquery(final, D)
    main = ir.Exchange(ir.Filter(t, ir.GreaterThanOrEqual(ir.Add(v, lit(Dec("0.05"), D)), sq)),
                       "single")
    plan = ir.Sort(main, (ir.SortKey(k),))
    got = run_parallel(plan, runner=runner, scan_partitions=2)
    assert got.column("k").to_pylist() == [34, 35, 36, 37, 38, 39]
    assert got.equals(run(plan))
