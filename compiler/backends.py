"""The executors a module can run on, one row per backend.

A backend turns a verified module into a callable taking the entry function's arguments (already
checked against its signature) and returning numpy arrays. Native backends add rows here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ir.graph import Module
from runtime.interp import run_module

Runner = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


def _interp(module: Module, entry: str | None) -> Runner:
    def run(args: Sequence[np.ndarray]) -> list[np.ndarray]:
        return run_module(module, args, entry=entry)

    return run


def _cpu(module: Module, entry: str | None) -> Runner:
    from runtime.cpu import CpuExecutable  # loads LLVM only when asked for

    executable = CpuExecutable(module, entry)
    return lambda args: executable.run(args)


BACKENDS: dict[str, Callable[[Module, str | None], Runner]] = {
    "interp": _interp,
    "cpu": _cpu,
}


def prepare(backend: str, module: Module, entry: str | None = None) -> Runner:
    return BACKENDS[backend](module, entry)
