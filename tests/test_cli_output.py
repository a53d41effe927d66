"""What the CLI says and writes (issue 16, items 12, 16, 17 and 18): advice for a graph the
int8 TPU refuses, non-graph files named for what they are, printed code without megabytes of
weights, and the bisect, TPU and pass reports."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest

from compiler.bisect import bisect, write_bad_step
from compiler.cli import main
from compiler.driver import PipelineOptions, optimize
from compiler.elide import ELIDE_BYTES, elide_constants
from compiler.quantization import quantize
from compiler.report import render_html_report
from compiler.targets import TargetOptions, prepare
from ir.builder import make_node
from ir.diagnostics import TesselError
from ir.files import write_text_atomic
from ir.graph import Function
from ir.ops import Op
from ir.parser import parse_file, parse_module
from ir.printer import WeightSink, print_module
from passes import PassContext, PassManager, parse_pipeline
from passes.base import Pass
from passes.manager import Instrument
from passes.rewrite import rewrite_function
from runtime.inputs import random_inputs


def run_cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


LAYER = """\
func @main(%x: f32[4,16]) -> f32[4,8] {
  %w = constant "w.npy" : f32[16,8]
  %y = matmul(%x, %w)
  %r = relu(%y)
  return %r
}
"""


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "w.npy", rng.standard_normal((16, 8)).astype(np.float32))
    path = tmp_path / "layer.graph"
    path.write_text(LAYER)
    return path


def _quantized(path: Path, activations: str, out: Path) -> Path:
    module = parse_file(path)
    calibration = [random_inputs(module.entry_function, seed) for seed in range(2)]
    q = quantize(module, calibration, activations=activations)
    weights = WeightSink(out.with_suffix(".npz"))
    text = print_module(q, base_dir=out.parent, weights=weights)
    weights.save()
    write_text_atomic(out, text)
    return out


# --- item 12: the int8 TPU and an asymmetric (u8) graph ---------------------------------------


def test_asymmetric_graph_on_the_int8_tpu_says_which_activations_it_needs(layer, tmp_path):
    u8 = parse_file(_quantized(layer, "asymmetric", tmp_path / "layer.u8.graph"))
    placed, ctx = optimize(u8, PipelineOptions(target="tpu"))
    with pytest.raises(TesselError) as info:
        prepare("tpu", placed, None, TargetOptions(), ctx.analyses)
    message = info.value.message
    assert "Quantize it first" not in message  # it is quantized already
    assert "quantized with asymmetric u8 activations" in message
    assert "the int8 chip takes symmetric i8 activations (zero point 0)" in message
    assert "tessel quantize --activations symmetric" in message
    assert "run the float graph on the bf16 chip tpu-v2-core" in message


def test_float_graph_on_the_int8_tpu_is_still_told_to_quantize(layer):
    placed, ctx = optimize(parse_file(layer), PipelineOptions(target="tpu"))
    with pytest.raises(TesselError, match=r"Quantize it first \(tessel quantize"):
        prepare("tpu", placed, None, TargetOptions(), ctx.analyses)


# --- item 16: files that are not graph files ---------------------------------------------------


def _npz_bytes(tmp_path: Path) -> bytes:
    np.savez(tmp_path / "scratch.npz", w=np.zeros(3, np.float32))
    return (tmp_path / "scratch.npz").read_bytes()


NOT_GRAPHS = {
    # name: (file name, contents or a function of tmp_path, the message after "is not a graph
    # file: it looks like", the start of the note or None)
    "gzip-named-onnx": (
        "model.onnx",
        gzip.compress(LAYER.encode()),
        "gzip-compressed data",
        "tessel cannot import ONNX models yet",
    ),
    "onnx-protobuf": (
        "model.onnx",
        b"\x08\x07\x12\x07pytorch\x1a\x032.1:\xff\x01\x0a\x05",
        "an ONNX model (protobuf)",
        "tessel cannot import ONNX models yet",
    ),
    "onnx-protobuf-any-name": (
        "model.bin",
        b"\x08\x08\x12\x07pytorch\x1a\x032.1:\xff\x01\x0a\x05",
        "an ONNX model (protobuf)",
        "tessel cannot import ONNX models yet",
    ),
    "npz": ("weights.npz", _npz_bytes, "a NumPy .npz archive", "arrays are weights"),
    "npy": (
        "x.npy",
        b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', ",
        "a NumPy .npy array",
        "arrays are",
    ),
    "elf": (
        "a.out",
        b"\x7fELF\x02\x01\x01" + bytes(64),
        "an ELF binary (a program or shared library)",
        "a library built by",
    ),
    "aot-json": (
        "mlp.json",
        b'{"format": "tessel-aot", "name": "mlp"}',
        "a compiled library's description (from `tessel compile`)",
        "run it with `tessel run NAME.json`",
    ),
    "tpu-json": (
        "mlp.tpu.json",
        b'{\n "format": "tessel-tpu-1",\n "preset": "tpu-v1"}',
        "a compiled TPU program (from `tessel compile --target tpu`)",
        "run it with `tessel tpu-sim FILE`",
    ),
    "png": ("plot.png", b"\x89PNG\r\n\x1a\n" + bytes(32), "a PNG image", None),
    "pickle": (
        "model.pkl",
        b"\x80\x04\x95\x10\x00",
        "a Python pickle",
        "tessel does not load pickles",
    ),
    "binary": ("blob.dat", bytes(range(256)) * 4, "binary data, not text", None),
}


@pytest.mark.parametrize(
    ("case", "verb"),
    [
        (case, verb)
        for case, (name, *_) in NOT_GRAPHS.items()
        for verb in ("check", "run", "opt")
        if not (verb == "run" and name.endswith(".json"))  # runs a library: the next test
    ],
)
def test_a_file_that_is_not_a_graph_is_named_for_what_it_is(case, verb, tmp_path, capsys):
    name, contents, looks_like, note = NOT_GRAPHS[case]
    path = tmp_path / name
    path.write_bytes(contents(tmp_path) if callable(contents) else contents)
    code, out, err = run_cli(capsys, verb, path)
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == f"error: {path} is not a graph file: it looks like {looks_like}"
    if note is None:
        assert len(lines) == 1
    else:
        assert lines[1].startswith(f"note: {note}")
    assert out == ""


def test_running_a_tpu_program_points_to_tpu_sim(tmp_path, capsys):
    path = tmp_path / "mlp.tpu.json"
    path.write_text('{"format": "tessel-tpu-1", "preset": "tpu-v1", "stages": []}')
    code, _, err = run_cli(capsys, "run", path)
    assert code == 1
    assert err == (
        f"error: {path} is a compiled TPU program: run it with `tessel tpu-sim {path}`\n"
    )


def test_a_stray_byte_in_a_graph_file_is_located(tmp_path, capsys):
    path = tmp_path / "latin1.graph"
    path.write_bytes(LAYER.replace("%r = relu(%y)", "%r = relu(%y) # caf\xe9").encode("latin-1"))
    code, _, err = run_cli(capsys, "check", path)
    assert code == 1
    assert err.splitlines() == [
        f"{path}:4:22: error: byte 0xe9 is not UTF-8 text (graph files are UTF-8)",
        "    %r = relu(%y) # caf\N{REPLACEMENT CHARACTER}",
        "  " + " " * 21 + "^",
    ]


# --- item 17: printed code without the weights ------------------------------------------------


def test_elide_llvm_string_constants():
    big = "".join(f"\\{b:02X}" for b in range(200)) + "\\\\"  # 201 bytes, one a backslash
    small = "\\00" * ELIDE_BYTES
    text = (
        f'@"c0" = private constant [201 x i8] c"{big}", align 64\n'
        f'@"c1" = private constant [{ELIDE_BYTES} x i8] c"{small}", align 64\n'
        "define void @f() {\n  ret void\n}\n"
    )
    out = elide_constants(text, "ll")
    lines = out.text.splitlines()
    assert lines[0] == (
        '@"c0" = private constant [201 x i8] c"\\00\\01\\02\\03\\04\\05\\06\\07\\08\\09\\0A\\0B'
        '\\0C\\0D\\0E\\0F...", align 64 ; ... 201 bytes elided'
    )
    assert lines[1:] == text.splitlines()[1:]  # a small constant and the code stay as they are
    assert (out.bytes, out.constants) == (201, 1)
    assert elide_constants(text, "opt.ll").text == out.text


def test_elide_assembler_strings_and_data_runs():
    ascii_body = "\\232\\205 =" * 60  # 4 bytes per repeat: 240 bytes
    data = "".join(f"\t.long\t{i}\n" for i in range(100))  # 400 bytes
    text = (
        "f:\n\tret\n"
        f'.Lc0:\n\t.ascii\t"{ascii_body}"\n\t.size\t.Lc0, 240\n'
        '.Lc1:\n\t.ascii\t"short"\n'
        f".Lc2:\n{data}\t.size\t.Lc2, 400\n"
    )
    out = elide_constants(text, "s")
    lines = out.text.splitlines()
    assert (
        '\t.ascii\t"\\232\\205 =\\232\\205 =\\232\\205 =\\232\\205 =..."  # ... 240 bytes elided'
        in lines
    )
    assert '\t.ascii\t"short"' in lines
    assert lines.count("\t.long\t0") == 1
    assert "\t.long\t7" in lines
    assert "\t.long\t8" not in lines
    assert "\t# ... 92 lines, 368 bytes elided" in lines
    assert (out.bytes, out.constants) == (240 + 368, 2)
    assert "\tret" in lines
    assert "\t.size\t.Lc2, 400" in lines


@pytest.fixture
def weighty(tmp_path: Path) -> Path:
    """A graph with 16 KiB of weights."""
    np.save(tmp_path / "big.npy", np.arange(64 * 64, dtype=np.float32).reshape(64, 64))
    path = tmp_path / "weighty.graph"
    path.write_text(
        "func @main(%x: f32[2,64]) -> f32[2,64] {\n"
        '  %w = constant "big.npy" : f32[64,64]\n'
        "  %y = matmul(%x, %w)\n"
        "  return %y\n"
        "}\n"
    )
    return path


def _longest_line(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_printed_llvm_elides_the_weights_and_files_keep_them(weighty, tmp_path, capsys):
    code, out, err = run_cli(capsys, "opt", weighty, "--emit", "llvm")
    assert code == 0, err
    assert "bytes elided" in out
    assert _longest_line(out) < 1000
    assert re.search(r"^note: \d+ bytes of constant data elided from the printed code; "
                     r"--dump-dir DIR or -o FILE writes it whole$", err, re.MULTILINE)  # fmt: skip
    whole = tmp_path / "whole.ll"
    code, out, err = run_cli(capsys, "opt", weighty, "--emit", "llvm", "-o", whole)
    assert code == 0, err
    assert out == ""
    assert "elided" not in err
    text = whole.read_text()
    assert "elided" not in text
    assert _longest_line(text) > 3 * 64 * 64 * 4  # the 16 KiB of weights, as \XX escapes


def test_printed_assembly_from_run_is_elided_and_the_dump_is_whole(weighty, tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", weighty, "--emit", "asm")
    assert code == 0, err
    assert "bytes elided" in err
    assert _longest_line(err) < 1000
    code, _, err = run_cli(capsys, "run", weighty, "--emit", "asm", "--dump-dir", tmp_path / "d")
    assert code == 0, err
    dumped = (tmp_path / "d" / "weighty" / "kernels.s").read_text()
    assert "elided" not in dumped
    assert "elided" not in err


def test_emit_of_code_a_backend_does_not_make_is_an_error(tmp_path, layer, capsys):
    int8 = _quantized(layer, "symmetric", tmp_path / "layer.int8.graph")
    code, _, err = run_cli(capsys, "run", int8, "--target", "tpu", "--tpu", "tiny-8x8",
                           "--emit", "asm")  # fmt: skip
    assert code == 1
    assert err.startswith("error: --emit asm: this backend does not generate it (it generates ")


# --- item 18: reports -------------------------------------------------------------------------


class _Square(Pass):
    """Test-only: exp(x) becomes x * x (a wrong rewrite that keeps the types)."""

    name = "test-square"

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        def wrong(node):
            if node.op is Op.EXP:
                return make_node(Op.MUL, (node.srcs[0], node.srcs[0]), name=node.name)
            return None

        return rewrite_function(fn, wrong)


WIDE = "x" * 300  # a long name: lines far wider than any window


def test_bisect_page_has_a_title_the_outputs_that_differ_and_wraps(tmp_path):
    module = parse_module(
        f"func @main(%x: f32[8], %y: f32[3]) -> (f32[8], f32[3]) {{\n"
        f"  %{WIDE} = exp(%x)\n"
        "  %same = neg(%y)\n"
        f"  return %{WIDE}, %same\n"
        "}\n"
    )
    x = np.linspace(-2, 2, 8, dtype=np.float32)
    y = np.ones(3, np.float32)
    _, bad = bisect(module, [*parse_pipeline("cse"), _Square()], [x, y])
    assert bad is not None
    assert [d.index for d in bad.differences] == [0]  # only the first output differs
    d = bad.differences[0]
    assert d.name == WIDE
    assert (d.count, d.size) == (8, 8)
    paths = write_bad_step(tmp_path, bad)
    page = (tmp_path / "diff.html").read_text()
    assert "<title>tessel bisect: pass #2 &#x27;test-square&#x27; changes the outputs</title>" in (
        page
    )
    assert f"output 0 (%{WIDE})" in page
    assert "8 of 8 (100%)" in page
    want = np.max(np.abs(np.exp(x.astype(np.float64)) - (x * x).astype(np.float64)))
    assert f"{float(want):.6g}" in page
    assert "rtol=1e-05, atol=1e-06" in page
    for p in paths[:2]:
        assert f'href="{p.name}"' in page
    assert "white-space: pre-wrap" in page  # long lines wrap instead of running off the page
    assert "wrapcolumn" not in page
    assert "1400" not in page


def test_pass_instances_keep_their_own_remarks():
    module = parse_module(
        "func @main(%x: f32[2]) -> f32[2] {\n  %a = neg(%x)\n  %b = neg(%a)\n  return %b\n}\n"
    )
    records = []

    class Collect(Instrument):
        def after_pass(self, record, before, ctx):
            records.append(record)

    ctx = PassContext()
    PassManager(parse_pipeline("canonicalize,canonicalize"), [Collect()]).run(module, ctx)
    first, second = records
    assert first.remarks == (("canonicalize", "involution: neg -> parameter"),)
    assert second.remarks == ()  # the second run changed nothing and said nothing
    assert ctx.remarks["canonicalize"] == ["involution: neg -> parameter"]
    text = render_html_report(records, initial=module, remarks=ctx.remarks)
    assert text.count('href="#remarks-step-1"') == 1
    assert 'href="#remarks-step-2"' not in text
    assert 'id="remarks-canonicalize"' not in text  # every remark has its step
    second_step = text[text.index('id="step-2"') :]
    assert "involution" not in second_step[: second_step.find("</details>")]


def test_tpu_report_has_an_index_and_numbers_stages_as_compile_names_files(layer, tmp_path, capsys):
    int8 = _quantized(layer, "symmetric", tmp_path / "layer.int8.graph")
    chip = ["--tpu", "tiny-8x8"]
    code, _, err = run_cli(
        capsys, "compile", int8, "--target", "tpu", *chip, "-o", tmp_path / "pkg"
    )
    assert code == 0, err
    tbins = sorted(p.name for p in (tmp_path / "pkg").glob("*.tbin"))
    compiled = [int(re.search(r"stage(\d+)", n).group(1)) for n in tbins]
    assert compiled
    report = tmp_path / "rep"
    code, _, err = run_cli(capsys, "run", int8, "--target", "tpu", *chip, "--tpu-report", report)
    assert code == 0, err
    assert f"(start at {report / 'index.html'})" in err
    stage_dirs = sorted(int(p.name[5:]) for p in report.glob("stage*"))
    assert stage_dirs == compiled  # the chip's stage has one number everywhere
    stats = json.loads((report / "stats.json").read_text())
    assert [s["stage"] for s in stats["stages"]] == compiled
    page = (report / "index.html").read_text()
    assert "<title>TPU run on tiny-8x8 (native timing)</title>" in page
    links = re.findall(r'(?:href|src)="([^"]+)"', page)
    assert {"report.txt", "stats.json", "roofline.svg"} <= set(links)
    for k in compiled:
        for name in ("report.txt", "stats.json", "trace.json", "utilization.svg"):
            assert f"stage{k}/{name}" in links
    for link in links:
        assert (report / link).is_file(), link  # every link leads to a file of the folder
    assert not re.search(r"https?://", page)
    code, _, err = run_cli(capsys, "tpu-sim", tmp_path / "pkg" / "layer_int8.tpu.json",
                           "--tpu-report", tmp_path / "rep2")  # fmt: skip
    assert code == 0, err
    assert sorted(int(p.name[5:]) for p in (tmp_path / "rep2").glob("stage*")) == compiled
