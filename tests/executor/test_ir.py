"""IR: validation on construction, immutability, JSON round trips, fingerprints, explain."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import math

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor import ir
from executor.errors import PlanError
from executor.ir import serde

I64 = pa.int64()
D152 = pa.decimal128(15, 2)
SCHEMA = ir.Schema.of(("a", I64), ("d", D152), ("s", pa.string()), ("dt", pa.date32()),
                      ("f", pa.float64()))
A = ir.ColumnRef("a", I64)
D = ir.ColumnRef("d", D152)
S = ir.ColumnRef("s", pa.string())
F = ir.ColumnRef("f", pa.float64())
DT = ir.ColumnRef("dt", pa.date32())


def sample_plan() -> ir.Relation:
    scan = ir.Scan("s3://bucket/t/", SCHEMA, ("a", "d", "s", "dt", "f"),
                   ir.GreaterThan(A, ir.Literal(5, I64)))
    proj = ir.Project(scan, (
        A, D, S, DT, F,
        ir.Alias(ir.Multiply(D, D), "dd"),
        ir.Alias(ir.CaseWhen((ir.When(ir.Like(S, "a%"), ir.Literal("x", pa.string())),),
                             ir.Literal(None, pa.string())), "c"),
        ir.Alias(ir.ExtractDatePart(DT, "year"), "y"),
        ir.Alias(ir.In(A, (ir.Literal(1, I64), ir.Literal(None, I64))), "i"),
        ir.Alias(ir.Cast(A, pa.decimal128(20, 0), ansi=False), "ac"),
    ))
    agg = ir.Aggregate(proj, (S,), (
        ir.Alias(ir.Sum(ir.ColumnRef("dd", pa.decimal128(31, 4))), "sdd"),
        ir.Alias(ir.Count((A,), distinct=True), "nd"),
        ir.Alias(ir.Avg(D), "ad"),
    ))
    other = ir.Values(ir.Schema.of(("k", pa.string())), ((ir.Literal("x", pa.string()),),))
    join = ir.Join(agg, other, "left", (S,), (ir.ColumnRef("k", pa.string()),),
                   ir.IsNotNull(ir.ColumnRef("sdd", pa.decimal128(38, 4))))
    ex = ir.Exchange(join, "hash", (S,), 4)
    return ir.TopN(ex, (ir.SortKey(ir.ColumnRef("ad", pa.decimal128(19, 6)), False),), 10, 2)


def test_nodes_are_frozen_and_value_equal():
    a1, a2 = ir.Add(A, A), ir.Add(A, A)
    assert a1 == a2 and hash(a1) == hash(a2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a1.left = A  # type: ignore[misc]
    assert a1.replace(ansi=False) != a1


@pytest.mark.parametrize("make", [
    lambda: ir.Add(A, D),                                   # types differ: plan must cast
    lambda: ir.Add(S, S),                                   # not numeric
    lambda: ir.And(A, A),                                   # not boolean
    lambda: ir.Literal(2**63, I64),                         # out of range
    lambda: ir.Literal(decimal.Decimal("1.5"), D152),       # wrong scale
    lambda: ir.Literal(1.1, pa.float32()),                  # not exact in float32
    lambda: ir.Filter(ir.Scan("t", SCHEMA, ("a",)), ir.EqualTo(D, D)),  # d not projected
    lambda: ir.Project(ir.Scan("t", SCHEMA, ("a",)), (ir.Add(A, A),)),  # unnamed
    lambda: ir.Scan("t", SCHEMA, ("a", "nope")),
    lambda: ir.Exchange(ir.Scan("t", SCHEMA, ("a",)), "hash", (), 4),
    lambda: ir.Join(ir.Scan("t", SCHEMA, ("a",)), ir.Scan("u", SCHEMA, ("a",)), "inner",
                    (A,), (A,)),                            # duplicate output names
    lambda: ir.Join(ir.Scan("t", SCHEMA, ("a",)), ir.Scan("u", SCHEMA, ("s",)), "sideways"),
    lambda: ir.Schema.of(("a", I64), ("a", I64)),
    lambda: ir.ColumnRef("x", pa.large_string()),           # not an IR type
])
def test_invalid_nodes_fail_on_construction(make):
    with pytest.raises(PlanError):
        make()


def test_reference_type_must_match_input():
    scan = ir.Scan("t", SCHEMA, ("a",))
    with pytest.raises(PlanError, match="int64"):
        ir.Filter(scan, ir.IsNull(ir.ColumnRef("a", pa.int32())))


def test_plan_json_round_trip_is_exact():
    plan = sample_plan()
    text = ir.to_json(plan)
    back = ir.from_json(text)
    assert back == plan
    assert ir.to_json(back) == text
    assert back.schema == plan.schema
    json.loads(text)  # strict JSON (no NaN tokens)


def test_fingerprint_is_stable_and_sensitive():
    plan = sample_plan()
    assert ir.fingerprint(plan) == ir.fingerprint(ir.from_json(ir.to_json(plan)))
    assert ir.fingerprint(plan) == ir.fingerprint(sample_plan())
    assert ir.fingerprint(plan.replace(limit=11)) != ir.fingerprint(plan)
    assert len(ir.fingerprint(plan)) == 64


def test_fingerprint_pinned():
    # Changing this value means persisted plans' fingerprints change: bump FORMAT_VERSION.
    plan = ir.Filter(ir.Scan("t", SCHEMA, ("a",)), ir.GreaterThan(A, ir.Literal(1, I64)))
    assert ir.to_json(plan).startswith('{"format":1,"plan":{"child":{"columns":["a"]')
    assert ir.fingerprint(plan) == serde.fingerprint(ir.from_json(ir.to_json(plan)))


def test_unknown_node_type_is_a_clear_error():
    text = ir.to_json(ir.Scan("t", SCHEMA, ("a",))).replace('"Scan"', '"FancyScan"')
    with pytest.raises(PlanError, match="unknown IR node type 'FancyScan'"):
        ir.from_json(text)
    with pytest.raises(PlanError, match="format"):
        ir.from_json('{"format": 99, "plan": {}}')


def test_explain_tree():
    text = ir.explain(sample_plan())
    lines = text.splitlines()
    assert lines[0] == "TopN 10 offset 2 [ad DESC NULLS LAST]"
    assert lines[1] == "  +- Exchange hash(4) [s]"
    assert "Join[left] on [s = k] condition=isnotnull(sdd)" in lines[2]
    assert "sum(dd) AS sdd" in text and "count(DISTINCT a) AS nd" in text
    assert lines[-1].strip() == "+- Values 1 rows [k]"
    assert "filter=(a > 5)" in text
    assert "decimal128(19, 6)" in ir.explain(sample_plan(), schema=True)


def test_sort_key_defaults_follow_spark():
    assert ir.SortKey(A).nulls_first is True
    assert ir.SortKey(A, ascending=False).nulls_first is False


# -- property-based round trips -------------------------------------------------------------

_types = st.sampled_from([pa.int8(), pa.int16(), pa.int32(), I64, pa.float32(), pa.float64(),
                          pa.bool_(), pa.string(), pa.binary(), pa.date32(),
                          pa.timestamp("us", tz="UTC"), pa.timestamp("us")]) | st.builds(
    lambda p, s: pa.decimal128(p, min(s, p)), st.integers(1, 38), st.integers(0, 38))


def _values(t: pa.DataType):
    if pa.types.is_integer(t):
        b = 2 ** (t.bit_width - 1)
        return st.integers(-b, b - 1)
    if t == pa.float32():
        return st.floats(width=32)
    if pa.types.is_floating(t):
        return st.floats(allow_nan=True, allow_infinity=True)
    if pa.types.is_boolean(t):
        return st.booleans()
    if pa.types.is_string(t):
        return st.text()
    if pa.types.is_binary(t):
        return st.binary()
    if pa.types.is_date32(t):
        return st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31))
    if pa.types.is_timestamp(t):
        return st.integers(-(2**62), 2**62)
    exact = decimal.Context(prec=100)
    return st.integers(-(10**t.precision) + 1, 10**t.precision - 1).map(
        lambda u: decimal.Decimal(u).scaleb(-t.scale, exact))


literals = _types.flatmap(lambda t: st.one_of(st.none(), _values(t)).map(
    lambda v: ir.Literal(v, t)))


@settings(max_examples=300, deadline=None)
@given(literals)
def test_literal_round_trip(lit):
    back = ir.from_json(ir.to_json(lit))
    assert back == lit
    assert ir.fingerprint(back) == ir.fingerprint(lit)
    if isinstance(lit.value, float) and math.isnan(lit.value):
        assert math.isnan(back.value)


_ints = st.sampled_from([A, ir.ColumnRef("b", I64, False)]) | st.integers(-5, 5).map(
    lambda v: ir.Literal(v, I64))
_int_exprs = st.recursive(_ints, lambda c: st.one_of(
    st.builds(ir.Add, c, c, st.booleans()), st.builds(ir.Multiply, c, c),
    st.builds(ir.Negate, c), st.builds(ir.Coalesce, st.lists(c, min_size=1, max_size=3)),
), max_leaves=8)
_bool_exprs = st.recursive(
    st.builds(ir.GreaterThan, _int_exprs, _int_exprs) | st.builds(ir.IsNull, _int_exprs),
    lambda c: st.one_of(st.builds(ir.And, c, c), st.builds(ir.Or, c, c), st.builds(ir.Not, c),
                        st.builds(ir.If, c, c, c)), max_leaves=6)


@settings(max_examples=200, deadline=None)
@given(_bool_exprs)
def test_expression_round_trip(e):
    back = ir.from_json(ir.to_json(e))
    assert back == e
    assert back.dtype == e.dtype and back.nullable == e.nullable
    assert ir.fingerprint(back) == ir.fingerprint(e)
