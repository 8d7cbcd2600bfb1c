"""Spark types and literal values (as ``TreeNode.toJSON`` encodes them) -> IR types and values.

Spark's JSON type names: atomic types are strings (``"long"``, ``"decimal(15,2)"``), complex
ones objects. Only types the IR has an exact Arrow counterpart for are translated; anything
else raises :class:`UnsupportedError`, which makes the query fall back to Spark.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from typing import Any

import pyarrow as pa

from executor.errors import UnsupportedError
from executor.ir import types as irt

_ATOMIC: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "byte": pa.int8(),
    "short": pa.int16(),
    "integer": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "string": pa.string(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "void": pa.null(),
    # Spark's TIMESTAMP is an instant (shown in the session zone), TIMESTAMP_NTZ a local time.
    "timestamp": pa.timestamp("us", tz="UTC"),
    "timestamp_ntz": pa.timestamp("us"),
}
_DECIMAL = re.compile(r"decimal\((\d+),\s*(\d+)\)")


def arrow_type(spark_type: Any) -> pa.DataType:
    """The IR (Arrow) type of a Spark JSON type; :class:`UnsupportedError` if there is none."""
    if isinstance(spark_type, str):
        if spark_type in _ATOMIC:
            return _ATOMIC[spark_type]
        m = _DECIMAL.fullmatch(spark_type)
        if m:
            return irt.decimal(int(m.group(1)), int(m.group(2)))
        # char(n)/varchar(n) columns are strings to Spark's optimizer but pad/check on write;
        # collated strings compare differently: neither is translated.
    kind = spark_type.get("type") if isinstance(spark_type, dict) else spark_type
    raise UnsupportedError("type", f"Spark type {kind} has no IR counterpart")


def literal_value(value: Any, t: pa.DataType) -> Any:
    """The Python value of a ``Literal`` whose JSON ``value`` string is ``value``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise UnsupportedError("Literal", f"unexpected value encoding {value!r}")
    if pa.types.is_boolean(t):
        if value not in ("true", "false"):
            raise UnsupportedError("Literal", f"boolean value {value!r}")
        return value == "true"
    if pa.types.is_integer(t):
        return int(value)
    if pa.types.is_floating(t):
        # Scala's Double.toString: "1.5", "1.0E10", "NaN", "Infinity"; Python float() reads all
        # of them exactly (both are shortest round-trip renderings).
        return float(value)
    if pa.types.is_decimal(t):
        d = decimal.Decimal(value)
        if d.as_tuple().exponent != -t.scale:
            d = d.quantize(decimal.Decimal(1).scaleb(-t.scale))  # exact: only adds zeros
            if d != decimal.Decimal(value):
                raise UnsupportedError("Literal", f"{value} is not exact at {t}")
        return d
    if pa.types.is_string(t):
        return value
    if pa.types.is_date32(t):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise UnsupportedError("Literal", f"date value {value!r}") from None
    # binary ("[B@5479c483") and timestamps (rendered in the session zone) are not recoverable
    # exactly from the JSON.
    raise UnsupportedError("Literal", f"{t} literal {value!r} cannot be read from the JSON")
