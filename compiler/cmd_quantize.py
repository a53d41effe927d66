"""`tessel quantize`: int8 post-training quantization of a graph file, with an error report.

    tessel quantize model.graph --calibration data.npz -o model.int8.graph --report

The output is an ordinary graph file (explicit quantize, integer dot/conv, requantize and
dequantize ops), so `tessel run`, `tessel opt` and `tessel compile` take it like any other.
With `--qdq` it is the QDQ graph before the folding passes (docs/quantization.md).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from compiler.cliargs import Subparsers
from compiler.cmd_run import load
from compiler.quantization import ACTIVATIONS, FOLD, batches, quantize, run_all
from ir.arrayfiles import ArrayFileError, read_array_file
from ir.diagnostics import TesselError
from ir.files import write_text_atomic
from ir.graph import Module
from ir.printer import WeightSink, print_module
from runtime.inputs import random_inputs


def sqnr_db(reference: np.ndarray, value: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio: 10 log10(|ref|^2 / |ref - value|^2)."""
    ref = reference.astype(np.float64)
    noise = float(np.sum((ref - value.astype(np.float64)) ** 2))
    signal = float(np.sum(ref**2))
    if noise == 0:
        return math.inf
    return 10 * math.log10(signal / noise) if signal else -math.inf


def report(original: Module, quantized: Module, data: list[list[np.ndarray]]) -> str:
    """Per value the two graphs share by name (where the error enters) and per output: SQNR
    and max abs error against the float graph, over every calibration batch."""
    fn, qfn = original.entry_function, quantized.entry_function
    float_runs = [run_all(fn, args) for args in data]
    int8_runs = [run_all(qfn, args) for args in data]
    named = {n.name: n for n in qfn.body if n.name}
    pairs = [
        (f"%{n.name}", n, named[n.name])
        for n in fn.body
        if n.name in named and named[n.name].type == n.type
    ]
    results = zip(fn.results, qfn.results, strict=True)
    pairs += [(f"output {i}", r, q) for i, (r, q) in enumerate(results)]
    rows = [("value", "SQNR dB", "max |error|")]
    for label, node, twin in pairs:
        ref = np.concatenate([run[node].reshape(-1) for run in float_runs])
        got = np.concatenate([run[twin].reshape(-1) for run in int8_runs])
        rows.append((label, f"{sqnr_db(ref, got):.1f}", f"{np.max(np.abs(ref - got)):.3g}"))
    width = [max(len(row[c]) for row in rows) for c in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, width, strict=True)) for row in rows
    )


def _calibration(module: Module, spec: str) -> Any:
    """DATA.npz (inputs by parameter name), or `random[:N]`: N batches of the deterministic
    random inputs `tessel run` uses (to see where error enters; not to calibrate for real)."""
    if spec == "random" or spec.startswith("random:"):
        count = spec.partition(":")[2] or "4"
        if not count.isdigit():
            raise TesselError(f"--calibration {spec}: expected random:N with N a whole number")
        fn = module.entry_function
        return [random_inputs(fn, seed) for seed in range(int(count))]
    try:
        data = read_array_file(spec)  # checked before anything is allocated; never unpickles
    except (OSError, ArrayFileError) as e:
        raise TesselError(f"--calibration {spec}: cannot read it ({e})") from None
    if not isinstance(data, dict):
        raise TesselError(f"--calibration {spec}: expected an .npz of inputs by parameter name")
    return data


def cmd_quantize(args: argparse.Namespace) -> int:
    module = load(args.file)
    calibration = _calibration(module, args.calibration)
    options = {"per_channel": not args.per_tensor, "activations": args.activations}
    quantized = quantize(module, calibration, args.observer, fold=not args.qdq, **options)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    weights = WeightSink(out.with_name(out.stem + ".npz"))
    text = print_module(quantized, base_dir=out.parent, weights=weights)
    weights.save()
    how = f"--observer {args.observer} --activations {args.activations}"
    write_text_atomic(out, f"# tessel quantize {args.file} {how}\n{text}")
    print(f"wrote {out}", file=sys.stderr)
    if args.report:  # layer by layer on the QDQ graph, whose layers end in float
        layers = quantize(module, calibration, args.observer, fold=False, **options)
        print(report(module, layers, batches(module.entry_function, calibration)))
    return 0


def _add_quantize(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("quantize", help="int8 post-training quantization of a graph file")
    p.add_argument("file", help="graph file (float32)")
    p.add_argument(
        "--calibration", required=True, metavar="DATA.npz",
        help="inputs by parameter name (an extra leading axis holds several batches), or "
        "random[:N] for N batches of random inputs",
    )  # fmt: skip
    p.add_argument("-o", "--output", required=True, metavar="OUT.graph")
    p.add_argument(
        "--observer", default="minmax",
        help="how activation ranges are chosen: minmax (default), moving-average[:MOMENTUM], "
        "percentile:P (e.g. percentile:99.99), kl (entropy: the clipping with the least "
        "information lost)",
    )  # fmt: skip
    p.add_argument(
        "--activations", choices=ACTIVATIONS, default="symmetric",
        help="symmetric int8 activations (zero point 0, the default) or asymmetric u8 with a "
        "zero point (matrix products only; convolutions stay symmetric)",
    )  # fmt: skip
    granularity = p.add_mutually_exclusive_group()
    granularity.add_argument(
        "--per-channel", action="store_true",
        help="one weight scale per output channel (the default)",
    )  # fmt: skip
    granularity.add_argument(
        "--per-tensor", action="store_true",
        help="one weight scale per tensor instead of one per output channel",
    )  # fmt: skip
    p.add_argument(
        "--report", action="store_true", help="SQNR and max error against the float graph"
    )
    p.add_argument(
        "--qdq", action="store_true",
        help=f"write the QDQ graph (quantize -> dequantize around float contractions) before "
        f"the folding passes; `tessel opt -p {FOLD},...` folds it",
    )  # fmt: skip
    return p


VERBS = {"quantize": (_add_quantize, cmd_quantize)}
