"""The immutable base of every IR node (after ibis' ``Concrete``).

Subclasses are ``@dataclass(frozen=True)``: they compare and hash by value, refuse mutation and
are rewritten by copy (:meth:`Node.replace`). ``__post_init__`` turns lists into tuples (so a node
decoded from JSON equals the one encoded) and then calls :meth:`Node._validate`, so an invalid
node cannot exist. Every concrete subclass registers itself by class name for :mod:`serde`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from enum import Enum
from typing import Any, ClassVar, TypeVar

from executor.errors import PlanError

N = TypeVar("N", bound="Node")
E = TypeVar("E", bound=Enum)

NODE_TYPES: dict[str, type[Node]] = {}


class Node:
    """Base of IR nodes: validated on construction, immutable, value-equal."""

    abstract: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("abstract", False):
            cls.abstract = False
            if cls.__name__ in NODE_TYPES and NODE_TYPES[cls.__name__] is not cls:
                raise TypeError(f"duplicate IR node name {cls.__name__}")
            NODE_TYPES[cls.__name__] = cls

    def __post_init__(self) -> None:
        cls = type(self)
        if cls.abstract:
            raise PlanError(f"{cls.__name__} is abstract")
        if cls not in _HASH_CACHED:
            _cache_hash(cls)
        for name in _field_names(cls):
            value = getattr(self, name)
            if isinstance(value, list):
                self._set(name, _deep_tuple(value))
        self._validate()

    def _validate(self) -> None:
        """Raise :class:`PlanError` if the node is malformed."""

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _coerce_enum(self, name: str, enum: type[E]) -> None:
        value = getattr(self, name)
        if not isinstance(value, enum):
            try:
                self._set(name, enum(value))
            except ValueError:
                allowed = ", ".join(m.value for m in enum)
                raise PlanError(
                    f"{type(self).__name__}.{name}: {value!r} is not one of {allowed}"
                ) from None

    def replace(self: N, **changes: Any) -> N:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def field_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _field_names(type(self))}

    def __getstate__(self) -> dict[str, Any]:
        # The remembered hash is of this process's string hashing: not carried elsewhere.
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}


_HASH_CACHED: set[type] = set()


def _cache_hash(cls: type[Node]) -> None:
    """Make ``cls`` remember each node's hash: the dataclass hash of a node hashes its whole
    subtree, and plans are looked up by node (exchanges by value, stage cutting) many
    times."""
    computed = cls.__dict__.get("__hash__")
    if computed is not None:
        def remembered(self, computed=computed) -> int:
            try:
                return self.__dict__["_hash"]
            except KeyError:
                h = computed(self)
                object.__setattr__(self, "_hash", h)
                return h

        cls.__hash__ = remembered  # type: ignore[method-assign,assignment]
    _HASH_CACHED.add(cls)


@functools.cache
def _field_names(cls: type[Node]) -> tuple[str, ...]:
    """The dataclass fields of a node class (``dataclasses.fields`` was a tenth of planning)."""
    return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]


def transform_up(value: Any, fn: Callable[[Node], Node]) -> Any:
    """``value`` (a node, a tuple of field values, or any other field value) with ``fn``
    applied to every node in it, children first. What ``fn`` leaves as it is stays the same
    object, and so does every node above it that nothing below changed."""
    if isinstance(value, tuple):
        items = tuple(transform_up(v, fn) for v in value)
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if not isinstance(value, Node):
        return value
    changes = {k: new for k, v in value.field_values().items()
               if (new := transform_up(v, fn)) is not v}
    return fn(value.replace(**changes) if changes else value)


def _deep_tuple(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_deep_tuple(v) for v in value)
    return value


def check(condition: bool, node: Node | str, message: str) -> None:
    """Raise a :class:`PlanError` naming the node unless ``condition`` holds."""
    if not condition:
        name = node if isinstance(node, str) else type(node).__name__
        raise PlanError(f"{name}: {message}")
