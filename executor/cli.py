"""``wj sql``: run Spark SQL natively (falling back to Spark), from the command line.

    wj sql "SELECT ..." --table lineitem=s3://bucket/tpch/lineitem/ [--table ...]
           [--explain] [--output result.parquet | --format table|csv|json]
           [--report report.json] [--parallelism N] [--memory-budget-mb N]
    wj sql --file q.sql --table ...        # the query from a file ("-": stdin)
    wj sql --table ...                     # no query: a shell, statements end with ';'

Spark (a small local session) parses and optimizes the query; the executor runs the plan
(:func:`executor.frontend.spark.execute`). The report says whether it ran natively or why it
fell back, its stages and tasks, rows, bytes read from S3, time and peak Arrow memory.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

FORMATS = ("table", "csv", "json")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sql",
        help="run a Spark SQL query natively (Spark plans it; falls back to Spark)",
        description="Run a Spark SQL query on Parquet tables (local paths or s3://) with the "
        "native executor. Spark parses and optimizes it; whatever the executor cannot run "
        "exactly runs on Spark instead, and the report says why. Without a query, starts a "
        "SQL shell (statements end with ';').",
    )
    p.add_argument("query", nargs="?", help="the SQL text (omit for a shell; see --file)")
    p.add_argument("--file", "-f", help="read the query from this file ('-': stdin)")
    p.add_argument("--table", "-t", action="append", default=[], metavar="NAME=LOCATION",
                   help="register a Parquet table: NAME=s3://bucket/prefix/ or NAME=/local/dir "
                   "(repeatable)")
    p.add_argument("--explain", action="store_true",
                   help="print the native plan and its stages (or the fallback reason) and "
                   "exit without running")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--output", "-o", help="write the result to this Parquet file")
    out.add_argument("--format", choices=FORMATS, default="table",
                     help="result on stdout (default: table)")
    p.add_argument("--max-rows", type=int, default=50,
                   help="rows printed with --format table (default 50; 0: all)")
    p.add_argument("--report", help="write the run report (JSON) to this file ('-': stderr)")
    p.add_argument("--parallelism", type=int, default=2, help="tasks at once (default 2)")
    p.add_argument("--memory-budget-mb", type=int,
                   help="per-query memory budget: big inputs get more partitions")
    p.add_argument("--no-native", action="store_true", help="run on Spark only (baseline)")
    p.set_defaults(func=_sql)


def _sql(args: argparse.Namespace) -> int:
    from executor.frontend.catalog import parse_table_args

    if args.parallelism < 1:
        raise SystemExit("wj sql: error: --parallelism must be >= 1")
    query = _query_text(args)
    session = None
    try:
        session = _Session(args, parse_table_args(args.table))  # before Spark starts
        if query is None:
            return session.shell()
        return session.run(query)
    except Exception as err:
        if not _user_error(err) or args.verbose:
            raise
        print(f"wj sql: error: {describe_error(err)}", file=sys.stderr)
        return 2
    finally:
        if session is not None:
            session.close()


def _user_error(err: Exception) -> bool:
    """Errors that are about the query or its data (one line, exit 2), not bugs."""
    from executor.errors import ExecutorError, InternalError
    from wjio.errors import WjioError

    if isinstance(err, InternalError):
        return False
    return isinstance(err, ExecutorError | WjioError) or \
        type(err).__module__.startswith("pyspark.errors")


def _query_text(args) -> str | None:
    if args.file and args.query:
        raise SystemExit("wj sql: error: give the query as an argument or with --file, not both")
    if args.file == "-":
        return sys.stdin.read()
    if args.file:
        path = Path(args.file)
        if not path.is_file():
            raise SystemExit(f"wj sql: error: no such query file {args.file}")
        return path.read_text()
    if args.query == "-":
        return sys.stdin.read()
    return args.query


class _Session:
    def __init__(self, args, tables: dict[str, str]) -> None:
        self.args = args
        self.tables = tables
        self._spark = None
        self._catalog = None
        self._runner = self._make_runner()  # before Spark starts: announces a query root

    def _make_runner(self):
        """The plan runner an upper layer added to this command (``--checkpoint``), if any."""
        make = getattr(self.args, "make_runner", None)
        wanted = make is not None and not (self.args.explain or self.args.no_native)
        return make(self.args) if wanted else None

    def _ready(self):
        if self._spark is None:
            from executor.frontend.catalog import register
            from executor.frontend.session import planning_session

            _progress("starting Spark (planning only)...")
            self._spark = planning_session()
            if not self.args.verbose:  # pyspark logs each query error with a JVM stack trace
                from pyspark.logger import PySparkLogger

                for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
                    PySparkLogger.getLogger(name).setLevel(logging.CRITICAL + 1)
            _progress(f"registering {len(self.tables)} table(s)...")
            self._catalog = register(self._spark, self.tables)
        return self._spark, self._catalog

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()

    def run(self, query: str) -> int:
        from executor.context import ExecContext

        spark, catalog = self._ready()
        if self.args.explain:
            print(explain_text(spark, query, catalog, self.args.parallelism))
            return 0
        ctx = ExecContext(parallelism=self.args.parallelism)
        if self.args.memory_budget_mb:
            ctx.memory_budget = self.args.memory_budget_mb * 1024 * 1024
        runner, self._runner = self._runner or self._make_runner(), None
        report = run_query(spark, query, ctx=ctx, catalog=catalog,
                           native=not self.args.no_native, runner=runner)
        table = report.pop("_table")
        _emit(table, self.args)
        if self.args.report:
            text = json.dumps(report, indent=2)
            if self.args.report == "-":
                print(text, file=sys.stderr)
            else:
                Path(self.args.report).write_text(text + "\n")
        how = "native" if report["native"] else f"Spark (fallback: {report['reason']})"
        _progress(f"{report['rows']} rows in {report['wall_seconds']:.2f} s, ran {how}")
        return 0

    def shell(self) -> int:
        interactive = sys.stdin.isatty()
        buffer: list[str] = []
        if interactive:
            print("wj sql shell: statements end with ';', Ctrl-D exits", file=sys.stderr)
        while True:
            try:
                line = input("wj> " if not buffer else "  > ") if interactive \
                    else sys.stdin.readline()
            except EOFError:
                break
            if not interactive and line == "":
                break
            buffer.append(line.rstrip("\n"))
            text = "\n".join(buffer).strip()
            if not text.endswith(";"):
                continue
            buffer.clear()
            statement = text.rstrip(";").strip()
            if not statement:
                continue
            try:
                self.run(statement)
            except Exception as err:  # report and keep the shell alive
                print(f"error: {describe_error(err)}", file=sys.stderr)
                if not interactive:
                    return 2
        return 0


def run_query(spark, query: str, *, ctx, catalog=None, native: bool = True,
              runner=None) -> dict:
    """Run ``query``; the report dict (its ``_table`` entry holds the result). ``runner``
    (see :func:`~executor.frontend.spark.execute`) may carry an ``info`` dict, merged into
    the report (e.g. the checkpointed query's root)."""
    from executor.distribute import physical_plan
    from executor.frontend.spark import QueryResult, _spark_result, execute
    from executor.ir.serde import fingerprint
    from executor.memory import PeakMemory

    t0 = time.perf_counter()
    with PeakMemory() as peak:
        if native:
            result = execute(spark, query, ctx=ctx, catalog=catalog, runner=runner)
        else:
            result = QueryResult(_spark_result(spark.sql(query)), False, "--no-native")
    wall = time.perf_counter() - t0
    table = result.table
    report: dict = {
        "native": result.native,
        "reason": result.reason,
        "rows": table.num_rows,
        "columns": [{"name": f.name, "type": str(f.type)} for f in table.schema],
        "wall_seconds": round(wall, 4),
        "peak_arrow_memory_bytes": peak.bytes,
        "parallelism": ctx.parallelism,
        "memory_budget_bytes": ctx.memory_budget,
        "tables": dict(catalog.tables) if catalog is not None else {},
        "_table": table,
    }
    if result.plan is not None and result.native:
        physical = physical_plan(result.plan, ctx)
        report["plan_fingerprint"] = fingerprint(result.plan)
        report["stages"] = stage_summary(physical, ctx.parallelism)
        report["tasks"] = sum(s["tasks"] for s in report["stages"])
    report.update(getattr(runner, "info", None) or {})
    sources = list(ctx.sources.values())
    report["s3_requests"] = sum(s.requests for s in sources)
    counted = [s.bytes_read for s in sources if s.bytes_read is not None]
    report["s3_bytes_read"] = sum(counted) if counted else 0
    return report


def stage_summary(physical, scan_partitions: int) -> list[dict]:
    from executor.stages import cut, exchange_ids, task_count

    ids = exchange_ids(physical)
    out = []
    for stage in cut(physical):
        output = stage.output
        out.append({
            "stage": stage.index,
            "tasks": task_count(stage, scan_partitions),
            "scans": stage.has_scan,
            "reads_exchanges": sorted(ids[e] for e in stage.inputs),
            "output": None if output is None else {
                "exchange": ids[output], "partitioning": output.partitioning.value,
                "partitions": output.num_partitions},
        })
    return out


def explain_text(spark, query: str, catalog, parallelism: int) -> str:
    from executor.context import ExecContext
    from executor.distribute import physical_plan
    from executor.errors import UnsupportedError
    from executor.frontend.spark import native_plan
    from executor.ir.explain import explain

    try:
        plan = native_plan(spark, query, catalog=catalog)
    except UnsupportedError as err:
        return f"fallback: {err}"
    ctx = ExecContext(parallelism=parallelism)
    physical = physical_plan(plan, ctx)
    lines = ["== native plan ==", explain(plan, schema=True), "",
             f"== physical plan (parallelism {parallelism}) ==", explain(physical), "",
             f"== stages (parallelism {parallelism}) =="]
    for s in stage_summary(physical, parallelism):
        out = s["output"]
        target = "result" if out is None else \
            f"exchange #{out['exchange']} ({out['partitioning']}, {out['partitions']})"
        reads = ", ".join(f"#{i}" for i in s["reads_exchanges"]) or "-"
        lines.append(f"stage {s['stage']}: {s['tasks']} task(s), "
                     f"{'scans tables, ' if s['scans'] else ''}reads {reads} -> {target}")
    return "\n".join(lines)


def _emit(table, args) -> None:
    if args.output:
        import pyarrow.parquet as pq

        pq.write_table(table, args.output)
        _progress(f"wrote {table.num_rows} rows to {args.output}")
        return
    if args.format == "json":
        for row in table.to_pylist():
            print(json.dumps(row, default=str))
    elif args.format == "csv":
        import pyarrow.csv as pcsv

        buf = __import__("io").BytesIO()
        pcsv.write_csv(table, buf)
        sys.stdout.write(buf.getvalue().decode())
    else:
        print(format_table(table, args.max_rows))


def format_table(table, max_rows: int = 50) -> str:
    """A plain-text grid of the first ``max_rows`` rows (0: all)."""
    shown = table if not max_rows else table.slice(0, max_rows)
    names = table.column_names
    rows = [["NULL" if v is None else str(v) for v in r.values()] for r in shown.to_pylist()]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(names)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line, "| " + " | ".join(n.ljust(w) for n, w in zip(names, widths, strict=True))
           + " |", line]
    out += ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |"
            for r in rows]
    out.append(line)
    if shown.num_rows < table.num_rows:
        out.append(f"({table.num_rows} rows, {shown.num_rows} shown)")
    return "\n".join(out)


def describe_error(err: BaseException) -> str:
    """One line for any error a query can raise: Spark's own (analysis, parse) or ours."""
    name = type(err).__name__
    text = str(err).strip()
    if name in ("AnalysisException", "ParseException", "IllegalArgumentException") or \
            type(err).__module__.startswith("pyspark"):
        first = text.splitlines()[0] if text else name
        return f"Spark: {first}"
    return text.splitlines()[0] if text else name


def _progress(message: str) -> None:
    print(f"wj sql: {message}", file=sys.stderr, flush=True)
