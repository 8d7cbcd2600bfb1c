"""The exchange through the object store, with one atomic commit per task.

A producer attempt writes one object, ``data/<stage>/<task>/<attempt>/output``: the Arrow
IPC streams of all its partitions back to back (a multipart upload when it is large, aborted
if the attempt fails). It then creates ``commits/<stage>/<task>.json`` with
``If-None-Match: *``: the store lets exactly one attempt create it, so exactly one attempt of
each task commits, whichever process or machine runs it. The commit record is the index: per
partition its offset, length, rows and SHA-256, plus the object's size and ETag.

A small output (at most ``CheckpointOptions.inline_max`` encoded bytes) has no data object:
its commit record carries the same concatenated streams as base64 (``inline``, format
:data:`INLINE_FORMAT`) with the same index, created the same way, so an attempt costs one PUT
instead of two and exactly one attempt still commits.

Consumers trust only commit records: they range-read their partition from every committed
producer in parallel (``If-Match`` the committed ETag), or slice it out of an inline record,
and verify its checksum. A consumer in the process that committed an output takes the batches
that attempt encoded from that process's :class:`~checkpoint.copies.LocalCopies` instead,
found by the object and ETag its commit record names (an inline record: its commit key and
attempt). A committed output that is missing, replaced or corrupt raises
:class:`~executor.errors.TaskOutputLostError` naming the producer, which the stage runner
recomputes. A resumed run reads every stage's commit records at once
(:func:`read_commit_records`). The exchange pickles (names, options and the commit records
it has read, without their inline outputs; not the local copies), so worker processes use it
directly: a worker GETs an inline record again when it reads from it.

With a :class:`~checkpoint.committer.Committer` (the thread runner's exchanges), ``finish``
hands the rest of the encoding, the upload and the commit to it and returns: until the
commit lands, a consumer in this process reads the attempt's batches from memory (the
committer creates the consumer's own commit only after it, and fails the query if it
fails); an attempt whose batches were not kept is encoded by ``finish``, waited for and read
from the store.
"""

from __future__ import annotations

import asyncio
import binascii
import concurrent.futures as cf
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from checkpoint.codec import (
    checksum,
    decode_partition,
    inline_size,
    inline_slice,
    inline_text,
    ipc_options,
)
from checkpoint.committer import Committer
from checkpoint.copies import LocalCopies
from checkpoint.encoder import Encoder, finish_pool
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
"""A commit record naming its data object (``object``, ``size``, ``etag``)."""
INLINE_FORMAT = 2
"""A commit record carrying its output (``inline``: base64 of the concatenated partition
streams, ``size`` bytes; no ``object`` or ``etag``). A number of its own: readers before it
know only :data:`COMMIT_FORMAT` and take such a record for an unreadable one (its task is
recomputed), never misread it; records naming an object keep format 1, which they still read.
"""
FORMATS = {COMMIT_FORMAT: "data object", INLINE_FORMAT: "inline output"}
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
        consumer in this process needs no listing or reading to find them. A record whose
        output the local copies took is kept without its inline output (a consumer takes the
        copy, or reads the record again if it was evicted), so memory does not grow with the
        task count beyond the copies' budget; without local copies the record keeps it."""
        self.store = store or StoreOptions()
        self.options = options or CheckpointOptions()
        self.name = name or f"stage {stage}"
        self._num_tasks: int | None = None
        self._records: dict[int, dict] | None = None
        """Commit records read by :meth:`source`, kept (they change only by ``invalidate``)
        and pickled with the exchange, so worker processes do not read them again."""

    def __getstate__(self) -> dict:
        state = {**self.__dict__, "_copies": None, "_committer": None, "_pending": {}}
        # Inline outputs stay behind: a pickle per worker task would carry every producer's
        # output; a worker GETs the records it reads from instead (as it would ranges).
        for name in ("_listed", "_mine", "_records"):
            if state[name] is not None:
                state[name] = {t: _without_output(r) for t, r in state[name].items()}
        return state

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
        """``record``, if it is a commit record of ``task`` of this stage that is consistent
        in itself: it names this task's data object of its attempt, or carries an inline
        output of ``size`` bytes (None: left out of a pickle), and every partition lies
        within ``size``."""
        fmt = record.get("format")
        if type(fmt) is not int or fmt not in FORMATS:
            known = ", ".join(f"{n} ({what})" for n, what in FORMATS.items())
            raise CorruptManifestError(
                f"{path}: commit record format {fmt!r}; this version reads formats {known}",
                uri=str(path))
        try:
            ok = (record["stage"] == self.stage and record["task"] == task
                  and len(record["partitions"]) == self.num_partitions
                  and check_attempt(record["attempt"]) is not None)
            if fmt == COMMIT_FORMAT:
                ok = ok and record["object"] == self.root.data(self.stage, task,
                                                                record["attempt"]).key
            else:
                text = record["inline"]
                ok = ok and "object" not in record and "etag" not in record and (
                    text is None or inline_size(text) == record["size"])
            ok = ok and all(0 <= off and 0 <= length and off + length <= record["size"]
                            for off, length, _, _ in record["partitions"])
        except (KeyError, TypeError, ValueError, AttributeError, CheckpointError):
            ok = False
        if not ok:
            raise CorruptManifestError(
                f"{path}: not a commit record (format {fmt}: {FORMATS[fmt]}) of {self.root} "
                f"stage {self.stage} task {task} with {self.num_partitions} partitions",
                uri=str(path))
        return record

    def _committed_mine(self, task: int, record: dict,
                        kept: list[list[pa.RecordBatch]] | None,
                        kept_size: int | None = None) -> None:
        """Note ``task``'s committed ``record``; with the batches ``kept`` (per partition,
        ``kept_size`` bytes), they become the local copy its consumers read and the record
        drops its inline text."""
        self._mine[task] = record if kept is None else _without_output(record)
        if kept is not None:
            self._copies.put(*self._copy_key(record), kept, kept_size)

    def _copy_key(self, record: dict) -> tuple[str, str]:
        """What :class:`~checkpoint.copies.LocalCopies` keeps a committed output under: its
        object and ETag, or for an inline output its commit record's key and attempt."""
        if "inline" in record:
            return self.root.commit(self.stage, record["task"]).key, record["attempt"]
        return record["object"], record["etag"]

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


async def read_commit_records(store: StoreOptions, root: QueryRoot,
                              keys: list[tuple[int, int, S3Path]] | None = None
                              ) -> dict[int, dict[int, dict | str]]:
    """Every commit record of the query at ``root`` (not of its subqueries), by stage and
    task: one listing of ``commits/`` (unless its :func:`commit_keys` are given), then the
    records read in parallel. A record that does not decode is the reason, as a string (its
    stage's reader treats the task as lost)."""
    keys = await commit_keys(store, root) if keys is None else keys

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
        self.inline = False
        """Whether the commit record carries the output (decided by ``finish``)."""
        self.state = "open"
        self.path = exchange.root.data(exchange.stage, task, attempt)

    def add(self, partition: int, batch: pa.RecordBatch) -> None:
        if self.state != "open":
            raise ExchangeError(f"{self.path}: add after {self.state}")
        if not 0 <= partition < self.exchange.num_partitions:
            raise ExchangeError(f"{self.path}: partition {partition} out of range "
                                f"0..{self.exchange.num_partitions - 1}")
        size = batch.nbytes  # once: each call releases the GIL and waits to take it back
        self.encoder.add(partition, batch, size)
        if self.kept is not None:
            self.kept_size += size
            if self.kept_size > self.exchange._copies.budget:
                self.kept = None  # would not fit: the consumers read the store
            else:
                self.kept.setdefault(partition, []).append(batch)

    def finish(self) -> bool:
        if self.state != "open":
            raise ExchangeError(f"{self.path}: finish after {self.state}")
        self.state = "finishing"
        ex = self.exchange
        if ex._committer is not None:
            return self._hand_over()
        try:
            output = self._encode()
        except BaseException:
            self.state = "failed"
            raise

        async def upload_and_commit() -> tuple[dict, bool]:
            record = self._record(output, await self._put(output))
            return record, await ex._commit(self.task, record)

        try:
            record, won = run(upload_and_commit())
        except BaseException:
            self.state = "failed"
            self._discard()
            raise
        if won:
            ex._committed_mine(self.task, record, None if self.kept is None else
                               [self.kept.get(p, []) for p in range(ex.num_partitions)],
                               self.kept_size)
        self.kept = None
        if not won:
            self.state = "discarded"
            self._discard()
            return False
        self.state = "finished"
        return True

    def _encode(self) -> _Output:
        """Wait for the encoder and lay the partitions' streams back to back: the bytes, the
        index, and (when small enough to ride in the commit record) their base64 text."""
        ex = self.exchange
        writers = self.encoder.close()
        segments, index, offset = [], [], 0
        for p in range(ex.num_partitions):
            w = writers.pop(p, None)
            data = w.close() if w is not None else b""
            index.append([offset, len(data), w.rows if w is not None else 0, checksum(data)])
            segments.append(data)
            offset += len(data)
        self.inline = ex.options.inlines(offset)
        return _Output(segments, index, offset,
                       inline_text(b"".join(segments)) if self.inline else None)

    def _record(self, output: _Output, info: ObjectInfo | None) -> dict:
        """The commit record of ``output``, stored at ``info`` (None: carried inline)."""
        ex = self.exchange
        common = {"stage": ex.stage, "task": self.task, "attempt": self.attempt,
                  "size": output.size, "partitions": output.index,
                  "rows": sum(e[2] for e in output.index), "committed_at": time.time()}
        if output.text is not None:
            return {**common, "format": INLINE_FORMAT, "inline": output.text}
        assert info is not None
        return {**common, "format": COMMIT_FORMAT, "object": self.path.key,
                "etag": info.etag}

    async def _put(self, output: _Output) -> ObjectInfo | None:
        """Write the data object of ``output`` (None when its commit record carries it)."""
        if output.text is not None:
            return None
        ex = self.exchange
        return await upload(ex.store, self.path, output.segments, ex.options.part_size,
                            ex.options.multipart_over)

    def _hand_over(self) -> bool:
        """Finish through the committer: encode, upload and commit in the background; True.

        When the batches are kept (this process's consumers read them from memory until the
        commit lands), the task returns at once: the rest of its encoding (the batches
        still queued, each partition's last coalesced batch, the checksums) runs on
        :func:`~checkpoint.encoder.finish_pool`, off the stage's critical path (a stage
        starts only after its producers' ``finish``). Otherwise the consumers wait for the
        commit anyway, and the output is encoded here first."""
        ex = self.exchange
        kept = None if self.kept is None else \
            [self.kept.get(p, []) for p in range(ex.num_partitions)]
        kept_size = self.kept_size
        try:
            # The committer bounds the bytes in flight by what it is told: the batches held
            # until committed, plus the encoded output (its size once known; before, the
            # Arrow size bounds it but for incompressible data).
            output = self._encode() if kept is None else None
        except BaseException:
            self.state = "failed"
            raise
        size = output.size if output is not None else 2 * self.kept_size
        self.kept = None
        wrote = False

        async def put() -> tuple[_Output, ObjectInfo | None]:
            nonlocal wrote
            done = output if output is not None else \
                await asyncio.get_running_loop().run_in_executor(finish_pool(), self._encode)
            wrote = done.text is None
            return done, await self._put(done)

        async def commit(uploaded: tuple[_Output, ObjectInfo | None]) -> None:
            record = self._record(*uploaded)
            if not await ex._commit(self.task, record):
                raise ExchangeError(
                    f"{self.path}: another run committed {ex.root} {ex.name} task "
                    f"{self.task} first, while this run's next tasks read this attempt's "
                    f"output from memory; nothing more of this run is committed (wj resume "
                    f"finishes the query from the committed outputs)")
            ex._committed_mine(self.task, record, kept, kept_size)
            ex._pending.pop(self.task, None)

        async def discard() -> None:
            ex._pending.pop(self.task, None)
            if wrote:
                await delete(ex.store, self.path)

        try:
            job = ex._committer.submit(size, put, commit, discard)
        except BaseException:
            self.state = "failed"
            self.encoder.cancel()
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
        """Best effort: an uncommitted attempt's object is garbage either way (gc finds it);
        an inline attempt wrote none."""
        if self.inline:
            return
        try:
            run(delete(self.exchange.store, self.path))
        except store_errors.WjioError:
            pass


@dataclass(frozen=True)
class _Output:
    """An attempt's encoded output: the partitions' streams (back to back), the index (per
    partition offset, length, rows, SHA-256), the total size, and the base64 text a commit
    record carries (None: the output goes to a data object)."""

    segments: list[bytes]
    index: list[list]
    size: int
    text: str | None


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
        self._outputs: dict[int, str] = {}
        """Inline outputs read again from the store, by task (records left out of a
        pickle)."""

    def read(self, partition: int) -> Iterator[pa.RecordBatch]:
        if not 0 <= partition < self.exchange.num_partitions:
            raise ExchangeError(f"{self.exchange.root} {self.exchange.name}: partition "
                                f"{partition} out of range")
        window = self.exchange.options.read_tasks_at_once
        copies = self.exchange._copies
        for start in range(0, len(self.records), window):
            records = self.records[start:start + window]
            kept = [r.batches[partition] if isinstance(r, _Pending) else
                    None if copies is None else copies.get(*self.exchange._copy_key(r), partition)
                    for r in records]
            missing = [r for r, k in zip(records, kept, strict=True) if k is None]
            # Nothing to fetch (all in local copies): no trip through the IO loop, which may
            # be busy with this run's uploads and commits.
            fetched = iter(run(self._fetch_all(missing, partition)) if missing else ())
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
        if "inline" in record:
            text = record["inline"]
            if text is None:
                text = await self._output_of(record)
            try:
                return inline_slice(text, offset, length)
            except binascii.Error as err:
                raise TaskOutputLostError(ex.stage, record["task"], record["attempt"],
                                          f"partition {partition} of {_where(ex, record)} is "
                                          f"not base64: {err}") from None
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

    async def _output_of(self, record: dict) -> str:
        """The inline output of ``record``'s attempt, from its commit record in the store
        (read once per task); lost if the record no longer holds that attempt's output."""
        task = record["task"]
        if task not in self._outputs:
            ex = self.exchange
            try:
                now = await ex._read_commit(task)
            except CorruptManifestError as err:
                raise TaskOutputLostError(ex.stage, task, record["attempt"], str(err)) from None
            if now is None or now["attempt"] != record["attempt"] or \
                    not isinstance(now.get("inline"), str):
                raise TaskOutputLostError(
                    ex.stage, task, record["attempt"],
                    f"{ex.root.commit(ex.stage, task)} no longer holds the inline output of "
                    f"attempt {record['attempt']}")
            self._outputs[task] = now["inline"]
        return self._outputs[task]

    def _decode(self, record: dict, partition: int, data: bytes) -> list[pa.RecordBatch]:
        ex = self.exchange
        _, _, rows, digest = record["partitions"][partition]
        lost = None
        if checksum(data) != digest:
            lost = f"partition {partition} of {_where(ex, record)} fails its SHA-256 check"
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


def _without_output(record: dict | str) -> dict | str:
    """``record`` without its inline output (``inline`` None), as an exchange pickles it."""
    if isinstance(record, dict) and isinstance(record.get("inline"), str):
        return {**record, "inline": None}
    return record


def _where(exchange: ObjectStoreExchange, record: dict) -> str:
    """The object holding ``record``'s output, for messages."""
    if "inline" in record:
        return f"the inline output in {exchange.root.commit(exchange.stage, record['task'])}"
    return record["object"]
