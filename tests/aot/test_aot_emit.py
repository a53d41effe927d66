"""`tessel compile`: every --emit kind, and errors that leave nothing behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import runtime
from ir.parser import parse_file
from runtime.interp import run_module

RTOL, ATOL = 1e-4, 1e-5
BROKEN = """func @main(%x: f32[2]) -> f32[2] {
  %y = add(%x, %x : f32[2]
  return %y
}
"""


def listing(folder):
    """Every path under `folder` (hidden ones too), relative, with its size."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


def test_every_emit_kind(builds):
    build = builds["cnn_all"]
    files = listing(build.folder)
    name = build.name
    want = {
        f"lib{name}.so",
        *(f"{name}.{ext}" for ext in ("o", "h", "c", "json", "graph", "dot", "ll", "opt.ll", "s")),
    }
    assert want <= set(files)
    assert all(files[f] > 0 for f in want)
    assert not any(f.startswith(".tessel-") for f in files)
    assert (build.folder / f"{name}.dot").read_text().startswith("digraph")
    asm = (build.folder / f"{name}.s").read_text()
    assert "\t.globl\t" in asm
    assert "\tret" in asm
    assert f"{name}_run" in asm


def test_emitted_llvm_parses(builds):
    llvm = pytest.importorskip("llvmlite.binding")
    build = builds["cnn_all"]
    for suffix in ("ll", "opt.ll"):
        module = llvm.parse_assembly((build.folder / f"{build.name}.{suffix}").read_text())
        module.verify()
        assert any(f.name == f"{build.name}_run" for f in module.functions)


def test_emitted_graph_reruns(builds, reference):
    """NAME.graph is the optimized module, a graph file the interpreter runs to the same
    numbers; the library from the same compile is there too and agrees."""
    build = builds["cnn_all"]
    inputs, want = reference(build.graph)
    got = run_module(parse_file(build.folder / f"{build.name}.graph"), inputs)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(runtime.load(build.library)(*inputs), want[0], rtol=RTOL, atol=ATOL)


def test_emitted_graph_in_existing_folder_refers_to_weights(tessel, tmp_path, samples_dir):
    """Into an existing folder the files are staged one level deeper: the weight file paths
    NAME.graph holds must be right where it ends up, and folded constants go to NAME.ir.npz."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(samples_dir / "mlp.npz", models)
    (models / "fold.graph").write_text(
        "func @main(%x: f32[4,512], %v: f32[4,10]) -> (f32[4,512], f32[4,10]) {\n"
        '  %w3 = constant "mlp.npz"["w3"] : f32[512,10]\n'
        '  %w2 = constant "mlp.npz"["w2"] : f32[512,512]\n'
        "  %u = matmul(%x, %w2) : f32[4,512]\n"
        "  %w = slice(%w3) {start = [0, 0], limit = [10, 10]} : f32[10,10]\n"
        "  %y = matmul(%v, %w) : f32[4,10]\n"
        "  return %u, %y\n"
        "}\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = tessel("compile", str(models / "fold.graph"), "-o", str(out), "--emit", "ir")
    assert proc.returncode == 0, proc.stderr
    assert set(listing(out)) == {"keep.txt", "fold.graph", "fold.ir.npz"}
    assert '"../models/mlp.npz"["w2"]' in (out / "fold.graph").read_text()
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(s).astype(np.float32) for s in ((4, 512), (4, 10))]
    want = run_module(parse_file(models / "fold.graph"), inputs)
    got = run_module(parse_file(out / "fold.graph"), inputs)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)


def test_emit_obj_links(builds, reference, c_driver, tmp_path):
    """--emit obj: no .so, but everything needed to link one (tessel's runtime routines too)."""
    build = builds["cnn_obj"]
    name = build.name
    files = set(listing(build.folder))
    assert {f"{name}.o", f"{name}.h", f"{name}.c", f"{name}.json"} <= files
    assert f"lib{name}.so" not in files
    assert (build.folder / f"{name}.o").read_bytes()[:4] == b"\x7fELF"
    objects = sorted(str(build.folder / f) for f in files if f.endswith(".o"))
    cc = shutil.which("cc") or "cc"
    link = subprocess.run(
        [cc, "-shared", "-fPIC", "-o", str(build.library), str(build.folder / f"{name}.c"),
         *objects, "-Wl,-Bsymbolic", "-Wl,--no-undefined"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert link.returncode == 0, link.stderr
    inputs, want = reference(build.graph)
    run = c_driver(build, inputs)
    assert run.proc.returncode == 0, run.proc.stderr
    np.testing.assert_allclose(run.outputs[0], want[0], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "args", [["--emit", "tpu-asm"], ["--emit", "tpu-bin"], ["--target", "tpu"]]
)
def test_a_float_graph_for_the_int8_tpu_is_refused(tessel, tmp_path, samples_dir, args):
    out = tmp_path / "out"
    proc = tessel("compile", str(samples_dir / "mlp.graph"), "-o", str(out), *args)
    assert proc.returncode == 1
    assert "Quantize it first" in proc.stderr  # tests/tpu compile quantized graphs
    assert "Traceback" not in proc.stderr
    assert listing(tmp_path) == {}


def test_syntax_error_leaves_nothing(tessel, tmp_path):
    bad = tmp_path / "bad.graph"
    bad.write_text(BROKEN)
    before = listing(tmp_path)
    proc = tessel("compile", str(bad), "-o", str(tmp_path / "new" / "out"))
    assert proc.returncode == 1
    assert f"{bad}:2:19: error" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert listing(tmp_path) == before

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "bad.json").write_text("an older file")
    before = listing(tmp_path)
    proc = tessel("compile", str(bad), "-o", str(existing))
    assert proc.returncode == 1
    assert listing(tmp_path) == before


@pytest.mark.parametrize("where", ["a_file", "a_file/sub"])
def test_unwritable_output_leaves_nothing(tessel, tmp_path, samples_dir, where):
    """-o on or under a regular file (chmod would not stop root, who may run the tests)."""
    (tmp_path / "a_file").write_text("not a folder")
    before = listing(tmp_path)
    proc = tessel("compile", str(samples_dir / "cnn.graph"), "-o", str(tmp_path / where))
    assert proc.returncode == 1
    assert f"-o {tmp_path / where}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert listing(tmp_path) == before


@pytest.mark.parametrize("name", ["3bad", "has-dash", "a b"])
def test_bad_name(tessel, tmp_path, samples_dir, name):
    proc = tessel("compile", str(samples_dir / "mlp.graph"), "-o", str(tmp_path), "--name", name)
    assert proc.returncode == 1
    assert "not a C identifier" in proc.stderr
    assert listing(tmp_path) == {}


def test_relative_library_path(builds, reference, tessel, monkeypatch):
    """`runtime.load("libNAME.so")` in the library's folder opens that file, not one dlopen
    finds on the system's library path."""
    build = builds["cnn"]
    inputs, want = reference(build.graph)
    monkeypatch.chdir(build.folder)
    lib = runtime.load(f"lib{build.name}.so")
    np.testing.assert_allclose(lib(*inputs), want[0], rtol=RTOL, atol=ATOL)
    proc = tessel("run", f"lib{build.name}.so", cwd=build.folder)
    assert proc.returncode == 0, proc.stderr
    assert "checksum" in proc.stdout


@pytest.mark.parametrize("existing", [True, False])
def test_late_error_leaves_nothing(tmp_path, samples_dir, existing):
    """An error after the staging folder exists (here: no C compiler to link with) removes it,
    and the folders made for it, and leaves an existing output folder as it was."""
    empty = tmp_path / "no-tools"
    empty.mkdir()
    out = tmp_path / "out"
    if existing:
        out.mkdir()
        (out / "cnn.json").write_text("an older file")
    before = listing(tmp_path)
    target = out if existing else out / "deeper" / "lib"
    proc = subprocess.run(
        [sys.executable, "-m", "compiler", "compile", str(samples_dir / "cnn.graph"),
         "-o", str(target)],
        cwd=samples_dir.parent, env={**os.environ, "PATH": str(empty)},
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "C compiler" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert listing(tmp_path) == before
