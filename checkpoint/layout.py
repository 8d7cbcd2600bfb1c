"""Where a checkpointed query's objects live, and which names are allowed.

One query is a prefix ``<root>/<query-id>/``::

    plan.json                               plan IR, fingerprint, inputs (size, ETag), options
    data/<stage>/<task>/<attempt>/output    one object per task attempt: all partitions
                                            (none for a small output: its record carries it)
    commits/<stage>/<task>.json             the commit record (created with If-None-Match: *)
    result/<attempt>/part-0.parquet         the result (as Parquet) of one run (none for a
                                            small result: its manifest carries it)
    result/result.json                      the result's manifest (created with If-None-Match:
                                            * by the first run to finish; names its object)
    sub/<fingerprint>/...                   a scalar subquery, laid out the same way

Every key is built here from a validated root, a validated query id and integers or
generated attempt names, so nothing a user passes can address an object outside the query
(no ``..``, no empty or dot segments, no control characters).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from checkpoint.errors import InvalidQueryRootError
from wjio.uri import S3Path

_QUERY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_SEGMENT = re.compile(r"[A-Za-z0-9!_.*'()=+,;@&$ -]+")
_ATTEMPT = re.compile(r"a(\d+)-([0-9a-f]{8})")
_SUBQUERY = re.compile(r"[0-9a-f]{16}")


def new_query_id() -> str:
    """``q-<UTC time>-<random>``: sorts by creation time, unique without coordination."""
    return time.strftime("q-%Y%m%dT%H%M%SZ-", time.gmtime()) + secrets.token_hex(4)


def new_attempt(number: int) -> str:
    """An attempt name unique across processes and machines (two resumes of one query may
    run the same task at once: their objects must not collide)."""
    return f"a{number}-{secrets.token_hex(4)}"


def check_attempt(name: str) -> str:
    if not _ATTEMPT.fullmatch(name):
        raise InvalidQueryRootError(f"attempt name {name!r} is not a<number>-<8 hex digits>")
    return name


def _check_prefix(uri: str, key: str) -> None:
    for segment in key.rstrip("/").split("/") if key else ():
        if segment in (".", "..") or not _SEGMENT.fullmatch(segment):
            raise InvalidQueryRootError(
                f"{uri}: path segment {segment!r} is not allowed in a checkpoint root "
                f"(expected letters, digits and -_.!*'()=+,;@&$ space; no empty, '.' or "
                f"'..' segments)", uri=uri)


def _parse(uri: str) -> S3Path:
    try:
        path = S3Path.parse(uri)
    except ValueError as err:
        raise InvalidQueryRootError(f"checkpoint root {uri!r}: {err}", uri=uri) from None
    _check_prefix(uri, path.key)
    return path


def checkpoint_root(uri: str) -> S3Path:
    """The validated checkpoint root ``s3://bucket/prefix/`` (its key ends in ``/`` or is
    empty), under which each query is one ``<query-id>/``."""
    path = _parse(uri)
    return path if path.is_prefix else path.child(path.key + "/")


@dataclass(frozen=True)
class QueryRoot:
    """The prefix of one query: ``s3://bucket/<prefix>/<query-id>/``."""

    bucket: str
    key: str
    """The query's key prefix, ending in ``/``."""
    query_id: str

    @classmethod
    def create(cls, root_uri: str, query_id: str | None = None) -> QueryRoot:
        """A new query under ``root_uri`` (``s3://bucket/prefix/``)."""
        path = checkpoint_root(root_uri)
        query_id = query_id or new_query_id()
        if not _QUERY_ID.fullmatch(query_id):
            raise InvalidQueryRootError(
                f"query id {query_id!r} is not allowed (expected 1-128 letters, digits, - "
                f"and _, starting with a letter or digit)", uri=root_uri)
        return cls(path.bucket, f"{path.key}{query_id}/", query_id)

    @classmethod
    def parse(cls, uri: str) -> QueryRoot:
        """The query at ``s3://bucket/prefix/<query-id>`` (trailing ``/`` optional)."""
        path = _parse(uri)
        key = path.key.rstrip("/")
        if not key:
            raise InvalidQueryRootError(
                f"{uri}: names a bucket, not a query (expected s3://bucket/prefix/<query-id>)",
                uri=uri)
        prefix, _, query_id = key.rpartition("/")
        return cls.create(f"s3://{path.bucket}/{prefix}", query_id)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def path(self, rel: str) -> S3Path:
        return S3Path(self.bucket, self.key + rel)

    @property
    def plan(self) -> S3Path:
        return self.path("plan.json")

    def data(self, stage: int, task: int, attempt: str) -> S3Path:
        return self.path(f"data/{_nat(stage)}/{_nat(task)}/{check_attempt(attempt)}/output")

    def commits(self, stage: int) -> S3Path:
        return self.path(f"commits/{_nat(stage)}/")

    def commit(self, stage: int, task: int) -> S3Path:
        return self.path(f"commits/{_nat(stage)}/{_nat(task)}.json")

    def commit_task(self, stage: int, path: S3Path) -> int | None:
        """The task a key under :meth:`commits` records, None if it is not a commit record."""
        m = re.fullmatch(r"(\d+)\.json", path.key[len(self.commits(stage).key):])
        return int(m.group(1)) if m else None

    def result(self, attempt: str) -> S3Path:
        return self.path(f"result/{check_attempt(attempt)}/part-0.parquet")

    @property
    def result_manifest(self) -> S3Path:
        return self.path("result/result.json")

    def subquery(self, fingerprint: str) -> QueryRoot:
        """The nested root of the scalar subquery with this plan fingerprint."""
        short = fingerprint[:16]
        if not _SUBQUERY.fullmatch(short):
            raise InvalidQueryRootError(f"subquery fingerprint {fingerprint!r} is not hex")
        return QueryRoot(self.bucket, f"{self.key}sub/{short}/", self.query_id)

    def __str__(self) -> str:
        return self.uri


_KEY = re.compile(
    r"(?P<sub>(?:sub/[0-9a-f]{16}/)*)(?:"
    r"(?P<plan>plan\.json)"
    r"|data/(?P<ds>\d+)/(?P<dt>\d+)/(?P<da>a\d+-[0-9a-f]{8})/output"
    r"|commits/(?P<cs>\d+)/(?P<ct>\d+)\.json"
    r"|(?P<manifest>result/result\.json)"
    r"|result/(?P<ra>a\d+-[0-9a-f]{8})/part-0\.parquet)")


@dataclass(frozen=True)
class QueryKey:
    """What one key under a query root is (see the module docstring)."""

    kind: str
    """``plan``, ``data``, ``commit``, ``result`` (a result object), ``result-manifest``, or
    ``other`` (nothing this layout writes)."""
    sub: str = ""
    """The subquery prefix (``sub/<fingerprint>/``) the key lies under, ``""`` for the query."""
    stage: int | None = None
    task: int | None = None
    attempt: str | None = None


def classify(rel: str) -> QueryKey:
    """The kind of the key ``rel`` (relative to a query root)."""
    m = _KEY.fullmatch(rel)
    if m is None:
        return QueryKey("other")
    sub = m["sub"]
    if m["plan"]:
        return QueryKey("plan" if not sub else "other", sub)
    if m["ds"] is not None:
        return QueryKey("data", sub, int(m["ds"]), int(m["dt"]), m["da"])
    if m["cs"] is not None:
        return QueryKey("commit", sub, int(m["cs"]), int(m["ct"]))
    if m["manifest"]:
        return QueryKey("result-manifest" if not sub else "other", sub)
    return QueryKey("result" if not sub else "other", sub, attempt=m["ra"])


def _nat(n: int) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise InvalidQueryRootError(f"stage/task number must be a non-negative int, got {n!r}")
    return n
