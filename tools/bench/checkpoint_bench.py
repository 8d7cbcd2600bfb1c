"""Checkpointed exchange vs in-memory exchange, and time to finish after a kill.

    python -m tools.bench.checkpoint_bench [--scale 1] [--parts 8] [--queries 1,3,5,9,18]
        [--runs 3] [--kill-at 0.7] [--inline-max BYTES] [--server s3server|rig]
        [--wj-python PYTHON] [--out bench-results]

TPC-H through a local S3 endpoint: ``--server s3server`` (the default) is tools/s3server.py
over a temporary directory (files served with ``sendfile``; ``If-None-Match`` and multipart
as S3), ``--server rig`` the S3 rig (MinIO when on PATH, else moto's server), unless
``AWS_ENDPOINT_URL`` is set. moto's server spends more CPU on the scans' range GETs (it
reads a whole object for each) and ~25 ms of CPU per request than the queries themselves do
on the same 2 cores, so through it the server, not the checkpoint, is what is measured. The
data is split into ``--parts`` files per table. Spark plans each query once; then, in this
process, with the same physical plan and the same inputs on that endpoint:

- **in-memory**: ``run_parallel`` (stage outputs in memory);
- **checkpointed**: ``run_checkpointed`` under a fresh query root (every stage's output
  written to the store, committed with ``If-None-Match``; the next stages read it from the
  process's local copies of what it committed, or with ranged GETs);

median of ``--runs`` after a warm-up of each, in wall time and in CPU time (this process
plus the endpoint's server when it runs here: on a shared machine CPU time moves less with
the other load than wall time does; the load average is recorded too). Then, per query, in
fresh processes (``wj resume`` on a fresh root, as after a cluster loss), ``--process-runs``
times each and alternating: an uninterrupted run, and a run killed (SIGKILL of the process
group) once ``--kill-at`` of its tasks have committed and finished by ``wj resume`` -- the
median resume time is compared with the median uninterrupted run (a fresh process has no
local copies: it reads the store). ``--wj-python`` runs those processes with another
interpreter: a venv with the product installed as a user installs it (``pip install .``,
without the dev extras, so without pandas, which pyarrow imports on first use when present).
Bytes and objects written per query come from ``wj status`` (the store's listing: data
objects and commit records, which carry the outputs of at most ``inline_max`` bytes). The
requests the checkpoint itself makes (``plan.json``, data objects, commit records, the
result; not the scans' reads, nor the inputs' listing, which ``plan.json`` takes from the
scans' own) are counted by method in one more checkpointed run through the shaping proxy
(tools/proxy.py, no shaping), untimed.
``--inline-max`` sets ``CheckpointOptions.inline_max`` of the in-process runs (0: every
output in a data object, as before inline records); the ``wj resume`` processes use the
default. The product's modules are compiled to
bytecode first, as an installed package has them (a checkout run with
``PYTHONDONTWRITEBYTECODE`` set, as in this sandbox, would otherwise compile ~100 modules in
every ``wj`` process, ~0.1 s).

Targets (issue 4): checkpointed total <= 1.15 x in-memory total; resume after a kill at
~70% <= 0.40 x an uninterrupted run.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

BUCKET = "wjio-ckbench"
PACKAGES = ("wjio", "executor", "checkpoint", "spark_conf")


def _cpu_s(pid: int | None) -> float:
    """CPU seconds used so far by this process and, when given, process ``pid``."""
    t = os.times()
    own = t.user + t.system
    if pid is None:
        return own
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return own + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


WJ_PYTHON = sys.executable
"""The interpreter of the fresh ``wj`` processes (``--wj-python``)."""


def _has_pandas(python: str) -> bool:
    """Whether ``python`` can import pandas (which pyarrow then imports in every process)."""
    return subprocess.run([python, "-c", "import pandas"], capture_output=True).returncode == 0


def _wj(*argv: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    p = subprocess.run([WJ_PYTHON, "-m", "spark_conf.entry", *argv],
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise SystemExit(f"checkpoint_bench: wj {argv[0]} failed:\n{p.stderr[-3000:]}")
    return p


def _checkpoint_requests(plan: Any, root_uri: str, options: Any) -> dict[str, int]:
    """Requests by method one checkpointed run of ``plan`` makes for its checkpoint, counted
    by a shaping proxy (no latency, no faults) in front of the store; the scans read their
    inputs around it (they take the endpoint from the environment)."""
    from checkpoint.query import run_checkpointed
    from executor.context import ExecContext
    from tools.proxy import ShapingProxy
    from wjio.options import StoreOptions

    with ShapingProxy(upstream=os.environ["AWS_ENDPOINT_URL"]) as proxy:
        run_checkpointed(plan, root_uri, ExecContext(parallelism=2),
                         store=StoreOptions(endpoint_url=proxy.url), options=options)
        return dict(sorted(proxy.stats().requests_by_method.items()))


def _start_endpoint(stack: ExitStack, kind: str, results: dict) -> int | None:
    """Start the local S3 endpoint ``kind`` for the run (stopped by ``stack``) and point the
    AWS environment at it; its server's pid (None if it runs elsewhere)."""
    if kind == "s3server":
        from tools.bench.infra import S3ServerProcess

        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wj-ckbench-")))
        (root / BUCKET).mkdir()
        proc = S3ServerProcess(str(root)).start()
        stack.callback(proc.stop)
        os.environ.update({"AWS_ENDPOINT_URL": proc.url, "AWS_ACCESS_KEY_ID": "bench",
                           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1",
                           "AWS_DEFAULT_REGION": "us-east-1"})
        results["endpoint"] = "tools/s3server.py"
        return proc.proc.pid
    from wjio import rig

    r = stack.enter_context(rig.start(buckets=(BUCKET,)))
    os.environ.update(r.env())
    results["endpoint"] = r.kind
    return r.pid if os.path.exists(f"/proc/{r.pid}/stat") else None


def _kill_and_resume(query, kill_at: float) -> dict:
    """Run ``wj resume`` on the fresh ``query``, SIGKILL it once ``kill_at`` of its tasks
    committed, and time a second ``wj resume``. Progress is polled from the commit records'
    listing alone (:func:`~checkpoint.status.committed_count`): a full ``wj status`` lists
    the data objects as they are written, which trips moto's unlocked lazy ETag (a wrong
    ETag cached for a committed object, whose read then fails and is recomputed)."""
    from checkpoint.status import committed_count, stage_totals

    root = query.root.uri
    tasks = sum(stage_totals(query))
    child = subprocess.Popen([WJ_PYTHON, "-m", "spark_conf.entry", "resume", root,
                              "--format", "csv"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    t0 = time.perf_counter()
    at = None
    while child.poll() is None:
        committed = committed_count(query)
        if committed >= kill_at * tasks:
            os.killpg(child.pid, signal.SIGKILL)
            at = (committed, tasks, time.perf_counter() - t0)
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
    ap.add_argument("--process-runs", type=int, default=3,
                    help="fresh-process runs of each kind per query: uninterrupted, and "
                         "killed then resumed (alternating; medians reported; default 3)")
    ap.add_argument("--inline-max", type=int, default=None,
                    help="CheckpointOptions.inline_max of the in-process runs (default: its "
                         "default; 0: no inline outputs)")
    ap.add_argument("--server", choices=("s3server", "rig"), default="s3server",
                    help="the local S3 endpoint when AWS_ENDPOINT_URL is not set (default "
                         "s3server: tools/s3server.py; rig: MinIO or moto's server)")
    ap.add_argument("--wj-python", default=sys.executable,
                    help="interpreter of the fresh `wj resume` processes (default: this one), "
                         "e.g. a venv with the product installed without the dev extras: "
                         "pyarrow imports pandas on first use when it is installed (~0.25 s "
                         "of every fresh process; pandas comes with the dev extras only)")
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    args = ap.parse_args(argv)
    global WJ_PYTHON
    WJ_PYTHON = args.wj_python

    import pyarrow.parquet  # noqa: F401  (fail early without pyarrow)

    from checkpoint.options import CheckpointOptions
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

    queries = [int(q) for q in args.queries.split(",")]
    checkout = Path(__file__).resolve().parents[2]
    for package in PACKAGES:
        compileall.compile_dir(checkout / package, quiet=1)
    ck_options = CheckpointOptions() if args.inline_max is None else \
        CheckpointOptions(inline_max=args.inline_max)
    results: dict = {"scale": args.scale, "parts": args.parts, "runs": args.runs,
                     "inline_max": ck_options.inline_max,
                     "process_runs": args.process_runs, "wj_python": args.wj_python,
                     "wj_python_has_pandas": _has_pandas(args.wj_python),
                     "kill_at": args.kill_at, "load_before": os.getloadavg()[0],
                     "queries": {}}
    server = None
    with ExitStack() as stack:
        if not os.environ.get("AWS_ENDPOINT_URL"):
            server = _start_endpoint(stack, args.server, results)
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
            cpu: dict[str, list[float]] = {"memory": [], "checkpoint": []}
            root = None
            for i in range(args.runs + 1):  # the first of each is a warm-up
                t0, c0 = time.perf_counter(), _cpu_s(server)
                expected = run_parallel(plan, ExecContext(parallelism=2))
                if i:
                    times["memory"].append(time.perf_counter() - t0)
                    cpu["memory"].append(_cpu_s(server) - c0)
                t0, c0 = time.perf_counter(), _cpu_s(server)
                got = run_checkpointed(plan, f"s3://{BUCKET}/ck/", ExecContext(parallelism=2),
                                       options=ck_options)
                if i:
                    times["checkpoint"].append(time.perf_counter() - t0)
                    cpu["checkpoint"].append(_cpu_s(server) - c0)
                if not got.table.equals(expected):
                    raise SystemExit(f"Q{q}: checkpointed result differs from in-memory")
                root = got.root.uri
            status = query_status(root)
            requests = _checkpoint_requests(plan, f"s3://{BUCKET}/ck/", ck_options)
            options = {"scan_partitions": 2, "batch_size": 64 * 1024}
            whole, kills = [], []
            for _ in range(args.process_runs):  # alternating, so drifts hit both alike
                fresh = create_query(plan, f"s3://{BUCKET}/ck/", options=options).root.uri
                t0 = time.perf_counter()
                _wj("resume", fresh, "--format", "csv")
                whole.append(time.perf_counter() - t0)
                kills.append(_kill_and_resume(
                    create_query(plan, f"s3://{BUCKET}/ck/", options=options), args.kill_at))
            uninterrupted = statistics.median(whole)
            resumed = [k for k in kills if k["killed"]]
            killed = {"killed": False}
            if resumed:  # the run with the median resume time, and every run's times
                resumed.sort(key=lambda k: k["resume_s"])
                killed = {**resumed[(len(resumed) - 1) // 2],
                          "resume_s": statistics.median(k["resume_s"] for k in resumed),
                          "resume_runs_s": [k["resume_s"] for k in resumed]}
            row = {
                "memory_s": statistics.median(times["memory"]),
                "checkpoint_s": statistics.median(times["checkpoint"]),
                "memory_cpu_s": statistics.median(cpu["memory"]),
                "checkpoint_cpu_s": statistics.median(cpu["checkpoint"]),
                "objects_written": status.objects, "bytes_written": status.stored_bytes,
                "checkpoint_requests": sum(requests.values()),
                "checkpoint_requests_by_method": requests,
                "tasks": status.tasks, "uninterrupted_process_s": uninterrupted,
                "uninterrupted_runs_s": whole, **killed,
            }
            row["overhead"] = row["checkpoint_s"] / row["memory_s"] - 1
            row["cpu_overhead"] = row["checkpoint_cpu_s"] / row["memory_cpu_s"] - 1
            if killed.get("killed"):
                row["resume_ratio"] = killed["resume_s"] / uninterrupted
            results["queries"][f"q{q:02d}"] = row
            print(json.dumps({f"q{q:02d}": row}), flush=True)
    qs = results["queries"].values()
    mem, ck = sum(r["memory_s"] for r in qs), sum(r["checkpoint_s"] for r in qs)
    ratios = [r["resume_ratio"] for r in qs if "resume_ratio" in r]
    mem_cpu = sum(r["memory_cpu_s"] for r in qs)
    ck_cpu = sum(r["checkpoint_cpu_s"] for r in qs)
    results["load_after"] = os.getloadavg()[0]
    results["total"] = {"memory_s": mem, "checkpoint_s": ck, "overhead": ck / mem - 1,
                        "memory_cpu_s": mem_cpu, "checkpoint_cpu_s": ck_cpu,
                        "cpu_overhead": ck_cpu / mem_cpu - 1,
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
             f"Median of {r['runs']} in-process runs after a warm-up (inline outputs up to "
             f"{r.get('inline_max', 0)} bytes); kill at "
             f"{r['kill_at']:.0%} of tasks committed, then `wj resume` (fresh processes; "
             f"uninterrupted and resume times are medians of {r.get('process_runs', 1)} "
             f"alternating runs each; `{r.get('wj_python', 'python')}`, "
             f"{'with' if r.get('wj_python_has_pandas', True) else 'without'} pandas). "
             f"CPU: this process plus the store's server. Load average (1 min) "
             f"{r['load_before']:.1f} before, {r['load_after']:.1f} after.", "",
             "| query | in-memory s | checkpointed s | overhead | CPU overhead | tasks | "
             "objects | MB written | checkpoint requests | uninterrupted (process) s | "
             "killed at | resume s | resume / uninterrupted |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for q, x in r["queries"].items():
        kill = f"{x['committed']}/{x['tasks']}" if x.get("killed") else "finished first"
        res = f"{x['resume_s']:.2f}" if x.get("killed") else "-"
        ratio = f"{x['resume_ratio']:.0%}" if "resume_ratio" in x else "-"
        lines.append(f"| {q} | {x['memory_s']:.2f} | {x['checkpoint_s']:.2f} | "
                     f"{x['overhead']:+.0%} | {x['cpu_overhead']:+.0%} | {x['tasks']} | "
                     f"{x['objects_written']} | "
                     f"{x['bytes_written'] / 1e6:.1f} | {x.get('checkpoint_requests', '-')} | "
                     f"{x['uninterrupted_process_s']:.2f} | "
                     f"{kill} | {res} | {ratio} |")
    t = r["total"]
    lines += ["", f"Total: in-memory {t['memory_s']:.2f} s, checkpointed {t['checkpoint_s']:.2f} s "
              f"(overhead {t['overhead']:+.1%}; target <= +15%); CPU {t['memory_cpu_s']:.2f} s "
              f"vs {t['checkpoint_cpu_s']:.2f} s ({t['cpu_overhead']:+.1%}). Resume after kill / "
              f"uninterrupted: median {t['resume_ratio_median'] or 0:.0%}, max "
              f"{t['resume_ratio_max'] or 0:.0%} (target <= 40%).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
