"""Buffer assignment: liveness over the final schedule and one arena with reused offsets.

Every value a function computes needs memory while it is live. Instead of one allocation per
value, all of a function's temporaries live in one arena, and values whose lifetimes do not
overlap share bytes (XLA's heap simulator does the same). The result is an analysis stored in
the `PassContext`, not IR, so the printed graph stays a plain, re-runnable file; the
`--report-memory` table and the lifetime SVG are two views of it.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from ir.diagnostics import TesselError
from ir.graph import Function, Module, Node
from ir.ops import COMPOSITE, CONTRACTION, CONTROL, ELEMENTWISE, MOVEMENT, WINDOWED, Op
from ir.types import TensorType, TupleType
from passes.base import Pass, PassContext, register

# Values that get no buffer: parameters belong to the caller, constants are read-only data.
UNALLOCATED = frozenset({Op.PARAMETER, Op.CONSTANT})


@dataclass(frozen=True)
class Buffer:
    """The memory of one value: bytes [offset, offset + size) of the arena, live at steps
    [first, last] of the schedule (closed: an op reads its inputs at the step it writes)."""

    node: Node
    offset: int
    size: int
    first: int
    last: int

    @property
    def end(self) -> int:
        return self.offset + self.size

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last

    def overlaps_in_memory(self, other: Buffer) -> bool:
        # Empty ranges hold no bytes, so a size-0 buffer never collides with anything.
        if self.size == 0 or other.size == 0:
            return False
        return self.offset < other.end and other.offset < self.end


@dataclass(frozen=True)
class BufferAssignment:
    """Where every computed value of one function lives in its arena, and when.

    `buffers` are in schedule order; `live_bytes[s]` is the sum of the sizes of the buffers
    live at step s, and `peak_node` is the op at the first step where that sum is largest.
    """

    function: str
    alignment: int
    buffers: tuple[Buffer, ...]
    live_bytes: tuple[int, ...]
    peak_node: Node | None
    _by_node: dict[Node, Buffer] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_node", {b.node: b for b in self.buffers})

    @property
    def num_steps(self) -> int:
        return len(self.live_bytes)

    @property
    def arena_bytes(self) -> int:
        return max((b.end for b in self.buffers), default=0)

    @property
    def total_bytes(self) -> int:
        """What the buffers would take with no reuse: one allocation per value."""
        return sum(b.size for b in self.buffers)

    @property
    def peak_live_bytes(self) -> int:
        """The most bytes live at any one step: no arena for this schedule can be smaller."""
        return max(self.live_bytes, default=0)

    @property
    def peak_step(self) -> int | None:
        if not self.live_bytes:
            return None
        return self.live_bytes.index(self.peak_live_bytes)

    @property
    def reuse_ratio(self) -> float | None:
        """total / arena: how many times smaller reuse made the memory (None for an empty arena)."""
        return self.total_bytes / self.arena_bytes if self.arena_bytes else None

    def buffer(self, node: Node) -> Buffer:
        try:
            return self._by_node[node]
        except KeyError:
            raise KeyError(f"{node!r} has no buffer (parameters and constants get none)") from None

    def offset_of(self, node: Node) -> int:
        return self.buffer(node).offset

    def live_at(self, step: int) -> list[Buffer]:
        return [b for b in self.buffers if b.first <= step <= b.last]

    def check(self) -> None:
        """Raise AssertionError unless the assignment is sound.

        Deliberately brute force (every pair, every step) so that it checks the sweep-based
        construction in `assign_buffers` independently rather than repeating it.
        """
        for b in self.buffers:
            if not 0 <= b.first <= b.last < max(self.num_steps, 1):
                raise AssertionError(f"{_name(b)}: bad live range [{b.first}, {b.last}]")
            if b.offset < 0 or b.offset % self.alignment:
                raise AssertionError(
                    f"{_name(b)}: offset {b.offset} is not {self.alignment}-aligned"
                )
        for i, a in enumerate(self.buffers):
            for b in self.buffers[i + 1 :]:
                if a.overlaps_in_time(b) and a.overlaps_in_memory(b):
                    raise AssertionError(
                        f"{_name(a)} [{a.offset}, {a.end}) and {_name(b)} [{b.offset}, {b.end}) "
                        f"are both live at step {max(a.first, b.first)} and share memory"
                    )
        for step, got in enumerate(self.live_bytes):
            want = sum(b.size for b in self.live_at(step))
            if got != want:
                raise AssertionError(f"live bytes at step {step}: recorded {got}, actual {want}")


def live_ranges(fn: Function) -> dict[Node, tuple[int, int]]:
    """Closed live range [definition step, last use step] of every value that needs a buffer.

    Steps are positions in `fn.body`. A value nobody uses is live only at its own step; a
    function result stays live to the last step, because the caller reads it after the body
    has run and no later op may write over it.
    """
    step = {n: i for i, n in enumerate(fn.body)}
    users = fn.users()
    end = len(fn.body) - 1
    results = set(fn.results)
    ranges: dict[Node, tuple[int, int]] = {}
    for node in fn.body:
        if node.op in UNALLOCATED:
            continue
        first = step[node]
        uses = [step[u] for u in users[node]]
        if any(u <= first for u in uses):
            # Liveness is only meaningful for a schedule in which operands come first.
            raise ValueError(f"@{fn.name}: {node!r} is used before it is defined in the schedule")
        last = end if node in results else max(uses, default=first)
        ranges[node] = (first, last)
    return ranges


def interference_graph(ranges: Mapping[Node, tuple[int, int]]) -> nx.Graph:
    """An undirected graph with an edge between every two values that are live at the same step.

    A sweep in order of first step: each value conflicts with the values still live when it
    is defined, and every overlapping pair is found that way (the later one sees the earlier).
    """
    graph = nx.Graph()
    graph.add_nodes_from(ranges)
    active: list[Node] = []
    for node in sorted(ranges, key=lambda n: ranges[n][0]):
        first = ranges[node][0]
        active = [a for a in active if ranges[a][1] >= first]
        graph.add_edges_from((a, node) for a in active)
        active.append(node)
    return graph


def _align_up(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def _first_fit(taken: Iterable[tuple[int, int]], size: int, alignment: int) -> int:
    """The lowest aligned offset where `size` bytes avoid every (offset, size) span in `taken`.

    The spans may overlap one another (their owners need not be live together), so the
    candidate only ever moves up past the end of each span that it would collide with.
    """
    offset = 0
    for start, length in sorted(taken):
        if offset + size <= start:
            break
        offset = max(offset, _align_up(start + length, alignment))
    return offset


def check_alignment(alignment: int) -> None:
    if alignment < 1 or alignment & (alignment - 1):
        raise TesselError(f"buffer-assign: alignment must be a power of two, got {alignment}")


def _place(
    graph: nx.Graph, sizes: dict[Node, int], key: Callable[[Node], Any], alignment: int
) -> dict[Node, int]:
    offsets: dict[Node, int] = {}
    for node in sorted(graph, key=key):
        taken = ((offsets[m], sizes[m]) for m in graph.neighbors(node) if m in offsets)
        offsets[node] = _first_fit(taken, sizes[node], alignment)
    return offsets


def _arena(offsets: dict[Node, int], sizes: dict[Node, int]) -> int:
    return max((offsets[n] + sizes[n] for n in offsets), default=0)


def fits(assignment: BufferAssignment, fn: Function, alignment: int) -> bool:
    """Whether an assignment made earlier (by the buffer-assign pass) is still `fn`'s: the same
    alignment, and the same values live over the same steps (no pass has rewritten it since)."""
    if assignment.function != fn.name or assignment.alignment != alignment:
        return False
    ranges = live_ranges(fn)
    return len(ranges) == len(assignment.buffers) and all(
        ranges.get(b.node) == (b.first, b.last) for b in assignment.buffers
    )


def value_bytes(t: TensorType, alignment: int) -> int:
    """A value's bytes in the arena: a tuple keeps each element at an aligned offset."""
    return t.offsets(alignment)[1] if isinstance(t, TupleType) else t.nbytes


def assign_buffers(fn: Function, alignment: int = 64) -> BufferAssignment:
    """Liveness, then greedy placement: each buffer at the lowest aligned offset that is free of
    every already placed buffer whose lifetime overlaps its own.

    Two placement orders are tried and the smaller arena kept: largest first (keeps small
    buffers from fragmenting the arena before the big ones are placed) and largest
    size x lifetime first (XLA's heuristic; better when a big short-lived buffer would
    otherwise sit under long-lived ones). Ties go to the earlier definition, so the result does
    not depend on hashing.
    """
    check_alignment(alignment)
    ranges = live_ranges(fn)
    sizes = {n: value_bytes(n.type, alignment) for n in ranges}
    # Empty tensors own no bytes and conflict with nothing; they all sit at offset 0.
    graph = interference_graph({n: r for n, r in ranges.items() if sizes[n] > 0})
    order = {n: i for i, n in enumerate(ranges)}
    span = {n: ranges[n][1] - ranges[n][0] + 1 for n in ranges}
    candidates = [
        _place(graph, sizes, lambda n: (-sizes[n], order[n]), alignment),
        _place(graph, sizes, lambda n: (-sizes[n] * span[n], order[n]), alignment),
    ]
    best = min(candidates, key=lambda o: _arena(o, sizes))  # the first wins ties
    offsets: dict[Node, int] = {n: 0 for n in ranges} | best
    buffers = tuple(Buffer(n, offsets[n], sizes[n], *ranges[n]) for n in ranges)

    # Live bytes per step from a difference array: +size at first, -size after last.
    delta = [0] * (len(fn.body) + 1)
    for b in buffers:
        delta[b.first] += b.size
        delta[b.last + 1] -= b.size
    live: list[int] = []
    running = 0
    for d in delta[:-1]:
        running += d
        live.append(running)
    peak_node = fn.body[live.index(max(live))] if live else None
    return BufferAssignment(fn.name, alignment, buffers, tuple(live), peak_node)


@dataclass(frozen=True)
class BufferAssignOptions:
    alignment: int = 64  # bytes; every offset is a multiple (a cache line, enough for AVX-512)


@register
class BufferAssign(Pass):
    """Buffer assignment: give every computed value an offset in one arena, reusing dead space.

    Liveness runs over each function's final schedule (`body` order): a value is live from the
    step that defines it to its last use, and results to the end of the function. Parameters
    (caller-owned) and constants (read-only data) get no buffer. Buffers are placed greedily
    (the better of two orders) at the lowest free aligned offset, so two values live at the
    same step never share a byte; an op's output never reuses the buffer of an input it is
    still reading.
    The IR is not changed: the result goes to ctx.analyses["buffer-assign"] as a dict from
    function name to `BufferAssignment`. Run it last: any later rewrite invalidates it.
    """

    name = "buffer-assign"
    Options = BufferAssignOptions

    def run(self, module: Module, ctx: PassContext) -> Module:
        ctx.analyses[self.name] = {
            fn.name: assign_buffers(fn, self.options.alignment) for fn in module.functions
        }
        return module


# -- the --report-memory table --

_UNITS = ("KiB", "MiB", "GiB", "TiB")


def format_bytes(n: int) -> str:
    """`512 B`, or exact bytes with a binary-unit approximation: `1,572,864 B (1.5 MiB)`."""
    if n < 1024:
        return f"{n} B"
    value, unit = n / 1024, _UNITS[0]
    for bigger in _UNITS[1:]:
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{n:,} B ({value:.1f} {unit})"


def _short_bytes(n: int) -> str:
    text = format_bytes(n)
    return text[text.index("(") + 1 : -1] if "(" in text else text


def _name(b: Buffer) -> str:
    return value_name(b.node, b.first)


def value_name(node: Node, step: int) -> str:
    """`%name` from the node's hint, or `op@step` for values the front end left unnamed."""
    return f"%{node.name}" if node.name else f"{node.op.value}@{step}"


def _describe(node: Node, step: int) -> str:
    return f"{value_name(node, step)} = {node.op.value} : {node.type}"


def _function_report(a: BufferAssignment) -> list[str]:
    ratio = f"{a.reuse_ratio:.2f}x (total / arena)" if a.reuse_ratio is not None else "-"
    step = a.peak_step
    if step is None or a.peak_node is None:
        peak_at = "- (empty function)"
    else:
        peak_at = f"{step} of {a.num_steps}: {_describe(a.peak_node, step)}"
    rows = [
        ("buffers", str(len(a.buffers))),
        ("total (no reuse)", format_bytes(a.total_bytes)),
        ("arena", format_bytes(a.arena_bytes)),
        ("peak live", format_bytes(a.peak_live_bytes)),
        ("reuse ratio", ratio),
        ("peak at step", peak_at),
    ]
    if step is not None:
        # The biggest values at the peak are where shrinking memory has to start.
        biggest = sorted(a.live_at(step), key=lambda b: (-b.size, b.first))[:5]
        shown = ", ".join(f"{_name(b)} {_short_bytes(b.size)}" for b in biggest if b.size)
        rows.append(("live at peak", shown or "-"))
    if any(b.node.op in CONTROL for b in a.buffers):
        # codegen places them (codegen/sequence.py), after this arena
        rows.append(("loop scratch", "not counted: the temporaries of loop bodies"))
    width = max(len(k) for k, _ in rows)
    lines = [f"memory @{a.function} (alignment {a.alignment} B)"]
    lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
    return lines


def format_memory_report(assignments: Mapping[str, BufferAssignment]) -> str:
    """One block per function: buffer count, bytes with and without reuse, and the peak."""
    blocks = ["\n".join(_function_report(a)) for a in assignments.values()]
    return "\n\n".join(blocks) + "\n" if blocks else "memory: no functions\n"


# -- the lifetime picture --

_KINDS: tuple[tuple[str, frozenset[Op]], ...] = (
    ("contraction", CONTRACTION),
    ("reduction", frozenset({Op.REDUCE}) | WINDOWED | COMPOSITE),
    ("movement", MOVEMENT),
    ("elementwise", ELEMENTWISE),
)
_COLORS = {
    "contraction": "#4e79a7",
    "reduction": "#e15759",
    "movement": "#f28e2b",
    "elementwise": "#59a14f",
    "fusion": "#b07aa1",
    "other": "#9c9c9c",
}
_WIDTH, _HEIGHT = 960, 540
_LEFT, _RIGHT, _TOP, _BOTTOM = 80, 150, 48, 48  # margins: tick labels, legend, title, x label


def op_kind(op: Op) -> str:
    """The color group of an op in the lifetime picture."""
    for kind, ops in _KINDS:
        if op in ops:
            return kind
    # Compared by mnemonic so this view does not depend on when the fusion op joined the table.
    return "fusion" if op.value == "fusion" else "other"


def _attr(value: object) -> str:
    return html.escape(str(value), quote=True)


class _Plot:
    """Maps (step, byte offset) to pixels: steps left to right, offset 0 at the bottom."""

    def __init__(self, num_steps: int, arena: int) -> None:
        self.plot_w = _WIDTH - _LEFT - _RIGHT
        self.plot_h = _HEIGHT - _TOP - _BOTTOM
        self.col = self.plot_w / max(num_steps, 1)
        self.scale = self.plot_h / max(arena, 1)

    def x(self, step: float) -> float:
        return _LEFT + step * self.col

    def y(self, offset: float) -> float:
        return _TOP + self.plot_h - offset * self.scale


def _bar(p: _Plot, b: Buffer) -> str:
    # At least one pixel tall, so tiny and empty buffers can still be seen and hovered.
    height = max(b.size * p.scale, 1.0)
    tip = (
        f"{_describe(b.node, b.first)}\n{b.size:,} bytes at offset {b.offset:,}\n"
        f"live at steps {b.first}-{b.last}"
    )
    return (
        f'<rect class="buffer" x="{p.x(b.first):.1f}" y="{p.y(b.offset) - height:.1f}" '
        f'width="{(b.last - b.first + 1) * p.col:.1f}" height="{height:.1f}" '
        f'fill="{_COLORS[op_kind(b.node.op)]}" fill-opacity="0.85" stroke="#ffffff" '
        f'stroke-width="0.5"><title>{html.escape(tip)}</title></rect>'
    )


def _axes(p: _Plot, a: BufferAssignment) -> list[str]:
    bottom, right = p.y(0), p.x(a.num_steps)
    out = [
        f'<line x1="{_LEFT}" y1="{bottom:.1f}" x2="{right:.1f}" y2="{bottom:.1f}" stroke="#333"/>',
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{bottom:.1f}" stroke="#333"/>',
    ]
    every = max(1, -(-a.num_steps // 10))  # about ten step labels, whatever the length
    for s in range(0, a.num_steps, every):
        cx = p.x(s + 0.5)
        out.append(f'<text x="{cx:.1f}" y="{bottom + 14:.1f}" text-anchor="middle">{s}</text>')
    for k in range(5):
        offset = a.arena_bytes * k / 4
        ty = p.y(offset)
        out.append(
            f'<line x1="{_LEFT - 4}" y1="{ty:.1f}" x2="{_LEFT}" y2="{ty:.1f}" stroke="#333"/>'
        )
        label = _attr(_short_bytes(round(offset)))
        out.append(f'<text x="{_LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end">{label}</text>')
    mid_x, mid_y = _LEFT + p.plot_w / 2, _TOP + p.plot_h / 2
    out.append(
        f'<text x="{mid_x:.1f}" y="{_HEIGHT - 12}" text-anchor="middle">schedule step</text>'
    )
    out.append(
        f'<text x="16" y="{mid_y:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 16 {mid_y:.1f})">arena offset</text>'
    )
    return out


def _live_profile(p: _Plot, a: BufferAssignment) -> str:
    """The live-bytes curve as a step line: how far the arena sits above the lower bound."""
    points: list[str] = []
    for s, n in enumerate(a.live_bytes):
        points += [f"{p.x(s):.1f},{p.y(n):.1f}", f"{p.x(s + 1):.1f},{p.y(n):.1f}"]
    return (
        f'<polyline points="{" ".join(points)}" fill="none" stroke="#222" '
        f'stroke-width="1.2"><title>bytes live at each step</title></polyline>'
    )


def _peak_marker(p: _Plot, a: BufferAssignment) -> list[str]:
    step, node = a.peak_step, a.peak_node
    if step is None or node is None:
        return []
    cx = p.x(step + 0.5)
    text = f"peak {_short_bytes(a.peak_live_bytes)} at step {step}: {_describe(node, step)}"
    return [
        f'<line class="peak" x1="{cx:.1f}" y1="{_TOP - 4}" x2="{cx:.1f}" y2="{p.y(0):.1f}" '
        f'stroke="#d62728" stroke-width="1.5" stroke-dasharray="5,3">'
        f"<title>{html.escape(text)}</title></line>",
        f'<text x="{cx:.1f}" y="{_TOP - 8}" text-anchor="middle" fill="#d62728">'
        f"peak {_attr(_short_bytes(a.peak_live_bytes))}</text>",
    ]


def _legend(kinds: Iterable[str]) -> list[str]:
    x = _WIDTH - _RIGHT + 16
    out: list[str] = []
    y = _TOP
    for kind in kinds:
        out.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{_COLORS[kind]}"/>')
        out.append(f'<text x="{x + 18}" y="{y + 10}">{kind}</text>')
        y += 18
    out.append(f'<line x1="{x}" y1="{y + 6}" x2="{x + 12}" y2="{y + 6}" stroke="#222"/>')
    out.append(f'<text x="{x + 18}" y="{y + 10}">live bytes</text>')
    y += 18
    out.append(
        f'<line x1="{x + 6}" y1="{y}" x2="{x + 6}" y2="{y + 12}" stroke="#d62728" '
        f'stroke-dasharray="3,2"/>'
    )
    out.append(f'<text x="{x + 18}" y="{y + 10}">peak step</text>')
    return out


def lifetime_svg(assignment: BufferAssignment, fn: Function) -> str:
    """A self-contained SVG of buffer lifetimes: one bar per buffer over [first, last] steps
    and [offset, offset + size) bytes, the live-bytes curve and the peak step. Hovering a bar
    names its value, op, type and size (SVG <title> tooltips, no script)."""
    a = assignment
    if fn.name != a.function or len(fn.body) != a.num_steps:
        raise ValueError(f"the assignment of @{a.function} does not describe @{fn.name}")
    p = _Plot(a.num_steps, a.arena_bytes)
    ratio = f", reuse {a.reuse_ratio:.2f}x" if a.reuse_ratio is not None else ""
    title = (
        f"@{fn.name}: {len(a.buffers)} buffers, arena {_short_bytes(a.arena_bytes)}, "
        f"peak live {_short_bytes(a.peak_live_bytes)}, "
        f"no reuse {_short_bytes(a.total_bytes)}{ratio}"
    )
    kinds = [k for k in _COLORS if any(op_kind(b.node.op) == k for b in a.buffers)]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" font-family="sans-serif" font-size="11">',
        f"<title>{html.escape(title)}</title>",
        f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="#ffffff"/>',
        f'<text x="{_LEFT}" y="20" font-size="14" font-weight="bold">{html.escape(title)}</text>',
        *(_bar(p, b) for b in a.buffers),
        _live_profile(p, a),
        *_peak_marker(p, a),
        *_axes(p, a),
        *_legend(kinds),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"
