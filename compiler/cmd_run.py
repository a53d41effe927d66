"""`tessel check` and `tessel run`, and the input/output handling they share with other verbs."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compiler.cliargs import (
    Subparsers,
    add_backend_args,
    add_io_args,
    add_pipeline_args,
    add_tpu_args,
    backend_options,
    pipeline_options,
    write_artifacts,
)
from compiler.driver import optimize
from compiler.summary import summarize
from compiler.targets import TARGETS, prepare
from ir.arrayfiles import ArrayFileError, read_array_file
from ir.diagnostics import InputError, TesselError
from ir.filekinds import sniff
from ir.files import atomic_write, write_text_atomic
from ir.graph import Function, Module
from ir.parser import parse_file
from ir.printer import print_module
from ir.verify import verify_module
from runtime.inputs import bind_inputs, random_inputs

_OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def load(path: str) -> Module:
    module = parse_file(path)
    verify_module(module)
    return module


# --- tessel check -----------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    module = load(args.file)
    if args.output is None:
        sys.stdout.write(print_module(module))
        return 0
    out = Path(args.output)
    write_text_atomic(out, print_module(module, base_dir=out.parent))
    print(f"wrote {out}", file=sys.stderr)
    return 0


# --- tessel run -------------------------------------------------------------------------------


def gather_inputs(fn: Function, specs: Sequence[str], seed: int) -> list[np.ndarray]:
    """Inputs from `NAME=FILE.npy` or `FILE.npz` (keys are parameter names); random for the rest."""
    given: dict[str, Any] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "", spec
            if not path.endswith(".npz"):
                raise InputError(f"--input '{spec}': expected NAME=FILE.npy or FILE.npz")
        data = _load_input(name, path)
        if isinstance(data, dict):
            if name:
                raise InputError(f"--input '{spec}': NAME=... takes a .npy file, not a .npz")
            given.update(data)
        else:
            given[name] = data
    if seed < 0:
        raise InputError(f"--seed must be a non-negative integer, got {seed}")
    missing = [n for n in fn.param_names if n not in given]
    if missing and given:
        print(f"note: random values for {', '.join('%' + n for n in missing)}", file=sys.stderr)
    if missing:  # every parameter's values, so that each one's do not depend on what is given
        randoms = dict(zip(fn.param_names, random_inputs(fn, seed), strict=False))
        given.update({n: randoms[n] for n in missing})
    return bind_inputs(fn, (), given)


def _load_input(name: str, path: str) -> np.ndarray | dict[str, np.ndarray]:
    try:
        return read_array_file(path)
    except ArrayFileError as e:
        what = f"input '{name}'" if name else "inputs"
        raise InputError(f"cannot read {what} from {path}: {e}") from None


def output_names(fn: Function) -> list[str]:
    """Result name hints where they are valid file names and unique, `output<i>` otherwise."""
    hints = [r.name for r in fn.results]
    return [
        h if h and _OUTPUT_NAME.fullmatch(h) and hints.count(h) == 1 else f"output{i}"
        for i, h in enumerate(hints)
    ]


def entry_function(module: Module, name: str | None) -> Function:
    functions = module.by_name()
    if name is None:
        return functions[module.entry]
    if name.lstrip("@") not in functions:
        known = ", ".join("@" + f for f in functions)
        raise InputError(f"--entry: no function @{name.lstrip('@')} (functions: {known})")
    return functions[name.lstrip("@")]


def cmd_run(args: argparse.Namespace) -> int:
    if Path(args.file).suffix in (".so", ".json"):
        return _run_library(args)
    module = load(args.file)
    fn = entry_function(module, args.entry)
    inputs = gather_inputs(fn, args.input, args.seed)
    optimized, ctx = optimize(module, pipeline_options(args, args.backend, Path(args.file).stem))
    executable = prepare(args.backend, optimized, fn.name, backend_options(args), ctx.analyses)
    write_artifacts(executable, args, sys.stderr)
    outputs = executable.run(inputs)
    report_outputs(output_names(fn), outputs, args.output)
    if executable.report is not None:  # the target has something to say about the run
        report_tpu_run(executable.native, args)
    return 0


def report_tpu_run(exe: Any, args: argparse.Namespace) -> None:
    """The simulated chip's report on stderr, and the files of --tpu-report DIR, --trace FILE."""
    sys.stderr.write(exe.report() + "\n")
    if args.tpu_report:
        exe.write_report(Path(args.tpu_report))
        index = Path(args.tpu_report) / "index.html"
        print(
            f"wrote the TPU report to {Path(args.tpu_report)}/ (start at {index})", file=sys.stderr
        )
    if args.trace:
        for path in exe.write_traces(Path(args.trace)):
            print(f"wrote the TPU timeline to {path}", file=sys.stderr)


def _run_library(args: argparse.Namespace) -> int:
    """`tessel run libNAME.so` (or NAME.json): a library from `tessel compile`, as it is."""
    from runtime.aot import load as load_library

    if Path(args.file).is_file() and sniff(args.file).id == "tpu-json":
        raise TesselError(
            f"{args.file} is a compiled TPU program: run it with `tessel tpu-sim {args.file}`"
        )
    library = load_library(args.file, threads=backend_options(args).threads)
    inputs = gather_inputs(library.fn, args.input, args.seed)
    outputs = library.run(inputs)
    names = [o["name"] for o in library.metadata["signature"]["outputs"]]
    report_outputs(names, outputs, args.output)
    return 0


def report_outputs(names: list[str], outputs: Sequence[np.ndarray], output_dir: str | None) -> None:
    for name, arr in zip(names, outputs, strict=False):
        print(summarize("%" + name, arr))
    if output_dir:
        out_dir = Path(output_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, arr in zip(names, outputs, strict=False):
            with atomic_write(out_dir / f"{name}.npy") as f:
                np.save(f, arr, allow_pickle=False)
        print(f"wrote {len(outputs)} output(s) to {out_dir}/", file=sys.stderr)


# --- argument parsing -------------------------------------------------------------------------


def _add_check(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("check", help="parse and verify a graph file; print its canonical IR")
    p.add_argument("file", help="graph file")
    p.add_argument("-o", "--output", help="write the canonical IR to this file instead of stdout")
    return p


def _add_run(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("run", help="run a graph file's entry function and summarize its outputs")
    p.add_argument("file", help="graph file, or a library from `tessel compile` (.so/.json)")
    add_io_args(p)
    p.add_argument(
        "--backend",
        "--target",
        choices=sorted(TARGETS),
        default="cpu",
        help="where to run: cpu (compiled, the default), interp (the reference), tpu (simulated)",
    )
    p.add_argument("--entry", help="function to run instead of the module's entry")
    add_backend_args(p)
    add_tpu_args(p)
    add_pipeline_args(p)
    return p


VERBS = {"check": (_add_check, cmd_check), "run": (_add_run, cmd_run)}
