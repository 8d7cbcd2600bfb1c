"""``wj resume``, ``wj status``, ``wj ls`` and ``wj gc``: checkpointed queries from the shell.

    wj sql "SELECT ..." --table ... --checkpoint s3://bucket/ck/    # prints its query root
           [--runner thread|process|spark]
    wj resume s3://bucket/ck/<query-id> [--restart] [--output x.parquet | --format table|csv|json]
           [--runner thread|process|spark]     # spark: each stage one job of the Spark session
    wj status s3://bucket/ck/<query-id> [--json] [--watch SECONDS]
    wj ls s3://bucket/ck/ [--json]
    wj gc s3://bucket/ck/ [--older-than 7d] [--dry-run] [--keep-finished] [--json]

Credentials and the endpoint come from the usual AWS variables (or ``--endpoint``); nothing
about them is stored with a query. Errors are one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

FORMATS = ("table", "csv", "json")
RUNNERS = ("thread", "process", "spark")
RUNNER_HELP = ("where tasks run: threads of this process (default), local worker processes, "
               "or Spark tasks of the Spark session (each stage one Spark job; all data "
               "through the object store)")


def register(sub: argparse._SubParsersAction) -> None:
    _add_checkpoint_to_sql(sub)
    p = sub.add_parser(
        "resume", help="finish a checkpointed query (on any machine)",
        description="Finish the checkpointed query at QUERY_ROOT: reload its plan and commits, "
        "check that its input objects are unchanged (ETag, size), run only the tasks without "
        "a commit, and deliver the result: to --output, to stdout (--format), else to the "
        "output the query was started with, else as a table on stdout.")
    p.add_argument("query_root", help="s3://bucket/prefix/<query-id>")
    p.add_argument("--restart", action="store_true",
                   help="if an input changed, drop every commit and run from scratch on the "
                   "current inputs (without it, a changed input is an error)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--output", "-o", help="write the result to this Parquet file "
                     "(local path or s3://bucket/key)")
    out.add_argument("--format", choices=FORMATS, help="print the result on stdout")
    p.add_argument("--max-rows", type=int, default=50,
                   help="rows printed with --format table (default 50; 0: all)")
    p.add_argument("--parallelism", type=int, default=2, help="tasks at once (default 2)")
    p.add_argument("--runner", choices=RUNNERS, default="thread", help=RUNNER_HELP)
    _endpoint(p)
    p.set_defaults(func=_resume)

    p = sub.add_parser(
        "status", help="progress of a checkpointed query, per stage",
        description="Progress of the checkpointed query at QUERY_ROOT, read from the store "
        "alone (the query may be running elsewhere): per stage the tasks committed of its "
        "total, bytes and rows committed, and when; the state of the query.")
    p.add_argument("query_root", help="s3://bucket/prefix/<query-id>")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument("--watch", type=float, metavar="SECONDS",
                   help="print the status again every SECONDS until the query is done")
    _endpoint(p)
    p.set_defaults(func=_status)

    p = sub.add_parser(
        "ls", help="checkpointed queries under a root, with their state",
        description="List the queries under a checkpoint root with their state (done, "
        "incomplete, unreadable, not-a-query), tasks committed, objects and bytes stored.")
    p.add_argument("root", help="s3://bucket/prefix/ (the --checkpoint root)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    _endpoint(p)
    p.set_defaults(func=_ls)

    p = sub.add_parser(
        "gc", help="remove old checkpoint garbage under a root",
        description="Remove, under a checkpoint root, what is older than --older-than: "
        "task outputs no commit names (failed, duplicate or killed attempts), incomplete "
        "multipart uploads, and finished queries (unless --keep-finished). Unfinished "
        "queries are kept: they can still be resumed.")
    p.add_argument("root", help="s3://bucket/prefix/ (the --checkpoint root)")
    p.add_argument("--older-than", default="7d", metavar="AGE",
                   help="only what is older than this: 45s, 30m, 12h, 7d, 2w (default 7d)")
    p.add_argument("--dry-run", action="store_true", help="only report what would go")
    p.add_argument("--keep-finished", action="store_true",
                   help="keep finished queries (their results) whatever their age")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _endpoint(p)
    p.set_defaults(func=_gc)


def _add_checkpoint_to_sql(sub: argparse._SubParsersAction) -> None:
    """``wj sql --checkpoint s3://bucket/prefix/``: ``wj sql`` (executor layer) takes its plan
    runner from ``args.make_runner``; this layer provides the checkpointed one."""
    sql = sub.choices.get("sql")
    if sql is None or "--checkpoint" in sql._option_string_actions:
        return
    sql.add_argument("--checkpoint", metavar="ROOT",
                     help="run through the object store under ROOT (s3://bucket/prefix/): "
                     "prints the query root first; `wj resume` finishes it after a crash")
    sql.add_argument("--runner", choices=RUNNERS, help=RUNNER_HELP + "; needs --checkpoint")
    sql.set_defaults(make_runner=_make_sql_runner)


def _make_sql_runner(args: argparse.Namespace):
    """The checkpointed runner of one ``wj sql`` query (None without ``--checkpoint``); the
    query root is printed before Spark starts."""
    if not getattr(args, "checkpoint", None):
        if getattr(args, "runner", None):
            print("wj sql: error: --runner needs --checkpoint (tasks of a checkpointed query "
                  "run through the object store)", file=sys.stderr)
            raise SystemExit(2)
        return None
    from checkpoint.errors import CheckpointError
    from checkpoint.runner import CheckpointedRunner

    try:
        runner = CheckpointedRunner(args.checkpoint, output=getattr(args, "output", None),
                                    runner=args.runner or "thread")
    except CheckpointError as err:
        print(f"wj sql: error: --checkpoint: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    _note("sql", f"checkpoint {runner.root}")
    return runner


def _endpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", help="S3 endpoint URL (default: AWS_ENDPOINT_URL)")


def _store(args):
    from wjio.options import StoreOptions

    return StoreOptions(endpoint_url=args.endpoint)


def _guard(command: str, body) -> int:
    """Run ``body``; a user-facing error becomes one line on stderr and exit status 2."""
    from checkpoint.errors import CheckpointError, InputsChangedError
    from executor.errors import ExecutorError, InternalError
    from wjio.errors import WjioError

    try:
        return body() or 0
    except InputsChangedError as err:
        first = err.changes[0] if err.changes else ""
        more = f" (and {len(err.changes) - 1} more)" if len(err.changes) > 1 else ""
        print(f"wj {command}: error: {str(err).splitlines()[0]} {first}{more}; "
              f"resume with --restart to run it again on the current inputs", file=sys.stderr)
    except InternalError:
        raise
    except (CheckpointError, ExecutorError, WjioError, ValueError) as err:
        text = str(err).strip()
        print(f"wj {command}: error: {text.splitlines()[0] if text else type(err).__name__}",
              file=sys.stderr)
    return 2


# -- resume -----------------------------------------------------------------------------------


class _Progress:
    """Tasks done of the total, on one redrawn stderr line (only when stderr is a terminal);
    sized by :meth:`start` once the query's plan is read."""

    def __init__(self) -> None:
        self.totals: list[int] = []
        self.done: list[int] = []
        self.ran = self.skipped = 0
        self.live = sys.stderr.isatty()

    def start(self, query) -> None:
        from checkpoint.status import stage_totals

        self.totals = stage_totals(query)
        self.done = [0] * len(self.totals)

    def __call__(self, event) -> None:
        if event.stage >= len(self.totals):
            return
        if event.kind in ("commit", "skip"):
            self.done[event.stage] += 1
        if event.kind == "lost":
            self.done[event.stage] -= 1
        self.ran += event.kind == "run"
        self.skipped += event.kind == "skip"
        if self.live:
            done, total = sum(self.done), sum(self.totals)
            width = 30
            bar = "#" * (width * done // max(total, 1))
            stage = next((i for i, (d, t) in enumerate(zip(self.done, self.totals,
                                                           strict=True)) if d < t),
                         len(self.totals) - 1)
            print(f"\r[{bar:<{width}}] {done}/{total} tasks, stage {stage}", end="",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.live:
            print(file=sys.stderr)


def _resume(args: argparse.Namespace) -> int:
    def body() -> int:
        from checkpoint.query import resume
        from checkpoint.runner import write_parquet

        if args.parallelism < 1:
            raise ValueError("--parallelism must be >= 1")
        store = _store(args)
        # resume() reads the plan, the result's manifest and the commit records with its
        # independent round trips at once; the query is announced once its plan is in.
        progress = _Progress()
        loaded = []

        def on_loaded(query) -> None:
            loaded.append(query)
            progress.start(query)
            _note("resume", f"{query.root}: resuming")

        t0 = time.perf_counter()
        try:
            result = resume(args.query_root, restart=args.restart, store=store,
                            runner=args.runner, parallelism=args.parallelism,
                            on_loaded=on_loaded, on_task=progress)
        finally:
            progress.close()
        how = "read the committed result" if result.resumed else \
            f"ran {progress.ran} task(s), {progress.skipped} already committed"
        _note("resume", f"{result.table.num_rows} rows in {time.perf_counter() - t0:.2f} s; "
                        f"{how}")
        target = args.output or (None if args.format else loaded[0].options.get("output"))
        if target:
            write_parquet(result.table, target, store=store)
            _note("resume", f"wrote {result.table.num_rows} rows to {target}")
        else:
            _print_table(result.table, args.format or "table", args.max_rows)
        return 0

    return _guard("resume", body)


def _print_table(table, fmt: str, max_rows: int) -> None:
    from executor.cli import format_table

    if fmt == "json":
        for row in table.to_pylist():
            print(json.dumps(row, default=str))
    elif fmt == "csv":
        import io

        import pyarrow.csv as pcsv

        buf = io.BytesIO()
        pcsv.write_csv(table, buf)
        sys.stdout.write(buf.getvalue().decode())
    else:
        print(format_table(table, max_rows))


def _note(command: str, message: str) -> None:
    print(f"wj {command}: {message}", file=sys.stderr, flush=True)


# -- status, ls -------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    def body() -> int:
        from checkpoint.status import query_status

        if args.watch is not None and args.watch <= 0:
            raise ValueError("--watch must be > 0 seconds")
        while True:
            status = query_status(args.query_root, store=_store(args))
            if args.json:
                print(json.dumps(status.to_dict(), sort_keys=True))
            else:
                print(_status_text(status))
            if args.watch is None or status.state == "done":
                return 0
            sys.stdout.flush()
            time.sleep(args.watch)

    return _guard("status", body)


def _status_text(status) -> str:
    from checkpoint.status import age

    lines = [f"{status.uri}: {status.state}, {status.committed} of {status.tasks} tasks "
             f"committed ({status.tasks - status.committed} remaining); created "
             f"{age(status.created_at)}"
             + (f", finished {age(status.finished_at)} ({status.result_rows} rows)"
                if status.finished_at else "")]
    width = 20
    for s in status.stages:
        bar = "#" * (width * s.committed // max(s.tasks, 1))
        took = "" if not s.last_commit else f", last commit {age(s.last_commit)}" if \
            s.committed == 1 else (f", commits over {s.last_commit - s.first_commit:.1f} s, "
                                   f"last {age(s.last_commit)}")
        lines.append(f"  stage {s.stage}: [{bar:<{width}}] {s.committed}/{s.tasks} tasks, "
                     f"{_size(s.bytes)}, {s.rows} rows{took}")
    extra = f", {status.uncommitted_attempts} uncommitted attempt(s)" \
        if status.uncommitted_attempts else ""
    if status.subquery_stages:
        extra += f", {status.subquery_stages} subquery stage(s)"
    lines.append(f"  stored: {status.objects} objects, {_size(status.stored_bytes)}{extra}")
    return "\n".join(lines)


def _ls(args: argparse.Namespace) -> int:
    def body() -> int:
        from checkpoint.status import age, list_queries

        queries = list_queries(args.root, store=_store(args))
        if args.json:
            print(json.dumps([q.to_dict() for q in queries], sort_keys=True))
            return 0
        if not queries:
            _note("ls", f"no queries under {args.root}")
            return 0
        rows = [("QUERY", "STATE", "TASKS", "OBJECTS", "BYTES", "CREATED", "LAST ACTIVITY")]
        for q in queries:
            tasks = f"{q.committed}/{q.tasks}" if q.tasks is not None else f"{q.committed}/?"
            state = q.state + (f" ({q.detail})" if q.detail else "")
            rows.append((q.query_id, state, tasks, str(q.objects), _size(q.stored_bytes),
                         age(q.created_at), age(q.last_activity)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
        return 0

    return _guard("ls", body)


# -- gc ---------------------------------------------------------------------------------------


def _gc(args: argparse.Namespace) -> int:
    def body() -> int:
        from checkpoint.gc import collect_garbage, parse_age

        report = collect_garbage(args.root, older_than_s=parse_age(args.older_than),
                                 dry_run=args.dry_run, keep_finished=args.keep_finished,
                                 store=_store(args))
        if args.json:
            print(json.dumps(report.to_dict(), sort_keys=True))
            return 0
        verb = "would remove" if args.dry_run else "removed"
        for r in report.removed:
            print(f"{verb} {r.kind}: {r.uri} ({r.objects} object(s), {_size(r.bytes)})")
        totals = report.totals()
        summary = ", ".join(f"{t['items']} {kind}(s) ({_size(t['bytes'])})"
                            for kind, t in sorted(totals.items())) or "nothing"
        _note("gc", f"{verb} {summary} older than {args.older_than} under {report.root}")
        return 0

    return _guard("gc", body)


def _size(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
