"""The Plan IR: typed, immutable, JSON-serialisable relational operators and expressions.

Nodes are frozen dataclasses validated on construction; see :mod:`.expressions`,
:mod:`.functions`, :mod:`.aggregates`, :mod:`.windows`, :mod:`.relations`
and :mod:`.subqueries`. :mod:`.serde` persists a plan
(with a stable :func:`fingerprint`), :mod:`.explain` renders it. Every node class is
re-exported here (``from executor import ir; ir.Scan(...)``).
"""

from executor.ir import (
    aggregates,
    expressions,
    functions,
    relations,
    subqueries,
    types,
    windows,
)
from executor.ir.explain import explain, expr_str
from executor.ir.node import NODE_TYPES, Node
from executor.ir.relations import AggregateMode, JoinType, Partitioning
from executor.ir.serde import fingerprint, from_json, to_json
from executor.ir.types import Field, Schema, decimal
from executor.ir.windows import FrameKind

globals().update(NODE_TYPES)

__all__ = [
    *sorted(NODE_TYPES),
    "AggregateMode",
    "Field",
    "FrameKind",
    "JoinType",
    "Node",
    "Partitioning",
    "Schema",
    "aggregates",
    "decimal",
    "explain",
    "expr_str",
    "expressions",
    "fingerprint",
    "from_json",
    "functions",
    "relations",
    "subqueries",
    "to_json",
    "types",
    "windows",
]
