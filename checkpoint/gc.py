"""Garbage collection under a checkpoint root.

Three kinds of garbage, each only when older than the threshold (so work in flight is never
touched: an attempt being written or an upload being sent is younger than any sane
threshold):

* **uncommitted attempts**: task output objects no commit names (a failed or duplicate
  attempt, an attempt killed before it committed, an output found lost, an object whose task
  then committed an inline record), and result objects the result manifest does not name (an
  attempt whose output was inline leaves no object: its record is all it wrote);
* **incomplete multipart uploads** under the root (an attempt killed mid-upload);
* **finished queries** (their result was committed before the threshold): the whole query,
  unless ``keep_finished``. Unfinished queries stay: they can still be resumed.

A finished query is deleted manifest first and ``plan.json`` last, so a gc stopped half-way
leaves a query that is unfinished and resumable, never a result without its data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from checkpoint.errors import CheckpointError
from checkpoint.layout import QueryKey, checkpoint_root, classify
from checkpoint.objects import bounded, read_manifest
from checkpoint.status import group_by_query
from wjio.options import StoreOptions
from wjio.store import ObjectInfo, shared_store
from wjio.sync import run
from wjio.uri import S3Path

_PHASE = {"result-manifest": 0, "plan": 2}
"""A finished query is deleted in three phases: its result manifest, then everything else
(in parallel), then ``plan.json``."""


@dataclass(frozen=True)
class Removal:
    kind: str
    """``attempt``, ``upload`` or ``finished-query``."""
    uri: str
    bytes: int
    objects: int


@dataclass
class GcReport:
    root: str
    older_than_s: float
    dry_run: bool
    removed: list[Removal] = field(default_factory=list)

    def totals(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.removed:
            t = out.setdefault(r.kind, {"items": 0, "objects": 0, "bytes": 0})
            t["items"] += 1
            t["objects"] += r.objects
            t["bytes"] += r.bytes
        return out

    def to_dict(self) -> dict:
        return {**asdict(self), "totals": self.totals()}


def collect_garbage(root_uri: str, *, older_than_s: float, dry_run: bool = False,
                    keep_finished: bool = False, store: StoreOptions | None = None,
                    now: Callable[[], float] = time.time) -> GcReport:
    """Remove (or with ``dry_run`` only report) the garbage under ``root_uri`` older than
    ``older_than_s`` seconds."""
    if older_than_s < 0:
        raise CheckpointError(f"gc {root_uri}: older-than must be >= 0, got {older_than_s}")
    store = store or StoreOptions()
    root = checkpoint_root(root_uri)
    report = GcReport(str(root), older_than_s, dry_run)
    return run(_collect(root, report, store, now() - older_than_s, keep_finished))


async def _collect(root: S3Path, report: GcReport, store: StoreOptions, cutoff: float,
                   keep_finished: bool) -> GcReport:
    s3 = shared_store(store)
    objects, uploads = await asyncio.gather(s3.list(root), s3.list_multipart(root))
    phases: list[list[S3Path]] = []  # deleted one after another, each in parallel
    attempts: list[S3Path] = []
    for query_id, infos in group_by_query(str(root), objects).items():
        qkey = f"{root.key}{query_id}/"
        keys = [(classify(i.path.key[len(qkey):]), i) for i in infos]
        manifest = next((i for k, i in keys if k.kind == "result-manifest"), None)
        plan = next((i for k, i in keys if k.kind == "plan"), None)
        if (plan is not None and manifest is not None and not keep_finished
                and _older(manifest, cutoff)):
            report.removed.append(Removal("finished-query", f"s3://{root.bucket}/{qkey}",
                                          sum(i.size for _, i in keys), len(keys)))
            phases += [[i.path for k, i in keys if _PHASE.get(k.kind, 1) == n]
                       for n in range(3)]
            continue
        for info in await _stale_attempts(store, keys, cutoff):
            report.removed.append(Removal("attempt", str(info.path), info.size, 1))
            attempts.append(info.path)
    stale_uploads = [u for u in uploads if u.initiated < cutoff]
    for u in stale_uploads:
        report.removed.append(Removal("upload", f"{u.path} (upload {u.upload_id})", 0, 1))
    if not report.dry_run:
        for phase in [attempts, *phases]:
            await bounded(s3.delete(p) for p in phase)
        await bounded(s3.abort_multipart(u.path, u.upload_id) for u in stale_uploads)
    return report


def _older(info: ObjectInfo, cutoff: float) -> bool:
    return info.modified is not None and info.modified < cutoff


async def _stale_attempts(store: StoreOptions, keys: list[tuple[QueryKey, ObjectInfo]],
                          cutoff: float) -> list[ObjectInfo]:
    """Old output and result objects that no commit (or result manifest) names."""
    candidates = [(k, i) for k, i in keys if k.kind in ("data", "result") and _older(i, cutoff)]
    if not candidates:
        return []
    commits = [(k, i) for k, i in keys if k.kind in ("commit", "result-manifest")]

    async def named(info: ObjectInfo) -> str | None:
        try:
            record = await read_manifest(store, info.path)
        except CheckpointError:
            return None  # a corrupt record names nothing; resume recomputes its task
        # An inline record (its output inside it) names no object: nothing to keep for it.
        return record.get("object") if record else None

    names = set(await bounded(named(i) for _, i in commits))
    return [i for _, i in candidates if i.path.key not in names]


def parse_age(text: str) -> float:
    """Seconds in ``7d``, ``12h``, ``30m``, ``45s``, ``2w`` (a number and one unit)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    number, unit = text[:-1], text[-1:]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in units or value < 0:
        raise CheckpointError(f"age {text!r}: expected a number and a unit of s, m, h, d or w "
                              f"(e.g. 7d, 12h)")
    return value * units[unit]
