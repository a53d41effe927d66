"""`tessel compile`: a graph file becomes a shared library with a C header (like tfcompile).

    tessel compile samples/mlp.graph -o out/            # out/libmlp.so mlp.o mlp.h mlp.c mlp.json
    tessel compile model.graph --emit asm --emit ir     # also model.s and model.graph (optimized)

Everything is written to a temporary folder next to the output and moved into place only when
all of it succeeded, so an error never leaves a partial artifact behind.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from codegen.aot import Library, aot_target, compile_library, link_shared
from codegen.executable import native_ready
from compiler.cliargs import Subparsers, add_pipeline_args, add_tpu_args, pipeline_options
from compiler.cmd_run import entry_function, load, output_names
from compiler.cmd_tpu import compile_tpu
from compiler.driver import optimize
from compiler.graphview import to_dot
from compiler.staging import write_atomically
from ir.diagnostics import TesselError
from ir.printer import WeightSink, print_module
from runtime.aot import metadata_digest

EMIT_KINDS = ("so", "obj", "ir", "dot", "llvm", "asm", "tpu-asm", "tpu-bin")


def _default_name(path: str) -> str:
    stem = re.sub(r"\W+", "_", Path(path).stem).strip("_") or "model"
    return stem if not stem[0].isdigit() else f"m_{stem}"


def cmd_compile(args: argparse.Namespace) -> int:
    name = args.name or _default_name(args.file)
    if not name.isidentifier():
        raise TesselError(f"--name: {name!r} is not a C identifier")
    if args.target == "tpu" or any(e.startswith("tpu-") for e in args.emit or []):
        return compile_tpu(args, name, args.emit or ["tpu-bin", "tpu-asm"])
    emit = args.emit or ["so"]
    module = load(args.file)
    opts = pipeline_options(args, "cpu", name)
    optimized, ctx = optimize(module, opts)
    fn = entry_function(native_ready(optimized), args.entry)
    facts = {"source": str(args.file), "entry": fn.name, "pipeline": opts.pipeline_text()}
    library = compile_library(
        fn, name, aot_target(args.cpu), args.opt_level, args.weights == "external",
        facts=facts, output_names=output_names(fn),
        assignment=ctx.analyses.get("buffer-assign", {}).get(fn.name),
    )  # fmt: skip
    out = Path(args.output)
    return write_atomically(out, lambda staging: _write(library, optimized, emit, staging, out))


def _write(
    library: Library, optimized: object, emit: list[str], folder: Path, final: Path
) -> list[str]:
    """Every requested artifact, into `folder`; returns the file names. `final` is where they
    end up: NAME.graph refers to weight files relative to it, not to the staging folder."""
    name = library.name
    files: list[str] = []
    if "so" in emit:
        link_shared(library, folder)
        files += [f"lib{name}.so", f"{name}.o", f"{name}.h", f"{name}.c"]
    elif "obj" in emit:
        (folder / f"{name}.o").write_bytes(library.object_code)
        (folder / f"{name}.h").write_text(library.header)
        (folder / f"{name}.c").write_text(library.source)
        files += [f"{name}.o", f"{name}.h", f"{name}.c"]
        # NAME.o calls tessel's precompiled routines (the GEMM library): without their object
        # files it cannot be linked
        for file_name, code in library.runtime_objects.items():
            (folder / f"{name}_{file_name}").write_bytes(code)
            files.append(f"{name}_{file_name}")
    if "so" in emit or "obj" in emit:
        sealed = {**library.metadata, "digest": metadata_digest(library.metadata)}
        (folder / f"{name}.json").write_text(json.dumps(sealed, indent=1) + "\n")
        files.append(f"{name}.json")
        if library.weights is not None:
            (folder / f"{name}.weights").write_bytes(library.weights)
            files.append(f"{name}.weights")
    if "ir" in emit:
        weights = WeightSink(final / f"{name}.ir.npz")  # what NAME.graph refers to
        text = print_module(optimized, base_dir=final, weights=weights)  # type: ignore[arg-type]
        weights.path = (folder / f"{name}.ir.npz").absolute()  # written here, moved there
        weights.save()
        (folder / f"{name}.graph").write_text(text)
        files += [f"{name}.graph"] + ([f"{name}.ir.npz"] if weights.arrays else [])
    if "dot" in emit:
        (folder / f"{name}.dot").write_text(to_dot(optimized.entry_function))  # type: ignore[attr-defined]
        files.append(f"{name}.dot")
    if "llvm" in emit:
        (folder / f"{name}.ll").write_text(library.ir_before)
        (folder / f"{name}.opt.ll").write_text(library.ir_after)
        files += [f"{name}.ll", f"{name}.opt.ll"]
    if "asm" in emit:
        (folder / f"{name}.s").write_text(library.asm)
        files.append(f"{name}.s")
    return files


def _add_compile(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compile",
        help="compile a graph file ahead of time into a shared library with a C header",
    )
    p.add_argument("file", help="graph file")
    p.add_argument("-o", "--output", default=".", metavar="OUTDIR", help="output folder")
    p.add_argument("--target", choices=["cpu", "tpu"], default="cpu")
    p.add_argument("--entry", help="function to compile instead of the module's entry")
    p.add_argument(
        "--name", help="C name of the model: libNAME.so, NAME.h, int NAME(...) (default: file)"
    )
    p.add_argument(
        "--emit",
        action="append",
        default=[],
        choices=EMIT_KINDS,
        help="so (default: libNAME.so, NAME.o, NAME.h, NAME.c, NAME.json), obj (the same "
        "without the .so), ir (optimized graph), dot, llvm, asm; with --target tpu: tpu-bin, "
        "tpu-asm (the default: NAME.tpu.json and its stages) and ir; repeatable",
    )
    p.add_argument(
        "--cpu",
        default="native",
        metavar="CPU",
        help="native (default), x86-64-v4, x86-64-v3, x86-64-v2, generic (any x86-64), or an "
        "LLVM CPU name",
    )
    p.add_argument(
        "-O",
        dest="opt_level",
        type=int,
        choices=range(4),
        default=3,
        metavar="LEVEL",
        help="LLVM optimization level 0-3 (-O0 ... -O3, default -O3)",
    )
    p.add_argument(
        "--weights",
        choices=["embedded", "external"],
        default="embedded",
        help="constants in the library (default) or in NAME.weights beside it",
    )
    add_tpu_args(p)
    add_pipeline_args(p, emit=False)
    return p


VERBS = {"compile": (_add_compile, cmd_compile)}
