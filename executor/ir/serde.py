"""IR <-> JSON. The round trip is exact: ``from_json(to_json(n)) == n``.

Encoding: a node is ``{"node": ClassName, field: value...}``; an Arrow type is
``{"type": ...}`` (:func:`type_to_json`); enums are their string values; tuples are lists.
Literal values are encoded by type (decimals, dates as strings; NaN and infinities as
strings) so the JSON is valid strict JSON. The fingerprint is the sha256 of the canonical
form (sorted keys, no whitespace) with a format version, so it is stable across processes.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
import math
from enum import Enum
from typing import Any

import pyarrow as pa

from executor.errors import PlanError

# Importing the node modules registers every node class.
from executor.ir import (  # noqa: F401
    aggregates,
    expressions,
    functions,
    relations,
    subqueries,
    types,
    windows,
)
from executor.ir.expressions import Literal
from executor.ir.node import NODE_TYPES, Node
from executor.ir.types import type_from_json, type_to_json

FORMAT_VERSION = 1
_FLOAT_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode(value: Any) -> Any:
    """The JSON-able form of a node, type, enum, tuple or scalar."""
    if isinstance(value, Literal):
        return {"node": "Literal", "type": type_to_json(value.type),
                "value": _encode_literal(value.value, value.type)}
    if isinstance(value, Node):
        out: dict[str, Any] = {"node": type(value).__name__}
        for name, v in value.field_values().items():
            out[name] = encode(v)
        return out
    if isinstance(value, pa.DataType):
        return type_to_json(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    raise PlanError(f"cannot encode {type(value).__name__} {value!r} in the IR")


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(decode(v) for v in value)
    if isinstance(value, dict):
        if "node" in value:
            return _decode_node(value)
        if "type" in value:
            return type_from_json(value)
        raise PlanError(f"JSON object is neither a node nor a type: {sorted(value)}")
    return value


def _decode_node(d: dict[str, Any]) -> Node:
    name = d["node"]
    cls = NODE_TYPES.get(name)
    if cls is None:
        raise PlanError(f"unknown IR node type {name!r} (this executor knows "
                        f"{len(NODE_TYPES)} node types; was the plan written by a newer one?)")
    if cls is Literal:
        t = type_from_json(d["type"])
        return Literal(_decode_literal(d["value"], t), t)
    kwargs = {k: decode(v) for k, v in d.items() if k != "node"}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise PlanError(f"{name}: bad fields in JSON: {err}") from None


def _encode_literal(v: Any, t: pa.DataType) -> Any:
    if v is None:
        return None
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, bytes):
        return base64.b64encode(v).decode("ascii")
    return v


def _decode_literal(v: Any, t: pa.DataType) -> Any:
    if v is None:
        return None
    if pa.types.is_floating(t):
        return _FLOAT_SPECIAL[v] if isinstance(v, str) else float(v)
    if pa.types.is_decimal(t):
        return decimal.Decimal(v)
    if pa.types.is_date32(t):
        return dt.date.fromisoformat(v)
    if pa.types.is_binary(t):
        return base64.b64decode(v)
    return v


def to_dict(node: Node) -> dict[str, Any]:
    return {"format": FORMAT_VERSION, "plan": encode(node)}


def from_dict(d: dict[str, Any]) -> Node:
    version = d.get("format")
    if version != FORMAT_VERSION:
        raise PlanError(f"plan format {version!r} is not supported (expected {FORMAT_VERSION})")
    node = decode(d["plan"])
    if not isinstance(node, Node):
        raise PlanError("plan JSON does not hold a node")
    return node


def to_json(node: Node, *, indent: int | None = None) -> str:
    """JSON text of a node; canonical (sorted keys, compact) unless ``indent`` is given."""
    if indent is None:
        return json.dumps(to_dict(node), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return json.dumps(to_dict(node), sort_keys=True, indent=indent, allow_nan=False)


def from_json(text: str | bytes) -> Node:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise PlanError(f"plan is not valid JSON: {err}") from None
    return from_dict(data)


def fingerprint(node: Node) -> str:
    """sha256 (hex) of the canonical JSON: equal plans have equal fingerprints."""
    return hashlib.sha256(to_json(node).encode("utf-8")).hexdigest()
