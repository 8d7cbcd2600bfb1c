"""A small, fast, S3-compatible HTTP endpoint serving a local directory tree (for benchmarks/tests).

Layout: ``<root>/<bucket>/<key>``; path-style addressing only (``http://127.0.0.1:PORT/bucket/key``;
botocore picks path style by itself for IP endpoints). Signatures are ignored (any credentials
work). Object bodies are served with ``loop.sendfile`` (kernel ``sendfile(2)``, no copies through
Python), connections are kept alive, and one asyncio loop multiplexes any number of connections.

Implemented: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
ListObjectsV2 (prefix, delimiter/CommonPrefixes, max-keys, continuation-token, start-after,
encoding-type=url) and ListObjects v1 (marker), HeadObject, GetObject (``Range``: ``bytes=a-b``,
``bytes=a-``, suffix ``bytes=-N``; 206 + Content-Range; 416 InvalidRange; If-Match -> 412,
If-None-Match -> 304), PutObject (plain, ``Transfer-Encoding:
chunked`` and ``aws-chunked`` bodies, ``If-None-Match: *``), CopyObject, DeleteObject,
DeleteObjects, multipart uploads (create/upload part/complete/abort).

ETags are derived from (size, mtime_ns) so files dropped into the tree directly get stable ETags
without hashing them; they are *not* MD5s of the content. A key ending in ``/`` (a "directory
marker") is stored as a directory holding a hidden marker file. A key that is both an object and
a prefix of other keys (``a`` and ``a/b``) cannot be represented and is rejected with 409.

    python -m tools.s3server --root DIR [--host 127.0.0.1] [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import email.utils
import hashlib
import json
import os
import re
import shutil
import signal
import threading
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
REGION = "us-east-1"
MARKER = ".s3server-dirmarker"  # file standing for the key "<dir>/"
INTERNAL = ".s3server"  # prefix of internal names at the root (tmp files, multipart parts)
SMALL_BODY = 64 * 1024  # bodies up to this size are sent with the header in one write
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_LIST_PARAMS = {"list-type", "prefix", "delimiter", "max-keys", "continuation-token", "marker",
                "start-after", "encoding-type", "fetch-owner", "x-id"}


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: str):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass
class FileBody:
    path: str
    offset: int
    count: int


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes | FileBody = b""


def etag_of(st: os.stat_result) -> str:
    return '"' + hashlib.md5(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest() + '"'


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".000Z"


def _xml(root: str, inner: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NS}">{inner}</{root}>'
            ).encode()


def _el(name: str, value: object) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{name}>{escape(str(value))}</{name}>"


def _etags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/").strip('"') for t in header.split(",")]


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Return (start, end_inclusive) for a satisfiable single range, None to send the whole
    object (no/ignored header, as S3 ignores malformed and multi-range headers); raises 416."""
    if not header:
        return None
    m = _RANGE_RE.match(header.strip().replace(" ", ""))
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise _range_error(size)
        return max(0, size - n), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise _range_error(size)
    return start, min(end, size - 1)


def _range_error(size: int) -> S3Error:
    return S3Error(416, "InvalidRange", "The requested range is not satisfiable",
                   RangeRequested="", ActualObjectSize=str(size))


def decode_aws_chunked(data: bytes) -> bytes:
    """Decode an ``aws-chunked`` body: ``hex[;chunk-signature=..]\\r\\n<data>\\r\\n`` ... ``0``
    then optional trailers (checksums, ignored)."""
    out, pos = bytearray(), 0
    while True:
        eol = data.index(b"\r\n", pos)
        size = int(data[pos:eol].split(b";", 1)[0].strip(), 16)
        pos = eol + 2
        if size == 0:
            return bytes(out)
        out += data[pos:pos + size]
        pos += size + 2


class Store:
    """Maps S3 operations onto the directory tree."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)
        self.tmp = os.path.join(self.root, INTERNAL + "-tmp")
        self.uploads = os.path.join(self.root, INTERNAL + "-uploads")

    # ---- paths -------------------------------------------------------------------------------
    def bucket_path(self, bucket: str, must_exist: bool = True) -> str:
        if not bucket or bucket.startswith(".") or "/" in bucket or bucket in ("..",):
            raise S3Error(400, "InvalidBucketName", "The specified bucket is not valid.")
        path = os.path.join(self.root, bucket)
        if must_exist and not os.path.isdir(path):
            raise S3Error(404, "NoSuchBucket", "The specified bucket does not exist",
                          BucketName=bucket)
        return path

    def key_path(self, bucket: str, key: str) -> str:
        base = self.bucket_path(bucket)
        parts = key.split("/")
        is_dir = key.endswith("/")
        if is_dir:
            parts = parts[:-1]
        if not key or any(p in ("", ".", "..") or "\0" in p for p in parts) or (
                parts and parts[-1] == MARKER):
            raise S3Error(400, "InvalidArgument", f"Unsupported key {key!r}", Key=key)
        path = os.path.join(base, *parts)
        return os.path.join(path, MARKER) if is_dir else path

    def stat_object(self, bucket: str, key: str) -> tuple[str, os.stat_result]:
        path = self.key_path(bucket, key)
        if not os.path.isfile(path):
            raise S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        return path, os.stat(path)

    # ---- writes ------------------------------------------------------------------------------
    def write_object(self, bucket: str, key: str, chunks, if_none_match: str | None = None
                     ) -> os.stat_result:
        path = self.key_path(bucket, key)
        if if_none_match and if_none_match.strip() == "*" and os.path.isfile(path):
            raise S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you "
                          "specified did not hold", Condition="If-None-Match")
        if os.path.isdir(path):
            raise S3Error(409, "OperationAborted", "Key is a prefix of existing keys", Key=key)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise S3Error(409, "OperationAborted", "A prefix of the key is an object",
                          Key=key) from exc
        os.makedirs(self.tmp, exist_ok=True)
        tmp = os.path.join(self.tmp, uuid.uuid4().hex)
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(tmp, path)
        return os.stat(path)

    def delete_object(self, bucket: str, key: str) -> None:
        path = self.key_path(bucket, key)
        base = self.bucket_path(bucket)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            os.remove(path)
        d = os.path.dirname(path)
        while d != base and d.startswith(base):  # prune now-empty "prefix" directories
            try:
                os.rmdir(d)
            except OSError:
                break
            d = os.path.dirname(d)

    # ---- listing -----------------------------------------------------------------------------
    def iter_keys(self, bucket: str, prefix: str) -> list[tuple[str, os.stat_result]]:
        base = self.bucket_path(bucket)
        start = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = os.path.join(base, *[p for p in start.split("/") if p]) if start else base
        out = []
        if not os.path.isdir(top):
            return out
        stack = [top]
        while stack:
            d = stack.pop()
            rel = os.path.relpath(d, base).replace(os.sep, "/")
            rel = "" if rel == "." else rel + "/"
            with os.scandir(d) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                        continue
                    key = rel if e.name == MARKER else rel + e.name
                    if key and key.startswith(prefix):
                        out.append((key, e.stat()))
        out.sort(key=lambda kv: kv[0])
        return out


def _list_page(keys, prefix: str, delimiter: str, after: str, after_is_cp: bool, max_keys: int):
    """One page of a listing. Returns (contents, common_prefixes, truncated, last, last_is_cp)."""
    contents, cps = [], []
    last, last_is_cp = None, False
    truncated = False
    for key, st in keys:
        if after and (key <= after or (after_is_cp and key.startswith(after))):
            continue
        if delimiter:
            idx = key.find(delimiter, len(prefix))
            if idx >= 0:
                cp = key[: idx + len(delimiter)]
                if cps and cps[-1] == cp:
                    continue
                if len(contents) + len(cps) >= max_keys:
                    truncated = True
                    break
                cps.append(cp)
                last, last_is_cp = cp, True
                continue
        if len(contents) + len(cps) >= max_keys:
            truncated = True
            break
        contents.append((key, st))
        last, last_is_cp = key, False
    return contents, cps, truncated, last, last_is_cp


class Handler:
    def __init__(self, store: Store):
        self.store = store

    async def handle(self, method: str, target: str, headers: dict[str, str], body: bytes
                     ) -> Response:
        split = urlsplit(target)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        path = unquote(split.path)
        bucket, _, key = path.lstrip("/").partition("/")
        if not bucket:
            if method in ("GET", "HEAD"):
                return self.list_buckets()
            raise S3Error(405, "MethodNotAllowed", "Method not allowed on service")
        if not key:
            return self.bucket_op(method, bucket, query, headers, body)
        return self.object_op(method, bucket, key, query, headers, body)

    # ---- service / bucket ----------------------------------------------------------------------
    def list_buckets(self) -> Response:
        items = []
        for name in sorted(os.listdir(self.store.root)):
            p = os.path.join(self.store.root, name)
            if not name.startswith(".") and os.path.isdir(p):
                items.append("<Bucket>" + _el("Name", name)
                             + _el("CreationDate", _iso(os.stat(p).st_mtime)) + "</Bucket>")
        inner = ("<Owner><ID>wjio</ID><DisplayName>wjio</DisplayName></Owner><Buckets>"
                 + "".join(items) + "</Buckets>")
        return _ok_xml(_xml("ListAllMyBucketsResult", inner))

    def bucket_op(self, method, bucket, query, headers, body) -> Response:
        store = self.store
        if method == "PUT":
            os.makedirs(store.bucket_path(bucket, must_exist=False), exist_ok=True)
            return Response(200, {"Location": "/" + bucket, "Content-Length": "0"})
        path = store.bucket_path(bucket)
        if method == "HEAD":
            return Response(200, {"x-amz-bucket-region": REGION, "Content-Length": "0"})
        if method == "DELETE":
            if store.iter_keys(bucket, ""):
                raise S3Error(409, "BucketNotEmpty", "The bucket is not empty", BucketName=bucket)
            shutil.rmtree(path)
            return Response(204, {})
        if method == "POST" and "delete" in query:
            return self.delete_objects(bucket, body)
        if method != "GET":
            raise S3Error(405, "MethodNotAllowed", f"{method} not allowed on bucket")
        if "location" in query:
            return _ok_xml(_xml("LocationConstraint", ""))
        if "uploads" in query:
            return _ok_xml(_xml("ListMultipartUploadsResult", _el("Bucket", bucket)
                                + _el("IsTruncated", False)))
        unsupported = sorted(set(query) - _LIST_PARAMS)
        if unsupported:
            raise S3Error(501, "NotImplemented", f"?{unsupported[0]} is not implemented")
        return self.list_objects(bucket, query)

    def list_objects(self, bucket: str, q: dict[str, str]) -> Response:
        v2 = q.get("list-type") == "2"
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        try:
            max_keys = max(0, min(1000, int(q.get("max-keys", "1000"))))
        except ValueError as exc:
            raise S3Error(400, "InvalidArgument", "max-keys must be an integer") from exc
        enc = q.get("encoding-type") == "url"

        def k(s: str) -> str:
            return quote(s, safe="/") if enc else s

        after, after_is_cp = "", False
        if v2:
            token = q.get("continuation-token")
            if token:
                try:
                    state = json.loads(base64.urlsafe_b64decode(token.encode()))
                    after, after_is_cp = state["k"], bool(state["cp"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise S3Error(400, "InvalidArgument",
                                  "The continuation token provided is incorrect") from exc
            elif q.get("start-after"):
                after = q["start-after"]
        else:
            after = q.get("marker", "")
            after_is_cp = bool(delimiter) and after.endswith(delimiter)
        keys = self.store.iter_keys(bucket, prefix) if max_keys else []
        contents, cps, truncated, last, last_is_cp = _list_page(
            keys, prefix, delimiter, after, after_is_cp, max_keys)
        parts = [_el("Name", bucket), _el("Prefix", k(prefix))]
        if delimiter:
            parts.append(_el("Delimiter", k(delimiter)))
        parts += [_el("MaxKeys", max_keys), _el("IsTruncated", truncated)]
        if enc:
            parts.append(_el("EncodingType", "url"))
        if v2:
            parts.append(_el("KeyCount", len(contents) + len(cps)))
            if q.get("continuation-token"):
                parts.append(_el("ContinuationToken", q["continuation-token"]))
            if q.get("start-after"):
                parts.append(_el("StartAfter", k(q["start-after"])))
            if truncated:
                tok = json.dumps({"k": last, "cp": last_is_cp}).encode()
                parts.append(_el("NextContinuationToken", base64.urlsafe_b64encode(tok).decode()))
        else:
            parts.append(_el("Marker", k(q.get("marker", ""))))
            if truncated:
                parts.append(_el("NextMarker", k(last)))
        for key, st in contents:
            parts.append("<Contents>" + _el("Key", k(key)) + _el("LastModified", _iso(st.st_mtime))
                         + _el("ETag", etag_of(st)) + _el("Size", st.st_size)
                         + "<Owner><ID>wjio</ID><DisplayName>wjio</DisplayName></Owner>"
                         + _el("StorageClass", "STANDARD") + "</Contents>")
        for cp in cps:
            parts.append("<CommonPrefixes>" + _el("Prefix", k(cp)) + "</CommonPrefixes>")
        return _ok_xml(_xml("ListBucketResult", "".join(parts)))

    def delete_objects(self, bucket: str, body: bytes) -> Response:
        doc = ElementTree.fromstring(body)
        quiet = any(e.text == "true" for e in doc.iter() if e.tag.endswith("Quiet"))
        done = []
        for obj in doc.iter():
            if obj.tag.endswith("Object"):
                key = next(e.text for e in obj if e.tag.endswith("Key"))
                self.store.delete_object(bucket, key)
                done.append(key)
        inner = "" if quiet else "".join(f"<Deleted>{_el('Key', k)}</Deleted>" for k in done)
        return _ok_xml(_xml("DeleteResult", inner))

    # ---- objects -----------------------------------------------------------------------------
    def object_op(self, method, bucket, key, query, headers, body) -> Response:
        store = self.store
        if "uploadId" in query or "uploads" in query:
            return self.multipart(method, bucket, key, query, body)
        if method in ("GET", "HEAD"):
            return self.get_object(method, bucket, key, headers)
        if method == "PUT":
            src = headers.get("x-amz-copy-source")
            if src:
                sbucket, _, skey = unquote(src.split("?", 1)[0]).lstrip("/").partition("/")
                spath, _ = store.stat_object(sbucket, skey)
                with open(spath, "rb") as f:
                    st = store.write_object(bucket, key, iter(lambda: f.read(1 << 20), b""))
                inner = _el("LastModified", _iso(st.st_mtime)) + _el("ETag", etag_of(st))
                return _ok_xml(_xml("CopyObjectResult", inner))
            store.bucket_path(bucket)
            st = store.write_object(bucket, key, [body], headers.get("if-none-match"))
            return Response(200, {"ETag": etag_of(st), "Content-Length": "0"})
        if method == "DELETE":
            store.bucket_path(bucket)
            store.delete_object(bucket, key)
            return Response(204, {})
        raise S3Error(405, "MethodNotAllowed", f"{method} not allowed on object")

    def get_object(self, method, bucket, key, headers) -> Response:
        path, st = self.store.stat_object(bucket, key)
        etag = etag_of(st)
        meta = {"ETag": etag, "Last-Modified": email.utils.formatdate(st.st_mtime, usegmt=True),
                "Accept-Ranges": "bytes"}
        _check_conditions(headers, etag[1:-1], meta)
        size = st.st_size
        rng = parse_range(headers.get("range"), size)
        meta["Content-Type"] = "binary/octet-stream"
        if rng is None:
            start, count, status = 0, size, 200
        else:
            start, count, status = rng[0], rng[1] - rng[0] + 1, 206
            meta["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{size}"
        meta["Content-Length"] = str(count)
        if method == "HEAD":
            return Response(status, meta)
        return Response(status, meta, FileBody(path, start, count))

    def multipart(self, method, bucket, key, query, body) -> Response:
        store = self.store
        store.key_path(bucket, key)
        if method == "POST" and "uploads" in query:
            upload_id = uuid.uuid4().hex
            os.makedirs(os.path.join(store.uploads, upload_id))
            inner = _el("Bucket", bucket) + _el("Key", key) + _el("UploadId", upload_id)
            return _ok_xml(_xml("InitiateMultipartUploadResult", inner))
        upload_id = query["uploadId"]
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id) or not os.path.isdir(
                os.path.join(store.uploads, upload_id)):
            raise S3Error(404, "NoSuchUpload", "The specified upload does not exist.")
        updir = os.path.join(store.uploads, upload_id)
        if method == "PUT":
            num = int(query["partNumber"])
            with open(os.path.join(updir, f"{num:05d}"), "wb") as f:
                f.write(body)
            return Response(200, {"ETag": '"' + hashlib.md5(body).hexdigest() + '"',
                                  "Content-Length": "0"})
        if method == "DELETE":
            shutil.rmtree(updir, ignore_errors=True)
            return Response(204, {})
        if method == "POST":
            doc = ElementTree.fromstring(body)
            nums = [int(e.text) for e in doc.iter() if e.tag.endswith("PartNumber")]

            def chunks():
                for n in nums:
                    with open(os.path.join(updir, f"{n:05d}"), "rb") as f:
                        yield from iter(lambda: f.read(1 << 20), b"")

            try:
                st = store.write_object(bucket, key, chunks())
            except FileNotFoundError as exc:
                raise S3Error(400, "InvalidPart", "One or more parts could not be found") from exc
            shutil.rmtree(updir, ignore_errors=True)
            inner = (_el("Location", f"/{bucket}/{key}") + _el("Bucket", bucket) + _el("Key", key)
                     + _el("ETag", etag_of(st)))
            return _ok_xml(_xml("CompleteMultipartUploadResult", inner))
        raise S3Error(405, "MethodNotAllowed", f"{method} not allowed on upload")


def _check_conditions(headers, etag: str, meta: dict[str, str]) -> None:
    """If-Match mismatch -> 412; If-None-Match match -> 304 (date conditions are ignored)."""
    im, inm = headers.get("if-match"), headers.get("if-none-match")
    if im is not None and "*" not in _etags(im) and etag not in _etags(im):
        raise S3Error(412, "PreconditionFailed", "At least one of the pre-conditions you "
                      "specified did not hold", Condition="If-Match")
    if inm is not None and ("*" in _etags(inm) or etag in _etags(inm)):
        raise _NotModified(meta)


class _NotModified(Exception):
    def __init__(self, meta):
        super().__init__("304")
        self.meta = meta


def _ok_xml(body: bytes) -> Response:
    return Response(200, {"Content-Type": "application/xml", "Content-Length": str(len(body))},
                    body)


def _error_response(err: S3Error, resource: str, head: bool) -> Response:
    rid = uuid.uuid4().hex[:16].upper()
    inner = _el("Code", err.code) + _el("Message", err.message) + _el("Resource", resource)
    inner += "".join(_el(k, v) for k, v in err.extra.items()) + _el("RequestId", rid)
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + inner + "</Error>").encode()
    headers = {"Content-Type": "application/xml", "x-amz-request-id": rid}
    if err.status == 416:
        headers["Content-Range"] = f"bytes */{err.extra.get('ActualObjectSize', '0')}"
    headers["Content-Length"] = "0" if head else str(len(body))
    return Response(err.status, headers, b"" if head else body)


class S3Server:
    """``S3Server(root).start()`` serves ``root`` on its own thread + event loop."""

    def __init__(self, root_dir: str, host: str = "127.0.0.1", port: int = 0):
        self.store = Store(root_dir)
        self.handler = Handler(self.store)
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---- lifecycle ---------------------------------------------------------------------------
    async def serve(self) -> asyncio.Server:
        """Start serving on the current loop (for use inside an existing event loop)."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._conn, self.host, self.port, backlog=1024,
                                                  limit=1 << 16)
        self.port = self._server.sockets[0].getsockname()[1]
        return self._server

    def start(self) -> S3Server:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run():
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self.serve())
            except BaseException as exc:
                failure.append(exc)
            ready.set()
            if not failure:
                loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="s3server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self.aclose(), loop)
        try:
            fut.result(timeout=5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- HTTP ----------------------------------------------------------------------------------
    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        except asyncio.LimitOverrunError:
            await self._send(writer, Response(431, {"Content-Length": "0"}), False, False)
            return False
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            await self._send(writer, Response(400, {"Content-Length": "0"}), False, False)
            return False
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await self._read_body(reader, headers)
        self.requests += 1
        head_only = method == "HEAD"
        try:
            resp = await self.handler.handle(method, target, headers, body)
        except S3Error as err:
            resp = _error_response(err, urlsplit(target).path, head_only)
        except _NotModified as nm:
            resp = Response(304, nm.meta)
        except Exception as exc:
            resp = _error_response(S3Error(500, "InternalError", repr(exc)),
                                   urlsplit(target).path, head_only)
        await self._send(writer, resp, keep, head_only)
        return keep

    async def _read_body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            out = bytearray()
            while True:
                size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out += await reader.readexactly(size)
                await reader.readline()
            body = bytes(out)
        else:
            n = int(headers.get("content-length", "0") or 0)
            body = await reader.readexactly(n) if n else b""
        if "aws-chunked" in headers.get("content-encoding", "") or headers.get(
                "x-amz-content-sha256", "").startswith("STREAMING-"):
            body = decode_aws_chunked(body)
        return body

    async def _send(self, writer, resp: Response, keep: bool, head_only: bool) -> None:
        h, body = resp.headers, resp.body
        if resp.status in (204, 304):
            h.pop("Content-Length", None)
        else:
            h.setdefault("Content-Length", str(
                len(body) if isinstance(body, bytes) else body.count))
        h["Date"] = email.utils.formatdate(usegmt=True)
        h["Server"] = "wjio-s3server"
        h.setdefault("x-amz-request-id", "0")
        h["Connection"] = "keep-alive" if keep else "close"
        head = f"HTTP/1.1 {resp.status} {HTTPStatus(resp.status).phrase}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
        if head_only or not body:
            writer.write(head.encode("latin-1"))
        elif isinstance(body, bytes):
            writer.write(head.encode("latin-1") + body)
        elif body.count <= SMALL_BODY:
            writer.write(head.encode("latin-1") + _pread(body))
        else:
            writer.write(head.encode("latin-1"))
            await writer.drain()
            with _open(body.path) as f:  # kernel sendfile(2); the file is in the page cache
                await asyncio.get_running_loop().sendfile(writer.transport, f, body.offset,
                                                          body.count)
        await writer.drain()


def _pread(body: FileBody) -> bytes:
    fd = os.open(body.path, os.O_RDONLY)
    try:
        return os.pread(fd, body.count, body.offset)
    finally:
        os.close(fd)


def _open(path: str):
    return open(path, "rb")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="directory served as <root>/<bucket>/<key>")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)

    async def run():
        srv = S3Server(args.root, args.host, args.port)
        await srv.serve()
        print(f"s3server: listening on {srv.url} root={srv.store.root}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await srv.aclose()

    asyncio.run(run())


if __name__ == "__main__":
    main()
