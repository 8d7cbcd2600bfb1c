"""Object-store exchange and per-task commits for resumable queries.

>>> result = run_checkpointed(physical_plan, "s3://bucket/checkpoints/")
>>> result.root.uri                                    # s3://bucket/checkpoints/<query-id>/
>>> resume(result.root.uri).table                      # on any machine, after any crash
>>> resume(result.root.uri, runner="spark")            # tasks as Spark tasks, same commits
>>> query_status(result.root.uri).stages               # progress, from the store alone
>>> list_queries("s3://bucket/checkpoints/")           # every query under the root
>>> collect_garbage("s3://bucket/checkpoints/", older_than_s=7 * 86400)
"""

from checkpoint.errors import (
    CheckpointError,
    CorruptManifestError,
    IncompatibleQueryError,
    InputsChangedError,
    InvalidQueryRootError,
    QueryNotFoundError,
)
from checkpoint.exchange import ObjectStoreExchange
from checkpoint.gc import GcReport, collect_garbage
from checkpoint.layout import QueryRoot
from checkpoint.options import CheckpointOptions
from checkpoint.query import (
    Query,
    QueryResult,
    create_query,
    load_query,
    resume,
    run_checkpointed,
)
from checkpoint.runner import CheckpointedRunner, write_parquet
from checkpoint.spark_runner import SparkRunner
from checkpoint.status import QueryStatus, QuerySummary, list_queries, query_status

__all__ = [
    "CheckpointError", "CheckpointOptions", "CheckpointedRunner", "CorruptManifestError",
    "GcReport", "IncompatibleQueryError", "InputsChangedError", "InvalidQueryRootError",
    "ObjectStoreExchange", "Query", "QueryNotFoundError", "QueryResult", "QueryRoot",
    "QueryStatus", "QuerySummary", "SparkRunner", "collect_garbage", "create_query", "list_queries",
    "load_query", "query_status", "resume", "run_checkpointed", "write_parquet",
]
