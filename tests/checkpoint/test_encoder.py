"""The background encoder: batches encode in the order added, under a byte bound, and an
encoding error fails the attempt before anything is uploaded."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from checkpoint.codec import decode_partition, ipc_options
from checkpoint.encoder import Encoder
from checkpoint.exchange import ObjectStoreExchange
from checkpoint.layout import QueryRoot
from checkpoint.options import CheckpointOptions
from tests.conftest import TEST_BUCKET


def test_batches_encode_in_add_order_under_a_tiny_bound():
    enc = Encoder(ipc_options("zstd"), limit=1)   # every add waits for the previous batch
    rng = np.random.default_rng(5)
    sent: dict[int, list[pa.RecordBatch]] = {0: [], 1: [], 2: []}
    for i in range(60):
        b = pa.record_batch({"i": pa.array(np.full(1000, i)), "x": pa.array(rng.random(1000))})
        enc.add(i % 3, b)
        sent[i % 3].append(b)
    writers = enc.close()
    for p, batches in sent.items():
        got = decode_partition(writers[p].close())
        assert pa.Table.from_batches(got).equals(pa.Table.from_batches(batches))
        assert writers[p].rows == 1000 * len(batches)


def test_encoding_error_fails_the_attempt_and_uploads_nothing(prefix, s3):
    qroot = QueryRoot.create(f"s3://{TEST_BUCKET}/{prefix}ck/", "q-enc")
    ex = ObjectStoreExchange(qroot, 0, 1, options=CheckpointOptions(encode_ahead=1))
    sink = ex.create_sink(0, 0)
    sink.add(0, pa.record_batch({"x": pa.array([1, 2, 3])}))
    # A second schema in one partition's stream: the IPC writer refuses it on the encode pool.
    with pytest.raises(pa.ArrowInvalid):
        sink.add(0, pa.record_batch({"y": pa.array(["a"])}))
        sink.finish()
    assert s3.list_objects_v2(Bucket=TEST_BUCKET, Prefix=qroot.key).get("Contents", []) == []
    assert ex.committed_tasks() == set()
