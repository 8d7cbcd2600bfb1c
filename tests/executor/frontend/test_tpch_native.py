"""The 22 TPC-H queries through ``executor.sql`` at SF 0.01: the result equals Spark's own
(same column names and types, exact decimals and strings, same row order where ORDER BY
defines it), and each query runs natively unless it is listed in FALLBACK with its reason.

One Spark session for the module (the shared ``spark`` fixture); ~1 min in all.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

import executor
from executor.frontend import execute, last_result
from tests import spark_support
from tools.tpch import QUERY_NUMBERS, has_order_by, query_name, query_text

# Every TPC-H query translates exactly (Q11, Q15 and Q22 through uncorrelated scalar
# subqueries, computed first and substituted as literals); none falls back.
FALLBACK: dict[str, str] = {}
QUERIES = [query_name(n) for n in QUERY_NUMBERS]
NATIVE = set(QUERIES) - set(FALLBACK)


def _rows(table: pa.Table, ordered: bool) -> list[tuple]:
    return [tuple(r.values()) for r in table.to_pylist()] if ordered else \
        spark_support.sorted_rows(table)


@pytest.mark.parametrize("qname", QUERIES)
def test_query_matches_spark(spark, qname):
    sql = query_text(int(qname[1:]))
    got = executor.sql(spark, sql)
    outcome = last_result()
    assert outcome is not None and outcome.table is got
    if qname in NATIVE:
        assert outcome.native, f"{qname} fell back: {outcome.reason}"
        assert outcome.reason is None and outcome.plan is not None
    else:
        assert not outcome.native
        assert re.search(FALLBACK[qname], outcome.reason), outcome.reason
    expected = spark_support.spark_reference(spark, sql)
    assert [(f.name, f.type) for f in got.schema] == [(f.name, f.type) for f in expected.schema]
    assert got.num_rows == expected.num_rows
    ordered = has_order_by(sql)
    assert _rows(got, ordered) == _rows(expected, ordered)


def test_explain(spark):
    text = executor.explain(spark, query_text(6))
    assert text.startswith("Project [revenue#") and "Aggregate[complete]" in text
    assert "Scan " in text and "lineitem" in text
    q11 = executor.explain(spark, query_text(11))
    assert q11.startswith("Project [") and ":- subquery (decimal128(38, 6))" in q11
    assert "scalar-subquery(decimal128(38, 6))" in q11


def test_dataframe_input_and_eval_mode_fallback(spark):
    """try_add is indistinguishable from + in the JSON; the annotations tell them apart."""
    native = execute(spark, spark.table("nation").where("n_regionkey = 1").select("n_name"))
    assert native.native and sorted(native.table.column("n_name").to_pylist()) == [
        "ARGENTINA", "BRAZIL", "CANADA", "PERU", "UNITED STATES"]
    tried = execute(spark, "select sum(try_add(l_quantity, l_tax)) as s from lineitem")
    assert not tried.native and "evaluation mode TRY" in tried.reason
    plain = execute(spark, "select sum(l_quantity + l_tax) as s from lineitem")
    assert plain.native and plain.table.equals(tried.table)


def test_root_passing_its_scan_through(spark):
    """A Filter (or Sort, Limit) at the root names no columns: all of the scan's come out."""
    for df in (spark.table("region").where("r_regionkey > 2"),
               spark.table("nation").orderBy("n_name").limit(3)):
        result = execute(spark, df)
        assert result.native, result.reason
        assert result.table.equals(spark_support.to_arrow(df))
