"""The 22 TPC-H queries at scale factor 0.1 read through the S3 rig: Spark plans each query
over the tables' schema stubs (``wj sql``'s catalog: Spark here has no S3A connector), the
executor runs it natively, partition-parallel, reading ``s3://`` with wjio; the result equals
Spark's own result on local copies of the same files (names, types, exact values, and row
order where ORDER BY defines it).

Each side has its own Spark session (``newSession()``: same SparkContext, own temp views), so
the shared session's SF 0.01 views stay as they are. ~2 min in all.
"""

from __future__ import annotations

import pytest

from executor.context import ExecContext
from executor.frontend.catalog import register
from executor.frontend.spark import execute
from spark_conf import tpch
from tests import spark_support
from tests.conftest import TEST_BUCKET
from tests.executor.frontend.test_tpch_native import _rows
from tools.tpch import QUERY_NUMBERS, TABLES, has_order_by, query_name, query_text

SCALE = 0.1
PREFIX = "tpch-sf0.1"


@pytest.fixture(scope="module")
def sf01(tmp_path_factory, s3):
    """The SF 0.1 set, generated locally and uploaded to the rig."""
    out = tmp_path_factory.mktemp("tpch-sf0.1")
    tpch.generate(out, SCALE, threads=2, log=lambda *_: None)
    tpch.upload(out, None, TEST_BUCKET, PREFIX, client=s3, log=lambda *_: None)
    return out


@pytest.fixture(scope="module")
def sessions(spark, sf01):
    """``(native, reference)``: the native side's views are stubs of the s3:// tables, the
    reference side's views read the local files."""
    native = spark.newSession()
    catalog = register(native, {t: f"s3://{TEST_BUCKET}/{PREFIX}/{t}/" for t in TABLES})
    assert catalog.stubs, "Spark here has S3A; this test wants the stub path"
    reference = spark.newSession()
    spark_support.register_tpch(reference, sf01)
    yield native, reference, catalog
    catalog.close()


@pytest.mark.parametrize("qname", [query_name(n) for n in QUERY_NUMBERS])
def test_query_through_the_rig_matches_spark(sessions, qname):
    native, reference, catalog = sessions
    sql = query_text(int(qname[1:]))
    ctx = ExecContext(parallelism=2)
    result = execute(native, sql, ctx=ctx, catalog=catalog)
    assert result.native, f"{qname} fell back: {result.reason}"
    scans = [s for s in ctx.sources.values()]
    assert scans and all(s.requests > 0 for s in scans), "every table was read from the rig"
    expected = spark_support.spark_reference(reference, sql)
    got = result.table
    assert [(f.name, f.type) for f in got.schema] == [(f.name, f.type) for f in expected.schema]
    assert got.num_rows == expected.num_rows
    ordered = has_order_by(sql)
    assert _rows(got, ordered) == _rows(expected, ordered)
