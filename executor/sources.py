"""Table sources: where a ``Scan`` gets its batches.

``s3://`` tables are read through wjio (precise range reads); local paths through
``pyarrow.dataset`` (wjio does not read local files). A source splits its row groups across
``num_partitions`` tasks, partition ``p`` taking row groups ``p, p + n, ...``.

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
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from executor.errors import ExecutionError
from wjio import dictionary

if TYPE_CHECKING:
    import pyarrow.dataset as ds


class TableSource(ABC):
    """Batches of one table, restricted to a partition of its files."""

    uri: str
    requests: int = 0
    bytes_read: int | None = None
    """Object-store requests and bytes of this source's reads so far (None: not counted)."""

    @abstractmethod
    def read(self, columns: Sequence[str], conjuncts: Sequence[pc.Expression], partition: int,
             num_partitions: int) -> Iterator[pa.RecordBatch]:
        """Batches of ``columns`` where every one of ``conjuncts`` holds (applied exactly)."""

    def size_bytes(self) -> int | None:
        """The data files' total size (None if unknown): sizes broadcast decisions."""
        return None


class LocalParquetSource(TableSource):
    """A local Parquet file or directory (Hive-partitioned directories work)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._dataset: ds.Dataset | None = None
        self._size: int | None = None
        self._dictionary: dict[str, frozenset[str]] = {}
        """Per data file: its columns read as dictionaries."""

    def _open(self) -> ds.Dataset:
        if self._dataset is None:
            try:
                import pyarrow.dataset as ds  # imports pandas if installed: only when used

                self._dataset = ds.dataset(self.uri, format="parquet", partitioning="hive")
            except (OSError, pa.ArrowInvalid) as err:
                raise ExecutionError(f"cannot open table {self.uri}: {err}") from err
        return self._dataset

    def size_bytes(self) -> int | None:
        """The data files' total size, from one ``stat`` each at the first call: the files
        are fixed when the dataset is opened, and planning asks for every scan (broadcast
        decisions, the join order's small sides)."""
        if self._size is None:
            self._size = sum(os.path.getsize(f) for f in self._open().files)
        return self._size

    def read(self, columns, conjuncts, partition, num_partitions):
        import pyarrow.dataset as ds

        dataset = self._open()
        filter = functools.reduce(operator.and_, conjuncts) if conjuncts else None
        fragments = sorted(dataset.get_fragments(filter=filter), key=lambda f: f.path)
        if num_partitions > 1:  # share row groups, not files: one big file splits too
            fragments = [rg for f in fragments
                         for rg in f.split_by_row_group(filter, schema=dataset.schema)]
        elif filter is not None:  # prune row groups by statistics, as to_batches(filter) does
            fragments = [f.subset(filter, schema=dataset.schema) for f in fragments]
        row_filter = dictionary.RowFilter(dictionary.conjuncts(conjuncts, dataset.schema))
        read = list(columns) + sorted({n for c in row_filter.conjuncts for n in c.columns}
                                      - set(columns))
        for fragment in fragments[partition::num_partitions]:
            chosen = self._dictionary_columns(fragment).intersection(row_filter.filtered_alone)
            if not chosen:
                yield from fragment.to_batches(columns=list(columns), filter=filter,
                                               schema=dataset.schema)
                continue
            fmt = ds.ParquetFileFormat(
                read_options=ds.ParquetReadOptions(dictionary_columns=sorted(chosen)))
            as_dictionary = fmt.make_fragment(
                fragment.path, fragment.filesystem, fragment.partition_expression,
                row_groups=[rg.id for rg in fragment.row_groups])
            plain = {n: dataset.schema.field(n).type for n in chosen}
            schema = dictionary.dictionary_schema(dataset.schema, chosen)
            for batch in as_dictionary.to_batches(columns=read, schema=schema):
                yield row_filter.apply(batch, plain, keep=columns)

    def _dictionary_columns(self, fragment: ds.ParquetFileFragment) -> frozenset[str]:
        """The columns of ``fragment``'s file read as dictionaries (its footer is read once)."""
        chosen = self._dictionary.get(fragment.path)
        if chosen is None:
            try:
                metadata = fragment.metadata
            except (OSError, pa.ArrowInvalid) as err:
                raise ExecutionError(f"cannot read the footer of {fragment.path}: {err}") from err
            chosen = self._dictionary[fragment.path] = dictionary.dictionary_columns(
                metadata, self._open().schema.names)
        return chosen


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

    def read(self, columns, conjuncts, partition, num_partitions):
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
                self._files = {str(f.info.path): f.info.etag for f in plan.files}
                self._size = sum(f.info.size for f in plan.files)
            return self._files

    def size_bytes(self) -> int | None:
        self.files()
        return self._size


def open_source(uri: str, store=None) -> TableSource:
    if uri.startswith("s3://"):
        return WjioSource(uri, store)
    return LocalParquetSource(uri)
