"""``LimitExec``: rows ``offset .. offset + limit``; stops pulling its input when done."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from executor.context import ExecContext
from executor.operators.base import Operator


class LimitExec(Operator):
    def __init__(self, child: Operator, limit: int, offset: int = 0) -> None:
        self.children = (child,)
        self.schema = child.schema
        self.limit, self.offset = limit, offset

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        skip, left = self.offset, self.limit
        if left == 0:
            return
        stream = self.children[0].execute(partition, ctx)
        try:
            for batch in stream:
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                out = batch.slice(skip, left)
                skip = 0
                left -= out.num_rows
                if out.num_rows:
                    yield out
                if left == 0:
                    return
        finally:
            stream.close()
