"""A checkpointed query's inputs: ``plan.json`` records exactly the files its scans read
(taken from the run's own table sources, not from a listing of its own), a resume compares
them with the store's listing now and refuses a change, and a run over many tables does
not starve the IO loop while it fixes them. References: the store's own listing (boto3)
and the in-memory runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pytest

from checkpoint import InputsChangedError, QueryRoot, resume, run_checkpointed
from executor import ir, run
from executor.context import ExecContext
from executor.ir import serde
from tests.checkpoint.conftest import aggregate_plan, sample, single_plan
from tests.checkpoint.test_query import Events, _stop_before_stage, objects_body
from tests.conftest import TEST_BUCKET


def listed(s3, prefix: str) -> list[tuple[str, int, str]]:
    """``(uri, size, etag)`` of the objects under ``prefix``, from the store's listing."""
    contents = s3.list_objects_v2(Bucket=TEST_BUCKET, Prefix=prefix).get("Contents", [])
    return sorted((f"s3://{TEST_BUCKET}/{o['Key']}", o["Size"], o["ETag"]) for o in contents)


def recorded(s3, root: QueryRoot) -> list[tuple[str, int, str]]:
    inputs = json.loads(objects_body(s3, root, "plan.json"))["inputs"]
    return sorted((i["uri"], i["size"], i["etag"]) for i in inputs)


@pytest.mark.parametrize("query_id", [None, "q-given"], ids=["background", "up-front"])
def test_recorded_inputs_are_the_files_the_scans_read(s3_table, root, s3, put, prefix,
                                                      query_id):
    """Written in the background (fresh id) or before the first task (given id), plan.json
    names every input object as the store lists it, and exactly the files the run's scans
    were pinned to (the same listing: the run lists each table once). A table that is one
    object is recorded from its footer read, and a resume (which HEADs it) agrees."""
    a = s3_table("a", sample(300, seed=1), files=3)
    one = sample(200)
    b = ir.Scan(put(f"{prefix}b.parquet", one), ir.Schema.from_arrow(one.schema),
                tuple(one.column_names))
    plan = aggregate_plan(ir.Union((a, b)))
    ctx = ExecContext(parallelism=2)
    result = run_checkpointed(plan, root, ctx, query_id=query_id, scan_partitions=2)
    expected = run(single_plan(ir.Union((a, b))))
    assert result.table.equals(expected)
    got = recorded(s3, result.root)
    assert got == sorted(listed(s3, f"{prefix}a/") + listed(s3, f"{prefix}b.parquet"))
    pinned = {**ctx.sources[a.table].files(), **ctx.sources[b.table].files()}
    assert pinned == {uri: etag for uri, _, etag in got}
    done = resume(result.root.uri)
    assert done.resumed and done.table.equals(expected)


def test_changed_input_of_a_background_snapshot_is_refused(s3_table, root, s3, put, prefix):
    """A query whose plan.json was written in the background from the scans' listing, and
    whose input then changed, is refused on resume (the store's listing now differs from
    what its scans read); with restart it runs on the new data."""
    data = sample()
    t = s3_table("t", data)
    created: list[QueryRoot] = []
    stop, on_task = _stop_before_stage(2)
    with pytest.raises(stop):
        run_checkpointed(aggregate_plan(t), root, scan_partitions=4, on_task=on_task,
                         on_created=created.append)
    assert recorded(s3, created[0]) == listed(s3, f"{prefix}t/")
    assert resume(created[0].uri, on_task=Events()).table.equals(run(single_plan(t)))

    stop, on_task = _stop_before_stage(2)
    created.clear()
    with pytest.raises(stop):
        run_checkpointed(aggregate_plan(t), root, scan_partitions=4, on_task=on_task,
                         on_created=created.append)
    changed = data.slice(0, 100)
    put(f"{prefix}t/part-3.parquet", changed)
    with pytest.raises(InputsChangedError) as err:
        resume(created[0].uri)
    assert len(err.value.changes) == 1 and "part-3.parquet: changed" in err.value.changes[0]
    step = -(-data.num_rows // 4)
    new = pa.concat_tables([data.slice(0, 3 * step), changed])
    assert resume(created[0].uri, restart=True).table.equals(
        run(single_plan(s3_table("ref", new))))


_MANY_TABLES = """
import sys
from checkpoint.query import _snapshot
from executor.ir import serde
from executor.sources import WjioSource
from wjio.options import StoreOptions
from wjio.sync import run
plan = serde.from_json(open(sys.argv[1]).read())
# A store no request has used yet: its client is made (on the IO loop's default executor,
# aiobotocore builds its SSL context there) only once the snapshot's threads are waiting.
fresh = StoreOptions(max_attempts=7)
sources = {t: WjioSource(t, fresh) for t in sys.argv[2:]}
for i in sorted(run(_snapshot(plan, StoreOptions(), sources)), key=lambda i: i["uri"]):
    print(i["uri"], i["size"], i["etag"], flush=True)
"""


def test_snapshot_over_more_tables_than_the_io_loops_executor_has_threads(s3_table, prefix,
                                                                          root, s3, tmp_path):
    """More tables than the IO loop's default executor has threads: the snapshot waits for
    every table's listing on threads of its own, so the loop's own work, which needs that
    executor (planning a scan of several files does), is never left without a thread (on
    the loop's executor it hung). Then a checkpointed run over the tables records them as
    the store lists them, and a resume finds them unchanged and reads the committed
    result."""
    n = min(32, (os.cpu_count() or 1) + 4) + 2
    scans = [s3_table(f"many/t{i}", sample(50, seed=i), files=2) for i in range(n)]
    plan = aggregate_plan(ir.Union(tuple(scans)))
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(serde.to_json(plan))
    child = subprocess.run([sys.executable, "-c", _MANY_TABLES, str(plan_file),
                            *(s.table for s in scans)],
                           capture_output=True, text=True, timeout=30, cwd=os.getcwd())
    assert child.returncode == 0, child.stderr[-3000:]
    store_listing = listed(s3, f"{prefix}many/")
    assert [tuple(line.split()) for line in child.stdout.splitlines()] == \
        [(uri, str(size), etag) for uri, size, etag in store_listing]

    result = run_checkpointed(plan, root, scan_partitions=2)
    expected = run(single_plan(ir.Union(tuple(scans))))
    assert result.table.equals(expected)
    assert recorded(s3, result.root) == store_listing
    done = resume(result.root.uri)
    assert done.resumed and done.table.equals(expected)
