"""A checkpointed query: create its root, run it through the store, resume it anywhere.

``run_checkpointed(plan, "s3://bucket/prefix/")`` writes ``plan.json`` (the plan IR, its
fingerprint, every input object with size and ETag as the run's own scans listed them, the
run options) under a new query root, runs the plan with every stage's output in the store
(:class:`ObjectStoreExchange`), and writes the result as Parquet under ``result/``.
``resume(query_uri)`` on any machine reloads the plan, refuses if an input changed (unless
``restart=True``: then every commit is dropped and the query runs from scratch against the
new inputs), runs only the tasks without a commit, and returns the result. Two resumes of
one query at once are safe: each task and the result commit exactly once
(``If-None-Match``), and both return the same answer. A resume makes its independent reads
at once (:func:`_survey`): the plan, the result's manifest and the commit records' listing,
then the inputs with the commit records or the result.

A run that created its query, on threads, uploads and commits each finished task in the
background while the next tasks compute (:mod:`checkpoint.committer`): its ``commit`` task
events then mean "handed to the committer", and the result is written only after every
commit landed. With a fresh query id its ``plan.json`` is the committer's first job (the
inputs fixed and the plan written while the first tasks compute), so every commit still
follows it. Resumes commit each task before it counts as done, so concurrent resumes stay
safe (a resume that loses a task's race discards its attempt and reads the winner's).

Nothing from the store options is written: credentials, endpoints and encryption settings
come from whoever runs or resumes the query.
"""

from __future__ import annotations

import asyncio
import binascii
import concurrent.futures as cf
import dataclasses
import io
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from checkpoint.codec import checksum, inline_data, inline_text
from checkpoint.committer import Committer
from checkpoint.copies import LocalCopies
from checkpoint.errors import (
    CorruptManifestError,
    IncompatibleQueryError,
    InputsChangedError,
    InvalidQueryRootError,
    QueryNotFoundError,
)
from checkpoint.exchange import ObjectStoreExchange, commit_keys, read_commit_records
from checkpoint.layout import QueryRoot, classify, new_attempt
from checkpoint.objects import (
    bounded,
    create_manifest,
    delete,
    get,
    listing,
    read_manifest,
    replace_manifest,
    upload,
)
from checkpoint.options import CheckpointOptions
from checkpoint.spark_runner import SparkRunner
from executor.context import ExecContext
from executor.errors import ExecutorError
from executor.exchange import Exchange
from executor.ir import relations as rel
from executor.ir import serde
from executor.ir.node import Node
from executor.sources import TableSource, WjioSource
from executor.stages import ExchangeFactory, StageRunner, TaskEvent, run_parallel
from wjio import errors as store_errors
from wjio.dataset import data_files
from wjio.options import StoreOptions
from wjio.store import shared_store
from wjio.sync import run
from wjio.uri import S3Path

Runner = Literal["thread", "process", "spark"] | StageRunner
"""Where tasks run: this process's threads, a local process pool, Spark tasks of the active
Spark session (:class:`~checkpoint.spark_runner.SparkRunner`), or any other stage runner.
A query started with one runner resumes with any other."""

QUERY_FORMAT = 2
"""Version of ``plan.json`` and ``result/result.json``; a resume refuses any other. 2: equal
exchanges share one stage and small filtered joins move down (``executor.stages.cut``,
``executor.ir.join_order``), so a format-1 plan would cut into other stages."""


@dataclass(frozen=True)
class Query:
    """A query as ``plan.json`` holds it."""

    root: QueryRoot
    plan: rel.Relation
    fingerprint: str
    inputs: tuple[dict[str, Any], ...]
    """Every input object: ``{"uri", "size", "etag"}`` (local files: ``mtime_ns``)."""
    options: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0

    def manifest(self) -> dict[str, Any]:
        return {"format": QUERY_FORMAT, "query_id": self.root.query_id,
                "created_at": self.created_at, "fingerprint": self.fingerprint,
                "plan": serde.to_dict(self.plan), "inputs": list(self.inputs),
                "options": self.options}


@dataclass(frozen=True)
class QueryResult:
    root: QueryRoot
    table: pa.Table
    resumed: bool = False
    """True when the result was already committed and was read back, not computed."""


class QueryExchanges(ExchangeFactory):
    """Every stage's output in the store under the query root (subqueries nested in it).

    The commit records of all stages are read once, when the first exchange is made (one
    listing and the records in parallel, :func:`read_commit_records`), not stage by stage; a
    query this run created has none (``fresh``) and reads nothing. The exchanges of the run
    (subqueries' too) share one :class:`~checkpoint.copies.LocalCopies` of
    ``options.local_copies`` bytes: a consumer in this process reads what this process
    committed without a GET. With ``background`` (tasks on this process's threads) they also
    share one :class:`~checkpoint.committer.Committer`: sinks upload and commit in the
    background, and :meth:`drain` waits for it (the query's result is written after).
    """

    def __init__(self, root: QueryRoot, store: StoreOptions, options: CheckpointOptions, *,
                 fresh: bool = False, copies: LocalCopies | None = None,
                 background: bool = False, committer: Committer | None = None,
                 committed: dict[int, dict[int, dict | str]] | None = None) -> None:
        self.root, self.store, self.options, self.fresh = root, store, options, fresh
        self._committed: dict[int, dict[int, dict | str]] | None = \
            {} if fresh else committed
        """Commit records by stage and task (:func:`read_commit_records`), read when the
        first exchange is made unless given."""
        self.copies = copies if copies is not None else LocalCopies(options.local_copies)
        self.committer = committer if committer is not None else \
            Committer(options.upload_ahead) if background else None

    def exchange(self, stage: int, num_partitions: int, name: str) -> Exchange:
        if self._committed is None:
            self._committed = run(read_commit_records(self.store, self.root))
        return ObjectStoreExchange(self.root, stage, num_partitions, store=self.store,
                                   options=self.options, name=name,
                                   listed=dict(self._committed.get(stage, {})),
                                   copies=self.copies, committer=self.committer)

    def subquery(self, plan: rel.Relation) -> ExchangeFactory:
        return QueryExchanges(self.root.subquery(serde.fingerprint(plan)), self.store,
                              self.options, fresh=self.fresh, copies=self.copies,
                              committer=self.committer)

    def drain(self, *, raise_error: bool = True) -> None:
        """Wait until every output handed to the committer is committed (or failed: then
        raise its error, unless ``raise_error`` is False)."""
        if self.committer is not None:
            self.committer.drain(raise_error=raise_error)


# -- inputs -----------------------------------------------------------------------------------


def input_tables(plan: rel.Relation) -> list[str]:
    """The table URIs the plan scans (subquery plans included), in first-seen order: a walk
    of every node's fields (not of the plan's JSON, which is built once per run, for
    ``plan.json``; building it again here cost a few ms before the first task)."""
    seen: dict[str, None] = {}
    visited: set[int] = set()  # a subtree shared by several parents is walked once

    def visit(value: Any) -> None:
        if isinstance(value, tuple):
            for v in value:
                visit(v)
        elif isinstance(value, Node) and id(value) not in visited:
            visited.add(id(value))
            if isinstance(value, rel.Scan):
                seen.setdefault(value.table, None)
            for v in value.field_values().values():
                visit(v)

    visit(plan)
    return list(seen)


async def _snapshot_s3(uri: str, store: StoreOptions) -> list[dict[str, Any]]:
    s3 = shared_store(store)
    path = S3Path.parse(uri)
    if not path.is_prefix:
        try:
            info = await s3.head(path)
        except store_errors.ObjectNotFoundError:
            path = path.child(path.key + "/")
        else:
            return [{"uri": str(info.path), "size": info.size, "etag": info.etag}]
    files = data_files(path, await s3.list(path))
    return [{"uri": str(f.info.path), "size": f.info.size, "etag": f.info.etag} for f in files]


def _snapshot_local(path: str) -> list[dict[str, Any]]:
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(d, f) for d, _, names in os.walk(path) for f in names)
    out = []
    for f in files:
        st = os.stat(f)
        out.append({"uri": f, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


async def _fixed_objects(sources: list[WjioSource]) -> list[dict[str, tuple[int, str | None]]]:
    """``sources``' objects (:meth:`~executor.sources.WjioSource.objects`), fixed at once on
    threads of their own: each waits for its listing on this IO loop, so they must not
    take the loop's default executor, which that work may need (with as many tables as it
    has threads, they would wait for each other forever)."""
    if not sources:
        return []
    pool = cf.ThreadPoolExecutor(len(sources), thread_name_prefix="wj-snapshot")
    try:
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(*(loop.run_in_executor(pool, s.objects)
                                           for s in sources)))
    finally:
        pool.shutdown(wait=False)


async def _snapshot(plan: rel.Relation, store: StoreOptions,
                    sources: Mapping[str, TableSource] | None = None
                    ) -> tuple[dict[str, Any], ...]:
    """Every input object of ``plan`` now: ``{"uri", "size", "etag"}`` (local files:
    ``mtime_ns``).

    ``sources`` are the run's table sources by table URI (its ``ExecContext.sources``): a
    table read through a :class:`~executor.sources.WjioSource` is recorded as that source
    fixed its files (its listing, which its scans are pinned to), so the run lists it once,
    not once for the snapshot and again for the scans, and ``plan.json`` names exactly the
    objects the committed tasks read. Other tables are listed (all at once)."""
    tables = input_tables(plan)
    pinned = {t: s for t, s in (sources or {}).items()
              if t in tables and isinstance(s, WjioSource)}
    fixed = dict(zip(pinned, await _fixed_objects(list(pinned.values())), strict=True))
    uris = [u for table in tables if table not in fixed for u in table.split(",") if u]
    remote = [u for u in uris if u.startswith(("s3://", "s3a://", "s3n://"))]
    listed = dict(zip(remote, await bounded(_snapshot_s3(u, store) for u in remote),
                      strict=True))  # all tables at once: one round trip, not one per table
    out: list[dict[str, Any]] = []
    for table in tables:
        if table in fixed:
            out += [{"uri": uri, "size": size, "etag": etag}
                    for uri, (size, etag) in fixed[table].items()]
            continue
        for uri in (u for u in table.split(",") if u):
            out += listed[uri] if uri in listed else _snapshot_local(uri)
    return tuple(out)


def changed_inputs(query: Query, now: tuple[dict[str, Any], ...]) -> list[str]:
    """One line per input object that changed, vanished or appeared since ``query``."""
    before = {i["uri"]: i for i in query.inputs}
    after = {i["uri"]: i for i in now}
    lines = []
    for uri, old in before.items():
        new = after.get(uri)
        if new is None:
            lines.append(f"{uri}: vanished")
        elif new != old:
            what = ", ".join(f"{k} {old.get(k)} -> {new.get(k)}" for k in sorted(old)
                             if k != "uri" and old.get(k) != new.get(k))
            lines.append(f"{uri}: changed ({what})")
    lines += [f"{uri}: new object" for uri in after if uri not in before]
    return lines


# -- plan.json --------------------------------------------------------------------------------


def create_query(plan: rel.Relation, root_uri: str, *, query_id: str | None = None,
                 store: StoreOptions | None = None,
                 options: dict[str, Any] | None = None) -> Query:
    """Write a new query's ``plan.json`` under ``root_uri`` (a fresh id unless given)."""
    store = store or StoreOptions()
    return run(_write_plan(_new_query(plan, root_uri, query_id, options), store))


def _new_query(plan: rel.Relation, root_uri: str, query_id: str | None,
               options: dict[str, Any] | None) -> Query:
    """A new query under ``root_uri``, its inputs not snapshotted and nothing written yet."""
    return Query(QueryRoot.create(root_uri, query_id), plan, serde.fingerprint(plan), (),
                 dict(options or {}), time.time())


async def _write_plan(query: Query, store: StoreOptions,
                      sources: Mapping[str, TableSource] | None = None) -> Query:
    """Snapshot the inputs of the new ``query`` (through the run's ``sources``, see
    :func:`_snapshot`) and create its ``plan.json``; the query as written
    (:class:`InvalidQueryRootError` if its id exists)."""
    query = dataclasses.replace(query, inputs=await _snapshot(query.plan, store, sources))
    if not await create_manifest(store, query.root.plan, query.manifest()):
        raise InvalidQueryRootError(f"{query.root}: a query with id {query.root.query_id!r} "
                                    f"already exists", uri=query.root.uri)
    return query


def load_query(query_uri: str, *, store: StoreOptions | None = None) -> Query:
    """The query at ``query_uri``, checked: its format, its plan and the plan's fingerprint."""
    store = store or StoreOptions()
    root = QueryRoot.parse(query_uri)

    async def load() -> Query:
        return await _read_query(root, store, await read_manifest(store, root.plan))

    return run(load())


async def _read_query(root: QueryRoot, store: StoreOptions, manifest: dict | None) -> Query:
    """The query whose ``plan.json`` read as ``manifest``, checked; None read: a
    :class:`QueryNotFoundError` saying whether anything lies under ``root`` at all."""
    if manifest is None:
        listed = await listing(store, root.path(""))
        if listed:
            raise QueryNotFoundError(
                f"{root}: not a query root ({len(listed)} objects under it, but no plan.json)",
                uri=root.uri)
        raise QueryNotFoundError(f"{root}: no query here (no plan.json, no objects)",
                                 uri=root.uri)
    version = manifest.get("format")
    if version != QUERY_FORMAT:
        raise IncompatibleQueryError(
            f"{root.plan}: query format {version!r}, this version resumes format "
            f"{QUERY_FORMAT} only", uri=root.uri)
    try:
        plan = serde.from_dict(manifest["plan"])
        if manifest["query_id"] != root.query_id:
            raise CorruptManifestError(f"{root.plan}: written for query "
                                       f"{manifest['query_id']!r}, found at {root}",
                                       uri=root.uri)
        query = Query(root, plan, manifest["fingerprint"], tuple(manifest["inputs"]),
                      dict(manifest.get("options", {})), manifest.get("created_at", 0.0))
    except ExecutorError as err:
        raise IncompatibleQueryError(f"{root.plan}: its plan cannot be loaded by this "
                                     f"version: {err}", uri=root.uri) from None
    except (KeyError, TypeError) as err:
        raise CorruptManifestError(f"{root.plan}: missing or malformed field {err}",
                                   uri=root.uri) from None
    if serde.fingerprint(plan) != query.fingerprint:
        raise CorruptManifestError(f"{root.plan}: the plan does not match its fingerprint",
                                   uri=root.uri)
    return query


@dataclass(frozen=True)
class _Survey:
    """What a resume reads of its query before it runs anything."""

    query: Query
    inputs: tuple[dict[str, Any], ...]
    """The input objects now (:func:`_snapshot`)."""
    result_manifest: dict | None
    result: bytes | None
    """The committed result's Parquet bytes, checked against its manifest (None: no result
    committed, or its object is lost or corrupt)."""
    committed: dict[int, dict[int, dict | str]] | None
    """Every commit record (:func:`read_commit_records`); None (not read) when a result was
    found."""


async def _survey(root: QueryRoot, store: StoreOptions, query: Query | None) -> _Survey:
    """Read what a resume needs, each read as soon as what it depends on is known: at once
    ``plan.json`` (unless ``query`` is given), the result's manifest and the listing of the
    commit records; then at once the inputs now (which the plan names) and either the
    result's object or, without a result, the commit records. Two round trips in a row (a
    non-inline result's object is in the second), where reading the plan first made three."""

    async def loaded() -> Query:
        if query is not None:
            return query
        return await _read_query(root, store, await read_manifest(store, root.plan))

    q, manifest, keys = await asyncio.gather(
        loaded(), read_manifest(store, root.result_manifest), commit_keys(store, root))
    if manifest is not None:
        inputs, result = await asyncio.gather(_snapshot(q.plan, store),
                                              _result_data(q, store, manifest))
        if result is not None:
            return _Survey(q, inputs, manifest, result, None)
        return _Survey(q, inputs, manifest, None, await read_commit_records(store, root, keys))
    inputs, committed = await asyncio.gather(_snapshot(q.plan, store),
                                             read_commit_records(store, root, keys))
    return _Survey(q, inputs, None, None, committed)


# -- running ----------------------------------------------------------------------------------


def run_checkpointed(plan: rel.Relation, root_uri: str, ctx: ExecContext | None = None, *,
                     query_id: str | None = None, store: StoreOptions | None = None,
                     options: CheckpointOptions | None = None,
                     runner: Runner = "thread",
                     scan_partitions: int | None = None, output: str | None = None,
                     on_task: Callable[[TaskEvent], None] | None = None,
                     on_created: Callable[[QueryRoot], None] | None = None) -> QueryResult:
    """Create a query under the checkpoint root ``root_uri`` (``s3://bucket/prefix/``) and run
    ``plan`` through the store; the result, also committed under the query's ``result/``.

    ``plan`` is a physical plan (its stages cut at ``Exchange`` nodes, e.g. from
    :func:`executor.distribute.physical_plan`); it is stored as run, so a resume runs the same
    stages and tasks. ``query_id`` defaults to a fresh one; ``scan_partitions`` (default
    ``ctx.parallelism``) is recorded with the batch size. ``output`` records where the
    result is meant to go (``wj resume`` delivers it there). ``on_created`` hears the query
    root before any task runs (so it can be printed first thing); ``on_task`` hears every
    :class:`~executor.stages.TaskEvent`. ``runner`` says where tasks run (:data:`Runner`).
    """
    ctx = ctx or ExecContext()
    run_options: dict[str, Any] = {"scan_partitions": scan_partitions or ctx.parallelism,
                                   "batch_size": ctx.batch_size}
    if output is not None:
        run_options["output"] = output
    store = store or StoreOptions()
    query = _new_query(plan, root_uri, query_id, run_options)
    # A fresh id on threads: plan.json is written in the background (see _execute). A given
    # id may exist already, and other runners commit without the committer: plan.json first.
    written = query_id is not None or runner != "thread"
    if written:
        query = run(_write_plan(query, store, _table_sources(query.plan, ctx, runner)))
    if on_created is not None:
        on_created(query.root)
    return _execute(query, ctx, store, options or CheckpointOptions(), runner, on_task,
                    fresh=True, write_plan=not written)


def resume(query_uri: str | Query, ctx: ExecContext | None = None, *, restart: bool = False,
           store: StoreOptions | None = None, options: CheckpointOptions | None = None,
           runner: Runner = "thread", parallelism: int | None = None,
           on_loaded: Callable[[Query], None] | None = None,
           on_task: Callable[[TaskEvent], None] | None = None) -> QueryResult:
    """Finish the query at ``query_uri`` (or the :class:`Query` :func:`load_query` just
    read, which saves reading ``plan.json`` again): its committed tasks are not run again.

    Raises :class:`InputsChangedError` if an input object changed since the query was
    created; with ``restart=True`` the query instead starts over on the current inputs.
    Without ``ctx``, tasks run ``parallelism`` at once (default: ``ExecContext``'s) with the
    query's batch size. ``on_loaded`` hears the query once its ``plan.json`` is read, before
    any task runs; ``on_task`` every :class:`~executor.stages.TaskEvent`.
    """
    store = store or StoreOptions()
    options = options or CheckpointOptions()
    given = query_uri if isinstance(query_uri, Query) else None
    root = given.root if given is not None else QueryRoot.parse(query_uri)
    survey = run(_survey(root, store, given))
    query, committed = survey.query, survey.committed
    if on_loaded is not None:
        on_loaded(query)
    changes = changed_inputs(query, survey.inputs)
    if changes and not restart:
        shown = "\n  ".join(changes[:20]) + ("\n  ..." if len(changes) > 20 else "")
        raise InputsChangedError(
            f"{query.root}: {len(changes)} input object(s) changed since the query was "
            f"planned, so its committed work no longer matches them:\n  {shown}\n"
            f"Resume with restart=True (wj resume --restart) to run it again from scratch "
            f"on the current inputs.", uri=query.root.uri, changes=tuple(changes))
    if changes:
        query = _restart(query, survey.inputs, store)
        committed = {}
    elif survey.result is not None:
        # ParquetFile, not pq.read_table: that one goes through pyarrow.dataset, whose
        # import (pandas with it) cost ~0.27 s of a ~1 s ``wj resume`` that only reads it.
        table = pq.ParquetFile(io.BytesIO(survey.result)).read()
        return QueryResult(query.root, table, resumed=True)
    elif survey.result_manifest is not None:  # its object is lost or corrupt: computed again
        run(delete(store, query.root.result_manifest))
    if ctx is None:
        ctx = ExecContext(batch_size=query.options.get("batch_size", 64 * 1024))
        if parallelism is not None:
            ctx.parallelism = parallelism
    return _execute(query, ctx, store, options, runner, on_task, committed=committed)


def _restart(query: Query, inputs: tuple[dict[str, Any], ...], store: StoreOptions) -> Query:
    """Drop every commit and the result, then record the current inputs."""

    async def drop() -> None:
        listed = await listing(store, query.root.path(""))
        doomed = [i.path for i in listed if classify(i.path.key[len(query.root.key):]).kind
                  in ("commit", "result", "result-manifest")]
        await bounded(delete(store, p) for p in doomed)
        fresh = Query(query.root, query.plan, query.fingerprint, inputs, query.options,
                      time.time())
        await replace_manifest(store, query.root.plan, fresh.manifest())

    run(drop())
    return load_query(query.root.uri, store=store)


def _table_sources(plan: rel.Relation, ctx: ExecContext, runner: Runner
                   ) -> dict[str, TableSource]:
    """The table sources the tasks of a run on threads read through (``ctx``'s, shared with
    them, made here on the calling thread); none for other runners, whose tasks open their
    own."""
    return {t: ctx.source(t) for t in input_tables(plan)} if runner == "thread" else {}


def _execute(query: Query, ctx: ExecContext, store: StoreOptions, options: CheckpointOptions,
             runner: Runner, on_task: Callable[[TaskEvent], None] | None, *,
             fresh: bool = False, committed: dict | None = None,
             write_plan: bool = False) -> QueryResult:
    # Background commits only for a query this run created, on threads: a resume may race
    # another resume of the query, and must then discard its attempt (and run on with the
    # winner's output) rather than fail because its next tasks read its own from memory.
    exchanges = QueryExchanges(query.root, store, options, fresh=fresh,
                               background=fresh and runner == "thread", committed=committed)
    if write_plan:
        # plan.json is the committer's first job: written while the first tasks compute, and
        # created before any commit (commits follow it in order; if it fails, none is made).
        async def nothing(*_: Any) -> None:
            return None

        assert exchanges.committer is not None, "a fresh run on threads commits in background"
        sources = _table_sources(query.plan, ctx, runner)
        exchanges.committer.submit(0, lambda: _write_plan(query, store, sources), nothing,
                                   nothing)
    try:
        table = run_parallel(query.plan, ctx,
                             runner=SparkRunner() if runner == "spark" else runner,
                             scan_partitions=query.options.get("scan_partitions"),
                             exchanges=exchanges, on_task=on_task)
    except BaseException:
        exchanges.drain(raise_error=False)
        raise
    exchanges.drain()
    _write_result(query, table, store, options)
    return QueryResult(query.root, table)


def _write_result(query: Query, table: pa.Table, store: StoreOptions,
                  options: CheckpointOptions) -> None:
    """Write the result as Parquet and commit its manifest; if another run committed a result
    first, this one's object is dropped (both hold the same answer). A result of at most
    ``options.inline_max`` Parquet bytes is carried in the manifest (``inline``, base64), as
    small task outputs are in their commit records: one PUT at the end of the query, not
    two in a row."""
    buf = io.BytesIO()
    pq.write_table(table, buf)
    body = buf.getvalue()
    path = query.root.result(new_attempt(0))
    inline = options.inlines(len(body))

    async def write() -> None:
        manifest = {"format": QUERY_FORMAT, "fingerprint": query.fingerprint,
                    "size": len(body), "sha256": checksum(body),
                    "rows": table.num_rows, "committed_at": time.time()}
        if inline:
            manifest["inline"] = inline_text(body)
        else:
            await upload(store, path, body, options.part_size, options.multipart_over)
            manifest["object"] = path.key
        if not await create_manifest(store, query.root.result_manifest, manifest) \
                and not inline:
            await delete(store, path)

    run(write())


async def _result_data(query: Query, store: StoreOptions, manifest: dict) -> bytes | None:
    """The Parquet bytes of the committed result its ``manifest`` names, None if they are
    lost or fail its checksum (the caller drops the manifest and computes the result again).
    """
    try:
        if "inline" in manifest:
            text = manifest["inline"]
            data = inline_data(text) if isinstance(text, str) else b""
        else:
            path = S3Path(query.root.bucket, manifest["object"])
            if not path.key.startswith(query.root.path("result/").key):
                raise CorruptManifestError(f"{query.root.result_manifest}: result object "
                                           f"{path} lies outside the query",
                                           uri=query.root.uri)
            data = await get(store, path)
        ok = checksum(data) == manifest["sha256"]
    except (store_errors.ObjectNotFoundError, binascii.Error):
        ok = False
    except (KeyError, TypeError) as err:
        raise CorruptManifestError(f"{query.root.result_manifest}: malformed ({err})",
                                   uri=query.root.uri) from None
    return data if ok else None
