"""The worker process: `python -m compiler.fuzz.worker SCRATCH` runs cases sent on stdin.

Protocol, one JSON object per line: the parent sends `{"kind": ..., "case": {...}}`; the worker
answers `{"stage": ...}` as each stage of the case starts, then `{"outcome": {...}}`. File
descriptor 1 carries only these messages: everything the code under test prints (the CLI's
summaries, LLVM's and the C compiler's chatter) goes to stderr, which the parent keeps in a
file for crash reports.

Each fuzzer module provides `execute(case, ctx) -> Outcome`; an exception escaping it is the
case's `traceback` outcome, a native crash ends this process and the parent counts it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from compiler.fuzz.outcome import Outcome, from_exception

# kind -> the module whose `execute` runs its cases (imported on first use)
EXECUTORS = {
    "graphs": "compiler.fuzz.graphs",
    "pipelines": "compiler.fuzz.pipelines",
    "parser": "compiler.fuzz.parser_mutator",
    "inputs": "compiler.fuzz.inputs",
    "cache": "compiler.fuzz.cache",
    "numpy": "compiler.fuzz.numpy_programs",
    "selftest": "compiler.fuzz.selftest",  # the harness's own tests
}


@dataclass
class Context:
    """What an executor gets besides its case: progress reports, a scratch folder, and state
    that lives as long as the worker (compiled functions, pristine artifacts)."""

    scratch: Path
    send: Callable[[dict[str, Any]], None]
    state: dict[str, Any] = field(default_factory=dict)
    stage: str = "start"

    def progress(self, stage: str) -> None:
        self.stage = stage
        self.send({"stage": stage})

    @staticmethod
    def cli(argv: list[str]) -> tuple[int, str]:
        """`tessel ARGV` in this process, as `python -m compiler` runs it: (exit status,
        everything it printed). An exception it lets escape is the user's traceback."""
        from compiler.cli import main

        log = io.StringIO()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            try:
                status = main(argv)
            except SystemExit as e:  # argparse's own errors: status 2 and a usage line
                status = e.code if isinstance(e.code, int) else 1
        return status, log.getvalue()


def _protocol_stream() -> TextIO:
    """A private copy of stdout for messages; fd 1 and sys.stdout then point at stderr."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def _limit_memory() -> None:
    limit = int(os.environ.get("TESSEL_FUZZ_MEMORY", "0"))
    if limit > 0:  # a graph with a huge dimension gets MemoryError, not the machine's swap
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv: list[str]) -> int:
    proto = _protocol_stream()

    def send(message: dict[str, Any]) -> None:
        proto.write(json.dumps(message) + "\n")
        proto.flush()

    _limit_memory()
    scratch = Path(argv[0] if argv else ".").absolute()
    scratch.mkdir(parents=True, exist_ok=True)
    ctx = Context(scratch, send)
    send({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        ctx.stage = "start"
        try:
            module = importlib.import_module(EXECUTORS[request["kind"]])
            outcome: Outcome = module.execute(request["case"], ctx)
        except Exception as e:  # the case's result, reported to the parent
            outcome = from_exception(ctx.stage, e)
        send({"outcome": outcome.to_json()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
