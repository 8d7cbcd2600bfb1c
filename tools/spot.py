"""Spot-interruption tool: kill a checkpointed query at random points, resume, compare.

    python -m tools.spot --query 9 --scale 0.1 --runs 20 [--seed 1] [--runner process]

Spark plans the TPC-H query once (over the tables in the rig); the plan is written as a
checkpointed query (``plan.json``), and each run is then:

1. ``wj resume <root>`` in a fresh process group (driver + worker processes with
   ``--runner process``), started from nothing committed;
2. SIGKILL of the whole group at a random point: once a random number ``n`` of tasks (0 to
   all but one) have committed, after a further random 0-0.5 s, or as soon as task ``n + 1``
   commits if that comes first (so the kill lands before it, not after the query ends);
3. ``wj status --json`` (what had committed), then ``wj resume <root>`` in a fresh process:
   its result must equal the uninterrupted run's, and it must run exactly the tasks that had
   not committed (no committed task runs again).

One line per run and a summary; exit status 1 on any mismatch. Starts its own rig unless
``AWS_ENDPOINT_URL`` is set. Not a test: the CI suite runs a few kill points
(``tests/checkpoint``); this is the long randomized run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import pyarrow.parquet as pq

BUCKET = "wjio-spot"


def _wj(*argv: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spark_conf.entry", *argv],
                          capture_output=True, text=True, timeout=timeout)


def _resume(root: str, out: Path, runner: str) -> tuple[float, int, int]:
    """Resume to the end; ``(seconds, tasks ran, tasks already committed)`` (``-1``: the
    result itself was committed, nothing ran)."""
    t0 = time.perf_counter()
    p = _wj("resume", root, "--output", str(out), "--runner", runner)
    if p.returncode != 0:
        raise SystemExit(f"spot: wj resume {root} failed:\n{p.stderr[-3000:]}")
    if "read the committed result" in p.stderr:  # the killed run had finished
        return time.perf_counter() - t0, 0, -1
    m = re.search(r"ran (\d+) task\(s\), (\d+) already committed", p.stderr)
    if not m:
        raise SystemExit(f"spot: cannot read what wj resume ran:\n{p.stderr[-2000:]}")
    return time.perf_counter() - t0, int(m[1]), int(m[2])


def _committed(root: str) -> tuple[int, int]:
    p = _wj("status", root, "--json", timeout=120)
    if p.returncode != 0:
        raise SystemExit(f"spot: wj status {root} failed:\n{p.stderr[-2000:]}")
    s = json.loads(p.stdout)
    return s["committed"], s["tasks"]


def _progress(root: str) -> int:
    """Tasks committed so far (0 before the query's plan.json exists)."""
    from checkpoint.status import status_once_created

    status = status_once_created(root)
    return 0 if status is None else status.committed


def _plan(query: int, tables: dict[str, str], parallelism: int):
    from executor.context import ExecContext
    from executor.distribute import physical_plan
    from executor.frontend.catalog import register
    from executor.frontend.session import planning_session
    from executor.frontend.spark import to_ir
    from tools.tpch import query_text

    spark = planning_session()
    catalog = register(spark, tables)
    try:
        plan = catalog.retarget(to_ir(spark, query_text(query)))
    finally:
        catalog.close()
    return physical_plan(plan, ExecContext(parallelism=parallelism))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.spot", description=__doc__.split("\n")[0])
    ap.add_argument("--query", type=int, default=9, help="TPC-H query number (default 9)")
    ap.add_argument("--scale", type=float, default=0.1, help="TPC-H scale factor (default 0.1)")
    ap.add_argument("--runs", type=int, default=20, help="kill points (default 20)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runner", choices=("thread", "process"), default="process")
    ap.add_argument("--parallelism", type=int, default=2)
    ap.add_argument("--data-dir", help="TPC-H cache (default ~/.cache/wjio/tpch-sf<scale>)")
    args = ap.parse_args(argv)

    from checkpoint.query import create_query
    from spark_conf import tpch
    from wjio import rig

    rng = random.Random(args.seed)
    with ExitStack() as stack:
        if not os.environ.get("AWS_ENDPOINT_URL"):
            r = stack.enter_context(rig.start(buckets=(BUCKET,)))
            os.environ.update(r.env())
            print(f"spot: rig ({r.kind}) at {r.endpoint_url}", file=sys.stderr)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wj-spot-")))
        data = Path(args.data_dir or Path.home() / ".cache" / "wjio" / f"tpch-sf{args.scale:g}")
        tpch.generate(data, args.scale, log=lambda m: print(f"spot: {m}", file=sys.stderr))
        tpch.upload(data, os.environ["AWS_ENDPOINT_URL"], BUCKET, "tpch", log=lambda m: None)
        tables = {t: f"s3://{BUCKET}/tpch/{t}/" for t in tpch.TABLES}
        plan = _plan(args.query, tables, args.parallelism)
        options = {"scan_partitions": args.parallelism, "batch_size": 64 * 1024}

        def fresh() -> str:
            return create_query(plan, f"s3://{BUCKET}/spot/", options=options).root.uri

        reference = tmp / "reference.parquet"
        full, total_tasks, _ = _resume(fresh(), reference, args.runner)
        expected = pq.read_table(reference)
        print(f"spot: TPC-H Q{args.query} SF {args.scale:g}: uninterrupted {full:.2f} s, "
              f"{total_tasks} tasks, {expected.num_rows} rows; {args.runs} kill points follow")
        mismatches = reran = finished_first = 0
        for i in range(args.runs):
            root = fresh()
            # A random point: once a random number of tasks (0..all-1) have committed, plus a
            # random 0-0.5 s, so kills land inside tasks and between them; at the latest when
            # the next commit shows (tasks committing in a burst would otherwise let the
            # extra time run past the end of the query).
            target = rng.randrange(total_tasks)
            extra = rng.uniform(0, 0.5)
            child = subprocess.Popen(
                [sys.executable, "-m", "spark_conf.entry", "resume", root, "--output",
                 str(tmp / "killed.parquet"), "--runner", args.runner],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            t0 = time.perf_counter()
            reached = None
            while child.poll() is None:
                done = _progress(root)
                if done > target:
                    break
                if done == target:
                    reached = reached or time.perf_counter()
                    if time.perf_counter() - reached >= extra:
                        break
                time.sleep(0.02)
            delay = time.perf_counter() - t0
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)  # driver and all its workers
            else:
                finished_first += 1
            child.wait()
            committed, tasks = _committed(root)
            seconds, ran, skipped = _resume(root, tmp / f"run{i}.parquet", args.runner)
            same = pq.read_table(tmp / f"run{i}.parquet").equals(expected)
            # A result the killed run had committed is read back (skipped == -1).
            exact = skipped == -1 or (ran, skipped) == (tasks - committed, committed)
            mismatches += not same
            reran += not exact
            print(f"run {i + 1:2d}: kill after {delay:5.2f} s at {committed:2d}/{tasks} "
                  f"committed; resume ran {ran:2d} task(s) in {seconds:5.2f} s; "
                  f"result {'equal' if same else 'DIFFERENT'}"
                  f"{'' if exact else '; RE-RAN COMMITTED WORK'}", flush=True)
        print(f"spot: {args.runs} kill points, {mismatches} mismatches, "
              f"{reran} resumes that re-ran committed tasks, "
              f"{finished_first} runs finished before their kill")
    return 1 if mismatches or reran else 0


if __name__ == "__main__":
    sys.exit(main())
