"""Pass-by-pass dumps, IR printing, timing, memory reports and bisect, through the CLI."""

from __future__ import annotations

import re

import numpy as np
import pytest

from codegen.cpu_caps import host_caps
from compiler.bisect import bisect, compare, side_by_side
from compiler.cli import main
from compiler.targets import default_pipeline
from ir.builder import make_node
from ir.graph import Function
from ir.ops import Op
from ir.parser import parse_file, parse_module
from passes import REGISTRY, PassContext, parse_pipeline
from passes.base import Pass
from passes.rewrite import rewrite_function
from runtime.inputs import random_inputs
from runtime.interp import run_module

SAMPLES = ["mlp", "cnn", "attention"]


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_dump_is_a_rerunnable_graph_with_the_same_outputs(
    sample, samples_dir, tmp_path, capsys
):
    code, _, err = cli(capsys, "opt", samples_dir / f"{sample}.graph", "--dump-dir", tmp_path)
    assert code == 0, err
    folder = tmp_path / sample
    dumps = sorted(folder.glob("*.graph"))
    n_passes = len(parse_pipeline(default_pipeline("cpu")))
    assert len(dumps) == n_passes + 1
    assert dumps[0].name == "000-input.graph"
    assert [int(p.name[:3]) for p in dumps] == list(range(n_passes + 1))
    original = parse_file(samples_dir / f"{sample}.graph")
    args = random_inputs(original.entry_function, seed=1)
    expected = run_module(original, args)
    for dump in dumps:
        got = run_module(parse_file(dump), args)
        for e, g in zip(expected, got, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6, err_msg=dump.name)
    fused = (folder / f"{dumps[-2].name}").read_text()
    assert "fusion(" in fused
    html = (folder / "index.html").read_text()
    assert "fuse" in html
    assert "buffer-assign" in html
    assert "<svg" in html
    assert not re.search(r"https?://", html.replace("http://www.w3.org/2000/svg", ""))


def test_unchanged_passes_are_marked_or_skipped(samples_dir, tmp_path, capsys):
    sample = samples_dir / "mlp.graph"
    cli(capsys, "opt", sample, "--dump-dir", tmp_path / "a", "-p", "cse,decompose")
    names = sorted(p.name for p in (tmp_path / "a" / "mlp").glob("*.graph"))
    assert names == ["000-input.graph", "001-cse-unchanged.graph", "002-decompose.graph"]
    cli(
        capsys,
        "opt",
        sample,
        "--dump-dir",
        tmp_path / "b",
        "-p",
        "cse,decompose",
        "--dump-skip-unchanged",
    )
    names = sorted(p.name for p in (tmp_path / "b" / "mlp").glob("*.graph"))
    assert names == ["000-input.graph", "002-decompose.graph"]
    cli(
        capsys,
        "opt",
        sample,
        "--dump-dir",
        tmp_path / "c",
        "-p",
        "cse,decompose,dce",
        "--dump-filter",
        "^dec",
    )
    names = sorted(p.name for p in (tmp_path / "c" / "mlp").glob("*.graph"))
    assert names == ["000-input.graph", "002-decompose.graph"]


def test_emit_dot_writes_one_dot_per_stage(samples_dir, tmp_path, capsys):
    cli(
        capsys,
        "opt",
        samples_dir / "cnn.graph",
        "--dump-dir",
        tmp_path,
        "-p",
        "decompose",
        "--emit",
        "dot",
    )
    dots = sorted(p.name for p in (tmp_path / "cnn").glob("*.dot"))
    assert dots == ["000-input.dot", "001-decompose.dot"]
    text = (tmp_path / "cnn" / dots[0]).read_text()
    assert text.startswith("digraph")
    assert text.count("{") == text.count("}")


def test_print_ir_flags(tmp_path, capsys):
    path = tmp_path / "g.graph"
    path.write_text(
        "func @main(%x: f32[3]) -> f32[3] {\n  %a = neg(%x)\n  %b = neg(%a)\n  return %b\n}\n"
    )
    _, _, err = cli(capsys, "opt", path, "-p", "canonicalize,dce,cse", "--print-ir-after-all")
    assert err.count("# ===== IR after") == 3
    assert "# ===== IR after cse (pass 3, no change) =====" in err
    _, _, err = cli(capsys, "opt", path, "-p", "canonicalize,dce,cse", "--print-ir-after-change")
    assert err.count("# ===== IR after") == 2
    _, _, err = cli(
        capsys,
        "opt",
        path,
        "-p",
        "canonicalize,dce",
        "--print-ir-before",
        "dce",
        "--print-ir-after",
        "dce",
    )
    blocks = err.split("# ===== ")[1:]
    assert [b.splitlines()[0] for b in blocks] == [
        "IR before dce (pass 2) =====",
        "IR after dce (pass 2) =====",
    ]
    # each printed block is itself a graph file
    after = blocks[1].split("=====\n", 1)[1]
    fn = parse_module(after).entry_function
    assert fn.results == fn.params


def test_pass_timing_and_memory_report(samples_dir, capsys):
    code, _, err = cli(capsys, "opt", samples_dir / "mlp.graph", "--pass-timing", "--report-memory")
    assert code == 0
    rows = [line for line in err.splitlines() if re.match(r"\s+\d+\s+\S", line)]
    assert len(rows) == len(parse_pipeline(default_pipeline("cpu")))
    assert "fuse" in err
    assert "total" in err
    assert "peak live" in err
    assert "arena" in err


def test_explain_fusion(samples_dir, capsys):
    _, _, err = cli(capsys, "opt", samples_dir / "attention.graph", "--explain-fusion")
    assert "not fused: @main: %heads (dot_general) -> %heads_t (transpose)" in err
    assert "output fusion of" in err


def test_opt_output_file_round_trips(samples_dir, tmp_path, capsys):
    out = tmp_path / "mlp.opt.graph"
    code, _, err = cli(capsys, "opt", samples_dir / "mlp.graph", "-o", out)
    assert code == 0, err
    original = parse_file(samples_dir / "mlp.graph")
    args = random_inputs(original.entry_function)
    np.testing.assert_array_equal(
        run_module(parse_file(out), args)[0], run_module(original, args)[0]
    )


def test_bad_pipeline_is_a_located_error(samples_dir, capsys):
    code, _, err = cli(capsys, "run", samples_dir / "mlp.graph", "-p", "cse,fusee")
    assert code == 1
    assert err.splitlines()[0] == (
        "<pipeline>:1:5: error: unknown pass 'fusee' (did you mean 'fuse'?); "
        "`tessel passes` lists them"
    )


def test_passes_verb_lists_every_pass(capsys):
    code, out, _ = cli(capsys, "passes")
    assert code == 0
    for name, cls in REGISTRY.items():
        if not name.startswith("test-"):
            assert f"{name}" in out
            assert cls.summary() in out
    assert "max-ops=32" in out
    host = host_caps()
    assert f"cpu     {host.summary()}" in out
    assert f"L2 {host.caches.l2 >> 10} KiB" in out


class _WrongExp(Pass):
    """Test-only: rewrites exp(x) into x * x, keeping types (a plausible-looking wrong rewrite)."""

    name = "test-wrong-exp"

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        def wrong(node):
            if node.op is Op.EXP:
                x = node.srcs[0]
                return make_node(Op.MUL, (x, x), name=node.name)
            return None

        return rewrite_function(fn, wrong)


def test_bisect_finds_the_first_wrong_pass(samples_dir):
    module = parse_file(samples_dir / "mlp.graph")
    passes = [*parse_pipeline("canonicalize,decompose,cse"), _WrongExp(), *parse_pipeline("dce")]
    steps, bad = bisect(module, passes, random_inputs(module.entry_function))
    assert bad is not None
    assert bad.index == 4
    assert bad.spec == "test-wrong-exp"
    assert [s.mismatch is None for s in steps] == [True, True, True, False]
    assert "elements differ" in bad.mismatch


def test_bisect_cli_on_a_correct_pipeline(samples_dir, capsys):
    code, out, _ = cli(capsys, "bisect", samples_dir / "cnn.graph")
    assert code == 0
    assert "keep the outputs within" in out


def test_compare_and_side_by_side():
    a = np.array([1.0, np.nan, 3.0], np.float32)
    assert compare([a], [a.copy()], 1e-6, 0) is None
    message = compare([a], [np.array([1.0, np.nan, 3.5], np.float32)], 1e-6, 0)
    assert message == "output 0: 1 of 3 elements differ; first at [2]: expected 3.0, got 3.5"
    assert compare([np.arange(3)], [np.arange(3)[::-1].copy()], 0, 0).startswith("output 0: 2 of 3")
    text = side_by_side("a\nb\nc", "a\nB\nc", width=23)
    # columns of (23 - 3) // 2 = 10 characters, then a marker column: ' ' same, '|' changed
    assert text.splitlines() == [
        "a" + " " * 9 + "   a",
        "b" + " " * 9 + " | B",
        "c" + " " * 9 + "   c",
    ]
