"""``AggregateExec``: grouping through Acero's hash aggregate, with Spark's result rules
applied around it (the kernels Acero runs are exact; their types and overflow are not
Spark's).

* sum of integers is summed as decimal(38, 0) and range-checked into bigint (Acero's int64
  sum wraps silently); decimal(p, s) sums are checked against decimal(min(38, p + 10), s),
  summed in decimal256 only when the input's bounds do not rule out a decimal128 overflow;
* avg of decimals divides sum by count with Spark's decimal division (in int64 when the
  sums fit, see ``decimals``);
* an expression several aggregates compute is computed once per batch (``_Evaluator``);
* min/max of floats treat NaN as the largest value (Arrow's skip NaN).
"""

from __future__ import annotations

import decimal as pydecimal
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from executor.context import ExecContext
from executor.errors import ArithmeticOverflowError, UnsupportedError
from executor.eval import as_array, decimals, lower
from executor.ir import aggregates as agg
from executor.ir import expressions as ex
from executor.ir import relations as rel
from executor.ir import rules
from executor.ir.expressions import Alias, Expr
from executor.operators import acero as ac
from executor.operators.base import Operator, batches_of, physical_schema
from executor.operators.dense_groups import dense_aggregate

# Nodes that evaluate every operand on every row: a sub-expression reached through them alone
# is computed for all rows anyway, so computing it once for several aggregates changes nothing
# (not so inside a conditional, whose branches see only some rows).
_STRICT = (ex.BinaryArithmetic, ex.Cast, ex.Negate)


def _strict_parts(e: Expr) -> list[Expr]:
    """``e`` and the computed sub-expressions it evaluates on every row (pre-order)."""
    if not e.children:  # columns and literals: nothing to share
        return []
    parts = [e]
    if isinstance(e, _STRICT):
        for c in e.children:
            parts += _strict_parts(c)
    return parts


def _replace(e: Expr, names: dict[Expr, ex.ColumnRef], inner: bool = False) -> Expr:
    """``e`` with each shared part (``names``; not ``e`` itself when ``inner``) read from its
    column."""
    if not inner and e in names:
        return names[e]
    if not isinstance(e, _STRICT):
        return e
    changes = {k: new for k, v in e.field_values().items()
               if isinstance(v, Expr) and (new := _replace(v, names)) is not v}
    return e.replace(**changes) if changes else e


class _Evaluator:
    """Kernels for the expressions an aggregate reads (keys and aggregate inputs). A part
    several of them compute -- Q1's ``price * (1 - discount)`` in two sums -- is computed once
    per batch into a column ``__shared<i>`` that the others read (innermost parts first)."""

    def __init__(self, exprs: list[Expr]) -> None:
        counts = Counter(p for e in exprs for p in _strict_parts(e))
        shared = sorted((p for p, n in counts.items() if n > 1),
                        key=lambda p: sum(1 for _ in p.walk()))
        names = {p: ex.ColumnRef(f"__shared{i}", p.dtype, p.nullable)
                 for i, p in enumerate(shared)}
        self.shared = [(names[p].name, lower(_replace(p, names, inner=True)), p.dtype)
                       for p in shared]
        self.kernels = {e: lower(_replace(e, names)) for e in exprs}


class _Inputs:
    """One input batch and the expressions evaluated over it so far: an expression several
    aggregates or keys read (``sum(x)`` and ``avg(x)``) is computed once per batch."""

    def __init__(self, batch: pa.RecordBatch, evaluator: _Evaluator) -> None:
        n = batch.num_rows
        for name, kernel, dtype in evaluator.shared:
            batch = batch.append_column(name, as_array(kernel(batch), n, dtype))
        self.batch = batch
        self.kernels = evaluator.kernels
        self.values: dict[Expr, pa.Array] = {}

    def __call__(self, expr: Expr) -> pa.Array:
        value = self.values.get(expr)
        if value is None:
            kernel = self.kernels[expr]
            value = self.values[expr] = as_array(kernel(self.batch), self.batch.num_rows,
                                                 expr.dtype)
        return value


Prep = Callable[[_Inputs], pa.Array]
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
    return lambda a: a  # decimals: see _summable


def _summable(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A decimal128 ``column`` in a type Acero can sum without wrapping (its decimal128 sum
    wraps silently): kept when its row count times its largest magnitude stays below
    10**38 (always so up to precision 28 and 10**10 rows), else as decimal256."""
    t = column.type
    if t.precision <= 28:
        return column
    extremes = pc.min_max(column)
    lo, hi = extremes["min"].as_py(), extremes["max"].as_py()
    if lo is None:
        return column
    exact = pydecimal.Context(prec=100)
    bound = int(max(abs(lo), abs(hi)).scaleb(t.scale, exact))
    if len(column) * bound < 10**38:
        return column
    return column.cast(pa.decimal256(76, t.scale))


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
        return decimals.to_result(raw, out, ansi, "sum")
    return pc.cast(raw, out)


def _float_extreme(value: pa.Array, any_nan: pa.Array, is_max: bool) -> pa.Array:
    nan = pa.scalar(float("nan"), value.type)
    any_nan = pc.fill_null(any_nan, False)
    if is_max:
        return pc.if_else(any_nan, nan, value)
    return pc.if_else(pc.and_(any_nan, pc.is_null(value)), nan, value)


def _same_arrays(arrays: list, same: list[int] | None) -> list[int]:
    """For each of ``arrays``, the first of them that is the very same array (``sum(x)`` and
    ``avg(x)`` read one ``x``), kept only where ``same`` (the earlier batches') agrees."""
    first: dict[int, int] = {}
    now = [first.setdefault(id(a), i) for i, a in enumerate(arrays)]
    return now if same is None else [a if a == b else i
                                     for i, (a, b) in enumerate(zip(same, now, strict=True))]


def _distinct_aggregates(aggs: list, source: dict[str, str], table: pa.Table,
                         ) -> tuple[list, dict[str, str]]:
    """``aggs`` (Acero's (target, function, options, output)) with each computed once: a
    target that is the same column as another reads that one (``source``), a count of valid
    values of a column without nulls is a count of rows, and equal aggregates are one. Also
    the output each dropped one reads instead (Q1: 11 aggregates become 6)."""
    out, alias, seen = [], {}, {}
    for target, f, opts, name in aggs:
        if isinstance(target, str):
            target = source.get(target, target)
            if f.endswith("count") and table.column(target).null_count == 0 and (
                    opts is None or opts == _ONLY_VALID):
                target, f, opts = [], f + "_all", None
        key = (tuple(target) if isinstance(target, list) else target, f,
               None if opts is None else opts.serialize().to_pybytes())
        if key in seen:
            alias[name] = seen[key]
            continue
        seen[key] = name
        out.append((target, f, opts, name))
    return out, alias


_ONLY_VALID = pc.CountOptions("only_valid")


class AggregateExec(Operator):
    def __init__(self, node: rel.Aggregate, child: Operator) -> None:
        self.children = (child,)
        self.node = node
        self.schema = physical_schema(node.schema)
        self.final = node.mode is rel.AggregateMode.FINAL
        self.partial = node.mode is rel.AggregateMode.PARTIAL
        self.inputs: dict[Expr, None] = {}  # the expressions read, in order
        self.key_preps = [self._evaluated(k) for k in node.keys]
        self.specs = [self._spec(j, a) for j, a in enumerate(node.aggregates)]
        self.evaluator = _Evaluator(list(self.inputs))

    # -- one spec per aggregate: input columns, Acero aggregates, and the Spark finish ---------

    def _input(self, name: str, expr) -> Prep:
        if self.final:
            return lambda i: i.batch.column(name)
        return self._evaluated(expr)

    def _evaluated(self, expr: Expr) -> Prep:
        self.inputs[expr] = None
        return lambda i: i(expr)

    def _spec(self, j: int, alias: Alias) -> _Spec:
        fn, name = alias.child, alias.name
        c = f"a{j}"
        if isinstance(fn, agg.Sum):
            t = fn.child.dtype if not self.final else rules.sum_type(fn.child.dtype)
            conv, src = _sum_input(t), self._input(name, fn.child)
            out = fn.dtype
            return _Spec([(c, lambda i: conv(src(i)))], [(c, "sum", None, c)],
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
                spec.preps.append((c + "n", lambda i: pc.is_nan(src(i))))
                spec.aggs.append((c + "n", "any", None, c + "n"))
                spec.finish = lambda r: [_float_extreme(r(c), r(c + "n"), is_max)]
            return spec
        raise UnsupportedError(type(fn).__name__, "aggregate function")

    def _count(self, c: str, name: str, fn: agg.Count) -> _Spec:
        zero = pa.scalar(0, pa.int64())
        if self.final:
            return _Spec([(c, lambda i: i.batch.column(name))], [(c, "sum", None, c)],
                         lambda r: [pc.fill_null(pc.cast(r(c), pa.int64()), zero)])
        finish = lambda r: [pc.cast(r(c), pa.int64())]  # noqa: E731
        if not fn.args:
            return _Spec([], [([], "count_all", None, c)], finish)
        if fn.distinct:
            if len(fn.args) > 1:
                raise UnsupportedError("Count", "DISTINCT over several columns")
            arg = fn.args[0]
            return _Spec([(c, self._evaluated(arg))],
                         [(c, "count_distinct", pc.CountOptions("only_valid"), c)], finish)
        args = [self._evaluated(a) for a in fn.args]

        def prep(i: _Inputs) -> pa.Array:
            valid = pc.is_valid(args[0](i))
            for a in args[1:]:
                valid = pc.and_(valid, pc.is_valid(a(i)))
            return pc.if_else(valid, pa.scalar(1, pa.int8()), pa.scalar(None, pa.int8()))

        return _Spec([(c, prep)], [(c, "count", pc.CountOptions("only_valid"), c)], finish)

    def _avg(self, c: str, name: str, fn: agg.Avg) -> _Spec:
        t = fn.child.dtype
        state_t = rules.sum_type(t)
        out = fn.dtype
        if self.final:
            preps = [(c, lambda i: _sum_input(state_t)(i.batch.column(f"{name}#sum"))),
                     (c + "c", lambda i: i.batch.column(f"{name}#count"))]
            aggs = [(c, "sum", None, c), (c + "c", "sum", None, c + "c")]
        else:
            conv = _sum_input(t) if pa.types.is_decimal(t) else (
                lambda a: pc.cast(a, pa.float64(), safe=False))
            src = self._evaluated(fn.child)
            preps = [(c, lambda i: conv(src(i)))]
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
        preps = [(n, self.key_preps[j]) for j, n in enumerate(key_names)]
        preps += [p for s in self.specs for p in s.preps]
        if not preps:  # count(*) alone: keep the row count in a placeholder column
            preps = [("_rows", lambda i: pa.nulls(i.batch.num_rows, pa.int8()))]
        names = [n for n, _ in preps]
        prepared, same = [], None
        for batch in self.children[0].execute(partition, ctx):
            inputs = _Inputs(batch, self.evaluator)
            arrays = [fn(inputs) for _, fn in preps]
            same = _same_arrays(arrays, same)
            prepared.append(pa.RecordBatch.from_arrays(arrays, names=names))
        if prepared:
            table = pa.Table.from_batches(prepared)
        else:
            table = self._empty_input(preps, ctx)
        prefix = "hash_" if keys else ""
        aggs, alias = _distinct_aggregates(
            [(col, prefix + f, opts, out) for s in self.specs for col, f, opts, out in s.aggs],
            {n: names[j] for n, j in zip(names, same or range(len(names)), strict=True)
             if names[j] not in key_names},
            table)
        for name, f, _, _ in aggs:
            i = table.schema.get_field_index(name) if isinstance(name, str) else -1
            if f.endswith("sum") and i >= 0 and pa.types.is_decimal128(table.schema[i].type):
                table = table.set_column(i, name, _summable(table.column(i)))
        result = dense_aggregate(table, aggs, key_names) if keys else None
        if result is None:
            try:
                result = ac.Declaration.from_sequence([
                    ac.Declaration("table_source", ac.TableSourceNodeOptions(table)),
                    ac.Declaration("aggregate", ac.AggregateNodeOptions(aggs, keys=key_names)),
                ]).to_table(use_threads=False)
            except pa.ArrowNotImplementedError as err:
                raise UnsupportedError("Aggregate", str(err)) from None
        result = result.combine_chunks()

        def col(n: str) -> pa.Array:
            return result.column(alias.get(n, n)).combine_chunks()

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
        inputs = _Inputs(empty, self.evaluator)
        arrays = [fn(inputs) for _, fn in preps]
        return pa.Table.from_batches(
            [pa.RecordBatch.from_arrays(arrays, names=[n for n, _ in preps])])

