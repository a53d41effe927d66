"""How fast the PE-by-PE stepper simulates, next to the functional fast path and SCALE-Sim.

    python -m benchmarks.tpu_speed [--quick]

The stepper and the fast path (the functional simulator's MMC handler) run the same folds in
one process, median of repeats; the ratio is what the cycle-level detail costs. SCALE-Sim's
speed comes from tests/tpu/data/scalesim.json (its wall time per run, recorded by
benchmarks/scalesim_check.py on the same machine, another process and another moment).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from runtime.tpu.config import TpuConfig, preset
from runtime.tpu.isa import Mmc, Rw
from runtime.tpu.machine import Machine
from runtime.tpu.stepper import measure_speed

SCALESIM = Path(__file__).resolve().parent.parent / "tests" / "tpu" / "data" / "scalesim.json"


def _fast_path_seconds(c: TpuConfig, vectors: int, folds: int, repeats: int) -> float:
    rng = np.random.default_rng(0)

    def values(count: int) -> np.ndarray:  # finite values of the input type, as bytes
        if c.multiplier == "int8":
            return rng.integers(-128, 128, count).astype(np.int8).view(np.uint8)
        return rng.standard_normal(count).astype(c.input_dtype).view(np.uint8)

    m = Machine(c, np.zeros(1, np.uint8), values(folds * c.rows * c.cols))
    m.ub[:vectors] = values(vectors * c.width).reshape(vectors, c.row_bytes)
    seconds = []
    for _ in range(repeats):
        begin = time.perf_counter()
        m.execute(Rw(weight_addr=0, tiles=folds))
        for _ in range(folds):
            m.execute(Mmc(ub_addr=0, acc_addr=0, rows=vectors, switch=True))
        seconds.append(time.perf_counter() - begin)
    return float(np.median(seconds))


def run(quick: bool = False) -> list[dict[str, Any]]:
    vectors, folds, repeats = (128, 2, 3) if quick else (512, 4, 5)
    rows = []
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
    for row in run(args.quick):
        extra = ""
        if "fast_path_mac_per_s" in row:
            extra = (
                f"  stepper {row['stepper_mac_per_s']:.3g} MAC/s, fast path "
                f"{row['fast_path_mac_per_s']:.3g} MAC/s ({row['fast_over_stepper']:.0f}x)"
            )
        print(f"{row['what']:34s} {row['pe_cycles_per_s']:.3g} PE-cycles/s{extra}")


if __name__ == "__main__":
    main()
