"""A run's report for people: text, JSON, a timeline trace, a roofline and a utilization plot.

The plots are hand-written SVG (no plotting library): any browser shows them, and tests can
read them back as XML. Elements that carry data have `data-*` attributes with the numbers they
were drawn from, and the plot area states its axis ranges, so a test can check that a marker
sits where its numbers say.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ir.files import write_text_atomic
from runtime.tpu.config import TpuConfig
from runtime.tpu.sim import Result
from runtime.tpu.stats import LABELS, Record, RunStats
from runtime.tpu.timing import CATEGORIES
from runtime.tpu.trace import TRACKS, array_segments, timeline, trace_events

COLORS = {
    "array_active": "#2e7d32",
    "weight_shift": "#f2a900",
    "weight_stall": "#c62828",
    "input_stall": "#1565c0",
    "non_matrix": "#b0b0b0",
}
FONT = "font-family='Helvetica, Arial, sans-serif'"
CHAR_WIDTH = 6.2  # of an 11-pixel sans-serif character, for placing labels without overlap


@dataclass(frozen=True)
class RoofPoint:
    """One run or layer on the roofline: multiply-adds per weight byte and achieved TOPS."""

    label: str
    intensity: float
    tops: float

    @classmethod
    def of(cls, label: str, stats: RunStats) -> RoofPoint:
        return cls(label, stats.intensity, stats.tops)


@dataclass(frozen=True)
class _Frame:
    """The plot area in pixels and the data range it shows (log10 of the data on log axes)."""

    left: float
    top: float
    width: float
    height: float
    x0: float
    x1: float
    y0: float
    y1: float
    log: bool

    def x(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return self.left + (v - self.x0) / (self.x1 - self.x0) * self.width

    def y(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        return self.top + self.height - (v - self.y0) / (self.y1 - self.y0) * self.height

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def attributes(self) -> str:
        """The mapping, for readers of the SVG: pixel box and data range."""
        return (
            f"data-left='{self.left:g}' data-top='{self.top:g}' data-width='{self.width:g}' "
            f"data-height='{self.height:g}' data-x0='{self.x0:g}' data-x1='{self.x1:g}' "
            f"data-y0='{self.y0:g}' data-y1='{self.y1:g}' data-log='{int(self.log)}'"
        )


def _svg(width: int, height: int, body: list[str]) -> str:
    return "\n".join(
        [
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}' {FONT} font-size='11'>",
            f"<rect width='{width}' height='{height}' fill='white'/>",
            *body,
            "</svg>",
            "",
        ]
    )


def _attr(keyword: str) -> str:
    """`font_size` -> `font-size`; `class_` -> `class` (a Python keyword)."""
    return keyword.rstrip("_").replace("_", "-")


def _text(x: float, y: float, text: str, **attrs: object) -> str:
    extra = "".join(f" {_attr(k)}={quoteattr(str(v))}" for k, v in attrs.items())
    return f"<text x='{x:.1f}' y='{y:.1f}'{extra}>{escape(text)}</text>"


def _rotated_text(x: float, y: float, degrees: float, text: str, **attrs: object) -> str:
    """Text turned about (x, y); translate-then-rotate is what every SVG renderer understands."""
    move = f"translate({x:.1f} {y:.1f}) rotate({degrees:.2f})"
    return _text(0, 0, text, transform=move, **attrs)


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str, **attrs: object) -> str:
    extra = "".join(f" {_attr(k)}='{v}'" for k, v in attrs.items())
    return (
        f"<line x1='{x1:.1f}' y1='{y1:.1f}' x2='{x2:.1f}' y2='{y2:.1f}' stroke='{stroke}'{extra}/>"
    )


def _decade_label(k: int) -> str:
    if 0 <= k <= 4:
        return f"{10**k:,}"
    if -3 <= k < 0:
        return f"{10.0**k:.{-k}f}"
    return f"1e{k}"


def _log_axes(f: _Frame, x_title: str, y_title: str) -> list[str]:
    """Decade grid lines and labels, lighter lines at 2..9 times each decade."""
    out = []
    for k in range(math.floor(f.x0), math.ceil(f.x1) + 1):
        for m in range(1, 10):
            v = math.log10(m) + k
            if f.x0 - 1e-9 <= v <= f.x1 + 1e-9:
                px = f.x(10**v)
                shade = "#d0d0d0" if m == 1 else "#efefef"
                out.append(_line(px, f.top, px, f.bottom, shade))
                if m == 1:
                    out.append(_text(px, f.bottom + 16, _decade_label(k), text_anchor="middle"))
    for k in range(math.floor(f.y0), math.ceil(f.y1) + 1):
        for m in range(1, 10):
            v = math.log10(m) + k
            if f.y0 - 1e-9 <= v <= f.y1 + 1e-9:
                py = f.y(10**v)
                shade = "#d0d0d0" if m == 1 else "#efefef"
                out.append(_line(f.left, py, f.right, py, shade))
                if m == 1:
                    out.append(_text(f.left - 6, py + 4, _decade_label(k), text_anchor="end"))
    return out + _axis_titles(f, x_title, y_title)


def _axis_titles(f: _Frame, x_title: str, y_title: str) -> list[str]:
    cy = f.top + f.height / 2
    return [
        f"<rect x='{f.left}' y='{f.top}' width='{f.width}' height='{f.height}' fill='none' "
        "stroke='#555'/>",
        _text(f.left + f.width / 2, f.bottom + 36, x_title, text_anchor="middle", font_size=12),
        _rotated_text(f.left - 48, cy, -90, y_title, text_anchor="middle", font_size=12),
    ]


def _boxes_overlap(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float]
) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def roofline_svg(points: Iterable[RoofPoint | tuple[str, RunStats]], config: TpuConfig) -> str:
    """A log-log roofline: TOPS against multiply-adds per weight byte, one marker per run.

    The roof is min(peak, 2 x weight bandwidth x intensity) (a multiply-add is two operations);
    the ridge is where the two meet. Runs with no multiply-adds have no place on log axes and are
    listed under the legend instead.
    """
    given = [p if isinstance(p, RoofPoint) else RoofPoint.of(*p) for p in points]
    shown = [p for p in given if p.intensity > 0 and p.tops > 0]
    skipped = [p for p in given if p not in shown]
    peak = config.peak_ops / 1e12
    ridge = config.ridge

    def roof(x: float) -> float:
        return min(peak, 2 * config.weight_bandwidth * x / 1e12)

    xs = [ridge, *(p.intensity for p in shown)]
    x0 = math.floor(math.log10(min(xs) / 3))
    x1 = max(math.ceil(math.log10(max(xs) * 3)), x0 + 2)
    ys = [peak, roof(10.0**x0), *(p.tops for p in shown)]
    y0 = math.floor(math.log10(min(ys)))
    y1 = max(math.ceil(math.log10(peak * 1.5)), y0 + 2)
    f = _Frame(76, 48, 560, 380, x0, x1, y0, y1, log=True)
    title = (
        f"Roofline: TPU {config.name} ({config.rows}x{config.cols} {config.multiplier}, "
        f"{config.clock_hz / 1e6:g} MHz, weights at {config.weight_bandwidth / 1e9:g} GB/s)"
    )
    body = [
        _text(f.left, 24, title, font_size=14, font_weight="bold"),
        f"<g id='plot' {f.attributes()}>",
        *_log_axes(f, "operational intensity (multiply-adds per weight byte)", "TOPS"),
    ]
    vertices = [(10.0**x0, roof(10.0**x0)), (ridge, peak), (10.0**x1, peak)]
    if roof(10.0**x0) < 10.0**y0:  # enter at the bottom edge, not below the plot
        entry = 10.0**y0 * 1e12 / (2 * config.weight_bandwidth)
        vertices[0] = (entry, 10.0**y0)
    path = " ".join(f"{f.x(x):.2f},{f.y(y):.2f}" for x, y in vertices)
    rx, ry = f.x(ridge), f.y(peak)
    (ax, ay), (bx, by) = (f.x(vertices[0][0]), f.y(vertices[0][1])), (rx, ry)
    slope = math.degrees(math.atan2(by - ay, bx - ax))
    mx, my = ax + (bx - ax) * 0.45, ay + (by - ay) * 0.45
    bw = f"2 × {config.weight_bandwidth / 1e9:g} GB/s × intensity"
    body += [
        f"<polyline id='roof' points='{path}' fill='none' stroke='#222' stroke-width='2.5' "
        f"data-peak-tops='{peak:g}' data-ridge='{ridge:g}'/>",
        f"<line x1='{rx:.2f}' y1='{ry:.2f}' x2='{rx:.2f}' y2='{f.bottom}' stroke='#222' "
        "stroke-dasharray='4 3'/>",
        f"<circle id='ridge' cx='{rx:.2f}' cy='{ry:.2f}' r='4' fill='#222' "
        f"data-intensity='{ridge:g}' data-tops='{peak:g}'/>",
        _text(rx + 6, f.bottom - 8, f"ridge {ridge:,.0f} MACs/B", font_size=11),
        _text(rx + 8, ry - 8, f"peak {peak:.3g} TOPS", font_size=11),
        _rotated_text(mx, my - 6, slope, bw, text_anchor="middle"),
    ]
    body += _roof_points(f, shown, roof)
    body.append("</g>")
    body += _roof_legend(f, shown, skipped, roof)
    return _svg(960, 500, body)


def _roof_points(f: _Frame, shown: list[RoofPoint], roof: Any) -> list[str]:
    out = []
    centers = [(f.x(p.intensity), f.y(p.tops)) for p in shown]
    placed = [(x - 6, y - 6, x + 6, y + 6) for x, y in centers]  # labels avoid every marker
    for n, (p, (px, py)) in enumerate(zip(shown, centers, strict=True), 1):
        color = _palette(n - 1)
        out.append(
            f"<circle class='run' cx='{px:.2f}' cy='{py:.2f}' r='5' fill='{color}' "
            f"stroke='white' data-label={quoteattr(p.label)} data-intensity='{p.intensity:g}' "
            f"data-tops='{p.tops:g}'/>"
        )
        text = f"{n}"
        w = CHAR_WIDTH * len(text) + 2
        # below the roof first: every point is under it, and the line runs up to the right
        for dx, dy in ((7, 16), (-7 - w, 16), (8, 4), (-8 - w, 4), (7, 30), (8, -10)):
            box = (px + dx, py + dy - 10, px + dx + w, py + dy + 2)
            if not any(_boxes_overlap(box, b) for b in placed):
                break
        placed.append(box)
        out.append(
            _text(box[0], box[3] - 2, text, class_="run-label", font_weight="bold", fill=color)
        )
    return out


def _roof_legend(
    f: _Frame, shown: list[RoofPoint], skipped: list[RoofPoint], roof: Any
) -> list[str]:
    x, y = f.right + 24, f.top + 4
    out = [_text(x, y, "runs", font_weight="bold", font_size=12)]
    y -= 10
    for n, p in enumerate(shown, 1):
        y += 34
        color = _palette(n - 1)
        share = p.tops / roof(p.intensity)
        out += [
            f"<circle cx='{x + 5}' cy='{y - 4}' r='5' fill='{color}'/>",
            _text(x + 16, y, f"{n}  {p.label}", class_="legend", font_size=11),
            _text(
                x + 16,
                y + 14,
                f"{p.intensity:,.1f} MACs/B, {p.tops:.3g} TOPS ({share:.0%} of roof)",
                font_size=10,
                fill="#555",
            ),
        ]
    for p in skipped:
        y += 20
        out.append(_text(x, y, f"not plotted (no MACs): {p.label}", font_size=10, fill="#555"))
    return out


def _palette(n: int) -> str:
    colors = ("#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#5d4037")
    return colors[n % len(colors)]


def bucket_shares(result: Result, buckets: int = 200) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Bucket edges in cycles, and per category the fraction of each bucket's cycles in it.

    Per bucket the fractions add up to one; non-matrix is what the matrix unit's streaming and
    the attributed stalls leave over.
    """
    cycles = result.stats.cycles
    n = max(1, min(buckets, cycles))
    edges = np.linspace(0.0, float(cycles), n + 1)
    width = np.maximum(np.diff(edges), 1e-12)
    segments = array_segments(result)
    shares = {}
    for category in CATEGORIES[:-1]:
        spans = np.array([(a, b) for k, a, b in segments if k == category], np.float64)
        shares[category] = np.diff(_covered(spans.reshape(-1, 2), edges)) / width
    shares["non_matrix"] = np.clip(1.0 - sum(shares.values()), 0.0, 1.0)
    return edges, shares


def _covered(spans: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Cycles in [0, t) covered by sorted, non-overlapping spans (one row per span)."""
    if not len(spans):
        return np.zeros_like(t)
    starts, lengths = spans[:, 0], spans[:, 1] - spans[:, 0]
    before = np.concatenate([[0.0], np.cumsum(lengths)])
    k = np.searchsorted(starts, t, side="right") - 1
    inside = np.clip(t - starts[np.maximum(k, 0)], 0.0, lengths[np.maximum(k, 0)])
    return np.where(k >= 0, before[np.maximum(k, 0)] + inside, 0.0)


def _nice_step(span: float, target: int = 8) -> float:
    raw = span / target
    magnitude = 10 ** math.floor(math.log10(raw))
    return float(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))


def utilization_svg(result: Result, buckets: int = 200) -> str:
    """Stacked bands over time: the array streaming, and why it was not, per time bucket."""
    stats = result.stats
    c = stats.config
    edges, shares = bucket_shares(result, buckets)
    us = 1e6 / c.clock_hz
    t1 = max(float(edges[-1]) * us, 1e-9)
    f = _Frame(64, 48, 700, 300, 0.0, t1, 0.0, 1.0, log=False)
    title = (
        f"Matrix unit over time: TPU {c.name} ({c.rows}x{c.cols}), {stats.mode} timing, "
        f"{stats.cycles:,} cycles"
    )
    subtitle = (
        f"array active {stats.breakdown['array_active'] / max(1, stats.cycles):.1%} of cycles, "
        f"useful-MAC utilization {stats.utilization:.1%}, {stats.tops:.3g} TOPS; "
        f"{len(edges) - 1} buckets of {float(edges[1] - edges[0]):,.1f} cycles"
    )
    body = [
        _text(f.left, 20, title, font_size=14, font_weight="bold"),
        _text(f.left, 37, subtitle, font_size=11, fill="#444"),
        f"<g id='plot' {f.attributes()} data-buckets='{len(edges) - 1}'>",
    ]
    xs = edges * us
    lower = np.zeros(len(edges) - 1)
    for category in CATEGORIES:
        upper = lower + shares[category]
        top = [(xs[i + j], upper[i]) for i in range(len(upper)) for j in (0, 1)]
        bottom = [(xs[i + j], lower[i]) for i in reversed(range(len(lower))) for j in (1, 0)]
        path = " ".join(f"{f.x(x):.2f},{f.y(y):.2f}" for x, y in top + bottom)
        body.append(
            f"<polygon class='band' data-category='{category}' points='{path}' "
            f"fill='{COLORS[category]}' stroke='none'/>"
        )
        lower = upper
    for k in range(0, 11, 2):
        py = f.y(k / 10)
        body.append(_line(f.left, py, f.right, py, "white", stroke_opacity=0.35))
        body.append(_text(f.left - 6, py + 4, f"{k * 10}%", text_anchor="end"))
    step = _nice_step(t1)
    for k in range(int(t1 / step) + 1):
        px = f.x(k * step)
        body.append(_line(px, f.bottom, px, f.bottom + 4, "#555"))
        body.append(_text(px, f.bottom + 16, f"{k * step:g}", text_anchor="middle"))
    x_title = f"time (microseconds at {c.clock_hz / 1e6:g} MHz)"
    body += _axis_titles(f, x_title, "share of cycles in each bucket")
    body.append("</g>")
    y = f.top + 10
    for category in reversed(CATEGORIES):
        share = stats.breakdown[category] / max(1, stats.cycles)
        body += [
            f"<rect x='{f.right + 20}' y='{y - 9}' width='12' height='12' "
            f"fill='{COLORS[category]}'/>",
            _text(f.right + 38, y + 1, f"{LABELS[category]}  {share:.1%}", class_="legend"),
        ]
        y += 22
    return _svg(960, 400, body)


def kind_totals(result: Result) -> dict[str, dict[str, Any]]:
    """Per instruction kind: how many, their cycles (start to end), the stalls before them."""
    totals: dict[str, dict[str, Any]] = {}
    for r in result.records:
        t = totals.setdefault(
            r.instruction.mnemonic, {"count": 0, "cycles": 0, "max_cycles": 0, "stall": {}}
        )
        t["count"] += 1
        t["cycles"] += r.end - r.start
        t["max_cycles"] = max(t["max_cycles"], r.end - r.start)
        for k, v in r.stall.items():
            t["stall"][k] = t["stall"].get(k, 0) + v
    return totals


def unit_busy(result: Result) -> dict[str, int]:
    """Cycles each unit of the chip worked: its trace track's events, stalls left out."""
    busy = dict.fromkeys(TRACKS[:-1], 0)  # the last track is token-only NOPs: no unit
    for s in timeline(result):
        if s.category != "stall" and TRACKS[s.track] in busy:
            busy[TRACKS[s.track]] += s.end - s.start
    return busy


def _stall_text(r: Record) -> str:
    return _stalls(r.stall)


def _stalls(cycles: dict[str, int]) -> str:
    """Stall cycles by cause, in the order of the breakdown."""
    return ", ".join(f"{LABELS[k]} {cycles[k]:,}" for k in CATEGORIES if cycles.get(k)) or "-"


def _record_dict(r: Record) -> dict[str, Any]:
    return {
        "index": r.index,
        "asm": r.instruction.asm(),
        "start": r.start,
        "end": r.end,
        "cycles": r.end - r.start,
        "stall": dict(r.stall),
    }


def report_text(result: Result, slowest: int = 10) -> str:
    stats = result.stats
    lines = [stats.report(), ""]
    if result.problems:
        lines += ["problems:", *(f"  {p}" for p in result.problems), ""]
    lines.append("busy share of each unit (explains non-matrix time: what else was working)")
    for name, busy in unit_busy(result).items():
        lines.append(f"  {name:<36} {busy:>12,} cycles  {busy / max(1, stats.cycles):7.1%}")
    lines.append("")
    lines.append("by instruction kind (cycles from start to end; stalls are the matrix unit's idle")
    lines.append("cycles the timing model charged to the instruction they delayed)")
    lines.append(f"  {'kind':<5} {'count':>7} {'cycles':>12} {'longest':>10}  stalls before")
    for kind, t in kind_totals(result).items():
        stalls = _stalls(t["stall"])
        lines.append(
            f"  {kind:<5} {t['count']:>7,} {t['cycles']:>12,} {t['max_cycles']:>10,}  {stalls}"
        )
    lines += ["", f"the {slowest} slowest instructions (cycles from start to end)"]
    lines += _record_table(_slowest(result.records, slowest))
    stalled = [r for r in result.records if r.stall]
    stalled.sort(key=lambda r: (-sum(r.stall.values()), r.index))
    lines += [
        "",
        f"the {slowest} longest stalls of the matrix unit, by the instruction they delayed",
    ]
    lines += _record_table(stalled[:slowest])
    return "\n".join(lines) + "\n"


def _slowest(records: Sequence[Record], n: int) -> list[Record]:
    return sorted(records, key=lambda r: (r.start - r.end, r.index))[:n]


def _record_table(records: Sequence[Record]) -> list[str]:
    if not records:
        return ["  (none)"]
    out = [f"  {'#':>6} {'start':>10} {'cycles':>9}  instruction / stall causes"]
    for r in records:
        out.append(f"  {r.index:>6} {r.start:>10,} {r.end - r.start:>9,}  {r.instruction.asm()}")
        if r.stall:
            out.append(f"  {'':>6} {'':>10} {'':>9}    stalled: {_stall_text(r)}")
    return out


def stats_json(result: Result, slowest: int = 10) -> dict[str, Any]:
    return {
        **result.stats.as_dict(),
        "problems": list(result.problems),
        "unit_busy_cycles": unit_busy(result),
        "by_kind": kind_totals(result),
        "slowest": [_record_dict(r) for r in _slowest(result.records, slowest)],
    }


def write_report(
    result: Result,
    directory: str | os.PathLike[str],
    label: str | None = None,
    layers: Sequence[RoofPoint] = (),
    slowest: int = 10,
) -> dict[str, Path]:
    """Write report.txt, stats.json, trace.json, roofline.svg and utilization.svg.

    Everything is rendered before the first file is written, and each file appears whole or
    not at all. `layers` adds per-layer points to the roofline next to the run's own.
    """
    out = Path(directory)
    run = RoofPoint.of(label or f"whole run ({result.stats.mode} timing)", result.stats)
    contents = {
        "report.txt": report_text(result, slowest),
        "stats.json": json.dumps(stats_json(result, slowest), indent=2) + "\n",
        "trace.json": json.dumps(trace_events(result), separators=(",", ":")),
        "roofline.svg": roofline_svg([*layers, run], result.stats.config),
        "utilization.svg": utilization_svg(result),
    }
    written = {}
    for name, text in contents.items():
        write_text_atomic(out / name, text)
        written[name] = out / name
    return written
