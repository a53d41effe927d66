"""The graph snippets of the documentation (README.md, docs/*.md) are real.

Conventions for graph blocks (tests/test_doc_blocks.py gives those of every other kind, and
runs the documents' commands and Python):

- ```` ```graph ````: a complete module that must parse, verify and round-trip;
- ```` ```graph canonical ````: the printed form of the `graph` block before it, exactly;
- ```` ```graph after PIPELINE ````: what the pass pipeline PIPELINE (pipeline text, as for
  `tessel opt -p`) prints for the `graph` block before it, exactly;
- ```` ```graph error ````: a module that must fail; the ```` ```text ```` block right after it
  is the exact error message.

A `file=NAME` word in the info string (```` ```graph file=layer.graph ````) saves the block for
later commands of its document and changes nothing here; ```` ```graph excerpt=PATH ```` is an
excerpt of a file, not a module, and is checked by tests/test_doc_blocks.py.

Snippets are parsed as a file `example.graph` in `docs/`, so weights paths are relative to it.

docs/passes.md must also give every registered pass a heading and mention every pipeline flag
of the command line, so a new pass or flag cannot ship undocumented.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from compiler.cli import build_parser
from ir import Module, TesselError, verify_module
from ir.parser import parse_module
from ir.printer import print_module
from passes import REGISTRY, PassManager, parse_pipeline

DOCS = Path(__file__).resolve().parent.parent / "docs"
LANGUAGE = DOCS / "graph-language.md"
PASSES = DOCS / "passes.md"
DOC_FILES = (DOCS.parent / "README.md", *sorted(DOCS.glob("*.md")))
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
AFTER = "graph after "


@dataclass(frozen=True)
class Block:
    doc: Path
    fence: str  # the fence's info string: "graph", "graph file=fm.graph", "text", ...
    text: str
    line: int  # 1-based line of the opening fence

    @property
    def info(self) -> str:
        """The info string without `file=NAME`: "graph", "graph error", "text", ..."""
        return " ".join(w for w in self.fence.split() if not w.startswith("file="))

    @property
    def id(self) -> str:
        return f"{self.doc.stem}-line{self.line}"

    @property
    def where(self) -> str:
        return f"{self.doc.name}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    text = doc.read_text()
    return [
        Block(doc, m.group(1).strip(), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(text)
    ]


def all_blocks() -> list[Block]:
    return [b for doc in DOC_FILES for b in blocks(doc)]


def parse(block: Block) -> Module:
    module = parse_module(block.text, "example.graph", DOCS)
    verify_module(module)
    return module


def printed(module: Module) -> str:
    return print_module(module, base_dir=DOCS)


def of_kind(info: str) -> list[Block]:
    return [b for b in all_blocks() if b.info == info]


def with_predecessor(is_kind: str, before: str) -> list[tuple[Block, Block]]:
    """Pairs (the nearest earlier block of kind `before`, block) for blocks whose info string
    is `is_kind` or, when `is_kind` ends with a space, starts with it."""
    pairs: list[tuple[Block, Block]] = []
    for doc in DOC_FILES:
        last: Block | None = None
        for b in blocks(doc):
            if b.info == is_kind or (is_kind.endswith(" ") and b.info.startswith(is_kind)):
                assert last is not None, f"{b.where}: no '{before}' block before it"
                pairs.append((last, b))
            if b.info == before:
                last = b
    return pairs


def test_each_document_has_checked_blocks() -> None:
    language = {b.info for b in blocks(LANGUAGE)}
    assert {"graph", "graph canonical", "graph error"} <= language
    assert sum(b.info == "graph" for b in blocks(LANGUAGE)) >= 10
    assert any(b.info.startswith(AFTER) for b in blocks(PASSES))


@pytest.mark.parametrize("block", of_kind("graph"), ids=lambda b: b.id)
def test_snippet_parses_verifies_and_round_trips(block: Block) -> None:
    module = parse(block)
    text = printed(module)
    again = parse_module(text, "printed.graph", DOCS)
    assert again == module
    assert printed(again) == text


@pytest.mark.parametrize(
    ("source", "canonical"),
    with_predecessor("graph canonical", "graph"),
    ids=lambda b: b.id,
)
def test_canonical_form_is_what_the_printer_prints(source: Block, canonical: Block) -> None:
    assert printed(parse(source)) == canonical.text
    assert printed(parse(canonical)) == canonical.text


@pytest.mark.parametrize(
    ("source", "result"),
    with_predecessor(AFTER, "graph"),
    ids=lambda b: b.id,
)
def test_pass_output_is_what_the_pipeline_prints(source: Block, result: Block) -> None:
    pipeline = parse_pipeline(result.info.removeprefix(AFTER))
    out = PassManager(pipeline, verify_each=True).run(parse(source))
    assert printed(out) == result.text
    assert printed(parse(result)) == result.text  # the shown result is itself a valid file


@pytest.mark.parametrize("block", of_kind("graph error"), ids=lambda b: b.id)
def test_error_snippet_fails_with_the_documented_message(block: Block) -> None:
    following = [b for b in blocks(block.doc) if b.line > block.line]
    assert following, f"{block.where}: no message block after the error snippet"
    message = following[0]
    assert message.info == "text", f"{block.where}: the next block must be ```text"
    with pytest.raises(TesselError) as err:
        parse(block)
    assert str(err.value) == message.text.rstrip("\n")


# --- docs/passes.md covers every pass and every pipeline flag ---------------------------------


def pipeline_flags() -> set[str]:
    """The long options of the "pipeline and IR dumps" group, from every verb that has it."""
    parser = build_parser()
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags: set[str] = set()
    for sub in verbs.choices.values():
        for group in sub._action_groups:
            if group.title == "pipeline and IR dumps":
                actions = group._group_actions
                flags |= {s for a in actions for s in a.option_strings if s.startswith("--")}
    return flags


def test_pipeline_flags_are_found() -> None:
    assert {"--pipeline", "--dump-dir", "--print-ir-after", "--report-memory"} <= pipeline_flags()


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_pass_has_a_section(name: str) -> None:
    heading = re.compile(rf"^#+ .*`{re.escape(name)}`", re.MULTILINE)
    assert heading.search(PASSES.read_text()), f"docs/passes.md: no heading for pass '{name}'"


@pytest.mark.parametrize("flag", sorted(pipeline_flags()))
def test_every_pipeline_flag_is_documented(flag: str) -> None:
    mention = re.compile(rf"(?<![\w-]){re.escape(flag)}(?![\w-])")
    assert mention.search(PASSES.read_text()), f"docs/passes.md does not mention {flag}"
