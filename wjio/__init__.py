"""wjio: a precise-prefetch Parquet reader for S3-compatible object stores.

It fetches only the byte ranges a query needs (the footer, then the needed column chunks of the
row groups that survive pruning), many at once, and decodes them into Arrow.

>>> import wjio, pyarrow.compute as pc
>>> table = wjio.read_parquet("s3://bucket/table/", columns=["a"], filter=pc.field("a") > 5)
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from wjio import errors
from wjio.allocator import keep_polars_pages
from wjio.errors import WjioError
from wjio.options import ScanOptions, StoreOptions
from wjio.scan import ParquetScan
from wjio.stats import ScanStats

keep_polars_pages()  # before polars is imported (none of the above imports it): wjio.allocator

__all__ = [
    "ParquetScan",
    "ScanOptions",
    "ScanStats",
    "StoreOptions",
    "WjioError",
    "errors",
    "open_reader",
    "read_parquet",
]


def read_parquet(
    source: str | Sequence[str],
    *,
    columns: Sequence[str] | None = None,
    filter: pc.Expression | None = None,
    filters: Sequence | None = None,
    store: StoreOptions | None = None,
    options: ScanOptions | None = None,
    part: tuple[int, int] | None = None,
) -> pa.Table:
    """Read Parquet from S3 into a ``pyarrow.Table`` (see :class:`ParquetScan`)."""
    return ParquetScan(
        source, columns=columns, filter=filter, filters=filters, store=store, options=options,
        part=part,
    ).to_table()


def open_reader(
    source: str | Sequence[str],
    *,
    columns: Sequence[str] | None = None,
    filter: pc.Expression | None = None,
    filters: Sequence | None = None,
    store: StoreOptions | None = None,
    options: ScanOptions | None = None,
) -> pa.RecordBatchReader:
    """Stream Parquet from S3 as a ``pyarrow.RecordBatchReader`` in bounded memory."""
    return ParquetScan(
        source, columns=columns, filter=filter, filters=filters, store=store, options=options
    ).to_reader()
