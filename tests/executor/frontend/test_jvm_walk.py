"""The JVM-side plan walk (``executor.frontend.jvm_walk``) reads the same facts as the py4j walk.

For the 22 TPC-H plans and for plans with subqueries, windows, LIKE ... ESCAPE, ANSI and TRY
arithmetic, CASE WHEN, Hive-partitioned and in-memory sources, the plan JSON, the per-node
annotations, the relations and the output exprIds read in one py4j call equal what
``read_plan_py4j`` (``toJSON`` + ``annotate`` + ``relation_info``, one round trip per accessor)
reads from the same JVM plan. One Spark session for the module (the shared ``spark`` fixture).
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from executor.frontend import jvm_walk
from executor.frontend import spark as front
from tools.tpch import QUERY_NUMBERS, query_name, query_text


def _jplan(spark, sql_or_df):
    df = spark.sql(sql_or_df) if isinstance(sql_or_df, str) else sql_or_df
    return df._jdf.queryExecution().optimizedPlan()


def _helper(jplan):
    helper = jvm_walk.helper_for(jplan)
    assert helper is not None, "the JVM-side walk did not compile (see the log)"
    return helper


def _check_same(jplan) -> jvm_walk.WalkResult:
    reference = front.read_plan_py4j(jplan)
    helper = _helper(jplan)
    got = jvm_walk.plan_walk(helper, jplan)
    assert got.plan == reference.plan
    assert got.nodes == reference.nodes
    assert got.relations == reference.relations
    assert got.output_ids == reference.output_ids
    assert jvm_walk.relations(helper, jplan) == reference.relations
    return got


@pytest.mark.parametrize("q", QUERY_NUMBERS, ids=[query_name(q) for q in QUERY_NUMBERS])
def test_tpch_plans_read_the_same(spark, q):
    jplan = _jplan(spark, query_text(q))
    got = _check_same(jplan)
    assert got.nodes and got.relations and got.output_ids
    assert all(r["format"] == "parquet" and r["root_paths"] for r in got.relations)


def test_optimized_plan_goes_through_the_jvm_walk(spark, caplog):
    df = spark.sql(query_text(11))  # one DataFrame: planning again would renumber exprIds
    jplan = _jplan(spark, df)
    _helper(jplan)  # compiled (and cached) for this JVM
    reference = front.read_plan_py4j(jplan)
    with caplog.at_level(logging.INFO, logger=front.__name__):
        plan, facts = front.optimized_plan(spark, df)
    assert not [r for r in caplog.records if "plan walk failed" in r.getMessage()]
    assert plan == reference.plan and facts.nodes == reference.nodes
    assert facts.relations == reference.relations
    assert facts.output_ids == reference.output_ids


@pytest.fixture(scope="module")
def extra_views(spark, tmp_path_factory):
    """A Hive-partitioned Parquet table ``jw_part`` (partition column ``region``, an option
    set on the read) and an in-memory table ``jw_mem``."""
    root = tmp_path_factory.mktemp("jvm-walk") / "jw_part"
    table = pa.table({
        "id": pa.array(range(12), pa.int64()),
        "price": pa.array([Decimal(f"{i}.25") for i in range(12)], pa.decimal128(10, 2)),
        "name": pa.array([f"a_{i}%" if i % 3 else None for i in range(12)]),
        "day": pa.array([date(2024, 1, 1 + i) for i in range(12)]),
        "region": pa.array(["east", "west", "north"] * 4),
    })
    pq.write_to_dataset(table, root, partition_cols=["region"])
    part = spark.read.option("mergeSchema", "false").parquet(str(root))
    part.createOrReplaceTempView("jw_part")
    spark.createDataFrame([(1, "x", 2.5), (2, None, None)], "k int, s string, d double") \
        .createOrReplaceTempView("jw_mem")
    return part


EXTRA = {
    "scalar_subquery_in_select": "select id, (select max(n_nationkey) from nation) m "
                                 "from jw_part",
    "correlated_exists_and_in": "select c_name from customer where exists (select 1 from orders "
                                "where o_custkey = c_custkey and o_totalprice > 1000) and "
                                "c_nationkey in (select n_nationkey from nation "
                                "where n_name like 'A%')",
    "windows": "select id, region, rank() over (partition by region order by price desc) r, "
               "sum(price) over (partition by region order by id rows between 2 preceding "
               "and current row) s, lag(name, 1) over (order by id) l from jw_part",
    "like_escape": "select id from jw_part where name like 'a!_1%' escape '!' "
                   "or name like 'a\\\\_2%' or name not like '%!%' escape '!'",
    "ansi_and_try_arithmetic": "select try_add(id, 1) a, try_divide(price, id) b, "
                               "try_multiply(price, 3) c, price * price d, id div 2 e, "
                               "cast(name as int) f, try_cast(name as int) g, "
                               "avg(price) over () h from jw_part",
    "case_when_and_partition_filter": "select case when region = 'east' then price "
                                      "when region = 'west' then -price end x, "
                                      "case when id > 3 then 'big' else 'small' end y "
                                      "from jw_part where region <> 'north' and day > "
                                      "date '2024-01-03'",
    "in_memory_join": "select k, s, n_name from jw_mem join nation on k = n_nationkey "
                      "union all select id, name, region from jw_part",
    "range_and_values": "select id * 2 from range(5) union all select col1 from "
                        "values (1), (2)",
}


@pytest.mark.parametrize("name", EXTRA)
def test_other_plans_read_the_same(spark, extra_views, name):
    _check_same(_jplan(spark, EXTRA[name]))


def test_hive_partitioned_relation(spark, extra_views):
    got = _check_same(_jplan(spark, "select * from jw_part where region = 'east'"))
    (rel,) = got.relations
    assert rel["partition_schema"]["fields"][0]["name"] == "region"
    assert rel["options"] == {"mergeschema": "false"}  # Spark keeps options case-folded


def test_dataframe_api_plan_reads_the_same(spark, extra_views):
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    df = (extra_views.where(F.col("name").like("a%"))
          .withColumn("n", F.row_number().over(Window.partitionBy("region").orderBy("id")))
          .groupBy("region").agg(F.sum("price").alias("p"), F.max("n").alias("n")))
    _check_same(_jplan(spark, df))


def test_compile_failure_falls_back_to_the_py4j_walk(spark, monkeypatch, caplog):
    jplan = _jplan(spark, query_text(6))
    reference = front.read_plan_py4j(jplan)
    monkeypatch.setattr(jvm_walk, "_helpers", {})
    monkeypatch.setattr(jvm_walk, "JAVA_SOURCE", "public class Broken { int x = ; }")
    with caplog.at_level(logging.WARNING, logger=jvm_walk.__name__):
        assert jvm_walk.helper_for(jplan) is None
        assert front.read_plan(jplan) == reference
    assert sum("cannot compile the JVM-side plan walk" in r.getMessage()
               for r in caplog.records) == 1  # once per JVM, not per plan


def test_run_time_failure_falls_back_to_the_py4j_walk(spark, monkeypatch, caplog):
    jplan = _jplan(spark, query_text(6))
    reference = front.read_plan_py4j(jplan)
    monkeypatch.setattr(jvm_walk, "_helpers", {})
    anchor = "String planJson = ((TreeNode) plan).toJSON();"
    failing = jvm_walk.JAVA_SOURCE.replace(anchor, 'if (plan != null) { throw new '
                                           'IllegalStateException("walk broken on purpose"); }'
                                           + anchor)
    assert failing != jvm_walk.JAVA_SOURCE
    monkeypatch.setattr(jvm_walk, "JAVA_SOURCE", failing)
    with caplog.at_level(logging.INFO, logger=front.__name__):
        assert front.read_plan(jplan) == reference
    assert any("walk broken on purpose" in r.getMessage() for r in caplog.records)
