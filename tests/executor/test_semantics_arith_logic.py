"""Spark (ANSI on, Spark 4's default) integer arithmetic, division, three-valued logic and
comparisons with null/NaN. Expected values follow Spark's documented semantics."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from executor import ir
from executor.errors import ArithmeticOverflowError, DivideByZeroError
from executor.eval import evaluate

I64, I32, F64, B = pa.int64(), pa.int32(), pa.float64(), pa.bool_()


def ev(e, **cols):
    batch = pa.record_batch({k: v for k, v in cols.items()})
    return evaluate(e, batch).to_pylist()


def ref(name, t):
    return ir.ColumnRef(name, t)


@pytest.mark.parametrize("op", [ir.Add, ir.Subtract, ir.Multiply])
def test_integer_overflow_raises_under_ansi(op):
    a = pa.array([2**63 - 1 if op is not ir.Subtract else -(2**63)], I64)
    b = pa.array([2 if op is ir.Multiply else 1], I64)
    with pytest.raises(ArithmeticOverflowError, match=r"\[ARITHMETIC_OVERFLOW\]"):
        ev(op(ref("a", I64), ref("b", I64)), a=a, b=b)


def test_integer_overflow_wraps_without_ansi():
    got = ev(ir.Add(ref("a", I32), ref("b", I32), ansi=False),
             a=pa.array([2**31 - 1], I32), b=pa.array([1], I32))
    assert got == [-(2**31)]


def test_int_divide_returns_double():
    e = ir.Divide(ref("a", I32), ref("b", I32))
    assert e.dtype == F64
    assert ev(e, a=pa.array([7, -7, None], I32), b=pa.array([2, 2, 0], I32)) == [3.5, -3.5, None]


def test_divide_by_zero():
    e = ir.Divide(ref("a", I64), ref("b", I64))
    with pytest.raises(DivideByZeroError, match=r"\[DIVIDE_BY_ZERO\]"):
        ev(e, a=pa.array([1], I64), b=pa.array([0], I64))
    assert ev(e.replace(ansi=False), a=pa.array([1], I64), b=pa.array([0], I64)) == [None]
    with pytest.raises(DivideByZeroError):
        ev(ir.Divide(ref("a", F64), ref("b", F64)), a=pa.array([1.0]), b=pa.array([0.0]))


def test_integral_divide_and_remainder_follow_java():
    a, b = pa.array([7, -7, 7, -7], I64), pa.array([2, 2, -2, -2], I64)
    assert ev(ir.IntegralDivide(ref("a", I64), ref("b", I64)), a=a, b=b) == [3, -3, -3, 3]
    assert ev(ir.Remainder(ref("a", I64), ref("b", I64)), a=a, b=b) == [1, -1, 1, -1]
    assert ev(ir.Remainder(ref("a", I64), ref("b", I64)),
              a=pa.array([-(2**63)], I64), b=pa.array([-1], I64)) == [0]
    with pytest.raises(DivideByZeroError):
        ev(ir.Remainder(ref("a", I64), ref("b", I64)), a=pa.array([1], I64),
           b=pa.array([0], I64))


def test_negate_min_overflows():
    with pytest.raises(ArithmeticOverflowError):
        ev(ir.Negate(ref("a", I64)), a=pa.array([-(2**63)], I64))


T, F, N = True, False, None
ALL = [(x, y) for x in (T, F, N) for y in (T, F, N)]


def _bools(pairs):
    return (pa.array([p[0] for p in pairs], B), pa.array([p[1] for p in pairs], B))


def test_three_valued_and_or_not():
    a, b = _bools(ALL)
    and_expected = [T, F, N, F, F, F, N, F, N]
    or_expected = [T, T, T, T, F, N, T, N, N]
    assert ev(ir.And(ref("a", B), ref("b", B)), a=a, b=b) == and_expected
    assert ev(ir.Or(ref("a", B), ref("b", B)), a=a, b=b) == or_expected
    assert ev(ir.Not(ref("a", B)), a=pa.array([T, F, N], B)) == [F, T, N]


def test_comparisons_with_null():
    a, b = pa.array([1, None, None], I64), pa.array([None, 1, None], I64)
    for op in (ir.EqualTo, ir.LessThan, ir.GreaterThanOrEqual, ir.NotEqualTo):
        assert ev(op(ref("a", I64), ref("b", I64)), a=a, b=b) == [None, None, None]
    assert ev(ir.EqualNullSafe(ref("a", I64), ref("b", I64)), a=a, b=b) == [F, F, T]


def test_nan_semantics():
    nan = math.nan
    a = pa.array([nan, nan, 1.0, -0.0, math.inf])
    b = pa.array([nan, 1.0, nan, 0.0, nan])
    assert ev(ir.EqualTo(ref("a", F64), ref("b", F64)), a=a, b=b) == [T, F, F, T, F]
    assert ev(ir.GreaterThan(ref("a", F64), ref("b", F64)), a=a, b=b) == [F, T, F, F, F]
    assert ev(ir.LessThan(ref("a", F64), ref("b", F64)), a=a, b=b) == [F, F, T, F, T]
    assert ev(ir.LessThanOrEqual(ref("a", F64), ref("b", F64)), a=a, b=b) == [T, F, T, T, T]


def test_in_with_nulls():
    vals = (ir.Literal(1, I64), ir.Literal(None, I64))
    e = ir.In(ref("a", I64), vals)
    assert ev(e, a=pa.array([1, 2, None], I64)) == [T, None, None]
    e2 = ir.In(ref("a", I64), (ir.Literal(1, I64),))
    assert ev(e2, a=pa.array([1, 2, None], I64)) == [T, F, None]


def test_case_when_and_if_treat_null_condition_as_false():
    c = pa.array([T, F, N], B)
    e = ir.If(ref("c", B), ir.Literal(1, I64), ir.Literal(2, I64))
    assert ev(e, c=c) == [1, 2, 2]
    cw = ir.CaseWhen((ir.When(ref("c", B), ir.Literal(1, I64)),))
    assert ev(cw, c=c) == [1, None, None]
    assert ev(ir.Coalesce((ref("a", I64), ir.Literal(9, I64))),
              a=pa.array([None, 3], I64)) == [9, 3]


def test_is_null_keeps_nan_a_value():
    assert ev(ir.IsNull(ref("a", F64)), a=pa.array([math.nan, None])) == [F, T]


def test_strings_and_dates():
    import datetime as dt
    s = pa.array(["hello", "héllo", None])
    S = pa.string()
    assert ev(ir.Substring(ref("s", S), 2, 3), s=s) == ["ell", "éll", None]
    assert ev(ir.Substring(ref("s", S), 0, 2), s=s) == ["he", "hé", None]
    assert ev(ir.Substring(ref("s", S), -3, 2), s=s) == ["ll", "ll", None]
    assert ev(ir.Substring(ref("s", S), -10, 7), s=s) == ["he", "hé", None]
    assert ev(ir.Length(ref("s", S)), s=s) == [5, 5, None]
    assert ev(ir.Like(ref("s", S), "h_llo"), s=s) == [T, T, None]
    assert ev(ir.Like(ref("s", S), "%LL%"), s=s) == [F, F, None]
    assert ev(ir.Concat((ref("s", S), ir.Literal("!", S))), s=s) == ["hello!", "héllo!", None]
    assert ev(ir.Upper(ref("s", S)), s=pa.array(["ab", None])) == ["AB", None]
    d = pa.array([dt.date(1996, 2, 29), None], pa.date32())
    D = pa.date32()
    assert ev(ir.ExtractDatePart(ref("d", D), "year"), d=d) == [1996, None]
    assert ev(ir.DateAdd(ref("d", D), ir.Literal(1, I32)), d=d) == [dt.date(1996, 3, 1), None]
    assert ev(ir.DateDiff(ir.Literal(dt.date(1996, 3, 31), D), ref("d", D)), d=d) == [31, None]
