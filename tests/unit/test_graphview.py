"""Graph pictures: the DOT export and the self-drawn SVG, checked as data (not pixels)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from itertools import pairwise
from pathlib import Path

import pytest

from compiler import graphstyle
from compiler.graphview import to_dot, to_svg
from ir.attrs import Attrs
from ir.graph import Function, Node
from ir.ops import Op
from ir.parser import parse_file, parse_module

SAMPLES = sorted((Path(__file__).parents[2] / "samples").glob("*.graph"))
SVG = "{http://www.w3.org/2000/svg}"

MLP = """
func @main(%x: f32[4,8], %w: f32[8,3], %b: f32[3]) -> f32[4,3] {
  %y = matmul(%x, %w) : f32[4,3]
  %z = add(%y, %b) : f32[4,3]
  %r = relu(%z) : f32[4,3]
  %s = mul(%r, %r) : f32[4,3]
  return %s
}
"""


def parse(text: str) -> Function:
    return parse_module(text).entry_function


def fusion_of(fn: Function) -> Node:
    return next(n for n in fn.body if n.op is getattr(Op, "FUSION", None))


def fuse(fn: Function, members: set[str]) -> Function:
    """Replace the named nodes (the last one is the group's root) by one fusion op."""
    group = [n for n in fn.body if n.name in members]
    inside, root = set(group), group[-1]
    operands: list[Node] = []
    for m in group:
        operands += [s for s in m.srcs if s not in inside and s not in operands]
    inner: dict[Node, Node] = {
        s: Node(Op.PARAMETER, s.type, name=f"p{i}") for i, s in enumerate(operands)
    }
    for m in group:
        inner[m] = m.replace(srcs=tuple(inner[s] for s in m.srcs))
    body = Function(
        "fusion", tuple(inner[s] for s in operands), tuple(inner[m] for m in group), (inner[root],)
    )
    outer: dict[Node, Node] = {}
    new_body = []
    for n in fn.body:
        if n is root:
            srcs = tuple(outer.get(s, s) for s in operands)
            outer[n] = Node(Op.FUSION, n.type, srcs, Attrs({"body": body}), name=n.name)
        elif n in inside:
            continue
        else:
            outer[n] = n.replace(srcs=tuple(outer.get(s, s) for s in n.srcs))
        new_body.append(outer[n])
    return fn.replace(body=tuple(new_body), results=tuple(outer.get(r, r) for r in fn.results))


def node_groups(root: ET.Element, cls: str = "node") -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class", "").split()[0] == cls]


def paths(root: ET.Element, cls: str = "edge") -> list[ET.Element]:
    return [p for p in root.iter(f"{SVG}path") if p.get("class") == cls]


def rect_of(group: ET.Element) -> tuple[float, ...]:
    rect = group.find(f"{SVG}rect")
    assert rect is not None
    return tuple(float(rect.get(k, "")) for k in ("x", "y", "width", "height"))


def numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", text)]


def check_svg(fn: Function) -> ET.Element:
    """The invariants every picture keeps; returns the parsed SVG for further checks."""
    root = ET.fromstring(to_svg(fn))
    _, _, width, height = numbers(root.get("viewBox", ""))
    assert len(node_groups(root)) == len(list(fn.nodes()))
    assert len(paths(root)) == sum(len(n.srcs) for n in fn.body)
    for el in root.iter():
        for attr in ("x", "y"):
            if attr in el.attrib:
                assert 0 <= float(el.get(attr, "")) <= (width if attr == "x" else height)
        if el.tag == f"{SVG}rect":
            assert float(el.get("x", "")) + float(el.get("width", "")) <= width
            assert float(el.get("y", "")) + float(el.get("height", "")) <= height
        if el.tag == f"{SVG}path":
            coords = numbers(el.get("d", ""))
            assert all(0 <= x <= width for x in coords[0::2])
            assert all(0 <= y <= height for y in coords[1::2])
    rows: dict[str, list[tuple[float, float]]] = {}
    for g in node_groups(root):
        rect = g.find(f"{SVG}rect")
        assert rect is not None
        assert g.find(f"{SVG}title") is not None
        left = float(rect.get("x", ""))
        rows.setdefault(g.get("data-layer", ""), []).append(
            (left, left + float(rect.get("width", "")))
        )
    for spans in rows.values():
        spans.sort()
        assert all(a[1] <= b[0] for a, b in pairwise(spans)), spans
    return root


def test_svg_small_function() -> None:
    fn = parse(MLP)
    root = check_svg(fn)
    names = [g.get("data-name", "") for g in node_groups(root)]
    assert sorted(names) == sorted(["%x", "%w", "%b", "%y", "%z", "%r", "%s", "%0"])
    # the tooltip is the printed statement
    titles = {g.get("data-name"): g.findtext(f"{SVG}title") for g in node_groups(root)}
    assert titles["%r"] == "%r = relu(%z) : f32[4,3]"
    result = next(g for g in node_groups(root) if g.get("data-name") == "%s")
    rect = result.find(f"{SVG}rect")
    assert rect is not None
    assert rect.get("stroke-width") == "2.6"  # results get a heavy outline


def test_svg_draws_each_operand_use() -> None:
    # mul(%r, %r) uses one value twice: two edges, entering at two different points
    root = check_svg(parse(MLP))
    into_s = [p for p in paths(root) if (p.findtext(f"{SVG}title") or "").startswith("%r → %s")]
    assert len(into_s) == 2
    ends = {tuple(numbers(p.get("d", ""))[-2:]) for p in into_s}
    assert len(ends) == 2


def test_svg_sinks_weights_next_to_their_use() -> None:
    text = """
    func @main(%x: f32[4]) -> f32[4] {
      %a = exp(%x) : f32[4]
      %b = exp(%a) : f32[4]
      %c = exp(%b) : f32[4]
      %k = constant 2.0 : f32[4]
      %d = mul(%c, %k) : f32[4]
      return %d
    }
    """
    root = check_svg(parse(text))
    layer = {g.get("data-name"): int(g.get("data-layer", "")) for g in node_groups(root)}
    assert layer["%x"] == 0
    assert layer["%k"] == layer["%d"] - 1


def test_svg_escapes_text_and_is_unique_per_prefix() -> None:
    fn = parse(MLP)
    a, b = to_svg(fn, id_prefix="s1"), to_svg(fn, id_prefix="s2", standalone=False)
    assert 'id="s1-arrow"' in a
    assert "url(#s2-arrow)" in b
    assert "http://" not in b
    assert "→" in a  # edge tooltips name both ends


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_svg_samples(path: Path) -> None:
    fn = parse_file(path).entry_function
    check_svg(fn)


def test_dot_counts_and_braces() -> None:
    fn = parse(MLP)
    dot = to_dot(fn)
    assert dot.count("{") == dot.count("}")
    assert len(re.findall(r"^\s*n\d+ \[", dot, re.M)) == len(list(fn.nodes()))
    edges = re.findall(r"^\s*(n\d+) -> (n\d+)(.*);$", dot, re.M)
    assert len(edges) == sum(len(n.srcs) for n in fn.body)
    assert any('label="1"' in rest for _, _, rest in edges)  # binary ops label operand indices
    assert '"%r = relu : f32[4,3]"' in dot
    assert "peripheries=2" in dot  # the result


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_dot_samples(path: Path) -> None:
    fn = parse_file(path).entry_function
    dot = to_dot(fn)
    assert dot.count("{") == dot.count("}")
    assert len(re.findall(r" -> ", dot)) == sum(len(n.srcs) for n in fn.body)


def test_fusion_svg_is_a_labeled_group() -> None:
    fn = fuse(parse(MLP), {"y", "z", "r"})
    root = check_svg(fn)
    frame = next(g for g in node_groups(root) if "cat-fusion" in g.get("class", ""))
    header = [t.text for t in frame.iter(f"{SVG}text")]
    assert header[0] == f"%r = {graphstyle.fusion_kind(fusion_of(fn).attrs['body'])} fusion · 3 ops"
    inner = node_groups(root, "inner-node")
    assert len(inner) == 3 + 3  # body ops plus the body's parameters (the fusion's operands)
    assert len(paths(root, "inner-edge")) == 2 + 2 + 1
    # the body is drawn inside the frame
    fx, fy, fw, fh = rect_of(frame)
    for g in inner:
        x, y, w, h = rect_of(g)
        assert fx < x < x + w < fx + fw
        assert fy < y < y + h < fy + fh


def test_fusion_dot_is_a_cluster() -> None:
    fn = fuse(parse(MLP), {"y", "z", "r"})
    dot = to_dot(fn)
    assert dot.count("subgraph cluster_") == 1
    assert dot.count("{") == dot.count("}")
    # outer values feed the body's nodes directly; the fusion's user reads the body's root
    edges = re.findall(r"(n[\d_]+) -> (n[\d_]+)", dot)
    # inside: matmul 2, add 2, relu 1; outside: the bias broadcast 1, mul(%r, %r) 2
    assert len(edges) == 5 + 3
    assert all(not dst.startswith(src + "_") for src, dst in edges)


def test_fusion_kind_fallback() -> None:
    fn = fuse(parse(MLP), {"y", "z"})
    assert graphstyle.fusion_kind(fusion_of(fn).attrs["body"]) == "output"
