"""The `tessel` command line: check and run, their outputs, and their handling of bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from compiler.cli import main
from compiler.summary import checksum
from ir.parser import parse_file
from ir.printer import print_module

GRAPH = """\
# two outputs, one of them integer
func @main(%x: f32[3,4], %k: i32[4]) -> (f32[3,4], i32[]) {
  %y = mul(%x, %x)
  %z = add(%y, 1.5)
  %total = reduce(%k) {kind = sum, axes = [0]}
  return %z, %total
}
"""

TWO_FUNCS = """\
func @double(%a: f32[2]) -> f32[2] {
  %b = add(%a, %a)
  return %b
}
entry func @neg(%a: f32[2]) -> f32[2] {
  %b = neg(%a)
  return %b
}
"""


@pytest.fixture
def graph(tmp_path: Path) -> Path:
    path = tmp_path / "g.graph"
    path.write_text(GRAPH)
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_prints_canonical_ir_that_reparses(graph, tmp_path, capsys):
    code, out, err = run_cli(capsys, "check", graph)
    assert code == 0, err
    assert out == print_module(parse_file(graph))
    again = tmp_path / "again.graph"
    again.write_text(out)
    assert run_cli(capsys, "check", again)[1] == out


def test_check_output_file_is_written_whole(graph, tmp_path, capsys):
    target = tmp_path / "sub"
    target.mkdir()
    code, _, _ = run_cli(capsys, "check", graph, "-o", target / "canon.graph")
    assert code == 0
    assert [p.name for p in target.iterdir()] == ["canon.graph"]
    assert parse_file(target / "canon.graph") == parse_file(graph)


def test_check_located_error_without_traceback(tmp_path, tessel):
    bad = tmp_path / "bad.graph"
    bad.write_text("func @main(%x: f32[2]) -> f32[2] {\n  %y = frobnicate(%x)\n  return %y\n}\n")
    proc = tessel("check", str(bad))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(f"{bad}:2:8: error: unknown op 'frobnicate'")
    assert lines[1] == "    %y = frobnicate(%x)"
    assert lines[2] == "  " + " " * 7 + "^"
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    code, out, err = run_cli(capsys, "check", tmp_path / "nope.graph")
    assert code == 1
    assert "cannot read" in err
    assert "nope.graph" in err
    assert out == ""


def expected_outputs(x: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x * x + np.float32(1.5), np.array(k.sum(), dtype=np.int32)


def test_run_summarizes_each_output_deterministically(graph, capsys):
    code, out, err = run_cli(capsys, "run", graph)
    assert code == 0, err
    assert "%z: f32[3,4]" in out
    assert "%total: i32[]" in out
    assert out.count("checksum") == 2
    assert run_cli(capsys, "run", graph)[1] == out  # same random inputs every time
    assert run_cli(capsys, "run", graph, "--seed", "7")[1] != out


def test_run_with_inputs_and_saved_outputs(graph, tmp_path, capsys):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    k = rng.integers(-100, 100, 4).astype(np.int32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "k.npy", k)
    out_dir = tmp_path / "out"
    code, out, err = run_cli(
        capsys, "run", graph, "--input", f"x={tmp_path / 'x.npy'}", "-i", f"k={tmp_path / 'k.npy'}",
        "--output", out_dir,
    )  # fmt: skip
    assert code == 0, err
    z, total = expected_outputs(x, k)
    saved_z, saved_total = np.load(out_dir / "z.npy"), np.load(out_dir / "total.npy")
    np.testing.assert_array_equal(saved_z, z)
    assert saved_z.dtype == np.float32
    np.testing.assert_array_equal(saved_total, total)
    assert sorted(p.name for p in out_dir.iterdir()) == ["total.npy", "z.npy"]
    assert checksum(z) in out


def test_run_inputs_from_npz(graph, tmp_path, capsys):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    k = np.array([1, 2, 3, 4], dtype=np.int32)
    np.savez(tmp_path / "in.npz", x=x, k=k)
    code, _, err = run_cli(capsys, "run", graph, "-i", tmp_path / "in.npz", "-o", tmp_path / "o")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "z.npy"), expected_outputs(x, k)[0])
    assert int(np.load(tmp_path / "o" / "total.npy")) == 10


def test_partial_inputs_get_random_rest_with_a_note(graph, tmp_path, capsys):
    np.save(tmp_path / "k.npy", np.zeros(4, np.int32))
    code, _out, err = run_cli(capsys, "run", graph, "-i", f"k={tmp_path / 'k.npy'}")
    assert code == 0
    assert "note: random values for %x" in err


@pytest.mark.parametrize(
    ("array", "name", "message"),
    [
        (np.zeros((4, 3), np.float32), "x", "argument 'x' has shape [4, 3], expected [3, 4]"),
        (np.zeros((3, 4), np.float64), "x", "argument 'x' has dtype f64, expected f32"),
        (np.zeros((3, 4), np.float32), "q", "@main has no parameter 'q' (parameters: x, k)"),
    ],
)
def test_wrong_inputs_are_rejected_clearly(graph, tmp_path, tessel, array, name, message):
    np.save(tmp_path / "a.npy", array)
    proc = tessel("run", str(graph), "--input", f"{name}={tmp_path / 'a.npy'}")
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("x", "--input 'x': expected NAME=FILE.npy or FILE.npz"),
        ("x=/nonexistent/x.npy", "cannot read input 'x' from /nonexistent/x.npy"),
    ],
)
def test_bad_input_specs(graph, capsys, spec, message):
    code, _, err = run_cli(capsys, "run", graph, "--input", spec)
    assert code == 1
    assert message in err


def test_pickled_input_is_refused(graph, tmp_path, capsys):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = run_cli(capsys, "run", graph, "-i", f"x={tmp_path / 'obj.npy'}")
    assert code == 1
    assert "cannot read input 'x'" in err


def test_entry_selection(tmp_path, capsys):
    path = tmp_path / "two.graph"
    path.write_text(TWO_FUNCS)
    x = np.array([1.0, -2.0], np.float32)
    np.save(tmp_path / "a.npy", x)
    _, _, err = run_cli(capsys, "run", path, "-i", f"a={tmp_path / 'a.npy'}", "-o", tmp_path / "n")
    np.testing.assert_array_equal(np.load(tmp_path / "n" / "b.npy"), -x)
    code, _, err = run_cli(
        capsys,
        "run",
        path,
        "--entry",
        "double",
        "-i",
        f"a={tmp_path / 'a.npy'}",
        "-o",
        tmp_path / "d",
    )
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "d" / "b.npy"), 2 * x)


def test_python_dash_m_and_console_script(graph, tessel):
    proc = tessel("run", str(graph))
    assert proc.returncode == 0, proc.stderr
    assert "%z: f32[3,4]" in proc.stdout
    script = Path(sys.executable).parent / "tessel"
    assert script.exists(), "the console script is installed with the package"
    import subprocess

    version = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("tessel ")


def test_unknown_entry(tmp_path, capsys):
    path = tmp_path / "two.graph"
    path.write_text(TWO_FUNCS)
    code, _, err = run_cli(capsys, "run", path, "--entry", "@triple")
    assert code == 1
    assert "--entry: no function @triple (functions: @double, @neg)" in err
