"""``distribute``: the exchanges it inserts into the frontend's single-node TPC-H plans give
the same rows as the single-partition run, for several partition counts, with and without
broadcast joins, with every join partitioned (and key filters below them), on threads (and
one query on processes)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from executor import ExecContext, run, run_parallel
from executor.distribute import distribute
from executor.errors import UnsupportedError
from executor.frontend.spark import to_ir
from executor.ir import relations as rel
from executor.ir.explain import explain
from executor.ir.serde import from_json, to_json
from executor.stages import cut, task_count
from tools.tpch import QUERY_NUMBERS, query_text

P = rel.Partitioning


def _rows(table: pa.Table) -> list:
    return sorted((tuple(r.values()) for r in table.to_pylist()), key=repr)


def _sizes(ctx: ExecContext):
    return lambda table: ctx.source(table).size_bytes()


def _exchanges(plan: rel.Relation) -> list[rel.Exchange]:
    return [n for n in plan.walk() if isinstance(n, rel.Exchange)]


def _own_nodes(root: rel.Relation) -> list[rel.Relation]:
    """The nodes of ``root``'s stage: not below an exchange it reads."""
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(c for c in node.inputs if not isinstance(c, rel.Exchange))
    return out


@pytest.fixture(scope="module")
def plans(spark):
    return {n: to_ir(spark, query_text(n)) for n in QUERY_NUMBERS}


@pytest.mark.parametrize("n", QUERY_NUMBERS)
def test_distributed_equals_single(plans, n):
    plan = plans[n]
    ctx = ExecContext(parallelism=2)
    expected = run(plan, ctx)
    # No sizes: every join partitioned, no key filters; sizes: broadcasts (at SF 0.01 every
    # join); sizes and no broadcasts: partitioned joins with key filters.
    for parts, sizes, broadcast in ((3, None, None), (2, _sizes(ctx), None),
                                    (2, _sizes(ctx), 0)):
        distributed = distribute(plan, parts, size_of=sizes, **(
            {} if broadcast is None else {"broadcast_bytes": broadcast}))
        assert _exchanges(distributed), "a TPC-H query always needs an exchange"
        stages = cut(distributed)
        for stage in stages:  # every stage obeys the scheduler's rule (raises otherwise)
            task_count(stage, scan_partitions=parts)
        got = run_parallel(distributed, ctx, scan_partitions=parts)
        assert got.schema == expected.schema
        if "order by" in query_text(n).lower():
            assert got.equals(expected)
        else:
            assert _rows(got) == _rows(expected)


def test_broadcast_only_for_small_tables(plans):
    ctx = ExecContext()
    lineitem = next(s.table for s in plans[5].walk()
                    if isinstance(s, rel.Scan) and s.table.endswith("lineitem"))
    limit = ctx.source(lineitem).size_bytes()  # lineitem (the largest) is not small
    q5 = distribute(plans[5], 2, size_of=_sizes(ctx), broadcast_bytes=limit)
    broadcast = [e for e in _exchanges(q5) if e.partitioning is P.BROADCAST]
    assert broadcast, "nation/region/supplier are far smaller than lineitem"
    for e in broadcast:
        tables = {s.table for s in e.walk() if isinstance(s, rel.Scan)}
        assert not any(t.endswith("lineitem") for t in tables)
    hashed = distribute(plans[5], 2, size_of=_sizes(ctx), broadcast_bytes=0)
    assert not [e for e in _exchanges(hashed) if e.partitioning is P.BROADCAST]
    unknown = distribute(plans[5], 2)  # sizes unknown: never broadcast (nor key filters)
    assert not [e for e in _exchanges(unknown) if e.partitioning is P.BROADCAST]
    assert not [n for n in unknown.walk() if isinstance(n, rel.KeyFilter)]


def test_key_filter_reads_the_exchange_its_join_reads(plans):
    """Q5's lineitem is filtered by the order keys of the customer-orders join before its
    shuffle; the filter reads that join's hash exchange (one stage writes it) whole, from a
    stage that scans lineitem with scan tasks."""
    q5 = plans[5]
    ctx = ExecContext(parallelism=2)
    physical = distribute(q5, 2, size_of=_sizes(ctx), broadcast_bytes=0)  # SF 0.01: all small
    lineitem = [n for n in physical.walk() if isinstance(n, rel.KeyFilter)
                and [k.name.split("#")[0] for k in n.keys] == ["l_orderkey"]]
    assert lineitem and [k.name.split("#")[0] for k in lineitem[0].source_keys] \
        == ["o_orderkey"]
    source = lineitem[0].source
    joins = [j for j in physical.walk() if isinstance(j, rel.Join) and source in j.inputs]
    assert joins, "the filter reads the exchange its join reads"
    stages = cut(physical)
    producers = [s for s in stages if s.output == source]
    assert len(producers) == 1  # one stage writes it for both readers
    scanning = next(s for s in stages if lineitem[0] in _own_nodes(s.root))
    assert scanning.has_scan and source in scanning.whole and task_count(scanning, 2) == 2
    assert producers[0].index < scanning.index
    assert "KeyFilter [l_orderkey" in explain(physical)
    assert from_json(to_json(physical)) == physical
    got = run_parallel(physical, ctx)
    want = run(q5, ExecContext())
    assert got.equals(want)


def test_two_phase_aggregate_and_single_sort(plans):
    q1 = distribute(plans[1], 4)
    kinds = [(e.partitioning, e.num_partitions) for e in _exchanges(q1)]
    assert kinds == [(P.SINGLE, 1), (P.HASH, 4)]  # pre-order: sort's input, then final's
    modes = [a.mode for a in q1.walk() if isinstance(a, rel.Aggregate)]
    assert modes == [rel.AggregateMode.FINAL, rel.AggregateMode.PARTIAL]


def test_processes_run_a_distributed_plan(plans):
    plan = plans[3]
    ctx = ExecContext()
    physical = distribute(plan, 2, size_of=_sizes(ctx), broadcast_bytes=0)
    assert [n for n in physical.walk() if isinstance(n, rel.KeyFilter)]  # relayed whole
    got = run_parallel(physical, ctx, runner="process")
    assert got.equals(run(plan, ctx))


def test_refuses_partial_aggregates_and_bad_counts(plans):
    with pytest.raises(ValueError, match="num_partitions"):
        distribute(plans[1], 0)
    partial = next(a for a in distribute(plans[1], 2).walk()
                   if isinstance(a, rel.Aggregate) and a.mode is rel.AggregateMode.PARTIAL)
    with pytest.raises(UnsupportedError, match="partial aggregate"):
        distribute(partial, 2)


def test_memory_budget_partitions_further(plans):
    """A budget smaller than the inputs' decoded size gives more hash partitions (not an
    error), the same rows, and a peak-memory reading."""
    from executor.distribute import EXPANSION, partition_count, physical_plan
    from executor.memory import PeakMemory

    plan = plans[9]  # six tables, lineitem the largest
    roomy = ExecContext(parallelism=2)
    assert partition_count(plan, roomy) == 2
    largest = max(roomy.source(s.table).size_bytes() for s in plan.walk()
                  if isinstance(s, rel.Scan))
    budget = largest * EXPANSION // 4
    tight = ExecContext(parallelism=2, memory_budget=budget)
    count = partition_count(plan, tight)
    # Two tasks run at once, each with half the budget: the largest table's share fits.
    assert 8 <= count <= 9 and largest * EXPANSION / count <= budget / 2
    physical = physical_plan(plan, tight)
    hashed = [e for e in _exchanges(physical) if e.partitioning is P.HASH]
    assert hashed and all(e.num_partitions == count for e in hashed)
    with PeakMemory() as peak:
        got = run_parallel(physical, tight)
    assert peak.bytes > 0
    assert got.equals(run(plan, roomy))
