"""Parse Spark's ``TreeNode.toJSON()`` (flattened pre-order arrays) into a small generic tree.

The encoding is specified in ``tools/tpch/PLANS.md`` (section 2): a tree is a JSON array of node
objects in pre-order, each with ``class``, ``num-children`` and one key per constructor field.
Child-valued fields hold an int index into the node's children; other tree-valued fields hold
their own flattened array (a plan node's expressions, a subquery's plan).

:func:`parse` returns :class:`TreeNode` objects whose tree-valued fields are parsed too, each
node knowing its JSON path (``$[3].condition[0]``), the key of the annotations Spark's JVM
objects give us for what the JSON loses (see :mod:`executor.frontend.annotations`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from executor.errors import PlanError

SPARK_PKG = "org.apache.spark.sql."


@dataclass(eq=False)
class TreeNode:
    """One node: JVM class name, fields (tree-valued ones parsed), children, JSON path."""

    cls: str
    fields: dict[str, Any]
    children: list[TreeNode] = field(default_factory=list)
    path: str = "$"

    @property
    def name(self) -> str:
        """The simple class name (``Join``, ``AttributeReference``, ``Inner$``...)."""
        return self.cls.rsplit(".", 1)[-1]

    def child(self, key: str) -> TreeNode:
        """The child a field points at (``Join.left`` is an index into ``children``)."""
        index = self.fields.get(key)
        if not isinstance(index, int) or isinstance(index, bool):
            raise PlanError(f"{self.name} at {self.path}: field {key!r} is not a child index")
        if not 0 <= index < len(self.children):
            raise PlanError(f"{self.name} at {self.path}: child index {index} out of range")
        return self.children[index]

    def __repr__(self) -> str:
        return f"TreeNode({self.name} at {self.path}, {len(self.children)} children)"


def is_tree(value: Any) -> bool:
    """A flattened TreeNode array: non-empty, every item an object with class/num-children."""
    return (isinstance(value, list) and len(value) > 0
            and all(isinstance(x, dict) and "class" in x and "num-children" in x for x in value))


def is_plan_class(cls: str) -> bool:
    return ".plans.logical." in cls or cls.endswith("LogicalRelation")


def is_expression_class(cls: str) -> bool:
    return ".expressions." in cls


def object_name(value: Any) -> str | None:
    """``{"object": "...plans.Inner$"}`` -> ``"Inner"`` (a Scala ``object``), else None."""
    if isinstance(value, dict) and isinstance(value.get("object"), str):
        return value["object"].rsplit(".", 1)[-1].rstrip("$")
    return None


def expr_id(value: Any) -> int:
    """The ``id`` of an encoded ``ExprId``."""
    if (isinstance(value, dict) and str(value.get("product-class", "")).endswith(".ExprId")
            and isinstance(value.get("id"), int)):
        return value["id"]
    raise PlanError(f"expected an ExprId, got {value!r}")


def parse(flat: Any, path: str = "$") -> TreeNode:
    """The root of the flattened tree ``flat`` (a parsed JSON array, or JSON text)."""
    if isinstance(flat, str | bytes):
        import json

        flat = json.loads(flat)
    if not is_tree(flat):
        raise PlanError(f"{path}: not a TreeNode array")
    pos = 0

    def build() -> TreeNode:
        nonlocal pos
        if pos >= len(flat):
            raise PlanError(f"{path}: truncated TreeNode array ({len(flat)} nodes)")
        raw = flat[pos]
        here = f"{path}[{pos}]"
        pos += 1
        count = raw["num-children"]
        if not isinstance(count, int) or count < 0:
            raise PlanError(f"{here}: bad num-children {count!r}")
        host_is_expr = is_expression_class(raw["class"])
        fields = {}
        for key, value in raw.items():
            if key in ("class", "num-children"):
                continue
            fields[key] = _parse_field(value, f"{here}.{key}", host_is_expr)
        node = TreeNode(raw["class"], fields, [], here)
        node.children = [build() for _ in range(count)]
        return node

    root = build()
    if pos != len(flat):
        raise PlanError(f"{path}: {len(flat) - pos} trailing node(s) after the root")
    return root


def _parse_field(value: Any, path: str, host_is_expr: bool) -> Any:
    if is_tree(value):
        # Inside an expression, an expression-valued non-child field repeats children that are
        # already in the flattened array (CaseWhen.branches/elseValue, PLANS.md 2.3): keep it
        # raw. Plan trees there (subquery plans) are new and parsed.
        if host_is_expr and not is_plan_class(value[0]["class"]):
            return value
        return parse(value, path)
    if isinstance(value, list) and value and any(contains_tree(v) for v in value):
        return [_parse_field(v, f"{path}[{i}]", host_is_expr) for i, v in enumerate(value)]
    if isinstance(value, dict) and "product-class" in value and contains_tree(value):
        return {k: _parse_field(v, f"{path}.{k}", host_is_expr) if k != "product-class" else v
                for k, v in value.items()}
    return value


def contains_tree(value: Any) -> bool:
    """Whether ``value`` is, or holds somewhere inside, a flattened tree."""
    if is_tree(value):
        return True
    if isinstance(value, list):
        return any(contains_tree(v) for v in value)
    if isinstance(value, dict):
        return any(contains_tree(v) for k, v in value.items() if k != "class")
    return False


def walk(node: TreeNode):
    """``node`` and every node below it, including trees held in fields, pre-order."""
    yield node
    for value in node.fields.values():
        yield from _walk_value(value)
    for c in node.children:
        yield from walk(c)


def _walk_value(value: Any):
    if isinstance(value, TreeNode):
        yield from walk(value)
    elif isinstance(value, list):
        for v in value:
            yield from _walk_value(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _walk_value(v)
