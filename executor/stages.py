"""Partition-parallel execution: the plan is cut into stages at Exchange nodes; each stage
runs as N tasks on a thread or process pool, writing its output through an ``Exchange``.

Stage task counts: a stage reading a hash/round-robin exchange runs one task per partition
of it (a single exchange: one task); a stage reading only tables (and exchanges it reads
whole: broadcasts, key filters' sources) runs ``scan_partitions`` tasks, each scanning its
share of the files. A stage that scans a table *and* reads one partition of a
multi-partition exchange is refused: the scan would be read by every task.

Every stage writes its output through an ``Exchange`` made by an :class:`ExchangeFactory`
(the result stage too, into one partition): in memory by default, in the object store for a
checkpointed query (``checkpoint/``). A stage runs only its tasks without a committed attempt,
so a resumed query skips finished work. Process tasks get the plan as JSON; with a portable
exchange they read their inputs and write their output through the store themselves,
otherwise their inputs and output are relayed through this process as Arrow IPC.

Tasks run on this process's threads (``runner="thread"``), a local process pool
(``"process"``), or elsewhere through a :class:`StageRunner` (e.g. as Spark tasks,
``checkpoint.spark_runner``): it gets each stage's pending tasks as one :class:`PortableStage`
and runs them wherever it likes; their exchanges must be portable, no data passes through it.

Failures: a task whose worker process died runs again as a new attempt (up to
``max_attempts``; a stage runner retries its own failed tasks); a task whose input turns
out lost (:class:`TaskOutputLostError`: a committed object missing or corrupt) has the
producer task recomputed, then runs again. Other errors fail the query.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pyarrow as pa

from executor import planner
from executor.context import ExecContext
from executor.errors import (
    ExchangeError,
    ExecutionError,
    ExecutorError,
    PlanError,
    TaskOutputLostError,
    UnsupportedError,
)
from executor.eval import evaluate
from executor.exchange import Exchange, ExchangeSource, InMemoryExchange
from executor.hashing import partition_ids
from executor.ir import relations as rel
from executor.ir import serde
from executor.operators.base import coalesced
from executor.run import finalize
from executor.subqueries import resolve_subqueries
from wjio.threads import process_pool

P = rel.Partitioning

_on_task_thread = threading.local()


def _mark_task_thread() -> None:
    _on_task_thread.yes = True


def task_pool(threads: int) -> cf.ThreadPoolExecutor | None:
    """The process's pool of ``threads`` task threads, shared by the queries it runs (None
    when called on one of its threads: a query started by a task gets a pool of its own, as
    the shared threads may all be busy waiting for it). It lives as long as the process
    (:func:`wjio.threads.process_pool`): on TPC-H SF1 (2 cores), a new pool per query took
    ~15% longer (q1, 5, 9, 13, 17, 18: 4.2-4.8 s against 3.6 s, wall). Queries run at the
    same time share its threads, in the order they submit tasks."""
    if getattr(_on_task_thread, "yes", False):
        return None
    return process_pool("wj-task", threads, initializer=_mark_task_thread)


@dataclass
class Stage:
    """``inputs``: the exchanges the stage reads; ``whole``: those of them its tasks read
    every partition of (broadcasts, and the sources of key filters), ``partitioned``: those
    each task reads its own partition of (an exchange may be read both ways)."""

    index: int
    root: rel.Relation
    output: rel.Exchange | None
    inputs: list[rel.Exchange] = field(default_factory=list)
    has_scan: bool = False
    whole: set[rel.Exchange] = field(default_factory=set)
    partitioned: set[rel.Exchange] = field(default_factory=set)


def exchange_ids(plan: rel.Relation) -> dict[rel.Exchange, int]:
    """``Exchange node -> number``, numbered in pre-order (stable across processes). Nodes
    compare by value, so equal exchanges -- the same rows computed the same way, as when a
    query repeats a subquery (TPC-H Q18, Q15, Q11) -- share a number, and :func:`cut` gives
    them one stage whose output every consumer reads (Spark's ``ReuseExchange``)."""
    ids: dict[rel.Exchange, int] = {}
    for node in plan.walk():
        if isinstance(node, rel.Exchange) and node not in ids:
            ids[node] = len(ids)
    return ids


def cut(plan: rel.Relation) -> list[Stage]:
    """Stages in dependency order (producers first; the result stage last); one stage per
    distinct exchange (by value, see :func:`exchange_ids`)."""
    stages: list[Stage] = []
    done: dict[rel.Exchange, Stage] = {}

    def build(root: rel.Relation, output: rel.Exchange | None) -> Stage:
        stage = Stage(-1, root, output)
        stack: list[tuple[rel.Relation, bool]] = [(root, False)]
        while stack:
            node, whole = stack.pop()
            if isinstance(node, rel.Exchange):
                stage.inputs.append(node)
                if whole or node.partitioning is P.BROADCAST:
                    stage.whole.add(node)
                else:
                    stage.partitioned.add(node)
                if node not in done:
                    done[node] = build(node.child, node)
                continue
            stage.has_scan |= isinstance(node, rel.Scan)
            if isinstance(node, rel.KeyFilter):
                if not isinstance(node.source, rel.Exchange):  # a task would see its share
                    raise PlanError("a key filter's source must be an Exchange in a plan "
                                    "cut into stages")
                stack += [(node.child, False), (node.source, True)]
            else:
                stack.extend((i, False) for i in node.inputs)
        stage.index = len(stages)
        stages.append(stage)
        return stage

    build(plan, None)
    return stages


def task_count(stage: Stage, scan_partitions: int) -> int:
    counts = {1 if e.partitioning is P.SINGLE else e.num_partitions
              for e in stage.partitioned}
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
        small = ids.astype(np.uint16) if n <= 1 << 16 else ids  # stable sort: radix sort
        order = np.argsort(small, kind="stable")
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
             ) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Run one task of one stage; yields its (target partition, batch) output, small
    batches joined (:func:`coalesced`, to a quarter of the batch size)."""
    stage = cut(plan)[stage_index]
    op = planner.plan(stage.root, exchange_ids(plan))
    task_ctx = ctx.for_stage(num_tasks, inputs)
    batches = coalesced(op.execute(partition, task_ctx), max(1, ctx.batch_size // 4))
    for seq, batch in enumerate(batches):
        if stage.output is None:
            yield 0, batch
        else:
            yield from route(batch, stage.output, seq + partition)


class ExchangeFactory(ABC):
    """Makes the exchange each stage of one plan writes to."""

    @abstractmethod
    def exchange(self, stage: int, num_partitions: int, name: str) -> Exchange:
        """The output exchange of ``stage`` (the result stage's has one partition)."""

    @abstractmethod
    def subquery(self, plan: rel.Relation) -> ExchangeFactory:
        """The factory for a scalar subquery's plan (its stages are numbered apart)."""


class MemoryExchanges(ExchangeFactory):
    """Exchanges in this process's memory: nothing survives the query."""

    def exchange(self, stage: int, num_partitions: int, name: str) -> Exchange:
        return InMemoryExchange(num_partitions, name)

    def subquery(self, plan: rel.Relation) -> ExchangeFactory:
        return MemoryExchanges()


@dataclass(frozen=True)
class TaskEvent:
    """What happened to a task: ``run`` (an attempt starts), ``skip`` (already committed),
    ``commit``, ``discard`` (another attempt committed first), ``lost`` (its committed output
    was lost, it will run again), ``retry`` (its worker died)."""

    stage: int
    task: int
    attempt: int
    kind: Literal["run", "skip", "commit", "discard", "lost", "retry"]


def _ipc(batches: list[pa.RecordBatch], schema: pa.Schema) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as w:
        for b in batches:
            w.write_batch(b)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> list[pa.RecordBatch]:
    return list(pa.ipc.open_stream(data))


def _sink_task(output: Exchange, task: int, attempt: int,
               batches: Iterator[tuple[int, pa.RecordBatch]]) -> bool:
    """Write one attempt's output and commit it; False if another attempt committed first."""
    sink = output.create_sink(task, attempt)
    try:
        for p, b in batches:
            sink.add(p, b)
    except BaseException:
        sink.abort()
        raise
    return sink.finish()


def _thread_task(plan: rel.Relation, stage_index: int, task: int, num_tasks: int,
                 inputs: dict[int, ExchangeSource], output: Exchange, attempt: int,
                 ctx: ExecContext) -> bool:
    return _sink_task(output, task, attempt,
                      run_task(plan, stage_index, task, num_tasks, inputs, ctx))


def _portable_task(plan_json: str, stage_index: int, task: int, num_tasks: int,
                   inputs: dict[int, Exchange], output: Exchange, attempt: int,
                   batch_size: int) -> bool:
    """A process task that reads and writes its exchanges itself (they are portable)."""
    plan = serde.from_json(plan_json)
    sources = {eid: ex.source() for eid, ex in inputs.items()}
    return _thread_task(plan, stage_index, task, num_tasks, sources, output, attempt,
                        ExecContext(batch_size=batch_size))


@dataclass(frozen=True)
class PortableStage:
    """One stage of a plan whose exchanges are all portable: what a worker on any machine
    needs to run any of its tasks (:meth:`run_task`). Pickles (the exchanges carry the commit
    records already read), so one copy can be shipped per job."""

    plan_json: str
    stage: int
    num_tasks: int
    inputs: dict[int, Exchange]
    output: Exchange
    batch_size: int

    def run_task(self, task: int, attempt: int) -> bool:
        """Run one attempt of ``task``: True if it committed, False if another attempt of it
        committed first. Raises :class:`TaskOutputLostError` if an input turned out lost."""
        return _portable_task(self.plan_json, self.stage, task, self.num_tasks, self.inputs,
                              self.output, attempt, self.batch_size)


TaskOutcome = bool | ExecutorError
"""What one task came to: committed (True), discarded (False: another attempt committed
first), or the query error that stopped it (a :class:`TaskOutputLostError` is recovered)."""


class StageRunner(ABC):
    """Runs the pending tasks of a stage outside this process, e.g. as Spark tasks
    (``checkpoint.spark_runner.SparkRunner``). Tasks read and write only through the
    stage's portable exchanges; the scheduler refuses a stage whose exchanges are not."""

    name: str

    @abstractmethod
    def run_stage(self, stage: PortableStage, attempts: dict[int, int]
                  ) -> dict[int, TaskOutcome]:
        """Run ``{task: attempt}`` of ``stage``, retrying failed tasks as it sees fit; the
        outcome of every task. An :class:`ExecutorError` a task raised is its outcome; any
        other failure left after retries raises (and fails the query)."""


def _relayed_task(plan_json: str, stage_index: int, partition: int, num_tasks: int,
                  inputs: dict[int, dict[int, bytes]], batch_size: int
                  ) -> list[tuple[int, bytes]]:
    """A process task whose inputs and output travel through the parent as Arrow IPC."""
    plan = serde.from_json(plan_json)
    sources = {eid: _TableSource({p: _from_ipc(b) for p, b in parts.items()})
               for eid, parts in inputs.items()}
    out = run_task(plan, stage_index, partition, num_tasks, sources,
                   ExecContext(batch_size=batch_size))
    return [(p, _ipc([b], b.schema)) for p, b in out]


def _task_input(source: ExchangeSource, e: rel.Exchange, whole: bool, task: int
                ) -> dict[int, bytes]:
    schema = planner.physical_schema(e.schema)
    if whole:
        return {p: _ipc(list(source.read(p)), schema) for p in range(e.num_partitions)}
    return {task: _ipc(list(source.read(task)), schema)}


MAX_RECOVERIES = 16
"""Lost task outputs recomputed per query before it fails: each recovery is a producer task
re-run, so a store that keeps losing objects fails the query instead of looping."""


class _Scheduler:
    """Runs the stages of one plan in order, each stage's uncommitted tasks on the pool."""

    def __init__(self, plan: rel.Relation, ctx: ExecContext, runner: str | StageRunner,
                 scan_partitions: int, factory: ExchangeFactory,
                 on_task: Callable[[TaskEvent], None] | None, max_attempts: int) -> None:
        self.plan, self.ctx, self.runner = plan, ctx, runner
        self.scan_partitions, self.factory = scan_partitions, factory
        self.on_task, self.max_attempts = on_task, max_attempts
        self.stages = cut(plan)
        self.ids = exchange_ids(plan)
        self.producer = {self.ids[s.output]: s.index for s in self.stages
                         if s.output is not None}
        self.outputs: dict[int, Exchange] = {}
        self.num_tasks: dict[int, int] = {}
        self.attempts: Counter[tuple[int, int]] = Counter()
        self.recoveries = 0
        self.remote = runner if isinstance(runner, StageRunner) else None
        self.plan_json = serde.to_json(plan) if runner == "process" or self.remote else ""
        self.submitted: list[cf.Future] = []
        self.shared = task_pool(ctx.parallelism) if runner == "thread" else None
        self.pool = self.shared or self._new_pool()

    def _new_pool(self) -> cf.Executor:
        if self.runner == "process":
            mp = multiprocessing.get_context("spawn")
            return cf.ProcessPoolExecutor(self.ctx.parallelism, mp_context=mp)
        return cf.ThreadPoolExecutor(self.ctx.parallelism, thread_name_prefix="wj-task")

    def _release_pool(self) -> None:
        """Cancel this query's tasks that have not started and wait for those running; the
        pool itself is shut down unless it is the shared one."""
        if self.pool is not self.shared:
            self.pool.shutdown(wait=True, cancel_futures=True)
            return
        for fut in self.submitted:
            fut.cancel()
        cf.wait(self.submitted)

    def _emit(self, stage: int, task: int, attempt: int, kind) -> None:
        if self.on_task is not None:
            self.on_task(TaskEvent(stage, task, attempt, kind))

    def run(self) -> pa.Table:
        try:
            for stage in self.stages:
                n = self.num_tasks[stage.index] = task_count(stage, self.scan_partitions)
                out = stage.output
                self.outputs[stage.index] = self.factory.exchange(
                    stage.index, 1 if out is None else out.num_partitions,
                    "result" if out is None else f"exchange #{self.ids[out]}")
                if self.remote is not None:
                    self._check_portable(stage)
                done = self.outputs[stage.index].committed_tasks()
                for t in sorted(done & set(range(n))):
                    self._emit(stage.index, t, -1, "skip")
                self._run_tasks(stage, [t for t in range(n) if t not in done])
                self.outputs[stage.index].no_more_sinks(n)
            batches = self._read_result()
        finally:
            self._release_pool()
        schema = planner.physical_schema(self.plan.schema)
        return finalize(pa.Table.from_batches(batches, schema=schema), self.plan)

    def _read_result(self) -> list[pa.RecordBatch]:
        result = self.outputs[self.stages[-1].index]
        while True:
            try:
                return list(result.source().read(0))
            except TaskOutputLostError as lost:
                self._recover(lost)

    def _portable(self, stage: Stage) -> bool:
        return self.outputs[stage.index].portable and all(
            self.outputs[self.producer[self.ids[e]]].portable for e in stage.inputs)

    def _check_portable(self, stage: Stage) -> None:
        output = self.outputs[stage.index]
        if not output.portable:
            raise ExchangeError(
                f"runner {self.remote.name!r} runs tasks outside this process, so every stage "
                f"must write through a portable exchange (the object store); stage "
                f"{stage.index} writes to {type(output).__name__} {output.name!r}, which "
                f"lives in this process's memory: run the query checkpointed "
                f"(checkpoint.run_checkpointed, wj sql --checkpoint)")

    def _run_tasks(self, stage: Stage, tasks: list[int]) -> None:
        pending = set(tasks)
        while pending:
            portable = self.runner == "process" and self._portable(stage)
            try:  # portable tasks open their own sources; opening them here checks the
                # commits once (and a portable exchange keeps what it read for its tasks)
                sources = {
                    self.ids[e]: self.outputs[self.producer[self.ids[e]]].source()
                    for e in stage.inputs}
            except TaskOutputLostError as e:
                self._recover(e)
                continue
            if self.remote is not None:
                futures = self._run_remote(stage, sorted(pending))
            else:
                futures = {self._submit(stage, t, sources, portable): t
                           for t in sorted(pending)}
            lost: dict[tuple[int, int], TaskOutputLostError] = {}
            for fut in cf.as_completed(futures):
                t = futures[fut]
                attempt = self.attempts[(stage.index, t)] - 1
                try:
                    result = fut.result()
                except TaskOutputLostError as e:
                    lost.setdefault((e.stage, e.task), e)
                    continue
                except BrokenProcessPool:
                    self._emit(stage.index, t, attempt, "retry")
                    continue
                if isinstance(result, list):  # relayed through this process
                    result = _sink_task(self.outputs[stage.index], t, attempt,
                                        ((p, b) for p, data in result for b in _from_ipc(data)))
                self._emit(stage.index, t, attempt, "commit" if result else "discard")
                pending.discard(t)
            if pending and isinstance(self.pool, cf.ProcessPoolExecutor) and any(
                    isinstance(f.exception(), BrokenProcessPool) for f in futures):
                self.pool.shutdown(wait=True, cancel_futures=True)
                self.pool = self._new_pool()
            for e in lost.values():
                self._recover(e)

    def _next_attempt(self, stage: Stage, task: int) -> int:
        key = (stage.index, task)
        attempt = self.attempts[key]
        if attempt >= self.max_attempts:
            raise ExecutionError(f"stage {stage.index} task {task}: failed {attempt} attempts "
                                 f"(its worker process died or its input was lost each time)")
        self.attempts[key] += 1
        self._emit(stage.index, task, attempt, "run")
        return attempt

    def _run_remote(self, stage: Stage, tasks: list[int]) -> dict[cf.Future, int]:
        """Run ``tasks`` through the stage runner; their outcomes as completed futures."""
        attempts = {t: self._next_attempt(stage, t) for t in tasks}
        portable = PortableStage(
            self.plan_json, stage.index, self.num_tasks[stage.index],
            {self.ids[e]: self.outputs[self.producer[self.ids[e]]]
             for e in stage.inputs},
            self.outputs[stage.index], self.ctx.batch_size)
        outcomes = self.remote.run_stage(portable, attempts)
        futures: dict[cf.Future, int] = {}
        for t in tasks:
            fut: cf.Future = cf.Future()
            outcome = outcomes[t]
            if isinstance(outcome, BaseException):
                fut.set_exception(outcome)
            else:
                fut.set_result(outcome)
            futures[fut] = t
        return futures

    def _submit(self, stage: Stage, task: int, sources: dict[int, ExchangeSource],
                portable: bool) -> cf.Future:
        attempt = self._next_attempt(stage, task)
        n, output = self.num_tasks[stage.index], self.outputs[stage.index]
        if self.runner == "thread":
            call = (_thread_task, self.plan, stage.index, task, n, sources, output, attempt,
                    self.ctx)
        elif portable:
            inputs = {self.ids[e]: self.outputs[self.producer[self.ids[e]]]
                      for e in stage.inputs}
            call = (_portable_task, self.plan_json, stage.index, task, n, inputs, output,
                    attempt, self.ctx.batch_size)
        else:
            inputs = {self.ids[e]: _task_input(sources[self.ids[e]], e, e in stage.whole,
                                               task)
                      for e in stage.inputs}
            call = (_relayed_task, self.plan_json, stage.index, task, n, inputs,
                    self.ctx.batch_size)
        try:
            fut = self.pool.submit(*call)
        except BrokenProcessPool as err:  # a worker died since the last submit
            failed: cf.Future = cf.Future()
            failed.set_exception(err)
            return failed
        self.submitted.append(fut)
        return fut

    def _recover(self, lost: TaskOutputLostError) -> None:
        self.recoveries += 1
        if self.recoveries > MAX_RECOVERIES:
            raise ExecutionError(f"gave up after recomputing {MAX_RECOVERIES} lost task "
                                 f"outputs; last: {lost}") from lost
        self._emit(lost.stage, lost.task, -1, "lost")
        self.outputs[lost.stage].invalidate(lost.task, lost.attempt)
        self._run_tasks(self.stages[lost.stage], [lost.task])


def run_parallel(plan: rel.Relation, ctx: ExecContext | None = None, *,
                 runner: Literal["thread", "process"] | StageRunner = "thread",
                 scan_partitions: int | None = None,
                 exchanges: ExchangeFactory | None = None,
                 on_task: Callable[[TaskEvent], None] | None = None,
                 max_attempts: int = 4) -> pa.Table:
    """Run ``plan`` stage by stage, each stage's tasks in parallel; returns the result.

    ``exchanges`` makes each stage's output exchange (default: in memory); tasks it already
    holds a commit for are skipped. ``runner`` runs the tasks on threads, on a local process
    pool, or through a :class:`StageRunner` (which needs portable ``exchanges``). ``on_task``
    hears every :class:`TaskEvent` of the plan's stages. Its scalar subqueries run first, each
    with ``run_parallel`` and the same options (so their plans need their own Exchanges), and
    become literals in the plan the tasks get.
    """
    if not isinstance(runner, StageRunner) and runner not in ("thread", "process"):
        raise ValueError(f"runner must be 'thread', 'process' or a StageRunner, got {runner!r}"
                         + (" (Spark tasks: checkpoint.spark_runner.SparkRunner())"
                            if runner == "spark" else ""))
    ctx = ctx or ExecContext()
    factory = exchanges or MemoryExchanges()
    plan = resolve_subqueries(plan, lambda sub: run_parallel(
        sub, ctx, runner=runner, scan_partitions=scan_partitions,
        exchanges=factory.subquery(sub), max_attempts=max_attempts))
    return _Scheduler(plan, ctx, runner, scan_partitions or ctx.parallelism, factory, on_task,
                      max_attempts).run()
