"""Helpers of the decoding tests: a footer parsed from Parquet bytes as a scan parses it, and
the chunks of some columns of one row group as fetched pieces."""

from __future__ import annotations

import struct

import pyarrow as pa

from wjio.decode import DecodeColumn, decode_columns
from wjio.footer import Footer, parse_footer
from wjio.ranges import ByteRange, column_chunk_range
from wjio.store import ObjectInfo
from wjio.uri import S3Path

URI = "s3://b/t.parquet"


def footer_of(data: bytes) -> Footer:
    """The footer of the Parquet file ``data``, as if it were the object :data:`URI`."""
    (meta_len,) = struct.unpack("<I", data[-8:-4])
    info = ObjectInfo(S3Path.parse(URI), len(data), '"e"')
    return parse_footer(info, memoryview(data)[len(data) - meta_len - 8 :])


def chunks_of(data: bytes, row_group: int, names: list[str]
              ) -> tuple[Footer, tuple[DecodeColumn, ...], pa.Schema, list[ByteRange],
                         list[tuple[int, bytes]]]:
    """For flat columns ``names`` of ``row_group``: the footer, the columns to decode, their
    output schema, their chunks' byte ranges, and those chunks as (start, bytes) pieces."""
    footer = footer_of(data)
    md = footer.metadata
    columns = decode_columns(md.schema, names)
    output = pa.schema([footer.schema.field(n) for n in names])
    ranges = [column_chunk_range(md.row_group(row_group).column(c.leaves[0]), len(data),
                                 md.created_by) for c in columns]
    return footer, columns, output, ranges, [(r.start, data[r.start : r.end]) for r in ranges]
