"""Lower an IR relation tree to operators (one rule per relation type), checking that each
operator's schema is the IR's. Inside a stage, an Exchange becomes a read of the exchange
numbered for it in ``exchange_ids`` (of all its partitions as a key filter's source);
without ids (single-partition runs) it is a no-op."""

from __future__ import annotations

from functools import singledispatch

from executor.errors import InternalError, UnsupportedError
from executor.ir import relations as rel
from executor.operators.aggregate import AggregateExec
from executor.operators.base import Operator, physical_schema
from executor.operators.distinct import DistinctExec
from executor.operators.exchange import ExchangeReadExec, PassThroughExec
from executor.operators.expand import ExpandExec
from executor.operators.filter import FilterExec
from executor.operators.join import HashJoinExec
from executor.operators.key_filter import KeyFilterExec
from executor.operators.limit import LimitExec
from executor.operators.nested_loop_join import NestedLoopJoinExec
from executor.operators.project import ProjectExec
from executor.operators.scan import ScanExec
from executor.operators.sort import SortExec
from executor.operators.union import UnionExec
from executor.operators.values import ValuesExec
from executor.operators.window import WindowExec


def plan(node: rel.Relation, exchange_ids: dict[rel.Exchange, int] | None = None) -> Operator:
    """The operator tree computing ``node``. ``exchange_ids`` maps each Exchange node to the
    exchange it reads (stage execution; see ``stages.exchange_ids``)."""
    op = _plan(node, exchange_ids)
    expected = physical_schema(node.schema)
    if not op.schema.equals(expected):
        raise InternalError(f"{op.name()} produces {op.schema}, plan says {expected}")
    return op


@singledispatch
def _plan(node, ids) -> Operator:
    raise UnsupportedError(type(node).__name__, "no operator")


@_plan.register
def _(node: rel.Scan, ids) -> Operator:
    return ScanExec(node)


@_plan.register
def _(node: rel.Values, ids) -> Operator:
    return ValuesExec(node)


@_plan.register
def _(node: rel.Filter, ids) -> Operator:
    return FilterExec(node, plan(node.child, ids))


@_plan.register
def _(node: rel.KeyFilter, ids) -> Operator:
    source = node.source
    if ids is not None and isinstance(source, rel.Exchange):  # read every partition of it
        return KeyFilterExec(node, plan(node.child, ids),
                             ExchangeReadExec(source, ids[source], whole=True))
    return KeyFilterExec(node, plan(node.child, ids), plan(source, ids))


@_plan.register
def _(node: rel.Project, ids) -> Operator:
    return ProjectExec(node, plan(node.child, ids))


@_plan.register
def _(node: rel.Aggregate, ids) -> Operator:
    return AggregateExec(node, plan(node.child, ids))


@_plan.register
def _(node: rel.Join, ids) -> Operator:
    left, right = plan(node.left, ids), plan(node.right, ids)
    if node.left_keys:
        return HashJoinExec(node, left, right)
    return NestedLoopJoinExec(node, left, right)


@_plan.register
def _(node: rel.Sort, ids) -> Operator:
    return SortExec(plan(node.child, ids), node.keys)


@_plan.register
def _(node: rel.TopN, ids) -> Operator:
    return SortExec(plan(node.child, ids), node.keys, node.limit, node.offset)


@_plan.register
def _(node: rel.Limit, ids) -> Operator:
    return LimitExec(plan(node.child, ids), node.limit, node.offset)


@_plan.register
def _(node: rel.Union, ids) -> Operator:
    return UnionExec(physical_schema(node.schema), [plan(c, ids) for c in node.children])


@_plan.register
def _(node: rel.Distinct, ids) -> Operator:
    return DistinctExec(plan(node.child, ids))


@_plan.register
def _(node: rel.Expand, ids) -> Operator:
    return ExpandExec(node, plan(node.child, ids))


@_plan.register
def _(node: rel.Window, ids) -> Operator:
    return WindowExec(node, plan(node.child, ids))


@_plan.register
def _(node: rel.Exchange, ids) -> Operator:
    if ids is None:
        return PassThroughExec(plan(node.child, ids))
    return ExchangeReadExec(node, ids[node])
