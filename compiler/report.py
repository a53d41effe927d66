"""A pass-by-pass HTML report: one self-contained `index.html` to open in any browser, offline.

For a pipeline run it shows a summary table (wall time, op counts, whether the IR changed),
then every step's IR with syntax highlighting, a diff against the step before, and a drawing
of the entry function's graph; then the passes' remarks (fusion decisions and the like) and
any buffer-lifetime pictures the caller made. Styles are inline and the only script is a
two-button expand/collapse, so the file works from a dump directory, an email, or a CI
artifact with no network.
"""

from __future__ import annotations

import html
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from compiler.graphview import to_svg
from compiler.irhtml import diff_html, diff_stats, highlight
from compiler.reportstyle import CSS, SCRIPT
from ir.files import write_text_atomic
from ir.graph import Module
from ir.printer import print_module
from passes.manager import PassRecord, op_count

MAX_GRAPH_NODES = 600  # larger graphs are listed as text only: the drawing would not help


@dataclass(frozen=True)
class _Step:
    index: int
    name: str
    spec: str
    module: Module
    ir: str
    record: PassRecord | None  # None for the pipeline's input
    previous: _Step | None


def write_html_report(
    path: str | os.PathLike[str],
    records: Sequence[PassRecord],
    *,
    title: str = "tessel pass report",
    initial: Module | None = None,
    timings: Mapping[str, float] | None = None,
    remarks: Mapping[str, Sequence[str]] | None = None,
    memory_svgs: Sequence[tuple[str, str]] = (),
    print_ir: Callable[[Module], str] = print_module,
) -> Path:
    """Write the report to `path` (a file name, usually `<dump dir>/index.html`) atomically.

    `records` are the pipeline's steps in order; a record with index 0 stands for the input
    (it wins over `initial`, the other way to pass the input module). `timings` adds other
    stages' wall time in seconds (codegen, LLVM -O, ...); `remarks` maps a pass name to its
    remarks (ctx.remarks): those a record carries are shown with its step, each run of a pass
    with its own, and the rest apart; `memory_svgs` is a list of (title, SVG markup) pictures,
    inserted as given, so they must come from trusted code. `print_ir` renders a module's text
    (pass one with a weights sink to keep large constants out of the page).
    """
    text = render_html_report(
        records,
        title=title,
        initial=initial,
        timings=timings,
        remarks=remarks,
        memory_svgs=memory_svgs,
        print_ir=print_ir,
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, text)
    return target


def render_html_report(
    records: Sequence[PassRecord],
    *,
    title: str = "tessel pass report",
    initial: Module | None = None,
    timings: Mapping[str, float] | None = None,
    remarks: Mapping[str, Sequence[str]] | None = None,
    memory_svgs: Sequence[tuple[str, str]] = (),
    print_ir: Callable[[Module], str] = print_module,
) -> str:
    """The report as one HTML string; see `write_html_report`."""
    steps = _steps(records, initial, print_ir)
    others = _unattributed(remarks or {}, records)
    body = [
        f"<header><h1>{html.escape(title)}</h1>{_overview(steps)}</header>",
        _summary(steps),
        _timings(timings) if timings else "",
        '<section id="steps"><h2>Steps <span class="tools">'
        '<button type="button" data-open="1">expand all</button>'
        '<button type="button" data-open="0">collapse all</button></span></h2>',
        *(_step(s) for s in steps),
        "</section>",
        _remarks(steps, others),
        _memory(memory_svgs) if memory_svgs else "",
    ]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{CSS}</style>",
            "</head><body>",
            *(part for part in body if part),
            f"<script>{SCRIPT}</script>",
            "</body></html>",
        ]
    )


def _steps(
    records: Sequence[PassRecord], initial: Module | None, print_ir: Callable[[Module], str]
) -> list[_Step]:
    steps: list[_Step] = []
    if initial is not None and not (records and records[0].index == 0):
        steps.append(_Step(0, "input", "input", initial, print_ir(initial), None, None))
    for r in records:
        previous = steps[-1] if steps else None
        if r.index == 0:  # the input, recorded as a pseudo-pass
            steps.append(_Step(0, "input", "input", r.module, print_ir(r.module), None, None))
            continue
        ir = previous.ir if previous is not None and not r.changed else print_ir(r.module)
        steps.append(_Step(r.index, r.name, r.spec, r.module, ir, r, previous))
    return steps


def _anchor(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _overview(steps: list[_Step]) -> str:
    passes = [s for s in steps if s.record is not None]
    total = sum(s.record.seconds for s in passes if s.record is not None)
    first, last = (op_count(steps[0].module), op_count(steps[-1].module)) if steps else (0, 0)
    return (
        f'<p class="overview">{len(passes)} passes · {_ms(total)} · '
        f"{first} → {last} ops · {sum(1 for s in passes if s.record and s.record.changed)} "
        "changed the IR</p>"
    )


def _unattributed(
    remarks: Mapping[str, Sequence[str]], records: Sequence[PassRecord]
) -> dict[str, list[str]]:
    """The remarks no step recorded as its own (made outside the pipeline, or by a caller
    that passes records without remarks), by key."""
    claimed = Counter(pair for record in records for pair in record.remarks)
    out: dict[str, list[str]] = {}
    for key, lines in remarks.items():
        for text in lines:
            if claimed[key, text] > 0:
                claimed[key, text] -= 1
            else:
                out.setdefault(key, []).append(text)
    return out


def _summary(steps: list[_Step]) -> str:
    passes = [s for s in steps if s.record is not None]
    slowest = max((s.record.seconds for s in passes if s.record is not None), default=0.0)
    rows = []
    for s in passes:
        r = s.record
        assert r is not None
        share = 100 * r.seconds / slowest if slowest > 0 else 0
        delta = r.ops_after - r.ops_before
        note = len(r.remarks)
        rows.append(
            f'<tr class="{"changed" if r.changed else "same"}">'
            f"<td>{r.index}</td>"
            f'<td><a href="#step-{r.index}">{html.escape(r.spec)}</a></td>'
            f'<td class="num">{_ms(r.seconds)}<div class="bar" style="width:{share:.0f}%">'
            "</div></td>"
            f'<td class="num">{r.ops_before}</td><td class="num">{r.ops_after}</td>'
            f'<td class="num">{delta:+d}</td>'
            f"<td>{'changed' if r.changed else '—'}</td>"
            + (f'<td><a href="#remarks-step-{r.index}">{note}</a></td>' if note else "<td></td>")
            + "</tr>"
        )
    return (
        '<section id="summary"><h2>Passes</h2><table class="summary"><thead><tr>'
        "<th>#</th><th>pass</th><th>wall time</th><th>ops before</th><th>ops after</th>"
        "<th>Δ</th><th>IR</th><th>remarks</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></section>"
    )


def _timings(timings: Mapping[str, float]) -> str:
    slowest = max(timings.values(), default=0.0)
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td class='num'>{_ms(sec)}"
        f'<div class="bar" style="width:{100 * sec / slowest if slowest else 0:.0f}%"></div>'
        "</td></tr>"
        for name, sec in timings.items()
    )
    return (
        '<section id="timings"><h2>Other stages</h2><table class="summary"><thead><tr>'
        f"<th>stage</th><th>wall time</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _step(s: _Step) -> str:
    r = s.record
    if r is None:
        head = f"#0 input · {op_count(s.module)} ops"
    else:
        head = (
            f"#{r.index} {html.escape(r.spec)} · {_ms(r.seconds)} · "
            f"{r.ops_before} → {r.ops_after} ops"
        )
    changed = r is None or r.changed
    parts = [
        f'<details class="step{"" if changed else " same"}" id="step-{s.index}"'
        f"{' open' if changed else ''}><summary>{head}"
        f"{'' if changed else ' · <em>unchanged</em>'}</summary>"
    ]
    if r is not None and r.remarks:
        parts.append(
            f'<details class="part" open><summary>Remarks of this step ({len(r.remarks)})'
            f"</summary>{_remark_list(r)}</details>"
        )
    if not changed:
        parts.append('<p class="note">The IR is identical to the previous step.</p></details>')
        return "".join(parts)
    if s.previous is not None:
        added, removed = diff_stats(s.previous.ir, s.ir)
        parts.append(
            f'<details class="part" open><summary>Diff against #{s.previous.index} '
            f'<span class="add-n">+{added}</span> <span class="del-n">−{removed}</span>'
            f"</summary>{diff_html(s.previous.ir, s.ir)}</details>"
        )
    parts.append(
        f'<details class="part" open><summary>Graph of @{html.escape(s.module.entry)}</summary>'
        f"{_graph(s)}</details>"
    )
    parts.append(
        f'<details class="part"><summary>IR ({len(s.ir.splitlines())} lines)</summary>'
        f'<pre class="ir">{highlight(s.ir)}</pre></details>'
    )
    parts.append("</details>")
    return "".join(parts)


def _graph(s: _Step) -> str:
    fn = s.module.entry_function
    count = len(fn.params) + len(fn.body)
    if count > MAX_GRAPH_NODES:
        return f'<p class="note">{count} values: too many to draw; see the IR.</p>'
    return f'<div class="graph">{to_svg(fn, id_prefix=f"step{s.index}", standalone=False)}</div>'


def _remark_list(r: PassRecord) -> str:
    """A step's remarks; those filed under another name than the pass's say which."""
    items = (text if key == r.name else f"{key}: {text}" for key, text in r.remarks)
    return '<ul class="remarks">' + "".join(f"<li>{html.escape(t)}</li>" for t in items) + "</ul>"


def _remarks(steps: Sequence[_Step], others: Mapping[str, Sequence[str]]) -> str:
    """Each step's remarks under that step (a pass run twice has two lists), then any others."""
    parts = []
    for s in steps:
        r = s.record
        if r is None or not r.remarks:
            continue
        parts.append(
            f'<details class="part" id="remarks-step-{r.index}" open><summary>'
            f'<a href="#step-{r.index}">#{r.index}</a> {html.escape(r.spec)} '
            f"({len(r.remarks)})</summary>{_remark_list(r)}</details>"
        )
    for name, lines in others.items():
        parts.append(
            f'<details class="part" id="remarks-{_anchor(name)}" open><summary>'
            f'{html.escape(name)} ({len(lines)})</summary><ul class="remarks">'
            + "".join(f"<li>{html.escape(line)}</li>" for line in lines)
            + "</ul></details>"
        )
    if not parts:
        return ""
    return '<section id="remarks"><h2>Remarks</h2>' + "".join(parts) + "</section>"


_XMLNS = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')


def _memory(pictures: Sequence[tuple[str, str]]) -> str:
    parts = ['<section id="memory"><h2>Buffer lifetimes</h2>']
    for title, svg in pictures:
        # Inline SVG in HTML needs no namespace declaration; dropping it keeps the page free
        # of URLs, which is how the tests check that nothing is fetched.
        parts.append(
            f"<figure><figcaption>{html.escape(title)}</figcaption>"
            f'<div class="graph">{_XMLNS.sub("", svg)}</div></figure>'
        )
    parts.append("</section>")
    return "".join(parts)
