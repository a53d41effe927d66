"""`tessel opt`, `tessel passes` and `tessel bisect`: the pass pipeline as a command-line tool."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from compiler.bisect import bisect, side_by_side, write_bad_step
from compiler.cliargs import (
    CODE_ARTIFACTS,
    Subparsers,
    add_backend_args,
    add_pipeline_args,
    backend_options,
    pipeline_options,
    write_artifacts,
)
from compiler.cmd_run import entry_function, gather_inputs, load
from compiler.driver import optimize
from compiler.graphview import to_dot
from compiler.targets import TARGETS, TargetOptions, default_pipeline, prepare, target
from ir.diagnostics import TesselError
from ir.files import write_text_atomic
from ir.printer import WeightSink, print_module
from passes import REGISTRY, parse_pipeline
from passes.base import format_option


def cmd_opt(args: argparse.Namespace) -> int:
    module = load(args.file)
    out, ctx = optimize(module, pipeline_options(args, args.target, Path(args.file).stem))
    if any(e in CODE_ARTIFACTS for e in args.emit):
        if not target(args.target).generates_code:
            raise TesselError(f"--emit {args.emit[-1]} needs --target cpu")
        executable = prepare(args.target, out, None, backend_options(args), ctx.analyses)
        if args.output is None:
            write_artifacts(executable, args, sys.stdout)
        else:
            buffer = io.StringIO()
            write_artifacts(executable, args, buffer, whole=True)
            write_text_atomic(args.output, buffer.getvalue())
        return 0
    if "dot" in args.emit and args.dump_dir is None:  # the optimized graph as DOT
        text = to_dot(out.entry_function)
        if args.output is None:
            sys.stdout.write(text)
        else:
            write_text_atomic(args.output, text)
        return 0
    if args.output is None:
        sys.stdout.write(print_module(out))
        return 0
    path = Path(args.output)
    weights = WeightSink(path.with_suffix(".weights.npz"))
    text = print_module(out, base_dir=path.parent, weights=weights)
    weights.save()
    write_text_atomic(path, text)
    return 0


def cmd_passes(args: argparse.Namespace) -> int:
    width = max(len(n) for n in REGISTRY)
    for name in sorted(REGISTRY):
        cls = REGISTRY[name]
        print(f"{name:<{width}}  {cls.summary()}")
        for f in cls.option_fields():
            print(f"{'':<{width}}    {f.name.replace('_', '-')}={format_option(f.default)}")
    print("\ntargets (on this machine): what each can do, and its default pipeline")
    for name, row in TARGETS.items():
        print(f"  {name:<7} {row.capabilities(TargetOptions())}")
        print(f"  {'':<7} {default_pipeline(name)}")
    return 0


def cmd_bisect(args: argparse.Namespace) -> int:
    module = load(args.file)
    fn = entry_function(module, args.entry)
    inputs = gather_inputs(fn, args.input, args.seed)
    text = args.pipeline if args.pipeline is not None else default_pipeline(args.target)
    passes = parse_pipeline(text)
    steps, bad = bisect(module, passes, inputs, args.rtol, args.atol, entry=fn.name)
    for step in steps:
        print(f"{step.index:>3}  {step.spec:<40} {'DIFFERS' if step.mismatch else 'ok'}")
    if bad is None:
        print(f"all {len(steps)} passes keep the outputs within rtol={args.rtol}, atol={args.atol}")
        return 0
    print(f"\nfirst differing pass: #{bad.index} '{bad.spec}'\n  {bad.mismatch}\n")
    print(side_by_side(print_module(bad.before), print_module(bad.after)))
    if args.dump_dir:
        for path in write_bad_step(Path(args.dump_dir), bad):
            print(f"wrote {path}", file=sys.stderr)
    return 2


def _add_opt(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("opt", help="run a pass pipeline on a graph file and print the result")
    p.add_argument("file", help="graph file")
    p.add_argument(
        "--target", choices=sorted(TARGETS), default="cpu", help="whose default pipeline to use"
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write the IR here (weights next to it)")
    add_backend_args(p)
    add_pipeline_args(p)
    return p


def _add_passes(sub: Subparsers) -> argparse.ArgumentParser:
    return sub.add_parser(
        "passes", help="list every pass with its options, and the default pipelines"
    )


def _add_bisect(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("bisect", help="find the first pass that changes a graph's outputs")
    p.add_argument("file", help="graph file")
    p.add_argument("-i", "--input", action="append", default=[], metavar="NAME=FILE.npy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--entry")
    p.add_argument("-p", "--pipeline", help="passes to check (default: the target's pipeline)")
    p.add_argument("--target", choices=sorted(TARGETS), default="cpu")
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--atol", type=float, default=1e-6)
    p.add_argument("--dump-dir", metavar="DIR", help="write the IR before/after the bad pass here")
    return p


VERBS = {
    "opt": (_add_opt, cmd_opt),
    "passes": (_add_passes, cmd_passes),
    "bisect": (_add_bisect, cmd_bisect),
}
