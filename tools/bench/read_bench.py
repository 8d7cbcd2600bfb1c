"""Read benchmark: wjio vs pyarrow (S3FileSystem), pyarrow + s3fs and polars over a shaped link.

    python -m tools.bench.read_bench [--endpoint URL] [--bucket B] [--data-dir DIR] [--runs 5]
        [--cases a,b,c] [--readers wjio,pyarrow,s3fs,polars] [--latency-ms 25]
        [--bandwidth-mbps 80] [--out bench-results/]

Cases: (a) 3 of 24 columns of a ~256 MB file with 32 row groups; (b) the same with a predicate
keeping 3 of 32 row groups; (c) all columns of a 16-file ~500 MB dataset listed by prefix.

Without ``--endpoint`` the datasets are generated into ``--data-dir`` (if missing) and served by
``tools.s3server`` in a child process; with ``--endpoint`` (an http:// S3 endpoint such as MinIO;
credentials from the standard AWS env vars) the local copies are uploaded if absent and the local
copies still serve as the reference for result checks and "bytes needed". Every reader reaches
the endpoint through ``tools.proxy.ShapingProxy`` (in its own process) with the given first-byte
latency and per-connection bandwidth (MB/s = 1e6 bytes/s).

Per reader and case: one warm-up run then ``--runs`` timed runs, each with a fresh filesystem
object / scan; wall time is from the call to a materialized ``pyarrow.Table``, CPU time that of
the benchmark process (the reader's threads) over the same span. Requests, max
requests in flight and bytes fetched come from the proxy. Every result (warm-up included) is
checked against pyarrow's local read of the same files. Output: read_bench.json (raw timings and
environment), read_bench.md and read_bench.png in ``--out``.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
import traceback

import wjio  # noqa: F401  (first, as in the product: its process settings precede polars')
from tools import datagen
from tools.bench import infra, readers, report

MB = 1e6
PEERS = ("pyarrow", "s3fs", "polars")


def _setup_env() -> None:
    """Dummy credentials unless real ones are set; never probe EC2 metadata or user profiles."""
    if not os.environ.get("AWS_ACCESS_KEY_ID"):
        os.environ.update(AWS_ACCESS_KEY_ID="wjbench", AWS_SECRET_ACCESS_KEY="wjbench-secret",
                          AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            os.environ.pop(var, None)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_REGION", os.environ["AWS_DEFAULT_REGION"])
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tools.bench.read_bench",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--endpoint", help="http:// S3 endpoint (default: start tools.s3server)")
    ap.add_argument("--bucket", default=datagen.DEFAULT_BUCKET)
    ap.add_argument("--prefix", default="", help="key prefix of the datasets in the bucket")
    ap.add_argument("--data-dir", default=".wj/bench-data",
                    help="local dataset directory (generated if missing; s3server root)")
    ap.add_argument("--scale", type=float, default=1.0, help="dataset scale (1 = ~256/500 MB)")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per reader and case")
    ap.add_argument("--cases", default="a,b,c")
    ap.add_argument("--readers", default="wjio,pyarrow,s3fs,polars")
    ap.add_argument("--latency-ms", type=float, default=25.0)
    ap.add_argument("--bandwidth-mbps", type=float, default=80.0,
                    help="per-connection bandwidth in MB/s (1e6 bytes/s)")
    ap.add_argument("--out", default="bench-results")
    ap.add_argument("--run-timeout", type=float, default=600.0,
                    help="seconds before a hung run dumps all stacks and aborts the benchmark")
    ap.add_argument("--throughput-seconds", type=float, default=1.5,
                    help="duration of each raw-throughput measurement level")
    args = ap.parse_args(argv)
    args.case_list = [c.strip() for c in args.cases.split(",") if c.strip()]
    args.reader_list = [r.strip() for r in args.readers.split(",") if r.strip()]
    bad = [c for c in args.case_list if c not in ("a", "b", "c")]
    bad += [r for r in args.reader_list if r not in readers.READERS]
    if bad:
        ap.error(f"unknown case/reader: {bad}")
    return args


def measure_links(endpoint: str, proxy: infra.ProxyProcess, bucket: str, key: str, size: int,
                  bandwidth_MBps: float, seconds: float, local: bool) -> dict:
    """Raw parallel range-GET throughput: endpoint direct, proxy shaped (the aggregate bandwidth
    used in the physical bound), and proxy unshaped (its own ceiling)."""
    out = {}
    out["endpoint_raw"] = infra.measure(endpoint, bucket, key, size, (1, 4, 16), seconds=seconds)
    out["proxy_shaped"] = infra.measure(proxy.url, bucket, key, size, (1, 4, 16, 64),
                                        seconds=seconds, per_conn_MBps=bandwidth_MBps)
    _upstream, latency_s, bandwidth_bps = proxy.args
    proxy.set_shaping(0.0, None)
    try:
        out["proxy_unshaped"] = infra.measure(proxy.url, bucket, key, size, (16, 64),
                                              seconds=seconds)
    finally:
        proxy.set_shaping(latency_s, bandwidth_bps)
    for name in ("endpoint_raw", "proxy_shaped", "proxy_unshaped"):
        for lvl in out[name]["levels"]:
            print(f"  {name:15s} conc {lvl['concurrency']:3d}: {lvl['MBps']:8.1f} MB/s, "
                  f"first byte {lvl['first_byte_ms_median']:6.1f} ms")
    out["endpoint_kind"] = "tools.s3server" if local else endpoint
    return out


def _process_cpu_s() -> float:
    """CPU seconds of this process (all its threads: the reader's decoding and IO; the
    endpoint and the proxy run in other processes). Less sensitive than wall time to other
    load on a shared machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_reader(reader: readers.Reader, case: readers.Case, proxy: infra.ProxyProcess,
               expected, runs: int, needed: int, timeout_s: float) -> dict:
    res: dict = {"name": reader.name, "label": reader.label, "runs": [], "status": "ok"}
    why = reader.unavailable()
    if why:
        res.update(status="skipped", message=why)
        print(f"  {reader.name:8s} SKIPPED: {why}")
        return res
    for i in range(runs + 1):
        gc.collect()
        proxy.reset_stats()
        faulthandler.dump_traceback_later(timeout_s, exit=True)
        cpu0 = _process_cpu_s()
        t0 = time.perf_counter()
        try:
            table, extra = reader.read(case, proxy.url)
        except Exception as exc:
            faulthandler.cancel_dump_traceback_later()
            res.update(status="error", message=f"{type(exc).__name__}: {exc}"[:500],
                       traceback=traceback.format_exc())
            print(f"  {reader.name:8s} ERROR: {res['message']}")
            return res
        wall = time.perf_counter() - t0
        cpu = _process_cpu_s() - cpu0
        faulthandler.cancel_dump_traceback_later()
        st = proxy.stats()
        try:
            verdict = readers.check(table, expected)
        except AssertionError as exc:
            res.update(status="wrong result", message=str(exc)[:500])
            print(f"  {reader.name:8s} WRONG RESULT: {exc}")
            return res
        del table
        run = {"wall_s": wall, "cpu_s": cpu, "requests": st["requests"],
               "get_requests": st["get_requests"],
               "requests_by_method": st.get("requests_by_method"),
               "max_in_flight": st["max_in_flight"], "bytes_fetched": st["bytes_to_client"],
               "connections": st.get("connections"), "check": verdict, **extra}
        label = "warm-up" if i == 0 else f"run {i}/{runs}"
        print(f"  {reader.name:8s} {label:9s} {wall:7.3f} s  cpu {cpu:6.3f} s  "
              f"req {st['requests']:4d}  "
              f"in-flight {st['max_in_flight']:3d}  fetched {st['bytes_to_client'] / MB:7.1f} MB"
              f" ({st['bytes_to_client'] / needed:.3f}x needed)  "
              f"rows {verdict['rows']} ok{'' if verdict['order_preserved'] else ' (re-sorted)'}")
        if i == 0:
            res["warmup"] = run
        else:
            res["runs"].append(run)
    walls = [r["wall_s"] for r in res["runs"]]

    def med(key: str) -> float:
        return statistics.median(r[key] for r in res["runs"])

    res["summary"] = {
        "median_wall_s": statistics.median(walls), "min_wall_s": min(walls),
        "max_wall_s": max(walls), "median_cpu_s": med("cpu_s"), "requests": med("requests"),
        "max_in_flight": med("max_in_flight"), "bytes_fetched": med("bytes_fetched"),
        "fetched_over_needed": med("bytes_fetched") / needed,
        "check": "ok" if all(r["check"]["order_preserved"] for r in res["runs"]) else
        "ok (re-sorted)",
    }
    return res


def evaluate_targets(cases: list[dict]) -> list[dict]:
    out = []
    for case in cases:
        by = {r["name"]: r.get("summary") for r in case["readers"]}
        w = by.get("wjio")
        if not w:
            continue
        n = case["name"]
        if n in ("a", "b"):
            ratio = w["fetched_over_needed"]
            out.append({"what": f"({n}) bytes fetched <= 1.05 x needed", "met": ratio <= 1.05,
                        "detail": f"{ratio:.3f}x"})
        peers = {p: by[p]["median_wall_s"] for p in PEERS if by.get(p)}
        if peers:
            best = min(peers, key=peers.get)
            detail = f"wjio {w['median_wall_s']:.3f} s vs {best} {peers[best]:.3f} s"
            out.append({"what": f"({n}) wall <= best peer",
                        "met": w["median_wall_s"] <= peers[best], "detail": detail})
        if n in ("a", "b") and by.get("pyarrow"):
            speedup = by["pyarrow"]["median_wall_s"] / w["median_wall_s"]
            out.append({"what": f"({n}) >= 1.5x faster than pyarrow", "met": speedup >= 1.5,
                        "detail": f"{speedup:.2f}x"})
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _setup_env()
    os.makedirs(args.out, exist_ok=True)
    gen_cases = tuple(dict.fromkeys("a" if c in ("a", "b") else "c" for c in args.case_list))
    print(f"datasets: {os.path.abspath(args.data_dir)} (scale {args.scale})")
    manifest = datagen.generate(args.data_dir, gen_cases, args.scale, args.bucket, args.prefix)
    server = proxy = None
    try:
        if args.endpoint:
            endpoint = args.endpoint.rstrip("/")
            datagen.upload(args.data_dir, endpoint, args.bucket, args.prefix, gen_cases)
        else:
            server = infra.S3ServerProcess(os.path.abspath(args.data_dir)).start()
            endpoint = server.url
        proxy = infra.ProxyProcess(endpoint, args.latency_ms / 1000,
                                   args.bandwidth_mbps * 1e6).start()
        print(f"endpoint {endpoint}  proxy {proxy.url}  ({args.latency_ms:g} ms, "
              f"{args.bandwidth_mbps:g} MB/s per connection)")
        # a file every case set has: case a's if generated, else the first case-c part
        probe_case = gen_cases[0]
        probe_key = datagen.case_keys(probe_case, args.prefix)[0]
        probe_size = manifest["files"][probe_case][probe_key]
        print("raw throughput (parallel 8 MiB range GETs):")
        links = measure_links(endpoint, proxy, args.bucket, probe_key, probe_size,
                              args.bandwidth_mbps, args.throughput_seconds, server is not None)
        agg = links["proxy_shaped"]["best_MBps"] * MB
        env = {"cpu_count": os.cpu_count(), "python": platform.python_version(),
               "platform": platform.platform(), "versions": readers.versions(),
               "latency_ms": args.latency_ms, "bandwidth_MBps": args.bandwidth_mbps,
               "aggregate_MBps": agg / MB, **links}
        cases_out = []
        for case in readers.make_cases(args.data_dir, manifest, args.case_list):
            need = readers.needed_bytes(case)
            bound = need["bytes_needed"] / agg + args.latency_ms / 1000 * case.rounds
            print(f"\ncase ({case.name}) {case.description}: {case.uri}\n  needed "
                  f"{need['bytes_needed'] / MB:.1f} MB in {need['row_groups_kept']}/"
                  f"{need['row_groups_total']} row groups; physical bound {bound:.3f} s")
            local_times = []
            for _ in range(3):  # the reference result; min time = decode cost without network
                t0 = time.perf_counter()
                expected = readers.expected_table(case)
                local_times.append(time.perf_counter() - t0)
            print(f"  local pyarrow read (page cache, no network): {min(local_times):.3f} s")
            entry = {"name": case.name, "description": case.description, "uri": case.uri,
                     "columns": case.columns, "bounds": case.bounds, "needed": need,
                     "rounds": case.rounds, "bound_s": bound,
                     "local_read_s": min(local_times), "local_read_runs_s": local_times,
                     "bound_formula": f"{need['bytes_needed']} B / {agg / MB:.1f} MB/s + "
                                      f"{case.rounds} x {args.latency_ms:g} ms",
                     "readers": []}
            for name in args.reader_list:
                entry["readers"].append(run_reader(readers.READERS[name], case, proxy, expected,
                                                   args.runs, need["bytes_needed"],
                                                   args.run_timeout))
            del expected
            cases_out.append(entry)
    finally:
        if proxy is not None:
            proxy.stop()
        if server is not None:
            server.stop()
    results = {"config": dict(vars(args)), "environment": env,
               "cases": cases_out, "targets": evaluate_targets(cases_out),
               "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(os.path.join(args.out, "read_bench.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    md = report.markdown(results)
    with open(os.path.join(args.out, "read_bench.md"), "w") as f:
        f.write(md)
    report.chart(results, os.path.join(args.out, "read_bench.png"))
    print("\n" + md)
    print(f"wrote {args.out}/read_bench.json, read_bench.md, read_bench.png")
    failed = [r for c in cases_out for r in c["readers"] if r["status"] in ("error",
                                                                           "wrong result")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
