"""`tessel bisect`: find the first pass whose output differs from the unoptimized graph.

Runs the pipeline one pass at a time, interprets the module after each pass on the same inputs,
and compares with the interpreter's result on the input module. The first pass that moves any
output beyond tolerance is reported with the IR before and after it, side by side.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ir.files import write_text_atomic
from ir.graph import Module
from ir.printer import print_module
from ir.verify import verify_module
from passes.base import Pass, PassContext
from runtime.interp import run_module


@dataclass(frozen=True)
class Step:
    index: int
    spec: str
    mismatch: str | None  # None: outputs agree within tolerance
    before: Module
    after: Module


def compare(
    expected: Sequence[np.ndarray], got: Sequence[np.ndarray], rtol: float, atol: float
) -> str | None:
    """A description of the first output that differs beyond tolerance, or None."""
    for i, (e, g) in enumerate(zip(expected, got, strict=True)):
        if e.shape != g.shape or e.dtype != g.dtype:
            return f"output {i}: {g.dtype}{list(g.shape)} instead of {e.dtype}{list(e.shape)}"
        if e.dtype.kind in "biu":
            bad = e != g
        else:
            e64, g64 = e.astype(np.float64), g.astype(np.float64)
            same_nan = np.isnan(e64) & np.isnan(g64)
            with np.errstate(invalid="ignore"):
                close = np.abs(e64 - g64) <= atol + rtol * np.abs(e64)
            bad = ~(close | same_nan | (e64 == g64))
        if bad.any():
            where = tuple(int(k) for k in np.argwhere(bad)[0])
            return (
                f"output {i}: {int(bad.sum())} of {e.size} elements differ; "
                f"first at {list(where)}: "
                f"expected {e[where].item()!r}, got {g[where].item()!r}"
            )
    return None


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
    ctx = PassContext()
    steps: list[Step] = []
    current = module
    for index, p in enumerate(passes, start=1):
        after = p.run(current, ctx)
        verify_module(after)
        mismatch = compare(expected, run_module(after, inputs, entry=entry), rtol, atol)
        step = Step(index, p.spec(), mismatch, current, after)
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
    """The IR before and after the bad pass as re-runnable graph files, plus an HTML diff."""
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
    diff = difflib.HtmlDiff(wrapcolumn=90).make_file(
        texts["before"].splitlines(), texts["after"].splitlines(),
        f"before {step.spec}", f"after {step.spec}",
    )  # fmt: skip
    write_text_atomic(folder / "diff.html", diff)
    paths.append(folder / "diff.html")
    return paths
