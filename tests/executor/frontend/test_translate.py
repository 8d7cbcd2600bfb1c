"""Type, expression and plan translation on snippets of the dumped TPC-H plans (no Spark).

The dumps (``tools/tpch/plans/qNN.json``) carry the same annotations the live frontend reads
from the JVM, so the whole translation of the 22 queries is checked here in milliseconds;
``test_tpch_native.py`` runs them against Spark.
"""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from executor import ir
from executor.errors import InternalError, UnsupportedError
from executor.frontend.annotations import PlanFacts
from executor.frontend.expressions import ExprTranslator
from executor.frontend.plan_json import parse, walk
from executor.frontend.translate import check_executable, translate
from executor.frontend.types import arrow_type, literal_value
from tests.executor.frontend.conftest import dump_facts, load_dump

E = "org.apache.spark.sql.catalyst.expressions."
NATIVE = {f"q{n:02d}" for n in range(1, 23)}


def attr(name, i, dtype, nullable=True):
    return {"class": E + "AttributeReference", "num-children": 0, "name": name,
            "dataType": dtype, "nullable": nullable, "metadata": {},
            "exprId": {"product-class": E + "ExprId", "id": i, "jvmId": "<jvm>"},
            "qualifier": []}


def lit(value, dtype):
    return {"class": E + "Literal", "num-children": 0, "value": value, "dataType": dtype}


def node(cls, n, **fields):
    return {"class": E + cls, "num-children": n, **fields}


def expr(flat, notes=None):
    return ExprTranslator(PlanFacts(notes or {})).translate(parse(flat))


# -- types and literals ---------------------------------------------------------------------

def test_types():
    assert arrow_type("long") == pa.int64() and arrow_type("integer") == pa.int32()
    assert arrow_type("decimal(15,2)") == pa.decimal128(15, 2)
    assert arrow_type("date") == pa.date32() and arrow_type("string") == pa.string()
    assert arrow_type("timestamp") == pa.timestamp("us", tz="UTC")
    with pytest.raises(UnsupportedError, match="array"):
        arrow_type({"type": "array", "elementType": "integer", "containsNull": False})
    with pytest.raises(UnsupportedError, match="interval"):
        arrow_type("interval")


def test_literal_values():
    d152 = pa.decimal128(15, 2)
    assert literal_value("0.05", d152) == Decimal("0.05")
    assert literal_value("24", d152).as_tuple().exponent == -2  # put at the type's scale
    assert literal_value("1994-01-01", pa.date32()) == dt.date(1994, 1, 1)
    assert literal_value(None, pa.int32()) is None
    assert literal_value("true", pa.bool_()) is True
    with pytest.raises(UnsupportedError, match="binary"):
        literal_value("[B@5479c483", pa.binary())
    with pytest.raises(UnsupportedError, match="timestamp"):
        literal_value("2020-01-01 00:00:00", pa.timestamp("us", tz="UTC"))


# -- expressions ----------------------------------------------------------------------------

def _q06_revenue():
    doc = load_dump("q06")
    return doc, doc["plan"][0]["aggregateExpressions"][0]


def test_q06_aggregate_with_annotated_types():
    doc, flat = _q06_revenue()
    root = parse(flat, "$[0].aggregateExpressions[0]")
    t = ExprTranslator(dump_facts(doc))
    fn = t.aggregate_function(root.child("child"))
    assert isinstance(fn, ir.Sum) and fn.ansi and fn.dtype == pa.decimal128(38, 4)
    assert isinstance(fn.child, ir.Multiply) and fn.child.dtype == pa.decimal128(31, 4)
    assert fn.child.left == ir.ColumnRef("l_extendedprice#50", pa.decimal128(15, 2))


@pytest.mark.parametrize("mode", ["TRY", "LEGACY", None])
def test_non_ansi_or_unknown_eval_mode_is_unsupported(mode):
    doc, flat = _q06_revenue()
    facts = dump_facts(doc)
    facts.nodes = copy.deepcopy(facts.nodes)
    note = facts.nodes["$[0].aggregateExpressions[0][3]"]  # the Multiply
    if mode is None:
        del note["evalMode"]
    else:
        note["evalMode"] = mode
    root = parse(flat, "$[0].aggregateExpressions[0]")
    with pytest.raises(UnsupportedError, match=f"expression Multiply.*{mode or 'unknown'}"):
        ExprTranslator(facts).aggregate_function(root.child("child"))


def test_annotated_type_mismatch_is_a_bug():
    doc, flat = _q06_revenue()
    facts = dump_facts(doc)
    facts.nodes = copy.deepcopy(facts.nodes)
    facts.nodes["$[0].aggregateExpressions[0][3]"]["dataType"] = "decimal(30,4)"
    root = parse(flat, "$[0].aggregateExpressions[0]")
    with pytest.raises(InternalError, match="translator bug"):
        ExprTranslator(facts).aggregate_function(root.child("child"))


def test_comparisons_logic_in_and_strings():
    flat = [node("And", 2, left=0, right=1),
            node("In", 3, value=0, list=[1, 2]), attr("m", 1, "string"),
            lit("MAIL", "string"), lit("SHIP", "string"),
            node("Not", 1, child=0), node("StartsWith", 2, left=0, right=1),
            attr("t", 2, "string"), lit("PROMO", "string")]
    e = expr(flat)
    m = ir.ColumnRef("m#1", pa.string())
    assert e == ir.And(ir.In(m, (ir.Literal("MAIL", pa.string()), ir.Literal("SHIP",
                                                                              pa.string()))),
                       ir.Not(ir.StartsWith(ir.ColumnRef("t#2", pa.string()), "PROMO")))


def test_like_needs_the_default_escape():
    flat = [node("Like", 2, left=0, right=1, escapeChar=None), attr("c", 1, "string"),
            lit("%a%b%", "string")]
    assert expr(flat, {"$[0]": {"escapeChar": "\\"}}) == ir.Like(
        ir.ColumnRef("c#1", pa.string()), "%a%b%")
    with pytest.raises(UnsupportedError, match="escape"):
        expr(flat, {"$[0]": {"escapeChar": "!"}})
    with pytest.raises(UnsupportedError, match="escape"):
        expr(flat)  # unknown: the JSON drops it


def test_case_when_from_children():
    doc = load_dump("q12")
    root = parse(doc["plan"], "$")
    case = next(n for n in walk(root) if n.name == "CaseWhen")
    e = ExprTranslator(dump_facts(doc)).translate(case)
    assert isinstance(e, ir.CaseWhen) and len(e.branches) == 1
    assert e.otherwise == ir.Literal(0, pa.int32()) and e.dtype == pa.int32()


def test_casts():
    ansi = {"$[0]": {"evalMode": "ANSI"}}
    flat = [node("Cast", 1, child=0, dataType="date", timeZoneId="UTC", evalMode=None),
            lit("1995-03-15", "string")]
    assert expr(flat, ansi) == ir.Literal(dt.date(1995, 3, 15), pa.date32())
    flat[1] = lit("1995-3-15", "string")
    with pytest.raises(UnsupportedError, match="date cast"):
        expr(flat, ansi)
    flat = [node("Cast", 1, child=0, dataType="decimal(10,0)", timeZoneId="UTC",
                 evalMode=None), attr("q", 3, "integer")]
    assert expr(flat, ansi) == ir.Cast(ir.ColumnRef("q#3", pa.int32()), pa.decimal128(10, 0))
    with pytest.raises(UnsupportedError, match="TRY"):
        expr(flat, {"$[0]": {"evalMode": "TRY"}})


def test_unknown_expression_names_class_and_path():
    flat = [node("Upper", 1, child=0), attr("c", 1, "string")]
    with pytest.raises(UnsupportedError, match=r"expression Upper \(no translation rule at \$"):
        expr(flat)


# -- whole plans ----------------------------------------------------------------------------

@pytest.mark.parametrize("qname", [f"q{n:02d}" for n in range(1, 23)])
def test_tpch_dumps_translate(qname):
    doc = load_dump(qname)
    facts = dump_facts(doc)
    plan = translate(doc["plan"], facts)
    check_executable(plan)
    want = [(f["name"], arrow_type(f["type"])) for f in doc["output_schema"]["fields"]]
    assert [(f.name, f.dtype) for f in plan.schema] == want
    assert ir.from_json(ir.to_json(plan)) == plan  # a valid, serialisable IR plan
    for scan in (r for r in plan.walk() if isinstance(r, ir.Scan)):
        assert scan.table.startswith("/data/tpch/")


def _relations(plan):
    return [r for r in plan.walk() if isinstance(r, ir.Join)]


def test_q03_keys_topn_and_pruned_scans():
    plan = translate(load_dump("q03")["plan"], dump_facts(load_dump("q03")))
    top = plan.child
    assert isinstance(top, ir.TopN) and top.limit == 10
    assert [k.ascending for k in top.keys] == [False, True]
    outer, inner = _relations(plan)
    assert [r.name for r in outer.left_keys] == ["o_orderkey#36"]
    assert [r.name for r in outer.right_keys] == ["l_orderkey#45"]
    assert outer.condition is None and inner.how is ir.JoinType.INNER
    scans = {s.table.rsplit("/", 1)[1]: s.columns for s in plan.walk()
             if isinstance(s, ir.Scan)}
    assert scans["lineitem"] == ("l_orderkey", "l_extendedprice", "l_discount", "l_shipdate")


def test_q16_null_aware_anti_join_keeps_its_condition():
    """NOT IN: (a = b) OR isnull(a = b) is not an equi key; it stays the join condition."""
    plan = translate(load_dump("q16")["plan"], dump_facts(load_dump("q16")))
    anti = next(j for j in _relations(plan) if j.how is ir.JoinType.ANTI)
    assert anti.left_keys == () and isinstance(anti.condition, ir.Or)


def test_q21_semi_and_anti_joins_split_keys_and_residual():
    plan = translate(load_dump("q21")["plan"], dump_facts(load_dump("q21")))
    joins = {j.how: j for j in _relations(plan)}
    for how in (ir.JoinType.SEMI, ir.JoinType.ANTI):
        j = joins[how]
        assert len(j.left_keys) == 1 and isinstance(j.condition, ir.Not)


def test_q14_expression_over_aggregates_goes_in_a_project():
    plan = translate(load_dump("q14")["plan"], dump_facts(load_dump("q14")))
    project = plan.child
    assert isinstance(project, ir.Project) and isinstance(project.child, ir.Aggregate)
    assert len(project.child.aggregates) == 2
    assert all(isinstance(a.child, ir.Sum) for a in project.child.aggregates)


def _raw_scalar_subqueries(value):
    """The ScalarSubquery objects of a raw plan dump (mutable, for fallback tests)."""
    if isinstance(value, dict):
        if value.get("class") == E + "ScalarSubquery":
            yield value
        for v in value.values():
            yield from _raw_scalar_subqueries(v)
    elif isinstance(value, list):
        for v in value:
            yield from _raw_scalar_subqueries(v)


@pytest.mark.parametrize(("qname", "dtype"), [
    ("q11", pa.decimal128(38, 6)), ("q15", pa.decimal128(38, 4)), ("q22", pa.decimal128(19, 6)),
])
def test_uncorrelated_scalar_subqueries(qname, dtype):
    plan = translate(load_dump(qname)["plan"], dump_facts(load_dump(qname)))
    (sq,) = ir.subqueries.all_subqueries(plan)
    assert sq.dtype == dtype and sq.nullable
    assert len(sq.plan.schema) == 1
    assert any(isinstance(r, ir.Scan) for r in sq.plan.walk())
    # The subquery's columns are its own scope: not references of the host relation.
    host = next(r for r in plan.walk() if sq in ir.subqueries.subqueries_of(r))
    assert isinstance(host, ir.Filter)
    assert all(ref.name in host.child.schema.names for ref in host.condition.references())


@pytest.mark.parametrize("field", ["outerAttrs", "joinCond"])
def test_correlated_scalar_subquery_falls_back(field):
    doc = copy.deepcopy(load_dump("q22"))
    (raw,) = _raw_scalar_subqueries(doc["plan"])
    raw[field] = [attr("c_custkey", 14, "long")] if field == "outerAttrs" else [0]
    with pytest.raises(UnsupportedError, match=r"expression ScalarSubquery \(correlated scalar "
                       r"subquery .* at \$\[\d+\]\.condition\[\d+\] \(q22\)"):
        translate(doc["plan"], dump_facts(doc))


def test_outer_reference_in_subquery_plan_falls_back():
    doc = copy.deepcopy(load_dump("q22"))
    (raw,) = _raw_scalar_subqueries(doc["plan"])
    for flat in (v for v in _walk_raw(raw["plan"]) if v.get("class") == E + "AttributeReference"):
        flat["class"] = E + "OuterReference"  # any such node marks a correlated plan
        break
    with pytest.raises(UnsupportedError, match="correlated scalar subquery"):
        translate(doc["plan"], dump_facts(doc))


def _walk_raw(value):
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _walk_raw(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk_raw(v)


def _q06_with_relation(**changes):
    doc = load_dump("q06")
    facts = dump_facts(doc)
    facts.relations = [dict(facts.relations[0], **changes)]
    return doc, facts


@pytest.mark.parametrize(("changes", "reason"), [
    ({"format": "csv"}, "file format 'csv'"),
    ({"options": {"mergeSchema": "true"}}, "reader options"),
    ({"partition_schema": {"fields": [{"name": "d", "type": "date"}]}}, "partitioned"),
    ({"root_paths": ["hdfs://nn/lineitem"]}, "table location"),
    ({"root_paths": ["/a", "/b"]}, "2 root paths"),
    ({"output_expr_ids": [1]}, "no relation facts"),
])
def test_relation_fallbacks(changes, reason):
    doc, facts = _q06_with_relation(**changes)
    with pytest.raises(UnsupportedError, match=reason):
        translate(doc["plan"], facts)


@pytest.mark.parametrize(("path", "table"), [
    ("file:/tmp/t/lineitem", "/tmp/t/lineitem"),
    ("file:///tmp/t/lineitem", "/tmp/t/lineitem"),
    ("s3a://bucket/tpch/lineitem", "s3://bucket/tpch/lineitem"),
    ("s3://bucket/tpch/lineitem", "s3://bucket/tpch/lineitem"),
])
def test_relation_locations(path, table):
    doc, facts = _q06_with_relation(root_paths=[path])
    (scan,) = [r for r in translate(doc["plan"], facts).walk() if isinstance(r, ir.Scan)]
    assert scan.table == table
    assert scan.columns == ("l_quantity", "l_extendedprice", "l_discount", "l_shipdate")
