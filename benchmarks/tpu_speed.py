"""How fast the TPU simulator runs: a whole program, the PE-by-PE stepper, SCALE-Sim.

    python -m benchmarks.tpu_speed [--quick]      (python -m benchmarks prints it too)

`program`: a 512-cube int8 GEMM compiled for a chip and run by the simulator from its
instruction stream (functional results, race checks and native timing), simulated MACs per
wall-clock second; the issue's target is 5e9 on the 128x128 array. The stepper and the fast
path (the functional simulator's MMC handler) run the same folds in one process, median of
repeats; the ratio is what the cycle-level detail costs (target for the stepper: 2e8
PE-cycles/s on 128x128). SCALE-Sim's speed comes from tests/tpu/data/scalesim.json (its wall
time per run, recorded by benchmarks/scalesim_check.py on the same machine, another process and
another moment).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from codegen.tpu.kernels import Epilogue
from codegen.tpu.lower import gemm_program
from runtime.tpu.blas import one_blas_thread
from runtime.tpu.config import TpuConfig, preset
from runtime.tpu.isa import Mmc, Rw
from runtime.tpu.machine import Machine
from runtime.tpu.stepper import measure_speed

# the first is the 128x128 array of the utilization target, with memory that never stalls it
PROGRAM_CHIPS = [
    "tpu-v2-core:multiplier=int8,weight_bandwidth=inf,host_bandwidth=inf",
    "tpu-v2-core:multiplier=int8",
    "tpu-v1",
]
SCALESIM = Path(__file__).resolve().parent.parent / "tests" / "tpu" / "data" / "scalesim.json"


def _median_seconds(call: Any, repeats: int) -> float:
    call()  # warm-up
    seconds = []
    for _ in range(repeats):
        begin = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - begin)
    return float(np.median(seconds))


def _fast_path_seconds(c: TpuConfig, vectors: int, folds: int, repeats: int) -> float:
    rng = np.random.default_rng(0)

    def values(count: int) -> np.ndarray:  # finite values of the input type, as bytes
        if c.multiplier == "int8":
            return rng.integers(-128, 128, count).astype(np.int8).view(np.uint8)
        return rng.standard_normal(count).astype(c.input_dtype).view(np.uint8)

    m = Machine(c, np.zeros(1, np.uint8), values(folds * c.rows * c.cols))
    m.ub[:vectors] = values(vectors * c.width).reshape(vectors, c.row_bytes)

    def once() -> None:
        m.execute(Rw(weight_addr=0, tiles=folds))
        for _ in range(folds):
            m.execute(Mmc(ub_addr=0, acc_addr=0, rows=vectors, switch=True))

    with one_blas_thread():  # as a simulator run multiplies
        return _median_seconds(once, repeats)


def program_row(spec: str, n: int, repeats: int) -> dict[str, Any]:
    c = preset(spec)
    rng = np.random.default_rng(0)
    x = rng.integers(-4, 4, (n, n)).astype(np.int8)  # small values: few outputs saturate
    w = rng.integers(-4, 4, (n, n)).astype(np.int8)
    program = gemm_program(c, (n, n), w, Epilogue())  # int32 sums requantized to int8 (x1)
    (out,), result = program.run([x])
    if not np.array_equal(out, np.clip(x.astype(np.int64) @ w, -128, 127)):
        raise AssertionError(f"the simulated GEMM on {spec} is wrong")
    seconds = _median_seconds(lambda: program.run([x]), repeats)
    return {
        "what": f"program {n}-cube int8 GEMM, {spec}",
        "simulated_mac_per_s": n**3 / seconds,
        "cycles": result.stats.cycles,
        "instructions": len(program.instructions),
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    vectors, folds, repeats = (128, 2, 3) if quick else (512, 4, 5)
    n = 128 if quick else 512
    rows = [program_row(spec, n, repeats) for spec in PROGRAM_CHIPS[: 1 if quick else None]]
    for spec in ("tpu-v2-core:multiplier=int8", "tpu-v2-core"):
        c = preset(spec)
        step = measure_speed(spec, vectors=vectors, folds=folds, repeats=repeats)
        macs = vectors * folds * c.rows * c.cols
        fast = _fast_path_seconds(c, vectors, folds, repeats)
        rows.append(
            {
                "what": f"stepper {c.rows}x{c.cols} {c.multiplier}",
                "pe_cycles_per_s": step["pe_cycles_per_s"],
                "stepper_mac_per_s": macs / step["seconds"],
                "fast_path_mac_per_s": macs / fast,
                "fast_over_stepper": step["seconds"] / fast,
            }
        )
    if SCALESIM.exists():
        for case in json.loads(SCALESIM.read_text())["cases"]:
            if case["array"] == [128, 128]:
                r, c_ = case["array"]
                rows.append(
                    {
                        "what": f"scalesim {case['name']}",
                        "pe_cycles_per_s": case["total_cycles"] * r * c_ / case["scalesim_seconds"],
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(table(run(args.quick)))


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["TPU simulator speed"]
    for row in rows:
        if "simulated_mac_per_s" in row:
            lines.append(
                f"{row['what']}\n{'':34s} {row['simulated_mac_per_s']:.3g} simulated MAC/s "
                f"({row['instructions']} instructions, {row['cycles']:,} cycles)"
            )
            continue
        extra = ""
        if "fast_path_mac_per_s" in row:
            extra = (
                f"  stepper {row['stepper_mac_per_s']:.3g} MAC/s, fast path "
                f"{row['fast_path_mac_per_s']:.3g} MAC/s ({row['fast_over_stepper']:.0f}x)"
            )
        lines.append(f"{row['what']:34s} {row['pe_cycles_per_s']:.3g} PE-cycles/s{extra}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
