"""`tessel compile --target tpu` and `tessel tpu-sim`: TPU programs on disk, and running them.

    tessel compile model.int8.graph --target tpu -o out/    # out/model.tpu.json + stages
    tessel tpu-sim out/model.tpu.json -i x=x.npy --tpu-report rep/

The package format is runtime/tpu/package.py's; like every other output, it is staged in a
temporary folder and moved into place only when all of it was written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compiler.cliargs import (
    Subparsers,
    add_backend_args,
    add_io_args,
    add_tpu_args,
    backend_options,
    pipeline_options,
)
from compiler.cmd_run import (
    entry_function,
    gather_inputs,
    load,
    output_names,
    report_outputs,
    report_tpu_run,
)
from compiler.driver import optimize
from ir.diagnostics import TesselError
from ir.dtypes import DType
from ir.graph import Function, Node
from ir.ops import Op
from ir.types import TensorType
from runtime.tpu.config import preset

TPU_EMITS = {"tpu-bin", "tpu-asm", "ir"}


def compile_tpu(args: argparse.Namespace, name: str, emit: list[str]) -> int:
    from codegen.tpu.build import compile_tpu
    from compiler.staging import write_atomically
    from runtime.tpu.package import save

    unknown = sorted(set(emit) - TPU_EMITS)
    if unknown:
        raise TesselError(
            f"--emit {', '.join(unknown)}: not for --target tpu (it writes "
            f"{', '.join(sorted(TPU_EMITS))})"
        )
    module = load(args.file)
    opts = pipeline_options(args, "tpu", name)
    placed, _ = optimize(module, opts)
    fn = entry_function(placed, args.entry)
    config = preset(args.tpu)
    exe = compile_tpu(placed, fn.name, config)
    out = Path(args.output)

    def write(staging: Path) -> list[str]:
        files = save(
            exe, staging, name, out.absolute(), entry=fn.name, result_names=output_names(fn)
        )
        if "ir" in emit:
            from ir.printer import print_module

            (staging / f"{name}.graph").write_text(print_module(placed))
            files.append(f"{name}.graph")
        return files

    return write_atomically(out, write)


def cmd_tpu_sim(args: argparse.Namespace) -> int:
    from compiler.targets import attach_hosts
    from runtime.tpu.package import load as load_package

    options = backend_options(args)
    exe = load_package(args.program, options.tpu_timing)
    attach_hosts(exe, options, args.host)
    signature = _signature(exe.signature)  # type: ignore[attr-defined]
    inputs = gather_inputs(signature, args.input, args.seed)
    outputs = exe.run(inputs)
    report_outputs([str(r) for r in exe.results], outputs, args.output)
    report_tpu_run(exe, args)
    return 0


def _signature(inputs: list[dict[str, object]]) -> Function:
    params = tuple(
        Node(
            Op.PARAMETER,
            TensorType(tuple(t["shape"]), DType.parse(str(t["dtype"]))),  # type: ignore[arg-type]
            name=str(t["name"]),
        )
        for t in inputs
    )
    return Function("program", params, (), ())


def _add_tpu_sim(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("tpu-sim", help="run a compiled TPU program (NAME.tpu.json) and report")
    p.add_argument("program", help="NAME.tpu.json from `tessel compile --target tpu`")
    add_io_args(p)
    p.add_argument(
        "--host",
        choices=["cpu", "interp"],
        default="cpu",
        help="backend for the host stages (default cpu)",
    )
    add_backend_args(p)
    add_tpu_args(p, chip=False)  # the chip is the one the program was compiled for
    return p


VERBS = {"tpu-sim": (_add_tpu_sim, cmd_tpu_sim)}
