"""The benchmark cases, the readers under comparison, and result checking.

Every reader is built fresh for each run (new filesystem object / new scan) and returns a
materialized ``pyarrow.Table``; the harness checks it against pyarrow's local read of the same
files."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tools import datagen

DEPENDENT_ROUNDS = {"file": 2, "prefix": 3}  # (list) + footer + data


@dataclass
class Case:
    name: str
    description: str
    bucket: str
    key: str  # object key, or prefix ending in "/" (listed)
    local_path: str  # file, or directory holding the prefix's files
    columns: list[str] | None
    bounds: tuple[int, int] | None  # k in [lo, hi) or no predicate
    local_files: list[str] = field(default_factory=list)

    @property
    def is_prefix(self) -> bool:
        return self.key.endswith("/")

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def rounds(self) -> int:
        return DEPENDENT_ROUNDS["prefix" if self.is_prefix else "file"]

    def arrow_filter(self):
        if self.bounds is None:
            return None
        lo, hi = self.bounds
        return (pc.field("k") >= lo) & (pc.field("k") < hi)


def make_cases(data_dir: str, manifest: dict, names) -> list[Case]:
    bucket, prefix = manifest["bucket"], manifest["prefix"]
    base = os.path.join(data_dir, bucket)
    key_a = datagen.case_keys("a", prefix)[0]
    local_a = os.path.join(base, *key_a.split("/"))
    proj = list(manifest["projection"])
    bounds = tuple(manifest["case_b_bounds"])
    keys_c = datagen.case_keys("c", prefix)
    dir_c = os.path.dirname(os.path.join(base, *keys_c[0].split("/")))
    all_cases = {
        "a": Case("a", f"{len(proj)} of {len(datagen.SCHEMA)} columns, 1 file, 32 row groups",
                  bucket, key_a, local_a, proj, None, [local_a]),
        "b": Case("b", f"as (a) + predicate {bounds[0]} <= k < {bounds[1]} (3 of 32 row groups)",
                  bucket, key_a, local_a, proj, bounds, [local_a]),
        "c": Case("c", f"all columns, {len(keys_c)} files listed by prefix", bucket,
                  keys_c[0].rsplit("/", 1)[0] + "/", dir_c, None, None,
                  [os.path.join(base, *k.split("/")) for k in keys_c]),
    }
    return [all_cases[n] for n in names]


# ---- bytes needed (independent of any reader) --------------------------------------------------
def needed_bytes(case: Case) -> dict:
    """Sum of total_compressed_size of the needed columns' chunks (projection plus predicate
    columns) in the row groups surviving min/max pruning; footers reported separately."""
    need = total = footer = 0
    groups = kept = 0
    for path in case.local_files:
        md = pq.ParquetFile(path).metadata
        footer += md.serialized_size + 8
        names = [md.schema.column(i).path for i in range(md.num_columns)]
        wanted = set(names) if case.columns is None else set(case.columns) | (
            {"k"} if case.bounds else set())
        k_idx = names.index("k")
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            groups += 1
            for i in range(md.num_columns):
                total += rg.column(i).total_compressed_size
            if case.bounds is not None:
                st = rg.column(k_idx).statistics
                lo, hi = case.bounds
                if st is None or not st.has_min_max:
                    pass  # cannot prune without statistics
                elif st.max < lo or st.min >= hi:
                    continue
            kept += 1
            need += sum(rg.column(i).total_compressed_size for i in range(md.num_columns)
                        if names[i] in wanted)
    return {"bytes_needed": need, "bytes_all_chunks": total, "footer_bytes": footer,
            "row_groups_total": groups, "row_groups_kept": kept,
            "files": len(case.local_files)}


def expected_table(case: Case) -> pa.Table:
    return pq.read_table(case.local_path, columns=case.columns, filters=case.arrow_filter())


# ---- checking -----------------------------------------------------------------------------------
def _normalize(table: pa.Table, like: pa.Schema) -> pa.Table:
    cols = []
    for f in like:
        col = table.column(f.name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if col.type != f.type:
            col = col.cast(f.type)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=like)


def check(actual: pa.Table, expected: pa.Table) -> dict:
    """Same rows and values as ``expected`` (column order/types normalized; rows re-sorted by
    ``k`` if the reader did not preserve order). Raises AssertionError on mismatch."""
    if set(actual.column_names) != set(expected.column_names):
        raise AssertionError(f"columns {sorted(actual.column_names)} != "
                             f"{sorted(expected.column_names)}")
    if actual.num_rows != expected.num_rows:
        raise AssertionError(f"{actual.num_rows} rows, expected {expected.num_rows}")
    norm = _normalize(actual, expected.schema)
    if norm.equals(expected):
        return {"ok": True, "rows": actual.num_rows, "order_preserved": True}
    if "k" in expected.column_names:
        s_act, s_exp = norm.sort_by("k"), expected.sort_by("k")
        if s_act.equals(s_exp):
            return {"ok": True, "rows": actual.num_rows, "order_preserved": False}
        norm, expected = s_act, s_exp
    bad = [n for n in expected.column_names if not norm.column(n).equals(expected.column(n))]
    raise AssertionError(f"values differ in columns {bad}")


# ---- readers ------------------------------------------------------------------------------------
def _creds() -> tuple[str, str, str]:
    return (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"],
            os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


def read_pyarrow(case: Case, url: str) -> tuple[pa.Table, dict]:
    from pyarrow import fs as pafs

    key, secret, region = _creds()
    parts = urlsplit(url)
    s3 = pafs.S3FileSystem(endpoint_override=parts.netloc, scheme=parts.scheme, access_key=key,
                           secret_key=secret, region=region)
    table = pq.read_table(f"{case.bucket}/{case.key}", filesystem=s3, columns=case.columns,
                          filters=case.arrow_filter())
    return table, {}


def read_s3fs(case: Case, url: str) -> tuple[pa.Table, dict]:
    import s3fs

    key, secret, region = _creds()
    fs = s3fs.S3FileSystem(key=key, secret=secret, endpoint_url=url, skip_instance_cache=True,
                           use_listings_cache=False, client_kwargs={"region_name": region})
    table = pq.read_table(f"{case.bucket}/{case.key}", filesystem=fs, columns=case.columns,
                          filters=case.arrow_filter())
    return table, {}


def read_polars(case: Case, url: str) -> tuple[pa.Table, dict]:
    import polars as pl

    key, secret, region = _creds()
    opts = {"aws_endpoint_url": url, "aws_access_key_id": key, "aws_secret_access_key": secret,
            "aws_region": region, "aws_allow_http": "true"}
    lf = pl.scan_parquet(case.uri, storage_options=opts)
    if case.bounds is not None:
        lo, hi = case.bounds
        lf = lf.filter((pl.col("k") >= lo) & (pl.col("k") < hi))
    if case.columns is not None:
        lf = lf.select(case.columns)
    return lf.collect().to_arrow(), {}


def read_wjio(case: Case, url: str) -> tuple[pa.Table, dict]:
    import wjio
    from wjio.footer import FOOTER_CACHE

    # Every run starts cold, like the peers' fresh filesystem objects: no parsed footers kept
    # from an earlier run (the cache would save wjio one round trip per file).
    FOOTER_CACHE.clear()
    _key, _secret, region = _creds()
    scan = wjio.ParquetScan(case.uri, columns=case.columns, filter=case.arrow_filter(),
                            store=wjio.StoreOptions(endpoint_url=url, region=region))
    table = scan.to_table()
    st = scan.stats
    names = ("requests", "bytes_fetched", "bytes_needed", "footer_requests", "retries",
             "row_groups_total", "row_groups_pruned", "wall_time_s")
    return table, {"wjio_stats": {n: getattr(st, n, None) for n in names}}


def _wjio_unavailable() -> str | None:
    try:
        import wjio
    except Exception as exc:
        return f"import wjio failed: {exc!r}"
    missing = [n for n in ("ParquetScan", "StoreOptions") if not hasattr(wjio, n)]
    return f"wjio lacks {', '.join(missing)}" if missing else None


def _module_unavailable(name: str) -> Callable[[], str | None]:
    def probe() -> str | None:
        try:
            __import__(name)
        except Exception as exc:
            return f"import {name} failed: {exc!r}"
        return None
    return probe


@dataclass
class Reader:
    name: str
    label: str
    read: Callable[[Case, str], tuple[pa.Table, dict]]
    unavailable: Callable[[], str | None]


READERS = {
    "wjio": Reader("wjio", "wjio ParquetScan", read_wjio, _wjio_unavailable),
    "pyarrow": Reader("pyarrow", "pyarrow + S3FileSystem (pre_buffer)", read_pyarrow,
                      _module_unavailable("pyarrow.fs")),
    "s3fs": Reader("s3fs", "pyarrow + s3fs", read_s3fs, _module_unavailable("s3fs")),
    "polars": Reader("polars", "polars scan_parquet", read_polars, _module_unavailable("polars")),
}


def versions() -> dict:
    from importlib import metadata

    out = {}
    for dist in ("pyarrow", "polars", "s3fs", "fsspec", "aiobotocore", "botocore", "wjio"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out
