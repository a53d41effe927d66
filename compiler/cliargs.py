"""Command-line flags for the pass pipeline, shared by every verb that optimizes a graph."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TypeAlias

from compiler.driver import PipelineOptions

# what add_subparsers returns; subscriptable for the type checker only
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip() for n in text.split(",") if n.strip())


def add_pipeline_args(p: argparse.ArgumentParser) -> None:
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
    g.add_argument(
        "--emit", choices=["dot"], help="with --dump-dir: also write a .dot file per stage"
    )
    g.add_argument(
        "--explain-fusion",
        action="store_true",
        help="list producer-consumer pairs not fused, and why",
    )
    g.add_argument(
        "--report-memory", action="store_true", help="print buffer assignment: peak vs total bytes"
    )


def pipeline_options(args: argparse.Namespace, target: str, name: str) -> PipelineOptions:
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
        emit_dot=args.emit == "dot",
        explain_fusion=args.explain_fusion,
        report_memory=args.report_memory,
        name=name,
    )
