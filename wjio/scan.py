"""``ParquetScan``: plan the exact byte ranges, fetch them in parallel, decode as they land.

Phases of one scan:

1. **discover** the objects (one object, or every data file under a prefix, with Hive
   partition values);
2. **footers**: one speculative suffix GET per file, all files at once;
3. **plan**: common schema, projection, filter columns, row groups surviving pruning, and per
   row group the coalesced/split byte ranges of the needed column chunks, in file order;
4. **fetch + decode**: row groups are fetched in order, many ranges in flight across files
   (up to a window of bytes, so row groups arrive in turn), each row group reserving its bytes
   from the memory budget first; a large row group's columns are decoded in a thread as soon
   as the ranges holding them have arrived, a small row group once all its ranges have, in a
   batch with the others of its file waiting for a decode thread
   (:mod:`wjio.decode_queue`); polars decodes the columns it decodes exactly, pyarrow the
   rest; batches are yielded in order, row group by row group.

Every GET after the footer carries ``If-Match`` with the footer's ETag, so an object replaced
mid-scan fails loudly instead of mixing versions.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import pyarrow as pa
import pyarrow.compute as pc

from wjio import errors, predicate
from wjio.budget import MemoryBudget
from wjio.columns import Projection, plan_projection
from wjio.dataset import (
    DataFile,
    common_schema,
    data_files,
    partition_expression,
    partition_schema,
    partition_values,
)
from wjio.decode import (
    DecodeColumn,
    DecodeUnit,
    FetchedRowGroup,
    decode_columns,
    decode_pool,
    decode_row_group,
    decode_units,
    image_leaves,
    plan_units,
    sized,
)
from wjio.decode_queue import DecodeQueue
from wjio.dictionary import (
    Conjunct,
    RowFilter,
    conjuncts,
    dictionary_columns,
    null_free_columns,
)
from wjio.footer import Footer, Tail, read_footer
from wjio.options import ScanOptions, StoreOptions
from wjio.ranges import ByteRange, column_chunk_range, plan_fetch, split
from wjio.stats import ScanStats
from wjio.store import S3Store, shared_store
from wjio.tasks import gather_all
from wjio.uri import S3Path

# From this many uncompressed bytes a row group is large: each of its columns is decoded as soon
# as the ranges holding it have arrived, polars decoding those it decodes exactly and pyarrow
# the rest with threads (wjio.decode.decode_chunks). Below it, a row group waits for all its
# ranges and then in the decode queue, which decodes the row groups ready together in one call
# (wjio.decode_queue): polars' fixed cost per read (~1-2 ms) is paid once per batch.
_LARGE_ROW_GROUP_BYTES = 4 * 1024 * 1024
# The largest batch of small row groups (uncompressed bytes); its row groups' tables share its
# buffers until the last of them is consumed.
_BATCH_BYTES = 64 * 1024 * 1024
_PREPARE_AFTER_S = 0.003


@dataclass(frozen=True)
class RowGroupSelection:
    """Row groups of one data file, chosen by an earlier plan (e.g. on a Spark driver)."""

    file: DataFile
    row_groups: tuple[int, ...]


@dataclass(frozen=True)
class RowGroupTask:
    """One row group of one file: what to fetch and how much memory it will hold."""

    footer: Footer
    row_group: int
    partition: dict[str, pa.Scalar]
    fetch: tuple[ByteRange, ...]
    local: tuple[tuple[int, memoryview], ...]
    """Needed chunks already at hand in the footer's tail bytes: (offset, bytes)."""
    units: tuple[DecodeUnit, ...]
    """Columns decoded together, each as soon as its fetch ranges have arrived."""
    chunk_ranges: dict[int, ByteRange]
    """The byte range of each needed column chunk, by leaf column."""
    needed_bytes: int
    reserve_bytes: int
    """Fetched bytes plus the decoded size estimate (uncompressed size of the chunks)."""
    uncompressed_bytes: int
    dictionary: dict[str, pa.DataType]
    """Columns decoded as dictionaries (:func:`wjio.dictionary.dictionary_columns` of the
    file), with the plain type each is turned back into after filtering."""
    row_filter: RowFilter | None = None
    """The scan's row filter for this file: without the ``IS NOT NULL`` conjuncts on columns
    the file holds no null in (:func:`wjio.dictionary.null_free_columns`); None where the row
    group's statistics prove the whole filter true on every row
    (:func:`wjio.predicate.proven_row_groups`)."""


@dataclass(frozen=True)
class ScanPlan:
    schema: pa.Schema
    """Schema of the whole dataset (file columns, then partition columns)."""
    projection: Projection
    predicate: pc.Expression | None
    row_filter: RowFilter | None
    """``predicate`` as its conjuncts; each task applies its file's version of it
    (:attr:`RowGroupTask.row_filter`) to its decoded row group."""
    tasks: tuple[RowGroupTask, ...]
    files: tuple[DataFile, ...]
    columns: tuple[DecodeColumn, ...]
    """``projection.read_columns`` by top-level column, with the leaf columns each covers."""


class ParquetScan:
    """A scan of Parquet on S3 (one object, several, or every data file under a prefix).

    Parameters
    ----------
    source
        ``s3://bucket/key`` of one object, ``s3://bucket/prefix/`` of a dataset, or a list
        of either.
    columns
        Columns to return (top-level names or dotted struct paths); default all.
    filter, filters
        A ``pyarrow.compute`` expression, a list of them (their conjunction), or pyarrow's
        DNF list. Prunes row groups by statistics and partitions by value, then is applied
        exactly to the decoded rows.
    store, options
        :class:`StoreOptions` and :class:`ScanOptions`.
    part
        ``(index, count)``: read only this share of the surviving row groups (every
        ``count``-th, from ``index``), so ``count`` scans together read each row once. The
        schema is the whole dataset's.
    pinned
        ``{object URI: ETag}`` the caller saw (e.g. when a query was planned): the scan fails
        with :class:`~wjio.errors.ObjectChangedError` if its files are not exactly these, so
        scans of one query that run at different times read the same bytes.
    dictionary
        Decode each file's low-cardinality string columns that an expression of ``filter``'s
        list references alone as Parquet dictionaries
        (:func:`wjio.dictionary.dictionary_columns`): the expression is evaluated once per
        distinct value, and the columns are decoded to plain values for the surviving rows
        only. The scan's output is the same either way.

    A scan runs once: iterate it (``async for batch in scan``) or call ``to_table()`` /
    ``to_reader()`` / ``to_batches()``; ``scan.stats`` then holds its counters.
    """

    def __init__(
        self,
        source: str | Sequence[str],
        *,
        columns: Sequence[str] | None = None,
        filter: pc.Expression | Sequence[pc.Expression] | None = None,
        filters: Sequence | None = None,
        store: StoreOptions | None = None,
        options: ScanOptions | None = None,
        part: tuple[int, int] | None = None,
        pinned: Mapping[str, str | None] | None = None,
        dictionary: bool = False,
    ) -> None:
        sources = [source] if isinstance(source, str) else list(source)
        if not sources:
            raise ValueError("ParquetScan needs at least one source URI")
        if part is not None and not 0 <= part[0] < part[1]:
            raise ValueError(f"part must be (index, count) with 0 <= index < count, got {part}")
        self.part = part
        self.pinned = dict(pinned) if pinned is not None else None
        self.paths = [S3Path.parse(s) for s in sources]
        self.where = sources[0] if len(sources) == 1 else f"{sources[0]} (+{len(sources) - 1})"
        self.columns = columns
        self.dictionary = dictionary
        if isinstance(filter, list | tuple):
            if filters is not None:
                raise ValueError("give either filter= (expressions) or filters= (DNF), not both")
            self.conjuncts = tuple(predicate.normalize(e, None) for e in filter)
            self.filter = (functools.reduce(operator.and_, self.conjuncts) if self.conjuncts
                           else None)
        else:
            self.filter = predicate.normalize(filter, filters)
            self.conjuncts = (self.filter,) if self.filter is not None else ()
        self.store_options = store or StoreOptions()
        self.options = options or ScanOptions()
        self.stats = ScanStats()
        self._plan: ScanPlan | None = None
        self._selected: tuple[tuple[DataFile, ...], pa.Schema] | None = None
        self._row_groups: dict[S3Path, tuple[int, ...]] = {}
        self._tails: dict[S3Path, Tail | None] = {}
        self._started = False
        self._t0: float | None = None

    @classmethod
    def of_row_groups(
        cls, selections: Sequence[RowGroupSelection], partitions: pa.Schema, **kwargs
    ) -> ParquetScan:
        """A scan of exactly these row groups of these files, planned elsewhere; ``partitions``
        is the dataset's Hive partition schema (the files' raw values are cast to it).

        Nothing is listed. Each footer is read by the file's ETag (so a parsed footer is reused
        from the cache, and a file replaced since planning fails with
        :class:`~wjio.errors.ObjectChangedError`); the filter still prunes and is applied
        exactly. Other keyword arguments are :class:`ParquetScan`'s.
        """
        if not selections:
            raise ValueError("ParquetScan.of_row_groups needs at least one selection")
        scan = cls([str(s.file.info.path) for s in selections], **kwargs)
        for s in selections:
            if s.file.info.path in scan._row_groups:
                raise ValueError(f"{s.file.info.path} is selected twice")
            scan._row_groups[s.file.info.path] = tuple(s.row_groups)
        scan._selected = (tuple(s.file for s in selections), partitions)
        return scan

    # -- planning ----------------------------------------------------------------------------

    async def plan(self) -> ScanPlan:
        """Discover files, read footers, prune and plan ranges (once)."""
        if self._plan is None:
            self._t0 = self._t0 or time.perf_counter()
            self._plan = await self._make_plan(shared_store(self.store_options))
        return self._plan

    @property
    def schema(self) -> pa.Schema:
        """The output schema. From blocking code this plans the scan if needed; inside an event
        loop, ``await scan.plan()`` first."""
        if self._plan is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                from wjio.sync import run

                return run(self.plan()).projection.output
            raise RuntimeError("the scan is not planned yet: await scan.plan() first")
        return self._plan.projection.output

    async def _make_plan(self, store: S3Store) -> ScanPlan:
        if self._selected is None:
            files, known = await self._discover(store)
            if self.pinned is not None:
                self._check_pinned(files)
            partitions = partition_schema(files, self.where)
        else:
            files, known = list(self._selected[0]), {}
            partitions = self._selected[1]
            self.stats.files = len(files)
        expr = self.filter
        if expr is not None and partitions.names and len(files) > 1:
            files = await self._prune_partitions(store, files, known, partitions, expr)
        footers = await self._read_footers(store, files, known)
        schema = common_schema(footers, partitions, self.where)
        parts: tuple[Conjunct, ...] = ()
        if expr is not None:
            predicate.validate(expr, schema, self.where)
            parts = conjuncts(self.conjuncts, schema)
        filter_columns = set().union(*(c.columns for c in parts))
        parquet_schema = footers[0].metadata.schema if footers else None
        projection = plan_projection(
            schema, partitions.names, parquet_schema, self.columns, filter_columns, self.where
        )
        columns = decode_columns(parquet_schema, projection.read_columns) if footers else ()
        row_filter = None
        if expr is not None:
            row_filter = RowFilter(parts if self.dictionary
                                   else (Conjunct(expr, frozenset(filter_columns)),))
        alone = row_filter.filtered_alone if row_filter is not None else frozenset()
        checked = row_filter.null_checked if row_filter is not None else frozenset()
        whole = [n for n in projection.read_columns if "." not in n and n in alone]
        # Row groups are pruned by the conjuncts on columns whose statistics are safe, and
        # proven (not filtered) only when those are all of the filter.
        safe = [c.expression for c in parts if predicate.statistics_safe(c.columns, schema)]
        prune = functools.reduce(operator.and_, safe) if safe else None
        prove = expr is not None and len(safe) == len(parts)
        tasks: list[RowGroupTask] = []
        for file, footer in zip(files, footers, strict=True):
            chosen = dictionary_columns(footer.metadata, whole) if self.dictionary else ()
            dictionary = {n: schema.field(n).type for n in chosen}
            file_filter = row_filter
            if checked:  # (the footer's statistics are walked for these columns only)
                file_filter = row_filter.without_null_checks(
                    null_free_columns(footer.metadata, checked))
            tasks += self._plan_file(file, footer, schema, partitions, projection, columns,
                                     prune, dictionary, file_filter, prove)
        if self.part is not None:
            tasks = tasks[self.part[0]::self.part[1]]
        tasks = self._spread(tasks, columns)
        self.stats.bytes_needed = sum(t.needed_bytes for t in tasks)
        self._tails.clear()  # tasks keep views of the chunks they use; the rest can go
        return ScanPlan(schema, projection, expr, row_filter, tuple(tasks), tuple(files),
                        columns)

    def _check_pinned(self, files: list[DataFile]) -> None:
        found = {str(f.info.path): f.info.etag for f in files}
        if found == self.pinned:
            return
        added = sorted(set(found) - set(self.pinned))
        gone = sorted(set(self.pinned) - set(found))
        replaced = sorted(u for u in set(found) & set(self.pinned) if found[u] != self.pinned[u])
        what = "; ".join(f"{label}: {', '.join(us[:3])}{' ...' if len(us) > 3 else ''}"
                         for label, us in (("added", added), ("removed", gone),
                                           ("replaced", replaced)) if us)
        raise errors.ObjectChangedError(
            f"{self.where}: the data changed since it was planned ({what})",
            uri=(replaced or gone or added)[0])

    async def _discover(self, store: S3Store) -> tuple[list[DataFile], dict[S3Path, Footer]]:
        files: list[DataFile] = []
        known: dict[S3Path, Footer] = {}
        for path in self.paths:
            if not path.is_prefix:
                # Most often a single object: its footer read doubles as the existence check,
                # saving a dependent round trip. Only if there is no such object, list it as a
                # prefix (s3://b/table means s3://b/table/ when that is a directory).
                try:
                    footer, tail = await read_footer(
                        store, path, etag=None, options=self.options, stats=self.stats
                    )
                except errors.ObjectNotFoundError:
                    pass
                else:
                    files.append(DataFile(footer.info))
                    known[path] = footer
                    self._tails[path] = tail
                    continue
                path = path.child(path.key + "/")
            listed = await store.list(path, stats=self.stats)
            found = data_files(path, listed)
            if not found:
                raise errors.ObjectNotFoundError(
                    f"{path}: no such object, and no data files under it as a prefix"
                    + (f" ({len(listed)} objects skipped as non-data)" if listed else ""),
                    uri=str(path),
                )
            files += found
        self.stats.files = len(files)
        return files, known

    async def _prune_partitions(
        self,
        store: S3Store,
        files: list[DataFile],
        known: dict[S3Path, Footer],
        partitions: pa.Schema,
        expr: pc.Expression,
    ) -> list[DataFile]:
        """Drop files whose partition values cannot match, before reading their footers.

        Binding the filter needs the file columns' types, so one footer is read first: one
        more round trip, instead of a footer request for every pruned partition.
        """
        (first,) = await self._read_footers(store, files[:1], known)
        known[first.path] = first
        schema = common_schema([first], partitions, self.where)
        predicate.validate(expr, schema, self.where)
        exprs = [partition_expression(partition_values(f, partitions)) for f in files]
        keep = predicate.surviving_files(exprs, expr, schema)
        self.stats.files_pruned += len(files) - len(keep)
        for i in sorted(set(range(len(files))) - set(keep)):
            footer = known.get(files[i].info.path)
            if footer is not None:  # already read: count its row groups as pruned
                self.stats.row_groups_total += footer.metadata.num_row_groups
                self.stats.row_groups_pruned += footer.metadata.num_row_groups
        return [files[i] for i in keep]

    async def _read_footers(
        self, store: S3Store, files: list[DataFile], known: dict[S3Path, Footer]
    ) -> list[Footer]:
        limit = asyncio.Semaphore(self.options.list_concurrency)

        async def one(file: DataFile) -> Footer:
            if file.info.path in known:
                return known[file.info.path]
            async with limit:
                footer, tail = await read_footer(
                    store, file.info.path, etag=file.info.etag, options=self.options,
                    stats=self.stats,
                )
            self._tails[footer.path] = tail
            return footer

        return await gather_all(one(f) for f in files)

    def _plan_file(
        self,
        file: DataFile,
        footer: Footer,
        schema: pa.Schema,
        partitions: pa.Schema,
        projection: Projection,
        columns: tuple[DecodeColumn, ...],
        expr: pc.Expression | None,
        dictionary: dict[str, pa.DataType],
        row_filter: RowFilter | None,
        prove: bool,
    ) -> list[RowGroupTask]:
        md = footer.metadata
        values = partition_values(file, partitions)
        keep = predicate.surviving_row_groups(footer, expr, schema, partition_expression(values))
        total = md.num_row_groups
        if self._selected is not None:
            wanted = self._row_groups[footer.path]
            if any(not 0 <= i < total for i in wanted):
                raise ValueError(
                    f"{footer.path} has {total} row groups; selected {sorted(wanted)}"
                )
            keep = sorted(set(keep).intersection(wanted))
            total = len(wanted)
        self.stats.row_groups_total += total
        self.stats.row_groups_pruned += total - len(keep)
        if md.num_row_groups and not keep:
            self.stats.files_pruned += 1
        proven: set[int] = set()
        if row_filter is not None and prove:
            proven = predicate.proven_row_groups(footer, expr, schema,
                                                 partition_expression(values), keep)
        tasks = []
        o = self.options
        tail = self._tails.get(footer.path)
        for rg_index in keep:
            rg = md.row_group(rg_index)
            needed, local, uncompressed = [], [], 0
            by_leaf: dict[int, ByteRange] = {}
            for col in projection.chunk_columns:
                chunk = rg.column(col)
                r = column_chunk_range(chunk, footer.info.size, md.created_by)
                if r.end > footer.info.size:
                    raise errors.CorruptFooterError(
                        f"{footer.path}: row group {rg_index} column {chunk.path_in_schema} "
                        f"ends at byte {r.end}, beyond the object's {footer.info.size} bytes",
                        uri=str(footer.path),
                    )
                needed.append(r)
                by_leaf[col] = r
                uncompressed += chunk.total_uncompressed_size
                if tail is not None and tail.start <= r.start and r.end <= tail.end:
                    view = memoryview(tail.data)[r.start - tail.start : r.end - tail.start]
                    local.append((r.start, view))
            at_hand = {start for start, _ in local}
            fetch = plan_fetch(
                [r for r in needed if r.start not in at_hand],
                hole_size_limit=o.hole_size_limit,
                range_size_limit=o.range_size_limit,
            )
            fetch_bytes = sum(r.size for r in fetch)
            tasks.append(
                RowGroupTask(
                    footer, rg_index, values, tuple(fetch), tuple(local),
                    plan_units(columns, by_leaf, fetch), by_leaf,
                    sum(r.size for r in needed), fetch_bytes + uncompressed, uncompressed,
                    dictionary, None if rg_index in proven else row_filter,
                )
            )
        return tasks

    def _spread(self, tasks: list[RowGroupTask], columns: tuple[DecodeColumn, ...]
                ) -> list[RowGroupTask]:
        """Split the ranges of a scan that fetches little into pieces over as many connections
        as full-size requests of a large scan fill (``bytes_in_flight // range_size_limit``):
        each range is on one connection, so the largest one, not the link, would set the time
        of a small scan. Pieces are kept to at least ``min_range_size``."""
        o = self.options
        links = max(1, o.bytes_in_flight // o.range_size_limit)
        limit = max(o.min_range_size, -(-sum(r.size for t in tasks for r in t.fetch) // links))
        out = []
        for t in tasks:
            if all(r.size <= limit for r in t.fetch):
                out.append(t)
                continue
            fetch = tuple(piece for r in t.fetch for piece in split(r, limit))
            out.append(replace(t, fetch=fetch, units=plan_units(columns, t.chunk_ranges, fetch)))
        return out

    # -- execution ---------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[pa.RecordBatch]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[pa.RecordBatch]:
        if self._started:
            raise RuntimeError(f"scan of {self.where} was already consumed; create a new one")
        self._started = True
        self._t0 = self._t0 or time.perf_counter()
        try:
            plan = await self.plan()
            store = shared_store(self.store_options)
            async for table in _Pipeline(self, plan, store).run():
                self.stats.rows += table.num_rows
                for batch in table.to_batches(max_chunksize=self.options.batch_size):
                    yield batch
        finally:
            self.stats.wall_time_s = time.perf_counter() - self._t0

    # -- sync API (runs on wjio's IO thread) -------------------------------------------------

    def to_batches(self) -> Iterator[pa.RecordBatch]:
        from wjio.sync import iterate

        return iterate(self.__aiter__())

    def to_reader(self) -> pa.RecordBatchReader:
        from wjio.sync import run

        plan = run(self.plan())
        return pa.RecordBatchReader.from_batches(plan.projection.output, self.to_batches())

    def to_table(self) -> pa.Table:
        from wjio.sync import run

        return run(self.to_table_async())

    async def to_table_async(self) -> pa.Table:
        batches = [b async for b in self]
        return pa.Table.from_batches(batches, schema=self.schema)


class _Pipeline:
    """Fetch row groups in order under the budget; decode each column as soon as the ranges
    holding it have arrived."""

    def __init__(self, scan: ParquetScan, plan: ScanPlan, store: S3Store) -> None:
        self.scan = scan
        self.plan = plan
        self.store = store
        self.options = scan.options
        self.stats = scan.stats
        self.budget = MemoryBudget(self.options.memory_budget)
        self.requests = asyncio.Semaphore(self.options.concurrency)
        # FIFO in plan order: requests start in row-group order, so row groups arrive in turn.
        self.in_flight = MemoryBudget(self.options.bytes_in_flight)
        self.pool = decode_pool(self.options.decode_threads)
        self.leaves = image_leaves(plan.columns)
        # Batches decoded at once: half the decode threads, as polars decodes each batch on
        # threads of its own (one per core).
        self.small = DecodeQueue(self.pool, max(1, self.options.decode_threads // 2),
                                 _BATCH_BYTES, plan.columns, plan.projection.output)

    async def run(self) -> AsyncIterator[pa.Table]:
        queue: asyncio.Queue[asyncio.Task | None] = asyncio.Queue()
        # Tasks not yet consumed (to cancel them on close). A consumed task leaves this set:
        # a finished task holds its decoded table, which must not outlive its turn.
        started: set[asyncio.Task] = set()

        async def produce() -> None:
            for order, task in enumerate(self.plan.tasks):
                await self.budget.acquire(task.reserve_bytes)
                t = asyncio.create_task(self._fetch_and_decode(order, task))
                started.add(t)
                await queue.put(t)
            await queue.put(None)

        producer = asyncio.create_task(produce())
        # Walk the footers for images once the first requests are out (they take ~1 ms to
        # send; the walk, on a decode thread, would slow that down) and long before their
        # answers come back (a first-byte latency later).
        small: dict[S3Path, tuple[Footer, int]] = {}
        for t in self.plan.tasks:
            if t.uncompressed_bytes < _LARGE_ROW_GROUP_BYTES:
                _, size = small.get(t.footer.path, (t.footer, 0))
                small[t.footer.path] = (t.footer, size + t.uncompressed_bytes)
        prepare = asyncio.get_running_loop().call_later(
            _PREPARE_AFTER_S, self.small.prepare, list(small.values()))
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getter, producer}, return_when=asyncio.FIRST_COMPLETED
                )
                if getter not in done:
                    getter.cancel()
                    producer.result()  # the producer failed: raise its error
                    continue
                item = getter.result()
                if item is None:
                    break
                table, held = await item
                started.discard(item)
                del item
                try:
                    yield table
                finally:
                    self.budget.release(held)
            self.stats.peak_memory = max(self.stats.peak_memory, self.budget.peak)
        finally:
            self.stats.peak_memory = max(self.stats.peak_memory, self.budget.peak)
            prepare.cancel()
            producer.cancel()
            for t in started:
                t.cancel()
            await asyncio.gather(producer, *started, return_exceptions=True)

    async def _fetch_and_decode(self, order: int, task: RowGroupTask) -> tuple[pa.Table, int]:
        # Started in plan order, so the in-flight window admits row groups in turn.
        gets = [asyncio.ensure_future(self._get(task.footer, r)) for r in task.fetch]
        earlier: list[asyncio.Future[list[pa.Table]]] = []
        try:
            if task.uncompressed_bytes < _LARGE_ROW_GROUP_BYTES:
                table, decoded_bytes = await self._decode_small(order, task, gets)
            else:
                table, decoded_bytes = await self._decode_large(task, gets, earlier)
        finally:
            for f in (*gets, *earlier):
                f.cancel()
            await asyncio.gather(*gets, *earlier, return_exceptions=True)
        # The fetched buffers are gone; hold what the decoded table really takes instead.
        if decoded_bytes > task.reserve_bytes:
            self.budget.add(decoded_bytes - task.reserve_bytes)
        elif decoded_bytes < task.reserve_bytes:
            self.budget.release(task.reserve_bytes - decoded_bytes)
        return table, decoded_bytes

    async def _decode_small(self, order: int, task: RowGroupTask,
                            gets: list[asyncio.Future[list[bytes]]]) -> tuple[pa.Table, int]:
        """Wait for all of the row group's ranges, then for its turn in the decode queue."""
        bodies = await asyncio.gather(*gets)  # a failed request fails the row group at once
        pieces = [(r.start, body) for r, body in zip(task.fetch, bodies, strict=True)]
        fetched = FetchedRowGroup(task.row_group, pieces + list(task.local), task.partition,
                                  task.row_filter)
        return await self.small.decode(order, task.footer, fetched, task.dictionary,
                                       task.uncompressed_bytes)

    async def _decode_large(self, task: RowGroupTask, gets: list[asyncio.Future[list[bytes]]],
                            earlier: list[asyncio.Future[list[pa.Table]]]
                            ) -> tuple[pa.Table, int]:
        """Decode each unit of the row group as soon as its ranges have arrived."""
        footer = task.footer
        plan = self.plan
        loop = asyncio.get_running_loop()
        # Units whose ranges have all arrived go to a thread together (one hand-off when
        # everything lands at once); the last of them also finishes the row group.
        pending = list(task.units)
        while True:
            ready = [u for u in pending if all(gets[i].done() for i in u.fetch)]
            if not ready:
                waiting = {gets[i] for u in pending for i in u.fetch if not gets[i].done()}
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for d in done:
                    d.result()  # a failed request fails the row group at once
                continue
            pending = [u for u in pending if u not in ready]
            batch = [(self._pieces(task, u, gets), u.columns) for u in ready]
            if pending:
                earlier.append(loop.run_in_executor(
                    self.pool, decode_units, footer, task.row_group, batch, True,
                    task.dictionary, self.leaves))
                continue
            decoded = [t for tables in await asyncio.gather(*earlier) for t in tables]
            return await loop.run_in_executor(
                self.pool, sized, decode_row_group, footer, task.row_group, batch, True,
                task.partition, task.row_filter, plan.projection.output, decoded,
                task.dictionary, self.leaves,
            )

    @staticmethod
    def _pieces(
        task: RowGroupTask, unit: DecodeUnit, gets: list[asyncio.Future[list[bytes]]]
    ) -> list[tuple[int, list[bytes] | memoryview]]:
        """The bytes ``unit`` decodes from: its fetch ranges (arrived) and the chunks at hand."""
        pieces: list[tuple[int, list[bytes] | memoryview]] = [
            (task.fetch[i].start, gets[i].result()) for i in unit.fetch
        ]
        return pieces + list(task.local)

    async def _get(self, footer: Footer, r: ByteRange) -> list[bytes]:
        await self.in_flight.acquire(r.size)
        try:
            async with self.requests:
                return await self.store.get_range_parts(
                    footer.path, r.start, r.end, etag=footer.info.etag, stats=self.stats
                )
        finally:
            self.in_flight.release(r.size)
