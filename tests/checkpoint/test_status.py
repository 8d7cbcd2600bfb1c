"""Progress from the store alone: the cheap commit count a poller uses agrees with the
store's own listing and with the full status."""

from __future__ import annotations

from checkpoint import load_query, query_status
from checkpoint.status import committed_count
from tests.checkpoint.conftest import aggregate_plan, sample
from tests.checkpoint.test_query import keys, killed_before
from tests.conftest import TEST_BUCKET


def test_committed_count_agrees_with_the_listing_and_the_status(s3_table, root, s3):
    t = s3_table("t", sample())
    q = killed_before(aggregate_plan(t), root, "q-count", 2, scan_partitions=4)
    # Keys that are not commit records of the query's own stages do not count.
    s3.put_object(Bucket=TEST_BUCKET, Key=q.key + "commits/0/notes.txt", Body=b"x")
    s3.put_object(Bucket=TEST_BUCKET, Key=q.key + "commits/0/99.json", Body=b"{}")
    s3.put_object(Bucket=TEST_BUCKET, Key=q.key + "sub/0123456789abcdef/commits/0/0.json",
                  Body=b"{}")
    query = load_query(q.uri)
    listed = [k for k in keys(s3, q, "commits/") if k.endswith(".json")]
    assert committed_count(query) == len(listed) - 1 == 4 + 3       # stages 0 and 1
    assert committed_count(query) == query_status(q.uri).committed
