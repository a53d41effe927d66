"""IR text as HTML: syntax highlighting with spans, and line diffs between two printed modules.

Everything that came from the IR goes through `html.escape`, so a `<` or `&` in a comment or
string can never turn into markup. The markup is plain `<span class=...>` and `<div>`, styled
by the report's stylesheet.
"""

from __future__ import annotations

import difflib
import html
import re

from ir.dtypes import DType

CONTEXT = 3  # unchanged lines shown around each change; longer unchanged runs fold away

_DTYPES = "|".join(sorted((d.value for d in DType), key=len, reverse=True))
_TOKEN = re.compile(
    r"(?P<cm>#[^\n]*)"
    r'|(?P<str>"[^"\n]*")'
    r"|(?P<val>%[A-Za-z0-9_.]+)"
    r"|(?P<fn>@[A-Za-z_][A-Za-z0-9_.]*)"
    rf"|(?P<ty>\b(?:{_DTYPES})\[[0-9, ]*\])"
    r"|(?P<kw>\b(?:func|entry|return|constant)\b)"
    r"|(?P<op>\b[A-Za-z_][A-Za-z0-9_]*(?=\())"
    r"|(?P<attr>\b[A-Za-z_][A-Za-z0-9_]*(?=\s*=[^=]))"
    r"|(?P<num>-?\b[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?\b)"
)


def highlight_line(line: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(line):
        out.append(html.escape(line[pos : m.start()]))
        out.append(f'<span class="t-{m.lastgroup}">{html.escape(m.group())}</span>')
        pos = m.end()
    out.append(html.escape(line[pos:]))
    return "".join(out)


def highlight(text: str) -> str:
    """IR text as HTML lines for a `white-space: pre` block."""
    return "\n".join(highlight_line(line) for line in text.splitlines())


def _line(kind: str, old: int | None, new: int | None, text: str) -> str:
    mark = {"add": "+", "del": "-", "ctx": " "}[kind]
    nums = "".join(f'<span class="no">{n if n is not None else ""}</span>' for n in (old, new))
    return (
        f'<div class="ln {kind}">{nums}<span class="mk">{mark}</span>{highlight_line(text)}</div>'
    )


def diff_stats(old: str, new: str) -> tuple[int, int]:
    """(added, removed) line counts."""
    added = removed = 0
    matcher = difflib.SequenceMatcher(None, old.splitlines(), new.splitlines(), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            removed += i2 - i1
            added += j2 - j1
    return added, removed


def diff_html(old: str, new: str) -> str:
    """A line diff of two IR texts: removed and added lines marked, long unchanged runs folded."""
    a, b = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    codes = matcher.get_opcodes()
    out = ['<div class="diff">']
    for k, (tag, i1, i2, j1, j2) in enumerate(codes):
        if tag != "equal":
            out += [_line("del", i + 1, None, a[i]) for i in range(i1, i2)]
            out += [_line("add", None, j + 1, b[j]) for j in range(j1, j2)]
            continue
        # Keep CONTEXT lines next to each neighbouring change; fold what lies between.
        head = CONTEXT if k > 0 else 0
        tail = CONTEXT if k < len(codes) - 1 else 0
        same = [(i + 1, j + 1, a[i]) for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
        if len(same) <= head + tail + 1:
            out += [_line("ctx", i, j, t) for i, j, t in same]
            continue
        out += [_line("ctx", i, j, t) for i, j, t in same[:head]]
        hidden = same[head : len(same) - tail]
        out.append(
            f'<details class="fold"><summary>⋯ {len(hidden)} unchanged lines</summary>'
            + "".join(_line("ctx", i, j, t) for i, j, t in hidden)
            + "</details>"
        )
        out += [_line("ctx", i, j, t) for i, j, t in same[len(same) - tail :]]
    out.append("</div>")
    return "".join(out)
