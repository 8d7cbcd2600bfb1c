"""``ExchangeReadExec``: a stage's input from an upstream exchange; ``PassThroughExec``: an
Exchange inside a single-partition run is a no-op."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from executor.context import ExecContext
from executor.errors import ExchangeError
from executor.ir import relations as rel
from executor.operators.base import Operator, conform, physical_schema


class ExchangeReadExec(Operator):
    """Reads the task's partition of the exchange; every partition when it is a broadcast
    or ``whole`` (the source of a key filter)."""

    def __init__(self, node: rel.Exchange, exchange_id: int, *, whole: bool = False) -> None:
        self.schema = physical_schema(node.schema)
        self.exchange_id = exchange_id
        self.broadcast = whole or node.partitioning is rel.Partitioning.BROADCAST
        self.num_partitions = node.num_partitions

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        source = ctx.exchange_inputs.get(self.exchange_id)
        if source is None:
            raise ExchangeError(f"no input for exchange #{self.exchange_id}")
        if self.broadcast:
            batches = source.read_all(self.num_partitions)
        else:
            batches = source.read(partition)
        for b in batches:
            yield conform(b, self.schema)


class PassThroughExec(Operator):
    def __init__(self, child: Operator) -> None:
        self.children = (child,)
        self.schema = child.schema

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        yield from self.children[0].execute(partition, ctx)
