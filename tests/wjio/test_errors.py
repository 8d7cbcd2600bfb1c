"""Bad input gets a specific error naming the object and what was expected; never a hang."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import wjio
from tests.conftest import TEST_BUCKET, parquet_bytes
from wjio import errors


def _expect(exc_type, uri, **kwargs):
    with pytest.raises(exc_type) as info:
        wjio.read_parquet(uri, **kwargs)
    message = str(info.value)
    assert uri.rstrip("/").split("/")[-1] in message or TEST_BUCKET in message, message
    _assert_no_secret(message)
    return info.value


def _assert_no_secret(text: str) -> None:
    from wjio.rig import SECRET_KEY

    assert SECRET_KEY not in text


def test_missing_bucket():
    e = _expect(errors.NoSuchBucketError, "s3://no-such-bucket-wjio/x.parquet")
    assert "no-such-bucket-wjio" in str(e) and e.uri


def test_missing_key_and_empty_prefix(prefix):
    e = _expect(errors.ObjectNotFoundError, f"s3://{TEST_BUCKET}/{prefix}missing.parquet")
    assert "missing.parquet" in str(e)
    _expect(errors.ObjectNotFoundError, f"s3://{TEST_BUCKET}/{prefix}")


def test_prefix_with_only_non_data_files(put, prefix):
    put(prefix + "_SUCCESS", b"")
    e = _expect(errors.ObjectNotFoundError, f"s3://{TEST_BUCKET}/{prefix}")
    assert "skipped as non-data" in str(e)


def test_access_denied(put, prefix, monkeypatch, rig):
    uri = put(prefix + "f.parquet", pa.table({"a": [1]}))
    if rig.kind == "moto":
        pytest.skip("moto's server accepts any credentials; covered when MinIO is on PATH")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value")
    e = _expect(errors.AccessDeniedError, uri, store=wjio.StoreOptions(max_connections=2))
    assert "wrong-secret-value" not in str(e)


def test_missing_credentials_is_access_denied(put, prefix, monkeypatch, tmp_path):
    uri = put(prefix + "f.parquet", pa.table({"a": [1]}))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # Clients resolve credentials once: distinct options give a fresh client.
    e = _expect(errors.AccessDeniedError, uri, store=wjio.StoreOptions(max_connections=3))
    assert "credentials" in str(e)


def test_not_parquet(put, prefix):
    uri = put(prefix + "notes.txt", b"hello, this is not parquet at all")
    e = _expect(errors.NotParquetError, uri)
    assert "PAR1" in str(e)


def test_zero_byte_object(put, prefix):
    e = _expect(errors.NotParquetError, put(prefix + "zero.parquet", b""))
    assert "empty (0 bytes)" in str(e)


def test_truncated_file(put, prefix):
    data = parquet_bytes(pa.table({"a": list(range(1000))}))
    e = _expect(errors.NotParquetError, put(prefix + "cut.parquet", data[: len(data) // 2]))
    assert "truncated" in str(e)


def test_footer_length_beyond_object(put, prefix):
    data = bytearray(parquet_bytes(pa.table({"a": list(range(100))})))
    data[-8:-4] = (10**6).to_bytes(4, "little")
    e = _expect(errors.CorruptFooterError, put(prefix + "liar.parquet", bytes(data)))
    assert "claims 1000000 bytes" in str(e)


def test_corrupt_footer_bytes(put, prefix):
    data = bytearray(parquet_bytes(pa.table({"a": list(range(100))})))
    meta_len = int.from_bytes(data[-8:-4], "little")
    data[-8 - meta_len : -8] = b"\xff" * meta_len
    _expect(errors.CorruptFooterError, put(prefix + "garbled.parquet", bytes(data)))


def test_incompatible_schemas_in_one_dataset(put, prefix):
    put(prefix + "part-0.parquet", pa.table({"a": [1, 2], "b": ["x", "y"]}))
    put(prefix + "part-1.parquet", pa.table({"a": ["1", "2"], "b": ["x", "y"]}))
    e = _expect(errors.SchemaMismatchError, f"s3://{TEST_BUCKET}/{prefix}")
    assert "part-1.parquet" in str(e) and "'a'" in str(e)
    put(prefix + "part-2.parquet", pa.table({"z": [1]}))
    _expect(errors.SchemaMismatchError, f"s3://{TEST_BUCKET}/{prefix}")


def test_unknown_column(put, prefix):
    uri = put(prefix + "f.parquet", pa.table({"a": [1], "s": [{"x": 1}]}))
    e = _expect(errors.ColumnNotFoundError, uri, columns=["a", "nope"])
    assert "'nope'" in str(e) and "available columns: a, s" in str(e)
    _expect(errors.ColumnNotFoundError, uri, columns=["s.nope"])
    with pytest.raises(TypeError):
        wjio.read_parquet(uri, columns="a")


@pytest.mark.parametrize(
    "expr",
    [pc.field("nope") > 1, pc.field("a") > "text", pc.field("a") + 1],
    ids=["unknown-field", "type-mismatch", "not-boolean"],
)
def test_invalid_predicate(put, prefix, expr):
    uri = put(prefix + "f.parquet", pa.table({"a": [1, 2, 3]}))
    _expect(errors.InvalidPredicateError, uri, filter=expr)


def test_invalid_filter_arguments(put, prefix):
    uri = put(prefix + "f.parquet", pa.table({"a": [1, 2, 3]}))
    with pytest.raises(errors.InvalidPredicateError):
        wjio.read_parquet(uri, filter="a > 1")
    with pytest.raises(errors.InvalidPredicateError):
        wjio.read_parquet(uri, filters=[("a", "~~", 1)])
    with pytest.raises(ValueError, match="not both"):
        wjio.read_parquet(uri, filter=pc.field("a") > 1, filters=[("a", ">", 1)])


def test_not_an_s3_uri():
    with pytest.raises(ValueError, match="s3://bucket/key"):
        wjio.ParquetScan("/local/path.parquet")


def test_unreachable_endpoint_fails_fast():
    store = wjio.StoreOptions(
        endpoint_url="http://127.0.0.1:9", max_attempts=2, connect_timeout_s=1, backoff_base_s=0.01
    )
    with pytest.raises(errors.StoreUnavailableError, match="failed after 2 attempts") as info:
        wjio.read_parquet(f"s3://{TEST_BUCKET}/x.parquet", store=store)
    _assert_no_signed_url(info.value)


def _assert_no_signed_url(exc: BaseException) -> None:
    """Range GETs use presigned URLs: their query (credential, token) must never surface."""
    while exc is not None:
        assert "X-Amz-" not in str(exc) and "Signature" not in str(exc), str(exc)
        exc = exc.__cause__ or exc.__context__


def test_redaction_of_signed_queries():
    from wjio.store import _redact

    text = "Cannot GET http://h:1/b/k?X-Amz-Algorithm=A&X-Amz-Credential=AKIA%2F&X-Amz-Signature=f"
    assert _redact(text) == "Cannot GET http://h:1/b/k?<signed>"


def test_options_repr_hides_credentials():
    opts = wjio.StoreOptions(aws_access_key_id="AKIAXXXX", aws_secret_access_key="s3cr3t")
    assert "s3cr3t" not in repr(opts) and "AKIAXXXX" not in repr(opts)
