"""``AggregateExec``: grouping through Acero's hash aggregate, with Spark's result rules
applied around it (the kernels Acero runs are exact; their types and overflow are not
Spark's).

* sum of integers is summed as decimal(38, 0) and range-checked into bigint (Acero's int64
  sum wraps silently); decimal(p, s) sums are checked against decimal(min(38, p + 10), s);
* avg of decimals divides sum by count with Spark's decimal division, row by group;
* min/max of floats treat NaN as the largest value (Arrow's skip NaN).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.acero as ac
import pyarrow.compute as pc

from executor.context import ExecContext
from executor.errors import ArithmeticOverflowError, UnsupportedError
from executor.eval import decimals, evaluate
from executor.ir import aggregates as agg
from executor.ir import relations as rel
from executor.ir import rules
from executor.ir.expressions import Alias
from executor.operators.base import Operator, batches_of, physical_schema

Prep = Callable[[pa.RecordBatch], pa.Array]
Finish = Callable[[Callable[[str], pa.Array]], list[pa.Array]]
I64 = 2**63


@dataclass
class _Spec:
    preps: list[tuple[str, Prep]]
    aggs: list[tuple[list[str] | str, str, object, str]]
    finish: Finish


def _sum_input(t: pa.DataType) -> Callable[[pa.Array], pa.Array]:
    if pa.types.is_integer(t):
        return lambda a: pc.cast(a, pa.decimal128(38, 0))
    if pa.types.is_floating(t):
        return lambda a: pc.cast(a, pa.float64())
    if t.precision > 28:  # decimal128 could overflow while summing: sum in decimal256
        return lambda a: pc.cast(a, pa.decimal256(76, t.scale))
    return lambda a: a


def _sum_result(raw: pa.Array, out: pa.DataType, ansi: bool) -> pa.Array:
    """Acero's sum (decimal128(38,0) for integers) as Spark's sum type, range-checked."""
    if pa.types.is_integer(out):
        big = pc.or_(pc.greater_equal(raw, pa.scalar(I64, pa.decimal128(38, 0))),
                     pc.less(raw, pa.scalar(-I64, pa.decimal128(38, 0))))
        if pc.any(big).as_py():
            if ansi:
                raise ArithmeticOverflowError("sum of bigint overflowed")
            wrapped = [None if v is None else (int(v) + I64) % 2**64 - I64
                       for v in raw.to_pylist()]
            return pa.array(wrapped, pa.int64())
        return pc.cast(raw, pa.int64())
    if pa.types.is_decimal(out):
        return decimals.to_result(decimals.widen(raw), out, ansi, "sum")
    return pc.cast(raw, out)


def _float_extreme(value: pa.Array, any_nan: pa.Array, is_max: bool) -> pa.Array:
    nan = pa.scalar(float("nan"), value.type)
    any_nan = pc.fill_null(any_nan, False)
    if is_max:
        return pc.if_else(any_nan, nan, value)
    return pc.if_else(pc.and_(any_nan, pc.is_null(value)), nan, value)


class AggregateExec(Operator):
    def __init__(self, node: rel.Aggregate, child: Operator) -> None:
        self.children = (child,)
        self.node = node
        self.schema = physical_schema(node.schema)
        self.final = node.mode is rel.AggregateMode.FINAL
        self.partial = node.mode is rel.AggregateMode.PARTIAL
        self.specs = [self._spec(j, a) for j, a in enumerate(node.aggregates)]

    # -- one spec per aggregate: input columns, Acero aggregates, and the Spark finish ---------

    def _input(self, name: str, expr) -> Prep:
        if self.final:
            return lambda b: b.column(name)
        return lambda b: evaluate(expr, b)

    def _spec(self, j: int, alias: Alias) -> _Spec:
        fn, name = alias.child, alias.name
        c = f"a{j}"
        if isinstance(fn, agg.Sum):
            t = fn.child.dtype if not self.final else rules.sum_type(fn.child.dtype)
            conv, src = _sum_input(t), self._input(name, fn.child)
            out = fn.dtype
            return _Spec([(c, lambda b: conv(src(b)))], [(c, "sum", None, c)],
                         lambda r: [_sum_result(r(c), out, fn.ansi)])
        if isinstance(fn, agg.Count):
            return self._count(c, name, fn)
        if isinstance(fn, agg.Avg):
            return self._avg(c, name, fn)
        if isinstance(fn, agg.Min | agg.Max):
            is_max = isinstance(fn, agg.Max)
            src = self._input(name, fn.child)
            spec = _Spec([(c, src)], [(c, "max" if is_max else "min", None, c)],
                         lambda r: [r(c)])
            if pa.types.is_floating(fn.child.dtype):
                spec.preps.append((c + "n", lambda b: pc.is_nan(src(b))))
                spec.aggs.append((c + "n", "any", None, c + "n"))
                spec.finish = lambda r: [_float_extreme(r(c), r(c + "n"), is_max)]
            return spec
        raise UnsupportedError(type(fn).__name__, "aggregate function")

    def _count(self, c: str, name: str, fn: agg.Count) -> _Spec:
        zero = pa.scalar(0, pa.int64())
        if self.final:
            return _Spec([(c, lambda b: b.column(name))], [(c, "sum", None, c)],
                         lambda r: [pc.fill_null(pc.cast(r(c), pa.int64()), zero)])
        finish = lambda r: [pc.cast(r(c), pa.int64())]  # noqa: E731
        if not fn.args:
            return _Spec([], [([], "count_all", None, c)], finish)
        if fn.distinct:
            if len(fn.args) > 1:
                raise UnsupportedError("Count", "DISTINCT over several columns")
            arg = fn.args[0]
            return _Spec([(c, lambda b: evaluate(arg, b))],
                         [(c, "count_distinct", pc.CountOptions("only_valid"), c)], finish)
        args = fn.args

        def prep(b: pa.RecordBatch) -> pa.Array:
            valid = pc.is_valid(evaluate(args[0], b))
            for a in args[1:]:
                valid = pc.and_(valid, pc.is_valid(evaluate(a, b)))
            return pc.if_else(valid, pa.scalar(1, pa.int8()), pa.scalar(None, pa.int8()))

        return _Spec([(c, prep)], [(c, "count", pc.CountOptions("only_valid"), c)], finish)

    def _avg(self, c: str, name: str, fn: agg.Avg) -> _Spec:
        t = fn.child.dtype
        state_t = rules.sum_type(t)
        out = fn.dtype
        if self.final:
            preps = [(c, lambda b: _sum_input(state_t)(b.column(f"{name}#sum"))),
                     (c + "c", lambda b: b.column(f"{name}#count"))]
            aggs = [(c, "sum", None, c), (c + "c", "sum", None, c + "c")]
        else:
            conv = _sum_input(t) if pa.types.is_decimal(t) else (
                lambda a: pc.cast(a, pa.float64(), safe=False))
            preps = [(c, lambda b: conv(evaluate(fn.child, b)))]
            aggs = [(c, "sum", None, c), (c, "count", pc.CountOptions("only_valid"), c + "c")]

        def finish(r) -> list[pa.Array]:
            total = _sum_result(r(c), state_t, fn.ansi)
            count = pc.fill_null(pc.cast(r(c + "c"), pa.int64()), pa.scalar(0, pa.int64()))
            if self.partial:
                return [total, count]
            if pa.types.is_decimal(out):
                # Spark: If(count = 0, null, DecimalDivideWithOverflowCheck(sum, count, out))
                safe = pc.if_else(pc.equal(count, 0), pa.scalar(None, pa.int64()), count)
                return [decimals.divide(total, pc.cast(safe, pa.decimal128(20, 0)), out,
                                        fn.ansi)]
            safe = pc.if_else(pc.equal(count, 0), pa.scalar(None, pa.float64()),
                              pc.cast(count, pa.float64()))
            return [pc.divide(total, safe)]

        return _Spec(preps, aggs, finish)

    # -- execution -----------------------------------------------------------------------------

    def execute(self, partition: int, ctx: ExecContext) -> Iterator[pa.RecordBatch]:
        keys = self.node.keys
        key_names = [f"k{i}" for i in range(len(keys))]
        preps = [(n, (lambda e: lambda b: evaluate(e, b))(k)) for n, k in zip(
            key_names, keys, strict=True)]
        preps += [p for s in self.specs for p in s.preps]
        if not preps:  # count(*) alone: keep the row count in a placeholder column
            preps = [("_rows", lambda b: pa.nulls(b.num_rows, pa.int8()))]
        prepared = []
        for batch in self.children[0].execute(partition, ctx):
            arrays = [fn(batch) for _, fn in preps]
            prepared.append(pa.RecordBatch.from_arrays(arrays, names=[n for n, _ in preps]))
        if prepared:
            table = pa.Table.from_batches(prepared)
        else:
            table = self._empty_input(preps, ctx)
        prefix = "hash_" if keys else ""
        aggs = [(col, prefix + f, opts, out) for s in self.specs for col, f, opts, out in s.aggs]
        try:
            result = ac.Declaration.from_sequence([
                ac.Declaration("table_source", ac.TableSourceNodeOptions(table)),
                ac.Declaration("aggregate", ac.AggregateNodeOptions(aggs, keys=key_names)),
            ]).to_table(use_threads=False)
        except pa.ArrowNotImplementedError as err:
            raise UnsupportedError("Aggregate", str(err)) from None
        result = result.combine_chunks()

        def col(n: str) -> pa.Array:
            return result.column(n).combine_chunks()

        arrays = [col(n) for n in key_names]
        for s in self.specs:
            arrays += s.finish(col)
        arrays = [a.cast(f.type) if a.type != f.type else a
                  for a, f in zip(arrays, self.schema, strict=True)]
        out = pa.Table.from_arrays(arrays, schema=self.schema)
        yield from batches_of(out, self.schema, ctx.batch_size)

    def _empty_input(self, preps, ctx: ExecContext) -> pa.Table:
        """A zero-row table with the prepared columns' types (from an empty child batch)."""
        child = self.children[0].schema
        empty = pa.RecordBatch.from_pylist([], schema=child)
        arrays = [fn(empty) for _, fn in preps]
        return pa.Table.from_batches(
            [pa.RecordBatch.from_arrays(arrays, names=[n for n, _ in preps])])

