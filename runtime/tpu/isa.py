"""The TPU's instruction set: small self-describing dataclasses and their 256-bit encoding.

Each instruction is a frozen dataclass whose docstring's first line is its semantics. Every
instruction is 256 bits (32 bytes, little-endian): the opcode in bits 0-4, four dependency
flags in bits 5-8, then the instruction's fields in declaration order, each `Field.bits` wide,
from bit 9 upward. Signed fields are two's complement. docs/tpu.md prints the bit positions
from the same tables (`layout`), so the document cannot drift from the encoder.

Instructions go to one of three queues that run concurrently (decoupled access/execute, as in
VTA): load (RHM, RW), compute (MMC, ACT) and store (WHM). The queues synchronize only through
dependency tokens: `push_next` posts a token to the next queue in load -> compute -> store,
`push_prev` to the previous one, and `pop_prev`/`pop_next` wait for one from that neighbour.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self

WORD_BITS = 256
WORD_BYTES = WORD_BITS // 8
OPCODE_BITS = 5
FLAG_NAMES = ("pop_prev", "pop_next", "push_prev", "push_next")


class Queue(IntEnum):
    LOAD = 0
    COMPUTE = 1
    STORE = 2


class Opcode(IntEnum):
    NOP = 0
    RHM = 1
    RW = 2
    MMC = 3
    ACT = 4
    WHM = 5
    SYNC = 6
    HALT = 7


class Func(IntEnum):
    IDENTITY = 0
    RELU = 1
    SIGMOID = 2
    TANH = 3


class EncodingError(ValueError):
    """A field value that does not fit its bits, or bytes that are not an instruction."""


@dataclass(frozen=True)
class Field:
    name: str
    bits: int
    signed: bool = False

    def check(self, value: int, mnemonic: str) -> None:
        lo, hi = (
            (-(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1)
            if self.signed
            else (0, (1 << self.bits) - 1)
        )
        if not isinstance(value, int) or not lo <= value <= hi:
            raise EncodingError(
                f"{mnemonic}: field '{self.name}' = {value!r} does not fit in {self.bits} "
                f"{'signed ' if self.signed else ''}bits ({lo}..{hi})"
            )


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Base: the dependency flags every instruction carries."""

    pop_prev: bool = False
    pop_next: bool = False
    push_prev: bool = False
    push_next: bool = False

    OPCODE: ClassVar[Opcode]
    FIELDS: ClassVar[tuple[Field, ...]] = ()

    @property
    def mnemonic(self) -> str:
        return self.OPCODE.name.lower()

    @property
    def queue(self) -> Queue | None:
        """The queue that runs this instruction; None for SYNC and HALT (all queues)."""
        return QUEUE_OF.get(self.OPCODE)

    @property
    def semantics(self) -> str:
        return semantics(type(self))

    def fields(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in self.FIELDS}

    def flags(self) -> tuple[str, ...]:
        return tuple(name for name in FLAG_NAMES if getattr(self, name))

    def replace(self, **changes: int | bool) -> Self:
        """A copy with some fields changed. dataclasses.replace inspects the fields and runs
        __init__ on every call; code generation makes hundreds of thousands of these."""
        unknown = changes.keys() - self.__dict__.keys()
        if unknown:
            raise TypeError(f"{self.mnemonic} has no field {', '.join(sorted(unknown))}")
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__, **changes)
        return copy

    def asm(self) -> str:
        """One line of assembly: fields that differ from their defaults, then the flags."""
        defaults = _defaults(type(self))
        parts = [self.mnemonic]
        for name, value in self.fields().items():
            if value != defaults.get(name):
                parts.append(f"{name}={_asm_value(type(self), name, value)}")
        return " ".join(parts + list(self.flags()))

    def encode(self) -> bytes:
        word = int(self.OPCODE)
        for i, name in enumerate(FLAG_NAMES):
            word |= int(bool(getattr(self, name))) << (OPCODE_BITS + i)
        position = OPCODE_BITS + len(FLAG_NAMES)
        for f in self.FIELDS:
            value = int(getattr(self, f.name))
            f.check(value, self.mnemonic)
            word |= (value & ((1 << f.bits) - 1)) << position
            position += f.bits
        return word.to_bytes(WORD_BYTES, "little")


def semantics(cls: type[Instruction]) -> str:
    """The first line of the instruction's docstring: what it does, as pseudocode."""
    return (cls.__doc__ or "").strip().splitlines()[0]


def _asm_value(cls: type[Instruction], name: str, value: int) -> str:
    if cls is Act and name == "func":
        return Func(value).name.lower()
    return str(value)


_DEFAULTS: dict[type[Instruction], dict[str, int]] = {}  # asm() needs them for every line


def _defaults(cls: type[Instruction]) -> dict[str, int]:
    if cls not in _DEFAULTS:
        _DEFAULTS[cls] = {
            f.name: int(f.default)
            for f in dataclasses.fields(cls)
            if f.default is not dataclasses.MISSING
        }
    return _DEFAULTS[cls]


@dataclass(frozen=True)
class Nop(Instruction):
    """nothing happens, in queue queue_id; it exists to carry dependency flags."""

    queue_id: int = 1

    OPCODE = Opcode.NOP
    FIELDS = (Field("queue_id", 2),)

    @property
    def queue(self) -> Queue:
        return Queue(self.queue_id)


@dataclass(frozen=True)
class Rhm(Instruction):
    """ub[ub_addr + v] = pad(host[host_addr + y*y_stride + x*x_stride : +elems]) for the padded (y, x) grid, v row-major."""

    host_addr: int
    ub_addr: int
    elems: int
    x_size: int = 1
    y_size: int = 1
    x_stride: int = 0
    y_stride: int = 0
    pad_top: int = 0
    pad_bottom: int = 0
    pad_left: int = 0
    pad_right: int = 0
    fill: int = 0

    OPCODE = Opcode.RHM
    FIELDS = (
        Field("host_addr", 32),
        Field("ub_addr", 24),
        Field("elems", 16),
        Field("x_size", 16),
        Field("y_size", 16),
        Field("x_stride", 24),
        Field("y_stride", 32),
        Field("pad_top", 8),
        Field("pad_bottom", 8),
        Field("pad_left", 8),
        Field("pad_right", 8),
        Field("fill", 16, signed=True),
    )


@dataclass(frozen=True)
class Rw(Instruction):
    """weight_fifo.push(weights[weight_addr + t*tile_bytes], for t < tiles); returns before they arrive."""

    weight_addr: int
    tiles: int = 1

    OPCODE = Opcode.RW
    FIELDS = (Field("weight_addr", 40), Field("tiles", 16))


@dataclass(frozen=True)
class Mmc(Instruction):
    """acc[acc_addr + o*acc_outer_stride + r] (+)= ub[ub_addr + o*ub_outer_stride + r*ub_stride] @ W, r < rows, o < outer."""

    ub_addr: int
    acc_addr: int
    rows: int
    outer: int = 1
    ub_stride: int = 1
    ub_outer_stride: int = 0
    acc_outer_stride: int = 0
    switch: bool = False  # W = the next tile of the weight FIFO, first
    accumulate: bool = False  # add into the accumulators instead of overwriting them

    OPCODE = Opcode.MMC
    FIELDS = (
        Field("ub_addr", 24),
        Field("acc_addr", 16),
        Field("rows", 16),
        Field("outer", 16),
        Field("ub_stride", 16),
        Field("ub_outer_stride", 24),
        Field("acc_outer_stride", 16),
        Field("switch", 1),
        Field("accumulate", 1),
    )

    @property
    def length(self) -> int:
        return self.rows * self.outer


@dataclass(frozen=True)
class Act(Instruction):
    """ub[ub_addr + r*k] = out(func(acc[acc_addr + r] + bias)), r < rows; k rows per output vector."""

    acc_addr: int
    ub_addr: int
    rows: int
    func: int = Func.IDENTITY
    wide: bool = False  # write the accumulator type (int32/f32), not the input type
    has_params: bool = False  # per-column bias and scaling at params_addr in weight memory
    params_addr: int = 0
    zero_point: int = 0
    lo: int = -128
    hi: int = 127

    OPCODE = Opcode.ACT
    FIELDS = (
        Field("acc_addr", 16),
        Field("ub_addr", 24),
        Field("rows", 16),
        Field("func", 2),
        Field("wide", 1),
        Field("has_params", 1),
        Field("params_addr", 40),
        Field("zero_point", 16, signed=True),
        Field("lo", 16, signed=True),
        Field("hi", 16, signed=True),
    )


@dataclass(frozen=True)
class Whm(Instruction):
    """host[host_addr + y*y_stride + x*x_stride : +elems] = ub[ub_addr + (y*x_size + x)*k], k rows per vector."""

    host_addr: int
    ub_addr: int
    elems: int
    wide: bool = False  # 32-bit elements (an ACT with wide=1 wrote them)
    x_size: int = 1
    y_size: int = 1
    x_stride: int = 0
    y_stride: int = 0

    OPCODE = Opcode.WHM
    FIELDS = (
        Field("host_addr", 32),
        Field("ub_addr", 24),
        Field("elems", 16),
        Field("wide", 1),
        Field("x_size", 16),
        Field("y_size", 16),
        Field("x_stride", 24),
        Field("y_stride", 32),
    )


@dataclass(frozen=True)
class Sync(Instruction):
    """wait until every queue has finished everything issued before this instruction."""

    OPCODE = Opcode.SYNC


@dataclass(frozen=True)
class Halt(Instruction):
    """stop when every queue is done; the program ends here."""

    OPCODE = Opcode.HALT


INSTRUCTIONS: dict[Opcode, type[Instruction]] = {
    cls.OPCODE: cls for cls in (Nop, Rhm, Rw, Mmc, Act, Whm, Sync, Halt)
}
BY_MNEMONIC = {op.name.lower(): cls for op, cls in INSTRUCTIONS.items()}
QUEUE_OF = {
    Opcode.RHM: Queue.LOAD,
    Opcode.RW: Queue.LOAD,
    Opcode.MMC: Queue.COMPUTE,
    Opcode.ACT: Queue.COMPUTE,
    Opcode.WHM: Queue.STORE,
}


def layout(cls: type[Instruction]) -> list[tuple[str, int, int, bool]]:
    """(field, first bit, last bit, signed) for the header and every field."""
    rows = [("opcode", 0, OPCODE_BITS - 1, False)]
    rows += [(name, OPCODE_BITS + i, OPCODE_BITS + i, False) for i, name in enumerate(FLAG_NAMES)]
    position = OPCODE_BITS + len(FLAG_NAMES)
    for f in cls.FIELDS:
        rows.append((f.name, position, position + f.bits - 1, f.signed))
        position += f.bits
    assert position <= WORD_BITS, cls
    return rows


def decode(word: bytes) -> Instruction:
    if len(word) != WORD_BYTES:
        raise EncodingError(f"an instruction is {WORD_BYTES} bytes, got {len(word)}")
    value = int.from_bytes(word, "little")
    try:
        cls = INSTRUCTIONS[Opcode(value & ((1 << OPCODE_BITS) - 1))]
    except ValueError:
        raise EncodingError(f"unknown opcode {value & 31}") from None
    flags = {name: bool(value >> (OPCODE_BITS + i) & 1) for i, name in enumerate(FLAG_NAMES)}
    position = OPCODE_BITS + len(FLAG_NAMES)
    fields: dict[str, int | bool] = {}
    for f in cls.FIELDS:
        raw = value >> position & ((1 << f.bits) - 1)
        if f.signed and raw >> (f.bits - 1):
            raw -= 1 << f.bits
        fields[f.name] = bool(raw) if f.bits == 1 else raw
        position += f.bits
    if value >> position:
        raise EncodingError(f"{cls.OPCODE.name.lower()}: bits above {position} must be zero")
    return cls(**fields, **flags)  # type: ignore[arg-type]


def encode_program(program: list[Instruction]) -> bytes:
    return b"".join(i.encode() for i in program)


def decode_program(data: bytes) -> list[Instruction]:
    if len(data) % WORD_BYTES:
        raise EncodingError(f"{len(data)} bytes is not a whole number of {WORD_BYTES}-byte words")
    return [decode(data[i : i + WORD_BYTES]) for i in range(0, len(data), WORD_BYTES)]
