"""Command-line flags for the pass pipeline, shared by every verb that optimizes a graph."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import TextIO, TypeAlias

from codegen.jit import CPU_CHOICES
from compiler.driver import PipelineOptions
from compiler.elide import elide_constants
from compiler.targets import Executable, TargetOptions
from ir.diagnostics import TesselError
from ir.files import write_text_atomic

# --emit choices for generated code, and the suffix each is written with
CODE_ARTIFACTS = {"llvm": "ll", "llvm-opt": "opt.ll", "asm": "s"}

# what add_subparsers returns; subscriptable for the type checker only
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip() for n in text.split(",") if n.strip())


def add_pipeline_args(p: argparse.ArgumentParser, emit: bool = True) -> None:
    """The pipeline and dump flags; `emit=False` leaves --emit to the verb (tessel compile)."""
    g = p.add_argument_group("pipeline and IR dumps")
    g.add_argument(
        "-p",
        "--pipeline",
        help="passes to run, e.g. 'canonicalize,fold,cse,fuse{max-ops=16}'"
        " (default: the target's pipeline; `tessel passes` lists them)",
    )
    g.add_argument(
        "--verify-each", action="store_true", help="run the IR verifier after every pass"
    )
    g.add_argument("--pass-timing", action="store_true", help="print time and op counts per pass")
    g.add_argument(
        "--print-ir-after-all", action="store_true", help="print the IR after every pass"
    )
    g.add_argument("--print-ir-after", type=_names, default=frozenset(), metavar="PASS[,PASS]")
    g.add_argument(
        "--print-ir-after-change",
        action="store_true",
        help="print the IR after passes that changed it",
    )
    g.add_argument("--print-ir-before", type=_names, default=frozenset(), metavar="PASS[,PASS]")
    g.add_argument(
        "--dump-dir",
        type=Path,
        metavar="DIR",
        help="write numbered graph files per pass and an index.html report to DIR/<name>/",
    )
    g.add_argument(
        "--dump-filter", metavar="REGEX", help="only dump/print passes whose name matches"
    )
    g.add_argument(
        "--dump-skip-unchanged",
        action="store_true",
        help="no dump file for passes that changed nothing",
    )
    if emit:
        add_emit_arg(g)
    g.add_argument(
        "--explain-fusion",
        action="store_true",
        help="list producer-consumer pairs not fused, and why",
    )
    g.add_argument(
        "--report-memory", action="store_true", help="print buffer assignment: peak vs total bytes"
    )


def add_emit_arg(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--emit",
        action="append",
        default=[],
        choices=["dot", *CODE_ARTIFACTS],
        help="dot: a .dot file per stage (with --dump-dir); llvm, llvm-opt, asm: the generated "
        "code (cpu backend), into the dump folder or else printed; repeatable",
    )


def _check_pass_names(flag: str, names: frozenset[str]) -> None:
    from passes import REGISTRY

    for name in sorted(names - set(REGISTRY)):
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise TesselError(f"{flag}: no pass named '{name}'{hint}")


def pipeline_options(args: argparse.Namespace, target: str, name: str) -> PipelineOptions:
    _check_pass_names("--print-ir-after", args.print_ir_after)
    _check_pass_names("--print-ir-before", args.print_ir_before)
    if "dot" in args.emit and args.dump_dir is None and args.verb not in ("opt", "compile"):
        raise TesselError("--emit dot writes one .dot file per stage: give --dump-dir too")
    return PipelineOptions(
        target=target,
        pipeline=args.pipeline,
        verify_each=args.verify_each,
        pass_timing=args.pass_timing,
        print_ir_after_all=args.print_ir_after_all,
        print_ir_after=args.print_ir_after,
        print_ir_after_change=args.print_ir_after_change,
        print_ir_before=args.print_ir_before,
        dump_dir=args.dump_dir,
        dump_filter=args.dump_filter,
        dump_skip_unchanged=args.dump_skip_unchanged,
        emit_dot="dot" in args.emit and args.dump_dir is not None,
        explain_fusion=args.explain_fusion,
        report_memory=args.report_memory,
        name=name,
        tpu=getattr(args, "tpu", "tpu-v1"),
        cpu=getattr(args, "cpu", "native"),
    )


def add_io_args(p: argparse.ArgumentParser) -> None:
    """--input, --seed and --output: what a run reads and writes."""
    p.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="NAME=FILE.npy",
        help="an input array (repeatable); FILE.npz supplies inputs by key; "
        "parameters not given get deterministic random values",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs (default 0)")
    p.add_argument("--output", "-o", metavar="DIR", help="save each output as DIR/<name>.npy")


def add_backend_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("backend")
    g.add_argument(
        "--threads", type=int, help="worker threads (default: TESSEL_NUM_THREADS or all cores)"
    )
    g.add_argument(
        "--cpu",
        default="native",
        choices=CPU_CHOICES,
        help="LLVM target CPU (default: this machine)",
    )


def add_tpu_args(p: argparse.ArgumentParser, chip: bool = True) -> None:
    g = p.add_argument_group("tpu")
    if chip:  # not for a compiled program: it names its chip
        g.add_argument(
            "--tpu",
            default="tpu-v1",
            metavar="PRESET",
            help="the simulated chip: tpu-v1, tpu-v2-core, tiny-4x4, tiny-8x8, with "
            "overrides after a colon (tpu-v1:rows=512,cols=512); docs/tpu.md",
        )
    g.add_argument(
        "--tpu-timing",
        choices=["native", "compat"],
        default="native",
        help="native: the chip's overlapped model; compat: SCALE-Sim's serialized one",
    )
    g.add_argument(
        "--trace",
        metavar="FILE",
        help="write the run's timeline (Chrome trace JSON: chrome://tracing, ui.perfetto.dev)",
    )
    g.add_argument(
        "--tpu-report", metavar="DIR", help="write the run's report, stats, trace and plots to DIR"
    )


def backend_options(args: argparse.Namespace) -> TargetOptions:
    if args.threads is not None and args.threads < 1:
        raise TesselError(f"--threads must be at least 1, got {args.threads}")
    tpu = getattr(args, "tpu", "tpu-v1")
    if hasattr(args, "tpu"):
        from runtime.tpu.config import preset

        try:
            preset(tpu)
        except ValueError as e:
            raise TesselError(f"--tpu: {e}") from None
    return TargetOptions(
        threads=args.threads,
        cpu=args.cpu,
        tpu=tpu,
        tpu_timing=getattr(args, "tpu_timing", "native"),
    )


def write_artifacts(
    executable: Executable, args: argparse.Namespace, stream: TextIO, whole: bool = False
) -> None:
    """The generated code named by --emit: into the dump folder if there is one, else `stream`.
    Printed code has its long constant data elided (megabytes of weights), unless `whole`
    (`stream` is on its way to a file); the dump folder's files are always whole."""
    wanted = [CODE_ARTIFACTS[e] for e in args.emit if e in CODE_ARTIFACTS]
    if not wanted:
        return
    produced = executable.artifacts()
    if not produced:
        raise TesselError(f"--emit {', '.join(args.emit)}: this backend generates no code")
    missing = [e for e in args.emit if e in CODE_ARTIFACTS and CODE_ARTIFACTS[e] not in produced]
    if missing:
        raise TesselError(
            f"--emit {', '.join(missing)}: this backend does not generate it "
            f"(it generates {', '.join(produced)})"
        )
    elided = 0
    for suffix in wanted:
        if args.dump_dir is not None:
            path = args.dump_dir / Path(args.file).stem / f"kernels.{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, produced[suffix])
            print(f"wrote {path}", file=sys.stderr)
        elif whole:
            stream.write(produced[suffix])
        else:
            short = elide_constants(produced[suffix], suffix)
            stream.write(short.text)
            elided += short.bytes
    if elided:
        whole_flags = "--dump-dir DIR" + (" or -o FILE" if args.verb == "opt" else "")
        print(
            f"note: {elided} bytes of constant data elided from the printed code; "
            f"{whole_flags} writes it whole",
            file=sys.stderr,
        )
