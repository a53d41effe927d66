"""Passes that remove redundancy without changing any op: common subexpressions and dead code."""

from __future__ import annotations

import networkx as nx

from ir.graph import Function, Node, structural_key
from passes.base import Pass, PassContext, register
from passes.rewrite import rewrite_function


@register
class CSE(Pass):
    """Common-subexpression elimination: one node for each distinct (op, type, attrs, operands).

    Two nodes with the same op, type, attributes and (already deduplicated) operands compute the
    same value, so later ones are replaced by the first. Constants are compared by content.
    The first occurrence keeps its place in the schedule and its name hint.
    """

    name = "cse"

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        seen: dict[tuple[object, ...], Node] = {}

        def dedupe(node: Node) -> Node | None:
            key = structural_key(node, (id(s) for s in node.srcs))
            first = seen.setdefault(key, node)
            return None if first is node else first

        return rewrite_function(fn, dedupe)


@register
class DCE(Pass):
    """Dead-code elimination: drop body nodes whose values no result depends on.

    Liveness is reachability to a result in the dependency graph (networkx ancestors). The
    schedule order of the surviving nodes is kept.
    """

    name = "dce"

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        graph = fn.dependency_graph()
        live: set[Node] = set(fn.results)
        for r in fn.results:
            live |= nx.ancestors(graph, r)
        body = tuple(n for n in fn.body if n in live)
        return fn if len(body) == len(fn.body) else fn.replace(body=body)
