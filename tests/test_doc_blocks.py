"""Every code block of README.md and docs/*.md runs, and the output they show is tessel's.

Each document runs top to bottom as one session in a fresh working directory, so a block may use
what the blocks before it in the same document made: files, and the names defined by earlier
```` ```python ```` blocks. The fence's info string says what a block is:

- ```` ```python ````: executed. The python blocks of a document share one namespace, in
  order. A block that defines `test_*` functions has them called right after it.
- ```` ```python no-run ```` and ```` ```sh no-run ````: for a block too slow to run here (a
  benchmark, say; the document says why): the Python is only compiled, and each `tessel`
  command only parsed by the CLI's argument parser. (No block needs it today.)
- ```` ```sh ````: one command per line (lines joined at a trailing `\\`, split at `&&`, `#`
  comments dropped), run in order:
  - `tessel ARGS`, `.venv/bin/tessel ARGS` and `python -m compiler ARGS` run in-process
    through `compiler.cli.main` and must exit with status 0;
  - `cc ...` runs in the shell, with the rest of its `&&` chain, when a C compiler is on the
    PATH and every `.c` file it names was written by a ```` ```c file=NAME ```` block before
    it; otherwise it is skipped;
  - skipped by rule: `pip ...` and `python -m venv ...` (installation, network), `pytest`
    (the suite itself), `python samples/...` (the sample scripts; tests/test_samples.py and
    tests/test_digits.py run them);
  - anything else fails the test: give it a rule here first.
- ```` ```text ````: plain text, not run (syntax summaries, formulas, pipeline text), unless
  its first line starts with `$ `: then it is a *transcript*. Each `$ COMMAND` runs
  (`tessel ...` in-process, `ls DIR`, `echo $?`; a trailing `> /dev/null` drops standard
  output) and the lines up to the next `$` line are what it prints (standard output and
  error, interleaved as written). They must match, where runs of spaces count as one space, a
  line `...` stands for any number of lines, and `...` inside a line for any text. A
  transcript checks no exit status by itself (an error shows as its message); `$ echo $?`
  prints the last one.
- ```` ```text approx ````: a transcript of floating-point results: each number may differ
  from the one shown by `APPROX` (3%) of it, since the last digits depend on BLAS and the CPU.
- ```` ```text example ````: output that depends on the machine or the run (timings, the host
  CPU). A transcript's commands still run, and its lines must match with every number
  masked; a block without `$` lines is not run, and the text around it says where it is from.
- ```` ```LANG excerpt=PATH ````: the block's lines appear in PATH in the same order, other
  lines in between allowed (`...` as above); PATH is relative to the working directory.
- ```` ```LANG file=NAME ````: the block is also written to NAME in the working directory
  (```` ```graph file=layer.graph ````, ```` ```c file=main.c ````), for later blocks.
- ```` ```graph ... ````: the graph-language checks of tests/test_docs.py (parse, canonical
  form, pass output, error messages).
- ```` ```tasm ````: a TPU program in text assembly; it must assemble.
- ```` ```c ````: only with `file=` or `excerpt=`.

The working directory holds a copy of samples/ and the inputs the documents name: `x.npy` (an
f32[256,784] input for the MLP sample, the size of its `%x`), `data.npz` (calibration data for
the MLP: `x` with two batches) and `calib.npz` (`x`: the digits sample's calibration images,
`x_calib` of samples/digits/digits_data.npz, as docs/quantization.md says). Passes a block
registers are unregistered after its document.

Numbers the documents quote in prose and tables are recomputed by the tests at the end of this
file, within the tolerance each states, or marked in the document as examples.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from compiler import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
APPROX = 0.03  # `text approx`: relative tolerance of each number
KINDS = {"python", "python no-run", "sh", "sh no-run", "text", "text approx", "text example"}
KINDS |= {"c", "graph", "graph canonical", "graph error", "tasm"}
NUMBER = re.compile(r"(?<![\w%.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
CLI_PREFIXES = (("tessel",), (".venv/bin/tessel",), ("python", "-m", "compiler"))
CLI_PREFIXES += (("python3", "-m", "compiler"), (".venv/bin/python", "-m", "compiler"))
PYTHONS = ("python", "python3", ".venv/bin/python")
ATTRIBUTE = re.compile(r"(file|excerpt)=")


@dataclass(frozen=True)
class Block:
    doc: Path
    info: str
    text: str
    line: int  # 1-based line of the opening fence

    @property
    def words(self) -> list[str]:
        return self.info.split()

    @property
    def kind(self) -> str:
        """The info string without its `file=` and `excerpt=` attributes."""
        return " ".join(w for w in self.words if not ATTRIBUTE.match(w))

    def attribute(self, name: str) -> str | None:
        values = [w.split("=", 1)[1] for w in self.words if w.startswith(f"{name}=")]
        return values[0] if values else None

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    text = doc.read_text()
    return [
        Block(doc, m.group(1).strip(), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(text)
    ]


def doc_id(doc: Path) -> str:
    return str(doc.relative_to(ROOT))


# --- every fence is one of the kinds above ----------------------------------------------------


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_fence_is_a_known_kind(doc: Path) -> None:
    """An unknown or missing info string ("pyhton", "grpah", ```) would skip the checks."""
    for b in blocks(doc):
        kind = "graph" if b.kind.startswith("graph after ") else b.kind
        assert kind in KINDS, f"{b.where}: unknown fence ```{b.info} (kinds: {sorted(KINDS)})"
        if b.kind == "c":
            assert b.attribute("file") or b.attribute("excerpt"), f"{b.where}: c needs file="


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_fence_line_belongs_to_a_block(doc: Path) -> None:
    """A line that merely starts with backticks would open a block and swallow the next ones."""
    fences = sum(line.startswith("```") for line in doc.read_text().splitlines())
    assert fences == 2 * len(blocks(doc)), f"{doc.name}: unpaired fence lines"


# --- matching shown output --------------------------------------------------------------------


def normalized(text: str) -> list[str]:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def line_pattern(line: str, numbers: str) -> tuple[str, list[str]]:
    """A regex for one shown line and the numbers it captures (`numbers`: exact, approx,
    example)."""
    pieces: list[str] = []
    shown: list[str] = []
    for i, part in enumerate(line.split("...")):
        if i:
            pieces.append(r"[^\n]*")
        if numbers == "exact":
            pieces.append(re.escape(part))
            continue
        pos = 0
        for m in NUMBER.finditer(part):
            pieces += [re.escape(part[pos : m.start()]), f"({NUMBER.pattern})"]
            shown.append(m.group())
            pos = m.end()
        pieces.append(re.escape(part[pos:]))
    return "".join(pieces), shown


def first_mismatch(expected: list[str], text: str, numbers: str) -> str:
    """The first shown line where matching `text` fails, for the error message."""
    pattern = ""
    for line in expected:
        if line == "...":
            pattern += r"(?:[^\n]*\n)*?"
            continue
        pattern += line_pattern(line, numbers)[0] + r"\n"
        if not re.match(pattern, text):
            return line
    return "(the end: more output than shown)"


def as_float(number: str) -> float:
    return float(number.replace(",", ""))


def check_output(where: str, shown: str, got: str, numbers: str = "exact", excerpt: bool = False):
    """`got` is what `shown` says, as the module docstring describes."""
    expected, actual = normalized(shown), normalized(got)
    if excerpt:  # the shown lines in order, anything between them
        expected = [line for e in expected for line in ("...", e)] + ["..."]
    pattern, captured = "", []
    for line in expected:
        if line == "...":
            pattern += r"(?:[^\n]*\n)*?"
        else:
            regex, shown_numbers = line_pattern(line, numbers)
            pattern += regex + r"\n"
            captured += shown_numbers
    text = "".join(line + "\n" for line in actual)
    m = re.fullmatch(pattern, text)
    if m is None:
        diff = "\n".join(difflib.unified_diff(expected, actual, "shown", "got", lineterm="", n=2))
        first = first_mismatch(expected, text, numbers)
        pytest.fail(
            f"{where}: the output is not what the document shows; from the shown line "
            f"{first!r} on, nothing matches (`...` lines are wildcards)\n{diff}"
        )
    if numbers == "approx":
        for want, have in zip(captured, m.groups(), strict=True):
            ok = math.isclose(as_float(have), as_float(want), rel_tol=APPROX, abs_tol=1e-12)
            assert ok, f"{where}: {have} differs from the shown {want} by more than {APPROX:.0%}"


def test_check_output_conventions() -> None:
    check_output("t", "a  b\n...\nz\n", "a b\nx\ny\nz\n\n")
    check_output("t", "a ... c\n", "a bbb c\n")
    check_output("t", "total 1.00 ms\n", "total 2.50 ms\n", numbers="example")
    check_output("t", "SQNR 40.2\n", "SQNR 40.9\n", numbers="approx")
    check_output("t", "b\nd\n", "a\nb\nc\nd\ne\n", excerpt=True)
    failures = [
        ("SQNR 40.2\n", "SQNR 42.2\n", "approx", False),
        ("%h1 1\n", "%h2 1\n", "example", False),  # names are not numbers
        ("a\nb\n", "a\nb\nc\n", "exact", False),
        ("d\nb\n", "a\nb\nc\nd\n", "exact", True),
    ]
    for shown, got, numbers, excerpt in failures:
        with pytest.raises((AssertionError, pytest.fail.Exception)):
            check_output("t", shown, got, numbers, excerpt)


# --- running a document -----------------------------------------------------------------------


def run_cli(argv: list[str], keep_stdout: bool = True) -> tuple[int, str]:
    """`tessel ARGV` in this process: the exit status and what it printed."""
    printed = io.StringIO()
    stdout = printed if keep_stdout else io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(printed):
        try:
            status = cli.main(argv)
        except SystemExit as e:  # argparse's usage errors
            status = e.code if isinstance(e.code, int) else 1
    return status, printed.getvalue()


def cli_args(words: list[str]) -> list[str] | None:
    for prefix in CLI_PREFIXES:
        if tuple(words[: len(prefix)]) == prefix:
            return words[len(prefix) :]
    return None


def skipped(words: list[str]) -> bool:
    """The commands sh blocks show but the tests do not run (module docstring)."""
    first = words[0]
    installs = first.endswith("pip") or words[1:3] == ["-m", "venv"]
    scripts = first in PYTHONS and len(words) > 1 and words[1].startswith("samples/")
    return installs or first.endswith("pytest") or scripts


def commands(script: str) -> Iterator[tuple[str, list[list[str]]]]:
    """Each line of an sh block (continuations joined): its text and its `&&`-separated
    commands as words."""
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        chain: list[list[str]] = [[]]
        for w in words:
            if w == "&&":
                chain.append([])
            else:
                chain[-1].append(w)
        if words:
            yield line, chain


@dataclass
class Session:
    doc: Path
    cwd: Path
    module: types.ModuleType
    status: int = 0
    ran: list[str] = field(default_factory=list)

    def run(self, b: Block) -> None:
        if name := b.attribute("file"):
            (self.cwd / name).parent.mkdir(parents=True, exist_ok=True)
            (self.cwd / name).write_text(b.text)
        if path := b.attribute("excerpt"):
            assert (self.cwd / path).exists(), f"{b.where}: no {path} to compare with"
            check_output(b.where, b.text, (self.cwd / path).read_text(), excerpt=True)
            return
        kind = b.kind
        if kind == "python":
            self.python(b)
        elif kind == "python no-run":
            compile(b.text, b.where, "exec")
        elif kind in ("sh", "sh no-run"):
            self.shell(b, run=kind == "sh")
        elif kind.startswith("text") and b.text.startswith("$ "):
            numbers = {"text": "exact", "text approx": "approx", "text example": "example"}
            self.transcript(b, numbers[kind])
        elif kind == "tasm":
            from runtime.tpu.asm import assemble

            assert assemble(b.text, b.where), f"{b.where}: an empty program"

    def python(self, b: Block) -> None:
        namespace = self.module.__dict__
        before = dict(namespace)
        code = compile("\n" * b.line + b.text, str(b.doc), "exec")  # the document's line numbers
        exec(code, namespace)  # our own documentation
        self.ran.append(f"{b.where}: python")
        for name, value in list(namespace.items()):
            if name.startswith("test_") and callable(value) and before.get(name) is not value:
                value()
                self.ran.append(f"{b.where}: {name}()")

    def shell(self, b: Block, run: bool) -> None:
        for line, chain in commands(b.text):
            for i, words in enumerate(chain):
                args = cli_args(words)
                if args is not None:
                    if not run:
                        cli.build_parser().parse_args(args)
                        continue
                    status, printed = run_cli(args)
                    assert status == 0, (
                        f"{b.where}: `{shlex.join(words)}` exited {status}:\n{printed}"
                    )
                    self.ran.append(f"{b.where}: {shlex.join(words)}")
                elif words[0] == "cc":
                    assert i == 0, f"{b.where}: `cc` must start its line"
                    if run:
                        self.cc(b, line, words)
                    break
                else:
                    assert skipped(words), f"{b.where}: no rule to run `{shlex.join(words)}`"

    def cc(self, b: Block, line: str, words: list[str]) -> None:
        """A C compile (and the rest of its line) in the shell, if its sources are here."""
        sources = [w for w in words if w.endswith(".c")]
        if shutil.which("cc") is None or not all((self.cwd / s).exists() for s in sources):
            return
        done = subprocess.run(
            ["bash", "-c", line], cwd=self.cwd, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"{b.where}: `{line}` failed:\n{done.stdout}{done.stderr}"
        self.ran.append(f"{b.where}: {line}")

    def transcript(self, b: Block, numbers: str) -> None:
        steps: list[tuple[str, list[str]]] = []
        for line in b.text.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
        for command, shown in steps:
            printed = self.shell_command(b, command)
            check_output(f"{b.where}: $ {command}", "\n".join(shown), printed, numbers)
            self.ran.append(f"{b.where}: $ {command}")

    def shell_command(self, b: Block, command: str) -> str:
        words = shlex.split(command)
        keep_stdout = True
        if words[-2:] == [">", "/dev/null"]:
            words, keep_stdout = words[:-2], False
        if words == ["echo", "$?"]:
            return f"{self.status}\n"
        if words[0] == "ls" and len(words) == 2:
            return "".join(f"{name}\n" for name in sorted(os.listdir(self.cwd / words[1])))
        args = cli_args(words)
        assert args is not None, f"{b.where}: no rule to run `{command}` in a transcript"
        self.status, printed = run_cli(args, keep_stdout)
        return printed


def prepare(cwd: Path) -> None:
    """The working directory every document starts in (module docstring)."""
    shutil.copytree(ROOT / "samples", cwd / "samples", ignore=shutil.ignore_patterns("__pycache__"))
    rng = np.random.default_rng(0)
    np.save(cwd / "x.npy", rng.standard_normal((256, 784)).astype(np.float32))
    np.savez(cwd / "data.npz", x=rng.standard_normal((2, 256, 784)).astype(np.float32))
    with np.load(ROOT / "samples" / "digits" / "digits_data.npz") as digits:
        np.savez(cwd / "calib.npz", x=digits["x_calib"])


@pytest.fixture
def session_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from passes.base import REGISTRY

    registered = dict(REGISTRY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "passes"))  # `passcheck`, for docs/passes.md
    prepare(tmp_path)
    names: list[str] = []

    def start(doc: Path) -> Session:
        name = "doc_" + re.sub(r"\W", "_", doc.stem)
        module = types.ModuleType(name)
        sys.modules[name] = module  # dataclasses look their module up while being created
        names.append(name)
        return Session(doc, tmp_path, module)

    yield start
    for name in names:
        sys.modules.pop(name, None)
    REGISTRY.clear()
    REGISTRY.update(registered)


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_document_runs(doc: Path, session_for: Any) -> None:
    session = session_for(doc)
    for b in blocks(doc):
        session.run(b)


# --- numbers in prose and tables --------------------------------------------------------------


def doc_text(name: str) -> str:
    return (ROOT / "docs" / name).read_text()


def quoted(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    assert m, f"the document no longer says {pattern!r}: update this test with it"
    return m.group(1)


def test_tpu_numbers() -> None:
    """docs/tpu.md: the peak and ridge of tpu-v1 (arithmetic on the preset), the instruction
    count of the MLP listing, and the simulated column of "What it shows" (the simulator is
    deterministic: equal to the digits shown)."""
    from runtime.tpu.asm import assemble
    from runtime.tpu.config import preset

    text = doc_text("tpu.md")
    v1 = preset("tpu-v1")
    assert quoted(r"\(([\d.]+) TOPS for `tpu-v1`\)", text) == f"{v1.peak_ops / 1e12:.1f}"
    assert quoted(r"\((\d+) for `tpu-v1`, the paper's 1350\)", text) == f"{v1.ridge:.0f}"
    listing = assemble((ROOT / "docs" / "tpu-mlp.tasm").read_text(), "tpu-mlp.tasm")
    assert quoted(r"quantized MLP is (\d+) instructions", text) == str(len(listing))

    lstm = {chip: f"{lstm1_layer_us(chip):.1f}" for chip in ("tpu-v1", "tpu-v1:rows=512,cols=512")}
    assert quoted(r"256x256 array \| ([\d.]+) us per layer", text) == lstm["tpu-v1"]
    assert (
        quoted(r"512x512 array \| ([\d.]+) us per layer", text) == lstm["tpu-v1:rows=512,cols=512"]
    )
    native, compat = gemm_512_utilization()
    assert quoted(r"\| ([\d.]+)% array utilization", text) == f"{100 * native:.1f}"
    assert quoted(r"serialized model: ([\d.]+)%", text) == f"{100 * compat:.1f}"

    import json

    cases = json.loads((ROOT / "tests" / "tpu" / "data" / "scalesim.json").read_text())["cases"]
    gemms = sum("gemm" in c for c in cases)
    convs = sum("conv" in c for c in cases)
    assert quoted(r"equal to the cycle on (\d+ GEMMs and \d+ convolutions)", text) == (
        f"{gemms} GEMMs and {convs} convolutions"
    )


def lstm1_layer_us(chip: str) -> float:
    """tests/tpu/test_paper.py's LSTM1 layer: 600x600 at batch 96, three chained layers."""
    from codegen.tpu.kernels import Epilogue
    from runtime.tpu.config import preset
    from tests.tpu.helpers import chain_program, layer_starts

    rng = np.random.default_rng(0)
    weights = [(rng.integers(-128, 128, (600, 600)).astype(np.int8), Epilogue()) for _ in range(3)]
    program = chain_program(preset(chip), 96, weights)
    _, result = program.run([rng.integers(-128, 128, (96, 600)).astype(np.int8)])
    per_layer = np.diff(layer_starts(result, 3)) / preset(chip).clock_hz * 1e6
    assert np.ptp(per_layer) == 0, per_layer  # the steady state: every layer alike
    return float(per_layer[0])


def gemm_512_utilization() -> tuple[float, float]:
    """tests/tpu/test_kernels.py's 512-cube int8 GEMM on 128x128 with free memory: the array
    utilization of the native and the serialized (compat) timing."""
    from codegen.tpu.kernels import Epilogue
    from codegen.tpu.lower import gemm_program
    from runtime.tpu.config import preset

    chip = preset("tpu-v2-core:multiplier=int8,weight_bandwidth=inf,host_bandwidth=inf")
    rng = np.random.default_rng(0)
    x, w = (rng.integers(-128, 128, (512, 512)).astype(np.int8) for _ in range(2))
    program = gemm_program(chip, (512, 512), w, Epilogue())
    _, native = program.run([x], "native")
    _, compat = program.run([x], "compat")
    return native.stats.utilization, compat.stats.utilization


def digits_script() -> types.ModuleType:
    import importlib.util

    path = ROOT / "samples" / "digits" / "run.py"
    spec = importlib.util.spec_from_file_location("doc_digits_run", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


NOISE_ROWS = {"float32 (cpu)"}  # rounding noise: the document gives it as an example


def test_digits_accuracy_table_and_prose() -> None:
    """docs/quantization.md's accuracy table is what samples/digits/run.py measures: top-1 and
    agreement exactly, the error and SQNR within APPROX (they depend on float rounding); a row
    "name (a, b)" stands for run.py's rows of each backend. The prose quotes the table."""
    run = digits_script()
    module, data = run.load()
    rows = {r.name: r for r in run.measure(module, data, run.default_variants(data["x_calib"]), 0)}
    text = doc_text("quantization.md")
    section = text[text.index("## Accuracy on a real model") :]
    table = [line for line in section.splitlines() if line.startswith("| ")][2:]
    assert len(table) >= 8
    shown: dict[str, list[str]] = {}
    for line in table:
        name, *cells = (c.strip() for c in line.strip("|").split("|"))
        for row in run_rows(name, rows):
            shown[row] = cells
            got = run.cells(rows[row])
            assert cells[:2] == got[1:3], f"{name}: {cells[:2]} != run.py's {got[1:3]}"
            if row in NOISE_ROWS:
                assert rows[row].sqnr_db > 100
                continue
            for want, have in ((cells[2], rows[row].logits_error), (cells[3], rows[row].sqnr_db)):
                close = math.isclose(have, float(want), rel_tol=APPROX, abs_tol=1e-12)
                assert close, f"{name}: {have} is not the shown {want}"
    missing = sorted(set(rows) - set(shown))
    assert not missing, f"run.py rows the table does not show: {missing}"

    rise = re.search(r"SQNR rises from ([\d.]+) to ([\d.]+) dB", section)
    assert rise, "the prose no longer compares the two minmax rows"
    assert rise.groups() == (shown["int8 minmax"][3], shown["int8 asymmetric minmax"][3])

    from compiler.quantization import batches, calibrate

    fn = module.entry_function
    bounds = {}
    for observer in ("minmax", "kl"):
        observed = calibrate(fn, batches(fn, {"x": data["x_calib"]}), observer)
        bounds[observer] = {n.name: obs.bound() for n, obs in observed.items()}
    for name in ("h1", "h2"):
        quote = quoted(rf"`%{name}` ([\d.]+ to [\d.]+)", section)
        assert quote == f"{bounds['minmax'][name]:.1f} to {bounds['kl'][name]:.1f}"


def run_rows(name: str, rows: dict[str, Any]) -> list[str]:
    """The rows of run.py that the table's row `name` stands for."""
    m = re.fullmatch(r"(.*?) \((.*)\)", name)
    if m is None:
        return [name]
    base, labels = m.group(1), [label.strip() for label in m.group(2).split(",")]
    found = []
    for label in labels:
        label = label.removeprefix("simulated ")
        candidates = [f"{base} ({label})"] + ([base] if label == "interp" else [])
        match = [c for c in candidates if c in rows]
        assert match, f"table row {name!r}: run.py has no row for {label!r}"
        found.append(match[0])
    return found


def test_tpu_preset_table() -> None:
    """docs/tpu.md's table of chips is runtime/tpu/config.py's presets."""
    from runtime.tpu.config import MiB, preset

    text = doc_text("tpu.md")
    section = text[text.index("## The chip") : text.index("Any field can be overridden")]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) >= 3
    for line in rows:
        name, *cells = (c.strip() for c in line.strip("|").split("|"))
        for chip in re.findall(r"`([^`]+)`", name):
            c = preset(chip)
            acc = "int32" if c.multiplier == "int8" else "f32"
            expected = [
                f"{c.rows} x {c.cols}",
                f"{c.multiplier} / {acc}",
                f"{c.clock_hz / 1e6:g} MHz",
                f"{c.unified_buffer_bytes // MiB} MiB",
                f"{c.accumulator_rows}",
                f"{c.weight_fifo_tiles} tiles",
                f"{c.weight_bandwidth / 1e9:g} GB/s",
                f"{c.host_bandwidth / 1e9:g} GB/s",
            ]
            for want, cell in zip(expected, cells, strict=True):
                assert want in cell, f"docs/tpu.md, {chip}: {cell!r} should say {want!r}"


def test_cpu_numbers() -> None:
    """docs/cpu.md: the caches assumed for a named level are codegen/cpu_caps.py's."""
    from codegen.cpu_caps import Caches

    text = " ".join(doc_text("cpu.md").split())
    c = Caches()
    quote = quoted(r"a small core's (\d+ KiB / \d+ KiB / \d+ MiB) for a named level", text)
    assert quote == f"{c.l1d >> 10} KiB / {c.l2 >> 10} KiB / {c.l3 >> 20} MiB"
