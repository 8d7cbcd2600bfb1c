"""Partition-parallel execution: the plan is cut into stages at Exchange nodes; each stage
runs as N tasks on a thread or process pool, writing its output through an ``Exchange``.

Stage task counts: a stage reading a hash/round-robin exchange runs one task per partition
of it (a single exchange: one task); a stage reading only tables (and broadcasts) runs
``scan_partitions`` tasks, each scanning its share of the files. A stage that scans a table
*and* reads a multi-partition exchange is refused: the scan would be read by every task.

Process tasks get the plan as JSON and their inputs as Arrow IPC, so they need nothing but
this package: the same task function (:func:`run_task`) serves both pools.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa

from executor import planner
from executor.context import ExecContext
from executor.errors import PlanError, UnsupportedError
from executor.eval import evaluate
from executor.exchange import Exchange, ExchangeSource, InMemoryExchange
from executor.hashing import partition_ids
from executor.ir import relations as rel
from executor.ir import serde
from executor.run import finalize
from executor.subqueries import resolve_subqueries

P = rel.Partitioning


@dataclass
class Stage:
    index: int
    root: rel.Relation
    output: rel.Exchange | None
    inputs: list[rel.Exchange] = field(default_factory=list)
    has_scan: bool = False


def exchange_ids(plan: rel.Relation) -> dict[int, int]:
    """``id(Exchange node) -> number``, numbered in pre-order (stable across processes)."""
    ids: dict[int, int] = {}
    for node in plan.walk():
        if isinstance(node, rel.Exchange) and id(node) not in ids:
            ids[id(node)] = len(ids)
    return ids


def cut(plan: rel.Relation) -> list[Stage]:
    """Stages in dependency order (producers first; the result stage last)."""
    stages: list[Stage] = []
    done: dict[int, Stage] = {}

    def build(root: rel.Relation, output: rel.Exchange | None) -> Stage:
        stage = Stage(-1, root, output)
        stack = [root]
        while stack:
            node = stack.pop()
            if isinstance(node, rel.Exchange):
                stage.inputs.append(node)
                if id(node) not in done:
                    done[id(node)] = build(node.child, node)
                continue
            stage.has_scan |= isinstance(node, rel.Scan)
            stack.extend(node.inputs)
        stage.index = len(stages)
        stages.append(stage)
        return stage

    build(plan, None)
    return stages


def task_count(stage: Stage, scan_partitions: int) -> int:
    counts = {1 if e.partitioning is P.SINGLE else e.num_partitions
              for e in stage.inputs if e.partitioning is not P.BROADCAST}
    if len(counts) > 1:
        raise PlanError(f"stage {stage.index} reads exchanges with different partition "
                        f"counts {sorted(counts)}")
    if counts:
        n = counts.pop()
        if stage.has_scan and n > 1:
            raise UnsupportedError("Exchange", f"stage {stage.index} scans a table and reads "
                                   f"a {n}-partition exchange")
        return n
    return scan_partitions if stage.has_scan else 1


class _TableSource(ExchangeSource):
    """Pre-fetched exchange input of one task (process tasks)."""

    def __init__(self, partitions: dict[int, list[pa.RecordBatch]]) -> None:
        self.partitions = partitions

    def read(self, partition):
        yield from self.partitions.get(partition, ())

    def read_all(self, num_partitions):
        for p in sorted(self.partitions):
            yield from self.partitions[p]


def route(batch: pa.RecordBatch, out: rel.Exchange, seq: int) -> list[tuple[int, pa.RecordBatch]]:
    """Split one output batch into (target partition, rows) by the exchange's partitioning."""
    n = out.num_partitions
    if out.partitioning is P.HASH:
        ids = partition_ids([evaluate(k, batch) for k in out.keys], n)
        order = np.argsort(ids, kind="stable")
        counts = np.bincount(ids, minlength=n)
        taken = batch.take(pa.array(order))
        parts, start = [], 0
        for p in range(n):
            if counts[p]:
                parts.append((p, taken.slice(start, int(counts[p]))))
            start += int(counts[p])
        return parts
    if out.partitioning is P.ROUND_ROBIN:
        return [(seq % n, batch)]
    return [(0, batch)]  # single; broadcast (consumers read every partition)


def run_task(plan: rel.Relation, stage_index: int, partition: int, num_tasks: int,
             inputs: dict[int, ExchangeSource], ctx: ExecContext
             ) -> list[tuple[int, pa.RecordBatch]]:
    """Run one task of one stage; returns its (target partition, batch) output."""
    stage = cut(plan)[stage_index]
    op = planner.plan(stage.root, exchange_ids(plan))
    task_ctx = ctx.for_stage(num_tasks, inputs)
    out: list[tuple[int, pa.RecordBatch]] = []
    for seq, batch in enumerate(op.execute(partition, task_ctx)):
        if stage.output is None:
            out.append((0, batch))
        else:
            out.extend(route(batch, stage.output, seq + partition))
    return out


def _ipc(batches: list[pa.RecordBatch], schema: pa.Schema) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as w:
        for b in batches:
            w.write_batch(b)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> list[pa.RecordBatch]:
    return list(pa.ipc.open_stream(data))


def _process_task(plan_json: str, stage_index: int, partition: int, num_tasks: int,
                  inputs: dict[int, dict[int, bytes]], batch_size: int
                  ) -> list[tuple[int, bytes]]:
    plan = serde.from_json(plan_json)
    sources = {eid: _TableSource({p: _from_ipc(b) for p, b in parts.items()})
               for eid, parts in inputs.items()}
    out = run_task(plan, stage_index, partition, num_tasks, sources,
                   ExecContext(batch_size=batch_size))
    return [(p, _ipc([b], b.schema)) for p, b in out]


def run_parallel(plan: rel.Relation, ctx: ExecContext | None = None, *,
                 runner: Literal["thread", "process"] = "thread",
                 scan_partitions: int | None = None) -> pa.Table:
    """Run ``plan`` stage by stage, each stage's tasks in parallel; returns the result.
    Its scalar subqueries run first, each with ``run_parallel`` and the same options (so
    their plans need their own Exchanges), and become literals in the plan the tasks get."""
    ctx = ctx or ExecContext()
    plan = resolve_subqueries(plan, lambda sub: run_parallel(
        sub, ctx, runner=runner, scan_partitions=scan_partitions))
    stages = cut(plan)
    ids = exchange_ids(plan)
    exchanges: dict[int, Exchange] = {}
    scan_partitions = scan_partitions or ctx.parallelism
    plan_json = serde.to_json(plan) if runner == "process" else ""
    if runner == "process":
        mp = multiprocessing.get_context("spawn")
        pool: cf.Executor = cf.ProcessPoolExecutor(ctx.parallelism, mp_context=mp)
    else:
        pool = cf.ThreadPoolExecutor(ctx.parallelism, thread_name_prefix="wj-task")
    result: list[pa.RecordBatch] = []
    with pool:
        for stage in stages:
            n = task_count(stage, scan_partitions)
            sources = {ids[id(e)]: exchanges[ids[id(e)]].source() for e in stage.inputs}
            if stage.output is not None:
                exchange = InMemoryExchange(stage.output.num_partitions,
                                            f"exchange #{ids[id(stage.output)]}")
                exchanges[ids[id(stage.output)]] = exchange
            futures = {}
            for t in range(n):
                if runner == "process":
                    inputs = {eid: _task_input(src, e, t)
                              for (eid, src), e in zip(sources.items(), stage.inputs,
                                                       strict=True)}
                    futures[t] = pool.submit(_process_task, plan_json, stage.index, t, n,
                                             inputs, ctx.batch_size)
                else:
                    futures[t] = pool.submit(run_task, plan, stage.index, t, n, sources, ctx)
            outputs = {}
            for t, fut in futures.items():
                out = fut.result()
                if runner == "process":
                    out = [(p, b) for p, data in out for b in _from_ipc(data)]
                outputs[t] = out
            if stage.output is None:
                for t in range(n):
                    result.extend(b for _, b in outputs[t])
                continue
            for t in range(n):
                sink = exchange.create_sink(t, attempt=0)
                try:
                    for p, b in outputs[t]:
                        sink.add(p, b)
                except BaseException:
                    sink.abort()
                    raise
                sink.finish()
            exchange.no_more_sinks(n)
    schema = planner.physical_schema(plan.schema)
    return finalize(pa.Table.from_batches(result, schema=schema), plan)


def _task_input(source: ExchangeSource, e: rel.Exchange, task: int) -> dict[int, bytes]:
    schema = planner.physical_schema(e.schema)
    if e.partitioning is P.BROADCAST:
        return {p: _ipc(list(source.read(p)), schema) for p in range(e.num_partitions)}
    return {task: _ipc(list(source.read(task)), schema)}
