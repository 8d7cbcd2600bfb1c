"""Subquery expressions: an expression whose value is computed by a relational plan.

Only *uncorrelated* scalar subqueries exist here: the plan references no column of the
enclosing query, so it is computed once per query (:mod:`executor.subqueries` runs every
subquery first and :func:`substitute` puts the resulting :class:`Literal` in its place). The
subquery's plan is a separate scope: it is not a child expression of the node (its columns are
not references of the enclosing relation) nor an input of the relation holding it.

This module sits above :mod:`.relations` because the node holds a :class:`Relation`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from executor.ir.expressions import Expr
from executor.ir.node import Node, check
from executor.ir.relations import Relation
from executor.ir.types import check_type


@dataclass(frozen=True)
class ScalarSubquery(Expr):
    """The single value of ``plan``'s single column: null for no rows, an error for more
    than one (Spark's ``[SCALAR_SUBQUERY_TOO_MANY_ROWS]``). Always nullable (no rows)."""

    plan: Relation
    type: pa.DataType
    is_nullable: bool = True

    def _validate(self) -> None:
        check(isinstance(self.plan, Relation), self, "plan must be a Relation")
        check_type(self.type, "ScalarSubquery")
        fields = self.plan.schema.fields
        check(len(fields) == 1, self, f"plan must have one column, it has {len(fields)}")
        check(fields[0].dtype == self.type, self,
              f"plan's column is {fields[0].dtype}, the subquery is typed {self.type}")
        check(self.is_nullable is True, self,
              "a scalar subquery is nullable (a plan returning no rows gives null)")

    @property
    def dtype(self) -> pa.DataType:
        return self.type

    @property
    def nullable(self) -> bool:
        return self.is_nullable

    @property
    def children(self) -> tuple[Expr, ...]:
        return ()  # the plan is its own scope, not an operand


def subqueries_of(relation: Relation) -> Iterator[ScalarSubquery]:
    """The subqueries in ``relation``'s own expressions (not its inputs', not nested ones)."""
    for value in relation.field_values().values():
        yield from _in_value(value)


def _in_value(value: Any) -> Iterator[ScalarSubquery]:
    if isinstance(value, ScalarSubquery):
        yield value
    elif isinstance(value, Relation):
        return  # an input: visited as its own relation
    elif isinstance(value, Node):
        for v in value.field_values().values():
            yield from _in_value(v)
    elif isinstance(value, tuple):
        for v in value:
            yield from _in_value(v)


def all_subqueries(plan: Relation) -> Iterator[ScalarSubquery]:
    """Every subquery in ``plan``, nested ones included, each after those in its own plan
    (the order in which they can be computed)."""
    for node in plan.walk():
        for sq in subqueries_of(node):
            yield from all_subqueries(sq.plan)
            yield sq


def substitute(plan: Relation, value: Callable[[ScalarSubquery], Expr]) -> Relation:
    """``plan`` with every (outermost) subquery replaced by ``value(subquery)``; nodes without
    subqueries are kept as they are (same objects), the others rebuilt and validated again."""
    out = _rewrite(plan, value)
    assert isinstance(out, Relation)
    return out


def _rewrite(node: Any, value: Callable[[ScalarSubquery], Expr]) -> Any:
    if isinstance(node, ScalarSubquery):
        new = value(node)
        check(new.dtype == node.dtype, "ScalarSubquery",
              f"replacement is {new.dtype}, the subquery is typed {node.dtype}")
        return new
    if isinstance(node, tuple):
        items = tuple(_rewrite(v, value) for v in node)
        return node if all(a is b for a, b in zip(items, node, strict=True)) else items
    if not isinstance(node, Node):
        return node
    fields = node.field_values()
    changes = {k: new for k, v in fields.items() if (new := _rewrite(v, value)) is not v}
    return node.replace(**changes) if changes else node
