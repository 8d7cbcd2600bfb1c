"""The local S3 rig: an S3 endpoint on 127.0.0.1 for the demo, users' local testing and tests.

MinIO when a ``minio`` binary is on PATH (or named by ``WJ_MINIO_BINARY``), otherwise moto's
standalone server. Both speak plain S3 over HTTP, so nothing above this module knows which
one runs. The rig's credentials are fixed, public, local-only values (the server listens on
loopback only): nothing secret is generated, printed or written to disk.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import botocore.config
import botocore.session

from wjio.errors import WjioError

ACCESS_KEY = "wjio-rig"
SECRET_KEY = "wjio-rig-local-only"  # public by design: a loopback-only development server
REGION = "us-east-1"
DEFAULT_BUCKETS = ("wjio",)


class RigError(WjioError):
    """The rig could not start, or no rig is running."""


@dataclass
class Rig:
    """A running S3 endpoint. ``env()`` gives the standard AWS variables pointing at it."""

    endpoint_url: str
    kind: str  # "minio" | "moto" | "external"
    pid: int | None = None
    data_dir: str | None = None
    access_key: str = ACCESS_KEY
    secret_key: str = field(default=SECRET_KEY, repr=False)
    region: str = REGION
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def client(self):
        """A plain (sync) botocore S3 client for setup work: buckets, uploads, listings."""
        session = botocore.session.get_session()
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=botocore.config.Config(
                s3={"addressing_style": "path"},
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 5, "mode": "standard"},
            ),
        )

    def create_buckets(self, *names: str) -> None:
        client = self.client()
        for name in names:
            try:
                client.create_bucket(Bucket=name)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass

    def stop(self) -> None:
        if self._proc is not None:
            _terminate(self._proc)
            self._proc = None
        elif self.pid is not None and self.kind != "external":
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def minio_binary() -> str | None:
    explicit = os.environ.get("WJ_MINIO_BINARY")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RigError(f"WJ_MINIO_BINARY={explicit!r} is not an executable file")
        return explicit
    return shutil.which("minio")


def start(
    *,
    buckets: tuple[str, ...] = DEFAULT_BUCKETS,
    data_dir: str | None = None,
    port: int = 0,
    detach: bool = False,
    timeout_s: float = 30.0,
) -> Rig:
    """Start an S3 endpoint on 127.0.0.1 and create ``buckets``.

    ``detach=True`` starts it in its own session so it outlives this process (``wj rig up``).
    """
    binary = minio_binary()
    tmp = None
    if data_dir is None and binary:
        tmp = tempfile.TemporaryDirectory(prefix="wj-rig-")
        data_dir = tmp.name
    port = port or _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    if data_dir is not None:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
    if binary:
        kind = "minio"
        cmd = [binary, "server", data_dir, "--address", f"127.0.0.1:{port}",
               "--console-address", f"127.0.0.1:{_free_port()}", "--quiet"]
        env.update(MINIO_ROOT_USER=ACCESS_KEY, MINIO_ROOT_PASSWORD=SECRET_KEY)
        ready_url = f"{endpoint}/minio/health/live"
    else:
        kind = "moto"
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        ready_url = f"{endpoint}/moto-api/"
    log_path = Path(data_dir or tempfile.gettempdir()) / f"wj-rig-{port}.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True,
        )
    rig = Rig(endpoint, kind, pid=proc.pid, data_dir=data_dir,
              _proc=None if detach else proc, _tmp=tmp)
    try:
        _wait_ready(ready_url, proc, timeout_s, log_path)
        rig.create_buckets(*buckets)
    except BaseException:
        _terminate(proc)
        if tmp is not None:
            tmp.cleanup()
        raise
    return rig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise RigError(f"S3 endpoint exited with code {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RigError(f"S3 endpoint did not answer at {url} within {timeout_s:.0f}s (log: {log_path})")


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)


# -- the detached rig of `wj rig up|down|env`: its state (no credentials) lives in a file ----


def state_path() -> Path:
    base = os.environ.get("WJ_RIG_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "wj", "rig"
    )
    return Path(base) / "rig.json"


def up(*, buckets: tuple[str, ...] = DEFAULT_BUCKETS, port: int = 0) -> Rig:
    existing = running()
    if existing is not None:
        existing.create_buckets(*buckets)
        return existing
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    rig = start(buckets=buckets, port=port, detach=True, data_dir=str(path.parent / "data"))
    path.write_text(json.dumps({"endpoint_url": rig.endpoint_url, "kind": rig.kind,
                                "pid": rig.pid, "data_dir": rig.data_dir}))
    return rig


def running() -> Rig | None:
    """The detached rig recorded in the state file, if its process is alive."""
    path = state_path()
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    try:
        os.kill(state["pid"], 0)
    except (ProcessLookupError, PermissionError):
        path.unlink(missing_ok=True)
        return None
    return Rig(state["endpoint_url"], state["kind"], pid=state["pid"], data_dir=state["data_dir"])


def down() -> bool:
    rig = running()
    if rig is None:
        return False
    rig.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(rig.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    state_path().unlink(missing_ok=True)
    return True
