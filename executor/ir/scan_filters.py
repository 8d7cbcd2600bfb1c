"""Filters into scans: ``Filter(Project-of-renames(Scan))`` becomes ``Project(Scan(filter))``.

Spark's optimized logical plan keeps a table's filter in a ``Filter`` above the relation (its
physical planner pushes it into the file scan later); the frontend translates the relation as
a ``Project`` renaming table columns to ``name#id`` over a ``Scan``. Moving the condition into
``Scan.filter`` (rewritten to the table's column names) lets the reader prune row groups by
their statistics (wjio for ``s3://`` tables, ``pyarrow.dataset`` for local ones) and apply it
while decoding. ``Scan.filter`` means exactly what ``Filter`` means (rows where the condition
is true; null counts as false), so the rewrite changes no result.
"""

from __future__ import annotations

from typing import Any

from executor.ir import relations as rel
from executor.ir.expressions import Alias, ColumnRef, Expr
from executor.ir.logic import And
from executor.ir.node import transform_up


def push_filters_into_scans(plan: rel.Relation) -> rel.Relation:
    """``plan`` with every filter directly over a scan (through a renaming ``Project``) merged
    into that scan, subquery plans included; other nodes are kept (same objects)."""
    out = transform_up(plan, lambda n: _merged(n) or n if isinstance(n, rel.Filter) else n)
    assert isinstance(out, rel.Relation)
    return out


def _merged(node: rel.Filter) -> rel.Relation | None:
    """The filter merged into the scan under it, or None when the child is not a scan."""
    child = node.child
    if isinstance(child, rel.Scan):
        return _with_filter(child, node.condition)
    if not (isinstance(child, rel.Project) and isinstance(child.child, rel.Scan)):
        return None
    scan = child.child
    columns: dict[str, ColumnRef] = {}
    for e in child.exprs:
        inner = e.child if isinstance(e, Alias) else e
        if not isinstance(inner, ColumnRef):
            return None  # a computed column: the condition stays above it
        columns[e.name if isinstance(e, Alias) else inner.name] = inner
    condition = _renamed(node.condition, columns)
    if condition is None:
        return None
    return child.replace(child=_with_filter(scan, condition))


def _with_filter(scan: rel.Scan, condition: Expr) -> rel.Scan:
    merged = condition if scan.filter is None else And(scan.filter, condition)
    return scan.replace(filter=merged)


def _renamed(e: Any, columns: dict[str, ColumnRef]) -> Any:
    """``e`` over the scan's column names, or None if it references anything else."""
    if isinstance(e, ColumnRef):
        return columns.get(e.name)
    if isinstance(e, tuple):
        items = tuple(_renamed(v, columns) for v in e)
        return None if any(i is None and v is not None for i, v in zip(items, e, strict=True)) \
            else items
    if not isinstance(e, Expr):
        return e
    fields = e.field_values()
    changes = {}
    for k, v in fields.items():
        if isinstance(v, rel.Relation):
            return None  # a subquery plan inside the condition: not rewritten
        new = _renamed(v, columns)
        if new is None and v is not None:
            return None
        if new is not v:
            changes[k] = new
    return e.replace(**changes) if changes else e
