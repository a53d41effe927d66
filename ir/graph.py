"""IR containers: immutable nodes, functions (graphs) and modules.

A `Node` is one SSA value: an op applied to source nodes, with attributes and a static type.
Nodes compare by identity, so maps keyed by node never merge two distinct values; structural
equality lives on `Function` and `Module`, which is what tests compare (`rewritten == expected`).
A `Function` keeps its nodes in an explicit schedule (`body`), so printing preserves the
author's order, dead code can exist until DCE removes it, and later passes have an execution
order to reason about.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx

from ir.attrs import Attrs
from ir.diagnostics import Loc
from ir.dtypes import DType
from ir.ops import Op
from ir.types import TensorType


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    op: Op
    type: TensorType
    srcs: tuple[Node, ...] = ()
    attrs: Attrs = field(default_factory=Attrs)
    name: str | None = None  # a hint for printing; not part of the value's meaning
    loc: Loc | None = None  # provenance: graph-file or Python source position

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def functions(self) -> list[Function]:
        """The nested functions among the attributes: a fusion's or loop's body, a loop's
        condition, a branch's sides."""
        return [v for v in self.attrs.values() if isinstance(v, Function)]

    def replace(self, **changes: Any) -> Node:
        return replace(self, **changes)

    def __repr__(self) -> str:
        srcs = ", ".join(f"<{s.op.value}>" for s in self.srcs)
        return f"Node({self.op.value}({srcs}) : {self.type}, name={self.name!r})"


def structural_key(node: Node, src_ids: Iterable[Any]) -> tuple[Any, ...]:
    """What makes two nodes compute the same value, given ids for their (deduplicated) sources."""
    return (node.op, node.type, node.attrs, tuple(src_ids))


@dataclass(frozen=True, slots=True, eq=False)
class Function:
    name: str
    params: tuple[Node, ...]
    body: tuple[Node, ...]
    results: tuple[Node, ...]
    loc: Loc | None = None

    @property
    def param_types(self) -> tuple[TensorType, ...]:
        return tuple(p.type for p in self.params)

    @property
    def result_types(self) -> tuple[TensorType, ...]:
        return tuple(r.type for r in self.results)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name or f"arg{i}" for i, p in enumerate(self.params))

    def nodes(self) -> Iterator[Node]:
        """Parameters, then the body in schedule order."""
        yield from self.params
        yield from self.body

    def walk(self) -> Iterator[Node]:
        """The body in schedule order, each node followed by the bodies of the functions nested
        in it (fusions, loops, branches), depth first."""
        for n in self.body:
            yield n
            for f in n.functions:
                yield from f.walk()

    def replace(self, **changes: Any) -> Function:
        return replace(self, **changes)

    def dependency_graph(self) -> nx.DiGraph:
        """An analysis view: an edge src -> user for every operand use (parallel uses collapse)."""
        g = nx.DiGraph()
        for n in self.nodes():
            g.add_node(n)
            for s in n.srcs:
                g.add_edge(s, n)
        return g

    def users(self) -> dict[Node, list[Node]]:
        out: dict[Node, list[Node]] = {n: [] for n in self.nodes()}
        for n in self.body:
            for s in n.srcs:
                out.setdefault(s, []).append(n)
        return out

    def _shape_key(self) -> tuple[Any, ...]:
        index: dict[Node, int] = {}
        rows: list[Any] = []
        for i, n in enumerate(self.nodes()):
            index[n] = i
            src_ids = tuple(index.get(s, -1) for s in n.srcs)
            rows.append(structural_key(n, src_ids))
        return (
            self.name,
            self.param_names,
            tuple(rows),
            tuple(index.get(r, -1) for r in self.results),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Function):
            return NotImplemented
        return self is other or self._shape_key() == other._shape_key()

    def __hash__(self) -> int:
        return hash(self._shape_key())


@dataclass(frozen=True, slots=True, eq=False)
class Module:
    functions: tuple[Function, ...]
    entry: str

    def __post_init__(self) -> None:
        names = [f.name for f in self.functions]
        if self.entry not in names:
            raise ValueError(f"entry function @{self.entry} is not in the module")

    @property
    def entry_function(self) -> Function:
        return self.function(self.entry)

    def function(self, name: str) -> Function:
        for f in self.functions:
            if f.name == name:
                return f
        raise KeyError(name)

    def by_name(self) -> Mapping[str, Function]:
        return {f.name: f for f in self.functions}

    def replace_function(self, fn: Function) -> Module:
        return Module(tuple(fn if f.name == fn.name else f for f in self.functions), self.entry)

    def replace(self, **changes: Any) -> Module:
        return replace(self, **changes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Module):
            return NotImplemented
        return self.entry == other.entry and self.functions == other.functions

    def __hash__(self) -> int:
        return hash((self.entry, self.functions))
