"""`tessel bisect`: find the first pass whose output differs from the unoptimized graph.

Runs the pipeline one pass at a time, interprets the module after each pass on the same inputs,
and compares with the interpreter's result on the input module. The first pass that moves any
output beyond tolerance is reported with the IR before and after it, side by side.
"""

from __future__ import annotations

import difflib
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler.irhtml import diff_html, diff_stats
from compiler.reportstyle import CSS
from ir.dtypes import DType
from ir.files import write_text_atomic
from ir.graph import Module
from ir.printer import print_module
from ir.verify import verify_module
from passes.base import Pass, PassContext
from runtime.interp import run_module


@dataclass(frozen=True)
class Difference:
    """How one output of the pass's module differs from the reference."""

    index: int
    name: str  # the result's name in the graph, or "" if it has none
    type: str  # the expected type, f32[256,10]
    count: int  # elements beyond tolerance
    size: int
    max_abs: float  # largest |expected - got| among them, NaN against a number aside
    max_rel: float  # largest |expected - got| / |expected|
    first: tuple[int, ...]
    expected: object
    got: object
    note: str = ""  # a shape or dtype mismatch, instead of the numbers
    nans: int = 0  # elements that are NaN on one side only

    @property
    def label(self) -> str:
        return f"output {self.index}" + (f" (%{self.name})" if self.name else "")


@dataclass(frozen=True)
class Step:
    index: int
    spec: str
    mismatch: str | None  # None: outputs agree within tolerance
    before: Module
    after: Module
    differences: tuple[Difference, ...] = ()  # every output that differs, when one does
    tolerance: tuple[float, float] = (1e-5, 1e-6)  # (rtol, atol)


def compare(
    expected: Sequence[np.ndarray], got: Sequence[np.ndarray], rtol: float, atol: float
) -> str | None:
    """A description of the first output that differs beyond tolerance, or None."""
    found = differences(expected, got, rtol, atol)
    if not found:
        return None
    d = found[0]
    if d.note:
        return f"output {d.index}: {d.note}"
    return (
        f"output {d.index}: {d.count} of {d.size} elements differ; "
        f"first at {list(d.first)}: expected {d.expected!r}, got {d.got!r}"
    )


def differences(
    expected: Sequence[np.ndarray],
    got: Sequence[np.ndarray],
    rtol: float,
    atol: float,
    names: Sequence[str] = (),
) -> list[Difference]:
    """Every output that differs beyond tolerance: which, how many elements, by how much."""
    found = []
    for i, (e, g) in enumerate(zip(expected, got, strict=True)):
        name = names[i] if i < len(names) else ""
        kind = f"{_dtype_name(e.dtype)}[{','.join(map(str, e.shape))}]"
        if e.shape != g.shape or e.dtype != g.dtype:
            note = f"{g.dtype}{list(g.shape)} instead of {e.dtype}{list(e.shape)}"
            found.append(Difference(i, name, kind, e.size, e.size, 0, 0, (), None, None, note))
            continue
        e64, g64 = e.astype(np.float64), g.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            gap = np.abs(e64 - g64)
            if e.dtype.kind in "biu":
                bad = e != g
            else:
                same_nan = np.isnan(e64) & np.isnan(g64)
                bad = ~((gap <= atol + rtol * np.abs(e64)) | same_nan | (e64 == g64))
        if not bad.any():
            continue
        nan = bad & np.isnan(gap)  # NaN on one side only: no distance to speak of
        numeric = bad & ~nan
        gaps = gap[numeric]
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(gaps == 0, 0.0, gaps / np.abs(e64[numeric]))
        where = tuple(int(k) for k in np.argwhere(bad)[0])
        found.append(
            Difference(
                i, name, kind, int(bad.sum()), e.size,
                float(gaps.max(initial=0.0)), float(rel.max(initial=0.0)),
                where, e[where].item(), g[where].item(), nans=int(nan.sum()),
            )
        )  # fmt: skip
    return found


def _dtype_name(dt: np.dtype) -> str:
    try:
        return DType.from_numpy(dt).value
    except ValueError:
        return str(dt)


def bisect(
    module: Module,
    passes: Sequence[Pass],
    inputs: Sequence[np.ndarray],
    rtol: float = 1e-5,
    atol: float = 1e-6,
    entry: str | None = None,
) -> tuple[list[Step], Step | None]:
    """All steps up to and including the first bad one, and that step (None if all agree)."""
    expected = run_module(module, inputs, entry=entry)
    fn = module.by_name()[entry] if entry is not None else module.entry_function
    names = [r.name or "" for r in fn.results]
    ctx = PassContext()
    steps: list[Step] = []
    current = module
    for index, p in enumerate(passes, start=1):
        after = p.run(current, ctx)
        verify_module(after)
        got = run_module(after, inputs, entry=entry)
        mismatch = compare(expected, got, rtol, atol)
        found = tuple(differences(expected, got, rtol, atol, names)) if mismatch else ()
        step = Step(index, p.spec(), mismatch, current, after, found, (rtol, atol))
        steps.append(step)
        if mismatch:
            return steps, step
        current = after
    return steps, None


def side_by_side(before: str, after: str, width: int = 160) -> str:
    """Two columns, marking changed lines; for terminals (the dump folder gets an HTML diff)."""
    half = (width - 3) // 2
    a, b = before.splitlines(), after.splitlines()
    lines = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        left, right = a[i1:i2], b[j1:j2]
        mark = " " if tag == "equal" else "|"
        for k in range(max(len(left), len(right))):
            lt = left[k] if k < len(left) else ""
            rt = right[k] if k < len(right) else ""
            m = mark if lt and rt else "<" if lt else ">"
            lines.append(f"{lt[:half]:<{half}} {m} {rt[:half]}")
    return "\n".join(lines)


def write_bad_step(folder: Path, step: Step) -> list[Path]:
    """The IR before and after the bad pass as re-runnable graph files, plus an HTML page:
    which outputs differ and by how much, and the diff of the two modules."""
    folder.mkdir(parents=True, exist_ok=True)
    from ir.printer import WeightSink

    weights = WeightSink(folder / "weights.npz")
    texts = {}
    paths = []
    for label, module in (("before", step.before), ("after", step.after)):
        texts[label] = print_module(module, base_dir=folder, weights=weights)
    weights.save()
    for label, text in texts.items():
        path = folder / f"{step.index:03d}-{label}-{step.spec.split('{')[0]}.graph"
        write_text_atomic(path, text)
        paths.append(path)
    page = diff_page(step, texts["before"], texts["after"], [p.name for p in paths])
    write_text_atomic(folder / "diff.html", page)
    paths.append(folder / "diff.html")
    return paths


def diff_page(step: Step, before: str, after: str, files: Sequence[str] = ()) -> str:
    """The bad step as one self-contained HTML page."""
    title = f"tessel bisect: pass #{step.index} '{step.spec}' changes the outputs"
    rtol, atol = step.tolerance
    rows = "".join(_difference_row(d) for d in step.differences)
    links = " · ".join(f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in files)
    added, removed = diff_stats(before, after)
    body = [
        f"<header><h1>{html.escape(title)}</h1>",
        f'<p class="overview">{html.escape(step.mismatch or "")}</p>',
        f'<p class="overview">tolerance: rtol={rtol:g}, atol={atol:g}</p></header>',
        '<section id="outputs"><h2>Outputs that differ</h2>',
        '<div class="wide"><table class="summary"><thead><tr><th>output</th><th>type</th>'
        "<th>elements differing</th><th>largest difference</th><th>largest relative</th>"
        "<th>first at</th><th>expected</th><th>got</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div></section>",
        f'<section id="files"><h2>Files</h2><p>{links}</p>' if files else "",
        '<p class="note">Each graph runs on its own: tessel run FILE --input ...</p></section>'
        if files
        else "",
        f'<section id="diff"><h2>The IR before and after #{step.index} '
        f'<span class="add-n">+{added}</span> <span class="del-n">−{removed}</span></h2>',
        diff_html(before, after),
        "</section>",
    ]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{CSS}{_PAGE_CSS}</style>",
            "</head><body>",
            *(part for part in body if part),
            "</body></html>",
        ]
    )


# Long IR lines wrap at the window's edge instead of running off it.
_PAGE_CSS = """
.diff .ln { white-space: pre-wrap; overflow-wrap: anywhere; min-width: 0; padding-left: 9em;
  text-indent: -9em; }
.wide { overflow-x: auto; max-width: 100%; }
table.summary { min-width: 0; }
"""


def _difference_row(d: Difference) -> str:
    cells = [d.label, d.type]
    if d.note:
        cells += [d.note, "", "", "", "", ""]
    else:
        cells += [
            f"{d.count} of {d.size} ({100 * d.count / max(d.size, 1):.3g}%)",
            f"{d.max_abs:.6g}" + (f" ({d.nans} NaN on one side only)" if d.nans else ""),
            f"{d.max_rel:.6g}" if d.count > d.nans else "",
            str(list(d.first)),
            repr(d.expected),
            repr(d.got),
        ]
    return "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
