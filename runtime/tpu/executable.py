"""Running a placed module: host stages on the CPU backend, TPU stages on the simulator.

The report of a run sums the TPU stages (cycles, the stall breakdown, bytes) and keeps each
stage's own simulator result for traces and plots.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ir.graph import Module
from runtime.tpu.config import TpuConfig
from runtime.tpu.program import TpuProgram
from runtime.tpu.sim import Result
from runtime.tpu.stats import RunStats
from runtime.tpu.timing import CATEGORIES


@dataclass
class Step:
    inputs: list[Hashable]  # value keys: graph nodes, or names in a saved program
    outputs: list[Hashable]
    program: TpuProgram | None = None
    host_module: Module | None = None  # a host stage, before its pipeline
    host: Any = None  # what runs it: an object with run(arrays) -> arrays


@dataclass
class TpuRun:
    """What the last run did on the TPU."""

    results: list[Result] = field(default_factory=list)
    when: float = 0.0  # time.monotonic() at the end of the run

    def stats(self, config: TpuConfig, mode: str) -> RunStats:
        total = RunStats(config, mode, 0, dict.fromkeys(CATEGORIES, 0), 0, 0, 0)
        for r in self.results:
            s = r.stats
            total.cycles += s.cycles
            for k in CATEGORIES:
                total.breakdown[k] += s.breakdown[k]
            total.useful_macs += s.useful_macs
            total.array_macs += s.array_macs
            total.instructions += s.instructions
            total.host_read += s.host_read
            total.host_written += s.host_written
            total.weights_read += s.weights_read
            total.matrix_cycles += s.matrix_cycles
        return total


class TpuExecutable:
    """A placed function as host and TPU stages; `run` goes through them in order.

    codegen/tpu/build.py compiles one from a module (runtime/tpu/package.py loads one from
    disk); a host stage runs through whatever `host` object it was given (anything with a
    `run(arrays) -> arrays`: the cpu or interp target's executable)."""

    def __init__(
        self,
        config: TpuConfig,
        mode: str,
        steps: list[Step],
        params: list[Hashable],
        results: list[Hashable],
        constants: dict[Hashable, np.ndarray],
    ) -> None:
        self.config, self.mode, self.steps = config, mode, steps
        self.params, self.results, self.constants = params, results, constants
        self.last = TpuRun()

    @property
    def programs(self) -> list[TpuProgram]:
        return [s.program for s in self.steps if s.program is not None]

    @property
    def tpu_stages(self) -> list[int]:
        """Each TPU stage's number: its place among all the stages, host ones included, which
        is the k of NAME.stage<k>.tbin in a compiled package and of stage<k>/ in a report."""
        return [k for k, s in enumerate(self.steps) if s.program is not None]

    def run(self, args: Sequence[np.ndarray]) -> list[np.ndarray]:
        values: dict[Hashable, np.ndarray] = dict(self.constants)
        values.update(zip(self.params, args, strict=True))
        run = TpuRun()
        for step in self.steps:
            inputs = [values[x] for x in step.inputs]
            if step.program is not None:
                outputs, result = step.program.run(inputs, self.mode)
                run.results.append(result)
            else:
                outputs = step.host.run(inputs)
            values.update(zip(step.outputs, outputs, strict=True))
        run.when = time.monotonic()
        self.last = run
        return [values[r] for r in self.results]

    def report(self) -> str:
        stats = self.last.stats(self.config, self.mode)
        tpu = self.tpu_stages
        host = [k for k in range(len(self.steps)) if k not in tpu]
        lines = [
            stats.report(),
            f"  stages           {len(tpu)} on the TPU{_numbers(tpu)}, "
            f"{len(host)} on the host{_numbers(host)}",
        ]
        problems = [p for r in self.last.results for p in r.problems]
        lines += [f"  problem: {p}" for p in problems]
        return "\n".join(lines)

    def write_report(self, folder: Path) -> None:
        """report.txt and stats.json for the whole run; per TPU stage, its trace and plots in
        stage<k>/ (k as in a compiled package's file names); index.html, tying them together."""
        import json

        from ir.files import write_text_atomic
        from runtime.tpu.reportpage import STAGE_FILES, StagePage, index_html

        folder.mkdir(parents=True, exist_ok=True)
        stats = self.last.stats(self.config, self.mode)
        results = dict(zip(self.tpu_stages, self.last.results, strict=False))
        summary = self.report()
        write_text_atomic(folder / "report.txt", summary + "\n")
        stages = [{"stage": k, **r.stats.as_dict()} for k, r in results.items()]
        write_text_atomic(
            folder / "stats.json",
            json.dumps({"total": stats.as_dict(), "stages": stages}, indent=2) + "\n",
        )
        files = ["report.txt", "stats.json"]
        per_stage: dict[int, list[str]] = {}
        try:
            plots = importlib.import_module("runtime.tpu.plots")
        except ImportError:  # the plots module is optional
            plots = None
        if plots is not None:
            for k, result in results.items():
                written = plots.write_report(result, folder / f"stage{k}", label=f"stage {k}")
                per_stage[k] = [f for f in STAGE_FILES if f in written]
            points = [(f"stage {k}", r.stats) for k, r in results.items()]
            write_text_atomic(
                folder / "roofline.svg",
                plots.roofline_svg([*points, ("whole run", stats)], self.config),
            )
            files.append("roofline.svg")
        pages = [
            StagePage(
                k,
                "tpu" if step.program is not None else "host",
                results[k].stats if k in results else None,
                f"stage{k}" if k in per_stage else None,
                per_stage.get(k, ()),
            )
            for k, step in enumerate(self.steps)
        ]
        title = f"TPU run on {self.config.name} ({self.mode} timing)"
        write_text_atomic(folder / "index.html", index_html(title, summary, pages, files))

    def write_traces(self, path: Path) -> list[Path]:
        """The last run's timeline: `path` for one TPU stage, `stem.stage<k>.json` for several."""
        from runtime.tpu.trace import write_trace

        results = self.last.results
        paths = [path] if len(results) == 1 else [
            path.with_name(f"{path.stem}.stage{k}{path.suffix or '.json'}")
            for k in self.tpu_stages[: len(results)]
        ]  # fmt: skip
        for result, p in zip(results, paths, strict=True):
            write_trace(result, p)
        return paths


def _numbers(stages: list[int]) -> str:
    if not stages:
        return ""
    word = "stage" if len(stages) == 1 else "stages"
    return f" ({word} {', '.join(map(str, stages))})"
