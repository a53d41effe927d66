"""Pictures of one function's dataflow graph: DOT text for graphviz, and SVG drawn here.

The SVG needs no graphviz binary, script or network: `compiler/graphlayout.py` places the boxes
and this module writes plain shapes with absolute coordinates. Every value gets a rounded box
(op and type, colored by op category, the full printed statement as its tooltip), every operand
use gets one edge, and a fusion op is drawn as a labeled frame with its body laid out small
inside it, so fused groups stay visible as groups.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from compiler import graphstyle as gs
from compiler.graphlayout import Edge, Layout, Spacing, layout
from ir.graph import Function, Node
from ir.ops import Op
from ir.printer import format_type

FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace"
EDGE_COLOR = "#7c7c7c"
LABEL_LIMIT = 34  # characters per line inside a box; the tooltip has the rest


@dataclass(frozen=True, slots=True)
class _Style:
    font_size: float
    two_lines: bool  # "%name = op" over the type; inner (fused) boxes show only the op
    pad: float
    spacing: Spacing

    @property
    def char_width(self) -> float:
        return self.font_size * 0.62  # monospace advance is ~0.6em; round up so text fits

    @property
    def line_height(self) -> float:
        return self.font_size * 1.25


TOP = _Style(12.0, True, 8.0, Spacing(gap_x=22.0, gap_y=40.0, margin=16.0))
INNER = _Style(10.0, False, 5.0, Spacing(gap_x=10.0, gap_y=18.0, margin=6.0))
HEADER = 2  # text lines in a fusion frame's header: "%f = loop fusion · 3 ops", its type


# -- DOT ----------------------------------------------------------------------------------------


def to_dot(fn: Function) -> str:
    """DOT text for `fn`; fusion ops become clusters holding their body's nodes."""
    writer = _DotWriter()
    writer.function(fn, "n", "  ", {}, top=True)
    head = [
        f"digraph {_dq(fn.name)} {{",
        "  rankdir=TB;",
        '  graph [fontname="monospace", fontsize=11];',
        '  node [shape=box, style="rounded,filled", fontname="monospace", fontsize=10];',
        f'  edge [fontname="monospace", fontsize=8, color="{EDGE_COLOR}"];',
    ]
    return "\n".join([*head, *writer.lines, *writer.edges, "}"]) + "\n"


def _dq(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class _DotWriter:
    def __init__(self) -> None:
        self.lines: list[str] = []
        # Edges go last, at the top level: an edge written inside a cluster would pull its
        # outside endpoint into that cluster.
        self.edges: list[str] = []

    def function(
        self, fn: Function, prefix: str, indent: str, outer: dict[Node, str], top: bool
    ) -> str:
        """Write fn's nodes; returns the DOT id that stands for fn's (first) result."""
        names = gs.names(fn)
        rep: dict[Node, str] = dict(outer)  # a body's params are the fusion's operands
        results = set(fn.results)
        for i, n in enumerate(fn.nodes()):
            if n in rep:
                continue
            ident = f"{prefix}{i}"
            body = gs.fusion_body(n)
            if body is not None:
                pal = gs.palette(n)
                self.lines.append(f"{indent}subgraph cluster_{ident} {{")
                self.lines.append(
                    f"{indent}  label={_dq(names.value[n] + ' = ' + gs.fusion_label(body))}; "
                    f'style="rounded"; color="{pal.stroke}";'
                    + (" penwidth=2;" if n in results else "")
                )
                inner = dict(zip(body.params, (rep[s] for s in n.srcs), strict=True))
                rep[n] = self.function(body, ident + "_", indent + "  ", inner, top=False)
                self.lines.append(f"{indent}}}")
                continue
            rep[n] = ident
            self.lines.append(f"{indent}{ident} [{self.node_attrs(n, names, n in results, top)}];")
            for k, s in enumerate(n.srcs):
                label = f' [label="{k}"]' if len(n.srcs) > 1 else ""
                self.edges.append(f"  {rep[s]} -> {ident}{label};")
        return rep[fn.results[0]]

    @staticmethod
    def node_attrs(n: Node, names: gs.Names, result: bool, top: bool) -> str:
        pal = gs.palette(n)
        label = f"{names.value[n]} = {n.op.value} : {format_type(n.type)}"
        attrs = [f"label={_dq(label)}", f'fillcolor="{pal.fill}"', f'color="{pal.stroke}"']
        if n.op is Op.PARAMETER:
            attrs.append("shape=invhouse")
        elif gs.category(n) == "constant":
            attrs.append('style="rounded,filled,dashed"')
        if result:
            attrs.append("peripheries=2" if top else "penwidth=2")
        attrs.append(f"tooltip={_dq(names.statement[n])}")
        return ", ".join(attrs)


# -- SVG ----------------------------------------------------------------------------------------


@dataclass
class _Drawing:
    """A function laid out with its own origin at (0, 0); fusion bodies nest as drawings."""

    fn: Function
    names: gs.Names
    layout: Layout[Node]
    inner: dict[Node, _Drawing]
    style: _Style


def to_svg(fn: Function, *, id_prefix: str = "g", standalone: bool = True) -> str:
    """A self-contained SVG picture of `fn`.

    `id_prefix` keeps element ids unique when several pictures share one HTML page;
    `standalone=False` leaves out the XML namespace, which inline SVG in HTML does not need.
    """
    drawing = _draw(fn, TOP)
    legend_y = drawing.layout.height
    width = max(drawing.layout.width, _legend_width(fn))
    height = legend_y + 26
    writer = _SvgWriter(f"{id_prefix}-arrow")
    writer.drawing(drawing, 0.0, 0.0, id_prefix, top=True)
    xmlns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    return "\n".join(
        [
            f'<svg{xmlns} id="{id_prefix}" class="graph" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
            f'font-family="{FONT}" font-size="{TOP.font_size:g}">',
            f"<title>@{html.escape(fn.name)}</title>",
            "<defs>",
            f'<marker id="{id_prefix}-arrow" viewBox="0 0 8 8" refX="8" refY="4" '
            'markerWidth="7" markerHeight="7" orient="auto">'
            f'<polygon points="0,0 8,4 0,8" fill="{EDGE_COLOR}"/></marker>',
            "</defs>",
            f'<rect class="background" x="0" y="0" width="{width:.0f}" height="{height:.0f}" '
            'fill="#ffffff"/>',
            *writer.out,
            *_legend(fn, TOP.spacing.margin, legend_y),
            "</svg>",
        ]
    )


def _draw(fn: Function, style: _Style) -> _Drawing:
    names = gs.names(fn)
    inner: dict[Node, _Drawing] = {}
    for n in fn.body:
        body = gs.fusion_body(n)
        if body is not None:
            inner[n] = _draw(body, INNER)
    sizes = {n: _box_size(n, names, inner.get(n), style) for n in fn.nodes()}
    edges = [Edge(s, n, i, len(n.srcs)) for n in fn.body for i, s in enumerate(n.srcs)]
    placed = layout(sizes, edges, list(fn.nodes()), set(fn.params), style.spacing)
    return _Drawing(fn, names, placed, inner, style)


def _lines(n: Node, names: gs.Names, style: _Style) -> list[str]:
    """The text shown inside a box."""
    body = gs.fusion_body(n)
    if body is not None:
        return [f"{names.value[n]} = {gs.fusion_label(body)}", format_type(n.type)]
    if not style.two_lines:
        return [names.value[n] if n.op is Op.PARAMETER else n.op.value]
    head = names.value[n] if n.op is Op.PARAMETER else f"{names.value[n]} = {n.op.value}"
    return [gs.short_label(head, LABEL_LIMIT), gs.short_label(format_type(n.type), LABEL_LIMIT)]


def _box_size(
    n: Node, names: gs.Names, inner: _Drawing | None, style: _Style
) -> tuple[float, float]:
    lines = _lines(n, names, style)
    # A fusion's header is always drawn at the top-level size, even when nested.
    font = TOP if inner is not None else style
    width = max(len(t) for t in lines) * font.char_width + 2 * font.pad
    height = len(lines) * font.line_height + 2 * font.pad
    if inner is not None:
        width = max(width, inner.layout.width + 2 * font.pad)
        height += inner.layout.height + font.pad
    return width, height


class _SvgWriter:
    """Appends SVG elements for drawings, offset to where they sit in the whole picture."""

    def __init__(self, marker: str) -> None:
        self.out: list[str] = []
        self.marker = marker  # id of the arrowhead every edge uses

    def drawing(self, d: _Drawing, dx: float, dy: float, prefix: str, top: bool) -> None:
        """Edges first, then boxes, so boxes cover the ends of edges."""
        kind = "" if top else "inner-"
        for edge, points in d.layout.routes:
            if edge.dst in d.inner:  # enter a frame right above the body parameter it feeds
                body = d.inner[edge.dst]
                x = _body_origin(d, edge.dst)[0] + body.layout.boxes[body.fn.params[edge.port]].cx
                points = [*points[:-1], (x, points[-1][1])]
            self.edge(d, edge, points, dx, dy, kind)
        index = {n: i for i, n in enumerate(d.fn.nodes())}
        for rank, row in enumerate(d.layout.rows):
            for n in row:
                ident = f"{prefix}-n{index[n]}"
                self.node(d, n, ident, rank, dx, dy, kind)
                if n in d.inner:
                    ox, oy = _body_origin(d, n)
                    self.drawing(d.inner[n], dx + ox, dy + oy, ident, False)

    def edge(
        self,
        d: _Drawing,
        edge: Edge[Node],
        points: list[tuple[float, float]],
        dx: float,
        dy: float,
        kind: str,
    ) -> None:
        tip = f"{d.names.value[edge.src]} → {d.names.value[edge.dst]}"
        if edge.ports > 1:
            tip += f" (operand {edge.port})"
        self.out.append(
            f'<path class="{kind}edge" d="{_path(points, dx, dy)}" fill="none" '
            f'stroke="{EDGE_COLOR}" stroke-width="{1.0 if kind else 1.3}" '
            f'marker-end="url(#{self.marker})"><title>{html.escape(tip)}</title></path>'
        )

    def node(
        self, d: _Drawing, n: Node, ident: str, rank: int, dx: float, dy: float, kind: str
    ) -> None:
        box, pal, cat = d.layout.boxes[n], gs.palette(n), gs.category(n)
        frame = n in d.inner
        style = TOP if frame else d.style
        x, y = box.x + dx, box.y + dy
        radius = box.height / 2 if n.op is Op.PARAMETER else 6.0  # parameters are pills
        dash = ' stroke-dasharray="4 2"' if cat == "constant" else ""
        self.out += [
            f'<g class="{kind}node cat-{cat}" id="{ident}" '
            f'data-name="{html.escape(d.names.value[n])}" data-layer="{rank}">',
            f"<title>{html.escape(d.names.statement[n])}</title>",
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" '
            f'rx="{min(radius, 10.0):.1f}" fill="{pal.fill}" stroke="{pal.stroke}" '
            f'stroke-width="{2.6 if n in d.fn.results else 1.2}"{dash}/>',
        ]
        for i, text in enumerate(_lines(n, d.names, d.style)):
            # A fusion frame's header sits top-left above its body; plain boxes center text.
            tx, anchor = (x + style.pad, "start") if frame else (x + box.width / 2, "middle")
            ty = y + style.pad + (i + 0.8) * style.line_height
            look = ' font-weight="600"' if i == 0 else ' fill="#555555"'
            self.out.append(
                f'<text x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}" '
                f'font-size="{style.font_size:g}"{look}>{html.escape(text)}</text>'
            )
        self.out.append("</g>")


def _body_origin(d: _Drawing, n: Node) -> tuple[float, float]:
    """Where fusion n's body drawing starts, relative to d's origin: under the frame's header."""
    box = d.layout.boxes[n]
    return box.x + TOP.pad, box.y + HEADER * TOP.line_height + 2 * TOP.pad


def _path(points: list[tuple[float, float]], dx: float, dy: float) -> str:
    """Straight where the points line up vertically, an S-curve with vertical ends elsewhere."""
    (x0, y0), rest = points[0], points[1:]
    parts = [f"M{x0 + dx:.1f},{y0 + dy:.1f}"]
    for x1, y1 in rest:
        if abs(x1 - x0) < 0.5:
            parts.append(f"L{x1 + dx:.1f},{y1 + dy:.1f}")
        else:
            ym = (y0 + y1) / 2 + dy
            parts.append(
                f"C{x0 + dx:.1f},{ym:.1f} {x1 + dx:.1f},{ym:.1f} {x1 + dx:.1f},{y1 + dy:.1f}"
            )
        x0, y0 = x1, y1
    return " ".join(parts)


# -- legend -------------------------------------------------------------------------------------


def _categories(fn: Function) -> list[str]:
    seen: set[str] = set()
    stack = [fn]
    while stack:
        f = stack.pop()
        for n in f.nodes():
            seen.add(gs.category(n))
            body = gs.fusion_body(n)
            if body is not None:
                stack.append(body)
    return [c for c in gs.PALETTES if c in seen]


def _legend_entries(fn: Function) -> list[str]:
    return [*_categories(fn), "result"]


def _legend_width(fn: Function) -> float:
    return TOP.spacing.margin * 2 + sum(_legend_step(e) for e in _legend_entries(fn))


def _legend_step(entry: str) -> float:
    return 22 + len(entry) * 10 * 0.62 + 14


def _legend(fn: Function, x: float, y: float) -> list[str]:
    out = ['<g class="legend" font-size="10">']
    for entry in _legend_entries(fn):
        pal = gs.PALETTES.get(entry, gs.PALETTES["other"])
        stroke_width = 2.6 if entry == "result" else 1.2
        out.append(
            f'<rect x="{x:.1f}" y="{y + 4:.1f}" width="16" height="12" rx="3" fill="{pal.fill}" '
            f'stroke="{pal.stroke}" stroke-width="{stroke_width}"/>'
        )
        out.append(f'<text x="{x + 22:.1f}" y="{y + 14:.1f}" fill="#444444">{entry}</text>')
        x += _legend_step(entry)
    out.append("</g>")
    return out
