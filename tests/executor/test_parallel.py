"""Partition-parallel execution: stages cut at Exchange nodes, the Exchange protocol, and the
same answers as a single-partition run (threads and processes)."""

from __future__ import annotations

import random
from decimal import Decimal as Dec

import pyarrow as pa
import pytest

from executor import ir, run, run_parallel
from executor.errors import ExchangeError
from executor.exchange import InMemoryExchange
from executor.hashing import partition_ids
from executor.operators.base import COALESCE_BATCHES, coalesced
from executor.stages import cut, task_count
from tests.executor.conftest import col

I64, D = pa.int64(), pa.decimal128(12, 2)
rng = random.Random(3)
N = 400
DATA = pa.table({
    "k": pa.array([rng.choice([None, *range(20)]) for _ in range(N)], I64),
    "s": pa.array([rng.choice(["a", "bb", "ccc", None]) for _ in range(N)]),
    "v": pa.array([Dec(rng.randint(-9999, 9999)).scaleb(-2) for _ in range(N)], D),
})


def two_phase(scan, keys, aggs, n):
    partial = ir.Aggregate(scan, keys, aggs, "partial")
    final = ir.Aggregate(ir.Exchange(partial, "hash", keys, n), keys, aggs, "final")
    return ir.Sort(ir.Exchange(final, "single"), tuple(ir.SortKey(k) for k in keys))


@pytest.fixture
def plans(table):
    t = table("t", DATA, files=4)
    k, s, v = col(t, "k"), col(t, "s"), col(t, "v")
    aggs = (ir.Alias(ir.Sum(v), "sv"), ir.Alias(ir.Avg(v), "av"), ir.Alias(ir.Count(), "n"),
            ir.Alias(ir.Count((s,)), "ns"), ir.Alias(ir.Min(s), "ms"), ir.Alias(ir.Max(v), "mv"))
    single = ir.Sort(ir.Aggregate(t, (k,), aggs), (ir.SortKey(k),))
    return t, single, two_phase(t, (k,), aggs, 3)


def expected_groups():
    groups: dict = {}
    for k, s, v in zip(*(DATA.column(c).to_pylist() for c in ("k", "s", "v")), strict=True):
        g = groups.setdefault(k, {"sv": Dec(0), "n": 0, "ns": 0, "ms": None, "mv": None})
        g["sv"] += v
        g["n"] += 1
        g["ns"] += s is not None
        if s is not None and (g["ms"] is None or s < g["ms"]):
            g["ms"] = s
        g["mv"] = v if g["mv"] is None else max(g["mv"], v)
    out = []
    for k in sorted(groups, key=lambda x: (x is not None, x)):
        g = groups[k]
        avg = (g["sv"] / g["n"]).quantize(Dec("0.000001"), rounding="ROUND_HALF_UP")
        out.append(dict(k=k, sv=g["sv"], av=avg, n=g["n"], ns=g["ns"], ms=g["ms"], mv=g["mv"]))
    return out


def test_single_partition_matches_python(plans):
    _, single, _ = plans
    assert run(single).to_pylist() == expected_groups()


def test_two_phase_on_threads_matches(plans):
    _, single, parallel = plans
    assert run_parallel(parallel).equals(run(single))
    assert run(parallel).equals(run(single))  # exchanges are no-ops in one partition


def test_two_phase_on_processes_matches(plans):
    _, single, parallel = plans
    assert run_parallel(parallel, runner="process").equals(run(single))


def test_shuffled_join_matches(table, plans):
    t, _, _ = plans
    k, v = col(t, "k"), col(t, "v")
    right = ir.Project(t, (ir.Alias(k, "k2"), ir.Alias(v, "v2")))
    k2 = ir.ColumnRef("k2", I64)
    join = ir.Join(ir.Exchange(t, "hash", (k,), 4), ir.Exchange(right, "hash", (k2,), 4),
                   "inner", (k,), (k2,))
    agg = ir.Aggregate(join, (), (ir.Alias(ir.Count(), "n"),))
    got = run_parallel(ir.Aggregate(ir.Exchange(ir.Aggregate(join, (), (
        ir.Alias(ir.Count(), "n"),), "partial"), "single"), (), (ir.Alias(ir.Count(), "n"),),
        "final"))
    counts: dict = {}
    for x in DATA.column("k").to_pylist():
        if x is not None:
            counts[x] = counts.get(x, 0) + 1
    assert got.to_pylist() == [{"n": sum(c * c for c in counts.values())}]
    assert run(agg).to_pylist() == got.to_pylist()


def test_stage_cut_and_task_counts(plans):
    _, _, parallel = plans
    stages = cut(parallel)
    assert [s.output.partitioning.value if s.output else None for s in stages] == [
        "hash", "single", None]
    assert [task_count(s, 4) for s in stages] == [4, 3, 1]


@pytest.mark.parametrize("runner", ["thread", "process"])
def test_equal_exchanges_share_one_stage(plans, runner):
    """A subquery repeated in a plan (TPC-H Q18 joins its "large orders" twice) is one stage,
    read by both consumers; the answer is the same as computing it twice."""
    t, _, _ = plans
    k, v = col(t, "k"), col(t, "v")
    aggs = (ir.Alias(ir.Sum(v), "sv"),)

    def side():  # built twice: equal by value, distinct objects
        partial = ir.Aggregate(t, (k,), aggs, "partial")
        return ir.Aggregate(ir.Exchange(partial, "hash", (k,), 3), (k,), aggs, "final")

    sv = ir.ColumnRef("sv", pa.decimal128(22, 2))
    right = ir.Project(side(), (ir.Alias(k, "k2"), ir.Alias(sv, "sv2")))
    join = ir.Join(side(), right, "inner", (k,), (ir.ColumnRef("k2", I64),))
    plan = ir.Sort(ir.Exchange(join, "single"), (ir.SortKey(k),))
    assert len(cut(plan)) == 3  # one shared aggregate stage, the join, the sort
    single = ir.Sort(ir.Join(ir.Aggregate(t, (k,), aggs), ir.Project(
        ir.Aggregate(t, (k,), aggs), right.exprs), "inner", (k,), join.right_keys),
        (ir.SortKey(k),))
    got = run_parallel(plan, runner=runner)
    assert got.equals(run(single))
    sums = {g["k"]: g["sv"] for g in expected_groups() if g["k"] is not None}
    assert got.to_pylist() == [dict(k=x, sv=sums[x], k2=x, sv2=sums[x]) for x in sorted(sums)]


def test_exchange_protocol():
    ex = InMemoryExchange(2)
    b = pa.record_batch({"x": [1]})
    s0 = ex.create_sink(0, attempt=0)
    s0b = ex.create_sink(0, attempt=1)
    s0.add(1, b)
    s0b.add(1, b)
    s0b.add(0, b)
    assert s0b.finish() is True
    assert s0.finish() is False          # one successful attempt per task
    s0.abort()                           # abort after finish: no-op
    with pytest.raises(ExchangeError):
        s0b.add(0, b)                    # no add after finish
    ex.no_more_sinks(2)
    with pytest.raises(ExchangeError, match="read before"):
        ex.source()
    s1 = ex.create_sink(1, attempt=0)
    s1.add(0, b)
    s1.abort()
    s1 = ex.create_sink(1, attempt=1)
    s1.finish()
    src = ex.source()
    assert len(list(src.read(0))) == 1 and len(list(src.read(1))) == 1
    with pytest.raises(ExchangeError):
        ex.create_sink(2, 0).add(5, b)


def test_small_output_batches_are_joined_in_order():
    def batch(start: int, n: int, name: str = "x") -> pa.RecordBatch:
        return pa.record_batch({name: pa.array(range(start, start + n), I64)})

    given = [batch(0, 3), batch(3, 2), batch(5, 10), batch(15, 1), batch(16, 1),
             batch(17, 4, "y"), batch(21, 1), batch(22, 0), batch(22, 2)]
    out = list(coalesced(iter(given), 5))
    # joined up to 5 rows; a large batch passes as it is; a schema change ends a join
    assert [(b.schema.names, b.num_rows) for b in out] == [
        (["x"], 5), (["x"], 10), (["x"], 2), (["y"], 4), (["x"], 3)]
    assert out[1] is given[2]
    assert [v for b in out for v in b.column(0).to_pylist()] == list(range(24))
    assert list(coalesced(iter([]), 5)) == []
    # at most COALESCE_BATCHES are held: a limit above a selective filter waits for no more
    ones = [batch(i, 1) for i in range(2 * COALESCE_BATCHES + 1)]
    assert [b.num_rows for b in coalesced(iter(ones), 10 ** 6)] == \
        [COALESCE_BATCHES, COALESCE_BATCHES, 1]


def test_hash_partitioning_is_deterministic_and_value_based():
    a = pa.array(["x", "yy", None, "x"])
    ids = partition_ids([a], 8)
    assert ids[0] == ids[3]
    sliced = partition_ids([pa.array(["q", "x", "yy", None, "x"]).slice(1)], 8)
    assert list(sliced) == list(ids)
    zeros = partition_ids([pa.array([-0.0, 0.0])], 8)
    assert zeros[0] == zeros[1]


def _splitmix(x: int) -> int:
    x ^= x >> 30
    x = x * 0xBF58476D1CE4E5B9 % 2**64
    x ^= x >> 27
    x = x * 0x94D049BB133111EB % 2**64
    return x ^ (x >> 31)


@pytest.mark.parametrize("n", [2, 3, 4, 6, 8, 16])
def test_hash_partition_of_a_bigint_key_is_fixed(n):
    """Partitions are part of what a checkpointed query stored: the function must not drift.
    One bigint key goes to splitmix64(splitmix64(value)) mod n, for every partition count."""
    values = [0, 1, -1, 7, 2**62 + 5, -(2**63), 123456789]
    expected = [_splitmix(_splitmix(v % 2**64)) % n for v in values]
    assert list(partition_ids([pa.array(values, pa.int64())], n)) == expected


def test_errors_cross_processes_unchanged():
    """Process tasks raise in a worker; the error the caller sees reads as raised."""
    import pickle

    from executor.errors import DivideByZeroError, UnsupportedError

    for err in (DivideByZeroError("1 / 0"), UnsupportedError("Window", "frame")):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)


def test_queries_share_the_task_threads_and_a_nested_query_gets_its_own(plans):
    """Thread tasks run on one pool per parallelism for the process; a query started from a
    task (whose pool's threads may all be busy with it) runs on a pool of its own."""
    from executor.context import ExecContext
    from executor.stages import task_pool

    _, single, parallel = plans
    ctx = ExecContext(parallelism=1)
    pool = task_pool(1)
    assert task_pool(1) is pool and task_pool(2) is not pool
    want = run(single)
    assert run_parallel(parallel, ctx).equals(want)
    # The one shared thread runs a query that runs another: on the shared pool the inner
    # query's tasks would wait behind the outer task forever.
    nested = pool.submit(lambda: (task_pool(1), run_parallel(parallel, ctx)))
    inner_pool, table = nested.result(timeout=60)
    assert inner_pool is None and table.equals(want)
    assert run_parallel(parallel, ctx).equals(want)  # the shared pool is still usable
