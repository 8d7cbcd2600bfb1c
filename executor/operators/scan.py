"""``ScanExec``: batches of a table's columns, with the conjuncts of the filter that are
exactly expressible in Arrow pushed to the reader (which prunes row groups with them and
evaluates those on a dictionary-encoded column once per distinct value), the others applied
here."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from executor.context import ExecContext
from executor.errors import UnsupportedError
from executor.eval import lower
from executor.eval.polars_filter import polars_filter
from executor.eval.pushdown import to_arrow_expression
from executor.ir import relations as rel
from executor.ir.expressions import Expr
from executor.ir.logic import And
from executor.operators.base import Operator, batch_of, physical_schema


class ScanExec(Operator):
    def __init__(self, node: rel.Scan) -> None:
        self.node = node
        self.schema = physical_schema(node.schema)
        self.residual = None
        pushed, kept, pushed_ir = [], [], []
        for c in _conjuncts(node.filter):
            try:
                pushed.append(to_arrow_expression(c))
                pushed_ir.append(c)
            except UnsupportedError:
                kept.append(c)
        self.pushed: tuple[pc.Expression, ...] = tuple(pushed)
        self.polars = polars_filter(pushed_ir)
        """The pushed conjuncts as one polars expression, if they all translate exactly."""
        read = list(node.columns)
        if kept:
            residual = functools.reduce(And, kept)
            self.residual = lower(residual)
            read += [r.name for r in residual.references() if r.name not in read]
        self.read_columns = read

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        source = ctx.source(self.node.table)
        for batch in source.read(self.read_columns, self.pushed, partition, ctx.num_partitions,
                                 polars=self.polars):
            if self.residual is not None:
                batch = batch.filter(pc.fill_null(self.residual(batch), False))
            if batch.num_rows == 0:
                continue
            cols = [batch.column(name) for name in self.node.columns]
            yield batch_of(
                [c.cast(f.type) if c.type != f.type else c for c, f in zip(cols, self.schema,
                                                                           strict=True)],
                self.schema, batch)


def _conjuncts(e: Expr | None) -> list[Expr]:
    if e is None:
        return []
    if isinstance(e, And):
        return _conjuncts(e.left) + _conjuncts(e.right)
    return [e]
