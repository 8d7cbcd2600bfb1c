"""What the plan JSON loses, recovered from the JVM objects (``tools/tpch/PLANS.md`` section 5).

:class:`PlanFacts` bundles, for one optimized plan: per expression node (keyed by JSON path)
the resolved ``dataType``, ``nullable``, ``evalMode``, ``escapeChar``...; per ``LogicalRelation``
its source (format, root paths, schemas, options) keyed by output exprIds; and the result
schema. :mod:`executor.frontend.spark` collects them from a live session; the dumped plans in
``tools/tpch/plans/`` carry the same three keys, so :meth:`PlanFacts.from_dump` reads those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PlanFacts:
    """Annotations of one plan: ``nodes`` (path -> facts), ``relations``, ``output_schema``."""

    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    relations: list[dict[str, Any]] = field(default_factory=list)
    output_schema: dict[str, Any] | None = None
    query: str = ""
    """A label for error messages (``q11``); empty when unknown."""
    output_ids: tuple[int, ...] = ()
    """exprIds of the plan's output attributes (the root may pass its child's columns
    through without naming them, e.g. a Filter over a scan); empty when unknown."""

    @classmethod
    def from_dump(cls, doc: dict[str, Any], tables: dict[str, str] | None = None) -> PlanFacts:
        """From a ``tools/tpch/plans/qNN.json`` document; ``tables`` maps the ``<table>``
        placeholders of its root paths to real locations."""
        relations = []
        for r in doc.get("relations", []):
            r = dict(r)
            if tables is not None:
                r["root_paths"] = [_resolve_placeholder(p, tables) for p in r["root_paths"]]
            relations.append(r)
        return cls(dict(doc.get("annotations", {})), relations, doc.get("output_schema"),
                   doc.get("query", ""))

    def node(self, path: str) -> dict[str, Any]:
        return self.nodes.get(path, {})

    def relation(self, output_ids: list[int]) -> dict[str, Any] | None:
        """The relation record whose output exprIds are ``output_ids``."""
        for r in self.relations:
            if list(r.get("output_expr_ids", [])) == list(output_ids):
                return r
        return None


def _resolve_placeholder(path: str, tables: dict[str, str]) -> str:
    if path.startswith("<") and path.endswith(">"):
        return tables.get(path[1:-1], path)
    return path
