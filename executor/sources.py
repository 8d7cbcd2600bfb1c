"""Table sources: where a ``Scan`` gets its batches.

``s3://`` tables are read through wjio (precise range reads); local paths through
``pyarrow.dataset`` (wjio does not read local files). A source splits its data files across
``num_partitions`` tasks, partition ``p`` taking files ``p, p + n, ...``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from executor.errors import ExecutionError


class TableSource(ABC):
    """Batches of one table, restricted to a partition of its files."""

    uri: str

    @abstractmethod
    def read(self, columns: Sequence[str], filter: pc.Expression | None, partition: int,
             num_partitions: int) -> Iterator[pa.RecordBatch]:
        """Batches of ``columns`` where ``filter`` holds (applied exactly)."""

    def size_bytes(self) -> int | None:
        """The data files' total size (None if unknown): sizes broadcast decisions."""
        return None


class LocalParquetSource(TableSource):
    """A local Parquet file or directory (Hive-partitioned directories work)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._dataset: ds.Dataset | None = None

    def _open(self) -> ds.Dataset:
        if self._dataset is None:
            try:
                self._dataset = ds.dataset(self.uri, format="parquet", partitioning="hive")
            except (OSError, pa.ArrowInvalid) as err:
                raise ExecutionError(f"cannot open table {self.uri}: {err}") from err
        return self._dataset

    def size_bytes(self) -> int | None:
        files = self._open().files
        return sum(os.path.getsize(f) for f in files)

    def read(self, columns, filter, partition, num_partitions):
        dataset = self._open()
        fragments = sorted(dataset.get_fragments(), key=lambda f: f.path)
        for fragment in fragments[partition::num_partitions]:
            yield from fragment.to_batches(columns=list(columns), filter=filter,
                                           schema=dataset.schema)


class WjioSource(TableSource):
    """An ``s3://`` object, prefix, or comma-separated list of objects, read with wjio.

    Partition ``p`` of ``n`` reads every ``n``-th surviving row group from the ``p``-th (the
    footers are read once per process: wjio caches them by ETag).
    """

    def __init__(self, uri: str, store=None) -> None:
        self.uri = uri
        self.store = store

    def read(self, columns, filter, partition, num_partitions):
        import wjio

        scan = wjio.ParquetScan(self._uris(), columns=list(columns), filter=filter,
                                store=self.store, part=(partition, num_partitions))
        yield from scan.to_reader()

    def _uris(self) -> list[str]:
        return [u for u in self.uri.split(",") if u]

    def size_bytes(self) -> int | None:
        import wjio
        from wjio.sync import run

        plan = run(wjio.ParquetScan(self._uris(), store=self.store).plan())
        return sum(f.info.size for f in plan.files)


def open_source(uri: str, store=None) -> TableSource:
    if uri.startswith("s3://"):
        return WjioSource(uri, store)
    return LocalParquetSource(uri)
