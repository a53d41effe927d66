"""A small layered (Sugiyama-style) layout for dataflow graphs: boxes in rows, edges downward.

The steps, each kept simple on purpose:
1. Ranks are networkx's topological generations. Boxes that depend on no pinned box
   (constants and what is computed from them alone) then sink to just above their first user,
   so a weight used deep in the graph does not draw a long edge from the top row.
2. An edge that spans several rows gets a zero-height dummy box in every row it crosses; the
   dummies reserve horizontal room, so long edges bend around boxes instead of through them.
3. The order inside each row comes from barycenter sweeps (down, then up), keeping whichever
   order had the fewest crossings.
4. Horizontal positions: every box wants to sit at the mean x of its neighbours. Keeping the
   row order and the gaps turns that into isotonic regression, solved exactly by
   pool-adjacent-violators; alternate sweeps pull rows toward each other.
5. Rows are stacked top to bottom, each box centered vertically in its row's band.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations, pairwise
from typing import Generic, TypeVar, cast

import networkx as nx

K = TypeVar("K", bound=Hashable)  # the caller's box keys (IR nodes, here)
DUMMY_WIDTH = 4.0  # room kept for an edge passing through a row
DUMMY_WEIGHT = 8.0  # how much more a dummy resists being moved than a box
SWEEPS = 4  # ordering and positioning rounds; more rarely changes anything at our sizes


@dataclass(frozen=True, slots=True)
class Edge(Generic[K]):
    src: K
    dst: K
    port: int = 0  # operand index at dst
    ports: int = 1  # operand count of dst; edges enter at evenly spaced points on its top


@dataclass(frozen=True, slots=True)
class Spacing:
    gap_x: float = 24.0
    gap_y: float = 44.0
    margin: float = 16.0


@dataclass(slots=True)
class Box:
    width: float
    height: float
    x: float = 0.0  # left
    y: float = 0.0  # top
    rank: int = 0

    @property
    def cx(self) -> float:
        return self.x + self.width / 2

    @property
    def bottom(self) -> float:
        return self.y + self.height


@dataclass(frozen=True, slots=True)
class _Dummy:
    src: Hashable  # edges from one source share their dummies: one trunk line, many branches
    rank: int


@dataclass
class Layout(Generic[K]):
    boxes: dict[K, Box]
    routes: list[tuple[Edge[K], list[tuple[float, float]]]]  # polyline points, source to target
    rows: list[list[K]]  # real boxes only (no dummies), left to right
    width: float
    height: float


def layout(
    sizes: Mapping[K, tuple[float, float]],
    edges: Sequence[Edge[K]],
    order: Sequence[K],
    pinned: Collection[K] = (),
    spacing: Spacing | None = None,
) -> Layout[K]:
    """Place boxes of the given (width, height); `order` is the initial left-to-right order."""
    spacing = spacing or Spacing()
    ranks = _ranks(sizes, edges, pinned)
    boxes: dict[Hashable, Box] = {k: Box(w, h, rank=ranks[k]) for k, (w, h) in sizes.items()}
    preds: dict[Hashable, list[Hashable]] = {k: [] for k in sizes}
    succs: dict[Hashable, list[Hashable]] = {k: [] for k in sizes}
    chains = [_chain(e, ranks, boxes, preds, succs) for e in edges]

    position: dict[Hashable, int] = {k: i for i, k in enumerate(order)}
    rows: list[list[Hashable]] = [[] for _ in range(max(ranks.values(), default=-1) + 1)]
    for k, b in boxes.items():
        rows[b.rank].append(k)
    for row in rows:  # dummies start where the value they carry is defined
        row.sort(key=lambda k: position[k.src if isinstance(k, _Dummy) else k])

    rows = _order(rows, preds, succs)
    _place_x(rows, boxes, preds, succs, spacing)
    bands = _place_y(rows, boxes, spacing)
    routes = [(e, _route(e, chain, boxes, bands)) for e, chain in zip(edges, chains, strict=True)]
    width = max((b.x + b.width for b in boxes.values()), default=0.0) + spacing.margin
    height = (bands[-1][1] if bands else 0.0) + spacing.margin
    real = [[cast(K, k) for k in row if not isinstance(k, _Dummy)] for row in rows]
    return Layout({k: boxes[k] for k in sizes}, routes, real, width, height)


def _chain(
    e: Edge[K],
    ranks: dict[Hashable, int],
    boxes: dict[Hashable, Box],
    preds: dict[Hashable, list[Hashable]],
    succs: dict[Hashable, list[Hashable]],
) -> list[Hashable]:
    """Link edge e into the graph through a dummy in each row it crosses; returns those dummies.

    Sharing dummies per source keeps their number linear in the graph's depth even when one
    value (an input, a scale) feeds every row.
    """
    chain = [_Dummy(e.src, r) for r in range(ranks[e.src] + 1, ranks[e.dst])]
    for d in chain:
        if d not in boxes:
            boxes[d] = Box(DUMMY_WIDTH, 0.0, rank=d.rank)
            preds[d], succs[d] = [], []
    for a, b in pairwise([e.src, *chain, e.dst]):
        if b not in succs[a] or not isinstance(b, _Dummy):
            succs[a].append(b)
            preds[b].append(a)
    return list(chain)


def _ranks(
    sizes: Mapping[K, tuple[float, float]], edges: Sequence[Edge[K]], pinned: Collection[K]
) -> dict[Hashable, int]:
    g = nx.DiGraph()
    g.add_nodes_from(sizes)
    g.add_edges_from((e.src, e.dst) for e in edges)
    generations = [list(gen) for gen in nx.topological_generations(g)]
    rank = {k: r for r, gen in enumerate(generations) for k in gen}
    # Whatever does not depend on a pinned box (a weight, or a broadcast of one) is placed as
    # late as possible; users come first in reverse order, so their ranks are already final.
    anchored = set(pinned).union(*(nx.descendants(g, p) for p in pinned))
    for gen in reversed(generations):
        for k in gen:
            if k not in anchored and g.out_degree(k) > 0:
                rank[k] = min(rank[s] for s in g.successors(k)) - 1
    # Sinking can empty a row (or leave rank 0 unused); renumber so rows are dense.
    dense = {r: i for i, r in enumerate(sorted(set(rank.values())))}
    return {k: dense[r] for k, r in rank.items()}


def _order(
    rows: list[list[Hashable]],
    preds: dict[Hashable, list[Hashable]],
    succs: dict[Hashable, list[Hashable]],
) -> list[list[Hashable]]:
    best, best_cost = [list(r) for r in rows], _crossings(rows, succs)
    for sweep in range(2 * SWEEPS):
        down = sweep % 2 == 0
        indices = range(1, len(rows)) if down else range(len(rows) - 2, -1, -1)
        for r in indices:
            ref = {k: i for i, k in enumerate(rows[r - 1 if down else r + 1])}
            nbrs = preds if down else succs
            here = {k: i for i, k in enumerate(rows[r])}
            rows[r].sort(key=lambda k: _barycenter(nbrs[k], ref, here[k]))
        cost = _crossings(rows, succs)
        if cost < best_cost:
            best, best_cost = [list(r) for r in rows], cost
    return best


def _barycenter(nbrs: list[Hashable], ref: dict[Hashable, int], here: int) -> float:
    pos = [ref[n] for n in nbrs if n in ref]
    return sum(pos) / len(pos) if pos else float(here)


def _crossings(rows: list[list[Hashable]], succs: dict[Hashable, list[Hashable]]) -> int:
    total = 0
    for upper, lower in pairwise(rows):
        at = {k: i for i, k in enumerate(lower)}
        segs = [(i, at[s]) for i, k in enumerate(upper) for s in succs[k] if s in at]
        total += sum(1 for (a, b), (c, d) in combinations(segs, 2) if (a - c) * (b - d) < 0)
    return total


def _place_x(
    rows: list[list[Hashable]],
    boxes: dict[Hashable, Box],
    preds: dict[Hashable, list[Hashable]],
    succs: dict[Hashable, list[Hashable]],
    spacing: Spacing,
) -> None:
    center: dict[Hashable, float] = {}
    for row in rows:  # start packed from the left; the sweeps below pull rows into line
        x = 0.0
        for k in row:
            center[k] = x + boxes[k].width / 2
            x += boxes[k].width + spacing.gap_x
    plan = [(range(len(rows)), preds), (range(len(rows) - 1, -1, -1), succs)] * SWEEPS
    for indices, nbrs in plan:
        for r in indices:
            row = rows[r]
            want = [_want(k, nbrs[k], center) for k in row]
            # Dummies are stiff so long edges run straight and boxes make room around them;
            # with equal weights a box pulled sideways drags the line, and rows drift.
            weight = [DUMMY_WEIGHT if isinstance(k, _Dummy) else 1.0 for k in row]
            fitted = _fit(want, weight, [boxes[k].width for k in row], spacing.gap_x)
            center.update(zip(row, fitted, strict=True))
    left = min((center[k] - b.width / 2 for k, b in boxes.items()), default=0.0)
    for k, b in boxes.items():
        b.x = center[k] - b.width / 2 - left + spacing.margin


def _want(k: Hashable, nbrs: list[Hashable], center: dict[Hashable, float]) -> float:
    """Where k would like to be: the mean of its neighbours of the same kind (box or dummy)
    if it has any, else of all of them. Boxes then line up with boxes and long edges with
    their own continuation, instead of each pulling the other sideways row after row."""
    same = [n for n in nbrs if isinstance(n, _Dummy) == isinstance(k, _Dummy)]
    chosen = same or nbrs
    return sum(center[n] for n in chosen) / len(chosen) if chosen else center[k]


def _fit(want: list[float], weight: list[float], widths: list[float], gap: float) -> list[float]:
    """Centers closest to `want` (weighted least squares) keeping the order and `gap` apart.

    Subtracting each box's minimum offset from the first turns the spacing constraints into
    "non-decreasing", which pool-adjacent-violators solves exactly in one pass.
    """
    offsets = [0.0]
    for a, b in pairwise(widths):
        offsets.append(offsets[-1] + (a + b) / 2 + gap)
    blocks: list[list[float]] = []  # [weighted sum, total weight, count] of merged runs
    for w, o, k in zip(want, offsets, weight, strict=True):
        blocks.append([(w - o) * k, k, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, t, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += t
            blocks[-1][2] += c
    fitted = [s / t for s, t, c in blocks for _ in range(int(c))]
    return [f + o for f, o in zip(fitted, offsets, strict=True)]


def _place_y(
    rows: list[list[Hashable]], boxes: dict[Hashable, Box], spacing: Spacing
) -> list[tuple[float, float]]:
    bands = []
    top = spacing.margin
    for row in rows:
        height = max((boxes[k].height for k in row), default=0.0)
        for k in row:
            boxes[k].y = top + (height - boxes[k].height) / 2
        bands.append((top, top + height))
        top += height + spacing.gap_y
    return bands


def _route(
    e: Edge[K], chain: list[Hashable], boxes: dict[Hashable, Box], bands: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    src, dst = boxes[e.src], boxes[e.dst]
    points = [(src.cx, src.bottom)]
    for d in chain:  # straight down through each crossed row's band, where the boxes are
        top, bottom = bands[boxes[d].rank]
        points += [(boxes[d].cx, top), (boxes[d].cx, bottom)]
    port_x = dst.x + dst.width * (e.port + 1) / (e.ports + 1) if e.ports > 1 else dst.cx
    points.append((port_x, dst.y))
    # A long vertical run through many rows is one straight segment, not a point per row.
    return [
        p
        for i, p in enumerate(points)
        if i in (0, len(points) - 1)
        or not abs(points[i - 1][0] - p[0]) < 0.5 > abs(points[i + 1][0] - p[0])
    ]
