"""Accuracy of the digits classifier (train.py) under each numeric variant, against float32.

    python samples/digits/run.py            # the table; exit 1 if a variant misses its target
    python samples/digits/run.py --report   # the same table in Markdown (as in README.md)

A variant is a name and a function from the float32 module to either a module (run on the
reference interpreter) or a callable `x -> (logits, probs)` (a compiled executable), plus the
accuracy it may lose. The first variant is the reference every other row is compared with:
top-1 accuracy on the held-out split, agreement with its predictions, the largest absolute
difference of the logits and of the probabilities, and the SQNR of the logits in dB.
int8 rows come from tessel's quantizer (compiler/quantization.py), one per observer with symmetric
int8 activations, and asymmetric u8 activations (with a zero point) for two of the observers.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import passes  # noqa: F401  (registers every pass, bf16-mixed included)
from codegen.executable import CpuExecutable
from compiler.driver import PipelineOptions, optimize
from ir.graph import Module
from ir.parser import parse_file
from passes.base import PassContext
from passes.manager import PassManager
from passes.pipeline import parse_pipeline
from runtime.interp import run_module

HERE = Path(__file__).resolve().parent
GRAPH = HERE / "digits.graph"
DATA = HERE / "digits_data.npz"

Runner = Callable[[np.ndarray], Sequence[np.ndarray]]  # images -> (logits, probs)
Build = Callable[[Module], Module | Runner]
# (float module, calibration images, observer name) -> int8 module or runner
Quantize = Callable[[Module, np.ndarray, str], Module | Runner]

BF16_MAX_DROP = 0.5  # accuracy points a bf16 matrix unit may cost
INT8_MAX_DROP = 1.0


@dataclass(frozen=True)
class Variant:
    name: str
    build: Build
    max_drop: float | None = None  # accuracy points below the reference; None: no target


@dataclass(frozen=True)
class Row:
    name: str
    accuracy: float  # top-1 on the test split, 0..1
    agreement: float  # fraction of test images predicted as the reference predicts them
    logits_error: float  # max |logits - reference logits|
    probs_error: float
    sqnr_db: float  # 10 log10(sum ref^2 / sum (x - ref)^2) of the logits; inf when equal
    ms: float  # wall time of one batch (the whole test split), best of a few runs
    max_drop: float | None
    drop: float  # accuracy points lost against the reference

    @property
    def passed(self) -> bool:
        return self.max_drop is None or self.drop <= self.max_drop


def with_pipeline(pipeline: str) -> Callable[[Module], Module]:
    def run(module: Module) -> Module:
        return PassManager(parse_pipeline(pipeline), verify_each=True).run(module, PassContext())

    return run


def on_cpu(module: Module) -> Runner:
    """Compile with the cpu target's default pipeline."""
    optimized, _ = optimize(module, PipelineOptions(target="cpu"))
    return CpuExecutable(optimized)


def on_tpu(chip: str, reports: list[str]) -> Callable[[Module], Runner]:
    """Compile for the simulated TPU `chip` (contractions on the chip, the rest on the CPU);
    each run's chip report (cycles, stalls, TOPS) is appended to `reports`."""
    from compiler.targets import TargetOptions, tpu_executable

    def build(module: Module) -> Runner:
        placed, _ = optimize(module, PipelineOptions(target="tpu", tpu=chip))
        exe = tpu_executable(placed, None, TargetOptions(tpu=chip))

        def run(x: np.ndarray) -> Sequence[np.ndarray]:
            outputs = exe.run([x])
            reports.append(exe.report())
            return outputs

        return run

    return build


def then_cpu(first: Callable[[Module], Module]) -> Build:
    return lambda module: on_cpu(first(module))


def as_runner(built: Module | Runner) -> Runner:
    if isinstance(built, Module):
        return lambda x: run_module(built, [x])
    return built


OBSERVERS = ("minmax", "moving-average", "percentile:99.99", "kl")
ASYMMETRIC_OBSERVERS = ("minmax", "kl")


TPU_REPORTS: list[str] = []  # the simulated chip's report of each TPU run, last one last


def default_variants(calibration: np.ndarray | None = None) -> list[Variant]:
    """float32, bf16-mixed and, given calibration images, int8 with each observer, symmetric
    and asymmetric (on the interpreter, and the first observer of each again on the CPU and on
    the simulated tpu-v1: the same integers)."""
    bf16 = with_pipeline("bf16-mixed")
    variants = [
        Variant("float32 (interp)", lambda module: module),
        Variant("float32 (cpu)", on_cpu),
        Variant("bf16-mixed (interp)", bf16, BF16_MAX_DROP),
        Variant("bf16-mixed (cpu)", then_cpu(bf16), BF16_MAX_DROP),
    ]
    if calibration is not None:
        variants += int8_variants(tessel_int8, OBSERVERS, calibration)
        first = OBSERVERS[0]
        to_int8: Callable[[Module], Module] = lambda m: tessel_int8(m, calibration, first)  # noqa: E731
        variants.append(Variant(f"int8 {first} (cpu)", then_cpu(to_int8), INT8_MAX_DROP))
        tpu = on_tpu("tpu-v1", TPU_REPORTS)
        variants.append(Variant(f"int8 {first} (tpu-v1)", lambda m: tpu(to_int8(m)), INT8_MAX_DROP))
        u8 = int8_variants(tessel_u8, ASYMMETRIC_OBSERVERS, calibration, "int8 asymmetric")
        variants += u8
        to_u8: Callable[[Module], Module] = lambda m: tessel_u8(m, calibration, first)  # noqa: E731
        variants.append(Variant(f"{u8[0].name} (cpu)", then_cpu(to_u8), INT8_MAX_DROP))
    return variants


def tessel_int8(module: Module, calibration: np.ndarray, observer: str) -> Module:
    """tessel's post-training int8 quantization (compiler/quantization.py), as run.py's Quantize."""
    from compiler.quantization import quantize

    return quantize(module, {"x": calibration}, observer)


def tessel_u8(module: Module, calibration: np.ndarray, observer: str) -> Module:
    """The same with asymmetric u8 activations: a zero point, and the u8 x i8 products."""
    from compiler.quantization import quantize

    return quantize(module, {"x": calibration}, observer, activations="asymmetric")


def int8_variants(
    quantize: Quantize, observers: Sequence[str], calibration: np.ndarray, label: str = "int8"
) -> list[Variant]:
    """One int8 row per observer, calibrated on `calibration` (digits_data.npz's x_calib)."""

    def build(observer: str) -> Build:
        return lambda module: quantize(module, calibration, observer)

    return [Variant(f"{label} {o}", build(o), INT8_MAX_DROP) for o in observers]


def load() -> tuple[Module, dict[str, np.ndarray]]:
    with np.load(DATA, allow_pickle=False) as npz:
        data = {k: npz[k] for k in npz.files}
    return parse_file(GRAPH), data


def max_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def sqnr_db(reference: np.ndarray, other: np.ndarray) -> float:
    ref = reference.astype(np.float64)
    noise = float(np.sum((other.astype(np.float64) - ref) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(float(np.sum(ref**2)) / noise)


def timed(runner: Runner, x: np.ndarray, repeats: int) -> tuple[Sequence[np.ndarray], float]:
    """The outputs and the best wall time in ms (the first call may include lazy setup)."""
    outputs = runner(x)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        runner(x)
        best = min(best, time.perf_counter() - start)
    return outputs, best * 1e3


def measure(
    module: Module, data: dict[str, np.ndarray], variants: Sequence[Variant], repeats: int = 5
) -> list[Row]:
    """One row per variant; the first variant is the reference."""
    x, labels = data["x_test"], data["y_test"]
    runs = [(v, *timed(as_runner(v.build(module)), x, repeats)) for v in variants]
    (ref_logits, ref_probs), _ = runs[0][1:]
    ref_pred = ref_logits.argmax(axis=1)
    ref_accuracy = float(np.mean(ref_pred == labels))
    rows = []
    for variant, (logits, probs), ms in runs:
        pred = logits.argmax(axis=1)
        accuracy = float(np.mean(pred == labels))
        rows.append(
            Row(
                variant.name,
                accuracy,
                float(np.mean(pred == ref_pred)),
                max_abs_difference(logits, ref_logits),
                max_abs_difference(probs, ref_probs),
                sqnr_db(ref_logits, logits),
                ms,
                variant.max_drop,
                100 * (ref_accuracy - accuracy),
            )
        )
    return rows


COLUMNS = (
    "variant",
    "top-1",
    "agreement",
    "max err logits",
    "max err probs",
    "SQNR dB",
    "ms/batch",
    "target",
)


def cells(row: Row) -> list[str]:
    if row.max_drop is None:
        target = ""
    else:
        verdict = "ok" if row.passed else "MISSED"
        target = f"≤ {row.max_drop:g} pt drop: {verdict}"
    return [
        row.name,
        f"{100 * row.accuracy:.2f}%",
        f"{100 * row.agreement:.2f}%",
        f"{row.logits_error:.2e}",
        f"{row.probs_error:.2e}",
        "inf" if math.isinf(row.sqnr_db) else f"{row.sqnr_db:.1f}",
        f"{row.ms:.3f}",
        target,
    ]


def table(rows: Sequence[Row], markdown: bool = False) -> str:
    body = [cells(r) for r in rows]
    if markdown:
        lines = [COLUMNS, ["---"] * len(COLUMNS), *body]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)
    widths = [max(len(c) for c in col) for col in zip(COLUMNS, *body, strict=True)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [COLUMNS, *body]
    )


def main(argv: list[str] | None = None, variants: Sequence[Variant] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    module, data = load()
    rows = measure(module, data, variants or default_variants(data["x_calib"]))
    print(f"{len(data['y_test'])} held-out images; reference: {rows[0].name}")
    print(table(rows, markdown=args.report))
    if TPU_REPORTS:  # ms/batch of a TPU row is the simulator's wall time; the chip's is here
        print(f"\nthe int8 classifier on the simulated chip, one batch:\n{TPU_REPORTS[-1]}")
    missed = [r.name for r in rows if not r.passed]
    if missed:
        print("missed the accuracy target: " + ", ".join(missed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
