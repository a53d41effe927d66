"""Running a pipeline: passes in order, the verifier after each, and instruments watching.

Instruments (timing, dumps, printing IR) see every step through one small interface, so the
pass-by-pass dumps, `--pass-timing` and `tessel bisect` all observe the same run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from ir.diagnostics import TesselError, VerifyError
from ir.graph import Module
from ir.verify import verify_module
from passes.base import Pass, PassContext


class PassVerifyError(TesselError):
    """A pass produced IR that the verifier rejects: a bug in that pass."""


def op_count(module: Module) -> int:
    return sum(len(f.body) for f in module.functions)


@dataclass(frozen=True)
class PassRecord:
    index: int  # 1-based position in the pipeline; 0 is the input
    name: str
    spec: str
    seconds: float
    ops_before: int
    ops_after: int
    changed: bool
    module: Module  # the IR after this pass
    # what this run of the pass remarked, as (key, text) in ctx.remarks: a pipeline that runs
    # a pass twice keeps each run's remarks apart, though ctx.remarks files both under its name
    remarks: tuple[tuple[str, str], ...] = ()


class Instrument:
    """Observer of a pipeline run; every hook is optional."""

    def before_pipeline(self, module: Module, ctx: PassContext) -> None:
        pass

    def before_pass(self, index: int, p: Pass, module: Module, ctx: PassContext) -> None:
        pass

    def after_pass(self, record: PassRecord, before: Module, ctx: PassContext) -> None:
        pass

    def after_pipeline(self, module: Module, ctx: PassContext) -> None:
        pass


class PassManager:
    def __init__(
        self,
        passes: Sequence[Pass],
        instruments: Sequence[Instrument] = (),
        verify_each: bool = False,
    ) -> None:
        self.passes = list(passes)
        self.instruments = list(instruments)
        self.verify_each = verify_each

    def run(self, module: Module, ctx: PassContext | None = None) -> Module:
        ctx = ctx if ctx is not None else PassContext()
        for inst in self.instruments:
            inst.before_pipeline(module, ctx)
        for index, p in enumerate(self.passes, start=1):
            before = module
            for inst in self.instruments:
                inst.before_pass(index, p, module, ctx)
            marks = {key: len(lines) for key, lines in ctx.remarks.items()}
            start = time.perf_counter()
            try:
                module = p.run(module, ctx)
            except Exception as e:
                if not isinstance(e, TesselError):
                    e.add_note(f"tessel: while running pass #{index} '{p.spec()}'")
                raise
            seconds = time.perf_counter() - start
            if self.verify_each:
                self._verify(index, p, module)
            record = PassRecord(
                index, p.name, p.spec(), seconds, op_count(before), op_count(module),
                changed=module is not before and module != before, module=module,
                remarks=_new_remarks(ctx, marks),
            )  # fmt: skip
            for inst in self.instruments:
                inst.after_pass(record, before, ctx)
        for inst in self.instruments:
            inst.after_pipeline(module, ctx)
        return module

    @staticmethod
    def _verify(index: int, p: Pass, module: Module) -> None:
        try:
            verify_module(module)
        except VerifyError as e:
            raise PassVerifyError(
                f"pass #{index} '{p.spec()}' produced invalid IR: {e.message}", e.loc
            ) from None


def _new_remarks(ctx: PassContext, marks: dict[str, int]) -> tuple[tuple[str, str], ...]:
    """The remarks added to `ctx` since `marks` (each key's count then) were taken."""
    return tuple(
        (key, text) for key, lines in ctx.remarks.items() for text in lines[marks.get(key, 0) :]
    )
