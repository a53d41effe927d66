"""index.html of a TPU report folder (`--tpu-report DIR`): the page that ties its files together.

    DIR/index.html         this page: the run's summary, its stages, links to every file
    DIR/report.txt         the summary as text (what `tessel run --target tpu` prints)
    DIR/stats.json         the numbers, whole run and per TPU stage
    DIR/roofline.svg       every TPU stage and the whole run against the chip's roofline
    DIR/stage<k>/          per TPU stage: report.txt, stats.json, trace.json, roofline.svg,
                           utilization.svg

Stages are numbered as `tessel compile --target tpu` numbers its files (NAME.stage<k>.tbin):
host and TPU stages alike, in the order they run. The page links files by relative paths and
loads nothing from the network, so the folder can be zipped, mailed or opened offline.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from runtime.tpu.stats import RunStats

_CSS = """
body { margin: 0; padding: 24px 32px 64px; color: #1f2328;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 10px;
  padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
a { color: #0969da; text-decoration: none; } a:hover { text-decoration: underline; }
.note { color: #656d76; }
pre { font: 12px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono",
  monospace; background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px;
  padding: 8px 12px; overflow-x: auto; }
table { border-collapse: collapse; } th, td { padding: 5px 12px; text-align: left;
  border-bottom: 1px solid #d0d7de; white-space: nowrap; }
th { font-size: 12px; color: #656d76; background: #f6f8fa; } td.num { text-align: right; }
img { max-width: 100%; height: auto; border: 1px solid #d0d7de; border-radius: 6px; }
"""

# file name -> what it is, for the links of a TPU stage's folder
STAGE_FILES = {
    "report.txt": "report",
    "stats.json": "stats",
    "trace.json": "timeline (chrome://tracing or ui.perfetto.dev)",
    "roofline.svg": "roofline",
    "utilization.svg": "utilization over time",
}


@dataclass(frozen=True)
class StagePage:
    """One stage of the run, as the index lists it."""

    number: int  # k of NAME.stage<k>
    device: str  # "tpu" or "host"
    stats: RunStats | None = None  # a TPU stage's
    folder: str | None = None  # its files' folder, relative to the index (TPU stages)
    files: Sequence[str] = ()  # the files in that folder


def index_html(title: str, summary: str, stages: Sequence[StagePage], files: Sequence[str]) -> str:
    """The index page. `summary` is the run's text report; `files` the top-level files."""
    rows = "".join(_row(s) for s in stages)
    pictures = "".join(_stage_pictures(s) for s in stages if s.folder is not None)
    top = " · ".join(f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in files)
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">Files in this folder: {top}</p>',
        f"<h2>Summary</h2><pre>{html.escape(summary)}</pre>",
        "<h2>Stages</h2>",
        '<p class="note">Numbered as <code>tessel compile --target tpu</code> names its files '
        "(NAME.stage&lt;k&gt;.tbin, NAME.stage&lt;k&gt;.graph), in the order they run.</p>",
        "<table><thead><tr><th>stage</th><th>device</th><th>cycles</th><th>utilization</th>"
        f"<th>files</th></tr></thead><tbody>{rows}</tbody></table>",
    ]
    if "roofline.svg" in files:
        body.append('<h2>Roofline</h2><img src="roofline.svg" alt="roofline of the run">')
    body.append(pictures)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_CSS}</style>",
            "</head><body>",
            *body,
            "</body></html>",
        ]
    )


def _row(s: StagePage) -> str:
    if s.stats is None:
        numbers = '<td class="num">—</td><td class="num">—</td>'
    else:
        numbers = (
            f'<td class="num">{s.stats.cycles:,d}</td>'
            f'<td class="num">{s.stats.utilization:.1%}</td>'
        )
    links = (
        " · ".join(
            f'<a href="{html.escape(f"{s.folder}/{f}")}">{html.escape(STAGE_FILES.get(f, f))}</a>'
            for f in s.files
        )
        if s.folder is not None
        else "runs on the host"
    )
    return (
        f'<tr id="stage{s.number}"><td>stage {s.number}</td><td>{s.device}</td>{numbers}'
        f"<td>{links}</td></tr>"
    )


def _stage_pictures(s: StagePage) -> str:
    if "utilization.svg" not in s.files:
        return ""
    return (
        f"<h2>Stage {s.number}: utilization over time</h2>"
        f'<img src="{html.escape(f"{s.folder}/utilization.svg")}" '
        f'alt="stage {s.number} utilization">'
    )
