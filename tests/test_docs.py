"""The graph snippets in docs/graph-language.md are real: each one parses, verifies and round-trips.

Conventions for fenced blocks in the document:

- ```` ```graph ````: a complete module that must parse and verify;
- ```` ```graph canonical ````: the printed form of the `graph` block before it, exactly;
- ```` ```graph error ````: a module that must fail; the ```` ```text ```` block right after it
  is the exact error message.

Snippets are parsed as a file `example.graph` in `docs/`, so weights paths are relative to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from ir import Module, TesselError, verify_module
from ir.parser import parse_module
from ir.printer import print_module

DOCS = Path(__file__).resolve().parent.parent / "docs"
DOC = DOCS / "graph-language.md"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    info: str  # the fence's info string: "graph", "graph error", "text", ...
    text: str
    line: int  # 1-based line of the opening fence

    @property
    def id(self) -> str:
        return f"line{self.line}"


def blocks() -> list[Block]:
    doc = DOC.read_text()
    return [
        Block(m.group(1).strip(), m.group(2), doc.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(doc)
    ]


def parse(block: Block) -> Module:
    module = parse_module(block.text, "example.graph", DOCS)
    verify_module(module)
    return module


def of_kind(info: str) -> list[Block]:
    return [b for b in blocks() if b.info == info]


def with_predecessor(info: str, before: str) -> list[tuple[Block, Block]]:
    """Pairs (block, the nearest earlier block of kind `before`) for blocks of kind `info`."""
    pairs: list[tuple[Block, Block]] = []
    last: Block | None = None
    for b in blocks():
        if b.info == info:
            assert last is not None, f"{DOC.name}:{b.line}: no '{before}' block before it"
            pairs.append((last, b))
        if b.info == before:
            last = b
    return pairs


def test_the_document_has_every_kind_of_block() -> None:
    kinds = {b.info for b in blocks()}
    assert {"graph", "graph canonical", "graph error"} <= kinds
    assert len(of_kind("graph")) >= 10


@pytest.mark.parametrize("block", of_kind("graph"), ids=lambda b: b.id)
def test_snippet_parses_verifies_and_round_trips(block: Block) -> None:
    module = parse(block)
    text = print_module(module, base_dir=DOCS)
    again = parse_module(text, "printed.graph", DOCS)
    assert again == module
    assert print_module(again, base_dir=DOCS) == text


@pytest.mark.parametrize(
    ("source", "canonical"),
    with_predecessor("graph canonical", "graph"),
    ids=lambda b: b.id,
)
def test_canonical_form_is_what_the_printer_prints(source: Block, canonical: Block) -> None:
    assert print_module(parse(source), base_dir=DOCS) == canonical.text
    assert print_module(parse(canonical), base_dir=DOCS) == canonical.text


@pytest.mark.parametrize("block", of_kind("graph error"), ids=lambda b: b.id)
def test_error_snippet_fails_with_the_documented_message(block: Block) -> None:
    following = [b for b in blocks() if b.line > block.line]
    assert following, f"{DOC.name}:{block.line}: no message block after the error snippet"
    message = following[0]
    assert message.info == "text", f"{DOC.name}:{block.line}: the next block must be ```text"
    with pytest.raises(TesselError) as err:
        parse(block)
    assert str(err.value) == message.text.rstrip("\n")
