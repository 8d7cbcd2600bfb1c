"""Scan cost of TPC-H queries on the native executor: process CPU and wall of each query's
scans, and of the whole native plan, without Spark in the timed process.

    python -m tools.bench.scan_bench plan --scale 1 --queries 1,4,12,19,21 --out plans.json
    python -m tools.bench.scan_bench time plans.json [--runs 3]

``plan`` asks Spark (``local[2]``, the TPC-H benchmark's settings) for each query's optimized
plan and saves the translated IR (``executor.ir.serde``). ``time`` loads it and, per query and
run, reads every scan of the plan (each partition of ``ExecContext().parallelism``, as the
runner splits them) to the end, then runs the whole plan with ``run_distributed``; it reports
the median over runs of wall time and of this process's CPU time (``time.process_time``:
every thread's, which on a shared machine says more than wall). Timing plans saved once lets
two versions of the code be timed alternately on the same plans.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def plan(scale: float, queries: list[int], out: Path, data_dir: Path | None) -> None:
    from executor.frontend.spark import native_plan
    from executor.ir.serde import to_json
    from tools.bench.tpch_bench import (
        SPARK_CONF,
        _env_defaults,
        ensure_data,
        register_tables,
        start_spark,
    )
    from tools.tpch import query_name, query_text

    _env_defaults()
    spark = start_spark(SPARK_CONF)
    register_tables(spark, ensure_data(scale, data_dir))
    plans = {query_name(n): json.loads(to_json(native_plan(spark, query_text(n))))
             for n in queries}
    out.write_text(json.dumps({"scale": scale, "plans": plans}))
    print(f"wrote {len(plans)} plans to {out}")


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_plans(path: Path, runs: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from executor.context import ExecContext
    from executor.distribute import run_distributed
    from executor.ir import relations as rel
    from executor.ir.serde import from_json
    from executor.operators.scan import ScanExec

    saved = json.loads(path.read_text())
    plans = {q: from_json(json.dumps(p)) for q, p in saved["plans"].items()}
    parallelism = ExecContext().parallelism

    def read_scans(root) -> None:
        ctx = ExecContext(num_partitions=parallelism)  # sources are opened once per context
        with ThreadPoolExecutor(parallelism) as pool:
            for scan in (n for n in root.walk() if isinstance(n, rel.Scan)):
                op = ScanExec(scan)
                list(pool.map(lambda p, op=op: sum(b.num_rows for b in op.execute(p, ctx)),
                              range(parallelism)))

    print(f"| query | scans wall s | scans CPU s | plan wall s | plan CPU s |  (median of "
          f"{runs}, parallelism {parallelism})")
    totals = [0.0] * 4
    for q, root in plans.items():
        read_scans(root)  # warm-up: the OS page cache and imports
        scans = [_timed(lambda root=root: read_scans(root)) for _ in range(runs)]
        whole = [_timed(lambda root=root: run_distributed(root, ExecContext()))
                 for _ in range(runs)]
        row = [statistics.median(t[i] for t in ts) for ts in (scans, whole) for i in (0, 1)]
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        print(f"| {q} | " + " | ".join(f"{v:.3f}" for v in row) + " |", flush=True)
    print("| total | " + " | ".join(f"{v:.3f}" for v in totals) + " |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("plan", help="save the IR plans of TPC-H queries (needs Spark)")
    pp.add_argument("--scale", type=float, default=1)
    pp.add_argument("--queries", default="1,4,12,19,21")
    pp.add_argument("--data-dir", type=Path)
    pp.add_argument("--out", type=Path, required=True)
    pt = sub.add_parser("time", help="time the scans and plans saved by `plan`")
    pt.add_argument("plans", type=Path)
    pt.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    if args.command == "plan":
        from tools.bench.tpch_bench import parse_queries

        plan(args.scale, parse_queries(args.queries), args.out, args.data_dir)
    else:
        time_plans(args.plans, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
