"""Arrow types as the IR uses them: JSON encoding, fields, schemas and type predicates.

The IR uses Spark's types mapped to Arrow: ``bool``, ``int8..int64``, ``float32/64``,
``decimal128(p, s)`` (p <= 38), ``string``, ``binary``, ``date32``, ``timestamp(us, tz)``
(Spark's TIMESTAMP is ``tz="UTC"``, TIMESTAMP_NTZ is ``tz=None``) and ``null``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from executor.errors import PlanError
from executor.ir.node import Node, check

MAX_PRECISION = 38

_SIMPLE: dict[str, pa.DataType] = {
    "null": pa.null(),
    "bool": pa.bool_(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "binary": pa.binary(),
    "date32": pa.date32(),
}
_SIMPLE_NAMES = {v: k for k, v in _SIMPLE.items()}


def type_to_json(t: pa.DataType) -> dict[str, Any]:
    """``{"type": "int64"}``, ``{"type": "decimal128", "precision": 15, "scale": 2}``..."""
    if t in _SIMPLE_NAMES:
        return {"type": _SIMPLE_NAMES[t]}
    if pa.types.is_decimal128(t):
        return {"type": "decimal128", "precision": t.precision, "scale": t.scale}
    if pa.types.is_timestamp(t) and t.unit == "us":
        return {"type": "timestamp", "unit": "us", "tz": t.tz}
    raise PlanError(f"Arrow type {t} is not an IR type")


def type_from_json(d: dict[str, Any]) -> pa.DataType:
    name = d.get("type")
    if name in _SIMPLE:
        return _SIMPLE[name]
    if name == "decimal128":
        return decimal(d["precision"], d["scale"])
    if name == "timestamp":
        check(d.get("unit") == "us", "type", f"timestamp unit must be 'us': {d}")
        return pa.timestamp("us", tz=d.get("tz"))
    raise PlanError(f"unknown IR type {d!r}")


def check_type(t: Any, where: str) -> pa.DataType:
    """Validate that ``t`` is an IR type (raises :class:`PlanError` otherwise)."""
    if not isinstance(t, pa.DataType):
        raise PlanError(f"{where}: expected a pyarrow DataType, got {t!r}")
    type_to_json(t)
    return t


def decimal(precision: int, scale: int) -> pa.DataType:
    check(1 <= precision <= MAX_PRECISION, "decimal", f"precision {precision} not in 1..38")
    check(0 <= scale <= precision, "decimal", f"scale {scale} not in 0..{precision}")
    return pa.decimal128(precision, scale)


def is_integer(t: pa.DataType) -> bool:
    return pa.types.is_signed_integer(t)


def is_float(t: pa.DataType) -> bool:
    return pa.types.is_floating(t)


def is_decimal(t: pa.DataType) -> bool:
    return pa.types.is_decimal(t)


def is_numeric(t: pa.DataType) -> bool:
    return is_integer(t) or is_float(t) or is_decimal(t)


def is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t)


def is_orderable(t: pa.DataType) -> bool:
    return not pa.types.is_null(t)


@dataclass(frozen=True)
class Field(Node):
    """A named, typed column of a relation's output."""

    name: str
    dtype: pa.DataType
    nullable: bool = True

    def _validate(self) -> None:
        check(isinstance(self.name, str) and self.name != "", self, "name must be non-empty")
        check_type(self.dtype, f"Field {self.name!r}")

    def to_arrow(self) -> pa.Field:
        return pa.field(self.name, self.dtype, self.nullable)


@dataclass(frozen=True)
class Schema(Node):
    """The ordered, uniquely named output columns of a relation."""

    fields: tuple[Field, ...]

    def _validate(self) -> None:
        names = [f.name for f in self.fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        check(not dupes, self, f"duplicate column names {dupes}")

    @classmethod
    def of(cls, *fields: Field | tuple) -> Schema:
        return cls(tuple(f if isinstance(f, Field) else Field(*f) for f in fields))

    @classmethod
    def from_arrow(cls, schema: pa.Schema) -> Schema:
        return cls(tuple(Field(f.name, f.type, f.nullable) for f in schema))

    def to_arrow(self) -> pa.Schema:
        return pa.schema([f.to_arrow() for f in self.fields])

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @functools.cached_property
    def _by_name(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    def __iter__(self) -> Iterator[Field]:  # type: ignore[override]
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def field(self, name: str) -> Field:
        found = self._by_name.get(name)
        if found is not None:
            return found
        raise PlanError(f"no column {name!r} in schema ({', '.join(self.names)})")

    def index(self, name: str) -> int:
        for i, f in enumerate(self.fields):
            if f.name == name:
                return i
        raise PlanError(f"no column {name!r} in schema ({', '.join(self.names)})")

    def select(self, names: Iterable[str]) -> Schema:
        return Schema(tuple(self.field(n) for n in names))

    def nullable(self) -> Schema:
        """The same columns, all nullable (the outer side of an outer join)."""
        return Schema(tuple(Field(f.name, f.dtype, True) for f in self.fields))
