"""The object-store layer: the only module of wjio that talks to aiobotocore.

One client per (event loop, options), a bounded connection pool, timeouts on every call, and
one retry policy (exponential backoff with full jitter) for throttling, 5xx, resets, timeouts
and short reads. S3 error codes become the typed errors of :mod:`wjio.errors`, naming the
object; nothing here ever formats credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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
    {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
     "TooManyRequests", "RequestTimeout", "RequestTimeTooSkewed", "InternalError",
     "ServiceUnavailable", "503", "500", "502", "504"}
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


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    path: S3Path
    size: int
    etag: str | None


class S3Store:
    """An S3 client bound to one event loop. Use :func:`shared_store` to get one."""

    def __init__(self, options: StoreOptions) -> None:
        self.options = options
        self._stack = contextlib.AsyncExitStack()
        self._client = None
        self._open_lock = asyncio.Lock()

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

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

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
            except (*_RETRYABLE_EXC, ShortReadError) as e:
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
        want = end - start
        if want <= 0:
            return b""

        async def attempt(client) -> bytes:
            kwargs = {"Bucket": path.bucket, "Key": path.key, "Range": f"bytes={start}-{end - 1}"}
            if etag:
                kwargs["IfMatch"] = etag
            resp = await client.get_object(**kwargs)
            data = await _read_body(resp, stats)
            if len(data) != want:
                raise ShortReadError(f"got {len(data)} of {want} bytes")
            return data

        return await self._call("GET", path, attempt, stats)

    async def get_suffix(
        self, path: S3Path, length: int, *, etag: str | None = None, stats: ScanStats | None = None
    ) -> tuple[bytes, ObjectInfo]:
        """The last ``length`` bytes (fewer if the object is smaller), its size and ETag."""

        async def attempt(client) -> tuple[bytes, ObjectInfo]:
            kwargs = {"Bucket": path.bucket, "Key": path.key, "Range": f"bytes=-{length}"}
            if etag:
                kwargs["IfMatch"] = etag
            try:
                resp = await client.get_object(**kwargs)
            except bexc.ClientError as e:
                # A suffix range of an empty object is unsatisfiable: S3 answers 416.
                if _code(e) == "InvalidRange":
                    return b"", ObjectInfo(path, 0, None)
                raise
            data = await _read_body(resp, stats)
            size = _total_size(resp, len(data))
            expected = min(length, size)
            if len(data) != expected:
                raise ShortReadError(f"got {len(data)} of {expected} bytes")
            return data, ObjectInfo(path, size, resp.get("ETag"))

        return await self._call("GET", path, attempt, stats)

    async def head(self, path: S3Path, *, stats: ScanStats | None = None) -> ObjectInfo:
        async def attempt(client) -> ObjectInfo:
            resp = await client.head_object(Bucket=path.bucket, Key=path.key)
            return ObjectInfo(path, int(resp["ContentLength"]), resp.get("ETag"))

        return await self._call("HEAD", path, attempt, stats)

    async def list(self, prefix: S3Path, *, stats: ScanStats | None = None) -> list[ObjectInfo]:
        """Every object under the prefix (recursively), following continuation tokens."""
        out: list[ObjectInfo] = []
        token: str | None = None
        while True:
            kwargs = {"Bucket": prefix.bucket, "Prefix": prefix.key}
            if token:
                kwargs["ContinuationToken"] = token

            async def attempt(client, kwargs=kwargs):
                return await client.list_objects_v2(**kwargs)

            if stats is not None:
                stats.list_requests += 1
            page = await self._call("LIST", prefix, attempt, stats)
            for item in page.get("Contents", ()):
                out.append(
                    ObjectInfo(prefix.child(item["Key"]), int(item["Size"]), item.get("ETag"))
                )
            if not page.get("IsTruncated"):
                return out
            token = page.get("NextContinuationToken")
            if not token:
                raise errors.StoreError(
                    f"LIST {prefix}: listing is truncated but gave no continuation token",
                    uri=str(prefix),
                )

    async def put(self, path: S3Path, body: bytes, *, stats: ScanStats | None = None) -> str:
        async def attempt(client) -> str:
            resp = await client.put_object(Bucket=path.bucket, Key=path.key, Body=body)
            return resp.get("ETag")

        return await self._call("PUT", path, attempt, stats)


async def _read_body(resp: dict, stats: ScanStats | None) -> bytes:
    body = resp["Body"]
    try:
        data = await body.read()
    finally:
        body.close()
    if stats is not None:
        stats.bytes_fetched += len(data)
    return data


def _total_size(resp: dict, fallback: int) -> int:
    content_range = resp.get("ContentRange")  # "bytes 10-99/100"
    if content_range and "/" in content_range:
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
    return f"{type(e).__name__}: {e}"


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
