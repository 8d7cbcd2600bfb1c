"""Checkpointed queries against the rig: the same answer as in memory, resume after a killed
process running only what was not committed, lost outputs recomputed, changed inputs refused,
bad roots refused. References are the in-memory runner and the single-stage plan."""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from checkpoint import (
    CorruptManifestError,
    IncompatibleQueryError,
    InputsChangedError,
    InvalidQueryRootError,
    QueryNotFoundError,
    load_query,
    resume,
    run_checkpointed,
)
from checkpoint.layout import QueryRoot
from checkpoint.options import CheckpointOptions
from executor import run, run_parallel
from executor.ir import serde
from executor.stages import TaskEvent
from tests.checkpoint.conftest import aggregate_plan, sample, single_plan
from tests.conftest import TEST_BUCKET, parquet_bytes
from wjio import rig as rig_mod
from wjio.options import StoreOptions


class Events:
    """Collects TaskEvents (from scheduler threads) and counts them by kind."""

    def __init__(self) -> None:
        self.events: list[TaskEvent] = []
        self.lock = threading.Lock()

    def __call__(self, e: TaskEvent) -> None:
        with self.lock:
            self.events.append(e)

    def tasks(self, kind: str) -> Counter[tuple[int, int]]:
        return Counter((e.stage, e.task) for e in self.events if e.kind == kind)


def keys(s3, root: QueryRoot, under: str = "") -> dict[str, dict]:
    """The store's own listing of the query's objects, by key relative to the root."""
    out, token = {}, None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=TEST_BUCKET, Prefix=root.key + under, **kw)
        out.update({o["Key"][len(root.key):]: o for o in page.get("Contents", ())})
        if not page.get("IsTruncated"):
            return out
        token = page["NextContinuationToken"]


@pytest.mark.parametrize("inline_max", [0, 256 << 10], ids=["objects", "inline"])
def test_checkpointed_run_equals_in_memory_run(s3_table, root, s3, inline_max):
    t = s3_table("t", sample())
    plan = aggregate_plan(t)
    events = Events()
    result = run_checkpointed(plan, root, scan_partitions=4, on_task=events,
                              options=CheckpointOptions(inline_max=inline_max))
    assert result.table.equals(run_parallel(plan))
    assert result.table.equals(run(single_plan(t)))
    # Every task ran once and committed once: 4 scan tasks, 3 hash tasks, 1 result task.
    assert events.tasks("commit") == events.tasks("run")
    assert sorted(events.tasks("commit").values()) == [1] * 8
    objects = keys(s3, result.root)
    commits = sorted(k for k in objects if k.startswith("commits/"))
    assert commits == [f"commits/0/{t}.json" for t in range(4)] + \
        [f"commits/1/{t}.json" for t in range(3)] + ["commits/2/0.json"]
    # One object per attempt, or none: the commit records carry the (small) outputs.
    assert sum(k.startswith("data/") for k in objects) == (8 if inline_max == 0 else 0)
    assert "plan.json" in objects and "result/result.json" in objects
    # The result is Parquet: an object of its own, or carried in its manifest.
    manifest = json.loads(objects_body(s3, result.root, "result/result.json"))
    parts = [k for k in objects if k.endswith(".parquet")]
    if inline_max:
        assert parts == [] and "object" not in manifest
        body = base64.b64decode(manifest["inline"])
    else:
        (part,) = parts
        assert manifest["object"] == result.root.key + part
        body = s3.get_object(Bucket=TEST_BUCKET, Key=result.root.key + part)["Body"].read()
    assert pq.read_table(pa.BufferReader(body)).equals(result.table)
    # Each commit names its attempt's object, with the size the store reports, or holds
    # that many bytes itself.
    for stage, task in sorted(events.tasks("commit")):
        record = json.loads(objects_body(s3, result.root, f"commits/{stage}/{task}.json"))
        size = len(base64.b64decode(record["inline"])) if inline_max else \
            objects[record["object"][len(result.root.key):]]["Size"]
        assert size == record["size"]


def objects_body(s3, root: QueryRoot, rel: str) -> bytes:
    return s3.get_object(Bucket=TEST_BUCKET, Key=root.key + rel)["Body"].read()


def test_plan_manifest_holds_inputs_and_no_credentials(s3_table, root, s3):
    t = s3_table("t", sample(), files=3)
    store = StoreOptions(sse="AES256")
    result = run_checkpointed(aggregate_plan(t), root, store=store)
    text = objects_body(s3, result.root, "plan.json").decode()
    for secret in (rig_mod.ACCESS_KEY, rig_mod.SECRET_KEY, "AES256"):
        assert secret not in text
    listed = s3.list_objects_v2(Bucket=TEST_BUCKET, Prefix=t.table.split("/", 3)[3])["Contents"]
    assert sorted((f"s3://{TEST_BUCKET}/{o['Key']}", o["Size"], o["ETag"]) for o in listed) == \
        sorted((i["uri"], i["size"], i["etag"]) for i in json.loads(text)["inputs"])
    # Server-side encryption reached every object the query wrote.
    for key in keys(s3, result.root):
        head = s3.head_object(Bucket=TEST_BUCKET, Key=result.root.key + key)
        assert head.get("ServerSideEncryption") == "AES256", key


_KILLED_CHILD = """
import os, sys, time
from checkpoint import CheckpointOptions, QueryRoot, run_checkpointed
from checkpoint.objects import read_manifest
from executor.context import ExecContext
from executor.ir import serde
from wjio.options import StoreOptions
from wjio.sync import run
plan = serde.from_json(open(sys.argv[1]).read())
record = QueryRoot.create(sys.argv[2], sys.argv[3]).commit(1, 1)
def on_task(e):
    if (e.stage, e.task, e.kind) == (1, 1, "commit"):
        # The commit is made in the background: die once its record is in the store.
        deadline = time.monotonic() + 30
        while run(read_manifest(StoreOptions(), record)) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os._exit(9)   # the machine is gone: no cleanup, no finally blocks
run_checkpointed(plan, sys.argv[2], ExecContext(parallelism=1), query_id=sys.argv[3],
                 scan_partitions=4, on_task=on_task, on_created=lambda r: print(r.uri, flush=True),
                 options=CheckpointOptions(inline_max=int(sys.argv[4])))
"""


@pytest.mark.parametrize("inline_max", [0, 256 << 10], ids=["objects", "inline"])
def test_resume_after_killed_process_runs_only_uncommitted_tasks(s3_table, root, tmp_path,
                                                                 s3, inline_max):
    t = s3_table("t", sample())
    plan = aggregate_plan(t)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(serde.to_json(plan))
    # The child dies the moment it hears stage 1 task 1 committed (task 2 may be running).
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_CHILD, str(plan_file), root, "q-killed",
         str(inline_max)],
        capture_output=True, text=True, timeout=120, cwd=os.getcwd())
    assert child.returncode == 9, child.stderr
    query_uri = child.stdout.strip()
    assert query_uri == QueryRoot.create(root, "q-killed").uri
    committed = {tuple(int(x) for x in k[len("commits/"):-len(".json")].split("/"))
                 for k in keys(s3, QueryRoot.parse(query_uri), "commits/")}
    assert {(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)} <= committed
    assert (2, 0) not in committed
    kinds = {"inline" in json.loads(objects_body(s3, QueryRoot.parse(query_uri),
                                                 f"commits/{s}/{t}.json")) for s, t in committed}
    assert kinds == {inline_max > 0}

    events = Events()
    result = resume(query_uri, on_task=events, options=CheckpointOptions(inline_max=inline_max))
    assert result.table.equals(run(single_plan(t)))
    assert not result.resumed
    everything = {(0, t) for t in range(4)} | {(1, t) for t in range(3)} | {(2, 0)}
    assert events.tasks("run") == Counter(dict.fromkeys(everything - committed, 1))
    assert set(events.tasks("skip")) == committed
    # Once finished, a resume reads the committed result and runs nothing.
    again = Events()
    done = resume(query_uri, on_task=again)
    assert done.resumed and done.table.equals(result.table) and again.events == []


@pytest.mark.parametrize("inline_max", [0, 256 << 10], ids=["objects", "inline"])
def test_a_corrupt_committed_result_is_computed_again(s3_table, root, s3, inline_max):
    """A result whose bytes fail their checksum (its object's, or its manifest's inline
    ones) is not delivered: resume drops it and builds the result again from the committed
    outputs of the last stage (no task runs), and commits it anew."""
    t = s3_table("t", sample())
    first = run_checkpointed(aggregate_plan(t), root, scan_partitions=4,
                             options=CheckpointOptions(inline_max=inline_max))
    manifest = json.loads(objects_body(s3, first.root, "result/result.json"))
    if inline_max:
        body = base64.b64decode(manifest["inline"])
        manifest["inline"] = base64.b64encode(body[:-9] + b"x" + body[-8:]).decode()
        s3.put_object(Bucket=TEST_BUCKET, Key=first.root.key + "result/result.json",
                      Body=json.dumps(manifest).encode())
    else:
        body = s3.get_object(Bucket=TEST_BUCKET, Key=manifest["object"])["Body"].read()
        s3.put_object(Bucket=TEST_BUCKET, Key=manifest["object"],
                      Body=body[:-9] + b"x" + body[-8:])
    events = Events()
    again = resume(first.root.uri, on_task=events)
    assert not again.resumed and again.table.equals(first.table)
    assert events.tasks("run") == Counter() and len(events.tasks("skip")) == 8
    third = resume(first.root.uri)
    assert third.resumed and third.table.equals(first.table)


def _stop_before_stage(stage: int):
    class Stop(Exception):
        pass

    def on_task(e: TaskEvent) -> None:
        if e.stage == stage and e.kind == "run":
            raise Stop(f"simulated failure before stage {stage}")

    return Stop, on_task


def killed_before(plan, root: str, query_id: str, stage: int, **kw) -> QueryRoot:
    """The root of a checkpointed run of ``plan`` stopped as stage ``stage``'s first task
    starts (its earlier stages committed); ``kw`` go to ``run_checkpointed``."""
    stop, on_task = _stop_before_stage(stage)
    with pytest.raises(stop):
        run_checkpointed(plan, root, query_id=query_id, on_task=on_task, **kw)
    return QueryRoot.create(root, query_id)


def test_lost_and_corrupt_committed_outputs_are_recomputed(s3_table, root, s3):
    t = s3_table("t", sample())
    q = killed_before(aggregate_plan(t), root, "q-lost", 1, scan_partitions=4,
                      options=CheckpointOptions(inline_max=0))
    records = {t: json.loads(objects_body(s3, q, f"commits/0/{t}.json")) for t in range(4)}
    # Task 1's object vanishes; task 2's object rots in place (the store's ETag still
    # matches the commit, only the checksum can tell).
    s3.delete_object(Bucket=TEST_BUCKET, Key=records[1]["object"])
    body = bytearray(s3.get_object(Bucket=TEST_BUCKET, Key=records[2]["object"])["Body"].read())
    off, length, _, _ = next(p for p in records[2]["partitions"] if p[1])
    body[off + length // 2] ^= 0xFF
    put = s3.put_object(Bucket=TEST_BUCKET, Key=records[2]["object"], Body=bytes(body))
    records[2]["etag"] = put["ETag"]
    s3.put_object(Bucket=TEST_BUCKET, Key=q.key + "commits/0/2.json",
                  Body=json.dumps(records[2]).encode())

    events = Events()
    result = resume(q.uri, on_task=events)
    assert result.table.equals(run(single_plan(t)))
    assert set(events.tasks("lost")) == {(0, 1), (0, 2)}
    assert {k for k in events.tasks("run") if k[0] == 0} == {(0, 1), (0, 2)}
    # The recomputed tasks committed new attempts; the untouched ones kept theirs.
    now = {t: json.loads(objects_body(s3, q, f"commits/0/{t}.json")) for t in range(4)}
    assert [now[t]["attempt"] == records[t]["attempt"] for t in range(4)] == \
        [True, False, False, True]


def test_corrupt_inline_output_is_recomputed(s3_table, root, s3):
    """An inline output edited in the store (its record still valid JSON, its base64 still
    base64) fails its checksum: the resume recomputes that producer only."""
    t = s3_table("t", sample())
    q = killed_before(aggregate_plan(t), root, "q-inl", 1, scan_partitions=4)
    records = {t: json.loads(objects_body(s3, q, f"commits/0/{t}.json")) for t in range(4)}
    assert all("inline" in r for r in records.values()) and keys(s3, q, "data/") == {}
    output = bytearray(base64.b64decode(records[3]["inline"]))
    off, length, _, _ = next(p for p in records[3]["partitions"] if p[1])
    output[off + length // 2] ^= 0xFF
    s3.put_object(Bucket=TEST_BUCKET, Key=q.key + "commits/0/3.json", Body=json.dumps(
        {**records[3], "inline": base64.b64encode(bytes(output)).decode()}).encode())
    events = Events()
    result = resume(q.uri, on_task=events)
    assert result.table.equals(run(single_plan(t)))
    assert set(events.tasks("lost")) == {(0, 3)}
    assert {k for k in events.tasks("run") if k[0] == 0} == {(0, 3)}
    now = json.loads(objects_body(s3, q, "commits/0/3.json"))
    assert now["attempt"] != records[3]["attempt"] and keys(s3, q, "data/") == {}


def test_corrupt_commit_record_is_recomputed(s3_table, root, s3):
    t = s3_table("t", sample())
    q = killed_before(aggregate_plan(t), root, "q-rec", 2)
    s3.put_object(Bucket=TEST_BUCKET, Key=q.key + "commits/1/0.json", Body=b"{not json")
    events = Events()
    assert resume(q.uri, on_task=events).table.equals(run(single_plan(t)))
    assert set(events.tasks("lost")) == {(1, 0)}


def test_changed_input_is_refused_unless_restarted(s3_table, root, put, prefix):
    data = sample()
    t = s3_table("t", data)
    uri = killed_before(aggregate_plan(t), root, "q-in", 2).uri
    changed = data.set_column(2, "v", pa.array(
        [None if v is None else -v for v in data.column("v").to_pylist()], data.schema[2].type))
    step = -(-data.num_rows // 4)
    put(f"{prefix}t/part-1.parquet", changed.slice(step, step))
    with pytest.raises(InputsChangedError, match=r"1 input object\(s\) changed") as err:
        resume(uri)
    assert len(err.value.changes) == 1 and "part-1.parquet: changed (etag" in err.value.changes[0]
    assert "restart" in str(err.value)

    new = pa.concat_tables([data.slice(0, step), changed.slice(step, step),
                            data.slice(2 * step)])
    events = Events()
    result = resume(uri, restart=True, on_task=events)
    assert result.table.equals(run(single_plan(s3_table("ref", new))))
    assert events.tasks("skip") == Counter()          # nothing of the old inputs was reused
    assert resume(uri).resumed                        # and the new inputs are now the query's


def test_concurrent_resumes_agree_and_commit_each_task_once(s3_table, root, s3):
    t = s3_table("t", sample())
    uri = killed_before(aggregate_plan(t), root, "q-two", 1, scan_partitions=4).uri
    events, results, errors = Events(), [], []

    def go():
        try:
            results.append(resume(uri, on_task=events))
        except Exception as e:  # reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert errors == []
    expected = run(single_plan(t))
    assert [r.table.equals(expected) for r in results] == [True, True]
    # Each remaining task committed exactly once across both runners (a runner that lost a
    # race heard "discard"), and has exactly one commit record.
    commits = events.tasks("commit")
    assert set(commits) == {(1, 0), (1, 1), (1, 2), (2, 0)}
    assert max(commits.values()) == 1
    q = QueryRoot.parse(uri)
    assert sorted(k for k in keys(s3, q, "commits/1/")) == [f"commits/1/{t}.json"
                                                             for t in range(3)]


def test_process_runner_survives_a_killed_worker(s3_table, root):
    """Process tasks read and write the store themselves; a worker killed (SIGKILL) as stage 1
    starts breaks the pool: its tasks run again as new attempts on a new pool."""
    t = s3_table("t", sample())
    events = Events()
    killed = []

    def on_task(e: TaskEvent) -> None:
        events(e)
        if (e.stage, e.kind) == (1, "run") and not killed:
            worker = next(p for p in multiprocessing.active_children()
                          if p.name.startswith("SpawnProcess"))
            os.kill(worker.pid, signal.SIGKILL)
            killed.append(worker.pid)

    result = run_checkpointed(aggregate_plan(t), root, runner="process", scan_partitions=4,
                              on_task=on_task)
    assert result.table.equals(run(single_plan(t)))
    assert killed and events.tasks("retry")
    commits = [e for e in events.events if e.kind == "commit"]
    assert sorted((e.stage, e.task) for e in commits) == sorted(
        [(0, t) for t in range(4)] + [(1, t) for t in range(3)] + [(2, 0)])
    retried = set(events.tasks("retry"))
    assert all(e.attempt >= 1 for e in commits if (e.stage, e.task) in retried)


def test_bad_query_roots_get_clear_errors(s3_table, root, s3, prefix):
    with pytest.raises(QueryNotFoundError, match=r"no plan\.json, no objects"):
        load_query(root + "q-nothing")
    s3.put_object(Bucket=TEST_BUCKET, Key=f"{prefix}ck/q-other/file", Body=b"x")
    with pytest.raises(QueryNotFoundError, match="not a query root"):
        resume(root + "q-other")
    with pytest.raises(InvalidQueryRootError, match=r"'\.\.'"):
        resume(f"s3://{TEST_BUCKET}/{prefix}ck/../q-1")
    with pytest.raises(InvalidQueryRootError, match="query id"):
        resume(f"s3://{TEST_BUCKET}/{prefix}ck/q.1")

    t = s3_table("t", sample(40), files=1)
    q = run_checkpointed(aggregate_plan(t), root, query_id="q-v").root
    manifest = json.loads(objects_body(s3, q, "plan.json"))
    s3.put_object(Bucket=TEST_BUCKET, Key=q.key + "plan.json",
                  Body=json.dumps({**manifest, "format": 99}).encode())
    with pytest.raises(IncompatibleQueryError, match="query format 99"):
        resume(q.uri)
    newer_plan = {**manifest, "plan": {**manifest["plan"], "format": 2}}
    unknown_node = {**manifest, "plan": {**manifest["plan"], "plan": {
        **manifest["plan"]["plan"], "node": "NoSuchNode"}}}
    for bad, why in [(newer_plan, "plan format 2"), (unknown_node, "NoSuchNode")]:
        s3.put_object(Bucket=TEST_BUCKET, Key=q.key + "plan.json", Body=json.dumps(bad).encode())
        with pytest.raises(IncompatibleQueryError, match=f"cannot be loaded.*{why}"):
            resume(q.uri)
    s3.put_object(Bucket=TEST_BUCKET, Key=q.key + "plan.json", Body=b"\x00garbage")
    with pytest.raises(CorruptManifestError, match="not a readable manifest"):
        resume(q.uri)
    with pytest.raises(InvalidQueryRootError, match="already exists"):
        run_checkpointed(aggregate_plan(t), root, query_id="q-v")


def test_local_inputs_are_snapshotted_too(tmp_path, root):
    data = sample(60)
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "a.parquet").write_bytes(parquet_bytes(data))
    from executor import ir
    scan = ir.Scan(str(tmp_path / "t"), ir.Schema.from_arrow(data.schema),
                   tuple(data.column_names))
    result = run_checkpointed(aggregate_plan(scan), root)
    (tmp_path / "t" / "b.parquet").write_bytes(parquet_bytes(data))
    with pytest.raises(InputsChangedError, match=r"b\.parquet: new object"):
        resume(result.root.uri)


def test_scalar_subquery_is_checkpointed_in_its_own_root(s3_table, root, s3):
    """``WHERE v > (SELECT max(v) FROM t WHERE k = 3)``: the subquery's stages commit under
    ``sub/<fingerprint>/`` of the query; a resume skips them as well."""
    from executor import ir
    from tests.executor.conftest import col, lit

    t = s3_table("t", sample())
    k, v = col(t, "k"), col(t, "v")
    mv = (ir.Alias(ir.Max(v), "mv"),)
    partial = ir.Aggregate(ir.Filter(t, ir.EqualTo(k, lit(3, k.dtype))), (), mv, "partial")
    sub = ir.Aggregate(ir.Exchange(partial, "single"), (), mv, "final")
    threshold = ir.ScalarSubquery(sub, v.dtype)
    plan = aggregate_plan(ir.Filter(t, ir.GreaterThan(v, threshold)))
    q = killed_before(plan, root, "q-sub", 2, scan_partitions=4)
    short = serde.fingerprint(sub)[:16]
    assert {k for k in keys(s3, q, f"sub/{short}/commits/")} == \
        {f"sub/{short}/commits/0/{t}.json" for t in range(4)} | {f"sub/{short}/commits/1/0.json"}
    before = keys(s3, q, "sub/")
    events = Events()
    result = resume(q.uri, on_task=events)
    assert result.table.equals(run(plan))
    assert result.table.num_rows > 0
    # Only the host's last task ran; the subquery's value came from its committed output
    # (nothing under sub/ was written again).
    assert events.tasks("run") == Counter({(2, 0): 1})
    assert keys(s3, q, "sub/") == before


@pytest.mark.parametrize("runner", ["thread", "process"])
def test_key_filter_reads_a_whole_exchange_through_the_store(s3_table, root, runner):
    """A partitioned join whose big side is filtered by the keys of the small side's hash
    exchange: scan tasks read every partition of that exchange from the store (process tasks
    too, themselves), and the result is the join's."""
    from executor import ir
    from executor.distribute import distribute
    from tests.executor.conftest import col

    big, small = s3_table("big", sample(2000, seed=5)), s3_table("small", sample(60, seed=6))
    keys = ir.Project(small, (ir.Alias(col(small, "k"), "sk"), ir.Alias(col(small, "v"), "sv")))
    sk = col(keys, "sk")
    some = ir.Filter(keys, ir.LessThan(sk, ir.Literal(5, sk.dtype)))
    plan = ir.Join(big, some, "inner", (col(big, "k"),), (sk,))
    sizes = {big.table: 100_000, small.table: 1_000}
    physical = distribute(plan, 3, size_of=sizes.get, broadcast_bytes=0)
    assert [n for n in physical.walk() if isinstance(n, ir.relations.KeyFilter)]
    result = run_checkpointed(physical, root, runner=runner, scan_partitions=4)
    expected = run(plan)
    assert sorted(map(repr, result.table.to_pylist())) == sorted(map(repr, expected.to_pylist()))
    assert 0 < expected.num_rows
