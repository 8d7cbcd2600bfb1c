"""Selective small joins first: an inner join with a small, filtered side moves down the
chain of inner joins on its other side, to the input its keys come from.

Spark's optimized plan (without cost-based optimization) joins in the order the query lists
its tables, so a filtered dimension often comes last: TPC-H Q7 joins supplier, 1.8M lineitem
rows, orders and customer before ``nation n1`` (2 of 25 nations) drops 92% of the rows.
Joining ``n1`` to supplier first makes every later join work on 8% of the rows.

Exactness: inner joins over bags are associative and commutative, so
``(A JOIN B) JOIN D ON k(A) = k(D) AND c(A, D)`` has the rows of
``(A JOIN D ON k(A) = k(D) AND c(A, D)) JOIN B`` whenever the keys and the condition read only
``A`` and ``D``. A condition reading ``B`` too stays where the join was, as a filter
(``X JOIN D ON k AND c`` is ``X JOIN D ON k`` filtered by ``c``). Projections on the way pass
``D``'s columns up, and a final projection puts the columns back in their original order.
Likewise a join keyed ``k1(A) = d1 AND k2(B) = d2`` moves next to ``A`` on ``k1 = d1`` alone,
``k2 = d2`` filtering where it was (an equality with a null is not true either way). Only
inner joins move. They move through inner joins, and into the left input of semi and anti
joins when their keys and condition read only that input: a semi/anti join keeps or drops each
left row by the row's own columns, which joining ``D`` first does not change (TPC-H Q21: the
Saudi suppliers meet lineitem before the "other supplier" semi and anti joins, not after them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from executor.ir import relations as rel
from executor.ir.expressions import ColumnRef
from executor.ir.logic import And, EqualTo, IsNotNull
from executor.ir.node import transform_up

INNER, SEMI, ANTI = rel.JoinType.INNER, rel.JoinType.SEMI, rel.JoinType.ANTI
ROUNDS = 4
"""Passes over the plan: a join that moved can make the join above its new place a selective
small side in turn (Q21: nation into supplier, then supplier with nation into lineitem)."""


def push_small_joins(plan: rel.Relation, is_small: Callable[[str], bool]) -> rel.Relation:
    """``plan`` with each inner join whose one side is *selective and small* moved down the
    other side's inner joins (see the module docstring). ``is_small(table_uri)`` says whether
    a table is small (a broadcast candidate). A side is selective and small when it only
    scans small tables, filters at least one of them by more than ``IS NOT NULL``, and is
    built from scans, filters, projections and inner joins."""

    def visit(node):
        if isinstance(node, rel.Join) and node.how is INNER:
            return _pushed(node, is_small) or node
        return node

    for _ in range(ROUNDS):
        out = transform_up(plan, visit)
        assert isinstance(out, rel.Relation)
        if out is plan:
            break
        plan = out
    return plan


def _pushed(join: rel.Join, is_small: Callable[[str], bool]) -> rel.Relation | None:
    for small, other, small_keys, other_keys in (
            (join.right, join.left, join.right_keys, join.left_keys),
            (join.left, join.right, join.left_keys, join.right_keys)):
        if not _selective_small(small, is_small):
            continue
        own = set(small.schema.names)
        for keys, condition, above in _tries(join, other_keys, small_keys):
            needed = {r.name for k in keys[0] for r in k.references()}
            if condition is not None:
                needed |= {r.name for r in condition.references() if r.name not in own}

            def attach(base: rel.Relation, small=small, keys=keys,
                       condition=condition) -> rel.Join:
                return rel.Join(base, small, INNER, keys[0], keys[1], condition)

            moved = _push(other, needed, attach, small)
            if moved is not None:
                if above is not None:
                    moved = rel.Filter(moved, above)
                return rel.Project(moved, tuple(
                    ColumnRef(f.name, f.dtype, f.nullable) for f in join.schema))
    return None


def _tries(join: rel.Join, other_keys: tuple, small_keys: tuple) -> list:
    """``((other keys, small keys), condition, filter above)`` to try in turn: the whole join;
    the equi-join alone with its condition filtering where the join was (Q7's "n1 is FRANCE
    and n2 GERMANY, or the other way round" reads both nations); one key pair alone with the
    other pairs' equalities (and the condition) filtering where the join was (Q5's supplier
    joins lineitem by ``l_suppkey`` and customer by ``c_nationkey``: it joins lineitem, and
    ``c_nationkey = s_nationkey`` filters above)."""
    cond = join.condition
    tries = [((other_keys, small_keys), cond, None)]
    if cond is not None:
        tries.append(((other_keys, small_keys), None, cond))
    if len(other_keys) > 1:
        for i in range(len(other_keys)):
            rest = [EqualTo(o, s) for j, (o, s) in enumerate(zip(other_keys, small_keys,
                                                                  strict=True)) if j != i]
            above = functools.reduce(And, rest + ([cond] if cond is not None else []))
            tries.append((((other_keys[i],), (small_keys[i],)), None, above))
    return tries


def _push(node: rel.Relation, needed: set[str], attach: Callable[[rel.Relation], rel.Join],
          small: rel.Relation) -> rel.Relation | None:
    """``node`` with the small side joined to the deepest input under its inner joins that
    has every ``needed`` column, or None if ``node`` is not an inner join (or a projection
    passing ``needed`` through over one) -- then the join stays where it is."""
    if isinstance(node, rel.Project):
        passed = {e.name for e in node.exprs if isinstance(e, ColumnRef)}
        if not needed <= passed:
            return None
        inner = _push(node.child, needed, attach, small)
        if inner is None:
            return None
        extra = tuple(ColumnRef(f.name, f.dtype, f.nullable) for f in small.schema)
        return node.replace(child=inner, exprs=node.exprs + extra)
    if not isinstance(node, rel.Join):
        return None
    if node.how in (SEMI, ANTI):  # they only drop rows of their left input, by its columns
        if not needed <= set(node.left.schema.names):
            return None
        return node.replace(left=_push(node.left, needed, attach, small) or attach(node.left))
    if node.how is not INNER:
        return None
    for side in ("left", "right"):
        child = getattr(node, side)
        if needed <= set(child.schema.names):
            deeper = _push(child, needed, attach, small) or attach(child)
            return node.replace(**{side: deeper})
    return None


def _selective_small(node: rel.Relation, is_small: Callable[[str], bool]) -> bool:
    filtered = False
    for n in node.walk():
        if isinstance(n, rel.Scan):
            if not is_small(n.table):
                return False
        elif isinstance(n, rel.Join):
            if n.how is not INNER:
                return False
        elif not isinstance(n, rel.Project | rel.Filter):
            return False
        filtered |= filters_rows(n)
    return filtered


def filters_rows(n: rel.Relation) -> bool:
    """Whether ``n`` itself (a filter, or a scan's filter) tests more than ``IS NOT NULL``
    (which Spark adds to most scans, and which drops few rows if any)."""
    if isinstance(n, rel.Filter):
        return not _only_not_null(n.condition)
    return isinstance(n, rel.Scan) and n.filter is not None and not _only_not_null(n.filter)


def _only_not_null(e) -> bool:
    if isinstance(e, And):
        return _only_not_null(e.left) and _only_not_null(e.right)
    return isinstance(e, IsNotNull)
