"""Rebuilding a function bottom-up with replacements: the one traversal every rewrite pass uses.

Nodes are immutable, so a rewrite returns a new node (or an existing one) of the same type, and
`rewrite_function` threads the replacements through every user. New nodes that a replacement
introduces are scheduled just before it; replaced nodes drop out of the schedule. Nodes that
were dead stay dead until `dce` removes them.
"""

from __future__ import annotations

from collections.abc import Callable

from ir.attrs import Attrs
from ir.graph import Function, Node
from ir.ops import CONTROL, Op

Rewrite = Callable[[Node], Node | None]


class RewriteTypeError(AssertionError):
    """A rewrite replaced a node by one of another type: a bug in the pass."""


def rewrite_function(fn: Function, rewrite: Rewrite) -> Function:
    """Apply `rewrite` to every body node after its operands were rewritten.

    `rewrite(node)` returns None to keep `node`, or its replacement. Returns `fn` itself when
    nothing changed, so passes can report "no change" cheaply.
    """
    mapping: dict[Node, Node] = {p: p for p in fn.params}
    scheduled: set[Node] = set(fn.params)
    body: list[Node] = []

    def schedule(root: Node) -> None:
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node in scheduled:
                continue
            if expanded:
                scheduled.add(node)
                body.append(node)
                continue
            stack.append((node, True))
            stack.extend((s, False) for s in reversed(node.srcs) if s not in scheduled)

    for old in fn.body:
        srcs = tuple(mapping[s] for s in old.srcs)
        node = old if srcs == old.srcs else old.replace(srcs=srcs)
        new = rewrite(node) or node
        if new.type != old.type:
            raise RewriteTypeError(f"rewrite of {old!r} changed its type to {new.type}")
        mapping[old] = new
        schedule(new)
    results = tuple(mapping[r] for r in fn.results)
    if (
        results == fn.results
        and len(body) == len(fn.body)
        and all(a is b for a, b in zip(body, fn.body, strict=False))
    ):
        return fn
    return fn.replace(body=tuple(body), results=results)


def rewrite_loop_bodies(fn: Function, transform: Callable[[Function], Function]) -> Function:
    """`fn` with `transform` applied to the nested functions of each of its loops (not to
    fusion bodies, which are groupings of `fn`'s own ops)."""

    def inside(node: Node) -> Node | None:
        if node.op not in CONTROL:
            return None
        attrs = {k: transform(v) if isinstance(v, Function) else v for k, v in node.attrs.items()}
        if all(attrs[k] is v for k, v in node.attrs.items()):
            return None
        return node.replace(attrs=Attrs(attrs))

    return rewrite_function(fn, inside)


def inline_fusion(node: Node) -> Node | None:
    """A fusion as its own body's nodes computed on its operands (nested fusions too); None
    for any other node. A rewrite for `rewrite_function`."""
    if node.op is not Op.FUSION:
        return None
    body = rewrite_function(node.attrs["body"], inline_fusion)  # deeper levels first
    mapping: dict[Node, Node] = dict(zip(body.params, node.srcs, strict=True))
    for inner in body.body:
        mapping[inner] = inner.replace(srcs=tuple(mapping[s] for s in inner.srcs), loc=None)
    return mapping[body.results[0]]
