"""Decoding row groups from fetched byte ranges into Arrow, off the event-loop thread.

pyarrow's Parquet reader reads each column chunk at its offset in the object. A fetched range
is handed to it as a native buffer addressed like the object: a range holding bytes
``[s, e)`` becomes a buffer whose byte ``o`` is the object's byte ``o`` (the range's memory,
addressed from ``s`` bytes before it). Decoding then never calls back into Python for its
reads, so decode threads do not queue for the GIL behind the event-loop thread.

Only ``[s, e)`` of such a buffer is the object's; below ``s`` it is not ours to read. So every
column chunk is checked, before decoding, to lie inside the buffer it is read from, by the
reader's own rule (:func:`wjio.ranges.column_chunk_range`); beyond ``e`` the reader checks
itself. A chunk outside the fetched ranges is an error, never other memory or zeros: it would
mean the range plan is wrong.

A large row group's columns are decoded in units (:class:`DecodeUnit`), each as soon as the
ranges holding its chunks have arrived, then put side by side, filtered and projected. Small
row groups are decoded once fetched, several of one object at a time
(:func:`decode_row_groups`). Columns the scan chose to read as dictionaries are decoded so,
and back to plain values after filtering (:mod:`wjio.dictionary`). polars decodes the columns
it decodes exactly (:mod:`wjio.polars_decode`), from an image holding only their fetched
chunks (of one large row group, or of all the small ones decoded together).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from wjio import errors, polars_decode
from wjio.dictionary import RowFilter
from wjio.footer import Footer
from wjio.ranges import ByteRange, column_chunk_range
from wjio.row_group_image import Chunk
from wjio.threads import process_pool


def decode_pool(threads: int) -> ThreadPoolExecutor:
    """The process's pool of ``threads`` decode threads, shared by every scan that asks for
    that many (:func:`wjio.threads.process_pool`)."""
    return process_pool("wjio-decode", threads)


@dataclass(frozen=True)
class DecodeColumn:
    """One top-level file column to decode: the selections of it handed to pyarrow (the name,
    or dotted paths into a struct) and the Parquet leaf columns (column chunks) they cover."""

    name: str
    selections: tuple[str, ...]
    leaves: tuple[int, ...]


def decode_columns(
    parquet_schema: pq.ParquetSchema, read_columns: Sequence[str]
) -> tuple[DecodeColumn, ...]:
    """Group ``read_columns`` (top-level names or dotted paths) by top-level column."""
    paths = [parquet_schema.column(i).path for i in range(len(parquet_schema))]
    by_top: dict[str, list[str]] = {}
    for sel in read_columns:
        by_top.setdefault(sel.split(".")[0], []).append(sel)
    out = []
    for top, sels in by_top.items():
        leaves = tuple(
            i for i, p in enumerate(paths) if any(p == s or p.startswith(s + ".") for s in sels)
        )
        out.append(DecodeColumn(top, tuple(sels), leaves))
    return tuple(out)


Piece = bytes | memoryview | list[bytes]
"""Fetched bytes of one range: contiguous, or the parts a response body arrived in."""


class FetchedBytes:
    """The fetched ranges of one object, ``pieces`` of (start, bytes), as object-addressed
    buffers for the Parquet reader. A piece that arrived in parts is joined here, on the
    decode thread, so the event-loop thread does not spend its time copying bodies."""

    def __init__(self, name: str, pieces: Sequence[tuple[int, Piece]]) -> None:
        self.name = name
        self._pieces = sorted(
            ((start, data if isinstance(data, list) else [data]) for start, data in pieces),
            key=lambda p: p[0],
        )
        self._starts = [start for start, _ in self._pieces]
        self._ends = [start + sum(len(p) for p in parts) for start, parts in self._pieces]
        self._joined: dict[int, pa.Buffer] = {}

    def piece_holding(self, r: ByteRange) -> int | None:
        """Index of the one piece holding all of ``r``, if there is one."""
        i = bisect.bisect_right(self._starts, r.start) - 1
        return i if i >= 0 and r.end <= self._ends[i] else None

    def slices(self, r: ByteRange) -> list[memoryview] | None:
        """Views of the parts holding exactly the bytes of ``r``, in order; None if the pieces
        do not hold all of them."""
        views, missing = self._slices(r)
        return None if missing is not None else views

    def view(self, i: int) -> pa.Buffer:
        """Piece ``i`` addressed like the object."""
        return _object_addressed(self._buffer(i), self._starts[i])

    def assemble(self, ranges: Sequence[ByteRange]) -> pa.Buffer:
        """A new buffer addressed like the object holding ``ranges``, copied from the pieces
        (a chunk split across requests, or a struct whose leaves lie in different ranges).
        The bytes between the ranges are not filled: nothing reads them."""
        lo = min(r.start for r in ranges)
        hi = max(r.end for r in ranges)
        buf = pa.allocate_buffer(hi - lo)
        out = _bytes_view(buf)
        for r in ranges:
            views, missing = self._slices(r)
            if missing is not None:
                raise errors.ParquetFormatError(
                    f"{self.name}: column chunk bytes [{r.start}, {r.end}) are not all in "
                    f"the fetched ranges (missing from {missing}); the range plan does not "
                    f"cover what the decoder needs",
                    uri=self.name,
                )
            pos = r.start - lo
            for v in views:
                out[pos : pos + len(v)] = v
                pos += len(v)
        return _object_addressed(buf, lo)

    def _slices(self, r: ByteRange) -> tuple[list[memoryview], int | None]:
        """Views of the parts holding the bytes of ``r``, in order, and the first byte of it
        no piece holds (None if they hold all)."""
        out = []
        pos = r.start
        i = bisect.bisect_right(self._starts, pos) - 1
        while pos < r.end:
            if i < 0 or i >= len(self._pieces) or not self._starts[i] <= pos < self._ends[i]:
                return out, pos
            at = self._starts[i]
            for part in self._pieces[i][1]:
                n = len(part)
                if at + n > pos and at < r.end:
                    out.append(_bytes_view(part)[pos - at : min(n, r.end - at)])
                    pos = min(at + n, r.end)
                at += n
            i += 1
        return out, None

    def _buffer(self, i: int) -> pa.Buffer:
        """Piece ``i`` as one buffer: zero-copy if it is one part, else joined once."""
        if i not in self._joined:
            parts = self._pieces[i][1]
            if len(parts) == 1:
                buf = pa.py_buffer(parts[0])
            else:
                buf = pa.allocate_buffer(self._ends[i] - self._starts[i])
                out, pos = _bytes_view(buf), 0
                for part in parts:
                    out[pos : pos + len(part)] = _bytes_view(part)
                    pos += len(part)
            self._joined[i] = buf
        return self._joined[i]


def _bytes_view(data: pa.Buffer | bytes | memoryview) -> memoryview:
    """``data`` as unsigned bytes (Arrow buffers export signed chars; slices copy across
    views only of one format)."""
    return memoryview(data).cast("B")


def _object_addressed(buf: pa.Buffer, start: int) -> pa.Buffer:
    """``buf`` (the object's bytes from ``start``) as a buffer whose offsets are the object's."""
    return pa.foreign_buffer(buf.address - start, start + buf.size, base=buf)


@dataclass(frozen=True)
class DecodeUnit:
    """Columns of one row group decoded together, as soon as the fetched ranges holding
    their chunks have arrived (so a row group's small chunks decode while its large ones are
    still on the wire)."""

    fetch: tuple[int, ...]
    """Indices of the row group's fetch ranges holding these columns' chunks."""
    columns: tuple[DecodeColumn, ...]


def plan_units(
    columns: Sequence[DecodeColumn],
    chunk_ranges: dict[int, ByteRange],
    fetch: Sequence[ByteRange],
) -> tuple[DecodeUnit, ...]:
    """Group ``columns`` by the fetch ranges their chunks (``chunk_ranges`` by leaf) overlap;
    a chunk outside every fetch range is served from bytes at hand (the footer's tail). No
    columns (a count) is one unit that decodes the row count only."""
    if not columns:
        return (DecodeUnit((), ()),)
    starts = [f.start for f in fetch]  # sorted and disjoint (a fetch plan)
    by_ranges: dict[tuple[int, ...], list[DecodeColumn]] = {}
    for col in columns:
        held: set[int] = set()
        for leaf in col.leaves:
            r = chunk_ranges[leaf]
            i = max(0, bisect.bisect_right(starts, r.start) - 1)
            while i < len(fetch) and fetch[i].start < r.end:
                if r.start < fetch[i].end:
                    held.add(i)
                i += 1
        by_ranges.setdefault(tuple(sorted(held)), []).append(col)
    return tuple(DecodeUnit(k, tuple(v)) for k, v in by_ranges.items())


def decode_chunks(
    footer: Footer,
    row_group: int,
    pieces: Sequence[tuple[int, Piece]],
    columns: Sequence[DecodeColumn],
    large: bool,
    dictionary: Collection[str] = (),
    leaves: Collection[int] = (),
) -> pa.Table:
    """Decode ``columns`` of one row group from ``pieces`` (start, bytes) of the object, those
    named in ``dictionary`` as Arrow dictionaries.

    In a ``large`` row group, the columns polars decodes exactly are decoded by polars
    (:mod:`wjio.polars_decode`, two to three times faster than pyarrow), and pyarrow decodes
    the rest with threads; ``leaves``: the leaf columns of all the columns the scan decodes,
    for which the footer is walked once for all its images (:func:`image_leaves`). Columns
    whose chunks lie in the same piece are decoded by one pyarrow call; in a small row group
    on one thread (the hand-off costs more than it saves, as row groups already decode in
    parallel)."""
    name = str(footer.path)
    md = footer.metadata
    rg = md.row_group(row_group)
    fetched = FetchedBytes(name, pieces)
    ranges = {col.name: [column_chunk_range(rg.column(i), footer.info.size, md.created_by)
                         for i in col.leaves] for col in columns}
    tables: list[pa.Table] = []
    if large:
        at_hand = _polars_chunks(footer, row_group, fetched, columns, dictionary)
        chunks = list(at_hand.values())
        decoded = (polars_decode.decode(footer, list(at_hand), [(row_group, chunks)],
                                        {*leaves, *(c[0] for c in chunks)}) if chunks
                   else None)
        if decoded is not None and decoded[0].num_columns:
            tables.append(decoded[0])
            done = set(decoded[0].column_names)
            columns = [c for c in columns if c.name not in done]
    reads: dict[int, list[DecodeColumn]] = {}
    own: list[tuple[pa.Buffer, list[DecodeColumn]]] = []
    for col in columns:
        col_ranges = ranges[col.name]
        whole = ByteRange(min(r.start for r in col_ranges), max(r.end for r in col_ranges))
        i = fetched.piece_holding(whole)
        if i is not None:
            reads.setdefault(i, []).append(col)
        else:
            own.append((fetched.assemble(col_ranges), [col]))
    sources = [(fetched.view(i), cols) for i, cols in reads.items()] + own
    if not sources and not tables:  # no file column (a count, or partition columns only)
        sources = [(pa.py_buffer(b""), [])]
    try:
        tables += [
            pq.ParquetFile(pa.BufferReader(buf), metadata=md, pre_buffer=False,
                           read_dictionary=sorted(dictionary) or None).read_row_group(
                row_group,
                columns=[s for c in cols for s in c.selections],
                use_threads=large and len(cols) > 1,
            )
            for buf, cols in sources
        ]
    except (OSError, pa.ArrowException) as e:
        raise errors.ParquetFormatError(
            f"{name}: row group {row_group} does not decode: {e}", uri=name
        ) from e
    return tables[0] if len(tables) == 1 else _side_by_side(tables)


def _polars_chunks(footer: Footer, row_group: int, fetched: FetchedBytes,
                   columns: Iterable[DecodeColumn], dictionary: Collection[str]
                   ) -> dict[str, Chunk]:
    """Those of ``columns`` polars may decode in ``row_group``
    (:func:`wjio.polars_decode.polars_columns`) whose chunk ``fetched`` holds, by name: the
    chunk as an image places it."""
    md = footer.metadata
    rg = md.row_group(row_group)
    out = {}
    for col in polars_decode.polars_columns(footer, row_group, columns, dictionary):
        r = column_chunk_range(rg.column(col.leaves[0]), footer.info.size, md.created_by)
        views = fetched.slices(r)
        if views is not None:
            out[col.name] = (col.leaves[0], r, views)
    return out


def finish_row_group(
    tables: Sequence[pa.Table],
    partition: dict[str, pa.Scalar],
    predicate: RowFilter | None,
    output: pa.Schema,
    dictionary: Mapping[str, pa.DataType] | None = None,
) -> pa.Table:
    """The decoded columns of one row group side by side; add partition columns, apply the
    predicate exactly, project to ``output``. ``dictionary``: the columns decoded as
    dictionaries, with the plain type each becomes."""
    table = tables[0] if len(tables) == 1 else _side_by_side(list(tables))
    for key, value in partition.items():
        table = table.append_column(key, pa.repeat(value, table.num_rows))
    if predicate is not None or dictionary:
        table = (predicate or RowFilter(())).apply(table, dictionary or {}, keep=output.names)
    return project(table, output)


Units = Sequence[tuple[Sequence[tuple[int, Piece]], Sequence[DecodeColumn]]]
"""Units of one row group ready at the same time: (their pieces, their columns) each."""


def decode_units(
    footer: Footer, row_group: int, units: Units, large: bool,
    dictionary: Collection[str] = (), leaves: Collection[int] = (),
) -> list[pa.Table]:
    """The units of one row group ready at the same time, decoded together by one
    :func:`decode_chunks` in one hand-off to a thread."""
    pieces = {start: data for unit_pieces, _ in units for start, data in unit_pieces}
    columns = [c for _, unit_columns in units for c in unit_columns]
    return [decode_chunks(footer, row_group, list(pieces.items()), columns, large, dictionary,
                          leaves)]


def decode_row_group(
    footer: Footer,
    row_group: int,
    units: Units,
    large: bool,
    partition: dict[str, pa.Scalar],
    predicate: RowFilter | None,
    output: pa.Schema,
    decoded: Sequence[pa.Table] = (),
    dictionary: Mapping[str, pa.DataType] | None = None,
    leaves: Collection[int] = (),
) -> pa.Table:
    """The last units of a row group: decode them and :func:`finish_row_group` with the
    tables ``decoded`` from its earlier units, in one hand-off to a thread. ``dictionary``:
    the columns decoded as dictionaries, with the plain type each becomes; ``leaves``: as for
    :func:`decode_chunks`."""
    tables = [*decoded, *decode_units(footer, row_group, units, large, dictionary or (),
                                      leaves)]
    return finish_row_group(tables, partition, predicate, output, dictionary)


def image_leaves(columns: Sequence[DecodeColumn]) -> frozenset[int]:
    """The leaf columns whose chunks images of a scan of ``columns`` may place: the footer is
    walked once for them (:meth:`wjio.footer.Footer.layout`)."""
    return frozenset(leaf for c in columns for leaf in c.leaves)


@dataclass(frozen=True)
class FetchedRowGroup:
    """A small row group whose ranges have all arrived, with what finishing it takes."""

    row_group: int
    pieces: Sequence[tuple[int, Piece]]
    """The fetched ranges and the chunks at hand in the footer's tail: (start, bytes)."""
    partition: dict[str, pa.Scalar]
    row_filter: RowFilter | None


def decode_row_groups(
    footer: Footer,
    columns: Sequence[DecodeColumn],
    fetched: Sequence[FetchedRowGroup],
    output: pa.Schema,
    dictionary: Mapping[str, pa.DataType] | None = None,
    polars: bool = True,
) -> list[tuple[pa.Table, int]]:
    """Small row groups of one object, all fetched, decoded in one hand-off to a thread, each
    then finished (:func:`finish_row_group`): for each row group, in order, its table and the
    bytes the table holds.

    With ``polars``, the columns polars decodes exactly in every one of them are decoded by one
    polars read of an image of them all (:func:`wjio.polars_decode.decode`: its fixed cost is
    paid once); the others, all of them without ``polars``, and all of them if polars fails,
    by pyarrow, one row group at a time. ``dictionary``: the columns decoded as dictionaries,
    with the plain type each becomes."""
    name = str(footer.path)
    wanted = {c.name: c for c in columns} if polars else {}
    held: list[dict[str, Chunk]] = []
    for item in fetched:
        chunks = _polars_chunks(footer, item.row_group, FetchedBytes(name, item.pieces),
                                wanted.values(), dictionary or ())
        held.append(chunks)
        wanted = {n: c for n, c in wanted.items() if n in chunks}
    names = list(wanted)
    decoded = None
    if names:
        decoded = polars_decode.decode(
            footer, names, [(item.row_group, [chunks[n] for n in names])
                            for item, chunks in zip(fetched, held, strict=True)],
            image_leaves(columns))
    out = []
    for i, item in enumerate(fetched):
        tables, rest = [], list(columns)
        if decoded is not None and decoded[i].num_columns:
            tables.append(decoded[i])
            done = set(decoded[i].column_names)
            rest = [c for c in columns if c.name not in done]
        if rest or not tables:
            tables.append(decode_chunks(footer, item.row_group, item.pieces, rest, False,
                                        dictionary or ()))
        table = finish_row_group(tables, item.partition, item.row_filter, output, dictionary)
        out.append((table, table.nbytes))
    return out


def sized(decode: Callable[..., pa.Table], *args) -> tuple[pa.Table, int]:
    """``decode(*args)`` and the bytes its table holds, measured on the decode thread (not on
    the event-loop thread, where it waits for the GIL behind the decodes)."""
    table = decode(*args)
    return table, table.nbytes


def _side_by_side(tables: list[pa.Table]) -> pa.Table:
    """The columns of several decodes of one row group as one table."""
    return pa.Table.from_arrays(
        [c for t in tables for c in t.columns], names=[n for t in tables for n in t.column_names]
    )


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
