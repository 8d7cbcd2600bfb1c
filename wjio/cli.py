"""``wj scan`` and ``wj rig``: the reader and the local S3 rig from the command line."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scan",
        help="read Parquet from S3 with the precise-prefetch reader",
        description="Read Parquet objects (one object or every data file under a prefix), "
        "fetching only the byte ranges the columns and predicate need; print rows and, with "
        "--stats, the IO report.",
    )
    p.add_argument("uri", help="s3://bucket/key or s3://bucket/prefix/")
    p.add_argument("--columns", help="comma-separated columns (default: all)")
    p.add_argument("--where", help='SQL-like predicate, e.g. "a > 5 and b = \'x\'"')
    p.add_argument("--limit", type=int, default=20, help="rows to print (default 20; 0: none)")
    p.add_argument("--stats", action="store_true", help="print the IO report")
    p.add_argument("--json", action="store_true", help="print the IO report as JSON")
    p.add_argument("--endpoint", help="S3 endpoint URL (default: AWS_ENDPOINT_URL)")
    p.add_argument("--concurrency", type=int, help="range requests in flight")
    p.add_argument("--memory-budget-mb", type=int, help="memory budget in MiB")
    p.set_defaults(func=_scan)

    r = sub.add_parser(
        "rig",
        help="local S3 endpoint (MinIO if installed, else moto)",
        description="Run a local S3 endpoint on 127.0.0.1 for development and tests: MinIO "
        "when a `minio` binary is on PATH (or WJ_MINIO_BINARY), else moto's server.",
    )
    rsub = r.add_subparsers(dest="rig_command", required=True)
    up = rsub.add_parser("up", help="start the rig in the background and create buckets")
    up.add_argument("--bucket", action="append", help="bucket to create (repeatable)")
    up.add_argument("--port", type=int, default=0, help="port (default: any free port)")
    up.set_defaults(func=_rig_up)
    rsub.add_parser("down", help="stop the background rig").set_defaults(func=_rig_down)
    env = rsub.add_parser("env", help="print `export` lines for the rig's AWS variables")
    env.set_defaults(func=_rig_env)


def _scan(args: argparse.Namespace) -> int:
    import time

    import wjio
    from wjio.where import parse_where

    store = wjio.StoreOptions(endpoint_url=args.endpoint)
    opts = {}
    if args.concurrency:
        opts["concurrency"] = args.concurrency
    if args.memory_budget_mb:
        opts["memory_budget"] = args.memory_budget_mb * 1024 * 1024
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    expr = parse_where(args.where) if args.where else None
    scan = wjio.ParquetScan(
        args.uri, columns=columns, filter=expr, store=store, options=wjio.ScanOptions(**opts)
    )
    t0 = time.perf_counter()
    reader = scan.to_reader()
    shown, rows = [], 0
    for batch in reader:
        rows += batch.num_rows
        if args.limit and sum(b.num_rows for b in shown) < args.limit:
            shown.append(batch)
    if args.limit:
        import pyarrow as pa

        head = pa.Table.from_batches(shown, schema=reader.schema).slice(0, args.limit)
        print(head.to_pandas().to_string() if _has_pandas() else head.to_string(preview_cols=20))
    print(f"{rows} rows in {time.perf_counter() - t0:.3f}s", file=sys.stderr)
    if args.json:
        print(json.dumps(scan.stats.as_dict(), indent=2))
    elif args.stats:
        print(format_stats(scan.stats))
    return 0


def format_stats(stats) -> str:
    s = stats
    ratio = f"{s.fetch_ratio:.3f}" if s.bytes_needed else "n/a"
    return "\n".join(
        [
            "IO report",
            f"  files              {s.files} ({s.files_pruned} pruned)",
            f"  row groups         {s.row_groups_total} ({s.row_groups_pruned} pruned)",
            f"  requests           {s.requests} (footer {s.footer_requests}, list "
            f"{s.list_requests}, retries {s.retries}, max in flight {s.max_in_flight})",
            f"  bytes fetched      {s.bytes_fetched:,}",
            f"  bytes needed       {s.bytes_needed:,}  (fetched/needed {ratio})",
            f"  rows               {s.rows:,}",
            f"  peak memory        {s.peak_memory:,}",
            f"  wall time          {s.wall_time_s:.3f}s",
        ]
    )


def _has_pandas() -> bool:
    try:
        import pandas  # noqa: F401
    except ImportError:
        return False
    return True


def _rig_up(args: argparse.Namespace) -> int:
    from wjio import rig

    r = rig.up(buckets=tuple(args.bucket or rig.DEFAULT_BUCKETS), port=args.port)
    print(f"rig ({r.kind}) at {r.endpoint_url}, pid {r.pid}; `eval $(wj rig env)` to use it",
          file=sys.stderr)
    return 0


def _rig_down(args: argparse.Namespace) -> int:
    from wjio import rig

    if not rig.down():
        print("no rig is running", file=sys.stderr)
        return 1
    print("rig stopped", file=sys.stderr)
    return 0


def _rig_env(args: argparse.Namespace) -> int:
    import shlex

    from wjio import rig

    r = rig.running()
    if r is None:
        print("no rig is running; start one with `wj rig up`", file=sys.stderr)
        return 1
    for key, value in r.env().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0
