"""The benchmark suite runs end to end in --quick mode with NumPy and tessel only.

The peers of the `bench` extra (JAX, ONNX Runtime) are left out with --engines, so this test
needs nothing beyond the test extra and takes a few seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys

EXPECTED = [
    "elementwise", "softmax", "matmul-32", "matmul-64", "mlp", "conv2d",
    "compile-mlp", "compile-mlp-cached",
]  # fmt: skip


def test_quick_suite_prints_a_table_and_writes_json(repo_root, tmp_path):
    out = tmp_path / "results.json"
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--engines", "tessel,numpy"]
    cmd += ["--threads", "2", "--json", str(out)]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    lines = proc.stdout.splitlines()
    assert "> 1.0 means tessel is faster" in proc.stdout
    header = next(line for line in lines if line.startswith("workload"))
    assert header.split() == ["workload", "check", "tessel", "ms", "numpy", "ms", "x", "numpy"]
    for name in EXPECTED:
        assert any(line.split()[:1] == [name] for line in lines), name

    data = json.loads(out.read_text())
    assert data["meta"]["threads"] == 2
    assert data["meta"]["quick"] is True
    assert [r["workload"] for r in data["results"]] == EXPECTED
    by_name = {r["workload"]: r for r in data["results"]}
    for name in EXPECTED[:6]:
        tessel = by_name[name]["engines"]["tessel"]
        assert tessel["status"] == "ok", (name, tessel)
        assert tessel["checked"] is True
        assert tessel["median_s"] > 0
        assert by_name[name]["ratios"]["numpy"] > 0
    assert by_name["compile-mlp"]["engines"]["tessel"]["status"] == "ok"
    assert by_name["compile-mlp"]["engines"]["numpy"]["status"] == "n/a"
    cached = by_name["compile-mlp-cached"]["engines"]["tessel"]
    assert cached["status"] == "n/a"
    assert "no compile cache" in cached["reason"]
    assert by_name["compile-mlp-cached"]["ratios"]["numpy"] is None


def test_unknown_workload_is_an_error(repo_root, tmp_path):
    cmd = [sys.executable, "-m", "benchmarks", "--quick", "--engines", "tessel,numpy"]
    cmd += ["--only", "nope", "--json", str(tmp_path / "r.json")]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "no workload matches" in proc.stderr
