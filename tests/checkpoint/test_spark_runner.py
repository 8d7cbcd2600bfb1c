"""Stage tasks as Spark tasks (``runner="spark"``) on a real local[2] Spark against the rig:
the same answer as in memory, resume across runners in both directions, exactly one commit
per task in the store's own listing (also with every task run twice at once), lost inputs
recomputed through Spark, query errors typed, a failed Spark job keeping its commits, the
in-memory exchange refused, ``wj resume``/``wj sql --runner spark``. References: the
in-memory runner, the single-stage plan, Spark's own SQL answer, the store's listing, the
session's job records (status tracker)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from tests import spark_support

if (_why := spark_support.skip_reason()) is not None:
    pytest.skip(_why, allow_module_level=True)

from checkpoint import SparkRunner, resume, run_checkpointed
from checkpoint.layout import QueryRoot
from checkpoint.options import CheckpointOptions
from executor import run, run_parallel
from executor.errors import ExchangeError, ExecutionError
from executor.stages import PortableStage, StageRunner
from tests.checkpoint.conftest import aggregate_plan, sample, single_plan
from tests.checkpoint.test_exchange import OBJECTS
from tests.checkpoint.test_query import (
    Events,
    _stop_before_stage,
    keys,
    killed_before,
    objects_body,
)
from tests.conftest import TEST_BUCKET

EVERY_TASK = {(0, t) for t in range(4)} | {(1, t) for t in range(3)} | {(2, 0)}


@pytest.fixture(scope="module")
def spark():
    return spark_support.local_spark()


def commits(s3, root: QueryRoot) -> list[tuple[int, int]]:
    """(stage, task) of every commit record the store lists, with repeats (there must be
    none: one key per task)."""
    return sorted(tuple(int(x) for x in k[len("commits/"):-len(".json")].split("/"))
                  for k in keys(s3, root, "commits/"))


def spark_jobs(spark) -> set[int]:
    """Ids of the Spark jobs the session ran so far (as its status tracker keeps them)."""
    return set(spark.sparkContext.statusTracker().getJobIdsForGroup(None))


def test_spark_runner_equals_in_memory_run(spark, s3_table, root, s3):
    t = s3_table("t", sample())
    plan = aggregate_plan(t)
    events = Events()
    before = spark_jobs(spark)
    result = run_checkpointed(plan, root, scan_partitions=4, runner="spark", on_task=events,
                              options=OBJECTS)
    assert result.table.equals(run_parallel(plan))
    assert result.table.equals(run(single_plan(t)))
    # Each stage was one Spark job with one Spark task per stage task.
    tracker = spark.sparkContext.statusTracker()
    jobs = sorted(spark_jobs(spark) - before)
    assert len(jobs) == 3
    stages = [tracker.getStageInfo(s) for j in jobs for s in tracker.getJobInfo(j).stageIds]
    assert sorted(s.numTasks for s in stages) == [1, 3, 4]
    assert all(s.numFailedTasks == 0 for s in stages)
    # Every task ran and committed once; the store holds one commit and one object per task.
    assert events.tasks("run") == events.tasks("commit")
    assert set(events.tasks("commit")) == EVERY_TASK
    assert commits(s3, result.root) == sorted(EVERY_TASK)
    objects = keys(s3, result.root)
    assert sum(k.startswith("data/") for k in objects) == len(EVERY_TASK)
    # And the query is as resumable as any other: the committed result is read back.
    assert resume(result.root.uri).resumed


@pytest.mark.parametrize("first, then", [("thread", "spark"), ("spark", "thread")])
def test_resume_across_runners(spark, s3_table, root, s3, first, then):
    t = s3_table("t", sample(seed=7))
    # killed once stage 0 committed
    q = killed_before(aggregate_plan(t), root, "q-x", 1, scan_partitions=4, runner=first)
    stage0 = {(0, t) for t in range(4)}
    assert commits(s3, q) == sorted(stage0)

    events = Events()
    result = resume(q.uri, runner=then, on_task=events)
    assert result.table.equals(run(single_plan(t)))
    assert set(events.tasks("skip")) == stage0
    assert events.tasks("run") == events.tasks("commit")
    assert set(events.tasks("run")) == EVERY_TASK - stage0
    assert commits(s3, q) == sorted(EVERY_TASK)
    # Small outputs: the records carry them (Spark tasks read them from the store's records,
    # which their pickled stage leaves behind), and no attempt wrote a data object.
    assert all("inline" in json.loads(objects_body(s3, q, f"commits/{s}/{t}.json"))
               for s, t in EVERY_TASK)
    assert not any(k.startswith("data/") for k in keys(s3, q))


class TwiceOnSpark(StageRunner):
    """Every task as two Spark tasks of one job at once (as speculative copies would be)."""

    name = "spark-twice"

    def __init__(self, spark) -> None:
        self.spark = spark
        self.outcomes: list[tuple[int, int, bool]] = []

    def run_stage(self, stage: PortableStage, attempts: dict[int, int]) -> dict[int, bool]:
        tasks = sorted(attempts) * 2
        ran = self.spark.sparkContext.parallelize(tasks, len(tasks)).map(
            lambda t: (t, stage.run_task(t, attempts[t]))).collect()
        self.outcomes += [(stage.stage, t, committed) for t, committed in ran]
        return {t: any(c for u, c in ran if u == t) for t in attempts}


@pytest.mark.parametrize("options", [OBJECTS, CheckpointOptions()], ids=["objects", "inline"])
def test_duplicate_spark_tasks_commit_once(spark, s3_table, root, s3, options):
    t = s3_table("t", sample(seed=17))
    runner = TwiceOnSpark(spark)
    result = run_checkpointed(aggregate_plan(t), root, scan_partitions=4, runner=runner,
                              options=options)
    assert result.table.equals(run(single_plan(t)))
    # Of each task's two copies exactly one committed, the other was discarded.
    assert sorted(runner.outcomes) == sorted(
        [(*task, True) for task in EVERY_TASK] + [(*task, False) for task in EVERY_TASK])
    assert commits(s3, result.root) == sorted(EVERY_TASK)
    # The losers' objects are gone: one data object per commit (none if inline).
    assert sum(k.startswith("data/") for k in keys(s3, result.root)) == \
        (len(EVERY_TASK) if options.inline_max == 0 else 0)


def test_lost_input_is_recomputed_through_spark(spark, s3_table, root, s3):
    t = s3_table("t", sample(seed=11))
    q = killed_before(aggregate_plan(t), root, "q-lost", 1, scan_partitions=4,
                      runner="spark", options=OBJECTS)
    record = json.loads(objects_body(s3, q, "commits/0/2.json"))
    s3.delete_object(Bucket=TEST_BUCKET, Key=record["object"])

    events = Events()
    result = resume(q.uri, runner="spark", on_task=events)
    assert result.table.equals(run(single_plan(t)))
    # A Spark task of stage 1 found the object gone; the driver reran its producer.
    assert set(events.tasks("lost")) == {(0, 2)}
    assert {k for k in events.tasks("commit") if k[0] == 0} == {(0, 2)}
    now = json.loads(objects_body(s3, q, "commits/0/2.json"))
    assert now["attempt"] != record["attempt"]
    assert commits(s3, q) == sorted(EVERY_TASK)


def test_query_errors_come_back_typed(spark, s3_table, root):
    from executor import ir
    from executor.errors import DivideByZeroError
    from tests.executor.conftest import col

    t = s3_table("t", sample(seed=5))
    divided = ir.Project(t, (ir.Alias(ir.Divide(col(t, "k"), ir.Literal(0, pa.int64())),
                                      "q"),))
    plan = ir.Exchange(divided, "single")
    with pytest.raises(DivideByZeroError) as in_memory:
        run_parallel(plan)
    with pytest.raises(DivideByZeroError) as on_spark:
        run_checkpointed(plan, root, runner="spark")
    assert str(on_spark.value) == str(in_memory.value)


def test_in_memory_exchange_is_refused(spark, s3_table):
    plan = aggregate_plan(s3_table("t", sample(n=20)))
    jobs = spark_jobs(spark)
    with pytest.raises(ExchangeError, match=r"runner 'spark' runs tasks outside this process.*"
                                            r"InMemoryExchange.*run the query checkpointed"):
        run_parallel(plan, runner=SparkRunner(spark))
    assert spark_jobs(spark) == jobs   # refused before any task ran
    with pytest.raises(ValueError, match="SparkRunner"):
        run_parallel(plan, runner="spark")


def test_failed_spark_task_fails_the_stage_and_keeps_the_commits(spark, s3_table, root, put,
                                                                 prefix, s3):
    from executor import ir
    from wjio.errors import CorruptFooterError

    good = s3_table("t", sample(n=40), files=2)
    bad_uri = put(f"{prefix}bad/part-0.parquet", b"PAR1 this is not parquet PAR1")
    bad = ir.Scan(bad_uri, good.schema, good.columns)
    # Stage 0 scans the good table (2 tasks); stage 1 adds the bad file to what they wrote.
    plan = ir.Union((ir.Exchange(good, "single"), bad))
    # Stage 1's task fails in its Spark executor (a store-side error, not a query error: one
    # for Spark to retry), so the stage fails naming it; stage 0's commits stay.
    with pytest.raises(ExecutionError, match=r"stage 1: its Spark job of 1 task\(s\) failed: "
                       r"wjio.errors.CorruptFooterError: " + bad_uri):
        run_checkpointed(plan, root, query_id="q-bad", scan_partitions=2, runner="spark")
    q = QueryRoot.create(root, "q-bad")
    assert commits(s3, q) == [(0, 0), (0, 1)]
    assert "result/result.json" not in keys(s3, q)
    # A resume (here on threads) keeps those commits and meets the same bad file.
    events = Events()
    with pytest.raises(CorruptFooterError):
        resume(q.uri, on_task=events)
    assert set(events.tasks("skip")) == {(0, 0), (0, 1)}
    assert set(events.tasks("run")) == {(1, 0)}


def test_wj_resume_and_sql_with_runner_spark(spark, s3_table, root, s3, tmp_path, capsys):
    import pyarrow.parquet as pq

    from spark_conf.entry import main

    data = sample(seed=13)
    t = s3_table("t", data)
    # wj resume --runner spark finishes a query the thread runner started.
    stop, on_task = _stop_before_stage(1)
    with pytest.raises(stop):
        run_checkpointed(aggregate_plan(t), root, query_id="q-cli", scan_partitions=4,
                         on_task=on_task)
    q = QueryRoot.create(root, "q-cli")
    out = tmp_path / "out.parquet"
    assert main(["resume", q.uri, "--runner", "spark", "--output", str(out)]) == 0
    err = capsys.readouterr().err
    assert "ran 4 task(s), 4 already committed" in err, err
    assert pq.read_table(out).equals(run(single_plan(t)))
    assert commits(s3, q) == sorted(EVERY_TASK)

    # wj sql --checkpoint ... --runner spark: Spark plans it and runs its stages' tasks;
    # the answer is Spark's own over the same data.
    pq.write_table(data, tmp_path / "ref.parquet")
    spark.read.parquet(str(tmp_path / "ref.parquet")).createOrReplaceTempView("ck_spark_ref")
    query = "select k, count(*) as n, sum(v) as sv, max(s) as ms from {} group by k order by k"
    before = spark_jobs(spark)
    code = main(["sql", query.format("ck_spark_t"), "--table", f"ck_spark_t={t.table}",
                 "--checkpoint", root, "--runner", "spark", "--format", "json"])
    out_text, err = capsys.readouterr()
    assert code == 0, err
    sql_jobs = spark_jobs(spark) - before
    query_uri = err.splitlines()[0].split()[-1]
    reference = spark_support.spark_reference(spark, query.format("ck_spark_ref"))
    assert [json.loads(line) for line in out_text.splitlines()] == \
        json.loads(json.dumps(reference.to_pylist(), default=str))
    sql_commits = commits(s3, QueryRoot.parse(query_uri))
    assert len(sql_commits) == len(set(sql_commits)) > 1
    assert len(sql_jobs) >= len({s for s, _ in sql_commits})   # a job per stage at least

    # --runner without --checkpoint is refused.
    with pytest.raises(SystemExit) as exit_:
        main(["sql", "select 1", "--runner", "spark"])
    assert exit_.value.code == 2
    assert "--runner needs --checkpoint" in capsys.readouterr().err
