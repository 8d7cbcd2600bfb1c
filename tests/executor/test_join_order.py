"""Selective small joins move down inner-join chains (``executor.ir.join_order``): the moved
plan gives the rows of the original, and joins that must stay where they are do."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from executor import ir, run, run_parallel
from executor.context import ExecContext
from executor.distribute import physical_plan
from executor.ir.join_order import push_small_joins
from executor.ir.logic import EqualTo, GreaterThan, IsNotNull
from tests.executor.conftest import col
from tests.spark_support import sorted_rows

I64 = pa.int64()


@pytest.fixture
def star(table):
    """fact(f_id, f_dim, f_other, f_v) joined to other(o_id, o_w), then to dim(d_id, d_name):
    the dim join comes last, as in Spark's plans of TPC-H Q7."""
    rng = np.random.default_rng(1)
    n = 600
    fact = table("fact", pa.table({
        "f_id": pa.array(np.arange(n), I64),
        "f_dim": pa.array(rng.integers(0, 8, n), I64, mask=rng.random(n) < 0.05),
        "f_other": pa.array(rng.integers(0, 30, n), I64),
        "f_v": pa.array(rng.integers(-100, 100, n), I64),
    }), files=3)
    other = table("other", pa.table({"o_id": pa.array(np.arange(30), I64),
                                     "o_w": pa.array(np.arange(30) * 10, I64)}))
    dim = table("dim", pa.table({"d_id": pa.array([0, 1, 2, 3, 4, 5, 6, 7, 7], I64),
                                 "d_name": ["a", "b", "c", "a", "b", "c", "a", "x", "y"]}))
    return fact, other, dim


def _dim_filtered(dim, name="a"):
    cond = ir.And(IsNotNull(col(dim, "d_id")),
                  EqualTo(col(dim, "d_name"), ir.Literal(name, pa.string())))
    return dim.replace(filter=cond)


def _chain(fact, other, small, how="inner", condition=None):
    inner = ir.Join(fact, other, how, (col(fact, "f_other"),), (col(other, "o_id"),))
    keep = ir.Project(inner, tuple(col(inner, c) for c in ("f_id", "f_dim", "f_v", "o_w")))
    return ir.Join(keep, small, "inner", (col(keep, "f_dim"),), (col(small, "d_id"),),
                   condition)


def _joins(plan) -> list[ir.Join]:
    return [n for n in plan.walk() if isinstance(n, ir.Join)]


def test_a_selective_small_join_moves_next_to_its_keys(star):
    fact, other, dim = star
    plan = _chain(fact, other, _dim_filtered(dim))
    moved = push_small_joins(plan, lambda table: "dim" in table)
    assert moved != plan and moved.schema == plan.schema
    # the dim join now reads the fact scan directly; the other join is on top of it
    dim_join = next(j for j in _joins(moved) if j.right_keys[0].name == "d_id")
    assert dim_join.left == fact
    assert sorted_rows(run(moved)) == sorted_rows(run(plan))


def test_the_physical_plan_moves_it_and_the_answer_is_unchanged(star):
    fact, other, dim = star
    small = _dim_filtered(dim, "b")
    condition = GreaterThan(col(fact, "f_v"), ir.Literal(-50, I64))
    plan = _chain(fact, other, small, condition=condition)
    ctx = ExecContext(parallelism=2)
    physical = physical_plan(plan, ctx)
    assert any(j.left_keys and j.left_keys[0].name == "f_dim" and j.condition == condition
               and any(isinstance(n, ir.Scan) and "fact" in n.table for n in j.left.walk())
               and not any(isinstance(n, ir.Scan) and "other" in n.table
                           for n in j.left.walk())
               for j in _joins(physical))
    assert sorted_rows(run_parallel(physical, ctx)) == sorted_rows(run(plan))


@pytest.mark.parametrize("case", ["unfiltered", "big", "left_join_below"])
def test_joins_that_stay(star, case):
    fact, other, dim = star
    small, is_small, how, condition = _dim_filtered(dim), (lambda t: "dim" in t), "inner", None
    if case == "unfiltered":  # only IS NOT NULL: not selective
        small = dim.replace(filter=IsNotNull(col(dim, "d_id")))
    elif case == "big":
        is_small = lambda t: False  # noqa: E731
    else:  # rows of an outer join cannot be filtered before it
        how = "left"
    plan = _chain(fact, other, small, how, condition)
    assert push_small_joins(plan, is_small) == plan


def test_a_condition_reading_the_other_input_stays_as_a_filter(star):
    """Q7's shape: the dim join's condition reads a column of ``other`` too, so the equi-join
    moves next to ``fact`` and the condition filters where the join was."""
    fact, other, dim = star
    small = _dim_filtered(dim, "a")
    condition = GreaterThan(col(other, "o_w"), col(dim, "d_id"))
    plan = _chain(fact, other, small, condition=condition)
    moved = push_small_joins(plan, lambda table: "dim" in table)
    dim_join = next(j for j in _joins(moved) if j.right_keys[0].name == "d_id")
    assert dim_join.left == fact and dim_join.condition is None
    assert any(isinstance(n, ir.Filter) and n.condition == condition for n in moved.walk())
    assert sorted_rows(run(moved)) == sorted_rows(run(plan))
    assert run(plan).num_rows > 0


@pytest.mark.parametrize("how", ["semi", "anti"])
def test_it_moves_into_the_left_input_of_semi_and_anti_joins(star, how):
    """Q21's shape: (fact semi/anti other) join dim(filtered) on a fact column."""
    fact, other, dim = star
    few = other.replace(filter=GreaterThan(col(other, "o_w"), ir.Literal(150, I64)))
    kept = ir.Join(fact, few, how, (col(fact, "f_other"),), (col(few, "o_id"),))
    small = _dim_filtered(dim, "c")
    plan = ir.Join(kept, small, "inner", (col(kept, "f_dim"),), (col(small, "d_id"),))
    moved = push_small_joins(plan, lambda table: "dim" in table)
    outer = next(j for j in _joins(moved) if j.how.value == how)
    assert isinstance(outer.left, ir.Join) and outer.left.right == small
    assert sorted_rows(run(moved)) == sorted_rows(run(plan))
    ctx = ExecContext(parallelism=2)
    assert sorted_rows(run_parallel(physical_plan(plan, ctx), ctx)) == sorted_rows(run(plan))


def test_a_join_keyed_on_two_inputs_moves_by_one_key_pair(star):
    """Q5's shape: the dim join's keys read ``fact`` (f_dim = d_id) and ``other``
    (o_w = d_w): it moves next to ``fact`` on its own pair, the other pair's equality filters
    where the join was. Nulls behave alike: a null never equals, as a key or in the filter."""
    fact, other, dim = star
    wide = ir.Project(dim, (col(dim, "d_id"), col(dim, "d_name"),
                            ir.Alias(ir.Multiply(col(dim, "d_id"), ir.Literal(10, I64)), "d_w")))
    small = ir.Filter(wide, EqualTo(col(wide, "d_name"), ir.Literal("a", pa.string())))
    inner = ir.Join(fact, other, "inner", (col(fact, "f_other"),), (col(other, "o_id"),))
    keep = ir.Project(inner, tuple(col(inner, c) for c in ("f_id", "f_dim", "f_v", "o_w")))
    plan = ir.Join(keep, small, "inner", (col(keep, "f_dim"), col(keep, "o_w")),
                   (col(small, "d_id"), col(small, "d_w")))
    moved = push_small_joins(plan, lambda table: "dim" in table)
    dim_join = next(j for j in _joins(moved) if j.right == small)
    assert dim_join.left == fact and [k.name for k in dim_join.left_keys] == ["f_dim"]
    above = [n for n in moved.walk() if isinstance(n, ir.Filter) and n.child != wide]
    assert [f.condition for f in above] == [EqualTo(col(keep, "o_w"), col(small, "d_w"))]
    assert sorted_rows(run(moved)) == sorted_rows(run(plan))
    assert 0 < run(plan).num_rows
