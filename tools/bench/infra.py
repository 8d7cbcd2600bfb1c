"""Benchmark plumbing: the S3 endpoint and the shaping proxy in their own processes (so their
Python event loops do not share a GIL with the readers under test), and a raw parallel range-GET
client used to measure the endpoint's and the proxy's throughput."""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from urllib.parse import quote, urlsplit

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class S3ServerProcess:
    """``python -m tools.s3server --root DIR`` as a child process."""

    def __init__(self, root: str):
        self.root = root
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> S3ServerProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "tools.s3server", "--root", self.root],
                                     stdout=subprocess.PIPE, text=True, env=_env(), cwd=REPO)
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"s3server failed to start: {line!r}")
        self.url = line.split("listening on ", 1)[1].split()[0]
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _proxy_host(upstream: str, latency_s: float, bandwidth_bps: float | None) -> None:
    """Child side: run the proxy, answer JSON-line commands on stdin until 'stop'/EOF."""
    from tools.proxy import ShapingProxy

    proxy = ShapingProxy(upstream=upstream, latency_s=latency_s, bandwidth_bps=bandwidth_bps)
    proxy.start()
    out = sys.stdout
    out.write(json.dumps({"url": proxy.url}) + "\n")
    out.flush()
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            reply = None
            if cmd["op"] == "stop":
                break
            if cmd["op"] == "stats":
                reply = proxy.stats().as_dict()
            elif cmd["op"] == "reset":
                proxy.reset_stats()
            elif cmd["op"] == "shaping":
                proxy.set_shaping(cmd["latency_s"], cmd["bandwidth_bps"])
            out.write(json.dumps({"reply": reply}) + "\n")
            out.flush()
    finally:
        proxy.stop()


class ProxyProcess:
    """``tools.proxy.ShapingProxy`` hosted in a child process, driven over a pipe."""

    def __init__(self, upstream: str, latency_s: float, bandwidth_bps: float | None):
        self.args = (upstream, latency_s, bandwidth_bps)
        self.url = ""
        self.proc: subprocess.Popen | None = None

    def start(self) -> ProxyProcess:
        upstream, latency_s, bw = self.args
        cmd = [sys.executable, "-m", "tools.bench.infra", "--upstream", upstream,
               "--latency-s", repr(latency_s), "--bandwidth-bps", repr(bw or 0)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=_env(), cwd=REPO)
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("shaping proxy failed to start (is tools/proxy.py present?)")
        self.url = json.loads(line)["url"]
        return self

    def _call(self, op: str, **kw):
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["reply"]

    def stats(self) -> dict:
        return self._call("stats")

    def reset_stats(self) -> None:
        self._call("reset")

    def set_shaping(self, latency_s: float | None, bandwidth_bps: float | None) -> None:
        self._call("shaping", latency_s=latency_s, bandwidth_bps=bandwidth_bps)

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.write(json.dumps({"op": "stop"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _recv_head(sock: socket.socket) -> tuple[int, int, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, length, rest


def presigned_path(url: str, bucket: str, key: str) -> str:
    """Path + query of a SigV4 presigned GET for ``url`` (works against S3/MinIO, where a bare
    GET would be refused; the Range header is not part of a presigned signature)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        return "/" + quote(bucket) + "/" + quote(key)
    s3 = boto3.client("s3", endpoint_url=url,
                      region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                      config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    signed = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                       ExpiresIn=3600)
    parts = urlsplit(signed)
    return parts.path + ("?" + parts.query if parts.query else "")


def range_get_throughput(url: str, bucket: str, key: str, size: int, *, concurrency: int,
                         chunk: int, total: int) -> dict:
    """Fetch ``total`` bytes of ``s3://bucket/key`` as ``chunk``-byte range GETs over
    ``concurrency`` keep-alive connections (raw sockets, one thread each; the body goes into a
    reused buffer, so the client costs little CPU). Returns aggregate throughput and the
    median time to first response byte."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"raw throughput needs an http:// endpoint, got {url!r}")
    addr = (parts.hostname, parts.port or 80)
    path = presigned_path(url, bucket, key)
    n_req = max(concurrency, total // chunk)
    starts = [(i * chunk) % max(1, size - chunk) for i in range(n_req)]
    lock = threading.Lock()
    next_i = [0]
    first_bytes: list[float] = []
    got = [0]
    errors: list[BaseException] = []

    def worker():
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        try:
            sock = socket.create_connection(addr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            with sock:
                while True:
                    with lock:
                        i = next_i[0]
                        next_i[0] += 1
                    if i >= n_req:
                        return
                    a = starts[i]
                    req = (f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                           f"Range: bytes={a}-{a + chunk - 1}\r\n\r\n").encode()
                    t0 = time.perf_counter()
                    sock.sendall(req)
                    status, length, rest = _recv_head(sock)
                    fb = time.perf_counter() - t0
                    if status != 206:
                        raise RuntimeError(f"range GET returned {status}")
                    remaining = length - len(rest)
                    while remaining > 0:
                        n = sock.recv_into(view, min(remaining, len(buf)))
                        if n == 0:
                            raise ConnectionError("short body")
                        remaining -= n
                    with lock:
                        first_bytes.append(fb)
                        got[0] += length
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return {"concurrency": concurrency, "chunk_bytes": chunk, "requests": n_req,
            "bytes": got[0], "seconds": elapsed, "MBps": got[0] / elapsed / 1e6,
            "first_byte_ms_median": 1000 * statistics.median(first_bytes)}


def measure(url: str, bucket: str, key: str, size: int, levels, chunk: int = 8 << 20,
            seconds: float = 1.5, per_conn_MBps: float | None = None,
            cap_MBps: float = 1500.0) -> dict:
    """Aggregate throughput at several concurrency levels (each sized to last ~``seconds``);
    ``best_MBps`` is the max over levels."""
    runs = []
    for c in levels:
        expect = min(cap_MBps, per_conn_MBps * c) if per_conn_MBps else cap_MBps
        total = int(expect * 1e6 * seconds) // chunk * chunk
        total = max(c * chunk, min(total, 2 << 30))
        runs.append(range_get_throughput(url, bucket, key, size, concurrency=c, chunk=chunk,
                                         total=total))
    best = max(runs, key=lambda r: r["MBps"])
    return {"levels": runs, "best_MBps": best["MBps"], "best_concurrency": best["concurrency"]}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="(internal) host tools.proxy for the benchmark")
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--latency-s", type=float, default=0.0)
    ap.add_argument("--bandwidth-bps", type=float, default=0.0)
    ns = ap.parse_args()
    _proxy_host(ns.upstream, ns.latency_s, ns.bandwidth_bps or None)
