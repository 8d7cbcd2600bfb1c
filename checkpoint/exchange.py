"""The exchange through the object store, with one atomic commit per task.

A producer attempt writes one object, ``data/<stage>/<task>/<attempt>/output``: the Arrow
IPC streams of all its partitions back to back (a multipart upload when it is large, aborted
if the attempt fails). It then creates ``commits/<stage>/<task>.json`` with
``If-None-Match: *``: the store lets exactly one attempt create it, so exactly one attempt of
each task commits, whichever process or machine runs it. The commit record is the index: per
partition its offset, length, rows and SHA-256, plus the object's size and ETag.

Consumers trust only commit records: they range-read their partition from every committed
producer in parallel (``If-Match`` the committed ETag) and verify its checksum. A consumer in
the process that committed an output takes the batches that attempt encoded from that
process's :class:`~checkpoint.copies.LocalCopies` instead, found by the object and ETag its
commit record names. A committed object that is missing, replaced or
corrupt raises :class:`~executor.errors.TaskOutputLostError` naming the producer, which the
stage runner recomputes. A resumed run reads every stage's commit records at once
(:func:`read_commit_records`). The exchange pickles (names, options and the commit records
it has read; not the local copies), so worker processes use it directly.

With a :class:`~checkpoint.committer.Committer` (the thread runner's exchanges), ``finish``
hands the upload and the commit to it and returns: until the commit lands, a consumer in
this process reads the attempt's batches from memory (the committer creates the consumer's
own commit only after it, and fails the query if it fails); an attempt whose batches were
not kept is waited for and read from the store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from checkpoint.codec import checksum, decode_partition, ipc_options
from checkpoint.committer import Committer
from checkpoint.copies import LocalCopies
from checkpoint.encoder import Encoder
from checkpoint.errors import CheckpointError, CorruptManifestError
from checkpoint.layout import QueryRoot, check_attempt, classify, new_attempt
from checkpoint.objects import bounded, create_manifest, delete, listing, read_manifest, upload
from checkpoint.options import CheckpointOptions
from executor.errors import ExchangeError, TaskOutputLostError
from executor.exchange import Exchange, ExchangeSink, ExchangeSource
from wjio import errors as store_errors
from wjio.options import StoreOptions
from wjio.ranges import ByteRange, split
from wjio.store import ObjectInfo, shared_store
from wjio.sync import run
from wjio.uri import S3Path

COMMIT_FORMAT = 1
UNREADABLE = "unreadable-record"
"""The attempt a lost-output error names when the commit record itself does not decode."""


class ObjectStoreExchange(Exchange):
    """The output of one stage of one query, in the store under ``root``."""

    portable = True

    def __init__(self, root: QueryRoot, stage: int, num_partitions: int, *,
                 store: StoreOptions | None = None, options: CheckpointOptions | None = None,
                 name: str | None = None, listed: dict[int, dict | str] | None = None,
                 copies: LocalCopies | None = None, committer: Committer | None = None
                 ) -> None:
        self.root, self.stage, self.num_partitions = root, stage, num_partitions
        self._copies = copies
        """Where this process's sinks keep what they committed and its sources look first
        (:class:`~checkpoint.copies.LocalCopies`); not pickled: a worker process reads the
        store."""
        self._committer = committer
        """Where this process's sinks hand their upload and commit (None: ``finish``
        uploads and commits itself); not pickled: a worker process commits itself."""
        self._pending: dict[int, _Pending] = {}
        """Attempts of this process's sinks handed to the committer and not committed yet."""
        self._listed = listed
        """The commit records of this stage when the run started (``{}`` for a query this run
        created), from one read of the whole query (:func:`read_commit_records`); a record
        that does not decode is the reason as a string. With it, :meth:`committed_tasks` and
        :meth:`source` make no request for what it holds: a task a concurrent resume commits
        meanwhile runs here too and its commit is discarded (each task still commits once).
        None: nothing was read, every question lists the store."""
        self._mine: dict[int, dict] = {}
        """Commit records this process's sinks created (the thread runner's tasks): a
        consumer in this process needs no listing or reading to find them."""
        self.store = store or StoreOptions()
        self.options = options or CheckpointOptions()
        self.name = name or f"stage {stage}"
        self._num_tasks: int | None = None
        self._records: dict[int, dict] | None = None
        """Commit records read by :meth:`source`, kept (they change only by ``invalidate``)
        and pickled with the exchange, so worker processes do not read them again."""

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_copies": None, "_committer": None, "_pending": {}}

    def create_sink(self, task: int, attempt: int) -> ExchangeSink:
        return _ObjectSink(self, task, new_attempt(attempt))

    def no_more_sinks(self, num_tasks: int) -> None:
        self._num_tasks = num_tasks

    def committed_tasks(self) -> set[int]:
        pending = set(self._pending)
        if self._listed is not None:
            return set(self._listed) | set(self._mine) | set(self._records or {}) | pending
        return run(self._committed_tasks()) | pending

    def is_complete(self) -> bool:
        return self._num_tasks is not None and set(range(self._num_tasks)) <= \
            self.committed_tasks()

    def source(self) -> ExchangeSource:
        if self._num_tasks is None:
            raise ExchangeError(f"{self.root} {self.name}: read before no_more_sinks")
        want = set(range(self._num_tasks))
        pending = self._wait_unkept()
        known = {**self._checked_listed(want), **(self._records or {}), **self._mine}
        if want - set(known) - set(pending):
            known = run(self._load_commits())
        self._records = known
        records = {**known, **pending}
        missing = sorted(want - set(records))
        if missing:
            raise ExchangeError(f"{self.root} {self.name}: read before every producer task "
                                f"committed (tasks {missing[:10]} have no commit record)")
        return _ObjectSource(self, [records[t] for t in range(self._num_tasks)])

    def _wait_unkept(self) -> dict[int, _Pending]:
        """The attempts still in the committer whose batches are kept (readable from
        memory); the others are waited for (committed, or their failure raised)."""
        if self._committer is None:
            return {}
        self._committer.check()
        unkept = [p.job for p in list(self._pending.values()) if p.batches is None]
        if unkept:
            cf.wait(unkept)
            self._committer.check()
        return {t: p for t, p in list(self._pending.items()) if p.batches is not None}

    def invalidate(self, task: int, attempt: str) -> None:
        run(self._invalidate(task, attempt))
        self._records = None
        if self._listed is not None:
            self._listed.pop(task, None)
        if self._mine.get(task, {}).get("attempt") == attempt:
            del self._mine[task]
        self._pending.pop(task, None)

    def _checked_listed(self, tasks: set[int]) -> dict[int, dict]:
        """The listed records of ``tasks``, checked; an unreadable one is a lost output."""
        out = {}
        for task in sorted(tasks & set(self._listed or {})):
            record, path = self._listed[task], self.root.commit(self.stage, task)
            try:
                if isinstance(record, str):
                    raise CorruptManifestError(record, uri=str(path))
                out[task] = self._check_record(record, task, path)
            except CorruptManifestError as err:
                raise TaskOutputLostError(self.stage, task, UNREADABLE, str(err)) from None
        return out

    # -- store side --------------------------------------------------------------------------

    async def _committed_tasks(self) -> set[int]:
        listed = await shared_store(self.store).list(self.root.commits(self.stage))
        return {t for info in listed
                if (t := self.root.commit_task(self.stage, info.path)) is not None}

    async def _read_commit(self, task: int) -> dict | None:
        path = self.root.commit(self.stage, task)
        record = await read_manifest(self.store, path)
        return None if record is None else self._check_record(record, task, path)

    def _check_record(self, record: dict, task: int, path: S3Path) -> dict:
        try:
            ok = (record["format"] == COMMIT_FORMAT and record["stage"] == self.stage
                  and record["task"] == task and len(record["partitions"]) == self.num_partitions
                  and check_attempt(record["attempt"]) is not None)
            ok = ok and record["object"] == self.root.data(self.stage, task,
                                                            record["attempt"]).key
            ends = [off + length for off, length, _, _ in record["partitions"]]
            ok = ok and all(e <= record["size"] for e in ends)
        except (KeyError, TypeError, ValueError, CheckpointError):
            ok = False
        if not ok:
            raise CorruptManifestError(
                f"{path}: not a commit record of {self.root} stage {self.stage} task {task} "
                f"with {self.num_partitions} partitions", uri=str(path))
        return record

    async def _load_commits(self) -> dict[int, dict]:
        async def load(task: int) -> dict | None:
            try:
                return await self._read_commit(task)
            except CorruptManifestError as err:
                raise TaskOutputLostError(self.stage, task, UNREADABLE, str(err)) from None

        tasks = sorted(await self._committed_tasks())
        records = await bounded(load(t) for t in tasks)
        return {t: r for t, r in zip(tasks, records, strict=True) if r is not None}

    async def _commit(self, task: int, record: dict) -> bool:
        """Create the commit record; True if this attempt's record is the one that exists."""
        if await create_manifest(self.store, self.root.commit(self.stage, task), record):
            return True
        # Exists: another attempt won, or an earlier try of this very put created it and its
        # answer was lost. Only the record itself can tell.
        existing = await self._read_commit(task)
        return existing is not None and existing["attempt"] == record["attempt"]

    async def _invalidate(self, task: int, attempt: str) -> None:
        # Delete the record only while it names the lost attempt: a newer commit (another
        # runner's recovery) stays. The lost data object is left to gc.
        try:
            record = await self._read_commit(task)
        except CorruptManifestError:
            record = {"attempt": UNREADABLE}
        if record is not None and record["attempt"] == attempt:
            await delete(self.store, self.root.commit(self.stage, task))


async def commit_keys(store: StoreOptions, root: QueryRoot) -> list[tuple[int, int, S3Path]]:
    """``(stage, task, path)`` of every commit record of the query at ``root`` (not of its
    subqueries), from one listing of ``commits/`` (no record read)."""
    listed = await listing(store, root.path("commits/"))
    return [(k.stage, k.task, i.path) for i in listed
            if (k := classify(i.path.key[len(root.key):])).kind == "commit" and not k.sub]


async def read_commit_records(store: StoreOptions, root: QueryRoot
                              ) -> dict[int, dict[int, dict | str]]:
    """Every commit record of the query at ``root`` (not of its subqueries), by stage and
    task: one listing of ``commits/``, then the records read in parallel. A record that does
    not decode is the reason, as a string (its stage's reader treats the task as lost)."""
    keys = await commit_keys(store, root)

    async def one(path: S3Path) -> dict | str | None:
        try:
            return await read_manifest(store, path)
        except CorruptManifestError as err:
            return str(err)

    records = await bounded(one(path) for _, _, path in keys)
    out: dict[int, dict[int, dict | str]] = {}
    for (stage, task, _), record in zip(keys, records, strict=True):
        if record is not None:  # deleted between the listing and the read: not committed
            out.setdefault(stage, {})[task] = record
    return out


class _ObjectSink(ExchangeSink):
    def __init__(self, exchange: ObjectStoreExchange, task: int, attempt: str) -> None:
        self.exchange, self.task, self.attempt = exchange, task, attempt
        o = exchange.options
        self.encoder = Encoder(ipc_options(o.codec, o.zstd_level), o.encode_ahead,
                               exchange.num_partitions)
        self.kept: dict[int, list[pa.RecordBatch]] | None = \
            {} if exchange._copies is not None and exchange._copies.budget else None
        """The batches added, for the local copies once committed (None: none kept)."""
        self.kept_size = 0
        self.state = "open"
        self.path = exchange.root.data(exchange.stage, task, attempt)

    def add(self, partition: int, batch: pa.RecordBatch) -> None:
        if self.state != "open":
            raise ExchangeError(f"{self.path}: add after {self.state}")
        if not 0 <= partition < self.exchange.num_partitions:
            raise ExchangeError(f"{self.path}: partition {partition} out of range "
                                f"0..{self.exchange.num_partitions - 1}")
        self.encoder.add(partition, batch)
        if self.kept is not None:
            self.kept_size += batch.nbytes
            if self.kept_size > self.exchange._copies.budget:
                self.kept = None  # would not fit: the consumers read the store
            else:
                self.kept.setdefault(partition, []).append(batch)

    def finish(self) -> bool:
        if self.state != "open":
            raise ExchangeError(f"{self.path}: finish after {self.state}")
        self.state = "finishing"
        ex = self.exchange
        try:
            writers = self.encoder.close()
        except BaseException:
            self.state = "failed"
            raise
        segments, index, offset = [], [], 0
        for p in range(ex.num_partitions):
            w = writers.pop(p, None)
            data = w.close() if w is not None else b""
            index.append([offset, len(data), w.rows if w is not None else 0, checksum(data)])
            segments.append(data)
            offset += len(data)

        def record_of(info: ObjectInfo) -> dict:
            return {"format": COMMIT_FORMAT, "stage": ex.stage, "task": self.task,
                    "attempt": self.attempt, "object": self.path.key, "size": offset,
                    "etag": info.etag, "partitions": index,
                    "rows": sum(e[2] for e in index), "committed_at": time.time()}

        async def put() -> ObjectInfo:
            return await upload(ex.store, self.path, segments, ex.options.part_size,
                                ex.options.multipart_over)

        if ex._committer is not None:
            return self._hand_over(offset, put, record_of)

        async def upload_and_commit() -> tuple[dict, bool]:
            record = record_of(await put())
            return record, await ex._commit(self.task, record)

        try:
            record, won = run(upload_and_commit())
        except BaseException:
            self.state = "failed"
            self._discard()
            raise
        if won:
            ex._mine[self.task] = record
            if self.kept is not None:
                ex._copies.put(record["object"], record["etag"],
                               [self.kept.get(p, []) for p in range(ex.num_partitions)])
        self.kept = None
        if not won:
            self.state = "discarded"
            self._discard()
            return False
        self.state = "finished"
        return True

    def _hand_over(self, size: int, put, record_of) -> bool:
        """Finish through the committer: upload ``size`` encoded bytes and commit them in the
        background; True."""
        ex = self.exchange
        kept = None if self.kept is None else \
            [self.kept.get(p, []) for p in range(ex.num_partitions)]
        size += 0 if kept is None else self.kept_size   # held until committed, too
        self.kept = None

        async def commit(info: ObjectInfo) -> None:
            record = record_of(info)
            if not await ex._commit(self.task, record):
                raise ExchangeError(
                    f"{self.path}: another run committed {ex.root} {ex.name} task "
                    f"{self.task} first, while this run's next tasks read this attempt's "
                    f"output from memory; nothing more of this run is committed (wj resume "
                    f"finishes the query from the committed outputs)")
            ex._mine[self.task] = record
            if kept is not None:
                ex._copies.put(record["object"], record["etag"], kept)
            ex._pending.pop(self.task, None)

        async def discard() -> None:
            ex._pending.pop(self.task, None)
            await delete(ex.store, self.path)

        try:
            job = ex._committer.submit(size, put, commit, discard)
        except BaseException:
            self.state = "failed"
            raise
        ex._pending[self.task] = _Pending(self.attempt, kept, job)
        if job.done() and job.exception() is None:  # committed already: nothing pending
            ex._pending.pop(self.task, None)
        self.state = "finished"
        return True

    def abort(self) -> None:
        if self.state == "open":
            self.state = "aborted"
            self.encoder.cancel()

    def _discard(self) -> None:
        """Best effort: an uncommitted attempt's object is garbage either way (gc finds it)."""
        try:
            run(delete(self.exchange.store, self.path))
        except store_errors.WjioError:
            pass


@dataclass(frozen=True)
class _Pending:
    """An attempt of this process handed to the committer: its partitions' batches (None
    if not kept) and the job uploading and committing it."""

    attempt: str
    batches: list[list[pa.RecordBatch]] | None
    job: cf.Future


class _ObjectSource(ExchangeSource):
    def __init__(self, exchange: ObjectStoreExchange, records: list[dict | _Pending]) -> None:
        self.exchange, self.records = exchange, records

    def read(self, partition: int) -> Iterator[pa.RecordBatch]:
        if not 0 <= partition < self.exchange.num_partitions:
            raise ExchangeError(f"{self.exchange.root} {self.exchange.name}: partition "
                                f"{partition} out of range")
        window = self.exchange.options.read_tasks_at_once
        copies = self.exchange._copies
        for start in range(0, len(self.records), window):
            records = self.records[start:start + window]
            kept = [r.batches[partition] if isinstance(r, _Pending) else
                    None if copies is None else copies.get(r["object"], r["etag"], partition)
                    for r in records]
            fetched = iter(run(self._fetch_all(
                [r for r, k in zip(records, kept, strict=True) if k is None], partition)))
            for record, batches in zip(records, kept, strict=True):
                if batches is None:
                    yield from self._decode(record, partition, next(fetched))
                else:
                    yield from batches

    async def _fetch_all(self, records: list[dict], partition: int) -> list[bytes]:
        return await asyncio.gather(*(self._fetch(r, partition) for r in records))

    async def _fetch(self, record: dict, partition: int) -> bytes:
        offset, length, _, _ = record["partitions"][partition]
        if length == 0:
            return b""
        ex = self.exchange
        store = shared_store(ex.store)
        path = S3Path(ex.root.bucket, record["object"])
        pieces = split(ByteRange(offset, offset + length), ex.options.read_range_size)
        try:
            parts = await asyncio.gather(*(
                store.get_range(path, r.start, r.end, etag=record["etag"]) for r in pieces))
        except (store_errors.ObjectNotFoundError, store_errors.ObjectChangedError) as err:
            raise TaskOutputLostError(ex.stage, record["task"], record["attempt"],
                                      f"{type(err).__name__}: {err}") from None
        return b"".join(parts)

    def _decode(self, record: dict, partition: int, data: bytes) -> list[pa.RecordBatch]:
        ex = self.exchange
        _, _, rows, digest = record["partitions"][partition]
        lost = None
        if checksum(data) != digest:
            lost = f"partition {partition} of {record['object']} fails its SHA-256 check"
        else:
            try:
                batches = decode_partition(data)
            except (pa.ArrowInvalid, OSError) as err:
                lost = f"partition {partition} does not decode: {err}"
            else:
                if sum(b.num_rows for b in batches) != rows:
                    lost = f"partition {partition} holds a row count other than committed"
        if lost is not None:
            raise TaskOutputLostError(ex.stage, record["task"], record["attempt"], lost)
        return batches
