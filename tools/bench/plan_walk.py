"""Time reading Spark's optimized plans: the py4j walk against the JVM-side walk.

    python -m tools.bench.plan_walk [--data-dir DIR] [--runs 3] [--queries 1,3,...]

For each TPC-H query (plan shapes do not depend on the scale; without ``--data-dir`` SF 0.01
is generated into a temporary directory) the optimized plan is built once, then read
``--runs`` times by each walk (``executor.frontend.spark.read_plan_py4j``: one py4j round
trip per accessor; ``read_plan``: one call into the helper of ``executor.frontend.jvm_walk``)
and the medians are printed, with the number of annotated expression nodes; "jvm 1st" is the
JVM-side walk's first read of the plan (the JVM's JIT has not compiled the walk for its classes
yet). Both reads must be equal, or the script fails. The one-off Janino compilation is timed
separately.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from executor.frontend import jvm_walk
    from executor.frontend import spark as front
    from tools import tpch
    from tools.bench.tpch_bench import register_tables, start_spark

    queries = ([int(q) for q in args.queries.split(",")] if args.queries
               else list(tpch.QUERY_NUMBERS))
    with tempfile.TemporaryDirectory(prefix="plan-walk-") as tmp:
        data_dir = args.data_dir
        if data_dir is None:
            from spark_conf import tpch as gen

            gen.generate(tmp, 0.01, threads=1, log=lambda *_: None)
            data_dir = tmp
        spark = start_spark({})
        register_tables(spark, Path(data_dir))

        first = spark.sql(tpch.query_text(queries[0]))._jdf.queryExecution().optimizedPlan()
        t0 = time.perf_counter()
        helper = jvm_walk.helper_for(first)
        print(f"janino compile (once per JVM): {time.perf_counter() - t0:.3f} s")
        if helper is None:
            print("the JVM-side walk did not compile (see the log)", file=sys.stderr)
            return 1

        totals = [0.0, 0.0, 0.0]
        print(f"{'query':>5} {'nodes':>5} {'py4j s':>8} {'jvm 1st':>8} {'jvm s':>8} "
              f"{'speed-up':>8}")
        for q in queries:
            jplan = spark.sql(tpch.query_text(q))._jdf.queryExecution().optimizedPlan()
            _, first_s = _timed(front.read_plan, jplan, 1)
            old, old_s = _timed(front.read_plan_py4j, jplan, args.runs)
            new, new_s = _timed(front.read_plan, jplan, args.runs)
            if new != old:
                print(f"q{q}: the JVM-side walk differs from the py4j walk", file=sys.stderr)
                return 1
            for i, t in enumerate((old_s, first_s, new_s)):
                totals[i] += t
            print(f"{f'q{q}':>5} {len(old.nodes):>5} {old_s:>8.4f} {first_s:>8.4f} "
                  f"{new_s:>8.4f} {old_s / new_s:>7.0f}x")
        print(f"{'total':>5} {'':>5} {totals[0]:>8.3f} {totals[1]:>8.3f} {totals[2]:>8.3f} "
              f"{totals[0] / totals[2]:>7.0f}x")
    return 0


def _timed(read, jplan, runs: int):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = read(jplan)
        times.append(time.perf_counter() - t0)
    return result, statistics.median(times)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.bench.plan_walk", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", help="TPC-H Parquet tables (default: generate SF 0.01)")
    p.add_argument("--runs", type=int, default=3, help="timed reads per walk and query")
    p.add_argument("--queries", help="comma-separated query numbers (default: all 22)")
    return p


if __name__ == "__main__":
    sys.exit(main())
