"""``wj demo`` end to end, as a user runs it (a fresh process, its own rig): the checkpointed
query is killed with tasks committed, ``wj resume`` runs only the rest, and the result equals
Spark's. A smaller scale factor than the default keeps it to about a minute."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_demo_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # its own rig
    out = subprocess.run(
        [sys.executable, "-m", "spark_conf.entry", "demo", "--scale", "0.05",
         "--data-dir", str(tmp_path / "tpch")],
        env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    killed = re.search(r"SIGKILL .* with (\d+)/(\d+) tasks committed", text)
    assert killed, text
    committed, total = int(killed[1]), int(killed[2])
    assert 0 < committed < total
    resumed = re.search(r"ran (\d+) task\(s\), (\d+) already committed", text)
    assert resumed, text
    # A commit may land between the last status poll and the kill: at least those.
    ran, already = int(resumed[1]), int(resumed[2])
    assert already >= committed and ran + already == total and ran > 0
    assert "EQUAL to Spark's answer" in text and "OK: the query survived" in text
    assert re.search(r"native IO\s+\d+ S3 requests", text)
