"""Projection: which columns a scan returns, which it must decode, and which chunks they are.

A requested column is a top-level name (file or partition column) or a dotted path into a
struct (``"s.x"``), as in ``pyarrow.parquet.read_table``; a dotted path returns the struct
with only the named children. Decoding additionally needs every column the filter references.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from wjio import errors


@dataclass(frozen=True)
class Projection:
    output: pa.Schema
    """The schema of every batch the scan yields."""
    read_columns: list[str]
    """Column selections handed to pyarrow's decoder (file columns only)."""
    chunk_columns: list[int]
    """Indices of the Parquet leaf columns (column chunks) those selections cover."""


def plan_projection(
    schema: pa.Schema,
    partition_names: Sequence[str],
    parquet_schema: pq.ParquetSchema | None,
    columns: Sequence[str] | None,
    filter_columns: set[str],
    where: str,
) -> Projection:
    file_names = [n for n in schema.names if n not in partition_names]
    if columns is None:
        requested = list(schema.names)
    else:
        if isinstance(columns, str):
            raise TypeError(f"columns must be a list of names, got the string {columns!r}")
        requested = list(columns)
    by_top: dict[str, list[list[str]] | None] = {}  # None = whole column
    for name in requested:
        top, *rest = name.split(".")
        if top not in schema.names or (rest and not _has_path(schema.field(top).type, rest)):
            raise errors.ColumnNotFoundError(
                f"{where}: no column {name!r}; available columns: {', '.join(schema.names)}",
                uri=where,
            )
        if not rest:
            by_top[top] = None
        elif by_top.get(top, []) is not None:
            by_top.setdefault(top, []).append(rest)
    output = pa.schema(
        [
            schema.field(top) if paths is None else _prune(schema.field(top), paths)
            for top, paths in by_top.items()
        ]
    )
    selections: dict[str, None] = {}
    for top, paths in by_top.items():
        if top in file_names and top not in filter_columns:
            for sel in [top] if paths is None else [".".join([top, *p]) for p in paths]:
                selections[sel] = None
    for name in file_names:  # schema order keeps decoding deterministic
        if name in filter_columns:
            selections[name] = None
    read_columns = list(selections)
    chunk_columns = _leaf_indices(parquet_schema, read_columns) if parquet_schema else []
    return Projection(output, read_columns, chunk_columns)


def _has_path(t: pa.DataType, path: list[str]) -> bool:
    for part in path:
        if not pa.types.is_struct(t) or t.get_field_index(part) < 0:
            return False
        t = t.field(part).type
    return True


def _prune(field: pa.Field, paths: list[list[str]]) -> pa.Field:
    if any(not p for p in paths):
        return field
    t = field.type
    children = []
    for child in t:
        sub = [p[1:] for p in paths if p[0] == child.name]
        if sub:
            children.append(_prune(child, sub))
    return field.with_type(pa.struct(children))


def _leaf_indices(parquet_schema: pq.ParquetSchema, selections: list[str]) -> list[int]:
    out = []
    for i in range(len(parquet_schema)):
        path = parquet_schema.column(i).path
        if any(path == s or path.startswith(s + ".") for s in selections):
            out.append(i)
    return out
