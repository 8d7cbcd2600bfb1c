"""``wj resume/status/ls/gc`` through the ``wj`` entry point, against the rig. References:
the executor's in-memory answer, the store's own listings, pyarrow's reads of the outputs."""

from __future__ import annotations

import base64
import json
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from checkpoint import run_checkpointed
from checkpoint.layout import QueryRoot
from checkpoint.options import CheckpointOptions
from executor import run
from spark_conf.entry import main
from tests.checkpoint.conftest import aggregate_plan, sample, single_plan
from tests.checkpoint.test_query import keys, killed_before
from tests.conftest import TEST_BUCKET


def partial(plan, root: str, query_id: str, before_stage: int = 2, **kw) -> str:
    """A query killed before ``before_stage``: its earlier stages are committed."""
    return killed_before(plan, root, query_id, before_stage, scan_partitions=4, **kw).uri


def wj(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_command_has_help(capsys):
    for command in ("resume", "status", "ls", "gc"):
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        assert exit_.value.code == 0
        assert f"usage: wj {command}" in capsys.readouterr().out


def test_resume_prints_or_writes_the_result(s3_table, root, capsys, tmp_path, s3, prefix):
    t = s3_table("t", sample())
    expected = run(single_plan(t))
    uri = partial(aggregate_plan(t), root, "q-cli")
    code, out, err = wj(capsys, "resume", uri, "--format", "json")
    assert code == 0, err
    assert [json.loads(line) for line in out.splitlines()] == \
        json.loads(json.dumps(expected.to_pylist(), default=str))
    assert "ran 1 task(s), 7 already committed" in err
    # Done now: later resumes read the committed result, into a local or an S3 file.
    code, out, err = wj(capsys, "resume", uri, "--output", str(tmp_path / "r.parquet"))
    assert code == 0 and out == "" and "read the committed result" in err
    assert pq.read_table(tmp_path / "r.parquet").equals(expected)
    target = f"s3://{TEST_BUCKET}/{prefix}out/r.parquet"
    assert wj(capsys, "resume", uri, "-o", target)[0] == 0
    body = s3.get_object(Bucket=TEST_BUCKET, Key=f"{prefix}out/r.parquet")["Body"].read()
    assert pq.read_table(pa.BufferReader(body)).equals(expected)
    code, out, _ = wj(capsys, "resume", uri, "--format", "table")
    assert code == 0 and out.splitlines()[1].split() == ["|", "k", "|", "sv", "|", "n", "|",
                                                         "ms", "|", "mv", "|"]


def test_resume_delivers_to_the_querys_own_output(s3_table, root, capsys, tmp_path):
    t = s3_table("t", sample())
    target = tmp_path / "original.parquet"
    uri = partial(aggregate_plan(t), root, "q-out", output=str(target))
    code, out, err = wj(capsys, "resume", uri)
    assert code == 0 and out == "" and f"to {target}" in err
    assert pq.read_table(target).equals(run(single_plan(t)))


def test_resume_errors_are_one_line(s3_table, root, capsys, put, prefix):
    data = sample()
    t = s3_table("t", data)
    uri = partial(aggregate_plan(t), root, "q-err")
    put(f"{prefix}t/part-0.parquet", data.slice(0, 7))
    code, out, err = wj(capsys, "resume", uri)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 2   # note + error
    assert "error:" in err and "part-0.parquet: changed" in err and "--restart" in err
    code, out, err = wj(capsys, "resume", uri, "--restart", "--format", "csv")
    assert code == 0, err
    new = pa.concat_tables([data.slice(0, 7), data.slice(100)])
    assert len(out.splitlines()) == 1 + run(single_plan(s3_table("new", new))).num_rows
    for bad, why in [(f"s3://{TEST_BUCKET}/{prefix}ck/../q", "not allowed"),
                     (root + "q-none", "no query here"),
                     ("/tmp/q-1", "checkpoint root")]:
        code, out, err = wj(capsys, "resume", bad)
        assert (code, out) == (2, "") and len(err.strip().splitlines()) == 1
        assert err.startswith("wj resume: error:") and why in err


def output_bytes(s3, q: QueryRoot, listed: dict[str, dict]) -> dict[str, int]:
    """Bytes of the committed outputs per stage, from the store: each commit record's data
    object as listed, or the bytes its base64 ``inline`` field decodes to."""
    out: dict[str, int] = {}
    for key in listed:
        if key.startswith("commits/"):
            record = json.loads(s3.get_object(Bucket=TEST_BUCKET, Key=q.key + key)["Body"]
                                .read())
            stage = key.split("/")[1]
            out[stage] = out.get(stage, 0) + (
                len(base64.b64decode(record["inline"])) if "inline" in record
                else listed[record["object"][len(q.key):]]["Size"])
    return out


@pytest.mark.parametrize("inline_max", [0, 256 << 10], ids=["objects", "inline"])
def test_status_reports_progress_per_stage(s3_table, root, capsys, s3, inline_max):
    data = sample()
    t = s3_table("t", data)
    uri = partial(aggregate_plan(t), root, "q-st",
                  options=CheckpointOptions(inline_max=inline_max))
    code, out, err = wj(capsys, "status", uri, "--json")
    assert code == 0, err
    status = json.loads(out)
    listed = keys(s3, QueryRoot.parse(uri))
    assert status["state"] == "incomplete"
    assert [(s["committed"], s["tasks"], s["remaining"]) for s in status["stages"]] == \
        [(4, 4, 0), (3, 3, 0), (0, 1, 1)]
    assert status["objects"] == len(listed)
    assert status["stored_bytes"] == sum(o["Size"] for o in listed.values())
    assert sum(k.startswith("data/") for k in listed) == (7 if inline_max == 0 else 0)
    stored = output_bytes(s3, QueryRoot.parse(uri), listed)
    assert [s["bytes"] for s in status["stages"][:2]] == [stored["0"], stored["1"]] and \
        min(stored.values()) > 0
    # Rows: the partial aggregates hold one row per key per file, the final ones one per key.
    per_file = sum(len(set(data.slice(i * 100, 100).column("k").to_pylist())) for i in range(4))
    assert [s["rows"] for s in status["stages"][:2]] == [per_file,
                                                        run(single_plan(t)).num_rows]
    code, out, _ = wj(capsys, "status", uri)
    assert code == 0 and "incomplete, 7 of 8 tasks committed (1 remaining)" in out
    assert "stage 2: [                    ] 0/1 tasks" in out
    assert wj(capsys, "resume", uri, "--format", "csv")[0] == 0
    code, out, _ = wj(capsys, "status", uri, "--watch", "0.1")
    assert code == 0 and "done, 8 of 8 tasks committed" in out
    code, _, err = wj(capsys, "status", root + "q-nope")
    assert code == 2 and "no query here" in err


def test_ls_lists_queries_with_state(s3_table, root, capsys, s3, prefix):
    t = s3_table("t", sample(80), files=2)
    done = run_checkpointed(aggregate_plan(t), root, query_id="q-a", scan_partitions=2).root
    partial(aggregate_plan(t), root, "q-b")
    s3.put_object(Bucket=TEST_BUCKET, Key=f"{prefix}ck/stray/x", Body=b"x")
    code, out, err = wj(capsys, "ls", root, "--json")
    assert code == 0, err
    got = {q["query_id"]: q for q in json.loads(out)}
    assert {k: (q["state"], q["committed"], q["tasks"]) for k, q in got.items()} == {
        "q-a": ("done", 6, 6), "q-b": ("incomplete", 7, 8), "stray": ("not-a-query", 0, None)}
    assert got["q-a"]["objects"] == len(keys(s3, done))
    assert got["q-a"]["stored_bytes"] == sum(o["Size"] for o in keys(s3, done).values())
    code, out, _ = wj(capsys, "ls", root)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["QUERY", "STATE", "TASKS"]
    assert [line.split()[:3] for line in lines[1:3]] == [["q-a", "done", "6/6"],
                                                         ["q-b", "incomplete", "7/8"]]
    assert wj(capsys, "ls", f"s3://{TEST_BUCKET}/{prefix}empty/")[0] == 0


def test_gc_removes_old_garbage_and_keeps_resumable_queries(s3_table, root, capsys, s3,
                                                            prefix):
    t = s3_table("t", sample(80), files=2)
    done = run_checkpointed(aggregate_plan(t), root, query_id="q-done",
                            scan_partitions=2).root
    uri = partial(aggregate_plan(t), root, "q-open")
    q = QueryRoot.parse(uri)
    # Garbage: an attempt killed before it committed, and an upload it never finished.
    killed = q.data(1, 0, "a3-0badc0de")
    s3.put_object(Bucket=TEST_BUCKET, Key=killed.key, Body=b"half an output")
    upload = s3.create_multipart_upload(Bucket=TEST_BUCKET, Key=q.data(1, 1, "a4-0badc0de").key)
    before = {k: keys(s3, r) for k, r in (("done", done), ("open", q))}
    # Small outputs: every commit record carries its output, no task wrote a data object.
    assert not any(k.startswith("data/") for k in before["done"])

    # Everything is fresh, by the store's own clock. (moto reports every upload as
    # initiated in 2010: gc must then take it as old, like any store saying so.)
    (listed,) = s3.list_multipart_uploads(Bucket=TEST_BUCKET, Prefix=prefix)["Uploads"]
    upload_is_old = listed["Initiated"].timestamp() < time.time() - 3600
    code, out, err = wj(capsys, "gc", root, "--older-than", "1h", "--dry-run")
    assert code == 0
    assert [line.split(":")[0] for line in out.splitlines()] == \
        ["would remove upload"] * upload_is_old
    assert f"would remove {'1 upload(s) (0 B)' if upload_is_old else 'nothing'}" in err
    code, out, err = wj(capsys, "gc", root, "--older-than", "0s", "--dry-run", "--json")
    report = json.loads(out)
    assert code == 0 and report["dry_run"]
    assert {(r["kind"], r["uri"].split("/ck/")[1]) for r in report["removed"]} == {
        ("attempt", "q-open/data/1/0/a3-0badc0de/output"),
        ("upload", f"q-open/data/1/1/a4-0badc0de/output (upload {upload['UploadId']})"),
        ("finished-query", "q-done/")}
    assert {k: keys(s3, r) for k, r in (("done", done), ("open", q))} == before

    code, out, err = wj(capsys, "gc", root, "--older-than", "0s", "--keep-finished")
    assert code == 0 and "removed attempt" in out and "finished-query" not in out
    assert keys(s3, done) == before["done"]
    assert set(keys(s3, q)) == set(before["open"]) - {killed.key[len(q.key):]}
    assert s3.list_multipart_uploads(Bucket=TEST_BUCKET, Prefix=prefix).get("Uploads",
                                                                              []) == []
    code, out, _ = wj(capsys, "gc", root, "--older-than", "0s")
    assert code == 0 and "removed finished-query" in out
    assert keys(s3, done) == {}
    # The unfinished query survived every gc and still resumes to the right answer.
    code, out, err = wj(capsys, "resume", uri, "--format", "json")
    assert code == 0, err
    assert len(out.splitlines()) == run(single_plan(t)).num_rows
    code, _, err = wj(capsys, "gc", root, "--older-than", "7x")
    assert code == 2 and "expected a number and a unit" in err
