"""Table sources: where a ``Scan`` gets its batches.

``s3://`` tables are read through wjio (precise range reads); local paths are listed and
pruned with ``pyarrow.dataset`` and decoded by polars, about twice as fast as pyarrow's decoder
(types it decodes exactly; pyarrow's for the rest). A source splits the surviving row groups
across ``num_partitions`` tasks: wjio's partition ``p`` takes row groups ``p, p + n, ...``, a
local one the ``p``-th of ``n`` contiguous shares (consecutive row groups read at once).

Both read the low-cardinality string columns of each file that a pushed conjunct filters on
alone as Parquet dictionaries (the rule is :func:`wjio.dictionary.dictionary_columns`, from the
footer alone), evaluate such a conjunct once per distinct value, and decode the surviving rows
only (:class:`wjio.dictionary.RowFilter`): what they yield is exactly a plain read's rows and
types.
"""

from __future__ import annotations

import functools
import operator
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from executor.errors import ExecutionError
from wjio import dictionary
from wjio.polars_decode import exact_type

if TYPE_CHECKING:
    import polars as pl
    import pyarrow.dataset as ds

    from executor.eval.polars_filter import PolarsFilter


class TableSource(ABC):
    """Batches of one table, restricted to a partition of its files."""

    uri: str
    requests: int = 0
    bytes_read: int | None = None
    """Object-store requests and bytes of this source's reads so far (None: not counted)."""

    @abstractmethod
    def read(self, columns: Sequence[str], conjuncts: Sequence[pc.Expression], partition: int,
             num_partitions: int, *, polars: PolarsFilter | None = None
             ) -> Iterator[pa.RecordBatch]:
        """Batches of ``columns`` where every one of ``conjuncts`` holds (applied exactly).
        ``polars``, if given, is the same predicate as a polars expression, which a source
        may evaluate instead."""

    def size_bytes(self) -> int | None:
        """The data files' total size (None if unknown): sizes broadcast decisions."""
        return None


class LocalParquetSource(TableSource):
    """A local Parquet file or directory (Hive-partitioned directories work).

    With ``polars_filter`` (the default), a read whose predicate comes as a polars expression
    too, over columns polars decodes exactly, is decoded and filtered by polars in one pass
    (:mod:`executor.eval.polars_filter`); otherwise pyarrow's decoder and
    :class:`wjio.dictionary.RowFilter` read it."""

    def __init__(self, uri: str, *, polars_filter: bool = True) -> None:
        self.uri = uri
        self.polars_filter = polars_filter
        self._dataset: ds.Dataset | None = None
        self._size: int | None = None
        self._files: dict[str, _LocalFile] = {}
        self._stamps: dict[str, tuple[int, int]] = {}
        """Per data file: size and modification time (ns) when the dataset was opened."""

    def _open(self) -> ds.Dataset:
        if self._dataset is None:
            try:
                import pyarrow.dataset as ds  # imports pandas if installed: only when used

                dataset = ds.dataset(self.uri, format="parquet", partitioning="hive")
            except (OSError, pa.ArrowInvalid) as err:
                raise ExecutionError(f"cannot open table {self.uri}: {err}") from err
            self._stamps = {f: _stamp(f) for f in dataset.files}
            self._dataset = dataset
        return self._dataset

    def size_bytes(self) -> int | None:
        """The data files' total size, from their ``stat`` when the dataset was opened: the
        files are fixed then, and planning asks for every scan (broadcast decisions, the join
        order's small sides)."""
        if self._size is None:
            self._open()
            self._size = sum(size for size, _ in self._stamps.values())
        return self._size

    def read(self, columns, conjuncts, partition, num_partitions, *, polars=None):
        dataset = self._open()
        filter = functools.reduce(operator.and_, conjuncts) if conjuncts else None
        fragments = sorted(dataset.get_fragments(filter=filter), key=lambda f: f.path)
        # One fragment per row group that the statistics do not rule out; partitions take
        # contiguous shares of those, not files, so one big file splits too.
        fragments = [rg for f in fragments
                     for rg in f.split_by_row_group(filter, schema=dataset.schema)]
        share = fragments[partition * len(fragments) // num_partitions:
                          (partition + 1) * len(fragments) // num_partitions]
        row_filter = dictionary.RowFilter(dictionary.conjuncts(conjuncts, dataset.schema))
        read = list(columns) + sorted({n for c in row_filter.conjuncts for n in c.columns}
                                      - set(columns))
        for run in self._runs(share):
            path = run[0].path
            if _stamp(path) != self._stamps[path]:  # rows located by an old footer: wrong rows
                raise ExecutionError(f"{path} changed during the query (its size or "
                                     "modification time differs from when the table was opened)")
            file = self._file(run[0])
            if not file.columns.issuperset(read):  # Hive partition columns: not in the file
                for fragment in run:
                    yield from fragment.to_batches(columns=list(columns), filter=filter,
                                                   schema=dataset.schema)
                continue
            ids = [rg.id for fragment in run for rg in fragment.row_groups]
            if polars is not None and self.polars_filter and columns and \
                    file.polars.issuperset(polars.columns | set(columns)):
                table = _polars_rows(path, file, ids, columns, polars.expr)
                if table is not None:
                    yield from _conform(table, dataset.schema, frozenset()).to_batches()
                    continue
            kept = row_filter.without_null_checks(file.no_nulls)
            chosen = file.dictionary.intersection(kept.filtered_alone).intersection(read)
            table = _conform(_decode(path, file, ids, read, chosen), dataset.schema, chosen)
            plain = {n: dataset.schema.field(n).type for n in chosen}
            yield from kept.apply(table, plain, keep=columns).to_batches()

    def _runs(self, fragments: list[ds.ParquetFileFragment]
              ) -> Iterator[list[ds.ParquetFileFragment]]:
        """``fragments`` (one row group each, in file order) in runs of consecutive row groups
        of one file, of at most :data:`RUN_ROWS` rows (one read each)."""
        run: list[ds.ParquetFileFragment] = []
        rows = 0
        for fragment in fragments:
            (rg,) = fragment.row_groups
            if run and (fragment.path != run[-1].path or rg.id != run[-1].row_groups[0].id + 1
                        or rows + rg.num_rows > RUN_ROWS):
                yield run
                run, rows = [], 0
            run.append(fragment)
            rows += rg.num_rows
        if run:
            yield run

    def _file(self, fragment: ds.ParquetFileFragment) -> _LocalFile:
        """What reading ``fragment``'s file needs from its footer, read once per file."""
        file = self._files.get(fragment.path)
        if file is None:
            try:
                metadata = fragment.metadata
            except (OSError, pa.ArrowInvalid) as err:
                raise ExecutionError(f"cannot read the footer of {fragment.path}: {err}") from err
            schema = metadata.schema.to_arrow_schema()
            starts = [0]
            for rg in range(metadata.num_row_groups):
                starts.append(starts[-1] + metadata.row_group(rg).num_rows)
            file = self._files[fragment.path] = _LocalFile(
                metadata, frozenset(schema.names),
                dictionary.dictionary_columns(metadata, schema.names),
                frozenset(f.name for f in schema if _polars_exact(f.type)), tuple(starts),
                dictionary.null_free_columns(metadata))
        return file


RUN_ROWS = 1 << 20
"""Rows read at once (several row groups when they are consecutive in one file)."""


@dataclass(frozen=True)
class _LocalFile:
    """What reading a local data file needs from its footer."""

    metadata: pq.FileMetaData
    columns: frozenset[str]
    """The file's top-level columns (a Hive partition column is not one of them)."""
    dictionary: frozenset[str]
    """The columns read as dictionaries (:func:`wjio.dictionary.dictionary_columns`)."""
    polars: frozenset[str]
    """The columns polars decodes to exactly the values pyarrow does (:func:`_polars_exact`)."""
    starts: tuple[int, ...]
    """The first row of each row group, then the row count."""
    no_nulls: frozenset[str]
    """The flat columns without a null (required, or a null count of 0 in every row group)."""


def _stamp(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as err:
        raise ExecutionError(f"cannot read {path}: {err}") from err
    return st.st_size, st.st_mtime_ns


def _polars_exact(t: pa.DataType) -> bool:
    # wjio's rule, without timestamps (INT96 ones decode differently; not checked here).
    return exact_type(t) and not pa.types.is_timestamp(t)


def _polars_rows(path: str, file: _LocalFile, row_groups: list[int], columns: list[str],
                 predicate: pl.Expr | None = None) -> pa.Table | None:
    """``columns`` of the consecutive ``row_groups`` of the local Parquet file at ``path``,
    decoded by polars (about twice as fast as pyarrow's decoder on TPC-H's columns), strings
    as ``string_view`` (no copy out of polars); with ``predicate``, of the rows where it holds
    (polars materializes the other columns of those rows only). None if polars cannot decode
    them (e.g. invalid UTF-8, which pyarrow's reader passes through): pyarrow then reads."""
    import polars as pl

    start, end = file.starts[row_groups[0]], file.starts[row_groups[-1] + 1]
    # On the calling thread: the query's tasks already keep the cores busy, and polars' own
    # threads competing with them cost more than they gave (TPC-H SF1 q1,5,9,13,14,21:
    # CPU 3.79 -> 3.37 s, wall 4.76 -> 4.45 s).
    frame = pl.scan_parquet(path, use_statistics=False, hive_partitioning=False, glob=False,
                            cache=False, parallel="none").slice(start, end - start)
    if predicate is not None:
        frame = frame.filter(predicate)
    try:
        rows = frame.select(columns).collect()
    except pl.exceptions.PolarsError:
        return None
    return rows.to_arrow(compat_level=pl.CompatLevel.newest())


def _decode(path: str, file: _LocalFile, row_groups: list[int], columns: list[str],
            as_dictionary: frozenset[str]) -> pa.Table:
    """``columns`` of the consecutive ``row_groups`` of the file at ``path``: by polars when it
    decodes them all exactly and none is wanted as a dictionary, else by pyarrow."""
    if not as_dictionary and file.polars.issuperset(columns):
        table = _polars_rows(path, file, row_groups, columns)
        if table is not None:
            return table
    with pq.ParquetFile(path, metadata=file.metadata,
                        read_dictionary=sorted(as_dictionary)) as reader:
        return reader.read_row_groups(row_groups, columns=columns, use_threads=False)


def _conform(table: pa.Table, schema: pa.Schema, as_dictionary: frozenset[str]) -> pa.Table:
    """``table``'s columns cast to the dataset's ``schema`` where the file's own types differ
    (``string_view`` from polars or from some writers), except those read as dictionaries."""
    own = table.schema
    if all(f.name in as_dictionary or f.type == schema.field(f.name).type for f in own):
        return table
    return table.cast(pa.schema(
        [f if f.name in as_dictionary else schema.field(f.name) for f in own],
        metadata=own.metadata))


class WjioSource(TableSource):
    """An ``s3://`` object, prefix, or comma-separated list of objects, read with wjio.
    Its files and their ETags are fixed at first use (:meth:`files`).

    Partition ``p`` of ``n`` reads every ``n``-th surviving row group from the ``p``-th (the
    footers are read once per process: wjio caches them by ETag).
    """

    def __init__(self, uri: str, store=None) -> None:
        self.uri = uri
        self.store = store
        self.bytes_read = 0
        self._lock = threading.Lock()
        self._files: dict[str, str | None] | None = None

    def read(self, columns, conjuncts, partition, num_partitions, *, polars=None):
        import wjio

        scan = wjio.ParquetScan(self._uris(), columns=list(columns), filter=list(conjuncts),
                                store=self.store, part=(partition, num_partitions),
                                pinned=self.files(), dictionary=True)
        try:
            yield from scan.to_reader()
        finally:
            with self._lock:
                self.requests += scan.stats.requests
                self.bytes_read += scan.stats.bytes_fetched

    def _uris(self) -> list[str]:
        return [u for u in self.uri.split(",") if u]

    def files(self) -> dict[str, str | None]:
        """``{object URI: ETag}`` of the table's data files, listed once: every scan of this
        source (each task's share) must find exactly these, or fails with wjio's
        ``ObjectChangedError``; a table replaced mid-query never mixes old and new rows."""
        with self._lock:
            if self._files is None:
                import wjio
                from wjio.sync import run

                plan = run(wjio.ParquetScan(self._uris(), store=self.store).plan())
                self._objects = {str(f.info.path): (f.info.size, f.info.etag)
                                 for f in plan.files}
                self._files = {uri: etag for uri, (_, etag) in self._objects.items()}
                self._size = sum(f.info.size for f in plan.files)
            return self._files

    def objects(self) -> dict[str, tuple[int, str | None]]:
        """``{object URI: (size, ETag)}`` of the files :meth:`files` fixed (a checkpointed
        query records them as its inputs: exactly what its scans read)."""
        self.files()
        return self._objects

    def size_bytes(self) -> int | None:
        self.files()
        return self._size


def open_source(uri: str, store=None) -> TableSource:
    if uri.startswith("s3://"):
        return WjioSource(uri, store)
    return LocalParquetSource(uri)
