"""Source locations and the user-facing error type, formatted as `file:line:col: message`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Loc:
    """A place in a source: a graph file, or a user's Python file under @jit (1-based)."""

    file: str
    line: int
    col: int = 1
    source_line: str | None = None  # the text of that line, for the caret display

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class TesselError(Exception):
    """An error caused by the user's input. The CLI prints it and exits 1, with no traceback."""

    def __init__(self, message: str, loc: Loc | None = None, notes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.notes = notes

    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        head = f"{self.loc}: error: {self.message}" if self.loc else f"error: {self.message}"
        lines = [head]
        if self.loc and self.loc.source_line is not None:
            text = _displayable(self.loc.source_line.rstrip("\r\n").expandtabs(1))
            lines.append(f"  {text}")
            lines.append("  " + " " * max(self.loc.col - 1, 0) + "^")
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _displayable(line: str) -> str:
    """`line` with each character a terminal would not show as one column (form feed, vertical
    tab, separators, carriage return, ...) replaced by one that it does, so the caret lines up."""
    return "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in line)


class GraphSyntaxError(TesselError):
    """The graph file does not follow the grammar."""


class GraphTypeError(TesselError):
    """An op's operands, attributes or declared type are inconsistent."""


class VerifyError(TesselError):
    """The IR breaks an invariant (raised by ir.verify, usually after a buggy pass)."""


class InputError(TesselError):
    """Arguments given to a compiled or interpreted function do not match its signature."""


class IndexOutOfRange(TesselError, IndexError):
    """A gather or scatter index outside its axis, found when the program runs (an IndexError,
    as NumPy raises for the same index)."""


class ShapeError(ValueError):
    """A type rule failed. The message is about the op's operands and attributes.

    `attr` (an attribute name) or `operand` (an operand index) says what is at fault, so a
    front end can point its caret at that token rather than at the op.
    """

    def __init__(self, msg: str, *, attr: str | None = None, operand: int | None = None) -> None:
        super().__init__(msg)
        self.attr = attr
        self.operand = operand
