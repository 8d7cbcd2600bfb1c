"""``wj demo``: the main job on the embedded default (local S3 rig + local workers).

Today it shows the reader: it starts the rig, writes a small partitioned dataset, scans a few
columns with a predicate through wjio, checks the rows against pyarrow's local read of the same
data, and prints the IO report.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def make_orders(n: int, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "order_id": pa.array(np.arange(n, dtype=np.int64)),
            "customer": pa.array(rng.integers(0, 50_000, n)),
            "amount": pa.array(np.round(rng.gamma(2.0, 40.0, n), 2)),
            "status": pa.array(rng.choice(["open", "shipped", "returned"], n)),
            "comment": pa.array([f"order {i} note {i % 97}" for i in range(n)]),
            "day": pa.array(rng.integers(0, 4, n).astype(np.int32)),
        }
    )


def run_demo(*, rows: int = 400_000, out=sys.stdout) -> int:
    import wjio
    from wjio import rig
    from wjio.cli import format_stats

    def step(msg: str) -> None:
        print(f"[demo] {msg}", file=out, flush=True)

    t_all = time.perf_counter()
    step("starting the local S3 rig ...")
    with rig.start(buckets=("wjio-demo",)) as r:
        step(f"rig: {r.kind} at {r.endpoint_url}")
        table = make_orders(rows)
        client = r.client()
        step(f"writing {rows:,} rows as a Hive-partitioned dataset (day=0..3, 8 row groups each)")
        with tempfile.TemporaryDirectory() as tmp:
            for day in range(4):
                part = table.filter(pc.field("day") == day).drop_columns(["day"])
                buf = io.BytesIO()
                pq.write_table(part, buf, row_group_size=max(1, part.num_rows // 8))
                client.put_object(
                    Bucket="wjio-demo", Key=f"orders/day={day}/part-0.parquet",
                    Body=buf.getvalue(),
                )
                path = os.path.join(tmp, f"day={day}")
                os.makedirs(path)
                pq.write_table(part, os.path.join(path, "part-0.parquet"))
            client.put_object(Bucket="wjio-demo", Key="orders/_SUCCESS", Body=b"")
            where = (pc.field("day") >= 2) & (pc.field("order_id") < rows // 3)
            step("scanning s3://wjio-demo/orders/ columns order_id, amount "
                 "where day >= 2 and order_id < rows/3")
            scan = wjio.ParquetScan(
                "s3://wjio-demo/orders/", columns=["order_id", "amount"], filter=where,
                store=wjio.StoreOptions(endpoint_url=r.endpoint_url,
                                        aws_access_key_id=r.access_key,
                                        aws_secret_access_key=r.secret_key),
            )
            got = scan.to_table()
            expected = pq.read_table(tmp, partitioning="hive", filters=where).select(
                ["order_id", "amount"]
            )
        ok = got.sort_by("order_id").equals(expected.sort_by("order_id"))
        step(f"result: {got.num_rows:,} rows; equal to pyarrow's local read: {ok}")
        print(format_stats(scan.stats), file=out)
    step(f"done in {time.perf_counter() - t_all:.1f}s")
    return 0 if ok else 1


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main job on the embedded default (local S3 rig)",
        description="Start the local S3 rig, write a small dataset, scan it with wjio, check "
        "the result against pyarrow's local read and print the IO report.",
    )
    p.add_argument("--rows", type=int, default=400_000, help="rows to generate")
    p.set_defaults(func=lambda args: run_demo(rows=args.rows))
