"""Deterministic benchmark datasets for tools/bench/read_bench.py.

Case "a" (also used by case "b"): one file, 32 row groups, 24 columns of mixed types, ~256 MB
compressed at ``--scale 1``. Case "c": 16 files x 4 row groups, same schema, ~500 MB, one prefix.
Column ``k`` is int64, globally sorted and unique (``k = K0 + global_row``), so the case-(b)
predicate ``k >= lo and k < hi`` keeps exactly row groups 10, 11 and 12 of 32 by min/max
statistics. Files use pyarrow's default writer settings (snappy, dictionary encoding, statistics).

Layout under ``--out``: ``<bucket>/<prefix>case_a/data.parquet``,
``<bucket>/<prefix>case_c/part-NN.parquet`` and ``<bucket>/<prefix>manifest.json``; the directory
``--out`` is directly servable by ``tools.s3server``. With ``--endpoint`` the files are also
uploaded (boto3) to that S3 endpoint.

    python -m tools.datagen --out .wj/bench-data [--case a,c] [--scale 1] [--endpoint URL]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SEED = 20240601
K0 = 1_000_000
ROWS_PER_RG = 44_700  # at scale 1: 32 row groups ~= 256 MB compressed
CASE_A_ROW_GROUPS = 32
CASE_C_FILES = 16
CASE_C_ROW_GROUPS_PER_FILE = 4
KEEP_FIRST_RG, KEEP_RG_COUNT = 10, 3  # case (b): row groups 10..12 survive
PROJECTION = ["k", "price", "email"]  # case (a)/(b): 3 of 24 columns
DEFAULT_BUCKET = "wjbench"

_COUNTRIES = ["US", "DE", "FR", "GB", "JP", "CN", "IN", "BR", "CA", "AU", "IT", "ES", "MX", "KR",
              "NL", "SE", "CH", "PL", "BE", "AT", "NO", "DK", "FI", "IE", "PT", "GR", "CZ", "HU",
              "RO", "TR", "IL", "ZA", "AR", "CL", "CO", "PE", "NZ", "SG", "HK", "TW"]
_STATUS = ["new", "paid", "shipped", "delivered", "returned"]
_WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi "
          "rho sigma tau upsilon phi chi psi omega red green blue black white orange purple "
          "quick brown fox jumps over lazy dog river mountain ocean forest desert valley city "
          "order invoice payment refund customer supplier warehouse shipment parcel").split()

SCHEMA = pa.schema([
    ("k", pa.int64()),
    ("id_a", pa.int64()),
    ("id_b", pa.int64()),
    ("qty", pa.int32()),
    ("code", pa.int32()),
    ("store_id", pa.int32()),
    ("price", pa.float64()),
    ("f64_b", pa.float64()),
    ("f64_c", pa.float64()),
    ("score", pa.float32()),
    ("ts", pa.timestamp("us")),
    ("ts_ship", pa.timestamp("ms")),
    ("day", pa.date32()),
    ("amount", pa.decimal128(18, 2)),
    ("tax", pa.decimal128(12, 4)),
    ("flag", pa.bool_()),
    ("country", pa.string()),
    ("status", pa.string()),
    ("category", pa.string()),
    ("name", pa.string()),
    ("email", pa.string()),
    ("comment", pa.string()),
    ("uuid", pa.string()),
    ("f64_d", pa.float64()),
])


def rows_per_rg(scale: float) -> int:
    return max(10, round(ROWS_PER_RG * scale))


def case_b_bounds(rows_rg: int) -> tuple[int, int]:
    """[lo, hi) of k keeping exactly row groups KEEP_FIRST_RG .. +KEEP_RG_COUNT-1 of case a."""
    lo = K0 + KEEP_FIRST_RG * rows_rg
    return lo, lo + KEEP_RG_COUNT * rows_rg


def case_b_filter(rows_rg: int):
    """The case-(b) predicate as a pyarrow compute expression."""
    lo, hi = case_b_bounds(rows_rg)
    return (pc.field("k") >= lo) & (pc.field("k") < hi)


def _random_strings(rng: np.random.Generator, n: int, lo: int, hi: int) -> pa.Array:
    lengths = rng.integers(lo, hi + 1, n, dtype=np.int32)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = rng.integers(ord("a"), ord("z") + 1, int(offsets[-1]), dtype=np.uint8)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _hex_strings(rng: np.random.Generator, n: int) -> pa.Array:
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    data = digits[rng.integers(0, 16, n * 32, dtype=np.uint8)]
    offsets = np.arange(0, (n + 1) * 32, 32, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


_COMMENT_POOL: pa.Array | None = None


def _comment_pool() -> pa.Array:
    """200k pseudo-sentences of 3-9 words: repetitive text, too many for a dictionary page."""
    global _COMMENT_POOL
    if _COMMENT_POOL is None:
        rng = np.random.default_rng(SEED + 7)
        words = np.array(_WORDS)
        counts = rng.integers(3, 10, 200_000)
        idx = rng.integers(0, len(words), int(counts.sum()))
        parts, pos = [], 0
        for c in counts.tolist():
            parts.append(" ".join(words[idx[pos:pos + c]]))
            pos += c
        _COMMENT_POOL = pa.array(parts, pa.string())
    return _COMMENT_POOL


def make_table(start_row: int, n: int, seed: int = SEED) -> pa.Table:
    """Rows [start_row, start_row + n) of the (infinite, deterministic) benchmark table."""
    rng = np.random.default_rng([seed, start_row, n])
    row = np.arange(start_row, start_row + n, dtype=np.int64)
    ts0 = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    ts = ts0 + row * 1_000_000 + rng.integers(0, 1_000_000, n)
    cents = rng.integers(1, 10_000_000, n)
    cols = {
        "k": K0 + row,
        "id_a": rng.integers(0, 1 << 40, n),
        "id_b": rng.integers(0, 100_000, n),
        "qty": rng.integers(1, 100, n, dtype=np.int32),
        "code": rng.integers(0, 1_000_000, n, dtype=np.int32),
        "store_id": rng.integers(0, 5_000, n, dtype=np.int32),
        "price": np.round(rng.uniform(0.5, 5000.0, n), 2),
        "f64_b": rng.standard_normal(n),
        "f64_c": rng.exponential(10.0, n),
        "score": rng.random(n, dtype=np.float32),
        "ts": pa.array(ts, pa.timestamp("us")),
        "ts_ship": pa.array(ts // 1000 + rng.integers(0, 7 * 86_400_000, n), pa.timestamp("ms")),
        "day": pa.array((ts // 86_400_000_000).astype(np.int32), pa.date32()),
        "amount": _scaled_decimal(cents, 18, 2),
        "tax": _scaled_decimal(rng.integers(0, 10_000_000, n), 12, 4),
        "flag": rng.random(n) < 0.3,
        "country": pa.array(np.array(_COUNTRIES)[rng.zipf(1.5, n) % len(_COUNTRIES)]),
        "status": pa.array(np.array(_STATUS)[rng.integers(0, len(_STATUS), n)]),
        "category": pc.binary_join_element_wise(
            "cat_", pc.cast(pa.array(rng.integers(0, 200, n)), pa.string()), ""),
        "name": _random_strings(rng, n, 6, 20),
        "email": pc.binary_join_element_wise(
            "user", pc.cast(pa.array(rng.integers(0, 10_000_000, n)), pa.string()), "@mail",
            pc.cast(pa.array(rng.integers(0, 50, n)), pa.string()), ".example.com", ""),
        "comment": _comment_pool().take(pa.array(rng.integers(0, 200_000, n))),
        "uuid": _hex_strings(rng, n),
        "f64_d": np.round(rng.normal(100.0, 15.0, n), 3),
    }
    arrays = [v.cast(f.type) if isinstance(v, pa.Array) else pa.array(v, f.type)
              for f, v in ((f, cols[f.name]) for f in SCHEMA)]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _scaled_decimal(unscaled: np.ndarray, precision: int, scale: int) -> pa.Array:
    """decimal128(precision, scale) values whose unscaled integers are ``unscaled``."""
    little = unscaled.astype("<i8")
    words = np.zeros((len(little), 2), dtype="<i8")
    words[:, 0] = little
    words[:, 1] = np.where(little < 0, -1, 0)
    return pa.Array.from_buffers(pa.decimal128(precision, scale), len(little),
                                 [None, pa.py_buffer(words.tobytes())])


def write_file(path: str, start_row: int, rows_rg: int, n_rg: int, seed: int = SEED) -> int:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with pq.ParquetWriter(tmp, SCHEMA) as w:  # pyarrow defaults: snappy, dictionary, statistics
        for g in range(n_rg):
            w.write_table(make_table(start_row + g * rows_rg, rows_rg, seed),
                          row_group_size=rows_rg)
    os.replace(tmp, path)
    return os.path.getsize(path)


def case_keys(case: str, prefix: str = "") -> list[str]:
    if case == "a":
        return [f"{prefix}case_a/data.parquet"]
    if case == "c":
        return [f"{prefix}case_c/part-{i:02d}.parquet" for i in range(CASE_C_FILES)]
    raise ValueError(f"unknown case {case!r}")


def generate(out: str, cases=("a", "c"), scale: float = 1.0, bucket: str = DEFAULT_BUCKET,
             prefix: str = "", seed: int = SEED, force: bool = False, log=print) -> dict:
    """Generate the datasets under ``out/<bucket>/<prefix>`` (idempotent) and return the
    manifest (also written to ``<prefix>manifest.json``)."""
    rows_rg = rows_per_rg(scale)
    base = os.path.join(out, bucket)
    mpath = os.path.join(base, prefix + "manifest.json")
    manifest = {}
    if os.path.exists(mpath) and not force:
        with open(mpath) as f:
            manifest = json.load(f)
        if (manifest.get("scale"), manifest.get("seed")) != (scale, seed):
            manifest = {}
    manifest.update({"scale": scale, "seed": seed, "rows_per_row_group": rows_rg,
                     "bucket": bucket, "prefix": prefix, "projection": PROJECTION,
                     "case_b_bounds": list(case_b_bounds(rows_rg)),
                     "pyarrow": pa.__version__})
    manifest.setdefault("files", {})
    for case in cases:
        keys = case_keys(case, prefix)
        paths = [os.path.join(base, *key.split("/")) for key in keys]
        known = manifest["files"].get(case)
        if known and all(os.path.exists(p) and os.path.getsize(p) == known[key]
                         for key, p in zip(keys, paths, strict=True)):
            continue
        t0 = time.perf_counter()
        sizes = {}
        if case == "a":
            sizes[keys[0]] = write_file(paths[0], 0, rows_rg, CASE_A_ROW_GROUPS, seed)
        else:
            per_file = rows_rg * CASE_C_ROW_GROUPS_PER_FILE
            for i, (key, p) in enumerate(zip(keys, paths, strict=True)):
                sizes[key] = write_file(p, i * per_file, rows_rg, CASE_C_ROW_GROUPS_PER_FILE, seed)
        manifest["files"][case] = sizes
        log(f"datagen: case {case}: {len(sizes)} file(s), {sum(sizes.values()) / 1e6:.1f} MB "
            f"in {time.perf_counter() - t0:.1f}s under {base}")
    os.makedirs(base, exist_ok=True)
    with open(mpath, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    return manifest


def upload(out: str, endpoint: str, bucket: str = DEFAULT_BUCKET, prefix: str = "",
           cases=("a", "c"), log=print) -> None:
    """Upload the generated files to an S3 endpoint (skipping objects of the right size)."""
    import boto3
    from boto3.s3.transfer import TransferConfig

    s3 = boto3.client("s3", endpoint_url=endpoint,
                      region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception:
        s3.create_bucket(Bucket=bucket)
    cfg = TransferConfig(multipart_threshold=64 << 20, multipart_chunksize=64 << 20)
    keys = [k for c in cases for k in case_keys(c, prefix)] + [prefix + "manifest.json"]
    for key in keys:
        path = os.path.join(out, bucket, *key.split("/"))
        try:
            if s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == os.path.getsize(path):
                continue
        except Exception:
            pass
        s3.upload_file(path, bucket, key, Config=cfg)
        log(f"datagen: uploaded s3://{bucket}/{key}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Generate the wjio read-benchmark datasets.")
    ap.add_argument("--out", default=".wj/bench-data", help="local directory (s3server root)")
    ap.add_argument("--case", default="a,c", help="comma list of a,c (b reads case a's file)")
    ap.add_argument("--scale", type=float, default=1.0, help="row-group size multiplier")
    ap.add_argument("--bucket", default=DEFAULT_BUCKET)
    ap.add_argument("--prefix", default="", help="key prefix inside the bucket (e.g. 'bench/')")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--force", action="store_true", help="regenerate even if present")
    ap.add_argument("--endpoint", help="also upload to this S3 endpoint URL")
    args = ap.parse_args(argv)
    cases = tuple(c for c in args.case.replace("b", "a").split(",") if c)
    cases = tuple(dict.fromkeys(cases))
    generate(args.out, cases, args.scale, args.bucket, args.prefix, args.seed, args.force)
    if args.endpoint:
        upload(args.out, args.endpoint, args.bucket, args.prefix, cases)


if __name__ == "__main__":
    main()
