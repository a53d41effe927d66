"""What users see while a pipeline runs: IR printing, pass timing, and pass-by-pass dumps."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ir.files import write_text_atomic
from ir.graph import Module
from ir.printer import WeightSink, print_module
from passes.base import Pass, PassContext
from passes.manager import Instrument, PassRecord, op_count


@dataclass
class PrintIR(Instrument):
    """--print-ir-after-all, --print-ir-after=P, --print-ir-after-change, --print-ir-before=P."""

    after_all: bool = False
    after: frozenset[str] = frozenset()
    after_change: bool = False
    before: frozenset[str] = frozenset()
    name_filter: re.Pattern[str] | None = None
    stream: TextIO = field(default_factory=lambda: sys.stderr)

    def _wanted(self, name: str) -> bool:
        return self.name_filter is None or bool(self.name_filter.search(name))

    def before_pass(self, index: int, p: Pass, module: Module, ctx: PassContext) -> None:
        if p.name in self.before and self._wanted(p.name):
            self._emit(f"IR before {p.spec()} (pass {index})", module)

    def after_pass(self, record: PassRecord, before: Module, ctx: PassContext) -> None:
        if not self._wanted(record.name):
            return
        show = self.after_all or record.name in self.after
        show = show or (self.after_change and record.changed)
        if show:
            note = "" if record.changed else ", no change"
            self._emit(f"IR after {record.spec} (pass {record.index}{note})", record.module)

    def _emit(self, title: str, module: Module) -> None:
        # '#' starts a comment in graph files, so the printed stream stays parseable per module
        self.stream.write(f"# ===== {title} =====\n{print_module(module)}\n")


@dataclass
class Timing(Instrument):
    """--pass-timing: one row per pass with wall time, op counts and whether anything changed."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    rows: list[PassRecord] = field(default_factory=list)

    def after_pass(self, record: PassRecord, before: Module, ctx: PassContext) -> None:
        self.rows.append(record)

    def after_pipeline(self, module: Module, ctx: PassContext) -> None:
        self.stream.write(format_timing(self.rows) + "\n")


def format_timing(rows: list[PassRecord]) -> str:
    width = max([len("pass"), *(len(r.spec) for r in rows)])
    lines = [
        f"{'#':>3}  {'pass':<{width}}  {'time ms':>9}  {'ops before':>10}  "
        f"{'ops after':>9}  changed"
    ]
    for r in rows:
        lines.append(
            f"{r.index:>3}  {r.spec:<{width}}  {r.seconds * 1e3:>9.3f}  {r.ops_before:>10}  "
            f"{r.ops_after:>9}  {'yes' if r.changed else 'no'}"
        )
    total = sum(r.seconds for r in rows) * 1e3
    lines.append(f"{'':>3}  {'total':<{width}}  {total:>9.3f}")
    return "\n".join(lines)


@dataclass
class Dump(Instrument):
    """--dump-dir: the IR before the first pass and after each pass, as numbered graph files.

    Every file is a complete graph file: large constants that no file holds yet go to one
    `weights.npz` in the same folder, and references to the user's weights are relative paths.
    """

    folder: Path
    skip_unchanged: bool = False
    name_filter: re.Pattern[str] | None = None
    extra: dict[str, Callable[[Module], str]] = field(default_factory=dict)  # suffix -> exporter
    files: list[tuple[PassRecord, Path | None]] = field(default_factory=list)

    def before_pipeline(self, module: Module, ctx: PassContext) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob("[0-9][0-9][0-9]-*"):
            stale.unlink()  # a previous run's dumps would be mistaken for this run's
        self.weights = WeightSink(self.folder / "weights.npz")
        count = op_count(module)
        record = PassRecord(0, "input", "input", 0.0, count, count, True, module)
        self.files.append((record, self._write(record)))

    def after_pass(self, record: PassRecord, before: Module, ctx: PassContext) -> None:
        wanted = self.name_filter is None or self.name_filter.search(record.name)
        if not wanted or (self.skip_unchanged and not record.changed):
            self.files.append((record, None))
            return
        self.files.append((record, self._write(record)))

    def _write(self, record: PassRecord) -> Path:
        mark = "" if record.changed else "-unchanged"
        stem = f"{record.index:03d}-{record.name}{mark}"
        path = self.folder / f"{stem}.graph"
        header = (
            f"# tessel dump {record.index}: after {record.spec}"
            if record.index
            else "# tessel dump 0: input"
        )
        text = print_module(record.module, base_dir=self.folder, weights=self.weights)
        self.weights.save()  # before the graph that refers to it
        write_text_atomic(path, f"{header}\n{text}")
        for suffix, export in self.extra.items():
            write_text_atomic(self.folder / f"{stem}.{suffix}", export(record.module))
        return path
