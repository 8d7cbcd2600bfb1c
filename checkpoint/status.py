"""Progress of checkpointed queries, read from the store alone (no runner needs to be alive).

:func:`query_status` reports one query per stage: tasks committed of the stage's total, the
bytes and rows its commits hold, when its first and last task committed. :func:`list_queries`
reports every query under a checkpoint root with its state. Both read only listings, commit
records and ``plan.json``: a query being run elsewhere can be watched while it runs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from checkpoint.errors import CheckpointError, QueryNotFoundError
from checkpoint.exchange import commit_keys
from checkpoint.layout import checkpoint_root, classify
from checkpoint.objects import bounded, listing, read_manifest
from checkpoint.query import Query, load_query
from executor.errors import ExecutorError
from executor.stages import cut, task_count
from wjio.options import StoreOptions
from wjio.store import ObjectInfo
from wjio.sync import run

State = Literal["done", "incomplete", "unreadable", "not-a-query"]


@dataclass(frozen=True)
class StageStatus:
    stage: int
    tasks: int
    """Tasks the stage runs."""
    committed: int
    bytes: int
    """Bytes of the committed task outputs (as encoded: in their data objects, or carried
    in their commit records for inline outputs)."""
    rows: int
    first_commit: float | None
    last_commit: float | None

    @property
    def remaining(self) -> int:
        return self.tasks - self.committed


@dataclass(frozen=True)
class QueryStatus:
    uri: str
    query_id: str
    state: State
    created_at: float
    stages: tuple[StageStatus, ...]
    finished_at: float | None
    """When the result was committed (None while it is not)."""
    result_rows: int | None
    objects: int
    """Objects under the query root (every attempt, commit and result object)."""
    stored_bytes: int
    uncommitted_attempts: int
    """Task output objects no commit names (failed, lost or in-flight attempts)."""
    subquery_stages: int = 0
    """Stages of scalar subqueries (under ``sub/``) with a commit."""

    @property
    def tasks(self) -> int:
        return sum(s.tasks for s in self.stages)

    @property
    def committed(self) -> int:
        return sum(s.committed for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tasks"], out["committed"] = self.tasks, self.committed
        for s, d in zip(self.stages, out["stages"], strict=True):
            d["remaining"] = s.remaining
        return out


@dataclass(frozen=True)
class QuerySummary:
    """One line of ``wj ls``."""

    uri: str
    query_id: str
    state: State
    created_at: float | None
    last_activity: float | None
    tasks: int | None
    committed: int
    objects: int
    stored_bytes: int
    detail: str = ""
    """Why a query is ``unreadable``."""
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stage_totals(query: Query) -> list[int]:
    """Tasks per stage of the query's plan, as its runs schedule them."""
    scan_partitions = int(query.options.get("scan_partitions") or 1)
    return [task_count(s, scan_partitions) for s in cut(query.plan)]


async def _records(store: StoreOptions, paths: list) -> list[dict | None]:
    async def one(path) -> dict | None:
        try:
            record = await read_manifest(store, path)
        except CheckpointError:  # a corrupt record: counts as not committed
            return None
        if record is None or not (isinstance(record.get("attempt"), str)
                                  and isinstance(record.get("size"), int)
                                  and isinstance(record.get("rows"), int)):
            return None  # JSON, but not a commit record: counts as not committed too
        return record

    return await bounded(one(p) for p in paths)


def query_status(query_uri: str, *, store: StoreOptions | None = None) -> QueryStatus:
    """Where the query at ``query_uri`` stands, stage by stage."""
    store = store or StoreOptions()
    query = load_query(query_uri, store=store)
    root = query.root
    objects = run(listing(store, root.path("")))
    keys = [(classify(i.path.key[len(root.key):]), i) for i in objects]
    commits = [(k, i) for k, i in keys if k.kind == "commit"]
    main = [(k, i) for k, i in commits if not k.sub]
    records = run(_records(store, [i.path for _, i in main]))
    named = {(k.sub, k.stage, k.task): None for k, _ in commits}
    named_attempts = {(k.sub, k.stage, k.task, r["attempt"]) for (k, _), r
                      in zip(main, records, strict=True) if r is not None}

    totals = stage_totals(query)
    stages = []
    for index, total in enumerate(totals):
        mine = [r for (k, _), r in zip(main, records, strict=True)
                if k.stage == index and r is not None and k.task is not None and k.task < total]
        times = [r.get("committed_at") for r in mine if r.get("committed_at")]
        stages.append(StageStatus(index, total, len(mine), sum(r["size"] for r in mine),
                                  sum(r["rows"] for r in mine),
                                  min(times, default=None), max(times, default=None)))
    # A data object is an uncommitted attempt unless its task's commit names it (subquery
    # commits are not read: their task's attempt counts as committed if the task is).
    uncommitted = sum(
        1 for k, _ in keys if k.kind == "data" and
        ((k.sub, k.stage, k.task, k.attempt) not in named_attempts if not k.sub
         else (k.sub, k.stage, k.task) not in named))
    manifest = run(read_manifest(store, root.result_manifest))
    return QueryStatus(
        uri=root.uri, query_id=root.query_id,
        state="done" if manifest is not None else "incomplete",
        created_at=query.created_at, stages=tuple(stages),
        finished_at=manifest.get("committed_at") if manifest else None,
        result_rows=manifest.get("rows") if manifest else None,
        objects=len(objects), stored_bytes=sum(i.size for i in objects),
        uncommitted_attempts=uncommitted,
        subquery_stages=len({(k.sub, k.stage) for k, _ in commits if k.sub}))


def committed_count(query: Query, *, store: StoreOptions | None = None) -> int:
    """Tasks of the query's own stages that have a commit record, from one listing of its
    ``commits/`` (no record read, no data object listed): cheap enough to poll a running
    query, and it never lists the objects being written. (moto's server computes an
    object's ETag lazily, unlocked: a listing that meets an object as its PUT completes can
    leave a wrong ETag cached, and later If-Match reads of it fail.)"""
    totals = stage_totals(query)
    keys = run(commit_keys(store or StoreOptions(), query.root))
    return sum(1 for stage, task, _ in keys if stage < len(totals) and task < totals[stage])


def status_once_created(query_uri: str, *, store: StoreOptions | None = None
                        ) -> QueryStatus | None:
    """:func:`query_status`, or None while the query has no ``plan.json`` yet (a run that is
    only starting); every other error (a corrupt manifest, a bad root) still raises."""
    try:
        return query_status(query_uri, store=store)
    except QueryNotFoundError:
        return None


def group_by_query(root_uri: str, objects: list[ObjectInfo]) -> dict[str, list[ObjectInfo]]:
    """The objects under a checkpoint root, by the query id (first key segment) they lie
    under; objects directly under the root are left out."""
    base = checkpoint_root(root_uri).key
    out: dict[str, list[ObjectInfo]] = {}
    for info in objects:
        head, sep, _ = info.path.key[len(base):].partition("/")
        if sep:
            out.setdefault(head, []).append(info)
    return out


def list_queries(root_uri: str, *, store: StoreOptions | None = None) -> list[QuerySummary]:
    """Every query under the checkpoint root ``root_uri``, oldest first (prefixes that are
    not readable queries last)."""
    store = store or StoreOptions()
    path = checkpoint_root(root_uri)
    base = path.key
    groups = group_by_query(root_uri, run(listing(store, path)))
    out = []
    for query_id, objects in groups.items():
        uri = f"s3://{path.bucket}/{base}{query_id}/"
        kinds = [classify(i.path.key[len(base) + len(query_id) + 1:]) for i in objects]
        times = [i.modified for i in objects if i.modified is not None]
        common = dict(uri=uri, query_id=query_id, objects=len(objects),
                      stored_bytes=sum(i.size for i in objects),
                      committed=sum(k.kind == "commit" and not k.sub for k in kinds),
                      last_activity=max(times, default=None))
        if not any(k.kind == "plan" for k in kinds):
            out.append(QuerySummary(state="not-a-query", created_at=None, tasks=None,
                                    detail="no plan.json", **common))
            continue
        try:
            query = load_query(uri, store=store)
            tasks = sum(stage_totals(query))
        except (CheckpointError, ExecutorError) as err:
            out.append(QuerySummary(state="unreadable", created_at=None, tasks=None,
                                    detail=str(err).splitlines()[0], **common))
            continue
        done = any(k.kind == "result-manifest" for k in kinds)
        out.append(QuerySummary(state="done" if done else "incomplete",
                                created_at=query.created_at, tasks=tasks,
                                options=query.options, **common))
    return sorted(out, key=lambda q: (q.created_at is None, q.created_at or 0, q.query_id))


def age(seconds: float | None, now: float | None = None) -> str:
    """``3m ago``-style text for a time (``-`` if unknown)."""
    if seconds is None:
        return "-"
    d = max(0.0, (now or time.time()) - seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if d >= size:
            return f"{d / size:.0f}{unit} ago"
    return f"{d:.0f}s ago"
