"""Background encoding and commits: a sink's batches compress while its task computes on,
and a run's finished attempts upload and commit on the IO loop while the next tasks run.
The answers, the store's listing and the commit order are checked against the rig."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from checkpoint import run_checkpointed
from checkpoint.committer import Committer
from checkpoint.copies import LocalCopies
from checkpoint.errors import InvalidQueryRootError
from checkpoint.exchange import ObjectStoreExchange
from checkpoint.layout import QueryRoot
from checkpoint.options import CheckpointOptions
from executor import run
from executor.context import ExecContext
from tests.checkpoint.conftest import aggregate_plan, sample, single_plan
from tests.checkpoint.test_faults import _store
from tests.checkpoint.test_query import Events, keys
from tests.conftest import TEST_BUCKET
from tools.proxy import Faults, ShapingProxy
from wjio import errors


@pytest.fixture
def proxy(rig):
    with ShapingProxy(upstream=rig.endpoint_url, seed=11) as p:
        yield p


@pytest.fixture
def qroot(prefix) -> QueryRoot:
    return QueryRoot.create(f"s3://{TEST_BUCKET}/{prefix}ck/", "q-bg")


def batch(task: int, n: int, seed: int = 0) -> pa.RecordBatch:
    rng = np.random.default_rng(seed + task)
    return pa.record_batch({"task": pa.array([task] * n, pa.int64()),
                            "x": pa.array(rng.random(n))})


def records(s3, root: QueryRoot) -> dict[tuple[int, int], dict]:
    out = {}
    for key in keys(s3, root, "commits/"):
        stage, task = key[len("commits/"):-len(".json")].split("/")
        body = s3.get_object(Bucket=TEST_BUCKET, Key=root.key + key)["Body"].read()
        out[(int(stage), int(task))] = json.loads(body)
    return out


def test_background_run_commits_every_task_producers_first(s3_table, root, s3):
    t = s3_table("t", sample(2000))
    events = Events()
    result = run_checkpointed(aggregate_plan(t), root, ExecContext(parallelism=2),
                              scan_partitions=4, on_task=events)
    assert result.table.equals(run(single_plan(t)))
    committed = records(s3, result.root)
    assert set(committed) == set(events.tasks("commit")) == \
        {(0, t) for t in range(4)} | {(1, t) for t in range(3)} | {(2, 0)}
    # A consumer's commit is never created before the commits of the outputs it read.
    for stage in (1, 2):
        assert min(r["committed_at"] for (s, _), r in committed.items() if s == stage) >= \
            max(r["committed_at"] for (s, _), r in committed.items() if s == stage - 1)
    assert "result/result.json" in keys(s3, result.root)


@pytest.mark.parametrize("local_copies", [64 << 20, 0], ids=["from-memory", "from-store"])
def test_consumer_reads_attempts_still_in_the_committer(qroot, s3, local_copies):
    opts = CheckpointOptions(local_copies=local_copies)
    copies, committer = LocalCopies(opts.local_copies), Committer(opts.upload_ahead)
    ex = ObjectStoreExchange(qroot, 0, 2, options=opts, copies=copies, committer=committer)
    sent = {task: [batch(task, 50_000), batch(task, 20_000, seed=9)] for task in range(3)}
    for task, batches in sent.items():
        sink = ex.create_sink(task, 0)
        for i, b in enumerate(batches):
            sink.add(i % 2, b)
        assert sink.finish()
    ex.no_more_sinks(3)
    assert ex.committed_tasks() == {0, 1, 2}
    src = ex.source()   # kept batches: at once; otherwise after their commits
    for p in range(2):
        got = pa.Table.from_batches(list(src.read(p)))
        assert got.equals(pa.Table.from_batches([sent[t][p] for t in range(3)]))
    committer.drain()
    assert ex._pending == {}
    assert set(records(s3, qroot)) == {(0, 0), (0, 1), (0, 2)}


def test_failed_background_upload_fails_the_query_and_commits_nothing(s3_table, root, proxy,
                                                                       s3):
    t = s3_table("t", sample())
    created: list[QueryRoot] = []

    def fault_after_plan(r: QueryRoot) -> None:
        created.append(r)
        # The first PUT after plan.json (the first task's output) is refused, with no retry.
        proxy.set_faults(Faults(methods=("PUT",), slowdown_503=1.0, max_faults=1))

    with pytest.raises(errors.WjioError):   # a given id: plan.json is written up front
        run_checkpointed(aggregate_plan(t), root, ExecContext(parallelism=1),
                         store=_store(proxy, max_attempts=1), scan_partitions=4,
                         query_id="q-upload-fails", on_created=fault_after_plan)
    assert sum(proxy.stats().faults_injected.values()) == 1
    proxy.set_faults(Faults())
    stored = keys(s3, created[0])
    # Nothing committed, no result; later attempts that uploaded were deleted, not committed.
    assert sorted(stored) == ["plan.json"], sorted(stored)


def test_failed_background_plan_write_fails_the_query_and_commits_nothing(s3_table, root, s3):
    """A fresh id on threads: plan.json is the committer's first job, written while the first
    tasks compute. When it cannot be created (here another writer took the id first), the
    query fails and nothing of it is committed; every attempt's upload is deleted."""
    t = s3_table("t", sample())
    created: list[QueryRoot] = []
    theirs = b'{"format": 2, "query_id": "someone else"}'

    def take_the_id(r: QueryRoot) -> None:
        created.append(r)
        s3.put_object(Bucket=TEST_BUCKET, Key=r.plan.key, Body=theirs)

    with pytest.raises(InvalidQueryRootError, match="already exists"):
        run_checkpointed(aggregate_plan(t), root, scan_partitions=4, on_created=take_the_id)
    assert sorted(keys(s3, created[0])) == ["plan.json"]
    assert s3.get_object(Bucket=TEST_BUCKET, Key=created[0].plan.key)["Body"].read() == theirs
    # The same plan with the id free: plan.json, every commit, then the result.
    events = Events()
    done = run_checkpointed(aggregate_plan(t), root, scan_partitions=4, on_task=events)
    assert done.table.equals(run(single_plan(t)))
    stored = keys(s3, done.root)
    assert "plan.json" in stored and "result/result.json" in stored
    assert len(records(s3, done.root)) == sum(events.tasks("commit").values()) == 8


def test_finish_hands_over_the_encoding_and_a_failed_one_commits_nothing(qroot, s3):
    """With kept batches, ``finish`` returns before the output is encoded (the rest of the
    encoding runs with the upload, off the task's thread); an encoding that then fails (two
    schemas in one partition's stream) fails the committer: its error reaches ``drain`` and
    the next ``finish``, and no commit record or data object of it is in the store."""
    opts = CheckpointOptions()
    copies, committer = LocalCopies(opts.local_copies), Committer(opts.upload_ahead)
    ex = ObjectStoreExchange(qroot, 0, 1, options=opts, copies=copies, committer=committer)
    good = ex.create_sink(0, 0)
    good.add(0, batch(0, 1000))
    assert good.finish()
    committer.drain()
    bad = ex.create_sink(1, 0)
    bad.add(0, batch(1, 1000))
    bad.add(0, pa.record_batch({"other": pa.array(["x"] * 10)}))
    assert bad.finish()           # handed over: the mismatch is found while encoding
    with pytest.raises(pa.ArrowInvalid):
        committer.drain()
    late = ex.create_sink(2, 0)
    late.add(0, batch(2, 10))
    with pytest.raises(pa.ArrowInvalid):
        late.finish()
    assert set(records(s3, qroot)) == {(0, 0)}
    assert [k for k in keys(s3, qroot) if k.startswith("data/")] == []
