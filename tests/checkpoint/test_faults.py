"""Store faults injected by the shaping proxy (tools/proxy.py) between the checkpoint store
and the rig: throttling, errors, resets and truncated answers on writes and reads are retried
and the answer stays right; a write that keeps failing is aborted and leaves nothing."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from checkpoint import resume, run_checkpointed
from checkpoint.exchange import ObjectStoreExchange
from checkpoint.layout import QueryRoot
from checkpoint.options import CheckpointOptions, MiB
from executor import run
from executor.context import ExecContext
from executor.sources import open_source
from tests.checkpoint.conftest import aggregate_plan, sample, single_plan
from tests.checkpoint.test_query import Events
from tests.conftest import TEST_BUCKET
from tools.proxy import Faults, ShapingProxy
from wjio import errors
from wjio.options import StoreOptions

ALL = ("GET", "PUT", "POST", "HEAD", "DELETE")


@pytest.fixture
def proxy(rig):
    with ShapingProxy(upstream=rig.endpoint_url, seed=7) as p:
        yield p


def _store(proxy, **kw) -> StoreOptions:
    # A tiny backoff keeps fault tests fast; the policy itself is the production one.
    return StoreOptions(endpoint_url=proxy.url, backoff_base_s=0.005, backoff_cap_s=0.05, **kw)


@pytest.mark.parametrize("faults", [
    Faults(slowdown_503=0.15, error_500=0.1, methods=ALL),
    # Resets and truncations only show on answers with a body (a PUT's empty answer is
    # complete once its head is sent): they hit the consumers' reads and the manifests'.
    Faults(reset_mid_body=0.15, truncate_body=0.15, methods=ALL),
], ids=["throttled", "resets-and-truncations"])
def test_checkpointed_query_survives_store_faults(s3_table, root, proxy, faults):
    t = s3_table("t", sample())
    plan = aggregate_plan(t)
    proxy.set_faults(faults)
    events = Events()
    # The scans read through the proxy too: they list the inputs plan.json records.
    store = _store(proxy, max_attempts=12)
    ctx = ExecContext(source_factory=lambda uri: open_source(uri, store))
    result = run_checkpointed(plan, root, ctx, store=store, scan_partitions=4,
                              on_task=events)
    injected = proxy.stats().faults_injected
    assert sum(injected.values()) >= 5, injected
    assert {m for m in proxy.stats().requests_by_method} >= {"PUT", "GET"}
    assert result.table.equals(run(single_plan(t)))
    # Faults are retried inside each request: no task had to run twice, none was lost.
    assert set(events.tasks("run").values()) == {1}
    assert events.tasks("lost") == {} and events.tasks("discard") == {}
    # And what was committed through the faults reads back, directly from the rig.
    proxy.set_faults(Faults())
    assert resume(result.root.uri).table.equals(result.table)


def test_upload_that_keeps_failing_is_aborted(prefix, proxy, s3):
    qroot = QueryRoot.create(f"s3://{TEST_BUCKET}/{prefix}ck/", "q-abort")
    ex = ObjectStoreExchange(qroot, 0, 1, store=_store(proxy, max_attempts=2),
                             options=CheckpointOptions(part_size=5 * MiB,
                                                       multipart_over=5 * MiB))
    sink = ex.create_sink(0, 0)
    sink.add(0, pa.record_batch({"x": pa.array(np.random.default_rng(1).random(1_400_000))}))
    proxy.set_faults(Faults(methods=("PUT",), slowdown_503=1.0))   # every part is refused
    with pytest.raises(errors.StoreUnavailableError):
        sink.finish()
    proxy.set_faults(Faults())
    assert s3.list_multipart_uploads(Bucket=TEST_BUCKET, Prefix=qroot.key).get("Uploads",
                                                                              []) == []
    assert s3.list_objects_v2(Bucket=TEST_BUCKET, Prefix=qroot.key).get("Contents", []) == []
    assert ex.committed_tasks() == set()
