"""``wj demo``: the main job on the embedded default (local S3 rig + local workers).

1. start the local S3 rig (MinIO if its binary is on PATH, else moto's server);
2. generate TPC-H at a small scale factor (``tpchgen-cli``, cached) and upload it;
3. run a multi-stage TPC-H query with ``wj sql --checkpoint`` in a child process: Spark
   plans it, the native executor runs it, every stage's output goes to the store;
4. SIGKILL that process (and everything it started) once part of its tasks have committed,
   as a spot loss would;
5. ``wj resume <query root>`` in a fresh process finishes it, running only the tasks that
   had not committed;
6. check the result against Spark's own answer on local copies of the same files, time the
   native executor against Spark on the same query, and print the report.

Exit status 0 only when the resumed result equals Spark's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUCKET = "wjio-demo"
QUERY_NAME = "TPC-H Q9 (product type profit)"
QUERY = """
select nation, o_year, sum(amount) as sum_profit
from (select n_name as nation, extract(year from o_orderdate) as o_year,
             l_extendedprice * (1 - l_discount) - ps_supplycost * l_quantity as amount
      from part, supplier, lineitem, partsupp, orders, nation
      where s_suppkey = l_suppkey and ps_suppkey = l_suppkey and ps_partkey = l_partkey
        and p_partkey = l_partkey and o_orderkey = l_orderkey and s_nationkey = n_nationkey
        and p_name like '%green%') as profit
group by nation, o_year
order by nation, o_year desc"""
TABLES = ("part", "supplier", "lineitem", "partsupp", "orders", "nation")


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and why."""


def _cache_dir(scale: float) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "wjio" / f"tpch-sf{scale:g}"


class _Steps:
    def __init__(self, out, total: int) -> None:
        self.out, self.total, self.n, self.t0 = out, total, 0, time.perf_counter()

    def __call__(self, message: str) -> None:
        self.n += 1
        self._print(f"[{self.n}/{self.total}] {message}")

    def detail(self, message: str) -> None:
        self._print(f"      {message}")

    def _print(self, text: str) -> None:
        print(f"demo {time.perf_counter() - self.t0:5.1f}s {text}", file=self.out, flush=True)


def run_demo(*, scale: float = 0.1, kill_at: float = 0.5, data_dir: str | None = None,
             out=sys.stdout) -> int:
    """Run the demo (see the module docstring); returns the exit status."""
    from spark_conf import tpch
    from wjio import rig

    step = _Steps(out, 6)
    t_all = time.perf_counter()
    step("starting the local S3 rig")
    with rig.start(buckets=(BUCKET,)) as r, tempfile.TemporaryDirectory(prefix="wj-demo-") as tmp:
        env = {**os.environ, **r.env()}
        os.environ.update(r.env())  # this process's scans and listings use the rig too
        step.detail(f"{r.kind} at {r.endpoint_url}")

        data = Path(data_dir) if data_dir else _cache_dir(scale)
        step(f"TPC-H scale factor {scale:g}: generating with tpchgen-cli (cached in {data}) "
             f"and uploading to s3://{BUCKET}/tpch/")
        manifest = tpch.generate(data, scale, log=lambda m: step.detail(m))
        tpch.upload(data, r.endpoint_url, BUCKET, "tpch", client=r.client(), log=lambda m: None)
        size = sum(f["bytes"] for t in TABLES for f in manifest["tables"][t]["files"])
        step.detail(f"{len(TABLES)} tables for the query, {size / 1e6:.1f} MB of Parquet")
        tables = {t: f"s3://{BUCKET}/tpch/{t}/" for t in TABLES}
        table_args = [a for t, uri in tables.items() for a in ("--table", f"{t}={uri}")]
        checkpoints = f"s3://{BUCKET}/checkpoints/"

        step(f"running {QUERY_NAME} natively with checkpoints: wj sql --checkpoint "
             f"{checkpoints}")
        root, killed_at, first_seconds = _run_and_kill(table_args, checkpoints, env, kill_at,
                                                       step, Path(tmp))

        step(f"resuming on a fresh process: wj resume {root}")
        result_path = Path(tmp) / "result.parquet"
        t0 = time.perf_counter()
        _wj(["resume", root, "--output", str(result_path)], env, step, timeout=900)
        resume_seconds = time.perf_counter() - t0
        status = json.loads(_wj(["status", root, "--json"], env, step, timeout=120))

        step("checking the result against Spark on local copies of the same files, and "
             "timing both engines on the query")
        check = _compare_with_spark(data, tables, result_path, step)

    _report(out, root=root, status=status, killed_at=killed_at, first=first_seconds,
            resume=resume_seconds, check=check, total=time.perf_counter() - t_all)
    return 0 if check["equal"] else 1


def _wj(argv: list[str], env: dict, step: _Steps, *, timeout: float) -> str:
    """Run ``wj argv`` in a fresh process; its stdout. Its stderr progress lines are shown."""
    cmd = [sys.executable, "-m", "spark_conf.entry", *argv]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stderr.splitlines():
        if line.startswith("wj "):
            step.detail(line)
    if proc.returncode != 0:
        raise DemoError(f"`wj {' '.join(argv[:2])} ...` failed (exit {proc.returncode}):\n"
                        f"{proc.stderr.strip()[-3000:]}")
    return proc.stdout


def _run_and_kill(table_args: list[str], checkpoints: str, env: dict, kill_at: float,
                  step: _Steps, tmp: Path) -> tuple[str, str, float]:
    """Start ``wj sql --checkpoint`` in its own process group, SIGKILL the group once
    ``kill_at`` of the query's tasks have committed; ``(query root, "k/n", seconds)``."""
    from checkpoint.status import query_status, status_once_created

    log = tmp / "sql.log"
    cmd = [sys.executable, "-m", "spark_conf.entry", "sql", QUERY, *table_args,
           "--checkpoint", checkpoints, "--output", str(tmp / "never.parquet")]
    t0 = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
    root = None
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if root is None:
                root = _announced_root(log)
                if root is not None:
                    step.detail(f"query root {root} (printed first thing)")
            if proc.poll() is not None:
                raise DemoError("the query finished before it could be interrupted (try a "
                                f"larger --scale or a smaller --kill-at):\n{log.read_text()}")
            if root is not None:
                s = status_once_created(root)
                if s is not None and s.tasks and s.committed >= max(1, kill_at * s.tasks):
                    os.killpg(proc.pid, signal.SIGKILL)  # the driver and all its workers
                    proc.wait()
                    seconds = time.perf_counter() - t0
                    s = query_status(root)  # commits may have landed since the last look
                    step(f"spot loss: SIGKILL of the query's whole process group after "
                         f"{seconds:.1f} s, with {s.committed}/{s.tasks} tasks committed")
                    return root, f"{s.committed}/{s.tasks}", seconds
            time.sleep(0.05)
        raise DemoError("the checkpointed query made no progress for 10 minutes")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _announced_root(log: Path) -> str | None:
    for line in log.read_text().splitlines():
        if "checkpoint s3://" in line:
            return line.split("checkpoint ", 1)[1].strip()
    return None


def _compare_with_spark(data: Path, tables: dict[str, str], result_path: Path,
                        step: _Steps) -> dict:
    import pyarrow.parquet as pq

    from executor.context import ExecContext
    from executor.frontend.catalog import register
    from executor.frontend.session import planning_session
    from executor.frontend.spark import execute

    spark = planning_session()
    local = spark.newSession()
    for t in tables:
        local.read.parquet(str(data / t)).createOrReplaceTempView(t)
    spark_seconds = []
    for _ in range(2):  # the first run warms the JVM up; the second is the one compared
        t0 = time.perf_counter()
        expected = local.sql(QUERY).toArrow()
        spark_seconds.append(time.perf_counter() - t0)
    resumed = pq.read_table(result_path)
    equal = resumed.equals(expected)
    step.detail(f"resumed result: {resumed.num_rows} rows, equal to Spark's: {equal}")

    native = spark.newSession()
    catalog = register(native, tables)
    try:
        runs = []
        for _ in range(2):
            ctx = ExecContext(parallelism=2)
            t0 = time.perf_counter()
            got = execute(native, QUERY, ctx=ctx, catalog=catalog)
            runs.append((time.perf_counter() - t0, ctx))
    finally:
        catalog.close()
    seconds, ctx = runs[-1]
    sources = list(ctx.sources.values())
    return {"equal": equal and got.native and got.table.equals(expected),
            "rows": resumed.num_rows, "spark_seconds": spark_seconds[-1],
            "native_seconds": seconds, "native": got.native,
            "requests": sum(s.requests for s in sources),
            "bytes": sum(s.bytes_read or 0 for s in sources)}


def _report(out, *, root: str, status: dict, killed_at: str, first: float, resume: float,
            check: dict, total: float) -> None:
    rows = [
        ("query", QUERY_NAME),
        ("query root", root),
        ("interrupted at", f"{killed_at} tasks committed, after {first:.1f} s "
                           "(Spark start-up and planning included)"),
        ("resume", f"{resume:.1f} s in a fresh process (Spark start-up and planning "
                   "not needed: the plan is in the store)"),
        ("checkpoint store", f"{status['objects']} objects, {status['stored_bytes'] / 1e6:.2f} MB "
                             f"over {len(status['stages'])} stages"),
        ("result", f"{check['rows']} rows, "
                   f"{'EQUAL to' if check['equal'] else 'DIFFERENT from'} Spark's answer"),
        ("native vs Spark", f"{check['native_seconds']:.2f} s vs {check['spark_seconds']:.2f} s "
                            f"(speedup {check['spark_seconds'] / check['native_seconds']:.1f}x; "
                            "same query, same files, warm, SQL text to Arrow result)"),
        ("native IO", f"{check['requests']} S3 requests, {check['bytes'] / 1e6:.2f} MB read"),
        ("demo total", f"{total:.1f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    print("\nwj demo report", file=out)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}", file=out)
    print("\nOK: the query survived the loss of its process and matches Spark."
          if check["equal"] else "\nFAILED: the result differs from Spark's.", file=out)


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job on the embedded default: native TPC-H with checkpoints, a spot "
        "loss, `wj resume`, checked against Spark",
        description="Start the local S3 rig, generate TPC-H into it, run a multi-stage query "
        "natively with checkpoints (wj sql --checkpoint), SIGKILL it mid-way as a spot loss "
        "would, finish it with `wj resume` in a fresh process, check the result against "
        "Spark and print a report (time, requests, bytes, speedup vs Spark). Needs Java 17 "
        "and the spark extra (pyspark, tpchgen-cli).",
    )
    p.add_argument("--scale", type=float, default=0.1, help="TPC-H scale factor (default 0.1)")
    p.add_argument("--kill-at", type=float, default=0.5, metavar="FRACTION",
                   help="interrupt once this fraction of the tasks committed (default 0.5)")
    p.add_argument("--data-dir", help="where the generated TPC-H data is cached "
                   "(default ~/.cache/wjio/tpch-sf<scale>)")
    p.set_defaults(func=_main)


def _main(args) -> int:
    if not 0 < args.kill_at < 1:
        raise SystemExit("wj demo: error: --kill-at must be between 0 and 1")
    try:
        return run_demo(scale=args.scale, kill_at=args.kill_at, data_dir=args.data_dir)
    except DemoError as err:
        print(f"wj demo: error: {err}", file=sys.stderr)
        return 2
