"""The TreeNode.toJSON parser, on snippets of the dumped TPC-H plans (no Spark)."""

from __future__ import annotations

import json

import pytest

from executor.errors import PlanError
from executor.frontend.plan_json import TreeNode, expr_id, object_name, parse, walk
from tests.executor.frontend.conftest import load_dump


def test_q06_plan_shape_and_paths():
    root = parse(load_dump("q06")["plan"])
    chain = [root]
    while chain[-1].children:
        chain.append(chain[-1].child("child"))
    assert [n.name for n in chain] == ["Aggregate", "Project", "Filter", "LogicalRelation"]
    assert [n.path for n in chain] == ["$[0]", "$[1]", "$[2]", "$[3]"]
    (alias,) = root.fields["aggregateExpressions"]
    assert isinstance(alias, TreeNode) and alias.name == "Alias"
    assert alias.path == "$[0].aggregateExpressions[0][0]"
    assert alias.fields["name"] == "revenue" and expr_id(alias.fields["exprId"]) == 106
    agg = alias.child("child")
    assert agg.name == "AggregateExpression" and object_name(agg.fields["mode"]) == "Complete"
    mul = agg.child("aggregateFunction").child("child")
    assert mul.name == "Multiply" and mul.path == "$[0].aggregateExpressions[0][3]"
    assert [c.fields["name"] for c in mul.children] == ["l_extendedprice", "l_discount"]
    cond = chain[2].fields["condition"]
    assert cond.path == "$[2].condition[0]" and cond.name == "And"
    assert len(chain[3].fields["output"]) == 16


def test_join_children_and_objects():
    root = parse(load_dump("q03")["plan"])
    join = root.child("child").child("child").child("child").child("child").child("child")
    assert join.name == "Join" and object_name(join.fields["joinType"]) == "Inner"
    assert join.child("left").path == "$[6]" and join.child("right").path == "$[14]"


def test_case_when_inline_copies_stay_raw():
    """CaseWhen.branches/elseValue repeat the node's children (PLANS.md 2.3): not re-parsed."""
    root = parse(load_dump("q14")["plan"])
    case = next(n for n in walk(root) if n.name == "CaseWhen")
    assert len(case.children) == 3
    assert not any(isinstance(n, TreeNode) for n in json.loads(json.dumps(
        case.fields["elseValue"])))


def test_subquery_plan_is_parsed_with_its_path():
    root = parse(load_dump("q11")["plan"])
    sub = next(n for n in walk(root) if n.name == "ScalarSubquery")
    plan = sub.fields["plan"]
    assert isinstance(plan, TreeNode) and plan.name == "Aggregate"
    assert plan.path == f"{sub.path}.plan[0]"
    # subquery plans are walked too: their relations are found
    assert sum(n.name == "LogicalRelation" for n in walk(root)) == 6


def test_text_input_and_malformed_arrays():
    flat = [{"class": "x.Not", "num-children": 1, "child": 0},
            {"class": "x.Literal", "num-children": 0, "value": "true", "dataType": "boolean"}]
    assert parse(json.dumps(flat)).children[0].fields["value"] == "true"
    with pytest.raises(PlanError, match="truncated"):
        parse(flat[:1])
    with pytest.raises(PlanError, match="trailing"):
        parse([flat[1], flat[1]])
    with pytest.raises(PlanError, match="not a TreeNode array"):
        parse([])
    with pytest.raises(PlanError, match="not a child index"):
        parse(flat).child("missing")
