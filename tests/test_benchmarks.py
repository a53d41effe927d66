"""The benchmark suite runs end to end in --quick mode with NumPy and tessel only.

The peers of the `bench` extra (JAX, ONNX Runtime, Numba) are left out with --engines, so this
test needs nothing beyond the test extra and takes a few seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys

EXPECTED = [
    "elementwise", "softmax", "matmul-32", "matmul-64", "matvec-64", "vecmat-64",
    "matmul-int8-64", "matmul-bf16-64", "mlp", "conv2d", "conv2d-int8",
    "compile-mlp", "compile-mlp-cached",
    "dispatch", "compile-mlp2", "loop-diag", "loop-heat", "loop-newton",
    "prog-jacobi", "prog-lu", "prog-kmeans", "prog-nbody", "prog-crc", "prog-mandelbrot",
    "jit-elementwise", "jit-softmax", "jit-mlp",
]  # fmt: skip
LOOPS = ["loop-diag", "loop-heat", "loop-newton"]
PROGRAMS = ["prog-jacobi", "prog-lu", "prog-kmeans", "prog-nbody", "prog-crc", "prog-mandelbrot"]
RUNS = [*EXPECTED[:6], *EXPECTED[8:10], "dispatch", "compile-mlp2", *LOOPS, *PROGRAMS]
RUNS += EXPECTED[-3:]
JIT_ROWS = ["dispatch", "jit-elementwise", "jit-softmax", "jit-mlp"]  # with a graph-text twin


def test_quick_suite_prints_a_table_and_writes_json(repo_root, tmp_path):
    out = tmp_path / "results.json"
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--engines", "tessel,numpy"]
    cmd += ["--threads", "2", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    lines = proc.stdout.splitlines()
    assert "> 1.0 means tessel is faster" in proc.stdout
    header = next(line for line in lines if line.startswith("workload"))
    assert header.split() == [
        "workload", "check", "tessel", "ms", "numpy", "ms", "x", "numpy", "graph", "ms",
        "jit/graph",
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[lines.index(header) + 2 :] if line}
    for name in EXPECTED:
        assert name in rows, name
    assert rows["dispatch"][2].endswith("us"), rows["dispatch"]  # per-call overhead in us

    data = json.loads(out.read_text())
    assert data["meta"]["threads"] == 2
    assert data["meta"]["quick"] is True
    assert "vectors" in data["meta"]["cpu"]  # ratios are quoted with the CPU they came from
    assert [r["workload"] for r in data["results"]] == EXPECTED
    by_name = {r["workload"]: r for r in data["results"]}
    for name in RUNS:
        tessel = by_name[name]["engines"]["tessel"]
        assert tessel["status"] == "ok", (name, tessel)
        assert tessel["checked"] is True
        assert tessel["median_s"] > 0
        if name != "compile-mlp2":  # NumPy has nothing to compile
            assert by_name[name]["ratios"]["numpy"] > 0
    for name in JIT_ROWS:
        assert by_name[name]["graph"]["status"] == "ok", by_name[name]["graph"]
        assert by_name[name]["jit_over_graph"] > 0
    int8 = by_name["matmul-int8-64"]  # checked exactly; NumPy's integer matmul is not timed
    assert int8["engines"]["tessel"]["status"] == "ok", int8["engines"]["tessel"]
    assert int8["engines"]["tessel"]["max_abs_err"] == 0
    assert int8["engines"]["numpy"]["status"] == "n/a"
    bf16 = by_name["matmul-bf16-64"]["engines"]  # NumPy has no bf16 matmul to time
    assert bf16["tessel"]["status"] == "ok", bf16["tessel"]
    assert bf16["numpy"]["status"] == "n/a"
    assert by_name["dispatch"]["unit"] == "us"
    assert by_name["dispatch"]["engines"]["tessel"]["number"] >= 10_000
    assert by_name["compile-mlp2"]["engines"]["numpy"]["status"] == "n/a"
    assert "graph" not in by_name["mlp"]
    assert by_name["compile-mlp"]["engines"]["tessel"]["status"] == "ok"
    assert by_name["compile-mlp"]["engines"]["numpy"]["status"] == "n/a"
    cached = by_name["compile-mlp-cached"]["engines"]["tessel"]
    assert cached["status"] == "ok"  # a fresh @jit answered by the on-disk cache
    assert by_name["compile-mlp-cached"]["ratios"]["numpy"] is None

    assert "TPU simulator speed" in proc.stdout
    program, *steppers = data["tpu-sim"]  # the program row checks its GEMM exactly first
    assert program["what"].startswith("program 128-cube int8 GEMM, tpu-v2-core")
    assert program["simulated_mac_per_s"] > 0
    assert program["cycles"] > 128
    assert [s["what"] for s in steppers[:2]] == ["stepper 128x128 int8", "stepper 128x128 bf16"]
    assert all(s["pe_cycles_per_s"] > 0 for s in steppers)


def test_unknown_workload_is_an_error(repo_root, tmp_path):
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--engines", "tessel,numpy"]
    cmd += ["--only", "nope", "--json", str(tmp_path / "r.json")]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "no workload matches" in proc.stderr


CRC_CHECK = """
import zlib
import numpy as np
from benchmarks import programs
from benchmarks.workloads import suite
w = next(w for w in suite(quick=True) if w.kind == "prog-crc")
(data,) = w.inputs(np.random.default_rng(0)).values()
want = zlib.crc32(data.astype(np.uint8).tobytes())
print(programs.crc32(data) == want, programs.crc32_masked(data) == want)
"""


def test_crc_program_computes_zlibs_crc32(repo_root):
    """The CRC program (and the variant Numba compiles) against zlib; the benchmark itself
    checks every engine against the NumPy program."""
    cmd = [sys.executable, "-c", CRC_CHECK]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["True", "True"], proc.stdout + proc.stderr
