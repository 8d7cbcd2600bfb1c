"""The ``--where`` language compiles to the expressions pyarrow evaluates (checked on data)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from wjio.errors import InvalidPredicateError
from wjio.where import parse_where

T = pa.table(
    {
        "a": [1, 5, 10, None],
        "b": ["x", "it's", None, "y"],
        "d": [dt.date(2024, 1, 1), dt.date(2024, 2, 1), None, dt.date(2023, 1, 1)],
        "s": [{"x": 1}, {"x": 2}, {"x": 3}, {"x": 4}],
    }
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a > 5", pc.field("a") > 5),
        ("a = 5 or b = 'x'", (pc.field("a") == 5) | (pc.field("b") == "x")),
        ("NOT a <= 5 AND b IS NOT NULL", ~(pc.field("a") <= 5) & pc.field("b").is_valid()),
        ("a IN (1, 10)", pc.field("a").isin([1, 10])),
        ("a NOT IN (1, 10)", ~pc.field("a").isin([1, 10])),
        ("b = 'it''s'", pc.field("b") == "it's"),
        ("a BETWEEN 2 AND 10", (pc.field("a") >= 2) & (pc.field("a") <= 10)),
        ("d >= DATE '2024-01-15'", pc.field("d") >= pc.scalar(dt.date(2024, 1, 15))),
        ("s.x <> 2", pc.field("s", "x") != 2),
        ('"a" < 3 and (b = \'x\' or b = \'y\')',
         (pc.field("a") < 3) & ((pc.field("b") == "x") | (pc.field("b") == "y"))),
        ("a is null", pc.field("a").is_null()),
    ],
)
def test_compiles_to_equivalent_expression(text, expected):
    got = parse_where(text)
    assert T.filter(got).equals(T.filter(expected))


@pytest.mark.parametrize(
    "text", ["a >", "a > 5 and", "a == == 1", "(a > 1", "a IS 5", "a NOT 5", "a > 'x", "a ~ 1"]
)
def test_malformed_is_a_clear_error(text):
    with pytest.raises(InvalidPredicateError, match="--where"):
        parse_where(text)
