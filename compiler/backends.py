"""The executors a module can run on, one row per backend.

A backend turns an optimized module into an `Executable`: `run(args)` takes the entry
function's arguments (checked against its signature before anything runs) and returns numpy
arrays; `artifacts()` gives what was generated (LLVM IR, assembly) for `--emit`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ir.graph import Module
from runtime.interp import run_module


@dataclass
class Executable:
    run: Callable[[Sequence[np.ndarray]], list[np.ndarray]]
    artifacts: Callable[[], dict[str, str]] = field(default=lambda: {})
    # for callers that already checked each array's shape, dtype and layout (@jit's cache key)
    run_unchecked: Callable[[Sequence[np.ndarray]], list[np.ndarray]] | None = None
    native: Any = None  # the backend's own object (CpuExecutable), for caching its code


@dataclass(frozen=True)
class BackendOptions:
    threads: int | None = None  # None: TESSEL_NUM_THREADS or the available cores
    cpu: str = "native"  # LLVM target CPU: native, x86-64-v3, x86-64-v2, generic
    tpu: str = "tpu-v1"  # the simulated chip (runtime/tpu/config.py presets)
    tpu_timing: str = "native"  # or "compat": the serialized analytic model


def _interp(module: Module, entry: str | None, options: BackendOptions) -> Executable:
    return Executable(lambda args: run_module(module, args, entry=entry))


def _cpu(module: Module, entry: str | None, options: BackendOptions) -> Executable:
    from codegen.jit import host_target  # loads LLVM only when asked for
    from runtime.cpu import CpuExecutable

    exe = CpuExecutable(module, entry, threads=options.threads, target=host_target(options.cpu))

    def artifacts() -> dict[str, str]:
        return {"ll": exe.llvm_ir, "opt.ll": exe.llvm_ir_optimized, "s": exe.compiled.asm()}

    return Executable(exe.run, artifacts, exe.run_unchecked, exe)


def cpu_from_payload(spec: dict[str, Any], code: bytes, options: BackendOptions) -> Executable:
    """A CPU executable from cached object code and its JSON description (no IR, no passes)."""
    from runtime.cpu import CpuExecutable

    exe = CpuExecutable.from_payload(spec, code, threads=options.threads)
    return Executable(exe.run, lambda: {}, exe.run_unchecked, exe)


def _tpu(module: Module, entry: str | None, options: BackendOptions) -> Executable:
    from runtime.tpu.config import preset
    from runtime.tpu.executable import TpuExecutable

    host = BackendOptions(threads=options.threads, cpu=options.cpu)
    exe = TpuExecutable(module, entry, preset(options.tpu), options.tpu_timing, "cpu", host)

    def artifacts() -> dict[str, str]:
        from runtime.tpu.asm import listing

        return {f"stage{i}.tasm": listing(p.instructions) for i, p in enumerate(exe.programs)}

    return Executable(exe.run, artifacts, None, exe)


BACKENDS: dict[str, Callable[[Module, str | None, BackendOptions], Executable]] = {
    "interp": _interp,
    "cpu": _cpu,
    "tpu": _tpu,
}


def prepare(
    backend: str, module: Module, entry: str | None = None, options: BackendOptions | None = None
) -> Executable:
    return BACKENDS[backend](module, entry, options or BackendOptions())
