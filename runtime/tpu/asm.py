"""Text assembly for the TPU: one instruction per line, `mnemonic field=value ... flags`.

    ; load 5 vectors of 8 elements, 16 bytes apart, then tell compute
    rhm host_addr=0 ub_addr=0 elems=8 x_size=5 x_stride=16 push_next
    mmc ub_addr=0 acc_addr=0 rows=5 switch=1 pop_prev

Fields left out take their defaults; `;` or `#` starts a comment; numbers may be decimal,
hex (0x) or negative for signed fields; `func=` takes a name (identity, relu, sigmoid, tanh).
`disassemble(assemble(text))` is the canonical listing, and assembling it again gives the same
instructions: the printer and the parser are each other's inverse.
"""

from __future__ import annotations

import dataclasses

from runtime.tpu.isa import (
    BY_MNEMONIC,
    FLAG_NAMES,
    EncodingError,
    Func,
    Instruction,
    decode_program,
    encode_program,
)


class AsmError(ValueError):
    """An assembly error located at file:line:col, with the line and a caret."""

    def __init__(self, message: str, source: str, line: str, lineno: int, col: int) -> None:
        self.message, self.lineno, self.col = message, lineno, col
        caret = " " * (col - 1) + "^"
        super().__init__(f"{source}:{lineno}:{col}: error: {message}\n  {line}\n  {caret}")


def assemble(text: str, source: str = "<asm>") -> list[Instruction]:
    program = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        code = raw.split(";")[0].split("#")[0]
        if code.strip():
            program.append(_instruction(code, raw, source, lineno))
    return program


def _instruction(code: str, raw: str, source: str, lineno: int) -> Instruction:
    tokens = _tokens(code)

    def fail(message: str, col: int) -> AsmError:
        return AsmError(message, source, raw, lineno, col)

    (col, mnemonic), rest = tokens[0], tokens[1:]
    cls = BY_MNEMONIC.get(mnemonic.lower())
    if cls is None:
        raise fail(f"unknown instruction '{mnemonic}'; known: {', '.join(BY_MNEMONIC)}", col)
    names = {f.name: f for f in cls.FIELDS}
    values: dict[str, int | bool] = {}
    for col, token in rest:
        key, eq, text = token.partition("=")
        if key in values:
            raise fail(f"'{key}' given twice", col)
        if not eq:
            if key not in FLAG_NAMES:
                raise fail(f"'{key}' is not a flag; flags: {', '.join(FLAG_NAMES)}", col)
            values[key] = True
            continue
        if key not in names:
            known = ", ".join(names) or "none"
            raise fail(f"{mnemonic} has no field '{key}' (fields: {known})", col)
        try:
            value = _number(key, text)
            names[key].check(value, mnemonic)
        except (ValueError, EncodingError) as e:
            raise fail(str(e), col + len(key) + 1) from None
        values[key] = bool(value) if names[key].bits == 1 and key != "func" else value
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.name not in values
    ]
    if required:
        raise fail(f"{mnemonic} needs {', '.join(required)}", len(raw) + 1)
    instruction = cls(**values)  # type: ignore[arg-type]
    if instruction.queue is not None:
        for flag in _impossible_flags(instruction):
            raise fail(
                f"{mnemonic} runs on the {instruction.queue.name.lower()} queue, which "
                f"has no {flag.split('_')[1]} queue ('{flag}')",
                col,
            )
    return instruction


def _impossible_flags(i: Instruction) -> list[str]:
    from runtime.tpu.isa import Queue

    bad = []
    if i.queue is Queue.LOAD:
        bad += [f for f in ("pop_prev", "push_prev") if getattr(i, f)]
    if i.queue is Queue.STORE:
        bad += [f for f in ("pop_next", "push_next") if getattr(i, f)]
    return bad


def _number(key: str, text: str) -> int:
    if key == "func" and text.upper() in Func.__members__:
        return int(Func[text.upper()])
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f"'{text}' is not a number") from None


def _tokens(code: str) -> list[tuple[int, str]]:
    """(1-based column, token) for each whitespace-separated token."""
    out, col = [], 0
    for part in code.split():
        col = code.index(part, col)
        out.append((col + 1, part))
        col += len(part)
    return out


def disassemble(program: list[Instruction]) -> str:
    return "".join(f"{i.asm()}\n" for i in program)


def listing(program: list[Instruction]) -> str:
    """The assembly with each instruction's index and encoding (as one 256-bit hex number),
    for `--emit tpu-asm`; it assembles back to the same program."""
    width = max((len(i.asm()) for i in program), default=0)
    lines = [
        f"{i.asm():<{width}}  ; {n:5d}  {i.encode()[::-1].hex()}" for n, i in enumerate(program)
    ]
    return "\n".join(lines) + "\n"


def round_trip(program: list[Instruction]) -> list[Instruction]:
    """Through the binary encoding and back (what tests compare)."""
    return decode_program(encode_program(program))
