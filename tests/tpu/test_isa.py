"""The instruction set: binary and text forms round-trip, overflow is refused, errors point."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from runtime.tpu.asm import AsmError, assemble, disassemble, listing
from runtime.tpu.isa import (
    INSTRUCTIONS,
    WORD_BYTES,
    Act,
    EncodingError,
    Func,
    Halt,
    Mmc,
    Nop,
    Rhm,
    Rw,
    Sync,
    Whm,
    decode,
    decode_program,
    encode_program,
    layout,
    semantics,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "tpu.md"

EXAMPLES = [
    Nop(queue_id=2, pop_prev=True, push_prev=True),
    Rhm(
        host_addr=0xFFFF_FFFF,
        ub_addr=12,
        elems=256,
        x_size=7,
        y_size=3,
        x_stride=9,
        y_stride=1 << 31,
        pad_top=1,
        pad_bottom=2,
        pad_left=255,
        pad_right=4,
        fill=-7,
        push_next=True,
    ),
    Rw(weight_addr=(1 << 40) - 1, tiles=65535),
    Mmc(
        ub_addr=5,
        acc_addr=7,
        rows=512,
        outer=3,
        ub_stride=2,
        ub_outer_stride=40,
        acc_outer_stride=512,
        switch=True,
        accumulate=True,
        pop_prev=True,
        push_next=True,
    ),
    Act(
        acc_addr=3,
        ub_addr=4,
        rows=9,
        func=Func.TANH,
        wide=True,
        has_params=True,
        params_addr=1 << 39,
        zero_point=-128,
        lo=-32768,
        hi=32767,
        pop_next=True,
    ),
    Whm(
        host_addr=64,
        ub_addr=1,
        elems=3,
        wide=True,
        x_size=2,
        y_size=5,
        x_stride=12,
        y_stride=100,
        pop_prev=True,
        push_prev=True,
    ),
    Sync(),
    Halt(),
]


@pytest.mark.parametrize("instruction", EXAMPLES, ids=lambda i: i.mnemonic)
def test_binary_and_text_round_trip(instruction) -> None:
    word = instruction.encode()
    assert len(word) == WORD_BYTES
    assert decode(word) == instruction
    assert assemble(instruction.asm()) == [instruction]
    assert instruction.semantics  # every instruction states what it does


def test_every_opcode_has_an_example_and_a_program_round_trips() -> None:
    assert {type(i) for i in EXAMPLES} == set(INSTRUCTIONS.values())
    assert decode_program(encode_program(EXAMPLES)) == EXAMPLES
    text = disassemble(EXAMPLES)
    assert disassemble(assemble(text)) == text
    assert assemble(listing(EXAMPLES)) == EXAMPLES  # the listing's comments are comments


def test_replace_is_dataclasses_replace() -> None:
    mmc = Mmc(ub_addr=3, acc_addr=0, rows=5, switch=True)
    changed = mmc.replace(ub_addr=7, pop_prev=True)
    assert changed == dataclasses.replace(mmc, ub_addr=7, pop_prev=True)
    assert hash(changed) == hash(dataclasses.replace(mmc, ub_addr=7, pop_prev=True))
    assert changed.asm() == "mmc ub_addr=7 acc_addr=0 rows=5 switch=1 pop_prev"
    assert mmc == Mmc(ub_addr=3, acc_addr=0, rows=5, switch=True)  # the original is untouched
    with pytest.raises(TypeError, match="mmc has no field colour"):
        mmc.replace(colour=1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Rhm(host_addr=1 << 32, ub_addr=0, elems=1), "host_addr"),
        (lambda: Mmc(ub_addr=0, acc_addr=1 << 16, rows=1), "acc_addr"),
        (lambda: Act(acc_addr=0, ub_addr=0, rows=1, zero_point=1 << 15), "zero_point"),
        (lambda: Rw(weight_addr=-1), "weight_addr"),
    ],
)
def test_field_overflow_is_refused(make, message: str) -> None:
    with pytest.raises(EncodingError, match=message):
        make().encode()


@pytest.mark.parametrize(
    ("text", "col", "message"),
    [
        ("mmc ub_addr=0 acc_addr=0 rows=70000", 31, "does not fit in 16 bits"),
        ("rhm host_addr=0 ub_addr=0 elems=1 bogus=3", 35, "has no field 'bogus'"),
        ("frobnicate x=1", 1, "unknown instruction"),
        ("mmc ub_addr=0 rows=1", 21, "needs acc_addr"),
        ("rhm host_addr=0 ub_addr=0 elems=1 pop_prev", 35, "has no prev queue"),
        ("whm host_addr=0 ub_addr=0 elems=1 push_next", 35, "has no next queue"),
        ("act acc_addr=0 ub_addr=0 rows=1 func=softplus", 38, "not a number"),
        ("mmc ub_addr=0 ub_addr=1 acc_addr=0 rows=1", 15, "given twice"),
    ],
)
def test_assembly_errors_are_located(text: str, col: int, message: str) -> None:
    source = f"; a comment\n{text}\n"
    with pytest.raises(AsmError) as info:
        assemble(source, "prog.tasm")
    err = info.value
    assert (err.lineno, err.col) == (2, col)
    assert message in str(err)
    lines = str(err).splitlines()
    assert lines[0].startswith(f"prog.tasm:2:{col}: error:")
    assert lines[1].strip() == text
    assert lines[2].index("^") - 2 == col - 1


def test_decode_rejects_garbage() -> None:
    with pytest.raises(EncodingError, match="unknown opcode"):
        decode(bytes([31]) + bytes(WORD_BYTES - 1))
    with pytest.raises(EncodingError, match="must be zero"):
        decode((1 << 255 | 7).to_bytes(WORD_BYTES, "little"))
    with pytest.raises(EncodingError, match="whole number"):
        decode_program(bytes(WORD_BYTES + 1))


def test_docs_give_every_field_its_bit_positions() -> None:
    """docs/tpu.md's encoding tables are the encoder's own layout."""
    text = DOCS.read_text()
    for opcode, cls in INSTRUCTIONS.items():
        section = text.split(f"### `{cls.OPCODE.name.lower()}`")[1].split("###")[0]
        assert f"opcode {int(opcode)}" in section
        assert semantics(cls) in section
        for name, first, last, _signed in layout(cls):
            row = f"| `{name}` | {first} | {last} | {last - first + 1} |"
            assert row in section, (cls.__name__, row)
        documented = re.findall(r"^\| `(\w+)` \|", section, re.M)
        assert documented == [name for name, *_ in layout(cls)]
