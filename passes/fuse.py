"""XLA-style fusion: producer-consumer grouping into `fusion` ops with nested bodies.

Three kinds of group, named after XLA's:
- loop:   elementwise ops, broadcasts, slices, reverses, pads and reshapes that only add or
          drop unit dimensions, one loop over the output;
- input:  a reduction with its elementwise producers (the reduce is the group's root);
- output: a dot_general or conv2d with its elementwise epilogue (bias, activation, scale),
          applied while the output tile is still in registers.

Quantization ops (quantize, dequantize, requantize) are elementwise too, with parameters read
at the element's channel, so they join loop groups and the epilogues of integer contractions
(bias add in int32, requantize with its relu clamp, dequantize to f32: the int8 GEMM applies
them to each block of C). They stay out of float contractions' epilogues, which a float GEMM
runs with elementwise ops only (codegen/gemm_plan.py).

Consumers are visited from the results backwards; each tries to absorb its producers. Every
producer-consumer pair left unfused is recorded with the reason, for `--explain-fusion`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import networkx as nx

from ir.builder import make_node
from ir.graph import Function, Node
from ir.ops import CONTRACTION, ELEMENTWISE, QUANTIZATION, Op, fusion_kind
from passes.base import Pass, PassContext, register

# Cheap to recompute, so they may be copied into several groups instead of blocking fusion.
# Slice, reverse and pad are index arithmetic on their operand (as in XLA's loop fusion): fused,
# a stencil's shifted views and an in-place update's pad and select cost no copies of their own.
CHEAP = frozenset({Op.BROADCAST_IN_DIM, Op.CONSTANT, Op.IOTA, Op.SLICE, Op.REVERSE, Op.PAD})
# gather reads its operand at positions loaded from its indices: index arithmetic too, so
# `table[idx] * 2` (and the reshape that shapes idx) is one loop over the result
LOOP_OPS = ELEMENTWISE | QUANTIZATION | CHEAP | {Op.GATHER}
# a consumer that reads its operand at another index
SHIFTS = frozenset({Op.SLICE, Op.REVERSE, Op.PAD})
# values of `int-epilogue`: which integer contractions absorb an epilogue
INT_EPILOGUE = {
    "true": CONTRACTION,
    "false": frozenset(),
    **{op.value: frozenset({op}) for op in sorted(CONTRACTION, key=lambda op: op.value)},
}
SMALL_CONSTANT = 64  # constants up to this many elements are copied into bodies, not passed in
TINY = 16  # elements: a group of values no bigger is scalar code (`max-tiny-ops`)


@dataclass(frozen=True)
class FuseOptions:
    max_ops: int = 32  # largest group, counting every op in the body, unless ...
    # ... its values are all tiny (at most TINY elements): scalar code, where a kernel launch
    # costs more than its ops (a loop body's chain of scalar steps)
    max_tiny_ops: int = 512
    epilogue: bool = True  # let dot_general / conv2d absorb elementwise consumers (kOutput)
    # ... also integer ones: true, false, or the one contraction op that may (the cpu's int8
    # GEMM applies epilogues, its int8 convolution does not: `dot_general` there)
    int_epilogue: str = "true"
    reductions: bool = True  # let reduce absorb elementwise producers (kInput)

    def __post_init__(self) -> None:
        for name, value in (("max-ops", self.max_ops), ("max-tiny-ops", self.max_tiny_ops)):
            if value < 2:
                raise ValueError(f"{name} must be at least 2 (a group has two ops), got {value}")
        if self.int_epilogue not in INT_EPILOGUE:
            choices = ", ".join(INT_EPILOGUE)
            raise ValueError(f"int-epilogue must be one of {choices}, got '{self.int_epilogue}'")


@dataclass
class Group:
    root: Node
    members: list[Node] = field(default_factory=list)  # schedule order is restored at the end

    @property
    def kind(self) -> str:
        return fusion_kind(m.op for m in self.members)


def cheap(node: Node) -> bool:
    """In CHEAP, or a reshape that only adds or drops dimensions of size 1 (`a[i, j]` is a
    slice and one of those): its index is the operand's with zeros put in or left out."""
    return node.op in CHEAP or (
        node.op is Op.RESHAPE
        and [d for d in node.shape if d != 1] == [d for d in node.srcs[0].shape if d != 1]
    )


def _label(node: Node) -> str:
    return f"%{node.name} ({node.op.value})" if node.name else f"{node.op.value} : {node.type}"


class _Fuser:
    def __init__(self, fn: Function, options: FuseOptions) -> None:
        self.fn = fn
        self.options = options
        self.graph = fn.dependency_graph()
        self.order = {n: i for i, n in enumerate(fn.nodes())}
        self.users = fn.users()
        self.results = set(fn.results)
        self.group_of: dict[Node, Group] = {}
        self.rejected: dict[tuple[Node, Node], str] = {}

    # -- decisions ------------------------------------------------------------------------------

    def seed(self, node: Node) -> Group | None:
        if node.op in ELEMENTWISE | QUANTIZATION or node.op in (Op.BROADCAST_IN_DIM, Op.GATHER):
            return Group(node, [node])
        if node.op is Op.REDUCE and self.options.reductions:
            return Group(node, [node])
        return None

    def why_not(self, producer: Node, group: Group) -> str | None:
        """None if `producer` may join `group`, else why not ("" when not worth saying)."""
        if producer.op is Op.PARAMETER:
            return ""  # inputs are operands by nature
        if producer.op is Op.CONSTANT and producer.type.size > SMALL_CONSTANT:
            return ""
        reason = self.kind_reason(producer, group)
        if reason is None:
            reason = self.size_reason(producer, group)
        if reason is None and self.creates_cycle(producer, group):
            reason = "would create a cycle"
        return reason

    def size_reason(self, producer: Node, group: Group) -> str | None:
        tiny = all(m.type.size <= TINY for m in (producer, *group.members))
        name, limit = (
            ("max-tiny-ops", self.options.max_tiny_ops)
            if tiny
            else ("max-ops", self.options.max_ops)
        )
        return f"over {name} ({limit})" if len(group.members) + 1 > limit else None

    def kind_reason(self, producer: Node, group: Group) -> str | None:
        users = self.users[producer]
        shared = producer in self.results or any(u not in group.members for u in users)
        if producer.op in CONTRACTION:
            return self.epilogue_reason(producer, group, shared)
        if producer.op not in LOOP_OPS and not cheap(producer):
            return f"op kind not fusible: {producer.op.value}"
        if not cheap(producer) and len(users) > 1 and any(u.op in SHIFTS for u in users):
            return "read at several shifted positions: fused, it would be computed once for each"
        if group.kind == "output" and any(u.op in CONTRACTION for u in users):
            return "op kind not fusible: no prologue fusion into a contraction's operands"
        if shared and not cheap(producer):
            if producer in self.results:
                return "expensive producer that is also a function result"
            return "expensive producer with several consumers"
        return None

    def epilogue_reason(self, producer: Node, group: Group, shared: bool) -> str | None:
        """Why the contraction `producer` may not take `group` as its epilogue, if it may not."""
        if not self.options.epilogue or group.kind != "loop":
            return "op kind not fusible: a contraction only absorbs an elementwise epilogue"
        integer = not producer.srcs[0].dtype.is_float
        if integer and producer.op not in INT_EPILOGUE[self.options.int_epilogue]:
            return (
                f"integer contraction: int-epilogue={self.options.int_epilogue} keeps it"
                " alone for its kernel"
            )
        if not integer and any(m.op in QUANTIZATION for m in group.members):
            return "float contraction: quantization ops join integer contractions only"
        if producer in self.results:
            return "expensive producer that is also a function result"
        if shared:
            return "expensive producer with several consumers"
        if any(u.op is Op.BROADCAST_IN_DIM for u in self.users[producer]):
            return "op kind not fusible: the contraction's result is broadcast"
        return None

    def creates_cycle(self, producer: Node, group: Group) -> bool:
        """The group must stay convex: no path may leave it and come back in.

        Cheap members are copied into the body rather than moved, so a path may come back to
        one of them; it must not come back to a moved node. A path through a cheap member that
        stays inside (a pad between the update and its select) has not left the group.
        """
        inside = {*group.members, producer}
        moved = {m for m in inside if not cheap(m)}
        # A path back to a moved node only passes nodes defined before the last of them (the
        # body is in topological order): searching just those keeps the check from growing
        # with the whole graph, which made long traces quadratic.
        last = max((self.order[m] for m in moved), default=-1)
        before = nx.subgraph_view(self.graph, filter_node=lambda n: self.order[n] <= last)
        reached, frontier = set(moved), list(moved)
        while frontier:  # from the moved nodes, through the cheap members they feed
            for succ in self.graph.successors(frontier.pop()):
                if succ in inside:
                    if succ not in reached:
                        reached.add(succ)
                        frontier.append(succ)
                elif self.order[succ] < last and not moved.isdisjoint(nx.descendants(before, succ)):
                    return True
        return False

    # -- the walk -------------------------------------------------------------------------------

    def run(self) -> list[Group]:
        groups: list[Group] = []
        for node in reversed(self.fn.body):
            if node in self.group_of:
                continue
            group = self.seed(node)
            if group is None:
                continue
            self.grow(group)
            for m in group.members:
                self.group_of.setdefault(m, group)
            if len(group.members) >= 2 and not all(cheap(m) for m in group.members):
                groups.append(group)
        return groups

    def unfused_pairs(self, groups: list[Group]) -> dict[tuple[Node, Node], str]:
        """Every producer-consumer edge that crosses a group boundary, with the reason."""
        together = {(p, c) for g in groups for c in g.members for p in c.srcs if p in g.members}
        out: dict[tuple[Node, Node], str] = {}
        for consumer in self.fn.body:
            for producer in dict.fromkeys(consumer.srcs):
                if (producer, consumer) in together or producer.op is Op.PARAMETER:
                    continue
                if producer.op is Op.CONSTANT and producer.type.size > SMALL_CONSTANT:
                    continue  # large constants are operands by design
                reason = self.rejected.get((producer, consumer))
                if reason is None and consumer not in self.group_of:
                    reason = f"op kind not fusible: {consumer.op.value} does not absorb producers"
                if reason is None:
                    reason = f"op kind not fusible: {producer.op.value}"
                out[(producer, consumer)] = reason
        return out

    def grow(self, group: Group) -> None:
        frontier = list(group.members)
        while frontier:
            consumer = frontier.pop()
            for producer in dict.fromkeys(consumer.srcs):
                if producer in group.members:
                    continue
                if producer in self.group_of and not cheap(producer):
                    continue  # already inside a group nearer the results
                reason = self.why_not(producer, group)
                if reason is None:
                    group.members.append(producer)
                    frontier.append(producer)
                elif reason:
                    self.rejected.setdefault((producer, consumer), reason)


def fusion_body(group: Group, order: dict[Node, int]) -> tuple[Function, list[Node]]:
    """The group as a closed function, and the outer values passed in as its operands."""
    members = sorted(group.members, key=order.__getitem__)
    inside = set(members)
    outside = {s for m in members for s in m.srcs if s not in inside}
    operands = sorted(outside, key=order.__getitem__)  # in the order the values are defined
    names = _param_names(operands)
    mapping: dict[Node, Node] = {}
    params = []
    for src, name in zip(operands, names, strict=False):
        p = Node(Op.PARAMETER, src.type, name=name)
        params.append(p)
        mapping[src] = p
    body = []
    for m in members:
        # A body is the group's computation, wherever it came from; a gather keeps its place
        # for the index error it may raise when the code runs.
        loc = m.loc if m.op is Op.GATHER else None
        clone = m.replace(srcs=tuple(mapping[s] for s in m.srcs), loc=loc)
        mapping[m] = clone
        body.append(clone)
    return Function("fusion", tuple(params), tuple(body), (mapping[group.root],)), operands


def _param_names(operands: Iterable[Node]) -> list[str]:
    """The outer value's name where it is a usable one, else p0, p1, ...: distinct by
    construction (a hint "p1" and an operand numbered 1 must not both become p1)."""
    names: list[str] = []
    taken: set[str] = set()
    for i, src in enumerate(operands):
        name = src.name if src.name and src.name.isidentifier() else f"p{i}"
        suffix = 0
        while name in taken:
            suffix += 1
            name = f"p{i}_{suffix}"
        names.append(name)
        taken.add(name)
    return names


@register
class Fuse(Pass):
    """Fuse elementwise chains (loop), reductions + producers (input), dot/conv epilogues (output).

    Groups become `fusion` ops whose nested body prints and parses like any function. Fusion
    never creates a cycle (checked on the dependency graph), never copies an expensive producer
    into several consumers (only broadcasts, iotas and small constants are duplicated), and
    respects max-ops. Every unfused producer-consumer pair is recorded with its reason.
    """

    name = "fuse"
    Options = FuseOptions

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        fuser = _Fuser(fn, self.options)
        groups = fuser.run()
        for (producer, consumer), reason in fuser.unfused_pairs(groups).items():
            ctx.remark(
                self.name,
                f"not fused: @{fn.name}: {_label(producer)} -> {_label(consumer)}: {reason}",
            )
        if not groups:
            return fn
        order = {n: i for i, n in enumerate(fn.nodes())}
        replaced: dict[Node, Node] = {}
        absorbed: set[Node] = set()
        for g in groups:
            body, operands = fusion_body(g, order)
            if not operands:
                continue  # computed from constants alone: constant folding's business
            replaced[g.root] = make_node(
                Op.FUSION, operands, {"body": body}, name=g.root.name, loc=g.root.loc
            )
            absorbed.update(m for m in g.members if m is not g.root)
            ctx.remark(
                self.name,
                f"@{fn.name}: {g.kind} fusion of {len(g.members)} ops -> {_label(g.root)}",
            )
        return rebuild_function(fn, replaced, absorbed)


def rebuild_function(fn: Function, replaced: dict[Node, Node], absorbed: set[Node]) -> Function:
    mapping: dict[Node, Node] = {p: p for p in fn.params}
    rebuilt: list[tuple[Node, Node]] = []
    for node in fn.body:
        new = replaced.get(node, node)
        srcs = tuple(mapping[s] for s in new.srcs)
        new = new if srcs == new.srcs else new.replace(srcs=srcs)
        mapping[node] = new
        rebuilt.append((node, new))
    results = tuple(mapping[r] for r in fn.results)
    # Absorbed nodes stay only where something outside their group still uses them: the cheap
    # producers that were copied into a group rather than moved.
    needed: set[Node] = set(results)
    kept: list[Node] = []
    for original, new in reversed(rebuilt):
        if original in absorbed and new not in needed:
            continue
        kept.append(new)
        needed.update(new.srcs)
    return fn.replace(body=tuple(reversed(kept)), results=results)
