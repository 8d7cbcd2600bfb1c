"""Row groups decoded by polars, two to three times faster than pyarrow's decoder.

polars reads a Parquet file from ``bytes`` without copying them, and selects row groups only by
rows. So the chunks of the columns it decodes are laid into a file of their own with a footer
rewritten for them (:mod:`wjio.row_group_image`): one copy of the fetched bytes, as joining a
response's parts for pyarrow takes. The image holds exactly the fetched bytes of those chunks,
of one row group or of several (one read then decodes them all, its fixed cost of ~1-2 ms paid
once), and polars is asked for those columns only.

Only flat columns of types polars decodes to exactly pyarrow's values are handed to it
(:func:`polars_columns`), and a decoded column is kept only if its type is the one pyarrow
reads (:attr:`wjio.footer.Footer.schema`); strings come as ``string_view`` and are cast to the
file's string type. Any other column, and every column if polars fails (e.g. on strings that
are not UTF-8, which pyarrow passes through) or the footer cannot be rewritten, is decoded by
pyarrow.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from wjio.ranges import ByteRange, column_chunk_range
from wjio.row_group_image import ThriftError, image

if TYPE_CHECKING:
    from wjio.decode import DecodeColumn
    from wjio.footer import Footer

_EXACT = (pa.types.is_integer, pa.types.is_boolean, pa.types.is_date32,
          pa.types.is_decimal128, pa.types.is_timestamp, pa.types.is_string,
          pa.types.is_large_string, pa.types.is_string_view)
_STRINGS = (pa.types.is_string, pa.types.is_large_string)


def exact_type(t: pa.DataType) -> bool:
    """Whether polars decodes Parquet columns pyarrow reads as ``t`` to the same values
    (strings as ``string_view``; timestamps only when stored as INT64, which the caller
    checks)."""
    return any(is_type(t) for is_type in _EXACT) or (
        pa.types.is_floating(t) and t.bit_width > 16)


def polars_columns(footer: Footer, row_group: int, columns: Iterable[DecodeColumn],
                   dictionary: Iterable[str] = ()) -> list[DecodeColumn]:
    """Those of ``columns`` polars may decode in ``row_group``: flat (one leaf, not repeated),
    not wanted as dictionaries, of a type it decodes exactly (timestamps only from INT64: INT96
    is converted by each reader its own way), with a chunk whose offsets say plainly where it
    lies (a dictionary page before the data pages, no padding for old writers' sizes)."""
    md = footer.metadata
    rg = md.row_group(row_group)
    skip = set(dictionary)
    out = []
    for col in columns:
        if col.name in skip or col.selections != (col.name,) or len(col.leaves) != 1:
            continue
        leaf = md.schema.column(col.leaves[0])
        index = footer.schema.get_field_index(col.name)
        if leaf.path != col.name or leaf.max_repetition_level or index < 0:
            continue
        t = footer.schema.field(index).type
        if not exact_type(t) or (pa.types.is_timestamp(t) and leaf.physical_type == "INT96"):
            continue
        chunk = rg.column(col.leaves[0])
        if chunk.has_dictionary_page and not (
                0 < (chunk.dictionary_page_offset or 0) < chunk.data_page_offset):
            continue
        r = column_chunk_range(chunk, footer.info.size, md.created_by)
        if r.size != chunk.total_compressed_size:
            continue
        out.append(col)
    return out


def decode(footer: Footer, names: Sequence[str],
           row_groups: Sequence[tuple[int, Sequence[tuple[int, ByteRange, Sequence]]]],
           leaves: Collection[int]) -> list[pa.Table] | None:
    """Columns ``names`` of some row groups of one object decoded by polars in one read:
    ``row_groups`` gives, for each row group, its index and the chunks of those columns, in
    the order of ``names``, as (leaf column index, byte range, the buffers holding exactly
    those bytes). One table per row group, in that order (slices of one decode), holding the
    columns whose type is the one pyarrow reads (the others are left out); None if polars
    cannot decode them. ``leaves``: those the footer's layout is walked for (the scan's, so
    that one walk serves all its images), which must hold the chunks' leaves."""
    import polars as pl

    md = footer.metadata
    parts = [(g, md.row_group(g).num_rows, chunks) for g, chunks in row_groups]
    rows = sum(n for _, n, _ in parts)
    try:
        data = image(footer.layout(leaves), parts)
        frame = pl.scan_parquet(data, use_statistics=False, hive_partitioning=False,
                                glob=False, cache=False, parallel="none")
        table = frame.select(list(names)).collect().to_arrow(
            compat_level=pl.CompatLevel.newest())
    except (ThriftError, pl.exceptions.PolarsError):
        return None
    if table.num_rows != rows:
        return None
    kept, fields = [], []
    for name, column in zip(table.column_names, table.columns, strict=True):
        field = footer.schema.field(name)
        if column.type != field.type:
            if not (pa.types.is_string_view(column.type)
                    and any(is_type(field.type) for is_type in _STRINGS)):
                continue
            try:
                column = column.cast(field.type)
            except pa.ArrowException:  # e.g. over 2 GiB of strings for 32-bit offsets
                continue
        kept.append(column)
        fields.append(field)
    table = pa.Table.from_arrays(kept, schema=pa.schema(fields))
    out, offset = [], 0
    for _, n, _ in parts:
        out.append(table.slice(offset, n))
        offset += n
    return out
