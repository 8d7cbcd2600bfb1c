"""Filters over table scans are merged into the scans, so the readers prune row groups: through
the S3 rig, a selective query on a sorted column fetches a fraction of the table, and every
result equals Spark's on a local copy of the same file."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from executor.context import ExecContext
from executor.frontend.catalog import register
from executor.frontend.spark import execute
from executor.ir import relations as rel
from tests import spark_support

ROWS, GROUPS = 80_000, 8


@pytest.fixture(scope="module")
def table() -> pa.Table:
    rng = np.random.default_rng(5)
    k = np.arange(ROWS, dtype=np.int64)  # sorted: each row group holds one k range
    return pa.table({
        "k": k,
        "v": pa.array(rng.integers(-1000, 1000, ROWS), pa.int64()),
        "x": pa.array(rng.random(ROWS) * 100),
        "s": pa.array([f"s{i % 7}" if i % 11 else None for i in range(ROWS)]),
    })


@pytest.fixture(scope="module")
def sessions(spark, table, s3, tmp_path_factory):
    """``(native, reference, catalog, object size)``: the table in the rig (a stub for Spark's
    planner) and as a local file for the reference."""
    from tests.conftest import TEST_BUCKET, parquet_bytes

    key = "scan-filters/t/part-0.parquet"
    body = parquet_bytes(table, row_group_size=ROWS // GROUPS)
    s3.put_object(Bucket=TEST_BUCKET, Key=key, Body=body)
    local = tmp_path_factory.mktemp("scan-filters")
    pq.write_table(table, local / "part-0.parquet", row_group_size=ROWS // GROUPS)
    native = spark.newSession()
    catalog = register(native, {"t": f"s3://{TEST_BUCKET}/scan-filters/t/"})
    reference = spark.newSession()
    reference.read.parquet(str(local)).createOrReplaceTempView("t")
    yield native, reference, catalog, len(body)
    catalog.close()


def _scans(plan: rel.Relation) -> list[rel.Scan]:
    return [n for n in plan.walk() if isinstance(n, rel.Scan)]


def _run(sessions, sql):
    native, reference, catalog, _ = sessions
    ctx = ExecContext(parallelism=2)
    result = execute(native, sql, ctx=ctx, catalog=catalog)
    assert result.native, result.reason
    expected = spark_support.spark_reference(reference, sql)
    assert result.table.schema == expected.schema
    assert sorted(result.table.to_pylist(), key=repr) == sorted(expected.to_pylist(), key=repr)
    (source,) = ctx.sources.values()
    return result, source


def test_selective_filter_is_pushed_and_prunes_row_groups(sessions):
    size = sessions[3]
    result, source = _run(sessions, "select count(*) c, sum(v) s from t where k >= 75000")
    (scan,) = _scans(result.plan)
    assert scan.filter is not None
    assert not any(isinstance(n, rel.Filter) for n in result.plan.walk())
    # k and v of the last of 8 row groups, plus footers: far less than the object
    assert 0 < source.bytes_read < size / 8


def test_partly_pushable_filter_keeps_the_rest_exact(sessions):
    """A float comparison is not pushed (NaN ordering differs from Arrow's); the key range is,
    and the float conjunct is applied after decoding."""
    result, source = _run(sessions,
                          "select k, x, s from t where k between 10 and 9000 and x > 50.0")
    (scan,) = _scans(result.plan)
    assert scan.filter is not None and source.bytes_read > 0


def test_computed_projection_keeps_the_filter_above(sessions):
    """A filter over a computed column stays a Filter; results are the same either way."""
    result, _ = _run(sessions, "select * from (select k + 1 as k1, v from t) where k1 < 100")
    assert result.table.num_rows == 99


def test_null_and_or_conditions(sessions):
    _run(sessions, "select k, s from t where s is null or (k < 50 and s = 's3')")
