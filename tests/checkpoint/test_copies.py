"""Local copies of committed outputs: a consumer in the producing process takes what was
committed without a GET, only committed attempts are kept, memory stays within its budget,
and every codec round-trips through the store."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from checkpoint import resume, run_checkpointed
from checkpoint.copies import LocalCopies
from checkpoint.exchange import ObjectStoreExchange
from checkpoint.layout import QueryRoot
from checkpoint.options import CheckpointOptions
from executor import run
from executor.errors import TaskOutputLostError
from tests.checkpoint.conftest import aggregate_plan, sample, single_plan
from tests.checkpoint.test_exchange import OBJECTS, batch, listing, write
from tests.checkpoint.test_faults import _store
from tests.checkpoint.test_query import Events, killed_before
from tests.conftest import TEST_BUCKET
from tools.proxy import ShapingProxy


@pytest.fixture
def qroot(prefix) -> QueryRoot:
    return QueryRoot.create(f"s3://{TEST_BUCKET}/{prefix}ck/", "q-copies")


def _record(s3, qroot: QueryRoot, stage: int, task: int) -> dict:
    return json.loads(s3.get_object(Bucket=TEST_BUCKET, Key=qroot.commit(stage, task).key)
                      ["Body"].read())


def test_consumer_reads_committed_output_from_local_copies(qroot, s3):
    copies = LocalCopies(1 << 20)
    ex = ObjectStoreExchange(qroot, 0, 2, copies=copies, options=OBJECTS)
    for t in range(3):
        assert write(ex, t, 0, {0: batch(t), 1: batch(t, 7)})
    ex.no_more_sinks(3)
    # The store's copy is what was committed: the same bytes the record hashes.
    records = {t: _record(s3, qroot, 0, t) for t in range(3)}
    assert sum(1 for k in listing(s3, qroot.key) if "/data/" in k) == 3
    # Delete the store's objects: the consumer still reads every partition, so it read none
    # of them from the store.
    for r in records.values():
        s3.delete_object(Bucket=TEST_BUCKET, Key=r["object"])
    src = ex.source()
    assert pa.Table.from_batches(list(src.read(1))).equals(
        pa.Table.from_batches([batch(t, 7) for t in range(3)]))
    # Without copies (another process, or a budget of 0) the loss is found and named.
    other = ObjectStoreExchange(qroot, 0, 2, copies=LocalCopies(0), options=OBJECTS)
    other.no_more_sinks(3)
    with pytest.raises(TaskOutputLostError) as err:
        list(other.source().read(0))
    # producers are read in parallel: whichever lost output is found first is named
    assert err.value.stage == 0 and err.value.task in records


@pytest.mark.parametrize("options", [OBJECTS, CheckpointOptions()], ids=["objects", "inline"])
def test_only_the_committed_attempt_is_kept(qroot, s3, options):
    copies = LocalCopies(1 << 20)
    ex = ObjectStoreExchange(qroot, 0, 1, copies=copies, options=options)
    assert write(ex, 0, 0, {0: batch(0)})
    assert not write(ex, 0, 1, {0: batch(99)})          # a late duplicate is discarded
    winner = _record(s3, qroot, 0, 0)
    assert len(copies._entries) == 1
    # Kept under what the record names: the object and its ETag, or (inline) the record's
    # key and the attempt.
    key, version = (qroot.commit(0, 0).key, winner["attempt"]) if "inline" in winner else \
        (winner["object"], winner["etag"])
    assert ("inline" in winner) == (options.inline_max > 0)
    assert copies.get(key, version, 0) == [batch(0)]
    assert copies.get(key, "a1-00000000", 0) is None
    ex.no_more_sinks(1)
    assert pa.Table.from_batches(list(ex.source().read(0))).equals(
        pa.Table.from_batches([batch(0)]))


def test_copies_stay_within_their_budget(qroot):
    one = batch(0, 10)
    size = one.nbytes
    copies = LocalCopies(3 * size)
    copies.put("a", "e", [[one], [one]])
    copies.put("b", "e", [[one]])
    assert copies.size == 3 * size and copies.get("a", "e", 1) == [one]
    copies.put("c", "e", [[one]])                      # the oldest entry makes room
    assert copies.get("a", "e", 0) is None and copies.get("b", "e", 0) == [one]
    assert copies.size == 2 * size
    copies.put("d", "e", [[one] * 4])                  # larger than the budget: not kept
    assert copies.get("d", "e", 0) is None and copies.size == 2 * size
    with pytest.raises(ValueError, match="budget must be >= 0"):
        LocalCopies(-1)
    # A sink whose output outgrows the budget keeps nothing; its consumers read the store.
    small = LocalCopies(size)
    ex = ObjectStoreExchange(qroot, 0, 1, copies=small)
    assert write(ex, 0, 0, {0: batch(0, 200)})
    assert small.size == 0 and len(small._entries) == 0
    ex.no_more_sinks(1)
    assert pa.Table.from_batches(list(ex.source().read(0))).equals(
        pa.Table.from_batches([batch(0, 200)]))


def test_checkpointed_run_reads_no_exchange_data_back(s3_table, root, rig):
    """Through the counting proxy: with local copies the run GETs only its inputs and
    manifests; without them it also GETs every committed partition (which the store had to
    send: more bytes to the client)."""
    t = s3_table("t", sample(4000))
    plan = aggregate_plan(t)
    expected = run(single_plan(t))
    stats = {}
    with ShapingProxy(upstream=rig.endpoint_url, seed=3) as proxy:
        for budget in (0, 1 << 20):
            proxy.reset_stats()
            result = run_checkpointed(plan, root, store=_store(proxy), scan_partitions=4,
                                      options=CheckpointOptions(local_copies=budget,
                                                                inline_max=0))
            assert result.table.equals(expected)
            stats[budget] = proxy.stats()
    # 4 scan tasks x 3 partitions + 3 final tasks x 1 partition + the result: each a GET
    # without copies, at most one per non-empty partition.
    saved = stats[0].get_requests - stats[1 << 20].get_requests
    assert 4 <= saved <= 4 * 3 + 3 + 1
    assert stats[1 << 20].bytes_to_client < stats[0].bytes_to_client


def test_inline_outputs_save_a_put_per_task_and_every_exchange_get(s3_table, root, rig):
    """Through the counting proxy, without local copies: with inline outputs each of the 8
    tasks makes one PUT fewer (no data object), and so does the result (its manifest carries
    it), and no exchange data is read back (the records this run created hold it), compared
    with data objects."""
    t = s3_table("t", sample(4000))
    plan = aggregate_plan(t)
    expected = run(single_plan(t))
    stats = {}
    with ShapingProxy(upstream=rig.endpoint_url, seed=5) as proxy:
        for inline_max in (0, 256 << 10, 0, 256 << 10):   # twice each: the same counts
            proxy.reset_stats()
            events = Events()
            result = run_checkpointed(plan, root, store=_store(proxy), scan_partitions=4,
                                      on_task=events, options=CheckpointOptions(
                                          local_copies=0, inline_max=inline_max))
            assert result.table.equals(expected)
            assert sorted(events.tasks("commit").values()) == [1] * 8
            got = proxy.stats().requests_by_method
            assert stats.setdefault(inline_max, got) == got
    assert stats[0]["PUT"] - stats[256 << 10]["PUT"] == 8 + 1
    # (The inputs are listed by the scans, through their own store: with inline outputs
    # this run's checkpoint makes no GET at all.)
    assert stats[0]["GET"] - stats[256 << 10].get("GET", 0) >= 4 * 3 - 2  # few are empty
    assert sum(stats[0].values()) - sum(stats[256 << 10].values()) >= 8 + 1 + 4 * 3 - 2


@pytest.mark.parametrize("first, then", [("lz4", "zstd"), ("none", "lz4"), ("zstd", "none")])
def test_codecs_round_trip_and_a_query_resumes_with_another(s3_table, root, first, then):
    t = s3_table("t", sample())
    q = killed_before(aggregate_plan(t), root, f"q-{first}", 2, scan_partitions=4,
                      options=CheckpointOptions(codec=first))
    events = Events()
    result = resume(q.uri, on_task=events,
                    options=CheckpointOptions(codec=then))
    assert result.table.equals(run(single_plan(t)))
    assert set(events.tasks("run")) == {(2, 0)}          # stages 0 and 1 were read back


def test_codec_option_is_checked():
    with pytest.raises(ValueError, match="codec must be one of zstd, lz4, none, got 'gzip'"):
        CheckpointOptions(codec="gzip")
    with pytest.raises(ValueError, match="multipart_over"):
        CheckpointOptions(part_size=16 << 20, multipart_over=8 << 20)
    with pytest.raises(ValueError, match="local_copies must be >= 0"):
        CheckpointOptions(local_copies=-1)
    for bad in (-1, (64 << 20) + 1):
        with pytest.raises(ValueError, match=r"inline_max must be 0\.\.multipart_over"):
            CheckpointOptions(inline_max=bad)


def test_lz4_output_is_smaller_than_raw_and_named_in_the_stream(qroot, s3):
    """The codec is what the store holds: an lz4 output of compressible data is smaller
    than an uncompressed one, and pyarrow reads either without being told the codec."""
    rng = np.random.default_rng(0)
    data = pa.record_batch({"x": pa.array(rng.integers(0, 10, 200_000))})
    sizes = {}
    for stage, codec in enumerate(("none", "lz4")):
        ex = ObjectStoreExchange(qroot, stage, 1,
                                 options=CheckpointOptions(codec=codec, inline_max=0))
        assert write(ex, 0, 0, {0: data})
        record = _record(s3, qroot, stage, 0)
        body = s3.get_object(Bucket=TEST_BUCKET, Key=record["object"])["Body"].read()
        assert pa.ipc.open_stream(body).read_all().equals(pa.Table.from_batches([data]))
        sizes[codec] = record["size"]
    assert sizes["lz4"] < sizes["none"] / 2
