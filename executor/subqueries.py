"""Computing uncorrelated scalar subqueries before the plan that uses them runs.

Each distinct subquery (nested ones first) runs once per query through the caller's runner, and
its result becomes a :class:`~executor.ir.Literal` substituted into the plan. The plan that
executes therefore holds no subqueries: operators and kernels never see one, and the plan stays
JSON-serialisable for process workers.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from executor.errors import InternalError, ScalarSubqueryTooManyRowsError
from executor.ir.expressions import Literal
from executor.ir.relations import Relation
from executor.ir.subqueries import ScalarSubquery, substitute

Runner = Callable[[Relation], pa.Table]


def resolve_subqueries(plan: Relation, run: Runner) -> Relation:
    """``plan`` with every scalar subquery replaced by its value, each computed by ``run``
    (once, however often it occurs). ``plan`` itself if it holds none."""
    values: dict[ScalarSubquery, Literal] = {}

    def value(sq: ScalarSubquery) -> Literal:
        if sq not in values:
            values[sq] = scalar_value(sq, run(substitute(sq.plan, value)))
        return values[sq]

    return substitute(plan, value)


def scalar_value(sq: ScalarSubquery, table: pa.Table) -> Literal:
    """The literal a subquery's result stands for: null for no rows, the value for one row;
    more rows raise ``[SCALAR_SUBQUERY_TOO_MANY_ROWS]`` (as Spark does)."""
    if table.num_columns != 1 or table.schema.field(0).type != sq.dtype:
        raise InternalError(f"scalar subquery typed {sq.dtype} produced {table.schema}")
    if table.num_rows > 1:
        raise ScalarSubqueryTooManyRowsError(
            "More than one row returned by a subquery used as an expression.")
    if table.num_rows == 0:
        return Literal(None, sq.dtype)
    scalar = table.column(0)[0]
    if not scalar.is_valid:
        return Literal(None, sq.dtype)
    if pa.types.is_timestamp(sq.dtype):  # Literal holds timestamps as ints in the type's unit
        return Literal(scalar.cast(pa.int64()).as_py(), sq.dtype)
    return Literal(scalar.as_py(), sq.dtype)
