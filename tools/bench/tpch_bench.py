"""TPC-H benchmark of the native executor against Spark ``local[2]`` (and polars as a reference).

    python -m tools.bench.tpch_bench [--scale 1] [--data-dir DIR] [--runs 3] \\
        [--queries 1,3,...] [--engines native,spark,polars] [--out bench-results]

Each query's time is measured from SQL text to a materialized ``pyarrow.Table``:

- native: ``executor.frontend.spark.execute(spark, sql)`` -- Spark parses/analyzes/optimizes
  (we use its optimizer), the plan is translated to our IR and run on Arrow; a query that
  falls back to Spark is timed the same way (and marked).
- spark: ``spark.sql(sql).toArrow()`` on the same ``local[2]`` session, same files.
- polars: ``pl.SQLContext`` over ``scan_parquet`` frames, ``.collect().to_arrow()``.

Per query and engine: one warm-up run, then ``--runs`` timed runs; the median is reported.
Every run starts on a settled machine (``settle``): Python's garbage collected and the JVM
idle, since Spark keeps working for a while after a query has returned.
JVM/session start-up and table registration are timed separately. Every native result is
checked against Spark's (schema, row count, values; order too when the query has ORDER BY).
After the timed runs one instrumented native run splits the time into planning (Spark
analysis + optimization, plan walk over py4j, translation) and execution.

Output in ``--out``: ``tpch_bench_sf<scale>.json`` (raw timings, environment),
``tpch_bench_sf<scale>.md`` and ``tpch_bench_sf<scale>.png`` (see ``tools.bench.tpch_report``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import decimal
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import wjio  # noqa: F401  (first, as in `wj sql`: its process settings precede polars' import)
from spark_conf.config import SparkConfig

ENGINES = ("native", "spark", "polars")
TPCH_TABLES = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders",
               "lineitem")

# The test session's settings (profile ``local`` of spark_conf/config.py: local[2] on loopback,
# four shuffle partitions, which suit local[2] far better than Spark's default 200) with more
# driver memory and patience for SF1.
SPARK_CONF = SparkConfig.for_profile("local").with_settings({
    "spark.app.name": "wjio-tpch-bench",
    "spark.driver.memory": "4g",
    "spark.network.timeout": "300s",
}).to_spark_conf()

TARGET_RATIO = 0.15


# -- setup --------------------------------------------------------------------------------------

def _env_defaults() -> None:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("POLARS_MAX_THREADS", str(os.cpu_count() or 2))


def start_spark(conf: dict):
    from spark_conf.session import local_session

    return local_session(**conf)


def register_tables(spark, data_dir: Path) -> None:
    for table in TPCH_TABLES:
        path = data_dir / table
        if not path.exists():
            raise FileNotFoundError(f"TPC-H table {table!r}: no directory {path}")
        spark.read.parquet(str(path)).createOrReplaceTempView(table)


def polars_context(data_dir: Path):
    import polars as pl

    ctx = pl.SQLContext()
    for table in TPCH_TABLES:
        ctx.register(table, pl.scan_parquet(str(data_dir / table / "*.parquet")))
    return ctx


def ensure_data(scale: float, data_dir: Path | None) -> Path:
    from spark_conf.tpch import generate, read_manifest

    if data_dir is None:
        data_dir = Path(".wj/tpch") / f"sf{scale:g}"
    data_dir = data_dir.resolve()
    manifest = read_manifest(data_dir)
    if manifest is None:
        print(f"generating TPC-H SF {scale:g} under {data_dir} ...", flush=True)
        generate(data_dir, scale)
    elif float(manifest.get("scale", scale)) != float(scale):
        print(f"warning: {data_dir} holds SF {manifest.get('scale')}, not {scale:g}; "
              f"using the data as it is", flush=True)
    return data_dir


def environment(spark, data_dir: Path) -> dict:
    env = {
        "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "data_dir": str(data_dir),
    }
    try:
        with open("/proc/meminfo") as f:
            env["mem_total_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    env["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for mod in ("pyarrow", "polars", "pyspark"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:
            env[mod] = None
    if spark is not None:
        env["spark"] = spark.version
        env["spark_conf"] = {k: spark.conf.get(k, None) for k in SPARK_CONF
                             if k.startswith("spark.sql") or k in ("spark.master",
                                                                     "spark.driver.memory")}
        env["spark_conf"]["spark.sql.adaptive.enabled"] = spark.conf.get(
            "spark.sql.adaptive.enabled", None)
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20)
        env["java"] = (java.stderr or java.stdout).splitlines()[0]
    except Exception:
        env["java"] = None
    try:
        env["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                           text=True, timeout=10).stdout.strip()
        env["git_dirty"] = bool(subprocess.run(["git", "status", "--porcelain"],
                                               capture_output=True, text=True,
                                               timeout=10).stdout.strip())
    except Exception:
        pass
    manifest = data_dir / "manifest.json"
    if manifest.exists():
        m = json.loads(manifest.read_text())
        env["data"] = {"scale": m.get("scale"), "parts": m.get("parts"),
                       "generator": m.get("generator"), "strings": m.get("strings"),
                       "bytes": sum(e["bytes"] for t in m.get("tables", {}).values()
                                    for e in t["files"])}
    return env


# -- result checks ------------------------------------------------------------------------------

def _rows(table, ordered: bool) -> list[tuple]:
    rows = [tuple(r.values()) for r in table.to_pylist()]
    return rows if ordered else sorted(rows, key=repr)


def _norm(v):
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, (_dt.date, _dt.datetime)):
        return v.isoformat()[:10] if type(v) is _dt.date else v.isoformat()
    return v


def _close(a, b, rel: float, abs_tol: float) -> bool:
    a, b = _norm(a), _norm(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)
    return a == b


def _approx_equal(got: list[tuple], want: list[tuple], rel: float,
                  abs_tol: float = 1e-9) -> bool:
    if len(got) != len(want):
        return False
    return all(len(g) == len(w)
               and all(_close(x, y, rel, abs_tol) for x, y in zip(g, w, strict=True))
               for g, w in zip(got, want, strict=True))


def _sorted_norm(rows: list[tuple]) -> list[tuple]:
    def key(r):
        return tuple((0, round(x, 6)) if isinstance(x, float) else (1, repr(x))
                     for x in map(_norm, r))
    return sorted(rows, key=key)


def check_native(got, want, ordered: bool) -> dict:
    """Exact comparison of the native result with Spark's (what the tests require)."""
    out = {"rows": got.num_rows, "expected_rows": want.num_rows}
    g_schema = [(f.name, str(f.type)) for f in got.schema]
    w_schema = [(f.name, str(f.type)) for f in want.schema]
    if g_schema != w_schema:
        out.update(ok=False, detail=f"schema differs: {g_schema} vs {w_schema}")
        return out
    if got.num_rows != want.num_rows:
        out.update(ok=False, detail=f"row count {got.num_rows} vs {want.num_rows}")
        return out
    if _rows(got, ordered) == _rows(want, ordered):
        out.update(ok=True, detail="equal")
        return out
    if ordered and _rows(got, False) == _rows(want, False):
        out.update(ok=False, detail="same rows, different order")
        return out
    if _approx_equal(_sorted_norm(_rows(got, False)), _sorted_norm(_rows(want, False)), 1e-9):
        out.update(ok=False, detail="values differ beyond exact equality (equal to 1e-9 rel)")
        return out
    out.update(ok=False, detail="values differ")
    return out


def check_reference(got, want) -> dict:
    """Loose comparison for polars (other types: decimals vs floats): row count and values,
    rows sorted, numbers to 1e-6 relative or 1e-5 absolute (Spark rounds decimal averages and
    ratios to 6 places, polars does not)."""
    out = {"rows": got.num_rows, "expected_rows": want.num_rows}
    if got.num_rows != want.num_rows or got.num_columns != want.num_columns:
        out.update(ok=False, detail=f"shape {got.num_rows}x{got.num_columns} vs "
                                    f"{want.num_rows}x{want.num_columns}")
        return out
    ok = _approx_equal(_sorted_norm(_rows(got, False)), _sorted_norm(_rows(want, False)),
                       1e-6, 1e-5)
    out.update(ok=ok, detail="equal (1e-6 rel / 1e-5 abs)" if ok else "values differ")
    return out


# -- engines ------------------------------------------------------------------------------------

class Engines:
    def __init__(self, spark, polars_ctx):
        self.spark = spark
        self.polars_ctx = polars_ctx
        self.last_native = None
        try:
            self.jvm_pid = int(spark._jvm.java.lang.ProcessHandle.current().pid())
        except Exception:  # not a local JVM we can watch: runs start without waiting for it
            self.jvm_pid = None

    def native(self, sql: str):
        from executor.frontend.spark import execute

        result = execute(self.spark, sql)
        self.last_native = result
        return result.table

    def spark_(self, sql: str):
        return self.spark.sql(sql).toArrow()

    def polars(self, sql: str):
        return self.polars_ctx.execute(sql, eager=False).collect().to_arrow()

    def run(self, engine: str, sql: str):
        return {"native": self.native, "spark": self.spark_, "polars": self.polars}[engine](sql)


SETTLE_MAX_S = 5.0
"""Longest wait for the JVM to go idle before a run."""


def _cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) process ``pid`` has used so far (Linux), None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(jvm_pid: int | None) -> None:
    """Wait until the run about to start has the machine to itself: collect Python's garbage,
    then wait (up to :data:`SETTLE_MAX_S`) until the JVM has used under 5% of a core over
    100 ms. After returning a result Spark goes on compiling, collecting garbage and cleaning
    shuffle and broadcast state; without this, that work is billed to whichever engine runs
    next (the native executor plans through the same JVM)."""
    gc.collect()
    if jvm_pid is None:
        return
    deadline = time.monotonic() + SETTLE_MAX_S
    while time.monotonic() < deadline:
        before = _cpu_seconds(jvm_pid)
        time.sleep(0.1)
        after = _cpu_seconds(jvm_pid)
        if before is None or after is None or after - before < 0.005:
            return


def timed(fn, *args, jvm_pid: int | None = None):
    settle(jvm_pid)
    t0 = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - t0, value


def native_breakdown(spark, sql: str) -> dict | None:
    """One instrumented native run: Spark planning (parse, analyze, optimize), our plan walk
    and translation, and execution. Uses frontend internals; ``None`` if they changed."""
    try:
        from executor.frontend import spark as front
        from executor.frontend.translate import check_executable, translate
        from executor.run import run
    except Exception:
        return None
    try:
        t0 = time.perf_counter()
        df = spark.sql(sql)
        df._jdf.queryExecution().optimizedPlan()  # forces analysis + optimization
        t1 = time.perf_counter()
        plan = translate(*front._plan_of(df))  # optimizedPlan is cached: walk + translate
        check_executable(plan)
        t2 = time.perf_counter()
        run(plan, None)
        t3 = time.perf_counter()
    except Exception as err:
        return {"error": f"{type(err).__name__}: {err}"[:300]}
    return {"spark_plan_s": t1 - t0, "walk_translate_s": t2 - t1, "execute_s": t3 - t2}


# -- main loop ----------------------------------------------------------------------------------

def bench_query(engines: Engines, names: list[str], qname: str, sql: str, runs: int,
                max_seconds: float, breakdown: bool) -> dict:
    from tools.tpch import has_order_by

    rec: dict = {"query": qname, "order_by": has_order_by(sql), "engines": {}}
    outputs = {}
    # Warm-up: one run per engine (also yields the results compared below).
    for engine in names:
        e = rec["engines"].setdefault(engine, {"runs": []})
        try:
            t, table = timed(engines.run, engine, sql, jvm_pid=engines.jvm_pid)
        except Exception as err:
            first = str(err).splitlines()[0] if str(err) else ""
            e["error"] = f"{type(err).__name__}: {first}"[:400]
            if engine == "native":
                e["traceback"] = traceback.format_exc()[-3000:]
            continue
        e["warmup_s"] = t
        e["rows"] = table.num_rows
        outputs[engine] = table
        if engine == "native":
            r = engines.last_native
            e["native"] = bool(r.native)
            e["reason"] = r.reason
        if t > max_seconds:
            e["note"] = f"warm-up took {t:.1f}s > --max-seconds {max_seconds:g}: no timed runs"
    # Timed runs, engines interleaved so drifts (page cache, JIT, GC) hit all alike.
    for _ in range(runs):
        for engine in names:
            e = rec["engines"][engine]
            if "error" in e or "note" in e:
                continue
            try:
                t, _table = timed(engines.run, engine, sql, jvm_pid=engines.jvm_pid)
            except Exception as err:
                e["error"] = f"timed run: {type(err).__name__}: {err}"[:400]
                continue
            e["runs"].append(t)
            del _table
    for engine in names:
        e = rec["engines"][engine]
        samples = e["runs"] or ([e["warmup_s"]] if "warmup_s" in e and "error" not in e else [])
        e["median_s"] = statistics.median(samples) if samples else None
    if "spark" in outputs:
        if "native" in outputs:
            rec["engines"]["native"]["check"] = check_native(outputs["native"], outputs["spark"],
                                                             rec["order_by"])
        if "polars" in outputs:
            rec["engines"]["polars"]["check"] = check_reference(outputs["polars"],
                                                                outputs["spark"])
    if breakdown and "native" in outputs and rec["engines"]["native"].get("native"):
        rec["engines"]["native"]["breakdown"] = native_breakdown(engines.spark, sql)
    return rec


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m tools.bench.tpch_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="TPC-H Parquet set (default .wj/tpch/sf<scale>, generated if absent)")
    p.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up (default 3)")
    p.add_argument("--queries", default="all", help="e.g. 1,3,5-7 (default all 22)")
    p.add_argument("--engines", default="native,spark,polars",
                   help="comma list of native, spark, polars")
    p.add_argument("--out", type=Path, default=Path("bench-results"))
    p.add_argument("--max-seconds", type=float, default=300.0,
                   help="skip the timed runs of an engine whose warm-up took longer (default 300)")
    p.add_argument("--no-breakdown", action="store_true",
                   help="skip the instrumented native run (planning vs execution)")
    return p.parse_args(argv)


def parse_queries(spec: str) -> list[int]:
    if spec in ("all", ""):
        return list(range(1, 23))
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip().lower().lstrip("q")
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    bad = [n for n in out if not 1 <= n <= 22]
    if bad:
        raise SystemExit(f"--queries: TPC-H queries are 1..22, got {bad}")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    names = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = [e for e in names if e not in ENGINES]
    if bad:
        raise SystemExit(f"--engines: unknown {bad}; choose from {ENGINES}")
    queries = parse_queries(args.queries)
    _env_defaults()

    from tools.tpch import query_name, query_text

    data_dir = ensure_data(args.scale, args.data_dir)
    setup: dict = {}
    # Spark is started even for --engines polars: the plan/translation need it for native, and
    # the spark engine's results are the reference for the checks.
    t, spark = timed(start_spark, SPARK_CONF)
    setup["spark_session_start_s"] = t
    t, _ = timed(register_tables, spark, data_dir)
    setup["spark_register_tables_s"] = t
    if "native" in names:
        t, _ = timed(__import__, "executor")
        setup["executor_import_s"] = t
    polars_ctx = None
    if "polars" in names:
        t, polars_ctx = timed(polars_context, data_dir)
        setup["polars_register_s"] = t
    print("setup: " + ", ".join(f"{k}={v:.2f}s" for k, v in setup.items()), flush=True)

    engines = Engines(spark, polars_ctx)
    results = []
    t_all = time.perf_counter()
    for n in queries:
        qname = query_name(n)
        rec = bench_query(engines, names, qname, query_text(n), args.runs, args.max_seconds,
                          not args.no_breakdown)
        results.append(rec)
        parts = []
        for engine in names:
            e = rec["engines"][engine]
            if e.get("median_s") is None:
                parts.append(f"{engine}=ERROR")
                continue
            s = f"{engine}={e['median_s']:.3f}s"
            if engine == "native":
                s += "" if e.get("native") else " (FALLBACK)"
                if "check" in e:
                    s += " ok" if e["check"]["ok"] else f" MISMATCH({e['check']['detail']})"
            if engine == "polars" and "check" in e and not e["check"]["ok"]:
                s += " mismatch"
            parts.append(s)
        print(f"{qname}: " + "  ".join(parts), flush=True)
    wall = time.perf_counter() - t_all

    doc = {
        "benchmark": "tpch",
        "scale": args.scale,
        "runs": args.runs,
        "warmup_runs": 1,
        "engines": names,
        "target_ratio": TARGET_RATIO,
        "setup": setup,
        "wall_s": wall,
        "environment": environment(spark, data_dir),
        "queries": results,
    }
    from tools.bench import tpch_report

    doc["summary"] = tpch_report.summarize(doc)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"tpch_bench_sf{args.scale:g}"
    Path(f"{stem}.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    md = tpch_report.markdown(doc)
    Path(f"{stem}.md").write_text(md)
    try:
        tpch_report.chart(doc, f"{stem}.png")
    except Exception as err:
        print(f"chart failed: {err}", file=sys.stderr)
    print()
    print(md)
    print(f"wrote {stem}.json, {stem}.md, {stem}.png")
    if spark is not None:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
