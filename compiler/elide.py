"""Generated code for people to read: long constant data (the weights, as LLVM `c"..."` strings
or assembler `.ascii` lines, megabytes of them) cut down to a marker saying how much was left
out. Only for code that is printed; files written with `-o` or `--dump-dir` keep every byte.

    @"main_c0" = private constant [1605632 x i8] c"\\9A\\85\\20\\3D..." ; ... 1605632 bytes elided
    .ascii  "\\232\\205 =\\004k..."  # ... 1605632 bytes elided
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEEP_BYTES = 16  # of each elided constant, shown before the marker
ELIDE_BYTES = 128  # constants up to this size are printed whole
_RUN_LINES = 8  # numeric data directives shown of a long run

_LLVM_UNIT = re.compile(r"\\[0-9A-Fa-f]{2}|\\\\|[^\\]")  # one byte of an LLVM string
_LLVM_STRING = re.compile(r'(c")((?:[^"\\]|\\[0-9A-Fa-f]{2}|\\\\)*)(")')
_ASM_STRING = re.compile(r'^(\s*\.(?:ascii|asciz|string)\s+")((?:[^"\\]|\\.)*)(".*)$')
_ASM_DATA = re.compile(
    r"^\s*\.(byte|short|value|2byte|hword|long|int|4byte|word|quad|8byte|xword)\s+\S"
)
_DATA_SIZE = {
    "byte": 1, "short": 2, "value": 2, "2byte": 2, "hword": 2, "long": 4, "int": 4, "4byte": 4,
    "word": 2, "quad": 8, "8byte": 8, "xword": 8,
}  # fmt: skip


@dataclass
class Elided:
    text: str
    bytes: int  # constant data left out
    constants: int  # how many constants were cut


def elide_constants(text: str, kind: str) -> Elided:
    """`text` (kind "ll": LLVM IR, "s": assembly) with long constant data elided."""
    if kind.endswith("ll"):
        return _elide_llvm(text)
    return _elide_asm(text)


def _elide_llvm(text: str) -> Elided:
    out = Elided("", 0, 0)
    lines = []
    for line in text.splitlines(keepends=True):
        if 'c"' in line and len(line) > ELIDE_BYTES:
            line = _elide_llvm_line(line, out)
        lines.append(line)
    out.text = "".join(lines)
    return out


def _elide_llvm_line(line: str, out: Elided) -> str:
    """One line's long strings cut short, and a comment at its end saying by how much."""
    cut: list[int] = []

    def shorten(m: re.Match[str]) -> str:
        units = _LLVM_UNIT.findall(m.group(2))
        if len(units) <= ELIDE_BYTES:
            return m.group(0)
        cut.append(len(units))
        return f'c"{"".join(units[:KEEP_BYTES])}..."'

    body, newline = (line[:-1], "\n") if line.endswith("\n") else (line, "")
    body = _LLVM_STRING.sub(shorten, body)
    if not cut:
        return line
    out.bytes += sum(cut)
    out.constants += len(cut)
    return f"{body} ; ... {' + '.join(map(str, cut))} bytes elided{newline}"


def _elide_asm(text: str) -> Elided:
    out = Elided("", 0, 0)
    lines = text.splitlines(keepends=True)
    result: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _ASM_STRING.match(line) if len(line) > ELIDE_BYTES else None
        if m is not None:
            size, prefix = _asm_string(m.group(2))
            if size > ELIDE_BYTES:
                out.bytes += size
                out.constants += 1
                newline = "\n" if line.endswith("\n") else ""
                result.append(f'{m.group(1)}{prefix}..."  # ... {size} bytes elided{newline}')
                i += 1
                continue
        run = _data_run(lines, i)
        if run:
            size = sum(_DATA_SIZE[kind] for kind in run)
            if size > ELIDE_BYTES and len(run) > 2 * _RUN_LINES:
                result.extend(lines[i : i + _RUN_LINES])
                left = size - sum(_DATA_SIZE[k] for k in run[:_RUN_LINES])
                indent = line[: len(line) - len(line.lstrip())]
                result.append(f"{indent}# ... {len(run) - _RUN_LINES} lines, {left} bytes elided\n")
                out.bytes += left
                out.constants += 1
                i += len(run)
                continue
            result.extend(lines[i : i + len(run)])
            i += len(run)
            continue
        result.append(line)
        i += 1
    out.text = "".join(result)
    return out


def _asm_string(body: str) -> tuple[int, str]:
    """The byte count of an assembler string's escaped text, and its first KEEP_BYTES bytes."""
    i = n = 0
    prefix_end = 0
    while i < len(body):
        if body[i] == "\\":
            j = i + 1
            while j < len(body) and j < i + 4 and body[j] in "01234567":
                j += 1
            i = j if j > i + 1 else i + 2
        else:
            i += 1
        n += 1
        if n == KEEP_BYTES:
            prefix_end = i
    return n, body[: prefix_end or i]


def _data_run(lines: list[str], start: int) -> list[str]:
    """The directives of the numeric data lines from `start` on (empty if it is not one)."""
    kinds = []
    for line in lines[start:]:
        m = _ASM_DATA.match(line)
        if m is None:
            break
        kinds.append(m.group(1))
    return kinds
