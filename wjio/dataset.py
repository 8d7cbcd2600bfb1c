"""Which objects make a dataset, their Hive partition values, and their common schema.

Spark's conventions: files and directories whose name starts with ``_`` or ``.`` are not data
(``_SUCCESS``, ``_committed_*``, ``.crc``), unless the name holds ``=`` (a partition
directory); ``key=value/`` directories are partition columns whose types are inferred from
the values like Spark does (int, bigint, double, else string); ``__HIVE_DEFAULT_PARTITION__``
is null.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc

from wjio import errors
from wjio.footer import Footer
from wjio.store import ObjectInfo
from wjio.uri import S3Path

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
_INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class DataFile:
    info: ObjectInfo
    partition: tuple[tuple[str, str | None], ...] = ()
    """Raw Hive partition values, outermost directory first."""


def is_data_name(name: str) -> bool:
    return not (name.startswith(".") or (name.startswith("_") and "=" not in name))


def data_files(prefix: S3Path, listed: list[ObjectInfo]) -> list[DataFile]:
    """The data files under ``prefix`` with their partition values, in key order."""
    base = prefix.key if prefix.key.endswith("/") or not prefix.key else prefix.key + "/"
    out = []
    for info in sorted(listed, key=lambda i: i.path.key):
        rel = info.path.key[len(base) :] if info.path.key.startswith(base) else None
        if not rel or rel.endswith("/"):
            continue  # the prefix itself, or a directory marker
        parts = rel.split("/")
        if not all(is_data_name(p) for p in parts):
            continue
        partition = []
        for directory in parts[:-1]:
            key, eq, value = directory.partition("=")
            if eq and key:
                value = unquote(value)
                partition.append((unquote(key), None if value == HIVE_NULL else value))
        out.append(DataFile(info, tuple(partition)))
    return out


def partition_schema(files: list[DataFile], where: str) -> pa.Schema:
    """The partition columns shared by all files, with types inferred from their values."""
    if not files:
        return pa.schema([])
    keys = [k for k, _ in files[0].partition]
    for f in files:
        if [k for k, _ in f.partition] != keys:
            raise errors.SchemaMismatchError(
                f"{where}: partition directories differ: {files[0].info.path} has "
                f"{keys or 'none'}, {f.info.path} has {[k for k, _ in f.partition] or 'none'}",
                uri=where,
            )
    fields = []
    for i, key in enumerate(keys):
        values = [f.partition[i][1] for f in files]
        fields.append(pa.field(key, _infer_type([v for v in values if v is not None])))
    return pa.schema(fields)


def _infer_type(values: list[str]) -> pa.DataType:
    def all_parse(fn) -> bool:
        try:
            return all(fn(v) for v in values)
        except ValueError:
            return False

    if not values:
        return pa.string()
    if all_parse(lambda v: _INT32[0] <= int(v) <= _INT32[1]):
        return pa.int32()
    if all_parse(lambda v: int(v) is not None):
        return pa.int64()
    if all_parse(lambda v: not math.isnan(float(v)) or v.lower() == "nan"):
        return pa.float64()
    return pa.string()


def partition_values(file: DataFile, schema: pa.Schema) -> dict[str, pa.Scalar]:
    return {
        key: pa.scalar(raw, pa.string()).cast(schema.field(key).type)
        if raw is not None
        else pa.scalar(None, schema.field(key).type)
        for key, raw in file.partition
    }


def partition_expression(values: dict[str, pa.Scalar]) -> pc.Expression | None:
    expr = None
    for key, value in values.items():
        term = pc.field(key).is_null() if not value.is_valid else pc.field(key) == value
        expr = term if expr is None else expr & term
    return expr


def common_schema(footers: list[Footer], partitions: pa.Schema, where: str) -> pa.Schema:
    """The schema every file is read as: file columns, then partition columns.

    Files must agree on column names, order and types; nullability may differ (the result is
    nullable where any file is). Anything else is a :class:`SchemaMismatchError` naming the
    first file that disagrees and how.
    """
    if not footers:
        return partitions
    first = footers[0]
    base = first.schema.remove_metadata()
    nullable = {f.name: f.nullable for f in base}
    for other in footers[1:]:
        theirs = other.schema.remove_metadata()
        if theirs.names != base.names:
            raise errors.SchemaMismatchError(
                f"{where}: {other.path} has columns {theirs.names}, but {first.path} has "
                f"{base.names}",
                uri=str(other.path),
            )
        for mine, their in zip(base, theirs, strict=True):
            if not mine.type.equals(their.type):
                raise errors.SchemaMismatchError(
                    f"{where}: column {mine.name!r} is {mine.type} in {first.path} but "
                    f"{their.type} in {other.path}",
                    uri=str(other.path),
                )
            nullable[mine.name] = nullable[mine.name] or their.nullable
    fields = [f.with_nullable(nullable[f.name]) for f in base]
    for field in partitions:
        if field.name in nullable:
            raise errors.SchemaMismatchError(
                f"{where}: partition column {field.name!r} is also a column of {first.path}",
                uri=where,
            )
        fields.append(field)
    return pa.schema(fields)
