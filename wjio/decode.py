"""Decoding one row group from fetched byte ranges into Arrow, off the event-loop thread.

pyarrow's Parquet reader reads column chunks through a file object. :class:`SparseFile`
serves those reads from the fetched buffers as zero-copy ``memoryview`` slices (pyarrow wraps
them without copying); only a read spanning two pieces of a split range is joined. A read of
bytes that were not fetched is an error, never zeros: it would mean the range plan is wrong.
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wjio import errors
from wjio.footer import Footer


class SparseFile(io.RawIOBase):
    """A read-only file of ``size`` bytes of which only ``pieces`` (start, bytes) are present."""

    def __init__(self, name: str, size: int, pieces: Sequence[tuple[int, bytes]]) -> None:
        super().__init__()
        self.name = name
        self._size = size
        self._pieces = sorted(pieces, key=lambda p: p[0])
        self._starts = [start for start, _ in self._pieces]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def size(self) -> int:
        return self._size

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def read(self, n: int = -1) -> memoryview | bytes:
        start = self._pos
        end = self._size if n is None or n < 0 else min(self._size, start + n)
        if end <= start:
            return b""
        data = self._slice(start, end)
        self._pos = end
        return data

    def _slice(self, start: int, end: int) -> memoryview | bytes:
        i = bisect.bisect_right(self._starts, start) - 1
        parts = []
        pos = start
        while pos < end:
            if i < 0 or i >= len(self._pieces):
                break
            p_start, buf = self._pieces[i]
            if not p_start <= pos < p_start + len(buf):
                break
            take = min(end, p_start + len(buf)) - pos
            parts.append(memoryview(buf)[pos - p_start : pos - p_start + take])
            pos += take
            i += 1
        if pos < end:
            raise OSError(
                f"{self.name}: read of bytes [{start}, {end}) outside the fetched ranges "
                f"(missing from {pos}); the range plan does not cover what the decoder needs"
            )
        return parts[0] if len(parts) == 1 else b"".join(parts)


def decode_row_group(
    footer: Footer,
    row_group: int,
    pieces: Sequence[tuple[int, bytes]],
    read_columns: list[str],
    partition: dict[str, pa.Scalar],
    predicate: pc.Expression | None,
    output: pa.Schema,
    use_threads: bool,
) -> pa.Table:
    """Decode, add partition columns, apply the predicate exactly, project to ``output``.

    ``use_threads`` lets Arrow decode columns in parallel: worth it for large row groups,
    pure hand-off overhead for small ones (row groups already decode in parallel)."""
    name = str(footer.path)
    source = pa.PythonFile(SparseFile(name, footer.info.size, pieces), mode="r")
    try:
        reader = pq.ParquetFile(source, metadata=footer.metadata, pre_buffer=False)
        table = reader.read_row_group(row_group, columns=read_columns, use_threads=use_threads)
    except (OSError, pa.ArrowException) as e:
        raise errors.ParquetFormatError(
            f"{name}: row group {row_group} does not decode: {e}", uri=name
        ) from e
    for key, value in partition.items():
        table = table.append_column(key, pa.repeat(value, table.num_rows))
    if predicate is not None:
        table = table.filter(predicate)
    return project(table, output)


def project(table: pa.Table, output: pa.Schema) -> pa.Table:
    """Select ``output``'s columns; a struct listed with fewer children is pruned by cast."""
    if not len(output):
        return table.select([])  # keeps the row count (a count(*) scan)
    columns = []
    for field in output:
        column = table.column(field.name)
        if not column.type.equals(field.type):
            column = column.cast(field.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=output)
