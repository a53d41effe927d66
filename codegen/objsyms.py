"""Which outside symbols an object file calls, and from which of its functions.

Before generated code is linked into the process (JIT) or into a shared library (AOT), its
undefined symbols are compared with what tessel provides: a call LLVM introduced to a runtime
helper the loader cannot resolve would otherwise jump to address 0 when the kernel runs. The
check reads the ELF64 symbol and relocation tables directly (llvmlite exposes neither).
"""

from __future__ import annotations

import struct
from collections import defaultdict
from dataclasses import dataclass

from ir.diagnostics import TesselError

# What generated code may call besides its own symbols: the C library's memory routines (LLVM
# turns large copies and fills into them) and the C math library, which every process that
# runs Python has loaded and AOT libraries link (-lm).
C_LIBRARY = frozenset({"memset", "memcpy", "memmove"})
LINKER = frozenset({"_GLOBAL_OFFSET_TABLE_"})  # position-independent code refers to it
MATH_LIBRARY = frozenset(
    f"{name}{suffix}"
    for name in ("pow", "fmod", "exp", "exp2", "log", "log2", "log10", "sin", "cos", "tan",
                 "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "asinh", "acosh",
                 "atanh", "expm1", "log1p", "cbrt", "hypot", "erf", "erfc",
                 "sincos",  # LLVM's one call for a sin and a cos of the same value (GNU libm)
                 # rounding: instructions from SSE4.1 on, calls below it
                 "floor", "ceil", "trunc", "rint", "nearbyint", "round", "roundeven")
    for suffix in ("", "f")
)  # fmt: skip
PROVIDED = C_LIBRARY | MATH_LIBRARY | LINKER

SHT_SYMTAB, SHT_RELA = 2, 4
STT_FUNC = 2


class UnresolvedSymbolError(TesselError):
    """Generated code calls a symbol nothing provides; `calls` maps it to its callers."""

    def __init__(self, calls: dict[str, list[str]], describe: dict[str, str] | None = None):
        names = describe or {}
        lines = [
            f"  {symbol}, called from {', '.join(names.get(f, f) for f in callers) or '?'}"
            for symbol, callers in sorted(calls.items())
        ]
        super().__init__(
            "the generated code calls runtime helpers that nothing provides (a lowering emitted "
            "an operation the target CPU has no instruction for):\n" + "\n".join(lines)
        )
        self.calls = calls


@dataclass(frozen=True)
class _Section:
    type: int
    offset: int
    size: int
    link: int
    info: int


def _sections(data: bytes) -> list[_Section]:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a little-endian ELF64 object")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    entsize, count = struct.unpack_from("<HH", data, 0x3A)
    out = []
    for i in range(count):
        _, kind, _, _, offset, size, link, info, _, _ = struct.unpack_from(
            "<IIQQQQIIQQ", data, shoff + i * entsize
        )
        out.append(_Section(kind, offset, size, link, info))
    return out


def _name(data: bytes, strtab: _Section, offset: int) -> str:
    start = strtab.offset + offset
    return data[start : data.index(b"\0", start)].decode()


def undefined_calls(object_code: bytes) -> dict[str, list[str]]:
    """Each undefined symbol of an ELF64 object, with the functions that refer to it."""
    data = bytes(object_code)
    sections = _sections(data)
    symtab = next((s for s in sections if s.type == SHT_SYMTAB), None)
    if symtab is None:
        return {}
    strtab = sections[symtab.link]
    symbols = [struct.unpack_from("<IBBHQQ", data, symtab.offset + i) for i in
               range(0, symtab.size, 24)]  # fmt: skip
    undefined = {i for i, s in enumerate(symbols) if s[3] == 0 and s[0] != 0}
    calls: dict[str, list[str]] = {_name(data, strtab, symbols[i][0]): [] for i in undefined}
    functions = defaultdict(list)  # section index -> (start, end, name)
    for st_name, info, _, shndx, value, size in symbols:
        if info & 0xF == STT_FUNC and shndx != 0:
            functions[shndx].append((value, value + size, _name(data, strtab, st_name)))
    for rela in sections:
        if rela.type != SHT_RELA:
            continue
        for at in range(rela.offset, rela.offset + rela.size, 24):
            offset, info, _ = struct.unpack_from("<QQq", data, at)
            if info >> 32 not in undefined:
                continue
            symbol = _name(data, strtab, symbols[info >> 32][0])
            caller = next((n for lo, hi, n in functions[rela.info] if lo <= offset < hi), "?")
            if caller not in calls[symbol]:
                calls[symbol].append(caller)
    return calls


def check_symbols(object_code: bytes, own: frozenset[str] = frozenset(),
                  describe: dict[str, str] | None = None) -> None:  # fmt: skip
    """Raise UnresolvedSymbolError if the object calls anything but `own` and PROVIDED."""
    calls = {s: c for s, c in undefined_calls(object_code).items() if s not in own | PROVIDED}
    if calls:
        raise UnresolvedSymbolError(calls, describe)
