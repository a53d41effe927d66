"""Nested containers of arrays (pytrees): flatten to leaves plus a hashable structure, and back.

Tuples, lists, dicts (in sorted key order, as JAX does), named tuples and None are containers;
everything else is a leaf. The structure (`TreeDef`) is part of a compiled function's cache key,
so it must be hashable and compare by value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TreeDef:
    """A container's shape: its kind, its keys (dicts) or type (named tuples), its children.

    A leaf is `TreeDef("leaf")`; `None` is `TreeDef("none")`, a container with no leaves.
    """

    kind: str  # leaf, none, tuple, list, dict, namedtuple
    children: tuple[TreeDef, ...] = ()
    meta: Any = None  # dict keys, or the named tuple class

    @property
    def num_leaves(self) -> int:
        if self.kind == "leaf":
            return 1
        return sum(c.num_leaves for c in self.children)

    def __str__(self) -> str:
        if self.kind == "leaf":
            return "*"
        if self.kind == "none":
            return "None"
        inner = [str(c) for c in self.children]
        if self.kind == "dict":
            inner = [f"{k!r}: {c}" for k, c in zip(self.meta, inner, strict=True)]
            return "{" + ", ".join(inner) + "}"
        if self.kind == "list":
            return "[" + ", ".join(inner) + "]"
        name = self.meta.__name__ if self.kind == "namedtuple" else ""
        return name + "(" + ", ".join(inner) + ("," if len(inner) == 1 and not name else "") + ")"


LEAF = TreeDef("leaf")


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    leaves: list[Any] = []
    return leaves, _flatten(tree, leaves)


def _flatten(x: Any, leaves: list[Any]) -> TreeDef:
    if x is None:
        return TreeDef("none")
    if isinstance(x, dict):
        try:
            keys = tuple(sorted(x))
        except TypeError:
            raise TypeError("dictionary keys in arguments and results must be sortable") from None
        return TreeDef("dict", tuple(_flatten(x[k], leaves) for k in keys), keys)
    if _is_namedtuple(x):
        return TreeDef("namedtuple", tuple(_flatten(c, leaves) for c in x), type(x))
    if isinstance(x, tuple | list):
        kind = "tuple" if isinstance(x, tuple) else "list"
        return TreeDef(kind, tuple(_flatten(c, leaves) for c in x))
    leaves.append(x)
    return LEAF


def unflatten(treedef: TreeDef, leaves: list[Any]) -> Any:
    it = iter(leaves)
    out = _build(treedef, it)
    if next(it, _END) is not _END:
        raise ValueError("more leaves than the structure holds")
    return out


_END = object()


def _build(t: TreeDef, it: Iterator[Any]) -> Any:
    if t.kind == "leaf":
        return next(it)
    if t.kind == "none":
        return None
    children = [_build(c, it) for c in t.children]
    if t.kind == "dict":
        return dict(zip(t.meta, children, strict=True))
    if t.kind == "namedtuple":
        return t.meta(*children)
    return children if t.kind == "list" else tuple(children)


def leaf_paths(treedef: TreeDef, prefix: str) -> list[str]:
    """A readable name per leaf: `params['w1']`, `args[0]`, `x`."""
    out: list[str] = []
    _paths(treedef, prefix, out.append)
    return out


def _paths(t: TreeDef, prefix: str, emit: Callable[[str], None]) -> None:
    if t.kind == "leaf":
        emit(prefix)
    elif t.kind == "dict":
        for k, c in zip(t.meta, t.children, strict=True):
            _paths(c, f"{prefix}[{k!r}]", emit)
    elif t.kind == "namedtuple":
        for field, c in zip(t.meta._fields, t.children, strict=True):
            _paths(c, f"{prefix}.{field}", emit)
    else:
        for i, c in enumerate(t.children):
            _paths(c, f"{prefix}[{i}]", emit)


def leaf_slots(tree: Any) -> list[tuple[Any, Any]]:
    """Where each leaf sits, in `flatten`'s order: (the container holding it, its key or
    index); (None, None) for a tree that is a leaf itself."""
    slots: list[tuple[Any, Any]] = []
    _slots(tree, None, None, slots)
    return slots


def _slots(x: Any, container: Any, key: Any, out: list[tuple[Any, Any]]) -> None:
    if x is None:
        return
    if isinstance(x, dict):
        for k in sorted(x):
            _slots(x[k], x, k, out)
    elif isinstance(x, tuple | list):
        for i, c in enumerate(x):
            _slots(c, x, i, out)
    else:
        out.append((container, key))
