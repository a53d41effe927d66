"""Making a failing graph small: fewer results, fewer nodes, flatter fusions, smaller shapes.

Each step proposes a smaller valid function; the caller keeps it if the failure persists. The
steps, tried greedily until none helps or the budget runs out:

- keep a single result (the failing output first) and drop the dead code;
- cut a node out: it becomes a new parameter of the same type (its producers die with it);
- bypass a node: its users read an operand of the same type instead;
- inline a fusion's body into the function, so the failure shows without the fusion;
- bypass a loop: a `get` of it becomes the loop's initial value of that element;
- shrink inside a fusion's or a loop's body (dead code, bypassed nodes, splats, inlined
  fusions; the body keeps its parameters and result types);
- replace a constant by a splat of one of its elements;
- shrink a parameter's or a constant's dimension (halve it, or make it 1), retyping every node
  after it through the type rules; candidates the rules reject are skipped.

Lists (pass pipelines, lines of text) shrink by `ddmin`-style chunk removal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

import numpy as np

from compiler.fuzz.kind import Budget
from ir.attrs import ConstData
from ir.builder import constant, make_node, parameter
from ir.diagnostics import TesselError
from ir.graph import Function, Module, Node
from ir.ops import Op
from ir.types import TensorType, TupleType

T = TypeVar("T")


class Trial(Generic[T]):
    """A minimizer's predicate: does the candidate still fail? False once the budget is spent
    (and `spent` tells the search to stop)."""

    def __init__(self, budget: Budget, test: Callable[[T], bool]) -> None:
        self.budget = budget
        self.test = test
        self.spent = False

    def __call__(self, candidate: T) -> bool:
        if not self.budget.spend():
            self.spent = True
            return False
        return self.test(candidate)


def _fresh_name(fn: Function) -> str:
    taken = set(fn.param_names)
    k = 0
    while f"cut{k}" in taken:
        k += 1
    return f"cut{k}"


def live(fn: Function, keep_params: bool = False) -> Function:
    """Drop body nodes no result needs, and parameters nothing uses (unless `keep_params`:
    a fusion body's parameters must match its operands)."""
    needed: set[Node] = set()
    stack = list(fn.results)
    while stack:
        n = stack.pop()
        if n not in needed:
            needed.add(n)
            stack.extend(n.srcs)
    body = tuple(n for n in fn.body if n in needed)
    params = fn.params if keep_params else tuple(p for p in fn.params if p in needed)
    return fn.replace(params=params, body=body)


def substitute(
    fn: Function, old: Node, new: Node, extra_params: Sequence[Node] = (), keep_params: bool = False
) -> Function:
    """`fn` with every use of `old` reading `new` (of the same type), then the dead code dropped."""
    mapping: dict[Node, Node] = {old: new}
    known = set(fn.params) | set(fn.body) | set(extra_params)
    body = []
    for n in fn.body:
        if n is old:
            if new not in known:  # a new constant takes the old node's place in the schedule
                body.append(new)
            continue
        srcs = tuple(mapping.get(s, s) for s in n.srcs)
        m = n if srcs == n.srcs else n.replace(srcs=srcs)
        mapping[n] = m
        body.append(m)
    results = tuple(mapping.get(r, r) for r in fn.results)
    params = fn.params + tuple(extra_params)
    return live(fn.replace(params=params, body=tuple(body), results=results), keep_params)


def inline_fusion(fn: Function, fusion: Node, keep_params: bool = False) -> Function:
    """The fusion's body spliced into `fn` in its place (types are unchanged)."""
    body_fn: Function = fusion.attrs["body"]
    mapping: dict[Node, Node] = dict(zip(body_fn.params, fusion.srcs, strict=True))
    spliced: list[Node] = []
    for n in body_fn.body:
        srcs = tuple(mapping.get(s, s) for s in n.srcs)
        m = n.replace(srcs=srcs)
        mapping[n] = m
        spliced.append(m)
    value = mapping[body_fn.results[0]]
    outer: dict[Node, Node] = {fusion: value}
    body: list[Node] = []
    for n in fn.body:
        if n is fusion:
            body.extend(spliced)
            continue
        srcs = tuple(outer.get(s, s) for s in n.srcs)
        m = n if srcs == n.srcs else n.replace(srcs=srcs)
        outer[n] = m
        body.append(m)
    results = tuple(outer.get(r, r) for r in fn.results)
    return live(fn.replace(body=tuple(body), results=results), keep_params)


def retyped(fn: Function, changes: dict[Node, Node]) -> Function | None:
    """`fn` with some sources (parameters, constants) replaced by ones of another type, every
    later node rebuilt through its type rule; None when a rule rejects the new types."""
    mapping: dict[Node, Node] = dict(changes)
    params = tuple(mapping.get(p, p) for p in fn.params)
    body = []
    try:
        for n in fn.body:
            if n in mapping:
                body.append(mapping[n])
                continue
            srcs = tuple(mapping.get(s, s) for s in n.srcs)
            if srcs != n.srcs:
                if n.op is Op.FUSION:
                    return None  # its body's parameters are typed: leave such graphs alone
                m = make_node(n.op, srcs, dict(n.attrs), name=n.name, loc=n.loc)
            else:
                m = n
            mapping[n] = m
            body.append(m)
    except (TesselError, ValueError):
        return None
    results = tuple(mapping.get(r, r) for r in fn.results)
    return fn.replace(params=params, body=tuple(body), results=results)


def _smaller_shapes(shape: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    for i, d in enumerate(shape):
        for smaller in sorted({1, d // 2} - {d}):
            if 0 < smaller < d:
                yield (*shape[:i], smaller, *shape[i + 1 :])


def candidates(fn: Function, focus: int | None = None) -> Iterator[Function]:
    """Smaller variants of `fn`, the most promising (biggest cuts) first."""
    yield from _result_candidates(fn, focus)
    for n in fn.body:
        if n.op is Op.FUSION:
            yield inline_fusion(fn, n)
    yield from _bypasses(fn)
    for n in fn.body:  # cutting a node replaces its whole cone of producers
        if isinstance(n.type, TupleType):
            continue  # a parameter is a tensor: cut the loop's gets instead
        if n.op is not Op.CONSTANT or n.type.size > 1:
            cut = parameter(_fresh_name(fn), n.type)
            yield substitute(fn, n, cut, [cut])
    for n in fn.body:
        for s in dict.fromkeys(n.srcs):
            if s.type == n.type:
                yield substitute(fn, n, s)
    yield from _splat_candidates(fn)
    yield from _body_candidates(fn)
    yield from _shape_candidates(fn)


# the nested functions of a loop or branch the shrinker makes smaller (a loop's condition is
# the counter's test: left alone)
_SHRUNK_BODIES = {Op.WHILE: ("body",), Op.FOR: ("body",), Op.COND: ("true_branch", "false_branch")}


def _bypasses(fn: Function, keep_params: bool = False) -> Iterator[Function]:
    """A loop's result read as its initial value, a branch's as one of its operands of that
    type: the loop or branch dies."""
    for n in fn.body:
        if n.op is not Op.GET:
            continue
        source, k = n.srcs[0], n.attrs["index"]
        if source.op is Op.COND:
            starts = [s for s in source.srcs[1:] if s.type == n.type]
        else:
            starts = [source.srcs[k + 2 if source.op is Op.FOR else k]]
        for s in starts:
            yield substitute(fn, n, s, keep_params=keep_params)


def _body_candidates(fn: Function) -> Iterator[Function]:
    """A fusion or a loop whose body is smaller: dead code dropped, a node bypassed, a constant
    splat, a nested fusion inlined (the body keeps its parameters and result types)."""
    for n in fn.body:
        for key in _SHRUNK_BODIES.get(n.op, ()):
            inner: Function = n.attrs[key]
            for b in _smaller_bodies(inner):
                if b != inner:
                    yield substitute(fn, n, n.replace(attrs=n.attrs.replace(**{key: b})))
        if n.op is Op.FUSION:
            body: Function = n.attrs["body"]
            used = {src for m in body.body for src in m.srcs} | set(body.results)
            keep = [i for i, p in enumerate(body.params) if p in used]
            if len(keep) < len(body.params):  # operands the body never reads
                fewer = body.replace(params=tuple(body.params[i] for i in keep))
                srcs = tuple(n.srcs[i] for i in keep)
                yield substitute(fn, n, n.replace(srcs=srcs, attrs=n.attrs.replace(body=fewer)))
            for b in _smaller_bodies(body):
                if b != body:
                    yield substitute(fn, n, n.replace(attrs=n.attrs.replace(body=b)))


def _smaller_bodies(body: Function) -> Iterator[Function]:
    yield live(body, keep_params=True)
    yield from _bypasses(body, keep_params=True)
    for m in body.body:
        if m.op is Op.FUSION:
            yield inline_fusion(body, m, keep_params=True)
        for s in dict.fromkeys(m.srcs):
            if s.type == m.type:
                yield substitute(body, m, s, keep_params=True)
    for b in _splat_candidates(body):
        yield live(b.replace(params=body.params), keep_params=True)
    for b in _body_candidates(body):
        yield b.replace(params=body.params)


def _result_candidates(fn: Function, focus: int | None) -> Iterator[Function]:
    """One result only, the failing one (`focus`) first."""
    if len(fn.results) < 2:
        return
    order = list(range(len(fn.results)))
    if focus is not None and focus < len(order):
        order.remove(focus)
        order.insert(0, focus)
    for i in order:
        yield live(fn.replace(results=(fn.results[i],)))


def _splat_candidates(fn: Function) -> Iterator[Function]:
    """A constant that holds one value everywhere (its first)."""
    for n in fn.body:
        if n.op is Op.CONSTANT and n.type.size > 1:
            array = n.attrs["value"].array
            first = array.reshape(-1)[0]
            if not (array == first).all():
                splat = constant(np.full(array.shape, first, array.dtype))
                yield substitute(fn, n, splat.replace(name=n.name))


def _shape_candidates(fn: Function) -> Iterator[Function]:
    for p in fn.params:
        for shape in _smaller_shapes(p.shape):
            out = retyped(fn, {p: p.replace(type=TensorType(shape, p.dtype))})
            if out is not None:
                yield out
    for n in fn.body:
        if n.op is not Op.CONSTANT:
            continue
        array = n.attrs["value"].array
        for shape in _smaller_shapes(n.shape):
            part = array[tuple(slice(0, d) for d in shape)]
            new = n.replace(
                type=TensorType(shape, n.dtype), attrs=n.attrs.replace(value=ConstData(part))
            )
            out = retyped(fn, {n: new})
            if out is not None:
                yield out


def size(fn: Function) -> int:
    """How big a graph is: nodes (nested ones included) plus elements of its values."""

    def count(f: Function) -> int:
        total = len(f.params) + len(f.body)
        for n in f.body:
            total += n.type.size // 8
            total += sum(map(count, n.functions))
        return total + sum(p.type.size // 8 for p in f.params)

    return count(fn)


def shrink_module(module: Module, fails: Trial[Module], focus: int | None = None) -> Module:
    """Greedy reduction of the entry function while `fails` holds, until its budget is spent."""
    fn = module.entry_function
    progress = True
    while progress:
        progress = False
        for candidate in candidates(fn, focus):
            if size(candidate) >= size(fn) or not candidate.results:
                continue
            trial = module.replace_function(candidate)
            if fails(trial):
                fn, module, progress, focus = candidate, trial, True, 0
                break
            if fails.spent:
                return module
    return module


def shrink_list(items: list[T], fails: Trial[list[T]]) -> list[T]:
    """Remove chunks (halves, quarters, ... single items) while `fails` still holds."""
    chunk = max(len(items) // 2, 1)
    while items and chunk >= 1:
        i = 0
        removed = False
        while i < len(items):
            trial = items[:i] + items[i + chunk :]
            if trial != items and fails(trial):
                items, removed = trial, True
            else:
                i += chunk
            if fails.spent:
                return items
        if not removed:
            if chunk == 1:
                break
            chunk //= 2
    return items
