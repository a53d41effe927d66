"""Run SCALE-Sim on a fixed set of GEMMs and convolutions and record its cycle counts.

tests/tpu/test_scalesim.py replays every case on the simulated TPU in `compat` mode and asserts
the same count to the cycle; this script produces the numbers it compares against:

    python benchmarks/scalesim_check.py --scalesim-python /tmp/scalesim-venv/bin/python

SCALE-Sim 3.0.0 (PyPI `scalesim`) needs NumPy < 2.3, so it runs in its own virtual
environment: this script re-runs itself there with `--worker` (standard library and SCALE-Sim
only, nothing from tessel), in weight-stationary dataflow, CALC bandwidth mode (no memory
stalls) and save_disk_space (no per-cycle trace files).

A GEMM row is M x K @ K x N. A convolution is NHWC without padding (SCALE-Sim has none) and
with input channels a multiple of the array's rows, so SCALE-Sim's folds (over kh*kw*C) are the
per-tap tiles a weight-stationary compiler builds.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "tests" / "tpu" / "data" / "scalesim.json"

# name, (rows, cols), shape: gemm (M, K, N) or conv (H, W, kh, kw, C, F, stride)
CASES: list[dict[str, Any]] = [
    {"name": "gemm-smaller-than-array", "array": [4, 4], "gemm": [3, 2, 3]},
    {"name": "gemm-one-row", "array": [4, 4], "gemm": [1, 7, 9]},
    {"name": "gemm-one-column", "array": [4, 4], "gemm": [13, 11, 1]},
    {"name": "gemm-primes", "array": [8, 8], "gemm": [17, 19, 23]},
    {"name": "gemm-square", "array": [8, 8], "gemm": [64, 64, 64]},
    {"name": "gemm-1x1x1", "array": [8, 4], "gemm": [1, 1, 1]},
    {"name": "gemm-tall-array", "array": [8, 4], "gemm": [31, 29, 13]},
    {"name": "gemm-wide-array", "array": [4, 8], "gemm": [23, 17, 19]},
    {"name": "gemm-32-odd", "array": [32, 32], "gemm": [37, 100, 70]},
    {"name": "gemm-32-one-column", "array": [32, 32], "gemm": [128, 64, 1]},
    {"name": "gemm-128-odd", "array": [128, 128], "gemm": [97, 300, 200]},
    {"name": "gemm-128-one-row", "array": [128, 128], "gemm": [1, 128, 128]},
    {"name": "gemm-128-cube-256", "array": [128, 128], "gemm": [256, 256, 256]},
    {"name": "conv-3x3-s1", "array": [4, 4], "conv": [7, 7, 3, 3, 4, 6, 1]},
    {"name": "conv-1x1-s2", "array": [4, 4], "conv": [5, 5, 1, 1, 8, 3, 2]},
    {"name": "conv-3x3-s2", "array": [8, 8], "conv": [9, 11, 3, 3, 8, 8, 2]},
    {"name": "conv-2x2-tall-array", "array": [8, 4], "conv": [6, 6, 2, 2, 16, 5, 1]},
    {"name": "conv-32-3x3", "array": [32, 32], "conv": [10, 10, 3, 3, 32, 40, 1]},
    {"name": "conv-32-5x5-s2", "array": [32, 32], "conv": [15, 15, 5, 5, 64, 32, 2]},
    {"name": "conv-128-3x3", "array": [128, 128], "conv": [16, 16, 3, 3, 128, 128, 1]},
]

CONFIG = """[general]
run_name = {name}

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
IfmapSramSzkB = 4096
FilterSramSzkB = 4096
OfmapSramSzkB = 4096
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = ws
Bandwidth = 10
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
FilterCustomLayout = False
IfmapSRAMBankBandwidth = 10
IfmapSRAMBankNum = 10
IfmapSRAMBankPort = 2
FilterSRAMBankBandwidth = 10
FilterSRAMBankNum = 10
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = CALC
UseRamulatorTrace = False
"""


def _topology(case: dict[str, Any]) -> tuple[str, bool]:
    """The topology CSV (the parser drops each row's last field: hence the trailing comma)."""
    if "gemm" in case:
        m, k, n = case["gemm"]
        return f"Layer, M, N, K,\nlayer0, {m}, {n}, {k},\n", True
    h, w, kh, kw, c, f, s = case["conv"]
    header = "Layer, IFMAP H, IFMAP W, Filter H, Filter W, Channels, Num Filter, Strides,\n"
    return header + f"layer0, {h}, {w}, {kh}, {kw}, {c}, {f}, {s},\n", False


def _worker(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """In SCALE-Sim's environment: run each case, read its COMPUTE_REPORT.csv."""
    from scalesim.scale_sim import scalesim

    results = []
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            name = "run"
            rows, cols = case["array"]
            (d / "cfg.cfg").write_text(CONFIG.format(name=name, rows=rows, cols=cols))
            text, gemm = _topology(case)
            (d / "topo.csv").write_text(text)
            (d / "layout.csv").write_text("Layer,\n")  # must exist; unused without custom layouts
            sim = scalesim(
                save_disk_space=True,
                verbose=False,
                config=str(d / "cfg.cfg"),
                topology=str(d / "topo.csv"),
                layout=str(d / "layout.csv"),
                input_type_gemm=gemm,
            )
            begin = time.perf_counter()
            sim.run_scale(top_path=str(d))
            seconds = time.perf_counter() - begin
            with open(d / name / "COMPUTE_REPORT.csv") as fh:
                report = [[v.strip() for v in row] for row in csv.reader(fh)]
        head, values = report[0], report[1]
        row = dict(zip(head, values, strict=False))
        results.append(
            {
                **case,
                "total_cycles": int(float(row["Total Cycles"])),
                "total_cycles_with_prefetch": int(float(row["Total Cycles (incl. prefetch)"])),
                "stall_cycles": int(float(row["Stall Cycles"])),
                "overall_util_percent": float(row["Overall Util %"]),
                "mapping_efficiency_percent": float(row["Mapping Efficiency %"]),
                "compute_util_percent": float(row["Compute Util %"]),
                "scalesim_seconds": round(seconds, 3),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scalesim-python", default=sys.executable, help="python with scalesim")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # results go here
    args = parser.parse_args()
    if args.worker:  # SCALE-Sim prints progress on stdout, so the results go to a file
        args.worker.write_text(json.dumps(_worker(json.load(sys.stdin))))
        return
    script = Path(__file__).resolve()
    handle, name = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    proc = subprocess.run(
        [args.scalesim_python, str(script), "--worker", name],
        input=json.dumps(CASES),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": ""},
    )
    if proc.returncode:
        sys.exit(f"SCALE-Sim failed:\n{proc.stdout}\n{proc.stderr}")
    results = json.loads(Path(name).read_text())
    os.unlink(name)
    version = subprocess.run(
        [args.scalesim_python, "-c", "import importlib.metadata as m, numpy; "
         "print(m.version('scalesim'), numpy.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    record = {
        "tool": f"scalesim {version[0]} (PyPI), numpy {version[1]}",
        "settings": "dataflow ws, InterfaceBandwidth CALC, save_disk_space=True",
        "command": "python benchmarks/scalesim_check.py --scalesim-python <venv>/bin/python",
        "cases": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    for r in results:
        print(f"{r['name']:28s} {r['array']!s:11s} {r['total_cycles']:8d} cycles "
              f"{r['overall_util_percent']:6.2f}% util")  # fmt: skip


if __name__ == "__main__":
    main()
