"""tools.s3server against unmodified clients: boto3 (plain HTTP) and pyarrow's S3FileSystem."""

from __future__ import annotations

import http.client
import os
from urllib.parse import urlsplit

import pytest

boto3 = pytest.importorskip("boto3")
from botocore.exceptions import ClientError  # noqa: E402

from tools.s3server import S3Server, decode_aws_chunked, parse_range  # noqa: E402

BODY = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def server(tmp_path):
    with S3Server(str(tmp_path / "root"), port=0) as srv:
        yield srv


@pytest.fixture
def s3(server, aws_env):
    client = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1")
    client.create_bucket(Bucket="bkt")
    client.put_object(Bucket="bkt", Key="obj.bin", Body=BODY)
    return client


def _code(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


def test_url_and_port(server):
    parts = urlsplit(server.url)
    assert parts.hostname == "127.0.0.1" and parts.port and parts.port > 0


def test_put_get_head(s3, server):
    obj = s3.get_object(Bucket="bkt", Key="obj.bin")
    assert obj["Body"].read() == BODY
    head = s3.head_object(Bucket="bkt", Key="obj.bin")
    assert head["ContentLength"] == len(BODY)
    assert head["ETag"] == obj["ETag"] and head["ETag"].startswith('"')
    assert head["LastModified"] == obj["LastModified"]
    # the tree on disk is <root>/<bucket>/<key>
    with open(os.path.join(server.store.root, "bkt", "obj.bin"), "rb") as f:
        assert f.read() == BODY
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["bkt"]
    s3.head_bucket(Bucket="bkt")


@pytest.mark.parametrize(("rng", "start", "end"), [
    ("bytes=2-5", 2, 5), ("bytes=10000-", 10000, 10239), ("bytes=-3", 10237, 10239),
    ("bytes=-100000", 0, 10239), ("bytes=10200-99999", 10200, 10239), ("bytes=0-0", 0, 0),
])
def test_ranges(s3, rng, start, end):
    obj = s3.get_object(Bucket="bkt", Key="obj.bin", Range=rng)
    assert obj["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert obj["ContentRange"] == f"bytes {start}-{end}/{len(BODY)}"
    assert obj["Body"].read() == BODY[start:end + 1]


def test_unsatisfiable_range(s3):
    for rng in ("bytes=10240-", "bytes=-0"):
        with pytest.raises(ClientError) as ei:
            s3.get_object(Bucket="bkt", Key="obj.bin", Range=rng)
        assert _code(ei.value) == "InvalidRange"
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_parse_range_unit():
    assert parse_range(None, 10) is None
    assert parse_range("bytes=-4", 10) == (6, 9)
    assert parse_range("bytes=3-1", 10) is None  # invalid -> whole object, like S3
    assert parse_range("bytes=0-1,4-5", 10) is None  # multi-range ignored
    with pytest.raises(Exception, match="InvalidRange"):
        parse_range("bytes=-1", 0)


def test_errors(s3, server):
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket="bkt", Key="missing")
    assert _code(ei.value) == "NoSuchKey"
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket="nobucket", Key="x")
    assert _code(ei.value) == "NoSuchBucket"
    with pytest.raises(ClientError) as ei:
        s3.list_objects_v2(Bucket="nobucket")
    assert _code(ei.value) == "NoSuchBucket"
    with pytest.raises(ClientError) as ei:
        s3.head_object(Bucket="bkt", Key="missing")
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # the XML error body as S3 sends it
    conn = http.client.HTTPConnection(urlsplit(server.url).netloc)
    conn.request("GET", "/bkt/missing")
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 404 and b"<Code>NoSuchKey</Code>" in body
    conn.close()


def test_conditional_get(s3):
    etag = s3.head_object(Bucket="bkt", Key="obj.bin")["ETag"]
    assert s3.get_object(Bucket="bkt", Key="obj.bin", IfMatch=etag)["Body"].read() == BODY
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket="bkt", Key="obj.bin", IfMatch='"0000"')
    assert _code(ei.value) == "PreconditionFailed"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket="bkt", Key="obj.bin", IfNoneMatch=etag)
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    assert s3.get_object(Bucket="bkt", Key="obj.bin", IfNoneMatch='"0000"')["Body"].read()
    # the ETag changes when the object does
    s3.put_object(Bucket="bkt", Key="obj.bin", Body=BODY + b"x")
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket="bkt", Key="obj.bin", IfMatch=etag)
    assert _code(ei.value) == "PreconditionFailed"


KEYS = ["d/a/1", "d/a/2", "d/b/1", "d/c", "d/e/1", "d/e/2/3", "dz", "x y+z/é.txt"]


def _put_keys(s3):
    for k in KEYS:
        s3.put_object(Bucket="bkt", Key=k, Body=k.encode())


def test_list_pagination(s3):
    _put_keys(s3)
    pages = list(s3.get_paginator("list_objects_v2").paginate(
        Bucket="bkt", PaginationConfig={"PageSize": 2}))
    keys = [c["Key"] for p in pages for c in p.get("Contents", [])]
    assert keys == sorted([*KEYS, "obj.bin"])
    assert all(p["KeyCount"] <= 2 for p in pages) and len(pages) == 5
    assert pages[0]["IsTruncated"] and not pages[-1]["IsTruncated"]
    sizes = {c["Key"]: c["Size"] for p in pages for c in p["Contents"]}
    assert sizes["d/c"] == 3 and sizes["obj.bin"] == len(BODY)
    # start-after and prefix
    r = s3.list_objects_v2(Bucket="bkt", Prefix="d/", StartAfter="d/b/1")
    assert [c["Key"] for c in r["Contents"]] == ["d/c", "d/e/1", "d/e/2/3"]
    assert s3.list_objects_v2(Bucket="bkt", Prefix="nothing/")["KeyCount"] == 0


def test_list_delimiter(s3):
    _put_keys(s3)
    r = s3.list_objects_v2(Bucket="bkt", Prefix="d/", Delimiter="/")
    assert [c["Key"] for c in r["Contents"]] == ["d/c"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["d/a/", "d/b/", "d/e/"]
    assert r["KeyCount"] == 4 and not r["IsTruncated"]
    # one entry per page: common prefixes count towards max-keys and are not repeated
    pages = list(s3.get_paginator("list_objects_v2").paginate(
        Bucket="bkt", Prefix="d/", Delimiter="/", PaginationConfig={"PageSize": 1}))
    seen = [e.get("Key") or e.get("Prefix") for p in pages
            for e in p.get("Contents", []) + p.get("CommonPrefixes", [])]
    assert seen == ["d/a/", "d/b/", "d/c", "d/e/"]
    assert all(p["KeyCount"] == 1 for p in pages)
    top = s3.list_objects_v2(Bucket="bkt", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["d/", "x y+z/"]
    assert [c["Key"] for c in top["Contents"]] == ["dz", "obj.bin"]
    # ListObjects v1 with marker pagination
    v1 = list(s3.get_paginator("list_objects").paginate(
        Bucket="bkt", Prefix="d/", PaginationConfig={"PageSize": 2}))
    assert [c["Key"] for p in v1 for c in p["Contents"]] == [k for k in KEYS if k[:2] == "d/"]


def test_special_keys_and_delete(s3):
    _put_keys(s3)
    assert s3.get_object(Bucket="bkt", Key="x y+z/é.txt")["Body"].read() == "x y+z/é.txt".encode()
    s3.delete_object(Bucket="bkt", Key="d/e/2/3")
    s3.delete_object(Bucket="bkt", Key="never-existed")
    r = s3.delete_objects(Bucket="bkt", Delete={"Objects": [{"Key": "d/a/1"}, {"Key": "d/a/2"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["d/a/1", "d/a/2"]
    r = s3.list_objects_v2(Bucket="bkt", Prefix="d/", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["d/b/", "d/e/"]


def test_multipart_copy_and_chunked_uploads(s3, server, tmp_path):
    from boto3.s3.transfer import TransferConfig

    src = tmp_path / "big.bin"
    data = os.urandom(6 << 20)
    src.write_bytes(data)
    cfg = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    s3.upload_file(str(src), "bkt", "mp/big.bin", Config=cfg)
    assert s3.get_object(Bucket="bkt", Key="mp/big.bin")["Body"].read() == data
    s3.copy_object(Bucket="bkt", Key="copy.bin", CopySource={"Bucket": "bkt", "Key": "obj.bin"})
    assert s3.get_object(Bucket="bkt", Key="copy.bin")["Body"].read() == BODY
    # Transfer-Encoding: chunked and aws-chunked bodies (signatures/trailers ignored)
    conn = http.client.HTTPConnection(urlsplit(server.url).netloc)
    conn.request("PUT", "/bkt/te.bin", body=iter([b"hello ", b"world"]),
                 encode_chunked=True)
    assert conn.getresponse().read() == b""
    aws = b"6;chunk-signature=ab\r\nhello \r\n5\r\nworld\r\n0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n"
    conn.request("PUT", "/bkt/aws.bin", body=aws, headers={
        "Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": "11",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER"})
    assert conn.getresponse().status == 200
    conn.close()
    for key in ("te.bin", "aws.bin"):
        assert s3.get_object(Bucket="bkt", Key=key)["Body"].read() == b"hello world"
    assert decode_aws_chunked(b"0\r\n\r\n") == b""


def test_pyarrow_s3filesystem(s3, server):
    pafs = pytest.importorskip("pyarrow.fs")
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    fs = pafs.S3FileSystem(endpoint_override=urlsplit(server.url).netloc, scheme="http",
                           access_key="test", secret_key="test-secret", region="us-east-1")
    table = pa.table({"k": pa.array(range(1000), pa.int64()), "s": [str(i) for i in range(1000)]})
    with fs.open_output_stream("bkt/ds/part-0.parquet") as f:
        pq.write_table(table, f, row_group_size=100)
    with fs.open_output_stream("bkt/ds/part-1.parquet") as f:
        pq.write_table(table, f, row_group_size=100)
    info = fs.get_file_info(pafs.FileSelector("bkt/ds", recursive=True))
    assert sorted(i.path for i in info) == ["bkt/ds/part-0.parquet", "bkt/ds/part-1.parquet"]
    assert fs.get_file_info("bkt/ds").type == pafs.FileType.Directory
    assert fs.get_file_info("bkt/nope").type == pafs.FileType.NotFound
    with fs.open_input_file("bkt/obj.bin") as f:
        assert f.size() == len(BODY)
        assert f.read_at(10, 100) == BODY[100:110]
    got = pq.read_table("bkt/ds/part-0.parquet", filesystem=fs, columns=["s"],
                        filters=pc.field("k") >= 950)
    assert got.column("s").to_pylist() == [str(i) for i in range(950, 1000)]
    assert pq.read_table("bkt/ds/", filesystem=fs).num_rows == 2000
    fs.delete_file("bkt/ds/part-1.parquet")
    assert fs.get_file_info("bkt/ds/part-1.parquet").type == pafs.FileType.NotFound
