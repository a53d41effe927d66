"""The pass-by-pass HTML report: structure, escaping, diffs, and that it needs no network."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from compiler.irhtml import diff_html, diff_stats, highlight_line
from compiler.report import render_html_report, write_html_report
from ir.graph import Module
from ir.parser import parse_file, parse_module
from ir.printer import print_module
from passes.manager import PassRecord, op_count

BEFORE = """
func @main(%x: f32[4,8], %w: f32[8,3]) -> f32[4,3] {
  %y = matmul(%x, %w) : f32[4,3]
  %r = relu(%y) : f32[4,3]
  %n = neg(%r) : f32[4,3]
  %m = neg(%n) : f32[4,3]
  return %m
}
"""
AFTER = """
func @main(%x: f32[4,8], %w: f32[8,3]) -> f32[4,3] {
  %y = matmul(%x, %w) : f32[4,3]
  %r = relu(%y) : f32[4,3]
  return %r
}
"""
VOID = {"meta", "br", "hr", "img", "input", "link", "wbr"}


class TagChecker(HTMLParser):
    """Fails on a closing tag that does not match the innermost open element."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else ''}>")
            return
        self.stack.pop()


def check_html(text: str) -> None:
    checker = TagChecker()
    checker.feed(text)
    checker.close()
    assert checker.problems == []
    assert checker.stack == []
    assert not re.search(r"https?://", text)  # nothing to fetch: the page works offline


def record(
    index: int, name: str, before: Module, after: Module, seconds: float = 0.001
) -> PassRecord:
    changed = print_module(before) != print_module(after)
    return PassRecord(index, name, name, seconds, op_count(before), op_count(after), changed, after)


def pipeline() -> tuple[Module, list[PassRecord]]:
    a, b = parse_module(BEFORE), parse_module(AFTER)
    return a, [
        record(1, "canonicalize", a, a),
        record(2, "cancel-negations", a, b),
        record(3, "dce", b, b),
    ]


def step(text: str, index: int) -> str:
    """The HTML of one step's section."""
    start = text.index(f'id="step-{index}"')
    end = text.find('<details class="step', start)
    return text[start : end if end != -1 else len(text)]


def test_report_lists_every_pass_and_diffs_changed_steps() -> None:
    initial, records = pipeline()
    text = render_html_report(records, title="demo", initial=initial)
    check_html(text)
    for r in records:
        assert r.name in text
        assert f'href="#step-{r.index}"' in text
    changed = step(text, 2)
    assert changed.count('class="ln del"') == 3  # %n, %m, and `return %m`
    assert changed.count('class="ln add"') == 1  # `return %r`
    assert "<svg" in changed
    assert "unchanged" in step(text, 1)
    assert 'class="ln' not in step(text, 3)  # no diff for a pass that changed nothing


def test_report_escapes_ir_title_and_remarks() -> None:
    initial, records = pipeline()
    text = render_html_report(
        records,
        title="a <b> & c",
        initial=initial,
        remarks={"fuse": ["not fused: %a -> %b <reason> & more"]},
        print_ir=lambda m: print_module(m) + "# if a < b && c > d\n",
    )
    check_html(text)
    assert "<b>" not in text
    assert "a &lt;b&gt; &amp; c" in text
    assert "&lt;reason&gt; &amp; more" in text
    assert "a &lt; b &amp;&amp; c &gt; d" in text
    assert "a < b &&" not in text


def test_report_input_as_record_zero_and_sections(tmp_path: Path) -> None:
    initial, records = pipeline()
    zero = PassRecord(0, "input", "input", 0.0, 0, op_count(initial), False, initial)
    memory = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>'
    out = write_html_report(
        tmp_path / "dump" / "index.html",
        [zero, *records],
        title="t",
        timings={"codegen": 0.25},
        remarks={"dce": ["removed %n"]},
        memory_svgs=[("buffers of @main <entry>", memory)],
    )
    assert out == tmp_path / "dump" / "index.html"
    assert [p.name for p in out.parent.iterdir()] == ["index.html"]  # no temporary left over
    text = out.read_text()
    check_html(text)
    assert 'id="step-0"' in text
    assert "Diff against #1" in step(text, 2)
    assert 'id="remarks-dce"' in text
    assert "buffers of @main &lt;entry&gt;" in text
    assert "codegen" in text


def test_report_on_a_sample() -> None:
    path = Path(__file__).parents[2] / "samples" / "attention.graph"
    module = parse_file(path)
    text = render_html_report([record(1, "nothing", module, module)], initial=module)
    check_html(text)
    assert text.count("<svg") == 1  # the unchanged step does not repeat the picture


def test_highlight_marks_tokens_and_escapes() -> None:
    out = highlight_line('  %y = dot_general(%x, %w) {lhs_contract = [1]} : f32[4,3]  # x<y & "s"')
    assert '<span class="t-val">%y</span>' in out
    assert '<span class="t-op">dot_general</span>' in out
    assert '<span class="t-ty">f32[4,3]</span>' in out
    assert '<span class="t-attr">lhs_contract</span>' in out
    assert '<span class="t-cm"># x&lt;y &amp; &quot;s&quot;</span>' in out


def test_diff_folds_long_unchanged_runs() -> None:
    old = "\n".join(f"line {i}" for i in range(40))
    new = old.replace("line 20", "line twenty")
    out = diff_html(old, new)
    assert diff_stats(old, new) == (1, 1)
    assert out.count('class="ln del"') == 1
    assert out.count('class="ln add"') == 1
    # 3 lines of context either side stay visible; the rest fold into two runs
    assert re.findall(r"⋯ (\d+) unchanged lines", out) == ["17", "16"]
    check_html(out)
