"""From a parsed module to an optimized one: pipeline selection, instruments, dumps and reports.

`tessel run`, `tessel opt` (and later `@jit` and `tessel compile`) all go through `optimize`, so
every front door offers the same dumps, timing and explanations.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from compiler.instruments import Dump, PrintIR, Timing
from ir.diagnostics import TesselError
from ir.graph import Module
from ir.printer import print_module
from passes import PassContext, PassManager, parse_pipeline
from passes.buffers import BufferAssign, format_memory_report
from passes.manager import Instrument


@dataclass
class PipelineOptions:
    """Everything the command line (or @jit) can say about how to run the pipeline."""

    target: str = "interp"
    pipeline: str | None = None  # None: the target's default pipeline
    verify_each: bool = False
    pass_timing: bool = False
    print_ir_after_all: bool = False
    print_ir_after: frozenset[str] = frozenset()
    print_ir_after_change: bool = False
    print_ir_before: frozenset[str] = frozenset()
    dump_dir: Path | None = None
    dump_filter: str | None = None
    dump_skip_unchanged: bool = False
    emit_dot: bool = False
    explain_fusion: bool = False
    report_memory: bool = False
    name: str = "module"  # the dump sub-folder
    tpu: str = "tpu-v1"  # the TPU target's chip: placement depends on its multiplier
    cpu: str = "native"  # the CPU code is built for: its pipeline depends on the units it has

    extra_instruments: list[Instrument] = field(default_factory=list)

    def pipeline_text(self) -> str:
        if self.pipeline is not None:
            return self.pipeline
        from compiler.targets import TargetOptions, default_pipeline

        return default_pipeline(self.target, TargetOptions(cpu=self.cpu, tpu=self.tpu))


def _regex(text: str | None) -> re.Pattern[str] | None:
    if text is None:
        return None
    try:
        return re.compile(text)
    except re.error as e:
        raise TesselError(f"--dump-filter: invalid regular expression {text!r}: {e}") from None


def optimize(module: Module, opts: PipelineOptions) -> tuple[Module, PassContext]:
    passes = parse_pipeline(opts.pipeline_text())
    name_filter = _regex(opts.dump_filter)
    instruments: list[Instrument] = list(opts.extra_instruments)
    if (
        opts.print_ir_after_all
        or opts.print_ir_after
        or opts.print_ir_after_change
        or opts.print_ir_before
    ):
        instruments.append(
            PrintIR(
                opts.print_ir_after_all,
                opts.print_ir_after,
                opts.print_ir_after_change,
                opts.print_ir_before,
                name_filter,
            )
        )
    timing = Timing() if opts.pass_timing else None
    if timing:
        instruments.append(timing)
    dump = None
    if opts.dump_dir is not None:
        from compiler.graphview import to_dot

        extra = {"dot": lambda m: to_dot(m.entry_function)} if opts.emit_dot else {}
        dump = Dump(opts.dump_dir / opts.name, opts.dump_skip_unchanged, name_filter, extra)
        instruments.append(dump)
    ctx = PassContext()
    out = PassManager(passes, instruments, verify_each=opts.verify_each).run(module, ctx)
    if (opts.report_memory or dump is not None) and "buffer-assign" not in ctx.analyses:
        BufferAssign().run(out, ctx)  # analysis only: the module is unchanged
    if opts.explain_fusion:
        lines = ctx.remarks.get("fuse", [])
        sys.stderr.write(
            "\n".join(lines or ["fuse: no fusion remarks (is 'fuse' in the pipeline?)"]) + "\n"
        )
    if opts.report_memory:
        sys.stderr.write(format_memory_report(ctx.analyses["buffer-assign"]) + "\n")
    if dump is not None:
        _write_report(dump, out, ctx)
    return out, ctx


def _write_report(dump: Dump, module: Module, ctx: PassContext) -> None:
    from compiler.report import write_html_report
    from passes.buffers import lifetime_svg

    assignments = ctx.analyses["buffer-assign"]
    memory = [
        (f"@{fn.name}", lifetime_svg(assignments[fn.name], fn))
        for fn in module.functions
        if fn.name in assignments
    ]
    records = [record for record, _ in dump.files]
    write_html_report(
        dump.folder / "index.html",
        records,
        title=dump.folder.name,
        remarks=ctx.remarks,
        memory_svgs=memory,
        print_ir=lambda m: print_module(m, base_dir=dump.folder, weights=dump.weights),
    )
