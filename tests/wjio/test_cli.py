"""The ``wj`` command as a user runs it: a real subprocess against the rig."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa

from tests.conftest import TEST_BUCKET


def wj(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spark_conf.entry", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


def test_help_lists_subcommands():
    out = wj("--help")
    assert out.returncode == 0
    for cmd in ("scan", "rig", "sql", "demo"):
        assert cmd in out.stdout
    assert wj("scan", "--help").returncode == 0


def test_scan_prints_rows_and_stats(put, prefix):
    t = pa.table({"a": list(range(100)), "b": [f"s{i}" for i in range(100)]})
    uri = put(prefix + "f.parquet", t, row_group_size=10)
    out = wj("scan", uri, "--columns", "a,b", "--where", "a >= 95", "--json", "--limit", "0")
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["rows"] == 5 and stats["row_groups_pruned"] == 9
    out = wj("scan", uri, "--where", "b = 's7'", "--stats")
    assert out.returncode == 0, out.stderr
    assert "s7" in out.stdout and "IO report" in out.stdout and "1 rows" in out.stderr


def test_scan_errors_are_one_clear_line(put, prefix):
    out = wj("scan", f"s3://{TEST_BUCKET}/{prefix}nothing-here.parquet")
    assert out.returncode == 2
    assert "error:" in out.stderr and "nothing-here.parquet" in out.stderr
    assert "Traceback" not in out.stderr
    uri = put(prefix + "f.parquet", pa.table({"a": [1]}))
    out = wj("scan", uri, "--where", "a >")
    assert out.returncode == 2 and "--where" in out.stderr


def test_rig_up_env_down(tmp_path):
    env = {"WJ_RIG_DIR": str(tmp_path)}
    up = wj("rig", "up", "--bucket", "cli-bucket", env=env)
    try:
        assert up.returncode == 0, up.stderr
        exported = wj("rig", "env", env=env)
        assert exported.returncode == 0
        lines = dict(
            line.removeprefix("export ").split("=", 1) for line in exported.stdout.splitlines()
        )
        assert lines["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        again = wj("rig", "up", env=env)  # idempotent: the same rig
        assert again.returncode == 0 and lines["AWS_ENDPOINT_URL"] in again.stderr
        state = (tmp_path / "rig.json").read_text()
        assert "wjio-rig-local-only" not in state  # no credentials on disk
    finally:
        down = wj("rig", "down", env=env)
    assert down.returncode == 0
    assert wj("rig", "env", env=env).returncode == 1
