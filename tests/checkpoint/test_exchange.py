"""ObjectStoreExchange against the rig: the call-order contract, exactly one commit per task,
one object per attempt with a partition index (or small outputs inline in their commit
records), multipart outputs, lost outputs named."""

from __future__ import annotations

import base64
import json
import pickle
import threading

import numpy as np
import pyarrow as pa
import pytest

from checkpoint.exchange import INLINE_FORMAT, ObjectStoreExchange, read_commit_records
from checkpoint.layout import QueryRoot
from checkpoint.options import CheckpointOptions, MiB
from executor.errors import ExchangeError, TaskOutputLostError
from tests.conftest import TEST_BUCKET
from wjio.options import StoreOptions
from wjio.sync import run

OBJECTS = CheckpointOptions(inline_max=0)
"""Every output in a data object (no inline records)."""


@pytest.fixture
def qroot(prefix) -> QueryRoot:
    return QueryRoot.create(f"s3://{TEST_BUCKET}/{prefix}ck/", "q-ex")


def batch(task: int, n: int = 100) -> pa.RecordBatch:
    return pa.record_batch({"task": pa.array([task] * n, pa.int64()),
                            "i": pa.array(np.arange(n, dtype=np.int64)),
                            "s": pa.array([f"t{task}-{i}" for i in range(n)])})


def write(ex: ObjectStoreExchange, task: int, attempt: int, parts: dict[int, pa.RecordBatch]
          ) -> bool:
    sink = ex.create_sink(task, attempt)
    for p, b in parts.items():
        sink.add(p, b)
    return sink.finish()


def listing(s3, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=TEST_BUCKET,
                                                       Prefix=prefix).get("Contents", ()))


def record_of(s3, qroot: QueryRoot, stage: int, task: int) -> dict:
    return json.loads(s3.get_object(Bucket=TEST_BUCKET, Key=qroot.commit(stage, task).key)
                      ["Body"].read())


def test_partitions_round_trip_in_producer_order(qroot, s3):
    ex = ObjectStoreExchange(qroot, 0, 3, options=OBJECTS)
    for task in (1, 0):
        assert write(ex, task, 0, {0: batch(task, 10), 2: batch(task, 5 + task)})
    ex.no_more_sinks(2)
    assert ex.is_complete() and ex.committed_tasks() == {0, 1}
    src = ex.source()
    p0 = pa.Table.from_batches(list(src.read(0)))
    assert p0.column("task").to_pylist() == [0] * 10 + [1] * 10
    assert list(src.read(1)) == []
    assert pa.Table.from_batches(list(src.read(2))).equals(
        pa.Table.from_batches([batch(0, 5), batch(1, 6)]))
    # Few objects: one data object per task attempt (not one per partition), one record each.
    keys = listing(s3, qroot.key)
    assert len([k for k in keys if "/data/" in k]) == 2
    assert [k for k in keys if "/commits/" in k] == [qroot.commit(0, t).key for t in (0, 1)]
    record = json.loads(s3.get_object(Bucket=TEST_BUCKET, Key=qroot.commit(0, 1).key)
                        ["Body"].read())
    assert [p[2] for p in record["partitions"]] == [10, 0, 6]     # rows per partition
    assert record["attempt"].startswith("a0-") and record["rows"] == 16


def test_small_outputs_are_inline_in_their_commit_records(qroot, s3):
    """No data object: the record carries the partitions' streams (pyarrow reads them from
    its bytes) with the same index, and the exchange reads them back in producer order."""
    ex = ObjectStoreExchange(qroot, 0, 3)
    for task in (1, 0):
        assert write(ex, task, 0, {0: batch(task, 10), 2: batch(task, 5 + task)})
    ex.no_more_sinks(2)
    assert listing(s3, qroot.key) == [qroot.commit(0, t).key for t in (0, 1)]
    record = record_of(s3, qroot, 0, 1)
    assert record["format"] == INLINE_FORMAT and "object" not in record
    output = base64.b64decode(record["inline"])
    assert len(output) == record["size"]
    streams = [output[off:off + length] for off, length, _, _ in record["partitions"]]
    assert pa.ipc.open_stream(streams[2]).read_all().equals(pa.Table.from_batches([batch(1, 6)]))
    assert streams[1] == b"" and [p[2] for p in record["partitions"]] == [10, 0, 6]
    src = ObjectStoreExchange(qroot, 0, 3)       # another reader: from the store's records
    src.no_more_sinks(2)
    assert pa.Table.from_batches(list(src.source().read(2))).equals(
        pa.Table.from_batches([batch(0, 5), batch(1, 6)]))
    # Up to inline_max bytes only: a larger output writes its data object.
    big = ObjectStoreExchange(qroot, 1, 1, options=CheckpointOptions(inline_max=1000))
    assert write(big, 0, 0, {0: batch(0, 5)}) and write(big, 1, 0, {0: batch(1, 2000)})
    assert "inline" in record_of(s3, qroot, 1, 0) and "object" in record_of(s3, qroot, 1, 1)
    assert len([k for k in listing(s3, qroot.key) if "/data/" in k]) == 1


@pytest.mark.parametrize("options", [OBJECTS, CheckpointOptions()], ids=["objects", "inline"])
def test_duplicate_attempts_commit_exactly_once(qroot, s3, options):
    ex = ObjectStoreExchange(qroot, 1, 1, options=options)
    assert write(ex, 0, 0, {0: batch(0)})
    assert not write(ex, 0, 1, {0: batch(99)})          # a late duplicate is discarded
    # Speculative attempts racing from threads: exactly one wins.
    wins, lock = [], threading.Lock()

    def attempt(a: int) -> None:
        won = write(ex, 1, a, {0: batch(100 + a)})
        with lock:
            wins.append((a, won))

    threads = [threading.Thread(target=attempt, args=(a,)) for a in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert sorted(w for _, w in wins) == [False] * 5 + [True]
    (winner,) = [a for a, w in wins if w]
    ex.no_more_sinks(2)
    got = pa.Table.from_batches(list(ex.source().read(0)))
    assert got.column("task").unique().to_pylist() == [0, 100 + winner]
    # Losers removed their objects: one data object per committed task remains (none when
    # the records carry the outputs).
    data = 2 if options.inline_max == 0 else 0
    assert len([k for k in listing(s3, qroot.key) if "/data/" in k]) == data
    assert all(("inline" in record_of(s3, qroot, 1, t)) == (data == 0) for t in (0, 1))


def test_call_order_is_enforced(qroot):
    ex = ObjectStoreExchange(qroot, 0, 2)
    sink = ex.create_sink(0, 0)
    with pytest.raises(ExchangeError, match="partition 2 out of range"):
        sink.add(2, batch(0))
    sink.add(0, batch(0))
    assert sink.finish()
    with pytest.raises(ExchangeError, match="add after finished"):
        sink.add(0, batch(0))
    sink.abort()                                  # abort after finish: a no-op
    with pytest.raises(ExchangeError, match="read before no_more_sinks"):
        ex.source()
    ex.no_more_sinks(2)
    with pytest.raises(ExchangeError, match=r"tasks \[1\] have no commit record"):
        ex.source()
    aborted = ex.create_sink(1, 0)
    aborted.add(1, batch(1))
    aborted.abort()
    with pytest.raises(ExchangeError, match="finish after aborted"):
        aborted.finish()
    assert ex.committed_tasks() == {0}


def test_large_output_is_a_multipart_upload(qroot, s3):
    options = CheckpointOptions(part_size=5 * MiB, multipart_over=5 * MiB)
    ex = ObjectStoreExchange(qroot, 0, 2, options=options)
    rng = np.random.default_rng(0)
    big = pa.record_batch({"x": pa.array(rng.random(1_600_000))})   # ~12 MiB, incompressible
    assert write(ex, 0, 0, {0: big, 1: batch(0)})
    record = json.loads(s3.get_object(Bucket=TEST_BUCKET, Key=qroot.commit(0, 0).key)
                        ["Body"].read())
    assert record["size"] > 10 * MiB
    assert record["etag"].strip('"').endswith("-3")   # S3's multipart ETag: 3 parts
    ex.no_more_sinks(1)
    src = ex.source()
    assert pa.Table.from_batches(list(src.read(0))).equals(pa.Table.from_batches([big]))
    # Partition 1 lies in the last part, after partition 0's end: parts span partitions.
    assert pa.Table.from_batches(list(src.read(1))).equals(pa.Table.from_batches([batch(0)]))
    assert s3.list_multipart_uploads(Bucket=TEST_BUCKET, Prefix=qroot.key).get("Uploads",
                                                                              []) == []


def test_lost_outputs_name_their_producer(qroot, s3):
    ex = ObjectStoreExchange(qroot, 4, 1, options=OBJECTS)
    for t in range(3):
        assert write(ex, t, 0, {0: batch(t)})
    ex.no_more_sinks(3)
    records = {t: json.loads(s3.get_object(Bucket=TEST_BUCKET, Key=qroot.commit(4, t).key)
                             ["Body"].read()) for t in range(3)}
    s3.put_object(Bucket=TEST_BUCKET, Key=records[1]["object"], Body=b"replaced")
    with pytest.raises(TaskOutputLostError) as err:
        list(ex.source().read(0))
    assert (err.value.stage, err.value.task, err.value.attempt) == (4, 1, records[1]["attempt"])
    assert "ObjectChangedError" in str(err.value)
    ex.invalidate(1, "a9-00000000")               # names another attempt: the commit stays
    assert ex.committed_tasks() == {0, 1, 2}
    ex.invalidate(1, records[1]["attempt"])
    assert ex.committed_tasks() == {0, 2}
    assert write(ex, 1, 1, {0: batch(1)})
    assert pa.Table.from_batches(list(ex.source().read(0))).column("task").to_pylist() == \
        [0] * 100 + [1] * 100 + [2] * 100


def test_corrupt_inline_outputs_name_their_producer(qroot, s3):
    """An inline record edited in the store (still valid JSON): a flipped byte fails the
    partition's checksum, a character that is not base64 fails its decoding, a record that
    contradicts itself is unreadable; each names its producer, and recomputing it heals."""
    ex = ObjectStoreExchange(qroot, 4, 1)
    for t in range(3):
        assert write(ex, t, 0, {0: batch(t)})
    records = {t: record_of(s3, qroot, 4, t) for t in range(3)}

    def put(task: int, record: dict) -> None:
        s3.put_object(Bucket=TEST_BUCKET, Key=qroot.commit(4, task).key,
                      Body=json.dumps(record).encode())

    def lost(task: int) -> TaskOutputLostError:
        reader = ObjectStoreExchange(qroot, 4, 1)   # reads the records from the store
        reader.no_more_sinks(3)
        with pytest.raises(TaskOutputLostError) as err:
            list(reader.source().read(0))
        assert (err.value.stage, err.value.task) == (4, task)
        return err.value

    output = bytearray(base64.b64decode(records[1]["inline"]))
    output[len(output) // 2] ^= 0xFF
    put(1, {**records[1], "inline": base64.b64encode(bytes(output)).decode()})
    err = lost(1)
    assert err.attempt == records[1]["attempt"] and "fails its SHA-256 check" in str(err)
    put(1, {**records[1], "inline": "!" * len(records[1]["inline"])})
    assert "is not base64" in str(lost(1))
    put(1, records[1])
    put(2, {**records[2], "partitions": [[0, records[2]["size"] + 3, 100, "00"]]})
    err = lost(2)
    assert err.attempt == "unreadable-record" and "not a commit record" in str(err)
    put(2, {**records[2], "format": 99})
    assert "commit record format 99; this version reads formats 1 (data object), 2 (inline " \
        "output)" in str(lost(2))
    ex.invalidate(2, "unreadable-record")
    assert ex.committed_tasks() == {0, 1} and write(ex, 2, 1, {0: batch(2)})
    ex.no_more_sinks(3)
    assert pa.Table.from_batches(list(ex.source().read(0))).column("task").to_pylist() == \
        [0] * 100 + [1] * 100 + [2] * 100


def test_pickled_exchange_reads_inline_outputs_from_the_store(qroot, s3):
    """A pickle (what a worker process gets) leaves the inline outputs behind: the worker
    GETs each record it reads from, once, and a record that meanwhile names another attempt
    is a lost output."""
    ex = ObjectStoreExchange(qroot, 0, 2)
    for t in range(2):
        assert write(ex, t, 0, {0: batch(t), 1: batch(t, 3)})
    ex.no_more_sinks(2)
    ex.source()                                   # records read: they travel with the pickle
    first = {t: record_of(s3, qroot, 0, t) for t in range(2)}
    pickled = pickle.dumps(ex)
    assert not any(r["inline"].encode() in pickled for r in first.values())
    worker = pickle.loads(pickled)
    assert [r["inline"] for r in worker._records.values()] == [None, None]
    src = worker.source()
    assert pa.Table.from_batches(list(src.read(0))).equals(
        pa.Table.from_batches([batch(0), batch(1)]))
    assert pa.Table.from_batches(list(src.read(1))).equals(
        pa.Table.from_batches([batch(0, 3), batch(1, 3)]))
    ex.invalidate(1, first[1]["attempt"])
    assert write(ex, 1, 1, {0: batch(7), 1: batch(7, 3)})
    stale = pickle.loads(pickle.dumps(worker))    # still names the first attempt of task 1
    with pytest.raises(TaskOutputLostError, match="no longer holds the inline output") as err:
        list(stale.source().read(0))
    assert err.value.task == 1


def test_commit_whose_answer_was_lost_is_recognised(qroot):
    """A commit PUT can reach the store and lose its answer; its retry meets 412. The
    attempt then reads the record back: if it names this attempt, this attempt won."""
    ex = ObjectStoreExchange(qroot, 0, 1)
    record = {"format": 1, "stage": 0, "task": 0, "attempt": "a0-0000abcd",
              "object": qroot.data(0, 0, "a0-0000abcd").key, "size": 0, "etag": None,
              "partitions": [[0, 0, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
                                        "7852b855"]], "rows": 0, "committed_at": 0.0}
    assert run(ex._commit(0, record))                    # the first try: created
    assert run(ex._commit(0, record))                    # its retry: 412, and it is ours
    assert not run(ex._commit(0, {**record, "attempt": "a1-0000abcd",
                                  "object": qroot.data(0, 0, "a1-0000abcd").key}))


def test_commit_records_of_a_query_are_read_at_once(qroot, s3):
    """read_commit_records: every stage's records (the store's listing is the reference),
    an unreadable record as its reason; an exchange given them answers without the store."""
    for stage, tasks in ((0, 3), (2, 1)):
        ex = ObjectStoreExchange(qroot, stage, 2)
        for t in range(tasks):
            assert write(ex, t, 0, {0: batch(t)})
    s3.put_object(Bucket=TEST_BUCKET, Key=qroot.commit(0, 1).key, Body=b"{not json")
    s3.put_object(Bucket=TEST_BUCKET, Key=qroot.key + "commits/0/notes.txt", Body=b"x")
    got = run(read_commit_records(StoreOptions(), qroot))
    listed = [k for k in listing(s3, qroot.key + "commits/") if k.endswith(".json")]
    assert sorted(qroot.commit(s, t).key for s in got for t in got[s]) == sorted(listed)
    assert isinstance(got[0][1], str) and "not a readable manifest" in got[0][1]
    assert got[2][0] == json.loads(s3.get_object(Bucket=TEST_BUCKET,
                                                 Key=qroot.commit(2, 0).key)["Body"].read())
    ex = ObjectStoreExchange(qroot, 0, 2, listed=got[0])
    ex.no_more_sinks(3)
    assert ex.committed_tasks() == {0, 1, 2}
    with pytest.raises(TaskOutputLostError) as err:          # the unreadable record
        ex.source()
    assert (err.value.task, err.value.attempt) == (1, "unreadable-record")
    ex.invalidate(1, "unreadable-record")                     # deletes it; task 1 reruns
    assert ex.committed_tasks() == {0, 2} and write(ex, 1, 1, {0: batch(1)})
    assert pa.Table.from_batches(list(ex.source().read(0))).column("task").to_pylist() == \
        [0] * 100 + [1] * 100 + [2] * 100
