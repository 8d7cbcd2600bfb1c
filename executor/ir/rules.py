"""Spark's result-type rules (``DecimalPrecision``, ``Sum``, ``Average``), in one place.

With ``spark.sql.decimalOperations.allowPrecisionLoss=true`` (Spark's default) a decimal result
whose precision would exceed 38 is cut to 38, and its scale reduced so the integral digits
survive, but never below ``min(scale, 6)`` (``DecimalType.adjustPrecisionScale``).
"""

from __future__ import annotations

import pyarrow as pa

from executor.ir.types import MAX_PRECISION, decimal

MINIMUM_ADJUSTED_SCALE = 6


def adjust_precision_scale(precision: int, scale: int) -> pa.DataType:
    """``DecimalType.adjustPrecisionScale`` (allowPrecisionLoss=true)."""
    if precision <= MAX_PRECISION:
        return decimal(precision, scale)
    int_digits = precision - scale
    min_scale = min(scale, MINIMUM_ADJUSTED_SCALE)
    adjusted_scale = max(MAX_PRECISION - int_digits, min_scale)
    return decimal(MAX_PRECISION, adjusted_scale)


def bounded(precision: int, scale: int) -> pa.DataType:
    """``DecimalType.bounded``: both capped at 38."""
    return decimal(min(precision, MAX_PRECISION), min(scale, MAX_PRECISION))


def decimal_add(a: pa.Decimal128Type, b: pa.Decimal128Type) -> pa.DataType:
    """e1 + e2 and e1 - e2: scale max(s1, s2), precision max(p1-s1, p2-s2) + scale + 1."""
    scale = max(a.scale, b.scale)
    precision = max(a.precision - a.scale, b.precision - b.scale) + scale + 1
    return adjust_precision_scale(precision, scale)


def decimal_multiply(a: pa.Decimal128Type, b: pa.Decimal128Type) -> pa.DataType:
    """e1 * e2: precision p1 + p2 + 1, scale s1 + s2."""
    return adjust_precision_scale(a.precision + b.precision + 1, a.scale + b.scale)


def decimal_divide(a: pa.Decimal128Type, b: pa.Decimal128Type) -> pa.DataType:
    """e1 / e2: scale max(6, s1 + p2 + 1), precision p1 - s1 + s2 + scale."""
    scale = max(MINIMUM_ADJUSTED_SCALE, a.scale + b.precision + 1)
    precision = a.precision - a.scale + b.scale + scale
    return adjust_precision_scale(precision, scale)


def decimal_remainder(a: pa.Decimal128Type, b: pa.Decimal128Type) -> pa.DataType:
    """e1 % e2: precision min(p1-s1, p2-s2) + max(s1, s2), scale max(s1, s2)."""
    scale = max(a.scale, b.scale)
    precision = min(a.precision - a.scale, b.precision - b.scale) + scale
    return adjust_precision_scale(precision, scale)


def decimal_integral_divide(a: pa.Decimal128Type, b: pa.Decimal128Type) -> pa.DataType:
    """e1 div e2 on decimals: Spark returns a bigint."""
    return pa.int64()


def sum_type(t: pa.DataType) -> pa.DataType:
    """sum(): decimal(p, s) -> decimal(min(38, p + 10), s); integers -> int64; floats -> double."""
    if pa.types.is_decimal(t):
        return bounded(t.precision + 10, t.scale)
    if pa.types.is_integer(t):
        return pa.int64()
    return pa.float64()


def avg_type(t: pa.DataType) -> pa.DataType:
    """avg(): decimal(p, s) -> decimal(min(38, p + 4), min(38, s + 4)); anything else -> double."""
    if pa.types.is_decimal(t):
        return bounded(t.precision + 4, t.scale + 4)
    return pa.float64()


def integral_to_decimal(t: pa.DataType) -> pa.DataType:
    """The decimal type that holds every value of an integer type (``DecimalType.forType``)."""
    digits = {8: 3, 16: 5, 32: 10, 64: 20}[t.bit_width]
    return decimal(digits, 0)
