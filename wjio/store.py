"""The object-store layer: the only module of wjio that talks to aiobotocore.

One client per (event loop, options), a bounded connection pool, timeouts on every call, and
one retry policy (exponential backoff with full jitter) for throttling, 5xx, resets, timeouts
and short reads. S3 error codes become the typed errors of :mod:`wjio.errors`, naming the
object; nothing here ever formats credentials.

Range GETs (the hot path: one per column chunk) skip botocore's per-request machinery, which
costs ~1.5 ms of event-loop CPU per request: botocore presigns the object's GET URL once per
object (addressing, endpoint, SigV4, session token — all botocore's), and each range is a
plain aiohttp GET of that URL with ``Range``/``If-Match`` headers, which a presigned URL does
not sign. Errors come back in the same shape as botocore's, so one retry policy and one
translation to typed errors serve both paths. Signed URLs are never logged or put in errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
import botocore.exceptions as bexc
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from wjio import errors
from wjio.options import StoreOptions
from wjio.stats import ScanStats
from wjio.uri import S3Path

log = logging.getLogger(__name__)
T = TypeVar("T")

_THROTTLE_CODES = frozenset(
    # ConditionalRequestConflict (409): a conditional write raced another write of the key;
    # S3 asks for a retry, which then sees the winner (412).
    {"ConditionalRequestConflict", "SlowDown", "Throttling", "ThrottlingException",
     "RequestLimitExceeded", "TooManyRequests", "RequestTimeout", "RequestTimeTooSkewed",
     "InternalError", "ServiceUnavailable", "503", "500", "502", "504"}
)
_RETRYABLE_EXC = (
    aiohttp.ClientError,
    asyncio.TimeoutError,
    ConnectionError,
    bexc.EndpointConnectionError,
    bexc.ConnectionClosedError,
    bexc.ReadTimeoutError,
    bexc.ConnectTimeoutError,
    bexc.IncompleteReadError,
    bexc.ResponseStreamingError,
    bexc.HTTPClientError,
)


class ShortReadError(Exception):
    """The body ended before the bytes the request asked for (retried)."""


class TransportError(Exception):
    """A network failure on the range-GET path, its message stripped of signed URLs."""


_SIGNED_QUERY = re.compile(r"\?[^\s'\"]*X-Amz-[^\s'\"]*")


def _redact(text: str) -> str:
    return _SIGNED_QUERY.sub("?<signed>", text)


# Presigned URLs live this long; they are re-signed well before that (long scans, rotating
# session credentials).
_PRESIGN_TTL_S = 3600
_PRESIGN_REFRESH_S = 600


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    path: S3Path
    size: int
    etag: str | None
    modified: float | None = field(default=None, compare=False)
    """Last-modified time (seconds since the epoch) where the answer gives it (listings)."""


@dataclass(frozen=True, slots=True)
class MultipartUpload:
    """An upload that was created and neither completed nor aborted."""

    path: S3Path
    upload_id: str
    initiated: float
    """Creation time, seconds since the epoch."""


class S3Store:
    """An S3 client bound to one event loop. Use :func:`shared_store` to get one."""

    def __init__(self, options: StoreOptions) -> None:
        self.options = options
        self._stack = contextlib.AsyncExitStack()
        self._client = None
        self._http: aiohttp.ClientSession | None = None
        self._open_lock = asyncio.Lock()
        self._presigned: dict[S3Path, tuple[str, float]] = {}

    async def _ensure_client(self):
        if self._client is not None:
            return self._client
        async with self._open_lock:
            if self._client is None:
                self._client = await self._stack.enter_async_context(self._create_client())
        return self._client

    def _create_client(self):
        o = self.options
        endpoint = o.resolved_endpoint()
        style = o.addressing_style or ("path" if endpoint else "auto")
        config = AioConfig(
            max_pool_connections=o.max_connections,
            connect_timeout=o.connect_timeout_s,
            read_timeout=o.read_timeout_s,
            # Retries are ours (one policy, counted in stats); botocore's would hide them.
            retries={"total_max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": style},
            # Range GETs carry no full-object checksum; asking for one only costs CPU.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = get_session()
        region = o.region or session.get_config_variable("region") or "us-east-1"
        return session.create_client(
            "s3",
            region_name=region,
            endpoint_url=endpoint,
            aws_access_key_id=o.aws_access_key_id,
            aws_secret_access_key=o.aws_secret_access_key,
            aws_session_token=o.aws_session_token,
            config=config,
        )

    async def _ensure_http(self) -> aiohttp.ClientSession:
        if self._http is None:
            await self._ensure_client()
            async with self._open_lock:
                if self._http is None:
                    o = self.options
                    self._http = await self._stack.enter_async_context(
                        aiohttp.ClientSession(
                            connector=aiohttp.TCPConnector(limit=o.max_connections),
                            timeout=aiohttp.ClientTimeout(
                                total=None, sock_connect=o.connect_timeout_s,
                                sock_read=o.read_timeout_s,
                            ),
                            auto_decompress=False,
                            skip_auto_headers=("Accept-Encoding", "User-Agent"),
                        )
                    )
        return self._http

    async def _presigned_get(self, client, path: S3Path) -> str:
        now = time.monotonic()
        cached = self._presigned.get(path)
        if cached is not None and now - cached[1] < _PRESIGN_REFRESH_S:
            return cached[0]
        url = await client.generate_presigned_url(
            "get_object", Params={"Bucket": path.bucket, "Key": path.key},
            ExpiresIn=_PRESIGN_TTL_S,
        )
        if len(self._presigned) > 4096:
            self._presigned.clear()
        self._presigned[path] = (url, now)
        return url

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None
        self._http = None

    # -- the one retrying call ---------------------------------------------------------------

    async def _call(
        self,
        what: str,
        path: S3Path,
        attempt_fn: Callable[[object], Awaitable[T]],
        stats: ScanStats | None,
    ) -> T:
        client = await self._ensure_client()
        o = self.options
        last: BaseException | None = None
        for attempt in range(o.max_attempts):
            if attempt:
                if stats is not None:
                    stats.retries += 1
                delay = random.uniform(0, min(o.backoff_cap_s, o.backoff_base_s * 2**attempt))
                log.debug("retrying %s %s in %.3fs after %r", what, path, delay, last)
                await asyncio.sleep(delay)
            if stats is not None:
                stats.request_started()
            try:
                return await attempt_fn(client)
            except bexc.ClientError as e:
                if _is_retryable_client_error(e):
                    last = e
                    continue
                raise _translate(e, what, path) from e
            except (bexc.NoCredentialsError, bexc.PartialCredentialsError) as e:
                raise errors.AccessDeniedError(
                    f"{what} {path}: no usable AWS credentials found (set AWS_ACCESS_KEY_ID/"
                    f"AWS_SECRET_ACCESS_KEY, a profile, or an instance role)",
                    uri=str(path),
                    code="NoCredentials",
                ) from e
            except (*_RETRYABLE_EXC, ShortReadError, TransportError) as e:
                last = e
                continue
            finally:
                if stats is not None:
                    stats.request_finished()
        raise errors.StoreUnavailableError(
            f"{what} {path} failed after {o.max_attempts} attempts; last error: "
            f"{_describe(last)}",
            uri=str(path),
            code=_code(last),
        ) from last

    # -- operations --------------------------------------------------------------------------

    async def get_range(
        self,
        path: S3Path,
        start: int,
        end: int,
        *,
        etag: str | None = None,
        stats: ScanStats | None = None,
    ) -> bytes:
        """Bytes ``[start, end)`` of the object; with ``etag``, fail if it was replaced."""
        return b"".join(await self.get_range_parts(path, start, end, etag=etag, stats=stats))

    async def get_range_parts(
        self,
        path: S3Path,
        start: int,
        end: int,
        *,
        etag: str | None = None,
        stats: ScanStats | None = None,
    ) -> list[bytes]:
        """Bytes ``[start, end)`` as the parts they arrived in, not joined: joining a large
        body costs the event-loop thread a copy that a decode thread can make instead."""
        want = end - start
        if want <= 0:
            return []

        async def attempt(client) -> list[bytes]:
            _, parts = await self._ranged_get(
                client, path, f"bytes={start}-{end - 1}", etag, stats, joined=False
            )
            got = sum(len(p) for p in parts)
            if got != want:
                raise ShortReadError(f"got {got} of {want} bytes")
            return parts

        return await self._call("GET", path, attempt, stats)

    async def get_suffix(
        self, path: S3Path, length: int, *, etag: str | None = None, stats: ScanStats | None = None
    ) -> tuple[bytes, ObjectInfo]:
        """The last ``length`` bytes (fewer if the object is smaller), its size and ETag."""

        async def attempt(client) -> tuple[bytes, ObjectInfo]:
            try:
                headers, data = await self._ranged_get(
                    client, path, f"bytes=-{length}", etag, stats
                )
            except bexc.ClientError as e:
                # A suffix range of an empty object is unsatisfiable: S3 answers 416.
                if _code(e) == "InvalidRange":
                    return b"", ObjectInfo(path, 0, None)
                raise
            size = _total_size(headers.get("Content-Range"), len(data))
            expected = min(length, size)
            if len(data) != expected:
                raise ShortReadError(f"got {len(data)} of {expected} bytes")
            return data, ObjectInfo(path, size, headers.get("ETag"))

        return await self._call("GET", path, attempt, stats)

    async def _ranged_get(
        self,
        client,
        path: S3Path,
        byte_range: str,
        etag: str | None,
        stats: ScanStats | None,
        joined: bool = True,
    ) -> tuple[dict, bytes | list[bytes]]:
        url = await self._presigned_get(client, path)
        http = await self._ensure_http()
        headers = {"Range": byte_range}
        if etag:
            headers["If-Match"] = etag
        try:
            async with http.get(url, headers=headers, allow_redirects=False) as resp:
                if joined or resp.status not in (200, 206):
                    body = await resp.read()
                    if resp.status not in (200, 206):
                        raise _client_error(resp.status, resp.headers, body, "GetObject")
                    size = len(body)
                else:
                    body = []
                    while part := await resp.content.readany():
                        body.append(part)
                    size = sum(len(p) for p in body)
                if stats is not None:
                    stats.bytes_fetched += size
                return resp.headers, body
        except aiohttp.ClientError as e:
            # aiohttp's messages may quote the URL, whose query holds signed credentials.
            raise TransportError(f"{type(e).__name__}: {_redact(str(e))}") from None

    async def head(self, path: S3Path, *, stats: ScanStats | None = None) -> ObjectInfo:
        async def attempt(client) -> ObjectInfo:
            resp = await client.head_object(Bucket=path.bucket, Key=path.key)
            return ObjectInfo(path, int(resp["ContentLength"]), resp.get("ETag"))

        return await self._call("HEAD", path, attempt, stats)

    async def list(
        self, prefix: S3Path, *, stats: ScanStats | None = None, page_size: int | None = None
    ) -> list[ObjectInfo]:
        """Every object under the prefix (recursively), following continuation tokens."""
        out: list[ObjectInfo] = []
        token: str | None = None
        while True:
            kwargs = {"Bucket": prefix.bucket, "Prefix": prefix.key}
            if page_size:
                kwargs["MaxKeys"] = page_size
            if token:
                kwargs["ContinuationToken"] = token

            async def attempt(client, kwargs=kwargs):
                return await client.list_objects_v2(**kwargs)

            if stats is not None:
                stats.list_requests += 1
            page = await self._call("LIST", prefix, attempt, stats)
            for item in page.get("Contents", ()):
                modified = item.get("LastModified")
                out.append(ObjectInfo(prefix.child(item["Key"]), int(item["Size"]),
                                      item.get("ETag"),
                                      modified.timestamp() if modified is not None else None))
            if not page.get("IsTruncated"):
                return out
            token = page.get("NextContinuationToken")
            if not token:
                raise errors.StoreError(
                    f"LIST {prefix}: listing is truncated but gave no continuation token",
                    uri=str(prefix),
                )


    # -- writes (every one carries the options' server-side encryption) ---------------------

    def _sse(self) -> dict[str, str]:
        o = self.options
        out = {}
        if o.sse:
            out["ServerSideEncryption"] = o.sse
        if o.sse_kms_key_id:
            out["SSEKMSKeyId"] = o.sse_kms_key_id
        return out

    async def get(self, path: S3Path, *, stats: ScanStats | None = None
                  ) -> tuple[bytes, ObjectInfo]:
        """The whole object (for small objects: manifests, records), its size and ETag."""

        async def attempt(client) -> tuple[bytes, ObjectInfo]:
            resp = await client.get_object(Bucket=path.bucket, Key=path.key)
            async with resp["Body"] as body:
                data = await body.read()
            want = int(resp["ContentLength"])
            if len(data) != want:
                raise ShortReadError(f"got {len(data)} of {want} bytes")
            if stats is not None:
                stats.bytes_fetched += len(data)
            return data, ObjectInfo(path, len(data), resp.get("ETag"))

        return await self._call("GET", path, attempt, stats)

    async def put(self, path: S3Path, data: bytes, *, if_none_match: bool = False,
                  stats: ScanStats | None = None) -> ObjectInfo | None:
        """Write ``data`` as the object. With ``if_none_match`` the write only creates: it
        returns None when the key exists (S3's 412), also when the key exists because an
        earlier try of this very call succeeded and its answer was lost; a caller that must
        know who created it reads the object back."""

        async def attempt(client) -> ObjectInfo | None:
            kwargs = {"Bucket": path.bucket, "Key": path.key, "Body": data, **self._sse()}
            if if_none_match:
                kwargs["IfNoneMatch"] = "*"
            try:
                resp = await client.put_object(**kwargs)
            except bexc.ClientError as e:
                if if_none_match and _is_precondition_failed(e):
                    return None
                raise
            return ObjectInfo(path, len(data), resp.get("ETag"))

        return await self._call("PUT", path, attempt, stats)

    async def create_multipart(self, path: S3Path, *, stats: ScanStats | None = None) -> str:
        """Start a multipart upload; its id."""

        async def attempt(client) -> str:
            resp = await client.create_multipart_upload(
                Bucket=path.bucket, Key=path.key, **self._sse())
            return resp["UploadId"]

        return await self._call("CreateMultipartUpload", path, attempt, stats)

    async def upload_part(self, path: S3Path, upload_id: str, number: int, data: bytes, *,
                          stats: ScanStats | None = None) -> str:
        """Upload part ``number`` (1-based); its ETag. Re-uploading a part replaces it."""

        async def attempt(client) -> str:
            resp = await client.upload_part(Bucket=path.bucket, Key=path.key,
                                            UploadId=upload_id, PartNumber=number, Body=data)
            return resp["ETag"]

        return await self._call(f"UploadPart {number}", path, attempt, stats)

    async def complete_multipart(self, path: S3Path, upload_id: str, etags: list[str], *,
                                 stats: ScanStats | None = None) -> ObjectInfo:
        """Assemble the parts (in order) into the object. A retry after a lost answer finds
        the upload gone (``NoSuchUpload``): the object is then looked up instead."""
        sent = False
        parts = [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]

        async def attempt(client) -> ObjectInfo | None:
            nonlocal sent
            was_sent, sent = sent, True
            try:
                await client.complete_multipart_upload(
                    Bucket=path.bucket, Key=path.key, UploadId=upload_id,
                    MultipartUpload={"Parts": parts})
            except bexc.ClientError as e:
                if not (was_sent and _code(e) == "NoSuchUpload"):
                    raise
            return None

        await self._call("CompleteMultipartUpload", path, attempt, stats)
        return await self.head(path, stats=stats)

    async def abort_multipart(self, path: S3Path, upload_id: str, *,
                              stats: ScanStats | None = None) -> None:
        """Abort the upload and free its parts (an upload already gone is not an error)."""

        async def attempt(client) -> None:
            try:
                await client.abort_multipart_upload(Bucket=path.bucket, Key=path.key,
                                                    UploadId=upload_id)
            except bexc.ClientError as e:
                if _code(e) != "NoSuchUpload":
                    raise

        await self._call("AbortMultipartUpload", path, attempt, stats)

    async def list_multipart(self, prefix: S3Path, *, stats: ScanStats | None = None
                             ) -> list[MultipartUpload]:
        """Every incomplete multipart upload under the prefix."""
        out: list[MultipartUpload] = []
        markers: dict[str, str] = {}
        while True:
            kwargs = {"Bucket": prefix.bucket, "Prefix": prefix.key, **markers}

            async def attempt(client, kwargs=kwargs):
                return await client.list_multipart_uploads(**kwargs)

            page = await self._call("ListMultipartUploads", prefix, attempt, stats)
            for u in page.get("Uploads", ()):
                out.append(MultipartUpload(prefix.child(u["Key"]), u["UploadId"],
                                           u["Initiated"].timestamp()))
            if not page.get("IsTruncated"):
                return out
            markers = {"KeyMarker": page.get("NextKeyMarker", ""),
                       "UploadIdMarker": page.get("NextUploadIdMarker", "")}
            if not markers["KeyMarker"]:
                raise errors.StoreError(
                    f"ListMultipartUploads {prefix}: listing is truncated but gave no marker",
                    uri=str(prefix))

    async def delete(self, path: S3Path, *, stats: ScanStats | None = None) -> None:
        """Delete the object (deleting a missing key is not an error, as in S3)."""

        async def attempt(client) -> None:
            await client.delete_object(Bucket=path.bucket, Key=path.key)

        await self._call("DELETE", path, attempt, stats)


def _is_precondition_failed(e: bexc.ClientError) -> bool:
    return _status(e) == 412 or _code(e) == "PreconditionFailed"


def _client_error(status: int, headers, body: bytes, operation: str) -> bexc.ClientError:
    """An S3 error answer, in the shape botocore gives (so one translation serves all)."""
    code, message = str(status), ""
    try:
        root = ET.fromstring(body) if body else None
    except ET.ParseError:
        root = None
    if root is not None:
        code = root.findtext("Code") or code
        message = root.findtext("Message") or ""
    return bexc.ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {
                "HTTPStatusCode": status,
                "RequestId": headers.get("x-amz-request-id"),
            },
        },
        operation,
    )


def _total_size(content_range: str | None, fallback: int) -> int:
    if content_range and "/" in content_range:  # "bytes 10-99/100"
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    return fallback  # a 200 answer carries the whole object


def _code(e: BaseException | None) -> str | None:
    if isinstance(e, bexc.ClientError):
        return str(e.response.get("Error", {}).get("Code"))
    return type(e).__name__ if e is not None else None


def _status(e: bexc.ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _is_retryable_client_error(e: bexc.ClientError) -> bool:
    return _code(e) in _THROTTLE_CODES or _status(e) in (500, 502, 503, 504)


def _describe(e: BaseException | None) -> str:
    if e is None:
        return "none"
    if isinstance(e, bexc.ClientError):
        return f"{_code(e)} (HTTP {_status(e)})"
    return _redact(f"{type(e).__name__}: {e}")


def _translate(e: bexc.ClientError, what: str, path: S3Path) -> errors.StoreError:
    code, status = _code(e), _status(e)
    request_id = e.response.get("ResponseMetadata", {}).get("RequestId")
    uri = str(path)
    kw = {"uri": uri, "code": code, "request_id": request_id}
    if code == "NoSuchBucket":
        return errors.NoSuchBucketError(
            f"{what} {uri}: bucket {path.bucket!r} does not exist", **kw
        )
    if code in ("NoSuchKey", "404", "NotFound") or status == 404:
        return errors.ObjectNotFoundError(f"{what} {uri}: no such object", **kw)
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403") or (
        status == 403
    ):
        return errors.AccessDeniedError(
            f"{what} {uri}: access denied ({code}); check credentials and permissions", **kw
        )
    if code in ("PreconditionFailed", "412") or status == 412:
        return errors.ObjectChangedError(
            f"{what} {uri}: object was replaced during the scan (ETag no longer matches the "
            f"footer that was read); re-run the scan",
            **kw,
        )
    return errors.StoreError(f"{what} {uri}: {code} (HTTP {status})", **kw)


# -- one shared store per (event loop, options) -----------------------------------------------

_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[StoreOptions, S3Store]] = (
    weakref.WeakKeyDictionary()
)


def shared_store(options: StoreOptions | None = None) -> S3Store:
    """The store for these options on the running loop, created on first use."""
    loop = asyncio.get_running_loop()
    options = options or StoreOptions()
    per_loop = _shared.setdefault(loop, {})
    store = per_loop.get(options)
    if store is None:
        store = per_loop[options] = S3Store(options)
    return store


async def close_shared_stores() -> None:
    """Close the stores of the running loop (call before the loop ends)."""
    per_loop = _shared.pop(asyncio.get_running_loop(), {})
    for store in per_loop.values():
        await store.close()
