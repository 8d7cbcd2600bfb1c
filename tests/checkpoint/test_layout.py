"""Query roots: the keys of a query, and the names that are refused."""

from __future__ import annotations

import pytest

from checkpoint.errors import InvalidQueryRootError
from checkpoint.layout import QueryRoot, new_attempt, new_query_id


def test_keys_of_a_query():
    q = QueryRoot.create("s3://b/ck", "q-1")
    assert q.uri == "s3://b/ck/q-1/"
    assert q.plan.key == "ck/q-1/plan.json"
    assert q.commit(2, 7).key == "ck/q-1/commits/2/7.json"
    a = new_attempt(3)
    assert q.data(2, 7, a).key == f"ck/q-1/data/2/7/{a}/output"
    assert q.commit_task(2, q.commit(2, 7)) == 7
    assert q.commit_task(2, q.path("commits/2/7.json.tmp")) is None
    assert QueryRoot.parse("s3://b/ck/q-1") == q == QueryRoot.parse("s3://b/ck/q-1/")
    assert QueryRoot.parse("s3://b/q-1").key == "q-1/"
    sub = q.subquery("ab" * 32)
    assert sub.key == "ck/q-1/sub/" + "ab" * 8 + "/" and sub.commit(0, 0).key.startswith(sub.key)


def test_generated_names_are_unique_and_valid():
    ids = {new_query_id() for _ in range(50)}
    assert len(ids) == 50
    for i in ids:
        assert QueryRoot.create("s3://b/x/", i).query_id == i
    assert len({new_attempt(0) for _ in range(50)}) == 50


@pytest.mark.parametrize("uri", [
    "s3://b/ck/../other/q-1",      # traversal
    "s3://b/ck/./q-1",
    "s3://b/ck//q-1",              # empty segment
    "s3://b/",                     # a bucket, not a query
    "s3://b/ck/q\n1",
    "s3://b/ck/..",
    "/local/path/q-1",             # not S3
    "s3:///q-1",                   # no bucket
])
def test_bad_query_uris_are_refused(uri):
    with pytest.raises(InvalidQueryRootError):
        QueryRoot.parse(uri)


@pytest.mark.parametrize("query_id", ["..", "a/b", "-x", "x" * 129, "q.1", "é", "q 1"])
def test_bad_query_ids_are_refused(query_id):
    with pytest.raises(InvalidQueryRootError, match="query id"):
        QueryRoot.create("s3://b/ck/", query_id)


@pytest.mark.parametrize("stage", [-1, "1", 1.0, True])
def test_stage_and_task_numbers_are_checked(stage):
    with pytest.raises(InvalidQueryRootError):
        QueryRoot.create("s3://b/ck/", "q").commit(stage, 0)
    with pytest.raises(InvalidQueryRootError):
        QueryRoot.create("s3://b/ck/", "q").data(0, 0, "../../x")
