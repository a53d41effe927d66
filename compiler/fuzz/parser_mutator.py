"""The parser mutator: damaged graph files must parse, or fail with a located TesselError.

Seeds are the sample graphs (samples/**/*.graph), every ```graph block of docs/*.md (parsed
from docs/, as tests/test_docs.py does) and a few generated graphs. A mutant applies one to four
mutations to a seed's bytes: bit flips, byte replacements, insertions and deletions, swapping
or replacing tokens (with op names, dtypes, attribute names, extreme numbers, odd weight
paths), and deleting, duplicating, swapping or splicing lines.

The worker then parses it (`parse_module`, or `parse_file` for bytes that are not UTF-8):
- a `TesselError` with a location (`file:line:col`) is the right answer to a broken file;
- a mutant that parses and verifies must print and read back as the same module;
- any other exception, an error without a location, a crash or a hang is a failure.
"""

from __future__ import annotations

import base64
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from compiler.fuzz import gen
from compiler.fuzz.draw import Draw, case_rng
from compiler.fuzz.kind import Budget, Case, Fuzzer, Rerun, same_failure
from compiler.fuzz.outcome import Outcome
from compiler.fuzz.shrink import Trial, shrink_list
from ir.diagnostics import TesselError
from ir.ops import ATTRS, Op
from ir.printer import print_module

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(graph[^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
TOKEN = re.compile(
    rb'%[A-Za-z0-9_.]+|@[A-Za-z_][A-Za-z0-9_.]*|"[^"\n]*"|-?[0-9]+\.?[0-9]*(?:[eE][-+]?[0-9]+)?'
    rb"|[A-Za-z_][A-Za-z0-9_]*|->|[{}\[\](),:=]|#[^\n]*"
)
NUMBER = re.compile(rb"-?[0-9]+\.?[0-9]*(?:[eE][-+]?[0-9]+)?")
DIMS = re.compile(rb"\b(?:f64|f32|f16|bf16|i64|i32|i16|i8|u8|bool)\[([0-9, ]*)\]")
DIM_VALUES = [b"0", b"1", b"3", b"65", b"99999999999", b"4294967296", b"9223372036854775807"]
NUMBERS = [
    b"0",
    b"-1",
    b"1",
    b"-0",
    b"2",
    b"99999999999",
    b"9223372036854775808",
    b"1e309",
    b"-1e309",
    b"nan",
    b"-nan",
    b"inf",
    b"-inf",
    b"0.5",
    b"3.4028236e38",
    b"65504",
    b"1e-45",
    b"4294967296",
    b"-2147483649",
]
WORDS = [
    *(b"func", b"entry", b"return", b"matmul", b"true", b"false", b"same", b"valid", b"sum"),
    *(b"max", b"%x", b"%0", b"%", b"@main", b"@f", b'"missing.npz"["w"]', b'"../mlp.npz"'),
    *(b'"/dev/zero"', b'"mlp.npz"["nope"]', b"{", b"}", b"[", b"]", b"(", b")", b",", b":"),
    *(b"=", b"->", b"#", b"\n", b"\t", b"\xff", b"\xc3\xa9", b"\x00"),
]
MUTATIONS = (
    *("flip", "byte", "insert", "delete", "swap-tokens", "replace-token", "number", "dim"),
    *("delete-line", "duplicate-line", "swap-lines", "splice-line", "truncate"),
)
INTERESTING_BYTES = b'{}[](),:=%@#"-.\n\t 0e\x00\xff\x80'


def _dictionary() -> list[bytes]:
    names = [op.value for op in Op] + [t.value for t in gen.DTYPES]
    names += sorted({a for specs in ATTRS.values() for a in specs})
    return [n.encode() for n in names] + NUMBERS + WORDS


def seeds(seed: int = 0, generated: int = 8) -> list[tuple[str, str, bytes]]:
    """(label, base folder, text) of every seed: samples, doc snippets, generated graphs."""
    out: list[tuple[str, str, bytes]] = []
    for path in sorted((ROOT / "samples").rglob("*.graph")):
        out.append((str(path.relative_to(ROOT)), str(path.parent), path.read_bytes()))
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text()
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            out.append((f"docs/{doc.name}:{line}", str(ROOT / "docs"), m.group(2).encode()))
    for i in range(generated):  # every op, in case the repository's files are not installed
        module = gen.module(Draw(case_rng(seed, "parser-seed", i)), gen.GenOptions())
        out.append((f"generated-{i}", str(ROOT), print_module(module).encode()))
    return out


# --- mutations: each takes and returns bytes, and says what it did -------------------------


def _tokens(data: bytes) -> list[tuple[int, int]]:
    return [m.span() for m in TOKEN.finditer(data)]


def mutate(d: Draw, data: bytes, donors: list[bytes], words: list[bytes]) -> tuple[bytes, str]:
    how = d.pick(MUTATIONS)
    if not data:
        return d.pick(words), "insert into empty"
    i = d.integer(0, len(data) - 1)
    if how == "flip":
        bit = d.integer(0, 7)
        return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :], f"flip bit {bit} @{i}"
    if how == "byte":
        b = d.pick(INTERESTING_BYTES)
        return data[:i] + bytes([b]) + data[i + 1 :], f"byte {bytes([b])!r} @{i}"
    if how == "insert":
        w = d.pick(words)
        return data[:i] + w + data[i:], f"insert {w!r} @{i}"
    if how == "delete":
        n = d.integer(1, 8)
        return data[:i] + data[i + n :], f"delete {n} @{i}"
    if how in ("swap-tokens", "replace-token", "number"):
        return _token_mutation(d, how, data, words)
    if how == "truncate":
        return data[:i], f"truncate @{i}"
    if how == "dim":
        return _dim_mutation(d, data)
    return _line_mutation(d, how, data, donors)


def _token_mutation(d: Draw, how: str, data: bytes, words: list[bytes]) -> tuple[bytes, str]:
    spans = _tokens(data)
    if how == "number":
        spans = [m.span() for m in NUMBER.finditer(data)] or spans
    if len(spans) < 2:
        return data + b"}", "append '}'"
    if how == "swap-tokens":
        a, b = sorted(int(k) for k in d.rng.choice(len(spans), 2, replace=False))
        (s1, e1), (s2, e2) = spans[a], spans[b]
        out = data[:s1] + data[s2:e2] + data[e1:s2] + data[s1:e1] + data[e2:]
        return out, f"swap {data[s1:e1]!r} and {data[s2:e2]!r}"
    s1, e1 = spans[d.integer(0, len(spans) - 1)]
    w = d.pick(NUMBERS if how == "number" else words)
    return data[:s1] + w + data[e1:], f"replace {data[s1:e1]!r} with {w!r}"


def _dim_mutation(d: Draw, data: bytes) -> tuple[bytes, str]:
    """One dimension of one type (`f32[4,3]`) becomes 0, 1, or something huge."""
    types = list(DIMS.finditer(data))
    if not types:
        return data, "no type to change"
    m = d.pick(types)
    start, end = m.span(1)
    dims = [x for x in data[start:end].split(b",") if x.strip()]
    w = d.pick(DIM_VALUES)
    if dims:
        dims[d.integer(0, len(dims) - 1)] = w
    else:
        dims = [w]
    out = data[:start] + b",".join(dims) + data[end:]
    return out, f"dimensions {data[start:end]!r} -> {b','.join(dims)!r}"


def _line_mutation(d: Draw, how: str, data: bytes, donors: list[bytes]) -> tuple[bytes, str]:
    lines = data.split(b"\n")
    i = d.integer(0, len(lines) - 1)
    if how == "delete-line":
        return b"\n".join(lines[:i] + lines[i + 1 :]), f"delete line {i + 1}"
    if how == "duplicate-line":
        return b"\n".join(lines[: i + 1] + lines[i:]), f"duplicate line {i + 1}"
    if how == "swap-lines":
        j = d.integer(0, len(lines) - 1)
        lines[i], lines[j] = lines[j], lines[i]
        return b"\n".join(lines), f"swap lines {i + 1} and {j + 1}"
    donor = d.pick(donors).split(b"\n")
    line = d.pick(donor)
    return b"\n".join([*lines[:i], line, *lines[i:]]), f"splice {line[:40]!r} at line {i + 1}"


class ParserFuzzer(Fuzzer):
    kind = "parser"
    timeout = 30.0

    def __init__(self, seed: int = 0) -> None:
        self.corpus = seeds(seed)
        self.words = _dictionary()
        self.donors = [text for _, _, text in self.corpus]

    def generate(self, rng: np.random.Generator) -> Case:
        d = Draw(rng)
        label, base, data = d.pick(self.corpus)
        done = []
        for _ in range(d.integer(1, 4)):
            data, what = mutate(d, data, self.donors, self.words)
            done.append(what)
        return {
            "source": label,
            "base_dir": base,
            "mutations": done,
            "data": base64.b64encode(data).decode(),
        }

    def minimize(self, case: Case, outcome: Outcome, rerun: Rerun, budget: Budget) -> Case:
        best = dict(case)

        def test(pieces: list[bytes]) -> bool:
            trial = {**best, "data": base64.b64encode(b"".join(pieces)).decode()}
            if same_failure(outcome, rerun(trial)):
                best["data"] = trial["data"]
                return True
            return False

        data = base64.b64decode(case["data"])
        lines = shrink_list(data.splitlines(keepends=True), Trial(budget, test))
        chunks = re.split(rb"(\s+)", b"".join(lines))  # then tokens within the lines left
        shrink_list([c for c in chunks if c], Trial(budget, test))
        return best

    def save(self, case: Case, outcome: Outcome, folder: Path) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "case.graph").write_bytes(base64.b64decode(case["data"]))
        return [
            f"tessel check case.graph   # with weights paths relative to {case['base_dir']}",
            f"# mutant of {case['source']}: {'; '.join(case['mutations'])}",
        ]


# --- the worker side ----------------------------------------------------------------------


def _located(e: TesselError, filename: str) -> bool:
    return e.loc is not None or filename in e.message


def execute(case: Case, ctx: Any) -> Outcome:
    from ir.parser import parse_file, parse_module
    from ir.verify import verify_module

    data = base64.b64decode(case["data"])
    base = case["base_dir"]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        ctx.progress("read")
        with tempfile.TemporaryDirectory(dir=ctx.scratch) as folder:
            path = Path(folder) / "mutant.graph"
            path.write_bytes(data)
            try:
                parse_file(path)
            except TesselError as e:
                return (
                    Outcome("rejected", "read", e.message)
                    if _located(e, str(path))
                    else (
                        Outcome(
                            "wrong", "read", f"error without a location: {e}", {"key": "unlocated"}
                        )
                    )
                )
        return Outcome("wrong", "read", "bytes that are not UTF-8 parsed as a graph")
    ctx.progress("parse")
    try:
        module = parse_module(text, "mutant.graph", base)
        verify_module(module)
    except TesselError as e:
        if _located(e, "mutant.graph"):
            return Outcome("rejected", "parse", e.message)
        return Outcome(
            "wrong", "parse", f"error without a location: {e.message}", {"key": "unlocated"}
        )
    ctx.progress("roundtrip")
    printed = print_module(module, base_dir=base)
    again = parse_module(printed, "printed.graph", base)
    verify_module(again)
    if again != module or print_module(again, base_dir=base) != printed:
        return Outcome(
            "wrong",
            "roundtrip",
            "the parsed mutant does not print and read back as the same module",
            {"key": "roundtrip"},
        )
    return Outcome("ok", "roundtrip")
