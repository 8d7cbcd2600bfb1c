"""Checkpointed exchange vs in-memory exchange, and time to finish after a kill.

    python -m tools.bench.checkpoint_bench [--scale 1] [--parts 8] [--queries 1,3,5,9,18]
        [--runs 3] [--kill-at 0.7] [--out bench-results]

TPC-H through the S3 rig (its own, unless ``AWS_ENDPOINT_URL`` is set); the data is split
into ``--parts`` files per table so moto's server (which reads a whole object for every range
GET) stays fast enough. Spark plans each query once; then, in this process, with the same
physical plan and the same inputs on the rig:

- **in-memory**: ``run_parallel`` (stage outputs in memory);
- **checkpointed**: ``run_checkpointed`` under a fresh query root (every stage's output
  written to the store, committed with ``If-None-Match``, read back with ranged GETs);

median of ``--runs`` after a warm-up of each. Then, per query, in fresh processes (``wj
resume`` on a fresh root, as after a cluster loss): one uninterrupted run, and one killed
(SIGKILL of the process group) once ``--kill-at`` of its tasks have committed and finished
by ``wj resume`` -- the resume time is compared with the uninterrupted run's. Bytes and
objects written per query come from ``wj status``.

Targets (issue 4): checkpointed total <= 1.15 x in-memory total; resume after a kill at
~70% <= 0.40 x an uninterrupted run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack, closing
from pathlib import Path

BUCKET = "wjio-ckbench"


def _wj(*argv: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "spark_conf.entry", *argv],
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise SystemExit(f"checkpoint_bench: wj {argv[0]} failed:\n{p.stderr[-3000:]}")
    return p


def _kill_and_resume(root: str, kill_at: float) -> dict:
    from checkpoint.status import status_once_created

    child = subprocess.Popen([sys.executable, "-m", "spark_conf.entry", "resume", root,
                              "--format", "csv"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    t0 = time.perf_counter()
    at = None
    while child.poll() is None:
        s = status_once_created(root)
        if s is not None and s.tasks and s.committed >= kill_at * s.tasks:
            os.killpg(child.pid, signal.SIGKILL)
            at = (s.committed, s.tasks, time.perf_counter() - t0)
            break
        time.sleep(0.02)
    child.wait()
    if at is None:
        return {"killed": False}
    t1 = time.perf_counter()
    _wj("resume", root, "--format", "csv")
    return {"killed": True, "committed": at[0], "tasks": at[1], "killed_after_s": at[2],
            "resume_s": time.perf_counter() - t1}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench.checkpoint_bench",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--parts", type=int, default=8, help="files per table (default 8)")
    ap.add_argument("--queries", default="1,3,5,9,18")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--kill-at", type=float, default=0.7)
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    args = ap.parse_args(argv)

    import pyarrow.parquet  # noqa: F401  (fail early without pyarrow)

    from checkpoint.query import create_query, run_checkpointed
    from checkpoint.status import query_status
    from executor.context import ExecContext
    from executor.distribute import physical_plan
    from executor.frontend.catalog import register
    from executor.frontend.session import planning_session
    from executor.frontend.spark import to_ir
    from executor.stages import run_parallel
    from spark_conf import tpch
    from tools.tpch import query_text
    from wjio import rig

    queries = [int(q) for q in args.queries.split(",")]
    results: dict = {"scale": args.scale, "parts": args.parts, "runs": args.runs,
                     "kill_at": args.kill_at, "queries": {}}
    with ExitStack() as stack:
        if not os.environ.get("AWS_ENDPOINT_URL"):
            r = stack.enter_context(rig.start(buckets=(BUCKET,)))
            os.environ.update(r.env())
            results["endpoint"] = r.kind
        data = args.data_dir or Path(".wj/tpch") / f"sf{args.scale:g}-p{args.parts}"
        tpch.generate(data, args.scale, parts=args.parts, log=print)
        tpch.upload(data, os.environ["AWS_ENDPOINT_URL"], BUCKET, "tpch", log=lambda m: None)
        tables = {t: f"s3://{BUCKET}/tpch/{t}/" for t in tpch.TABLES}
        spark = planning_session()
        catalog = stack.enter_context(closing(register(spark, tables)))
        for q in queries:
            ctx = ExecContext(parallelism=2)
            plan = physical_plan(catalog.retarget(to_ir(spark, query_text(q))), ctx)
            times: dict[str, list[float]] = {"memory": [], "checkpoint": []}
            root = None
            for i in range(args.runs + 1):  # the first of each is a warm-up
                t0 = time.perf_counter()
                expected = run_parallel(plan, ExecContext(parallelism=2))
                if i:
                    times["memory"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                got = run_checkpointed(plan, f"s3://{BUCKET}/ck/", ExecContext(parallelism=2))
                if i:
                    times["checkpoint"].append(time.perf_counter() - t0)
                if not got.table.equals(expected):
                    raise SystemExit(f"Q{q}: checkpointed result differs from in-memory")
                root = got.root.uri
            status = query_status(root)
            options = {"scan_partitions": 2, "batch_size": 64 * 1024}
            fresh = create_query(plan, f"s3://{BUCKET}/ck/", options=options).root.uri
            t0 = time.perf_counter()
            _wj("resume", fresh, "--format", "csv")
            uninterrupted = time.perf_counter() - t0
            killed = _kill_and_resume(
                create_query(plan, f"s3://{BUCKET}/ck/", options=options).root.uri,
                args.kill_at)
            row = {
                "memory_s": statistics.median(times["memory"]),
                "checkpoint_s": statistics.median(times["checkpoint"]),
                "objects_written": status.objects, "bytes_written": status.stored_bytes,
                "tasks": status.tasks, "uninterrupted_process_s": uninterrupted, **killed,
            }
            row["overhead"] = row["checkpoint_s"] / row["memory_s"] - 1
            if killed.get("killed"):
                row["resume_ratio"] = killed["resume_s"] / uninterrupted
            results["queries"][f"q{q:02d}"] = row
            print(json.dumps({f"q{q:02d}": row}), flush=True)
    qs = results["queries"].values()
    mem, ck = sum(r["memory_s"] for r in qs), sum(r["checkpoint_s"] for r in qs)
    ratios = [r["resume_ratio"] for r in qs if "resume_ratio" in r]
    results["total"] = {"memory_s": mem, "checkpoint_s": ck, "overhead": ck / mem - 1,
                        "resume_ratio_median": statistics.median(ratios) if ratios else None,
                        "resume_ratio_max": max(ratios) if ratios else None}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"checkpoint_bench_sf{args.scale:g}.json").write_text(
        json.dumps(results, indent=1) + "\n")
    md = _markdown(results)
    (args.out / f"checkpoint_bench_sf{args.scale:g}.md").write_text(md)
    print(md)
    return 0


def _markdown(r: dict) -> str:
    lines = [f"# Checkpointed vs in-memory exchange, TPC-H SF {r['scale']:g} "
             f"({r['parts']} files/table, {r.get('endpoint', 'external endpoint')})", "",
             f"Median of {r['runs']} in-process runs after a warm-up; kill at "
             f"{r['kill_at']:.0%} of tasks committed, then `wj resume` (fresh processes).", "",
             "| query | in-memory s | checkpointed s | overhead | tasks | objects | MB written "
             "| uninterrupted (process) s | killed at | resume s | resume / uninterrupted |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for q, x in r["queries"].items():
        kill = f"{x['committed']}/{x['tasks']}" if x.get("killed") else "finished first"
        res = f"{x['resume_s']:.2f}" if x.get("killed") else "-"
        ratio = f"{x['resume_ratio']:.0%}" if "resume_ratio" in x else "-"
        lines.append(f"| {q} | {x['memory_s']:.2f} | {x['checkpoint_s']:.2f} | "
                     f"{x['overhead']:+.0%} | {x['tasks']} | {x['objects_written']} | "
                     f"{x['bytes_written'] / 1e6:.1f} | {x['uninterrupted_process_s']:.2f} | "
                     f"{kill} | {res} | {ratio} |")
    t = r["total"]
    lines += ["", f"Total: in-memory {t['memory_s']:.2f} s, checkpointed {t['checkpoint_s']:.2f} s "
              f"(overhead {t['overhead']:+.1%}; target <= +15%). Resume after kill / "
              f"uninterrupted: median {t['resume_ratio_median'] or 0:.0%}, max "
              f"{t['resume_ratio_max'] or 0:.0%} (target <= 40%).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
