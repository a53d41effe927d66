"""Every sample, compiled with `tessel compile`, runs from Python and from C with the
interpreter's results; both paths run the same machine code, so they agree bit for bit."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import runtime
from ir.diagnostics import InputError, TesselError

MODELS = ("mlp", "cnn", "attention")
# the CPU code uses polynomial exp/tanh and a different summation order than NumPy
RTOL, ATOL = 1e-4, 1e-5


def assert_matches(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        assert g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL)


def assert_identical(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        assert g.dtype == w.dtype
        assert g.tobytes() == w.tobytes()


@pytest.mark.parametrize("model", MODELS)
def test_python_load_matches_interpreter(builds, reference, model):
    build = builds[model]
    inputs, want = reference(build.graph)
    for path in (build.library, build.folder / f"{model}.json"):
        lib = runtime.load(path)
        got = lib.run(inputs)
        assert_matches(got, want)
        # one output comes back as an array from a plain call
        single = lib(*inputs)
        assert isinstance(single, np.ndarray)
        assert_identical([single], got)


@pytest.mark.parametrize("model", MODELS)
def test_c_program_matches_interpreter_and_python(builds, reference, c_driver, model):
    build = builds[model]
    inputs, want = reference(build.graph)
    run = c_driver(build, inputs)
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    assert run.facts["missing"] == "none"
    assert run.facts["scratch_null"] == "0"
    assert run.facts["scratch_given"] == "0"
    # NULL scratch and caller-owned (poisoned) scratch give the same bytes
    assert run.facts["same"] == "1"
    assert_matches(run.outputs, want)
    assert_identical(run.outputs, runtime.load(build.library).run(inputs))


@pytest.mark.parametrize("model", MODELS)
def test_c_tensor_tables(builds, reference, c_driver, model):
    """NAME_inputs/NAME_outputs as a C program sees them agree with NAME.json and the graph."""
    build = builds[model]
    inputs, want = reference(build.graph)
    run = c_driver(build, inputs)
    assert run.proc.returncode == 0, run.proc.stderr
    sig = build.metadata["signature"]
    lines = run.proc.stdout.splitlines()
    for kind, tensors, arrays in (
        ("input", sig["inputs"], inputs),
        ("output", sig["outputs"], want),
    ):
        rows = [line.split() for line in lines if line.startswith(kind + " ")]
        assert len(rows) == len(tensors) == len(arrays)
        for i, (row, t, arr) in enumerate(zip(rows, tensors, arrays, strict=True)):
            index, name, _code, dtype, rank, *rest = row[1:]
            assert (int(index), name, dtype) == (i, t["name"], t["dtype"])
            shape = [int(d) for d in rest[: int(rank)]]
            assert shape == t["shape"] == list(arr.shape)
            assert rest[int(rank) :] == ["size", str(arr.size), "bytes", str(arr.nbytes)]
            assert t["bytes"] == arr.nbytes
    # the C tables name the inputs as the graph's parameters
    for t in sig["inputs"]:
        assert f"%{t['name']}:" in build.graph.read_text()


def test_wrong_inputs_fail_before_native_code(builds, reference):
    lib = runtime.load(builds["mlp"].library)
    inputs, _ = reference(builds["mlp"].graph)
    x = inputs[0]
    with pytest.raises(InputError):
        lib(x[:-1])  # wrong shape
    with pytest.raises(InputError):
        lib(x.astype(np.float64))  # wrong dtype
    with pytest.raises(InputError):
        lib()  # missing
    with pytest.raises(InputError):
        lib(x, x)  # one too many
    # still usable afterwards
    assert_identical([lib(x)], lib.run(inputs))


def test_load_errors(builds, tmp_path):
    with pytest.raises(TesselError, match="not found"):
        runtime.load(tmp_path / "nothing.json")
    with pytest.raises(TesselError):
        runtime.load(tmp_path / "libnothing.so")
    (tmp_path / "other.json").write_text('{"format": "something-else"}')
    with pytest.raises(TesselError, match="not a tessel"):
        runtime.load(tmp_path / "other.json")
    (tmp_path / "broken.json").write_text("{nope")
    with pytest.raises(TesselError, match="not a tessel"):
        runtime.load(tmp_path / "broken.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(TesselError, match="not a tessel"):
        runtime.load(tmp_path / "list.json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TesselError, match="not a tessel"):
        runtime.load(tmp_path / "binary.json")
    with pytest.raises(TesselError, match=r"libNAME\.so"):
        runtime.load(builds["mlp"].folder / "mlp.h")


def _flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def _edit_json(key, value, keep_digest=False):
    """An edit of NAME.json; without its digest (as a description from before digests), so
    that what is checked is the structure."""

    def edit(folder, name):
        path = folder / f"{name}.json"
        meta = json.loads(path.read_text())
        if not keep_digest:
            del meta["digest"]
        if value is None:
            del meta[key]
        else:
            meta[key] = value
        path.write_text(json.dumps(meta))

    return edit


DAMAGE = {
    # a truncated library was a SIGBUS inside dlopen; each of these was a raw Python error
    "library-truncated": (
        lambda f, n: (f / f"lib{n}.so").write_bytes((f / f"lib{n}.so").read_bytes()[:4096]),
        "bytes, but `tessel compile` wrote",
    ),
    "library-empty": (lambda f, n: (f / f"lib{n}.so").write_bytes(b""), "bytes, but"),
    "library-bit-flipped": (lambda f, n: _flip_one_byte(f / f"lib{n}.so"), "SHA-256 mismatch"),
    "library-missing": (lambda f, n: (f / f"lib{n}.so").unlink(), "no such library"),
    "library-a-folder": (
        lambda f, n: [(f / f"lib{n}.so").unlink(), (f / f"lib{n}.so").mkdir()],
        "cannot read it (Is a directory)",
    ),
    "weights-bit-flipped": (lambda f, n: _flip_one_byte(f / f"{n}.weights"), "SHA-256 mismatch"),
    "weights-truncated": (
        lambda f, n: (f / f"{n}.weights").write_bytes(b"\0" * 10),
        "bytes, but `tessel compile` wrote",
    ),
    "json-a-folder": (
        lambda f, n: [(f / f"{n}.json").unlink(), (f / f"{n}.json").mkdir()],
        "cannot read it (Is a directory)",
    ),
    # found by the input fuzzer: a spec with a result fewer ran and answered wrong
    "json-edited-with-its-digest": (
        _edit_json("scratch_bytes", 1, keep_digest=True),
        "digest mismatch",
    ),
    "json-without-spec": (_edit_json("spec", None), "no valid 'spec'"),
    "json-without-name": (_edit_json("name", None), "no valid 'name'"),
    "json-wrong-name": (_edit_json("name", "other"), "not a library tessel compiled as other"),
    "json-name-not-a-string": (_edit_json("name", 3), "no valid 'name'"),
    "json-library-elsewhere": (_edit_json("library", "../libc.so.6"), "its names"),
    "json-garbage-spec": (_edit_json("spec", {"version": 2, "entry": 5}), "damaged program spec"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_artifacts_are_refused_before_the_loader_maps_them(builds, tmp_path, damage):
    """Checked against NAME.json's record of the library and weights (size, SHA-256)."""
    harm, message = DAMAGE[damage]
    folder = tmp_path / "mlp_ext"
    shutil.copytree(builds["mlp_ext"].folder, folder)
    meta = json.loads((folder / "mlp_ext.json").read_text())
    assert meta["library_bytes"] == (folder / "libmlp_ext.so").stat().st_size
    harm(folder, "mlp_ext")
    with pytest.raises(TesselError, match=re.escape(message)):
        runtime.load(folder / "mlp_ext.json")


def test_load_without_llvmlite_or_lark(builds, reference):
    """A deployed model needs NumPy only: the compiler's dependencies may be missing."""
    build = builds["cnn"]
    inputs, want = reference(build.graph)
    np.save(build.folder.parent / "cnn_x.npy", inputs[0])
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["llvmlite"] = None
        sys.modules["lark"] = None
        import numpy as np
        import runtime
        lib = runtime.load({str(build.library)!r})
        out = lib(np.load({str(build.folder.parent / "cnn_x.npy")!r}))
        np.save({str(build.folder.parent / "cnn_out.npy")!r}, out)
        assert not any(m.startswith(("llvmlite", "lark")) for m in sys.modules
                       if sys.modules[m] is not None)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    got = np.load(build.folder.parent / "cnn_out.npy")
    assert_matches([got], want)
    assert_identical([got], runtime.load(build.library).run(inputs))


def test_two_libraries_in_one_process(builds, reference):
    """Symbols are prefixed by NAME and bound locally: no library calls into another."""
    mlp, twin, cnn = (runtime.load(builds[k].library) for k in ("mlp", "mlp_twin", "cnn"))
    mlp_in, mlp_want = reference(builds["mlp"].graph)
    cnn_in, cnn_want = reference(builds["cnn"].graph)
    # interleaved calls
    first = mlp.run(mlp_in)
    assert_matches(cnn.run(cnn_in), cnn_want)
    assert_matches(first, mlp_want)
    assert_identical(twin.run(mlp_in), first)
    assert_matches(cnn.run(cnn_in), cnn_want)
    assert_identical(mlp.run(mlp_in), first)


@pytest.mark.slow  # a separate CI step runs the slow tier
def test_tessel_run_library_matches_graph(builds, tessel, tmp_path):
    """`tessel run` on libNAME.so, NAME.json and the graph file print the same summary."""
    build = builds["mlp"]
    graph = tessel("run", "--backend", "cpu", str(build.graph), "-o", str(tmp_path / "graph"))
    so = tessel("run", str(build.library), "-o", str(tmp_path / "so"))
    meta = tessel("run", str(build.folder / "mlp.json"))
    so_again = tessel("run", str(build.library), "--seed", "0")
    for proc in (graph, so, meta, so_again):
        assert proc.returncode == 0, proc.stderr
    assert "checksum" in so.stdout
    assert so.stdout == meta.stdout == so_again.stdout
    # the JIT compiles the same program for the same CPU: the same machine code
    assert so.stdout == graph.stdout
    for f in (tmp_path / "graph").iterdir():
        np.testing.assert_array_equal(np.load(tmp_path / "so" / f.name), np.load(f))
    other_seed = tessel("run", str(build.library), "--seed", "1")
    assert other_seed.returncode == 0
    assert other_seed.stdout != so.stdout


TWO_LIBRARIES = r"""
#include <stdio.h>
#include <stdlib.h>
#include "mlp.h"
#include "mlp_v3.h"
#include "cnn.h"

/* Each library's own tessel_gemm_f32 (compiled for its CPU) serves its own calls. */
int main(int argc, char** argv) {
  static float x[256 * 784], img[8 * 28 * 28 * 1], a[256 * 10], b[256 * 10], c[8 * 10];
  FILE* f = fopen(argv[1], "rb");
  if (fread(x, sizeof x, 1, f) != 1 || fread(img, sizeof img, 1, f) != 1) return 90;
  fclose(f);
  int rc = mlp(x, a, NULL) * 100 + cnn(img, c, NULL) * 10 + mlp_v3(x, b, NULL);
  f = fopen(argv[2], "wb");
  fwrite(a, sizeof a, 1, f);
  fwrite(b, sizeof b, 1, f);
  fwrite(c, sizeof c, 1, f);
  fclose(f);
  return rc;
}
"""


def test_two_libraries_in_one_c_program(builds, reference, tmp_path):
    cc = shutil.which("cc") or "cc"
    libs = [builds[k] for k in ("mlp", "mlp_v3", "cnn")]
    (tmp_path / "main.c").write_text(TWO_LIBRARIES)
    flags = [f for b in libs for f in (f"-I{b.folder}", f"-L{b.folder}", f"-Wl,-rpath,{b.folder}")]
    link = subprocess.run(
        [cc, "-O1", str(tmp_path / "main.c"), *flags, "-lmlp", "-lmlp_v3", "-lcnn",
         "-o", str(tmp_path / "main")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert link.returncode == 0, link.stderr
    (mlp_x,), _ = reference(builds["mlp"].graph)
    (cnn_x,), _ = reference(builds["cnn"].graph)
    (tmp_path / "in.bin").write_bytes(mlp_x.tobytes() + cnn_x.tobytes())
    run = subprocess.run(
        [str(tmp_path / "main"), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    raw = np.fromfile(tmp_path / "out.bin", dtype=np.float32)
    got = np.split(raw, [256 * 10, 2 * 256 * 10])
    for out, build, x in zip(got, libs, (mlp_x, mlp_x, cnn_x), strict=True):
        want = runtime.load(build.library)(x)
        assert out.tobytes() == want.tobytes(), build.name
