"""What the graph pictures say about each node: its printed name and statement, its category
(which decides its colors), and for fusion ops the nested body and the fusion kind.

Shared by the DOT export and the SVG drawing in `compiler/graphview.py`, so both pictures name
values exactly as the printed IR does and color them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from ir import ops
from ir.graph import Function, Node
from ir.ops import Op
from ir.printer import Namer, Printer, format_type

TOOLTIP_LIMIT = 600  # characters: a folded constant's literal would otherwise fill the screen


@dataclass(frozen=True, slots=True)
class Palette:
    fill: str
    stroke: str


# One row per category; the order is the legend's order.
PALETTES: dict[str, Palette] = {
    "parameter": Palette("#dff3dc", "#3d8b3d"),
    "constant": Palette("#eeeeee", "#8a8a8a"),
    "elementwise": Palette("#dce9fb", "#3b6fb6"),
    "movement": Palette("#fcf1cf", "#b08415"),
    "contraction": Palette("#fbdccf", "#c0502a"),
    "reduce": Palette("#ebdff7", "#7a4bb0"),
    "windowed": Palette("#d4f0ec", "#2a8a80"),
    "composite": Palette("#f9ddeb", "#b0407a"),
    "fusion": Palette("#fbfbfb", "#555555"),
    "other": Palette("#ffffff", "#555555"),
}
FUSION_STROKES = {"loop": "#3b6fb6", "input": "#7a4bb0", "output": "#c0502a"}

_CATEGORY_SETS: tuple[tuple[str, frozenset[Op]], ...] = (
    ("parameter", frozenset({Op.PARAMETER})),
    ("constant", ops.SOURCES - {Op.PARAMETER}),
    ("elementwise", ops.ELEMENTWISE),
    ("movement", ops.MOVEMENT),
    ("contraction", ops.CONTRACTION),
    ("reduce", frozenset({Op.REDUCE})),
    ("windowed", ops.WINDOWED),
    ("composite", ops.COMPOSITE),
)


def fusion_op() -> Op | None:
    """`Op.FUSION` once the IR has it; looked up at call time so this module predates it."""
    return getattr(Op, "FUSION", None)


def fusion_body(node: Node) -> Function | None:
    op = fusion_op()
    if op is None or node.op is not op:
        return None
    body = node.attrs.get("body")
    return body if isinstance(body, Function) else None


def fusion_kind(body: Function) -> str:
    """The fusion kind, "loop", "input" or "output", named by the IR's own rule when it has one."""
    helper = getattr(ops, "fusion_kind", None)  # takes the body's ops
    if helper is not None:
        return str(helper(n.op for n in body.body))
    # Fallback with the same rule, for IR that predates the helper: a contraction with its
    # epilogue is an output fusion, a reduction with its producers an input fusion, else loop.
    body_ops = {n.op for n in body.body}
    if body_ops & ops.CONTRACTION:
        return "output"
    return "input" if Op.REDUCE in body_ops else "loop"


def category(node: Node) -> str:
    if fusion_body(node) is not None:
        return "fusion"
    for name, members in _CATEGORY_SETS:
        if node.op in members:
            return name
    return "other"


def palette(node: Node) -> Palette:
    body = fusion_body(node)
    if body is not None:
        base = PALETTES["fusion"]
        return Palette(base.fill, FUSION_STROKES.get(fusion_kind(body), base.stroke))
    return PALETTES[category(node)]


def fusion_label(body: Function) -> str:
    count = len(body.body)
    return f"{fusion_kind(body)} fusion · {count} op{'s' if count != 1 else ''}"


@dataclass(frozen=True, slots=True)
class Names:
    """Printed names (`%h1`) and full statements for every value of one function."""

    value: dict[Node, str]
    statement: dict[Node, str]


def names(fn: Function) -> Names:
    """Name values the way the printer does, so pictures and IR text agree on every `%name`."""
    namer = Namer()
    printer = Printer()
    value: dict[Node, str] = {}
    statement: dict[Node, str] = {}
    for p in fn.params:
        value[p] = "%" + namer.define(p)
        statement[p] = f"{value[p]}: {format_type(p.type)} (parameter)"
    for n in fn.body:
        if n.op is Op.CONSTANT and n.type.size > printer.inline_limit:
            # Printing a big folded constant formats every element; the tooltip only needs
            # to say it is a constant of this type.
            value[n] = "%" + namer.define(n)
            statement[n] = f"{value[n]} = constant … : {format_type(n.type)}"
        else:
            statement[n] = printer.statement(n, namer)
            value[n] = namer[n]
    return Names(value, {n: _clip(s, TOOLTIP_LIMIT) for n, s in statement.items()})


def short_label(text: str, limit: int) -> str:
    return _clip(text, limit)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
