"""Shaping and fault-injecting HTTP/1.1 reverse proxy for local S3 endpoints.

Why it exists: benchmarks run against a local S3 server (MinIO, moto, a test server) whose
latency and bandwidth look nothing like a remote object store, and the reader's fault-tolerance
tests need S3-style failures on demand.  Every reader under comparison talks to the store through
this proxy, which adds a per-request first-byte latency, caps each connection's response bandwidth
and injects S3-like faults (503 SlowDown, 500 InternalError, mid-body TCP reset, truncated body).

Model (what the numbers mean):

* Latency: the first response byte leaves the proxy no earlier than ``latency_s`` after the request
  was fully received.  The request is forwarded upstream immediately, so the observed first-byte
  time is ``max(latency_s, upstream_time)``: the local server's processing is hidden inside the
  modelled remote latency instead of being counted twice.
* Bandwidth: each client connection is a link of ``bandwidth_bps`` bytes/s for response bodies.
  Bytes are released when a link of that rate would have finished delivering them, in pieces of a
  few milliseconds, so the last byte of a body of B bytes arrives ``B / bandwidth_bps`` after the
  body started (plus scheduler jitter, never earlier).
* Faults are drawn per request from a seeded RNG, so a given request sequence is reproducible.

The proxy keeps one upstream connection per client connection and forwards the request head
unchanged (the ``Host`` header in particular, which SigV4 signatures cover), except that
``Expect: 100-continue`` is answered by the proxy itself and not forwarded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import random
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import EllipsisType, TracebackType
from urllib.parse import urlsplit
from xml.sax.saxutils import escape as xml_escape

log = logging.getLogger(__name__)

FAULT_KINDS = ("slowdown_503", "error_500", "reset_mid_body", "truncate_body")

# Large reads keep per-byte Python work low; the stream limit must exceed the read size or the
# transport pauses reading before a full chunk is buffered.
READ_CHUNK = 1 << 20
STREAM_LIMIT = 4 << 20
WRITE_HIGH_WATER = 2 << 20
# Shaped bodies are released in pieces worth this many seconds of link time (bounded below so
# slow links don't degenerate into tiny writes).  Time lost to the proxy's own scheduling delays
# (a busy 2-core box) is caught up, but at most PACE_CATCHUP_S of it, so a stalled client does not
# earn a long burst afterwards.
PACE_QUANTUM_S = 0.004
PACE_MIN_PIECE = 16 << 10
PACE_CATCHUP_S = 0.025
CONNECT_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 300.0

_NO_BODY_STATUSES = {204, 304}
_ERRORS = {
    "slowdown_503": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    "error_500": (500, "Internal Server Error", "InternalError",
                  "We encountered an internal error. Please try again."),
}


@dataclass(frozen=True)
class Faults:
    """Fault-injection settings; rates are per-request probabilities for matching methods."""

    slowdown_503: float = 0.0
    error_500: float = 0.0
    reset_mid_body: float = 0.0
    truncate_body: float = 0.0
    methods: tuple[str, ...] = ("GET",)
    burst: int = 0
    burst_kind: str = "slowdown_503"
    max_faults: int | None = None

    def __post_init__(self) -> None:
        rates = [getattr(self, kind) for kind in FAULT_KINDS]
        if any(not 0.0 <= r <= 1.0 for r in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError(f"fault rates must be in [0, 1] and sum to <= 1: {rates}")
        if self.burst_kind not in FAULT_KINDS:
            raise ValueError(f"burst_kind must be one of {FAULT_KINDS}")
        if self.burst < 0 or (self.max_faults is not None and self.max_faults < 0):
            raise ValueError("burst and max_faults must be >= 0")
        object.__setattr__(self, "methods", tuple(m.upper() for m in self.methods))


@dataclass
class ProxyStats:
    """Counters since start / last reset.  Byte counts are body bytes only (not heads)."""

    requests: int = 0
    requests_by_method: dict[str, int] = field(default_factory=dict)
    get_requests: int = 0
    bytes_to_client: int = 0
    bytes_from_client: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    connections: int = 0
    upstream_connections: int = 0
    upstream_errors: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


class _FaultPlan:
    """Decides which requests fail; only touched under the proxy lock."""

    def __init__(self, faults: Faults, seed: int | None) -> None:
        self.faults = faults
        self.rng = random.Random(seed)
        self.burst_left = faults.burst
        self.injected = 0

    def pick(self, method: str) -> str | None:
        f = self.faults
        if method not in f.methods:
            return None
        if f.max_faults is not None and self.injected >= f.max_faults:
            return None
        if self.burst_left > 0:
            self.burst_left -= 1
            self.injected += 1
            return f.burst_kind
        r = self.rng.random()
        for kind in FAULT_KINDS:
            r -= getattr(f, kind)
            if r < 0:
                self.injected += 1
                return kind
        return None


class _ClientGone(Exception):
    """The client side failed or closed; nothing more can be sent to it."""


class _UpstreamError(Exception):
    """The upstream side failed; the client gets a 502 if no response has started."""


class _BadRequest(Exception):
    pass


class _Peer:
    """A stream pair whose I/O errors and timeouts map to one exception type."""

    __slots__ = ("err", "reader", "timeout", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 err: type[Exception], timeout: float) -> None:
        self.reader, self.writer, self.err, self.timeout = reader, writer, err, timeout

    async def _io(self, aw: Awaitable[bytes], wait_s: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(wait_s or self.timeout):
                return await aw
        except asyncio.LimitOverrunError as e:
            raise _BadRequest("header section too large") from e
        except (OSError, EOFError) as e:  # TimeoutError is an OSError
            raise self.err(repr(e)) from e

    def read(self, n: int) -> Awaitable[bytes]:
        return self._io(self.reader.read(n))

    def readexactly(self, n: int) -> Awaitable[bytes]:
        return self._io(self.reader.readexactly(n))

    def readuntil(self, sep: bytes, wait_s: float | None = None) -> Awaitable[bytes]:
        return self._io(self.reader.readuntil(sep), wait_s)

    async def send(self, data: bytes | memoryview) -> None:
        try:
            self.writer.write(data)
            async with asyncio.timeout(self.timeout):
                await self.writer.drain()
        except (OSError, RuntimeError) as e:  # RuntimeError: write after close
            raise self.err(repr(e)) from e

    async def flush(self) -> None:
        """Wait until everything written so far has been handed to the kernel."""
        self.writer.transport.set_write_buffer_limits(0, 0)
        await self.send(b"")

    def close(self, reset: bool = False) -> None:
        transport = self.writer.transport
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0 turns close() into a TCP RST, like a crashed or cut-off server.
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()


@dataclass(slots=True)
class _Request:
    method: str
    target: str
    head: bytes  # as forwarded upstream
    body: str  # "none" | "length" | "chunked"
    length: int
    keep_alive: bool
    expect_continue: bool


@dataclass(slots=True)
class _Response:
    status: int
    head: bytes
    body: str  # "none" | "length" | "chunked" | "close"
    length: int
    keep_alive: bool


def _split_head(head: bytes) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
    lines = head[:-4].split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise _BadRequest(f"malformed header line {line[:80]!r}")
        headers.append((name.strip().lower(), value.strip()))
    return lines, headers


def _tokens(headers: list[tuple[bytes, bytes]], name: bytes) -> set[bytes]:
    return {t.strip().lower() for n, v in headers if n == name for t in v.split(b",")}


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    values = {v for n, v in headers if n == b"content-length"}
    if not values:
        return None
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise _BadRequest(f"bad Content-Length {values!r}")
    return int(next(iter(values)))


def _keep_alive(version: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    conn = _tokens(headers, b"connection")
    if version == b"HTTP/1.0":
        return b"keep-alive" in conn
    return b"close" not in conn


def parse_request(head: bytes) -> _Request:
    lines, headers = _split_head(head)
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise _BadRequest(f"bad request line {lines[0][:80]!r}")
    method, target, version = parts
    expect = b"100-continue" in _tokens(headers, b"expect")
    if expect:
        # The proxy answers 100 Continue itself, so the header must not reach the upstream.
        kept = [ln for ln in lines[1:] if ln.partition(b":")[0].strip().lower() != b"expect"]
        head = b"\r\n".join([lines[0], *kept, b"", b""])
    length = _content_length(headers) or 0
    chunked = b"chunked" in _tokens(headers, b"transfer-encoding")
    body = "chunked" if chunked else "length" if length else "none"
    return _Request(method.decode("latin-1").upper(), target.decode("latin-1"), head, body,
                    length, _keep_alive(version, headers), expect)


def parse_response(head: bytes, method: str) -> _Response:
    lines, headers = _split_head(head)
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise _UpstreamError(f"bad status line {lines[0][:80]!r}")
    status = int(parts[1])
    keep_alive = _keep_alive(parts[0], headers)
    length = _content_length(headers)
    if method == "HEAD" or status in _NO_BODY_STATUSES or status < 200:
        body, length = "none", 0
    elif b"chunked" in _tokens(headers, b"transfer-encoding"):
        body, length = "chunked", 0
    elif length is not None:
        body = "length" if length else "none"
    else:
        body, length, keep_alive = "close", 0, False
    return _Response(status, head, body, length, keep_alive)


def error_response(kind: str, resource: str, keep_alive: bool, head_only: bool) -> bytes:
    """An S3-style XML error response, complete with head and (unless HEAD) body."""
    status, reason, code, message = _ERRORS[kind]
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{xml_escape(resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nx-amz-request-id: {request_id}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    ).encode()
    return head if head_only else head + body


def _plain_response(status: int, reason: str, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def _part_of(n: int) -> int:
    """How much of an n-byte body a truncating fault lets through (some, never all)."""
    return max(1, n // 2) if n > 1 else 0


class _Session:
    """One client connection and its (lazily opened, reused) upstream connection."""

    def __init__(self, proxy: ShapingProxy, client: _Peer) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: _Peer | None = None
        self.link_free_at = 0.0  # pacing clock: when the shaped link finishes what was sent
        self.count_in = functools.partial(proxy._count, "bytes_from_client")
        self.count_out = functools.partial(proxy._count, "bytes_to_client")

    async def run(self) -> None:
        try:
            while await self._serve_one():
                pass
        except _BadRequest as e:
            with contextlib.suppress(_ClientGone):
                await self.client.send(_plain_response(400, "Bad Request", str(e)))
        except (_ClientGone, _UpstreamError):
            pass
        finally:
            self.client.close()
            self._drop_upstream()

    async def _serve_one(self) -> bool:
        """Serve one request; return whether the client connection stays open."""
        try:
            head = await self.client.readuntil(b"\r\n\r\n", wait_s=IDLE_TIMEOUT_S)
        except _ClientGone:
            return False  # EOF/idle between requests is the normal end of a connection
        req = parse_request(head)
        self.proxy._on_request_start(req.method)
        try:
            return await self._handle(req)
        finally:
            self.proxy._on_request_end()

    async def _handle(self, req: _Request) -> bool:
        if req.expect_continue:
            await self.client.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        fault = self.proxy._pick_fault(req.method)
        latency, rate = self.proxy._shaping
        if fault in _ERRORS:
            await self._pipe_request_body(req, None)
            await _sleep_until(time.monotonic() + latency)
            await self.client.send(error_response(fault, req.target.split("?")[0],
                                                  req.keep_alive, req.method == "HEAD"))
            return req.keep_alive
        try:
            resp, received_at = await self._exchange(req)
        except _UpstreamError as e:
            self.proxy._count("upstream_errors")
            self._drop_upstream()
            await self.client.send(_plain_response(502, "Bad Gateway", f"upstream error: {e}\n"))
            return False
        await _sleep_until(received_at + latency)
        return await self._relay_response(req, resp, fault, rate)

    async def _exchange(self, req: _Request) -> tuple[_Response, float]:
        """Forward the request; return the upstream response head and when the request ended."""
        reused = self.upstream is not None
        received_at = time.monotonic()
        await self._ensure_upstream()
        assert self.upstream is not None
        try:
            await self.upstream.send(req.head)
            if req.body != "none":
                await self._pipe_request_body(req, self.upstream)
                received_at = time.monotonic()
            return await self._read_response_head(req), received_at
        except _UpstreamError:
            # A kept-alive upstream connection may have been closed by the server while idle;
            # a bodiless request can safely be replayed once on a fresh connection.
            if not reused or req.body != "none":
                raise
        self._drop_upstream()
        await self._ensure_upstream()
        assert self.upstream is not None
        await self.upstream.send(req.head)
        return await self._read_response_head(req), received_at

    async def _ensure_upstream(self) -> None:
        up = self.upstream
        if up is not None and not up.reader.at_eof() and not up.writer.is_closing():
            return
        self._drop_upstream()
        host, port = self.proxy._upstream_addr
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(host, port, limit=STREAM_LIMIT)
        except OSError as e:
            raise _UpstreamError(f"connect to {host}:{port} failed: {e!r}") from e
        self.upstream = _Peer(reader, writer, _UpstreamError, self.proxy.upstream_timeout)
        self.proxy._count("upstream_connections")

    def _drop_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None

    async def _read_response_head(self, req: _Request) -> _Response:
        assert self.upstream is not None
        while True:
            try:  # _BadRequest here means the upstream's response head is malformed
                resp = parse_response(await self.upstream.readuntil(b"\r\n\r\n"), req.method)
            except _BadRequest as e:
                raise _UpstreamError(str(e)) from e
            # Interim 1xx responses are dropped: the proxy already sent its own 100 Continue.
            if not 100 <= resp.status < 200 or resp.status == 101:
                return resp

    async def _pipe_request_body(self, req: _Request, dst: _Peer | None) -> None:
        """Copy (or, with dst None, discard) the request body, keeping the framing intact."""
        send = dst.send if dst is not None else _discard
        if req.body == "length":
            await _pipe_exact(self.client, send, req.length, self.count_in)
        elif req.body == "chunked":
            await _pipe_chunked(self.client, send, self.count_in)

    async def _relay_response(self, req: _Request, resp: _Response, fault: str | None,
                              rate: float | None) -> bool:
        up = self.upstream
        assert up is not None
        await self.client.send(resp.head)
        self.link_free_at = max(self.link_free_at, time.monotonic())
        send = self.client.send if rate is None else self._paced_sender(rate)
        count, cut_short = self.count_out, fault is not None
        if resp.body == "length":
            cut = _part_of(resp.length) if cut_short else None
            done = await _pipe_exact(up, send, resp.length, count, cut)
        elif resp.body == "chunked":
            done = await _pipe_chunked(up, send, count, cut_short)
        elif resp.body == "close":
            done = await _pipe_until_eof(up, send, count, cut_short)
        else:
            done = fault is None
        if not done or fault is not None:
            self._drop_upstream()
            if fault == "reset_mid_body":
                await self.client.flush()  # the partial body must reach the client first
            self.client.close(reset=fault == "reset_mid_body")
            return False
        if not resp.keep_alive:
            self._drop_upstream()
        return req.keep_alive and resp.keep_alive

    def _paced_sender(self, rate: float) -> Callable[[memoryview], object]:
        quantum = max(PACE_MIN_PIECE, int(rate * PACE_QUANTUM_S))
        client = self.client

        async def send(data: memoryview) -> None:
            off, total = 0, len(data)
            while off < total:
                want = min(quantum, total - off)
                now = time.monotonic()
                free_at = max(self.link_free_at, now - PACE_CATCHUP_S)
                ready_at = free_at + want / rate
                if ready_at > now:
                    await asyncio.sleep(ready_at - now)
                    now = time.monotonic()
                n = min(total - off, max(want, int((now - free_at) * rate)))
                self.link_free_at = free_at + n / rate
                await client.send(data[off:off + n])
                off += n

        return send


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def _discard(_data: bytes | memoryview) -> None:
    return None


async def _pipe_exact(src: _Peer, send: Callable, n: int, count: Callable[[int], None],
                      cut: int | None = None) -> bool:
    """Copy n bytes (or only `cut` of them); return whether all n were sent."""
    limit = n if cut is None else cut
    remaining = limit
    while remaining > 0:
        data = await src.read(min(remaining, READ_CHUNK))
        if not data:
            raise src.err(f"EOF with {remaining} of {n} body bytes left")
        await send(memoryview(data))
        count(len(data))
        remaining -= len(data)
    return limit == n


async def _pipe_chunked(src: _Peer, send: Callable, count: Callable[[int], None],
                        cut_short: bool = False) -> bool:
    """Copy a chunked body verbatim (sizes, data, trailers); with `cut_short`, stop inside the
    first data chunk and return False."""
    while True:
        line = await src.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as e:
            raise src.err(f"bad chunk size line {line[:40]!r}") from e
        await send(line)
        if size == 0:
            break
        if cut_short:
            await _pipe_exact(src, send, size, count, _part_of(size))
            return False
        await _pipe_exact(src, send, size, count)
        await send(await src.readexactly(2))
    while True:  # trailer section ends with an empty line
        line = await src.readuntil(b"\r\n")
        await send(line)
        if line == b"\r\n":
            return not cut_short


async def _pipe_until_eof(src: _Peer, send: Callable, count: Callable[[int], None],
                          cut_short: bool = False) -> bool:
    while data := await src.read(READ_CHUNK):
        if cut_short:
            data = data[: _part_of(len(data))]
        await send(memoryview(data))
        count(len(data))
        if cut_short:
            return False
    return True


class ShapingProxy:
    """Reverse proxy with latency, per-connection bandwidth cap and fault injection.

    Runs its own asyncio loop in a daemon thread; all public methods are thread-safe.
    """

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0,
                 latency_s: float = 0.0, bandwidth_bps: float | None = None,
                 faults: Faults | None = None, seed: int | None = 1,
                 upstream_timeout: float = 60.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {upstream!r}")
        self.upstream = upstream
        self._upstream_addr = (parts.hostname, parts.port or 80)
        self.host, self.port = host, port
        self.upstream_timeout = upstream_timeout
        self._seed = seed
        self._lock = threading.Lock()
        self._stats = ProxyStats()
        self._plan = _FaultPlan(faults or Faults(), seed)
        self._shaping: tuple[float, float | None] = (0.0, None)
        self.set_shaping(latency_s, bandwidth_bps)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ShapingProxy:
        if self._thread is not None:
            raise RuntimeError("proxy already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, failure),
                                        name="shaping-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = self._loop = None

    def stats(self) -> ProxyStats:
        with self._lock:
            s = self._stats
            return dataclasses.replace(s, requests_by_method=dict(s.requests_by_method),
                                       faults_injected=dict(s.faults_injected))

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = ProxyStats(in_flight=self._stats.in_flight)

    def set_faults(self, faults: Faults) -> None:
        """Replace the fault settings; the burst, max_faults count and RNG start afresh."""
        with self._lock:
            self._plan = _FaultPlan(faults, self._seed)

    def set_shaping(self, latency_s: float | None = None,
                    bandwidth_bps: float | EllipsisType | None = ...) -> None:
        """Change latency and/or bandwidth (None = unlimited); omitted arguments are kept."""
        latency, rate = self._shaping
        if latency_s is not None:
            latency = float(latency_s)
        if bandwidth_bps is not ...:
            rate = None if not bandwidth_bps else float(bandwidth_bps)
        if latency < 0 or (rate is not None and rate <= 0):
            raise ValueError("latency must be >= 0 and bandwidth > 0")
        self._shaping = (latency, rate)  # one tuple, so the loop never sees a half update

    def __enter__(self) -> ShapingProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        try:
            self._server = loop.run_until_complete(asyncio.start_server(
                self._on_client, self.host, self.port, limit=STREAM_LIMIT))
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as e:
            failure.append(e)
            loop.close()
            ready.set()
            return
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(3):  # let the transports' close callbacks run before the loop stops
            await asyncio.sleep(0)

    async def _on_client(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._count("connections")
        writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        try:
            await _Session(self, _Peer(reader, writer, _ClientGone, self.upstream_timeout)).run()
        except asyncio.CancelledError:
            pass  # stop(); returning normally keeps 3.11's stream callback from logging it
        except Exception:
            log.exception("shaping proxy: unexpected error")
            writer.transport.abort()
        finally:
            self._tasks.discard(task)

    def _pick_fault(self, method: str) -> str | None:
        with self._lock:
            kind = self._plan.pick(method)
            if kind is not None:
                f = self._stats.faults_injected
                f[kind] = f.get(kind, 0) + 1
            return kind

    def _on_request_start(self, method: str) -> None:
        with self._lock:
            s = self._stats
            s.requests += 1
            s.requests_by_method[method] = s.requests_by_method.get(method, 0) + 1
            if method == "GET":
                s.get_requests += 1
            s.in_flight += 1
            s.max_in_flight = max(s.max_in_flight, s.in_flight)

    def _on_request_end(self) -> None:
        with self._lock:
            self._stats.in_flight = max(0, self._stats.in_flight - 1)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self._stats, name, getattr(self._stats, name) + n)



# -- CLI ------------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.proxy",
        description="HTTP/1.1 reverse proxy adding latency, per-connection bandwidth caps and "
                    "S3-style faults in front of a local S3 endpoint.")
    p.add_argument("--upstream", required=True, help="upstream base URL, e.g. http://127.0.0.1:9000")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="listen port (default 0 = ephemeral)")
    p.add_argument("--latency-ms", type=float, default=0.0,
                   help="first-byte latency per request in milliseconds (default 0)")
    p.add_argument("--bandwidth-mbps", type=float, default=None,
                   help="per-connection response cap in MEGABYTES/s (1e6 bytes/s); default none")
    for flag, kind in (("503", "slowdown_503"), ("500", "error_500"),
                       ("reset", "reset_mid_body"), ("truncate", "truncate_body")):
        p.add_argument(f"--fault-{flag}", dest=kind, type=float, default=0.0, metavar="P",
                       help=f"per-request probability of a {kind} fault (default 0)")
    p.add_argument("--fault-methods", default="GET",
                   help="comma-separated methods faults apply to (default GET)")
    p.add_argument("--seed", type=int, default=1, help="fault RNG seed (default 1)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    faults = Faults(slowdown_503=args.slowdown_503, error_500=args.error_500,
                    reset_mid_body=args.reset_mid_body, truncate_body=args.truncate_body,
                    methods=tuple(m.strip() for m in args.fault_methods.split(",") if m.strip()))
    bandwidth = args.bandwidth_mbps * 1e6 if args.bandwidth_mbps else None
    proxy = ShapingProxy(args.upstream, host=args.host, port=args.port,
                         latency_s=args.latency_ms / 1000, bandwidth_bps=bandwidth,
                         faults=faults, seed=args.seed).start()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(proxy.url, flush=True)
    while not done.wait(0.5):
        pass
    proxy.stop()
    print(json.dumps(proxy.stats().as_dict(), indent=2), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
