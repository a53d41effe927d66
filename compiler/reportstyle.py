"""The report's stylesheet and its one small script, kept apart from the page structure.

Colors for graph categories live in `compiler/graphstyle.py`; these are the page's own.
"""

CSS = """
:root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --soft: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 64px; color: var(--fg); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); display: flex; align-items: center; gap: 12px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.overview, .note { color: var(--muted); margin: 4px 0 0; }
.tools { margin-left: auto; display: flex; gap: 6px; }
button { font: inherit; font-size: 12px; padding: 2px 10px; border: 1px solid var(--line);
  border-radius: 6px; background: var(--soft); color: var(--fg); cursor: pointer; }
table.summary { border-collapse: collapse; min-width: 640px; }
.summary th, .summary td { padding: 5px 12px; border-bottom: 1px solid var(--line);
  text-align: left; white-space: nowrap; }
.summary th { font-size: 12px; color: var(--muted); font-weight: 600; background: var(--soft); }
.summary td.num { text-align: right; font-variant-numeric: tabular-nums; }
.summary tr.same td { color: var(--muted); }
.bar { height: 3px; background: #54aeff; border-radius: 2px; margin-top: 2px; margin-left: auto; }
details.step { border: 1px solid var(--line); border-radius: 8px; margin: 10px 0; }
details.step > summary { padding: 8px 12px; font-weight: 600; cursor: pointer;
  background: var(--soft); border-radius: 8px; }
details.step[open] > summary { border-bottom: 1px solid var(--line); border-radius: 8px 8px 0 0; }
details.step.same > summary { font-weight: 400; color: var(--muted); }
details.step > .note { padding: 8px 12px 12px; margin: 0; }
details.part { margin: 10px 12px; }
details.part > summary { cursor: pointer; font-weight: 600; font-size: 13px; margin-bottom: 6px; }
.add-n { color: #1a7f37; } .del-n { color: #cf222e; }
pre.ir, .diff { font: 12px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono",
  monospace; background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
  padding: 8px 0; margin: 0; overflow-x: auto; }
pre.ir { padding: 8px 12px; }
.diff .ln { white-space: pre; padding-right: 12px; min-width: max-content; }
.diff .no { display: inline-block; width: 3.5em; padding-right: 8px; text-align: right;
  color: #8c959f; user-select: none; }
.diff .mk { display: inline-block; width: 1.5em; text-align: center; user-select: none; }
.diff .add { background: #dafbe1; } .diff .add .mk { color: #1a7f37; }
.diff .del { background: #ffebe9; } .diff .del .mk { color: #cf222e; }
.diff details.fold > summary { list-style: none; cursor: pointer; color: var(--muted);
  background: #ddf4ff; padding: 1px 0 1px 9em; font-size: 11px; }
.diff details.fold > summary::-webkit-details-marker { display: none; }
/* IR tokens, from compiler/irhtml.py */
.t-cm { color: #6e7781; font-style: italic; } .t-val { color: #953800; }
.t-ty { color: #116329; } .t-op { color: #0550ae; font-weight: 600; } .t-kw { color: #8250df; }
.t-fn { color: #8250df; } .t-str { color: #0a3069; } .t-num { color: #0550ae; }
.t-attr { color: #6e7781; }
.graph { overflow: auto; max-height: 85vh; width: fit-content; max-width: 100%;
  border: 1px solid var(--line); border-radius: 6px; background: #fff; }
.graph svg { display: block; }
ul.remarks { margin: 0; padding-left: 20px; font: 12px/1.6 ui-monospace, SFMono-Regular, Menlo,
  Consolas, "DejaVu Sans Mono", monospace; }
figure { margin: 12px 0; } figcaption { font-weight: 600; margin-bottom: 6px; }
"""

# Expand or collapse every step at once; the page works the same without it.
SCRIPT = """
document.querySelectorAll("button[data-open]").forEach(function (b) {
  b.addEventListener("click", function () {
    var open = b.dataset.open === "1";
    document.querySelectorAll("details.step, details.step details.part").forEach(function (d) {
      d.open = open;
    });
  });
});
"""
