"""The Spark-facing frontend: optimized plan via py4j -> IR -> native run, or fall back.

pyspark is imported lazily (inside functions): ``executor`` imports and runs without Spark.

>>> import executor
>>> table = executor.sql(spark, "select ...")        # native when it can, else Spark
>>> executor.frontend.last_result().native            # how the last call on this thread ran
>>> print(executor.explain(spark, "select ..."))      # the IR tree, or "fallback: <reason>"

The JSON of ``optimizedPlan().toJSON()`` lacks the data sources, evaluation modes and resolved
types (``tools/tpch/PLANS.md`` section 5); :func:`optimized_plan` recovers them from the JVM
objects in the same pre-order walk and returns them as :class:`PlanFacts`. The walk runs inside
the JVM (:mod:`.jvm_walk`, one py4j call a query); :func:`annotate` and :func:`relation_info`
are the same walk through py4j, the reference and the fallback where that cannot compile.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from executor.context import ExecContext
from executor.errors import UnsupportedError
from executor.frontend.annotations import PlanFacts
from executor.frontend.catalog import Catalog
from executor.frontend.jvm_walk import WalkResult, helper_for, plan_walk, relations
from executor.frontend.plan_json import (
    contains_tree,
    is_expression_class,
    is_plan_class,
    is_tree,
)
from executor.frontend.translate import check_executable, translate
from executor.ir.explain import explain as explain_ir
from executor.ir.relations import Relation

log = logging.getLogger(__name__)


@dataclass
class QueryResult:
    """How one query ran: ``native`` with its IR ``plan``, or fallen back to Spark because of
    ``reason``."""

    table: pa.Table
    native: bool
    reason: str | None = None
    plan: Relation | None = None


_last = threading.local()


def last_result() -> QueryResult | None:
    """The :class:`QueryResult` of the latest :func:`sql` call on this thread."""
    return getattr(_last, "result", None)


def _dataframe(spark, sql_or_df):
    return spark.sql(sql_or_df) if isinstance(sql_or_df, str) else sql_or_df


def optimized_plan(spark, sql_or_df) -> tuple[list, PlanFacts]:
    """``(plan_json, facts)`` of a query's optimized logical plan (nothing runs; Spark reads
    only Parquet footers for schemas). ``sql_or_df`` is SQL text or a DataFrame."""
    return _plan_of(_dataframe(spark, sql_or_df))


def _plan_of(df) -> tuple[list, PlanFacts]:
    read = read_plan(df._jdf.queryExecution().optimizedPlan())
    return read.plan, PlanFacts(read.nodes, read.relations, json.loads(df.schema.json()),
                                output_ids=read.output_ids)


def read_plan(jplan) -> WalkResult:
    """The JSON of optimized plan ``jplan`` and what it loses: read inside the JVM in one py4j
    call (:mod:`.jvm_walk`), or by :func:`read_plan_py4j` where that helper cannot run."""
    return _in_jvm(jplan, plan_walk, read_plan_py4j)


def read_plan_py4j(jplan) -> WalkResult:
    """:func:`read_plan` through py4j, one round trip per accessor: the reference walk."""
    plan = json.loads(jplan.toJSON())
    try:
        nodes = annotate(jplan, plan)
        found = relation_info(jplan)
    except UnsupportedError:
        raise
    except Exception as err:  # a JVM class whose accessors do not mirror its JSON fields
        raise UnsupportedError("plan", f"cannot read the plan's annotations: {err}") from err
    output_ids = tuple(a.exprId().id() for a in _seq(jplan.output()))
    return WalkResult(plan, nodes, found, output_ids)


def relations_of(jplan) -> list[dict]:
    """:func:`relation_info` of ``jplan``, read inside the JVM where the helper can run."""
    return _in_jvm(jplan, relations, relation_info)


def _in_jvm(jplan, fast, reference):
    """``fast(helper, jplan)`` with the JVM-side helper, or ``reference(jplan)`` (the py4j walk)
    where the helper does not compile or fails on this plan (or its answer file cannot be
    written); the py4j walk then raises its typed error, or gives the answer."""
    from py4j.protocol import Py4JError, Py4JJavaError

    helper = helper_for(jplan)
    if helper is not None:
        try:
            return fast(helper, jplan)
        except (Py4JError, OSError) as err:
            reason = err.java_exception.toString() if isinstance(err, Py4JJavaError) else err
            log.info("the JVM-side plan walk failed (%s); reading the plan through py4j",
                     reason)
    return reference(jplan)


def to_ir(spark, sql_or_df) -> Relation:
    """The IR of a query; :class:`UnsupportedError` if it has no exact translation."""
    plan, facts = optimized_plan(spark, sql_or_df)
    return translate(plan, facts)


def execute(spark, query, *, ctx: ExecContext | None = None,
            catalog: Catalog | None = None,
            runner: Callable[[Relation, ExecContext], pa.Table] | None = None) -> QueryResult:
    """Run ``query`` (SQL text or DataFrame) natively if it translates and the executor can
    lower every node; otherwise with Spark. Only :class:`UnsupportedError` falls back: any
    other error (a failing query, a translator bug) propagates. ``catalog`` (``wj sql``'s
    tables) points scans of schema stubs at their ``s3://`` tables. ``runner`` runs the
    single-node plan (default :func:`~executor.distribute.run_distributed`; e.g. a
    checkpointed run through the object store)."""
    from executor.distribute import run_distributed

    ctx = ctx or ExecContext()
    runner = runner or run_distributed

    df = _dataframe(spark, query)  # planned once: a command in `query` runs only once
    try:
        plan = _native_plan(df, catalog)
    except UnsupportedError as err:
        return _fall_back(df, str(err), None, catalog)
    try:
        table = runner(plan, ctx)
    except UnsupportedError as err:  # a kernel found missing only at run time
        return _fall_back(df, f"at run time: {err}", plan, catalog)
    return QueryResult(table, True, None, plan)


def _fall_back(df, reason: str, plan, catalog: Catalog | None) -> QueryResult:
    if catalog is not None:
        roots = {p for r in relations_of(df._jdf.queryExecution().optimizedPlan())
                 for p in r.get("root_paths", ())}
        catalog.check_fallback(reason, roots)
    return QueryResult(_spark_result(df), False, reason, plan)


def sql(spark, query, *, ctx: ExecContext | None = None) -> pa.Table:
    """The result of ``query`` as Arrow: computed natively when the plan translates exactly,
    by Spark otherwise. :func:`last_result` tells which, and why."""
    result = execute(spark, query, ctx=ctx)
    _last.result = result
    return result.table


def native_plan(spark, query, *, catalog: Catalog | None = None) -> Relation:
    """The single-node IR plan ``execute`` would run natively (scans of ``catalog``'s stubs
    pointed at their ``s3://`` tables); :class:`UnsupportedError` if it would fall back."""
    return _native_plan(_dataframe(spark, query), catalog)


def _native_plan(df, catalog: Catalog | None) -> Relation:
    plan = translate(*_plan_of(df))
    if catalog is not None:
        plan = catalog.retarget(plan)
    check_executable(plan)
    return plan


def explain(spark, query, *, catalog: Catalog | None = None) -> str:
    """The IR tree ``sql`` would run, or ``fallback: <reason>``."""
    try:
        plan = native_plan(spark, query, catalog=catalog)
    except UnsupportedError as err:
        return f"fallback: {err}"
    return explain_ir(plan, schema=True)


def _spark_result(df) -> pa.Table:
    if hasattr(df, "toArrow"):
        return df.toArrow()
    raise UnsupportedError("fallback", "this pyspark has no DataFrame.toArrow (Spark >= 4)")


# -- reading what the JSON loses from the JVM objects -----------------------------------------

def _seq(jseq) -> list:
    return [jseq.apply(i) for i in range(jseq.size())]


def _preorder(jnode) -> list:
    out = []

    def visit(j):
        out.append(j)
        for c in _seq(j.children()):
            visit(c)

    visit(jnode)
    return out


def _unwrap(jv):
    return jv.get() if jv.getClass().getName() == "scala.Some" else jv


def _tree_fields(node: dict):
    """Fields holding trees that are not repeats of the node's children (PLANS.md 2.3)."""
    host_is_expr = is_expression_class(node["class"])
    for key, v in node.items():
        if key in ("class", "num-children") or not contains_tree(v):
            continue
        if host_is_expr and not (is_tree(v) and is_plan_class(v[0]["class"])):
            continue
        yield key, v


def _note(j, node: dict) -> dict[str, Any]:
    note: dict[str, Any] = {"class": node["class"]}
    try:
        note["dataType"] = json.loads(j.dataType().json())
        note["nullable"] = bool(j.nullable())
    except Exception:  # unevaluable expressions (SortOrder is fine; some have no type)
        pass
    if "evalContext" in node:
        ctx = j.evalContext()
        note["evalMode"] = str(ctx.evalMode())
        note["allowDecimalPrecisionLoss"] = bool(ctx.allowDecimalPrecisionLoss())
    if "evalMode" in node:
        note["evalMode"] = str(j.evalMode())
    if "escapeChar" in node:
        note["escapeChar"] = str(j.escapeChar())
    return note


def annotate(jplan, plan_json: list) -> dict[str, dict]:
    """Per expression node (by JSON path, as in ``tools/tpch/plans/*.json``): resolved type,
    nullability, evaluation mode, LIKE escape. Walks the JSON and the JVM tree together."""
    notes: dict[str, dict] = {}

    def walk_tree(flat: list, jroot, path: str) -> None:
        jnodes = _preorder(jroot)
        if len(jnodes) != len(flat):
            raise UnsupportedError("plan", f"{path}: JSON has {len(flat)} nodes, the JVM "
                                   f"tree {len(jnodes)}")
        for i, (node, j) in enumerate(zip(flat, jnodes, strict=True)):
            if j.getClass().getName() != node["class"]:
                raise UnsupportedError("plan", f"{path}[{i}]: JSON {node['class']} vs JVM "
                                       f"{j.getClass().getName()}")
            here = f"{path}[{i}]"
            cls = node["class"]
            if is_expression_class(cls) and not cls.endswith((".AttributeReference",
                                                              ".Literal")):
                notes[here] = _note(j, node)
            for key, v in _tree_fields(node):
                walk_value(v, getattr(j, key)(), f"{here}.{key}")

    def walk_value(v, jv, path: str) -> None:
        jv = _unwrap(jv)
        if is_tree(v):
            walk_tree(v, jv, path)
        elif isinstance(v, list):
            for k, item in enumerate(v):
                if contains_tree(item):
                    walk_value(item, jv.apply(k), f"{path}[{k}]")
        elif isinstance(v, dict):
            for key, item in v.items():
                if contains_tree(item):
                    walk_value(item, getattr(jv, key)(), f"{path}.{key}")

    walk_tree(plan_json, jplan, "$")
    return notes


def relation_info(jplan) -> list[dict]:
    """Every ``LogicalRelation`` (subquery plans included) with its source: the relation class,
    and for file sources the format, root paths, schemas and options."""
    found = []

    def visit(node) -> None:
        if node.getClass().getName().endswith(".LogicalRelation"):
            rel = node.relation()
            out = _seq(node.output())
            info: dict[str, Any] = {
                "output_expr_ids": [a.exprId().id() for a in out],
                "output_names": [a.name() for a in out],
                "relation_class": rel.getClass().getName(),
                "catalog_table": node.catalogTable().isDefined(),
            }
            if info["relation_class"].endswith("HadoopFsRelation"):
                info["format"] = rel.fileFormat().shortName()
                info["root_paths"] = [p.toString() for p in _seq(rel.location().rootPaths())]
                info["data_schema"] = json.loads(rel.dataSchema().json())
                info["partition_schema"] = json.loads(rel.partitionSchema().json())
                opts = rel.options()
                info["options"] = {str(k): str(opts.apply(k)) for k in _seq(opts.keys().toSeq())
                                   if str(k) != "path"}
            found.append(info)
        for child in _seq(node.children()):
            visit(child)
        for sub in _seq(node.subqueries()):
            visit(sub)

    visit(jplan)
    return found
