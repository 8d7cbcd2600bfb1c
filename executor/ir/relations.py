"""Relational operators: each declares its output ``schema`` and validates that every column
it references exists in its input with the referenced type."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cached_property

import pyarrow as pa

from executor.errors import PlanError, UnsupportedError
from executor.ir import rules
from executor.ir.aggregates import AggregateFunction, Avg, Count, Max, Min, Sum
from executor.ir.expressions import BOOL, Alias, BoundRef, Expr, Literal, output_name
from executor.ir.node import Node, check
from executor.ir.types import Field, Schema
from executor.ir.windows import OffsetValue, RankingFunction, WindowExpr


@dataclass(frozen=True)
class Relation(Node):
    """A relational operator producing batches of ``schema``."""

    abstract = True

    @property
    def inputs(self) -> tuple[Relation, ...]:
        out: list[Relation] = []
        for v in self.field_values().values():
            if isinstance(v, Relation):
                out.append(v)
            elif isinstance(v, tuple):
                out.extend(x for x in v if isinstance(x, Relation))
        return tuple(out)

    @cached_property
    def schema(self) -> Schema:
        return self._schema()

    def _schema(self) -> Schema:
        raise NotImplementedError(type(self).__name__)

    def walk(self):
        """This relation and all below it, depth first."""
        yield self
        for i in self.inputs:
            yield from i.walk()


def check_refs(node: Node, exprs: tuple[Expr | None, ...], schema: Schema) -> None:
    """Every reference in ``exprs`` must name a column of ``schema`` with the same type.
    Nullability is not compared: Spark narrows it (e.g. under ``isnotnull``) more than we do."""
    for e in exprs:
        if e is None:
            continue
        for ref in e.references():
            if isinstance(ref, BoundRef):
                check(ref.index < len(schema), node, f"column #{ref.index} out of range")
                actual = schema.fields[ref.index]
            else:
                try:
                    actual = schema.field(ref.name)
                except PlanError:
                    raise PlanError(f"{type(node).__name__}: no column {ref.name!r} in input "
                                    f"({', '.join(schema.names)})") from None
            check(actual.dtype == ref.dtype, node,
                  f"column {actual.name!r} is {actual.dtype}, referenced as {ref.dtype}")


def _named(node: Node, exprs: tuple[Expr, ...]) -> Schema:
    try:
        return Schema(tuple(Field(output_name(e), e.dtype, e.nullable) for e in exprs))
    except PlanError as err:
        raise PlanError(f"{type(node).__name__}: {err}") from None


@dataclass(frozen=True)
class Scan(Relation):
    """Read ``columns`` of ``table`` (a URI: ``s3://...`` or a local path) whose full schema
    is ``table_schema``; ``filter`` is applied exactly (and pushed to the reader)."""

    table: str
    table_schema: Schema
    columns: tuple[str, ...]
    filter: Expr | None = None

    def _validate(self) -> None:
        check(isinstance(self.table, str) and self.table != "", self, "table must be named")
        for c in self.columns:
            self.table_schema.field(c)
        check_refs(self, (self.filter,), self.table_schema)
        if self.filter is not None:
            check(self.filter.dtype == BOOL, self, "filter must be bool")

    def _schema(self) -> Schema:
        return self.table_schema.select(self.columns)


@dataclass(frozen=True)
class Values(Relation):
    """A literal table (Spark's ``LocalRelation``)."""

    table_schema: Schema
    rows: tuple[tuple[Literal, ...], ...] = ()

    def _validate(self) -> None:
        for row in self.rows:
            check(len(row) == len(self.table_schema), self, "row width differs from schema")
            for lit, f in zip(row, self.table_schema, strict=True):
                check(isinstance(lit, Literal), self, "rows hold Literals")
                check(lit.dtype == f.dtype or lit.value is None, self,
                      f"{f.name}: literal type {lit.dtype} differs from {f.dtype}")

    def _schema(self) -> Schema:
        return self.table_schema


@dataclass(frozen=True)
class Filter(Relation):
    """Rows of ``child`` where ``condition`` is true (null counts as false)."""

    child: Relation
    condition: Expr

    def _validate(self) -> None:
        check_refs(self, (self.condition,), self.child.schema)
        check(self.condition.dtype == BOOL, self, "condition must be bool")

    def _schema(self) -> Schema:
        return self.child.schema


@dataclass(frozen=True)
class KeyFilter(Relation):
    """Rows of ``child`` whose every key value occurs among ``source``'s values of the
    matching ``source_keys`` entry (a null key never does): a runtime filter. Below one input
    of an equi-join on ``keys = source_keys`` it drops only rows the join drops too (each key
    is tested on its own, so rows passing may still not match). It may also pass rows
    through untested (when too few would be dropped), so a plan must not depend on it."""

    child: Relation
    keys: tuple[Expr, ...]
    source: Relation
    source_keys: tuple[Expr, ...]

    def _validate(self) -> None:
        check(len(self.keys) == len(self.source_keys) > 0, self, "needs matching keys")
        check_refs(self, self.keys, self.child.schema)
        check_refs(self, self.source_keys, self.source.schema)
        for k, s in zip(self.keys, self.source_keys, strict=True):
            check(k.dtype == s.dtype, self, f"key types differ: {k.dtype} vs {s.dtype}")

    def _schema(self) -> Schema:
        return self.child.schema


@dataclass(frozen=True)
class Project(Relation):
    """One output column per expression (named by its Alias or ColumnRef)."""

    child: Relation
    exprs: tuple[Expr, ...]

    def _validate(self) -> None:
        check_refs(self, self.exprs, self.child.schema)
        self.schema  # noqa: B018 (names the output columns, or raises)

    def _schema(self) -> Schema:
        return _named(self, self.exprs)


class AggregateMode(Enum):
    PARTIAL = "partial"
    FINAL = "final"
    COMPLETE = "complete"


def state_fields(agg: Alias) -> tuple[Field, ...]:
    """The intermediate (partial) columns of one named aggregate."""
    fn = agg.child
    name = agg.name
    if isinstance(fn, Count) and fn.distinct:
        raise UnsupportedError("Count", "DISTINCT in a partial/final aggregate")
    if isinstance(fn, Avg):
        return (Field(f"{name}#sum", rules.sum_type(fn.child.dtype)),
                Field(f"{name}#count", pa.int64(), False))
    if isinstance(fn, Count):
        return (Field(name, pa.int64(), False),)
    if isinstance(fn, Sum | Min | Max):
        return (Field(name, fn.dtype),)
    raise UnsupportedError(type(fn).__name__, "no partial aggregation state")


@dataclass(frozen=True)
class Aggregate(Relation):
    """Group by ``keys`` and compute ``aggregates`` (each ``Alias(AggregateFunction)``).

    ``complete`` computes results from raw input. ``partial`` outputs keys plus each
    aggregate's state columns (:func:`state_fields`); ``final`` takes those as input and
    outputs results. Without keys the output is one row, even over no input."""

    child: Relation
    keys: tuple[Expr, ...]
    aggregates: tuple[Alias, ...]
    mode: AggregateMode = AggregateMode.COMPLETE

    def _validate(self) -> None:
        self._coerce_enum("mode", AggregateMode)
        for a in self.aggregates:
            check(isinstance(a, Alias) and isinstance(a.child, AggregateFunction), self,
                  "aggregates must be Alias(AggregateFunction)")
        check_refs(self, self.keys, self.child.schema)
        if self.mode is AggregateMode.FINAL:
            expected = self.keys_schema().fields + self._state_schema()
            for f in expected:
                actual = self.child.schema.field(f.name)
                check(actual.dtype == f.dtype, self, f"state {f.name!r} is {actual.dtype}, "
                      f"expected {f.dtype}")
        else:
            check_refs(self, self.aggregates, self.child.schema)
        self._schema()

    def keys_schema(self) -> Schema:
        return _named(self, self.keys)

    def _state_schema(self) -> tuple[Field, ...]:
        return tuple(f for a in self.aggregates for f in state_fields(a))

    def _schema(self) -> Schema:
        keys = self.keys_schema().fields
        if self.mode is AggregateMode.PARTIAL:
            return Schema(keys + self._state_schema())
        return Schema(keys + _named(self, self.aggregates).fields)


class JoinType(Enum):
    INNER = "inner"
    LEFT = "left"
    RIGHT = "right"
    FULL = "full"
    SEMI = "semi"
    ANTI = "anti"


@dataclass(frozen=True)
class Join(Relation):
    """Equi-join on ``left_keys[i] = right_keys[i]`` (null keys never match) plus an optional
    residual ``condition`` over both sides' columns. ``semi``/``anti`` output the left side."""

    left: Relation
    right: Relation
    how: JoinType
    left_keys: tuple[Expr, ...] = ()
    right_keys: tuple[Expr, ...] = ()
    condition: Expr | None = None

    def _validate(self) -> None:
        self._coerce_enum("how", JoinType)
        check(len(self.left_keys) == len(self.right_keys), self, "key counts differ")
        check_refs(self, self.left_keys, self.left.schema)
        check_refs(self, self.right_keys, self.right.schema)
        for lk, rk in zip(self.left_keys, self.right_keys, strict=True):
            check(lk.dtype == rk.dtype, self, f"key types differ: {lk.dtype} vs {rk.dtype}")
        both = Schema(self.left.schema.fields + self.right.schema.fields)  # names unique
        check_refs(self, (self.condition,), both)
        self._schema()

    def _schema(self) -> Schema:
        left, right = self.left.schema, self.right.schema
        how = self.how
        if how in (JoinType.SEMI, JoinType.ANTI):
            return left
        if how in (JoinType.RIGHT, JoinType.FULL):
            left = left.nullable()
        if how in (JoinType.LEFT, JoinType.FULL):
            right = right.nullable()
        return Schema(left.fields + right.fields)


@dataclass(frozen=True)
class SortKey(Node):
    """One sort key; ``nulls_first`` defaults as in Spark (ASC NULLS FIRST, DESC NULLS LAST)."""

    expr: Expr
    ascending: bool = True
    nulls_first: bool | None = None

    def _validate(self) -> None:
        if self.nulls_first is None:
            self._set("nulls_first", self.ascending)


@dataclass(frozen=True)
class Sort(Relation):
    """Total order by ``keys`` (NaN sorts above every other float, as in Spark)."""

    child: Relation
    keys: tuple[SortKey, ...]

    def _validate(self) -> None:
        check(len(self.keys) > 0, self, "needs at least one key")
        check_refs(self, tuple(k.expr for k in self.keys), self.child.schema)

    def _schema(self) -> Schema:
        return self.child.schema


@dataclass(frozen=True)
class Limit(Relation):
    """Rows ``offset .. offset + limit`` of ``child`` in its order."""

    child: Relation
    limit: int
    offset: int = 0

    def _validate(self) -> None:
        check(self.limit >= 0 and self.offset >= 0, self, "limit and offset must be >= 0")

    def _schema(self) -> Schema:
        return self.child.schema


@dataclass(frozen=True)
class TopN(Relation):
    """``Limit(Sort(child, keys), limit, offset)`` as one operator."""

    child: Relation
    keys: tuple[SortKey, ...]
    limit: int
    offset: int = 0

    def _validate(self) -> None:
        check(len(self.keys) > 0, self, "needs at least one key")
        check(self.limit >= 0 and self.offset >= 0, self, "limit and offset must be >= 0")
        check_refs(self, tuple(k.expr for k in self.keys), self.child.schema)

    def _schema(self) -> Schema:
        return self.child.schema


@dataclass(frozen=True)
class Union(Relation):
    """``UNION ALL`` by position; names and nullability of the output come from all inputs."""

    children: tuple[Relation, ...]

    def _validate(self) -> None:
        check(len(self.children) >= 1, self, "needs at least one input")
        first = self.children[0].schema
        for c in self.children[1:]:
            check(len(c.schema) == len(first), self, "inputs differ in width")
            for a, b in zip(first, c.schema, strict=True):
                check(a.dtype == b.dtype, self, f"column {a.name!r}: {a.dtype} vs {b.dtype}")

    def _schema(self) -> Schema:
        first = self.children[0].schema
        nullable = [any(c.schema.fields[i].nullable for c in self.children)
                    for i in range(len(first))]
        return Schema(tuple(Field(f.name, f.dtype, n) for f, n in zip(first, nullable,
                                                                        strict=True)))


@dataclass(frozen=True)
class Distinct(Relation):
    """Distinct rows of ``child`` (nulls equal to each other)."""

    child: Relation

    def _schema(self) -> Schema:
        return self.child.schema


@dataclass(frozen=True)
class Expand(Relation):
    """Each input row yields one output row per projection (Spark's Expand, for grouping
    sets and distinct aggregates); all projections share ``names`` and types."""

    child: Relation
    projections: tuple[tuple[Expr, ...], ...]
    names: tuple[str, ...]

    def _validate(self) -> None:
        check(len(self.projections) > 0, self, "needs at least one projection")
        for p in self.projections:
            check(len(p) == len(self.names), self, "projection width differs from names")
            check_refs(self, p, self.child.schema)
            for e, ref in zip(p, self.projections[0], strict=True):
                ok = e.dtype == ref.dtype or pa.types.is_null(e.dtype)
                check(ok, self, f"projection types differ: {e.dtype} vs {ref.dtype}")
        self._schema()

    def _schema(self) -> Schema:
        fields = []
        for i, name in enumerate(self.names):
            exprs = [p[i] for p in self.projections]
            dtype = next((e.dtype for e in exprs if not pa.types.is_null(e.dtype)), pa.null())
            fields.append(Field(name, dtype, any(e.nullable for e in exprs)))
        return Schema(tuple(fields))


@dataclass(frozen=True)
class Window(Relation):
    """Append one column per ``Alias(WindowExpr)``, computed per ``partition_by`` group (null
    keys form their own group) in ``order_by`` order; rows equal on every order key are peers.
    Output rows come grouped by partition, in window order within each."""

    child: Relation
    functions: tuple[Alias, ...]
    partition_by: tuple[Expr, ...] = ()
    order_by: tuple[SortKey, ...] = ()

    def _validate(self) -> None:
        check(len(self.functions) > 0, self, "needs at least one function")
        for f in self.functions:
            check(isinstance(f, Alias) and isinstance(f.child, WindowExpr), self,
                  "functions must be Alias(WindowExpr)")
            fn, frame = f.child.function, f.child.frame
            if isinstance(fn, RankingFunction | OffsetValue):
                check(len(self.order_by) > 0, self,
                      f"{type(fn).__name__} needs an ordered window")
            if frame.has_offsets:
                keys = [k.expr.dtype for k in self.order_by]
                check(len(keys) == 1 and pa.types.is_integer(keys[0]), self,
                      f"a RANGE frame with offsets needs one integral order key, got {keys}")
        exprs = self.functions + self.partition_by + tuple(k.expr for k in self.order_by)
        check_refs(self, exprs, self.child.schema)
        self._schema()

    def _schema(self) -> Schema:
        return Schema(self.child.schema.fields + _named(self, self.functions).fields)


class Partitioning(Enum):
    HASH = "hash"
    SINGLE = "single"
    BROADCAST = "broadcast"
    ROUND_ROBIN = "round_robin"


@dataclass(frozen=True)
class Exchange(Relation):
    """A stage boundary: redistribute ``child`` into ``num_partitions`` partitions."""

    child: Relation
    partitioning: Partitioning
    keys: tuple[Expr, ...] = ()
    num_partitions: int = 1

    def _validate(self) -> None:
        self._coerce_enum("partitioning", Partitioning)
        check(self.num_partitions >= 1, self, "num_partitions must be >= 1")
        if self.partitioning is Partitioning.HASH:
            check(len(self.keys) > 0, self, "hash partitioning needs keys")
        else:
            check(not self.keys, self, f"{self.partitioning.value} takes no keys")
        if self.partitioning is Partitioning.SINGLE:
            check(self.num_partitions == 1, self, "single partitioning has one partition")
        check_refs(self, self.keys, self.child.schema)

    def _schema(self) -> Schema:
        return self.child.schema

