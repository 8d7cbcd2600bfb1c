"""Tests for tools.proxy against a real (threaded http.server) upstream on an ephemeral port."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tools.proxy import Faults, ShapingProxy, main

REPO = Path(__file__).resolve().parents[2]
BLOB = os.urandom(3_000_000)


class _Handler(BaseHTTPRequestHandler):
    """Tiny S3-ish object server: GET (with Range), HEAD, PUT, POST echo, odd framings."""

    protocol_version = "HTTP/1.1"
    server: _Upstream

    def log_message(self, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            parts = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b""):
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
              head_only: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def _object(self, head_only: bool) -> None:
        path = urlsplit(self.path).path
        self.server.hosts.append(self.headers.get("Host", ""))
        if path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (BLOB[:1000], BLOB[1000:70000], BLOB[70000:70001]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
            return
        if path == "/until-close":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(BLOB[:50000])
            self.close_connection = True
            return
        data = self.server.objects.get(path)
        if data is None:
            self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", head_only=head_only)
            return
        status, headers = 200, {"ETag": '"x"'}
        if m := re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "")):
            start, end = m.groups()
            if start:
                lo, hi = int(start), min(int(end) if end else len(data) - 1, len(data) - 1)
            else:
                lo, hi = max(0, len(data) - int(end)), len(data) - 1
            headers["Content-Range"] = f"bytes {lo}-{hi}/{len(data)}"
            status, data = 206, data[lo:hi + 1]
        self._send(status, data, headers, head_only)
        # Simulates a server dropping an idle keep-alive connection without saying so.
        self.close_connection = "close=1" in self.path

    def do_GET(self) -> None:
        self._object(head_only=False)

    def do_HEAD(self) -> None:
        self._object(head_only=True)

    def do_PUT(self) -> None:
        self.server.objects[urlsplit(self.path).path] = self._read_body()
        self._send(200, b"", {"ETag": '"put"'})

    def do_POST(self) -> None:
        self._send(200, self._read_body())

    def do_DELETE(self) -> None:
        self.server.objects.pop(urlsplit(self.path).path, None)
        self._send(204, b"")


class _Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.objects: dict[str, bytes] = {"/bucket/blob": BLOB, "/bucket/empty": b""}
        self.connections = 0
        self.hosts: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the proxy cuts upstream connections on purpose in the fault tests


@pytest.fixture(scope="module")
def upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def make_proxy(upstream: _Upstream) -> Iterator:
    proxies: list[ShapingProxy] = []

    def make(**kwargs: object) -> ShapingProxy:
        proxies.append(ShapingProxy(kwargs.pop("upstream", upstream.url), **kwargs).start())
        return proxies[-1]

    yield make
    for p in proxies:
        p.stop()


def _conn(proxy: ShapingProxy, timeout: float = 10.0) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=timeout)


def _get(proxy: ShapingProxy, path: str = "/bucket/blob", headers: dict | None = None,
         method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    c = _conn(proxy)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def test_get_and_ranges_are_byte_identical(make_proxy) -> None:
    p = make_proxy()
    assert _get(p)[2] == BLOB
    cases = {"bytes=10-99": BLOB[10:100], "bytes=2999000-": BLOB[2999000:],
             "bytes=-12345": BLOB[-12345:], "bytes=0-0": BLOB[:1]}
    for rng, want in cases.items():
        status, headers, body = _get(p, headers={"Range": rng})
        assert (status, body) == (206, want), rng
        assert int(headers["Content-Length"]) == len(want)


def test_host_header_is_forwarded_unchanged(make_proxy, upstream: _Upstream) -> None:
    p = make_proxy()
    _get(p, headers={"Host": "mybucket.s3.example:1234"})
    assert upstream.hosts[-1] == "mybucket.s3.example:1234"


def test_head_has_no_body_and_connection_stays_usable(make_proxy) -> None:
    p = make_proxy()
    c = _conn(p)
    c.request("HEAD", "/bucket/blob")
    r = c.getresponse()
    assert r.status == 200 and int(r.getheader("Content-Length")) == len(BLOB)
    assert r.read() == b""
    c.request("GET", "/bucket/blob", headers={"Range": "bytes=0-9"})
    assert c.getresponse().read() == BLOB[:10]
    c.request("GET", "/bucket/missing")
    r = c.getresponse()
    assert r.status == 404 and b"NoSuchKey" in r.read()
    c.close()


def test_put_post_delete_and_chunked_request_body(make_proxy) -> None:
    p = make_proxy()
    c = _conn(p)
    c.request("PUT", "/bucket/put", body=BLOB[:1_500_000])
    assert c.getresponse().read() == b""
    c.request("PUT", "/bucket/chunked", body=iter([BLOB[:100], BLOB[100:200_000]]),
              encode_chunked=True)
    assert c.getresponse().read() == b""
    c.request("POST", "/bucket/put?uploads", body=b"<xml/>")
    assert c.getresponse().read() == b"<xml/>"
    c.close()
    assert _get(p, "/bucket/put")[2] == BLOB[:1_500_000]
    assert _get(p, "/bucket/chunked")[2] == BLOB[:200_000]
    assert _get(p, "/bucket/chunked", method="DELETE")[0] == 204
    assert p.stats().bytes_from_client == 1_500_000 + 200_000 + 6


def test_expect_100_continue_does_not_hang(make_proxy) -> None:
    p = make_proxy()
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        s.sendall(b"PUT /bucket/expect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        assert s.recv(1000).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"hello")
        assert s.recv(1000).startswith(b"HTTP/1.1 200")
    assert _get(p, "/bucket/expect")[2] == b"hello"


def test_chunked_and_read_until_close_responses(make_proxy) -> None:
    p = make_proxy()
    assert _get(p, "/chunked")[2] == BLOB[:70001]
    assert _get(p, "/until-close")[2] == BLOB[:50000]


def test_keep_alive_reuses_both_connections(make_proxy, upstream: _Upstream) -> None:
    p = make_proxy()
    before = upstream.connections
    c = _conn(p)
    for i in range(5):
        c.request("GET", "/bucket/blob", headers={"Range": f"bytes={i}-{i + 9}"})
        assert c.getresponse().read() == BLOB[i:i + 10]
    c.close()
    s = p.stats()
    assert (s.connections, s.upstream_connections, s.requests) == (1, 1, 5)
    assert upstream.connections - before == 1


def test_stale_upstream_connection_is_replaced(make_proxy) -> None:
    p = make_proxy()
    c = _conn(p)
    for _ in range(3):
        c.request("GET", "/bucket/blob?close=1", headers={"Range": "bytes=0-3"})
        assert c.getresponse().read() == BLOB[:4]
        time.sleep(0.05)  # lets the upstream FIN arrive, as with a real idle timeout
    c.close()
    assert p.stats().upstream_connections == 3


def test_stats_count_requests_bytes_and_concurrency(make_proxy) -> None:
    p = make_proxy(latency_s=0.3)
    with ThreadPoolExecutor(6) as pool:
        bodies = list(pool.map(lambda _: _get(p, headers={"Range": "bytes=0-999"})[2], range(6)))
    assert bodies == [BLOB[:1000]] * 6
    _get(p, method="HEAD")
    s = p.stats()
    assert (s.requests, s.get_requests, s.requests_by_method) == (7, 6, {"GET": 6, "HEAD": 1})
    assert s.bytes_to_client == 6000 and s.max_in_flight == 6
    assert s.connections == 7 and s.as_dict()["faults_injected"] == {}
    p.reset_stats()
    assert p.stats().requests == 0 and p.stats().bytes_to_client == 0


@pytest.mark.parametrize(("kind", "status", "code"), [("slowdown_503", 503, "SlowDown"),
                                                      ("error_500", 500, "InternalError")])
def test_error_faults_return_s3_xml(make_proxy, kind: str, status: int, code: str) -> None:
    p = make_proxy(faults=Faults(**{kind: 1.0}, max_faults=1))
    c = _conn(p)
    c.request("GET", "/bucket/blob")
    r = c.getresponse()
    body = r.read()
    assert r.status == status and r.getheader("Content-Type") == "application/xml"
    assert int(r.getheader("Content-Length")) == len(body)
    assert f"<Error><Code>{code}</Code>".encode() in body
    if kind == "slowdown_503":
        assert b"<Message>Please reduce your request rate.</Message>" in body
    c.request("GET", "/bucket/blob")  # same connection keeps working once max_faults is hit
    assert c.getresponse().read() == BLOB
    c.close()
    assert p.stats().faults_injected == {kind: 1}


def _raw_get(proxy: ShapingProxy, path: str = "/bucket/blob") -> tuple[bytes, bytes, str]:
    """Read a response off a raw socket: (head, body bytes received, how it ended)."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        try:
            while chunk := s.recv(1 << 20):
                data += chunk
            ending = "eof"
        except ConnectionResetError:
            ending = "reset"
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body, ending


def test_reset_mid_body_fault(make_proxy) -> None:
    p = make_proxy(faults=Faults(reset_mid_body=1.0))
    _, body, ending = _raw_get(p)
    assert ending == "reset" and len(body) < len(BLOB)
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        _get(p)
    assert p.stats().faults_injected == {"reset_mid_body": 2}


def test_truncate_body_fault(make_proxy) -> None:
    p = make_proxy(faults=Faults(truncate_body=1.0))
    head, body, ending = _raw_get(p)
    assert ending == "eof" and head.startswith(b"HTTP/1.1 200")
    assert f"Content-Length: {len(BLOB)}".encode() in head
    assert 0 < len(body) < len(BLOB) and body == BLOB[:len(body)]
    _, _, body = _raw_get(p, "/chunked")
    assert len(body) < 1000
    with pytest.raises(http.client.IncompleteRead):
        _get(p)


def test_burst_then_clean_and_methods_filter(make_proxy) -> None:
    p = make_proxy(faults=Faults(burst=2, burst_kind="error_500"))
    assert _get(p, method="HEAD")[0] == 200  # HEAD is not in methods=("GET",)
    assert [_get(p, headers={"Range": "bytes=0-0"})[0] for _ in range(4)] == [500, 500, 206, 206]
    p.set_faults(Faults(slowdown_503=1.0, max_faults=3, methods=("GET", "HEAD")))
    assert [_get(p, method="HEAD")[0] for _ in range(5)] == [503, 503, 503, 200, 200]
    assert p.stats().faults_injected == {"error_500": 2, "slowdown_503": 3}


def test_fault_sequence_is_reproducible_with_seed(make_proxy) -> None:
    def statuses(seed: int) -> list[int]:
        p = make_proxy(faults=Faults(slowdown_503=0.5), seed=seed)
        return [_get(p, headers={"Range": "bytes=0-0"})[0] for _ in range(12)]

    first = statuses(7)
    assert first == statuses(7) and {503, 206} == set(first)


def test_latency_is_added(make_proxy) -> None:
    p = make_proxy(latency_s=0.15)
    c = _conn(p)
    for _ in range(2):
        t0 = time.perf_counter()
        c.request("GET", "/bucket/blob", headers={"Range": "bytes=0-9"})
        c.getresponse().read()
        assert 0.15 <= time.perf_counter() - t0 < 0.6
    p.set_shaping(latency_s=0.0)
    t0 = time.perf_counter()
    c.request("GET", "/bucket/blob", headers={"Range": "bytes=0-9"})
    c.getresponse().read()
    assert time.perf_counter() - t0 < 0.15
    c.close()


def test_bandwidth_cap_is_roughly_respected(make_proxy) -> None:
    p = make_proxy(bandwidth_bps=10e6)
    t0 = time.perf_counter()
    assert _get(p, headers={"Range": "bytes=0-1999999"})[2] == BLOB[:2_000_000]
    assert 0.18 <= time.perf_counter() - t0 < 0.6  # ideal 0.2 s
    p.set_shaping(bandwidth_bps=None)
    t0 = time.perf_counter()
    _get(p)
    assert time.perf_counter() - t0 < 0.25  # 3 MB: >= 0.3 s if the cap were still on


def test_upstream_down_gives_prompt_502(make_proxy) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, never listening: refused
        p = make_proxy(upstream=dead, latency_s=0.0)
        t0 = time.perf_counter()
        status, _, _ = _get(p)
        assert status == 502 and time.perf_counter() - t0 < 2
    assert p.stats().upstream_errors == 1


def test_hung_upstream_times_out_with_502(make_proxy) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()  # connections complete in the backlog but nobody ever answers
        p = make_proxy(upstream=f"http://127.0.0.1:{s.getsockname()[1]}", upstream_timeout=0.3)
        t0 = time.perf_counter()
        assert _get(p)[0] == 502
        assert 0.3 <= time.perf_counter() - t0 < 3


def test_context_manager_and_restart_safety(upstream: _Upstream) -> None:
    with ShapingProxy(upstream.url) as p:
        assert p.url == f"http://127.0.0.1:{p.port}" and p.port > 0
        assert _get(p, headers={"Range": "bytes=0-0"})[2] == BLOB[:1]
    with pytest.raises(OSError):
        _get(p)


def test_cli_help_mentions_megabytes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "MEGABYTES/s" in capsys.readouterr().out


def test_cli_serves_and_prints_stats_on_sigterm(upstream: _Upstream) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.proxy", "--upstream", upstream.url, "--latency-ms", "1"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        port = int(url.rsplit(":", 1)[1])
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/bucket/blob", headers={"Range": "bytes=0-4"})
        assert c.getresponse().read() == BLOB[:5]
        c.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0 and '"requests": 1' in err
