"""Checkpointed runs for the commands: the plan runner behind ``wj sql --checkpoint`` and
delivery of a result to where it was meant to go."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from checkpoint.errors import CheckpointError
from checkpoint.layout import QueryRoot
from checkpoint.objects import upload
from checkpoint.options import CheckpointOptions
from checkpoint.query import Runner, run_checkpointed
from executor.context import ExecContext
from executor.ir import relations as rel
from executor.stages import TaskEvent
from wjio.options import StoreOptions
from wjio.sync import run
from wjio.uri import S3Path


class CheckpointedRunner:
    """Runs a single-node plan checkpointed: ``runner(plan, ctx) -> pa.Table``, the shape
    :func:`executor.frontend.spark.execute` takes as ``runner``.

    The query root is chosen (and checked) when the runner is made, so a command can print
    it before anything else happens; ``info`` then says ``{"checkpoint": <query root>}``.
    One runner runs one query.
    """

    def __init__(self, root_uri: str, *, store: StoreOptions | None = None,
                 options: CheckpointOptions | None = None,
                 runner: Runner = "thread", output: str | None = None,
                 on_task: Callable[[TaskEvent], None] | None = None) -> None:
        self.root = QueryRoot.create(root_uri)
        self._root_uri = root_uri
        self.store, self.options, self.runner = store, options, runner
        self.output, self.on_task = output, on_task
        self.info: dict[str, Any] = {"checkpoint": self.root.uri}
        self._used = False

    def __call__(self, plan: rel.Relation, ctx: ExecContext) -> pa.Table:
        from executor.distribute import physical_plan

        if self._used:
            raise CheckpointError(f"{self.root}: this runner already ran its query",
                                  uri=self.root.uri)
        self._used = True
        result = run_checkpointed(
            physical_plan(plan, ctx), self._root_uri, ctx, query_id=self.root.query_id,
            store=self.store, options=self.options, runner=self.runner, output=self.output,
            on_task=self.on_task)
        return result.table


def write_parquet(table: pa.Table, location: str, *, store: StoreOptions | None = None,
                  options: CheckpointOptions | None = None) -> None:
    """Write ``table`` as one Parquet file at a local path or an ``s3://`` URI."""
    if location.startswith(("s3://", "s3a://", "s3n://")):
        try:
            path = S3Path.parse(location)
        except ValueError as err:
            raise CheckpointError(f"output {location!r}: {err}", uri=location) from None
        if path.is_prefix:
            raise CheckpointError(f"output {location!r} names a prefix, not an object",
                                  uri=location)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        options = options or CheckpointOptions()
        run(upload(store or StoreOptions(), path, buf.getvalue(), options.part_size,
                   options.multipart_over))
        return
    if "://" in location:
        raise CheckpointError(f"output {location!r}: expected a local path or an s3:// URI",
                              uri=location)
    try:
        pq.write_table(table, location)
    except OSError as err:
        raise CheckpointError(f"output {location}: {err}", uri=location) from None
