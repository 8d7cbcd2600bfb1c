"""Spark's decimal rules (DecimalPrecision, allowPrecisionLoss=true; HALF_UP rounding).

Expected values are derived from Spark's documented rules by hand, not from Arrow, so these
tests can be replayed against a real Spark (same expressions, same inputs)."""

from __future__ import annotations

from decimal import Decimal as Dec

import pyarrow as pa
import pytest

from executor import ir
from executor.errors import DivideByZeroError, NumericOutOfRangeError
from executor.eval import evaluate
from executor.ir import rules


def dec(p, s):
    return pa.decimal128(p, s)


@pytest.mark.parametrize(("op", "a", "b", "expected"), [
    (ir.Multiply, (15, 2), (15, 2), (31, 4)),
    (ir.Add, (15, 2), (15, 2), (16, 2)),
    (ir.Subtract, (10, 2), (5, 4), (13, 4)),
    (ir.Divide, (38, 10), (38, 10), (38, 6)),
    (ir.Divide, (15, 2), (15, 2), (33, 18)),       # s = 2+15+1 = 18, p = 15-2+2+18 = 33
    (ir.Divide, (25, 2), (20, 0), (38, 15)),       # avg's sum/count: (46, 23) -> (38, 15)
    (ir.Multiply, (32, 4), (16, 2), (38, 6)),      # (49, 6): int digits 43 -> scale 6
    (ir.Multiply, (38, 10), (38, 10), (38, 6)),    # (77, 20) -> (38, 6)
    (ir.Add, (38, 0), (38, 38), (38, 6)),          # (77, 38) -> int 39 digits -> (38, 6)
    (ir.Remainder, (10, 2), (5, 4), (5, 4)),       # min(8, 1) + max(2, 4) = 5
])
def test_result_types(op, a, b, expected):
    e = op(ir.ColumnRef("a", dec(*a)), ir.ColumnRef("b", dec(*b)))
    assert e.dtype == dec(*expected)


def test_sum_and_avg_types():
    assert rules.sum_type(dec(15, 2)) == dec(25, 2)
    assert rules.sum_type(dec(30, 5)) == dec(38, 5)
    assert rules.avg_type(dec(15, 2)) == dec(19, 6)
    assert rules.avg_type(dec(36, 36)) == dec(38, 38)
    assert rules.avg_type(pa.int32()) == pa.float64()
    assert rules.sum_type(pa.int8()) == pa.int64()
    assert rules.sum_type(pa.float32()) == pa.float64()


def _eval(op, av, at, bv, bt, **kw):
    batch = pa.record_batch({"a": pa.array(av, dec(*at)), "b": pa.array(bv, dec(*bt))})
    e = op(ir.ColumnRef("a", dec(*at)), ir.ColumnRef("b", dec(*bt)), **kw)
    return evaluate(e, batch).to_pylist(), e.dtype


def test_multiply_exact():
    got, t = _eval(ir.Multiply, [Dec("12.34"), None], (15, 2), [Dec("-0.05"), Dec("1.00")],
                   (15, 2))
    assert t == dec(31, 4) and got == [Dec("-0.6170"), None]


def test_add_rounds_half_up_when_scale_is_cut():
    # decimal(38,0) + decimal(38,38) -> decimal(38,6): 1 + 0.0000005 -> 1.000001 (HALF_UP)
    got, _ = _eval(ir.Add, [Dec(1), Dec(1)], (38, 0),
                   [Dec("0.00000050000000000000000000000000000000"),
                    Dec("-0.00000150000000000000000000000000000000")], (38, 38))
    # 0.9999985 -> 0.999999 (HALF_UP; HALF_EVEN would give 0.999998)
    assert got == [Dec("1.000001"), Dec("0.999999")]


def test_divide_rounds_half_up():
    # decimal(15,2) / decimal(15,2) -> decimal(33,18)
    got, t = _eval(ir.Divide, [Dec("2.00"), Dec("-2.00"), Dec("1.00")], (15, 2),
                   [Dec("3.00"), Dec("3.00"), Dec("8.00")], (15, 2))
    assert t == dec(33, 18)
    assert got == [Dec("0.666666666666666667"), Dec("-0.666666666666666667"),
                   Dec("0.125000000000000000")]


def test_divide_38_10_scale_6():
    got, t = _eval(ir.Divide, [Dec("1.0000000000")], (38, 10), [Dec("3.0000000000")], (38, 10))
    assert t == dec(38, 6) and got == [Dec("0.333333")]


def test_divide_by_zero_ansi_raises_and_legacy_gives_null():
    with pytest.raises(DivideByZeroError, match=r"\[DIVIDE_BY_ZERO\]"):
        _eval(ir.Divide, [Dec("1.00")], (15, 2), [Dec("0.00")], (15, 2))
    got, _ = _eval(ir.Divide, [Dec("1.00"), None], (15, 2), [Dec("0.00"), Dec("0.00")], (15, 2),
                   ansi=False)
    assert got == [None, None]
    got, _ = _eval(ir.Divide, [None], (15, 2), [Dec("0.00")], (15, 2))  # null / 0: no error
    assert got == [None]


def test_overflow_ansi_raises_and_legacy_gives_null():
    big = Dec("9" * 38)
    with pytest.raises(NumericOutOfRangeError, match=r"\[NUMERIC_VALUE_OUT_OF_RANGE\]"):
        _eval(ir.Add, [big], (38, 0), [Dec(1)], (38, 0))
    got, t = _eval(ir.Add, [big, Dec(1)], (38, 0), [Dec(1), Dec(1)], (38, 0), ansi=False)
    assert t == dec(38, 0) and got == [None, Dec(2)]


def test_product_beyond_38_digits_rounds_twice_like_spark():
    # (38,10)*(38,10) -> (38,6). Exact product has 40 significant digits, so Spark first
    # rounds to 38 significant digits (MathContext(38, HALF_UP)), then to scale 6.
    a = Dec("1234567890.1234567890")
    b = Dec("1234567890.1234567890")
    got, t = _eval(ir.Multiply, [a], (38, 10), [b], (38, 10))
    exact = Dec(int(a.scaleb(10)) * int(b.scaleb(10))).scaleb(-20)
    assert t == dec(38, 6)
    assert got == [exact.quantize(Dec("1E-6"), rounding="ROUND_HALF_UP")]


def test_cast_decimal_rounds_half_up_and_checks_precision():
    batch = pa.record_batch({"a": pa.array([Dec("1.235"), Dec("-1.235"), Dec("99.995")],
                                           dec(5, 3))})
    e = ir.Cast(ir.ColumnRef("a", dec(5, 3)), dec(4, 2), ansi=False)
    assert evaluate(e, batch).to_pylist() == [Dec("1.24"), Dec("-1.24"), None]
    with pytest.raises(NumericOutOfRangeError):
        evaluate(e.replace(ansi=True), batch)


def test_cast_int_to_decimal():
    batch = pa.record_batch({"i": pa.array([123, -5, None], pa.int32())})
    e = ir.Cast(ir.ColumnRef("i", pa.int32()), dec(5, 2), ansi=False)
    assert evaluate(e, batch).to_pylist() == [Dec("123.00"), Dec("-5.00"), None]
    with pytest.raises(NumericOutOfRangeError):
        evaluate(ir.Cast(ir.ColumnRef("i", pa.int32()), dec(4, 2)), batch)


def test_cast_decimal_to_int_truncates():
    batch = pa.record_batch({"a": pa.array([Dec("1.99"), Dec("-1.99")], dec(5, 2))})
    e = ir.Cast(ir.ColumnRef("a", dec(5, 2)), pa.int32())
    assert evaluate(e, batch).to_pylist() == [1, -1]
