"""``wj sql --checkpoint``: a Spark-planned TPC-H query runs through the object store, prints
its query root first, equals Spark's own answer, and ``wj resume``/``wj status`` find it."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from checkpoint.layout import QueryRoot
from spark_conf.entry import main
from tests import spark_support
from tests.checkpoint.test_query import keys
from tests.conftest import TEST_BUCKET
from tests.tpch.conftest import spark, tpch_dir  # noqa: F401  (fixtures)

QUERY = """
select o_orderpriority, count(*) as n, sum(l_extendedprice * (1 - l_discount)) as revenue
from ck_orders join ck_lineitem on l_orderkey = o_orderkey
where l_shipdate >= date '1995-01-01'
group by o_orderpriority order by o_orderpriority"""


@pytest.fixture
def tables(tpch_dir, s3, prefix):  # noqa: F811
    args = []
    for table in ("lineitem", "orders"):
        for f in sorted((Path(tpch_dir) / table).glob("*.parquet")):
            s3.put_object(Bucket=TEST_BUCKET, Key=f"{prefix}{table}/{f.name}",
                          Body=f.read_bytes())
        args += ["--table", f"ck_{table}=s3://{TEST_BUCKET}/{prefix}{table}/"]
    return args


def test_sql_checkpoint_then_resume_and_status(spark, tables, root, capsys, s3):  # noqa: F811
    code = main(["sql", QUERY, *tables, "--checkpoint", root, "--format", "json",
                 "--report", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    first = err.splitlines()[0]
    assert first.startswith(f"wj sql: checkpoint {root}q-"), err
    query_uri = first.split()[-1]
    rows = [json.loads(line) for line in out.splitlines()]
    reference = spark_support.spark_reference(
        spark, QUERY.replace("ck_orders", "orders").replace("ck_lineitem", "lineitem"))
    assert rows == json.loads(json.dumps(reference.to_pylist(), default=str))
    report = json.loads(err[err.index("{"):err.rindex("}") + 1])
    assert report["checkpoint"] == query_uri

    q = QueryRoot.parse(query_uri)
    listed = keys(s3, q)
    assert "plan.json" in listed and "result/result.json" in listed
    assert main(["status", query_uri, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "done" and status["committed"] == status["tasks"] == \
        sum(1 for k in listed if k.startswith("commits/"))
    assert main(["resume", query_uri, "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == rows
    assert "read the committed result" in err
    assert pa.table({"n": [r["n"] for r in rows]}).num_rows == reference.num_rows
