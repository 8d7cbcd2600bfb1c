"""``wj sql`` in this process (the shared Spark session plans): TPC-H tables on the S3 rig read
through wjio, results equal Spark's own on the same files, the report, the output formats, and
bad input (bad --table, malformed SQL, unknown table or column, a fallback Spark cannot run
here, a table that vanished or changed after planning)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_conf.entry import main
from tests import spark_support
from tests.conftest import TEST_BUCKET

# Views are named s_* so the TPC-H views of the shared session stay as they are.
JOIN_QUERY = """
select o_orderpriority, count(*) as n, sum(l_extendedprice * (1 - l_discount)) as revenue,
       avg(l_quantity) as q
from s_orders join s_lineitem on l_orderkey = o_orderkey
where l_shipdate >= date '1995-01-01' and o_orderstatus <> 'P'
group by o_orderpriority order by o_orderpriority"""


@pytest.fixture(scope="module")
def s3_tables(spark, tpch_dir, s3):
    """lineitem and orders uploaded to the rig; ``{view: s3 uri}``."""
    uris = {}
    for table in ("lineitem", "orders"):
        for f in sorted((Path(tpch_dir) / table).glob("*.parquet")):
            key = f"cli-sql/{table}/{f.name}"
            s3.put_object(Bucket=TEST_BUCKET, Key=key, Body=f.read_bytes())
        uris[f"s_{table}"] = f"s3://{TEST_BUCKET}/cli-sql/{table}/"
    return uris


def _args(tables: dict[str, str]) -> list[str]:
    return [a for name, uri in tables.items() for a in ("--table", f"{name}={uri}")]


def _reference(spark, query: str) -> pa.Table:
    local = query.replace("s_orders", "orders").replace("s_lineitem", "lineitem")
    return spark_support.spark_reference(spark, local)


def test_s3_tables_run_natively_and_equal_spark(spark, s3_tables, tmp_path, capsys):
    report = tmp_path / "report.json"
    out = tmp_path / "result.parquet"
    assert main(["sql", JOIN_QUERY, *_args(s3_tables), "--output", str(out),
                 "--report", str(report)]) == 0
    got = pq.read_table(out)
    assert got.equals(_reference(spark, JOIN_QUERY))
    r = json.loads(report.read_text())
    assert r["native"] is True and r["reason"] is None
    assert r["rows"] == got.num_rows == 5
    assert len(r["stages"]) >= 3 and r["tasks"] >= 5  # scans, hash exchange(s), final sort
    assert r["s3_requests"] > 0 and r["s3_bytes_read"] > 0
    assert r["wall_seconds"] > 0 and r["peak_arrow_memory_bytes"] > 0
    assert "ran native" in capsys.readouterr().err


def test_formats_and_explain(spark, s3_tables, capsys):
    query = "select o_orderstatus, count(*) as n from s_orders group by 1 order by 1"
    expected = _reference(spark, query).to_pylist()
    assert main(["sql", query, *_args(s3_tables), "--format", "json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [json.loads(x) for x in lines] == expected
    assert main(["sql", query, *_args(s3_tables), "--format", "csv"]) == 0
    csv = capsys.readouterr().out.strip().splitlines()
    assert csv[0] == '"o_orderstatus","n"' and len(csv) == len(expected) + 1
    assert main(["sql", query, *_args(s3_tables)]) == 0
    grid = capsys.readouterr().out.splitlines()
    assert grid[1].split() == ["|", "o_orderstatus", "|", "n", "|"]
    assert [line.split()[1:4:2] for line in grid[3:-1]] == [
        [r["o_orderstatus"], str(r["n"])] for r in expected]
    assert main(["sql", query, *_args(s3_tables), "--explain"]) == 0
    text = capsys.readouterr().out
    assert "== native plan ==" in text and f"s3://{TEST_BUCKET}/cli-sql/orders/" in text
    assert "== physical plan (parallelism 2) ==" in text and "Exchange hash(2)" in text
    assert "stage 0: 2 task(s), scans tables" in text and "-> result" in text


def test_query_file_and_shell(spark, s3_tables, tmp_path, capsys, monkeypatch):
    q = tmp_path / "q.sql"
    q.write_text("select count(*) as n from s_lineitem")
    assert main(["sql", "--file", str(q), *_args(s3_tables), "--format", "json"]) == 0
    n = _reference(spark, "select count(*) as n from s_lineitem").column("n")[0].as_py()
    assert json.loads(capsys.readouterr().out) == {"n": n}
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO(
        "select count(*) as n\n from s_orders;\nselect 1 + 1 as two;\n"))
    assert main(["sql", *_args(s3_tables), "--format", "json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert rows[1] == {"two": 2} and rows[0]["n"] > 0


@pytest.mark.parametrize("argv, message", [
    (["sql", "select 1", "--table", "nameonly"], "expected NAME=LOCATION"),
    (["sql", "select 1", "--table", "1x=/tmp"], "not a valid table name"),
    (["sql", "select 1", "--table", "t=/no/such/dir"], "no such file or directory"),
    (["sql", "selec * from s_orders"], "Spark: [PARSE_SYNTAX_ERROR]"),
    (["sql", "select * from no_such_table_x"], "Spark: [TABLE_OR_VIEW_NOT_FOUND]"),
    (["sql", "select no_such_col from s_orders"], "Spark: [UNRESOLVED_COLUMN"),
    (["sql", "select o_orderkey from s_orders where o_orderdate"], "Spark: [DATATYPE_MISMATCH"),
])
def test_bad_input_is_one_clear_line(spark, s3_tables, capsys, argv, message):
    if argv[1].startswith("selec") or "s_orders" in argv[1]:
        argv = argv + _args(s3_tables)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_fallback_on_s3_stub_is_refused_not_empty(spark, s3_tables, capsys):
    query = "select sum(try_add(l_quantity, l_tax)) as s from s_lineitem"  # falls back
    assert main(["sql", query, *_args(s3_tables)]) == 2
    err = capsys.readouterr().err
    assert "must run on Spark" in err and "s_lineitem" in err and "evaluation mode TRY" in err


def test_fallback_on_local_tables_runs_on_spark(spark, tpch_dir, tmp_path, capsys):
    report = tmp_path / "r.json"
    query = "select sum(try_add(l_quantity, l_tax)) as s from l_lineitem"
    assert main(["sql", query, "--table", f"l_lineitem={Path(tpch_dir) / 'lineitem'}",
                 "--format", "json", "--report", str(report)]) == 0
    r = json.loads(report.read_text())
    assert r["native"] is False and "evaluation mode TRY" in r["reason"]
    expected = _reference(spark, query.replace("l_lineitem", "lineitem")).to_pylist()
    assert [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()] == [
        {k: str(v) for k, v in row.items()} for row in expected]


def test_table_vanished_or_changed_after_planning(spark, s3_tables, s3, tpch_dir, capsys):
    """Registration lists the files and pins their ETags; deleting or replacing an object
    afterwards is a clear error, never a partial or mixed result."""
    from executor.context import ExecContext
    from executor.frontend.catalog import register
    from executor.frontend.spark import execute
    from wjio.errors import ObjectChangedError, ObjectNotFoundError

    src = sorted((Path(tpch_dir) / "orders").glob("*.parquet"))[0].read_bytes()
    prefix = "cli-sql-change/orders/"
    for i in range(2):
        s3.put_object(Bucket=TEST_BUCKET, Key=f"{prefix}part-{i}.parquet", Body=src)
    catalog = register(spark, {"c_orders": f"s3://{TEST_BUCKET}/{prefix}"})
    query = "select o_orderstatus, count(*) n from c_orders group by 1"
    ctx = ExecContext()
    assert execute(spark, query, ctx=ctx, catalog=catalog).native  # pins the files
    pq_bytes = pa.BufferOutputStream()
    pq.write_table(pq.read_table(pa.BufferReader(src)).slice(0, 10), pq_bytes)
    s3.put_object(Bucket=TEST_BUCKET, Key=f"{prefix}part-1.parquet",
                  Body=pq_bytes.getvalue().to_pybytes())
    with pytest.raises(ObjectChangedError, match="changed since it was planned"):
        execute(spark, query, ctx=ctx, catalog=catalog)
    s3.delete_object(Bucket=TEST_BUCKET, Key=f"{prefix}part-0.parquet")
    s3.delete_object(Bucket=TEST_BUCKET, Key=f"{prefix}part-1.parquet")
    with pytest.raises((ObjectChangedError, ObjectNotFoundError)):
        execute(spark, query, ctx=ExecContext(), catalog=catalog)
    catalog.close()
