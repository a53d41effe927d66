"""The source line under an error message is the whole line, and the caret sits under the column.

Lines are counted as the lexer counts them (at "\\n" only); characters a terminal does not show
as one column (form feed, vertical tab, the separators, NEL, U+2028, carriage return) are shown
as U+FFFD, so the text is never cut and the caret never points past it.
"""

from __future__ import annotations

import pytest

from ir.diagnostics import Loc, TesselError
from ir.parser import parse_module

ODD = ["\f", "\v", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r", "\x00", "\x7f"]


@pytest.mark.parametrize("odd", ODD, ids=[f"U+{ord(c):04X}" for c in ODD])
def test_the_caret_points_into_the_whole_line(odd: str) -> None:
    line = f"  %y = add(%x,{odd} %x) bogus"
    source = f"func @main(%x: f32[2]) -> f32[2] {{\n{line}\n  return %y\n}}\n"
    with pytest.raises(TesselError) as caught:
        parse_module(source)
    error = caught.value
    assert error.loc is not None
    assert error.loc.line == 2
    _, shown, caret = error.format().splitlines()[:3]
    assert shown == "  " + line.replace(odd, "\N{REPLACEMENT CHARACTER}")
    column = caret.index("^")
    assert caret.strip() == "^"
    assert column == 2 + error.loc.col - 1
    assert shown[column] == line[error.loc.col - 1].replace(odd, "\N{REPLACEMENT CHARACTER}")
    assert shown[column] != " "


def test_a_crlf_line_ends_before_its_carriage_return() -> None:
    error = TesselError("bad", Loc("f.graph", 1, 3, "ab cd\r\n"))
    assert error.format().splitlines() == ["f.graph:1:3: error: bad", "  ab cd", "    ^"]
