"""tools.datagen at tiny scale: schema, row groups, determinism and case-(b) pruning."""

from __future__ import annotations

import hashlib
import os

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tools import datagen

SCALE = 0.002  # ~89 rows per row group


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("bench-data"))
    manifest = datagen.generate(out, ("a", "c"), SCALE, log=lambda *_: None)
    return out, manifest


def _path(out, manifest, key):
    return os.path.join(out, manifest["bucket"], *key.split("/"))


def test_case_a_layout(generated):
    out, manifest = generated
    path = _path(out, manifest, "case_a/data.parquet")
    pf = pq.ParquetFile(path)
    md = pf.metadata
    rows = datagen.rows_per_rg(SCALE)
    assert manifest["rows_per_row_group"] == rows
    assert md.num_row_groups == datagen.CASE_A_ROW_GROUPS == 32
    assert md.num_columns == 24 and pf.schema_arrow == datagen.SCHEMA
    assert all(md.row_group(g).num_rows == rows for g in range(32))
    assert md.row_group(0).column(0).compression == "SNAPPY"
    kinds = {str(f.type) for f in datagen.SCHEMA}
    assert {"int64", "int32", "double", "string", "bool", "timestamp[us]",
            "decimal128(18, 2)", "date32[day]"} <= kinds
    status = md.row_group(0).column(datagen.SCHEMA.get_field_index("status"))
    assert "RLE_DICTIONARY" in status.encodings
    k = pq.read_table(path, columns=["k"]).column("k").to_numpy()
    assert k[0] == datagen.K0 and (k[1:] - k[:-1] == 1).all()
    assert manifest["files"]["a"]["case_a/data.parquet"] == os.path.getsize(path)


def test_case_c_layout(generated):
    out, manifest = generated
    keys = datagen.case_keys("c")
    assert len(keys) == 16 and sorted(manifest["files"]["c"]) == keys
    prev_max = None
    for key in keys:
        md = pq.ParquetFile(_path(out, manifest, key)).metadata
        assert md.num_row_groups == datagen.CASE_C_ROW_GROUPS_PER_FILE
        assert md.schema.to_arrow_schema() == datagen.SCHEMA
        st = md.row_group(0).column(0).statistics
        assert prev_max is None or st.min == prev_max + 1  # k continues across files
        prev_max = md.row_group(md.num_row_groups - 1).column(0).statistics.max
    table = ds.dataset(os.path.dirname(_path(out, manifest, keys[0]))).to_table()
    assert table.num_rows == 16 * 4 * datagen.rows_per_rg(SCALE)


def test_case_b_predicate_prunes_to_3_of_32(generated):
    out, manifest = generated
    path = _path(out, manifest, "case_a/data.parquet")
    lo, hi = manifest["case_b_bounds"]
    md = pq.ParquetFile(path).metadata
    kept = [g for g in range(md.num_row_groups)
            if not (md.row_group(g).column(0).statistics.max < lo
                    or md.row_group(g).column(0).statistics.min >= hi)]
    assert kept == [10, 11, 12]
    # pyarrow's own statistics-based pruning agrees, and the surviving row groups are all rows
    frag = next(ds.dataset(path).get_fragments())
    expr = datagen.case_b_filter(manifest["rows_per_row_group"])
    assert [f.row_groups[0].id for f in frag.split_by_row_group(expr)] == [10, 11, 12]
    rows = pq.read_table(path, columns=["k"], filters=expr).num_rows
    assert rows == 3 * manifest["rows_per_row_group"]


def test_bench_needed_bytes_matches_statistics(generated):
    from tools.bench import readers

    out, manifest = generated
    cases = {c.name: c for c in readers.make_cases(out, manifest, ["a", "b", "c"])}
    a, b, c = (readers.needed_bytes(cases[n]) for n in "abc")
    assert (a["row_groups_kept"], b["row_groups_kept"], c["row_groups_kept"]) == (32, 3, 64)
    assert b["bytes_needed"] < a["bytes_needed"] < a["bytes_all_chunks"]
    assert c["bytes_needed"] == c["bytes_all_chunks"]
    md = pq.ParquetFile(cases["a"].local_path).metadata
    proj = [datagen.SCHEMA.get_field_index(n) for n in datagen.PROJECTION]
    assert b["bytes_needed"] == sum(md.row_group(g).column(i).total_compressed_size
                                    for g in (10, 11, 12) for i in proj)


def test_deterministic_and_idempotent(generated, tmp_path):
    out, manifest = generated
    again = datagen.generate(str(tmp_path), ("a",), SCALE, log=lambda *_: None)
    assert again["files"]["a"] == manifest["files"]["a"]

    def digest(root):
        with open(os.path.join(root, "wjbench", "case_a", "data.parquet"), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    assert digest(str(tmp_path)) == digest(out)
    path = os.path.join(str(tmp_path), "wjbench", "case_a", "data.parquet")
    before = os.stat(path).st_mtime_ns
    datagen.generate(str(tmp_path), ("a",), SCALE, log=lambda *_: None)
    assert os.stat(path).st_mtime_ns == before


def test_make_table_rows():
    t = datagen.make_table(100, 50)
    assert t.num_rows == 50 and t.schema == datagen.SCHEMA
    assert t.column("k").to_pylist() == list(range(datagen.K0 + 100, datagen.K0 + 150))
    assert t.column("amount").type == pa.decimal128(18, 2)
    assert t.equals(datagen.make_table(100, 50))


def test_upload_to_s3server(generated, tmp_path, monkeypatch):
    pytest.importorskip("boto3")
    from tools.s3server import S3Server

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    out, manifest = generated
    with S3Server(str(tmp_path / "remote")) as srv:
        datagen.upload(out, srv.url, cases=("a",), log=lambda *_: None)
        uploaded = tmp_path / "remote" / "wjbench" / "case_a" / "data.parquet"
        assert uploaded.stat().st_size == manifest["files"]["a"]["case_a/data.parquet"]
