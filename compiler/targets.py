"""The targets a module can be compiled for, one row each: interp, cpu, tpu.

A row says everything the front doors need to know about a target: its default pipeline
(built from the options, e.g. the CPU's capabilities or the chip's multiplier), how it turns an
optimized module into an `Executable`, what it can do, and what it reports after a run. Adding a
target is one row here and the code it names; nothing else branches on a target's name.

An `Executable`'s `run(args)` takes the entry function's arguments (checked against its
signature before anything runs) and returns numpy arrays; `artifacts()` gives what was generated
(LLVM IR, assembly, TPU listings) for `--emit`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import codegen.tpu.place  # noqa: F401  (registers tpu-place: the TPU target's own pass)
from ir.diagnostics import TesselError
from ir.graph import Module
from passes.pipelines import cpu_pipeline, interp_pipeline, tpu_pipeline


@dataclass
class Executable:
    run: Callable[[Sequence[np.ndarray]], list[np.ndarray]]
    artifacts: Callable[[], dict[str, str]] = field(default=lambda: {})
    # for callers that already checked each array's shape, dtype and layout (@jit's cache key)
    run_unchecked: Callable[[Sequence[np.ndarray]], list[np.ndarray]] | None = None
    native: Any = None  # the target's own object (CpuExecutable, TpuExecutable)
    report: Callable[[], str] | None = None  # after a run: what the target has to say about it


@dataclass(frozen=True)
class TargetOptions:
    threads: int | None = None  # None: TESSEL_NUM_THREADS or the available cores
    cpu: str = "native"  # the CPU code is built for: native, x86-64-v4/-v3/-v2, generic
    tpu: str = "tpu-v1"  # the simulated chip (runtime/tpu/config.py presets)
    tpu_timing: str = "native"  # or "compat": the serialized analytic model


@dataclass(frozen=True)
class Target:
    name: str
    summary: str
    pipeline: Callable[[TargetOptions], str]  # the default pass pipeline
    # (optimized module, entry, options, the pipeline's analyses) -> what runs it
    prepare: Callable[[Module, str | None, TargetOptions, Mapping[str, Any]], Executable]
    capabilities: Callable[[TargetOptions], str]  # one line: what it can do with these options
    generates_code: bool = False  # --emit llvm/asm/ir have something to show
    disk_cache: bool = False  # @jit may keep its compiled code on disk
    check: Callable[[TargetOptions], None] = lambda options: None  # refuse bad options early


# --- interp ---------------------------------------------------------------------------------


def _interp(
    module: Module, entry: str | None, options: TargetOptions, analyses: Mapping[str, Any]
) -> Executable:
    from runtime.interp import run_module

    return Executable(lambda args: run_module(module, args, entry=entry))


# --- cpu ------------------------------------------------------------------------------------


def cpu_caps(options: TargetOptions) -> Any:
    """The CpuCaps the code is built for (loads LLVM only when asked)."""
    from codegen.jit import host_target

    return host_target(options.cpu).caps


def _cpu_pipeline(options: TargetOptions) -> str:
    from codegen.gemm_bf16 import supported

    return cpu_pipeline(bf16_dots=supported(cpu_caps(options)))


def _cpu(
    module: Module, entry: str | None, options: TargetOptions, analyses: Mapping[str, Any]
) -> Executable:
    from codegen.executable import CpuExecutable
    from codegen.jit import host_target

    target = host_target(options.cpu)
    assignments = analyses.get("buffer-assign")  # the pipeline's: not assigned twice
    exe = CpuExecutable(module, entry, options.threads, target, assignments)

    def artifacts() -> dict[str, str]:
        return {"ll": exe.llvm_ir, "opt.ll": exe.llvm_ir_optimized, "s": exe.compiled.asm()}

    return Executable(exe.run, artifacts, exe.run_unchecked, exe)


def cpu_from_payload(spec: dict[str, Any], code: bytes, options: TargetOptions) -> Executable:
    """A CPU executable from cached object code and its JSON description (no IR, no passes)."""
    from codegen.executable import CpuExecutable

    exe = CpuExecutable.from_payload(spec, code, threads=options.threads)
    return Executable(exe.run, lambda: {}, exe.run_unchecked, exe)


# --- tpu ------------------------------------------------------------------------------------


def tpu_config(options: TargetOptions) -> Any:
    from runtime.tpu.config import preset

    try:
        return preset(options.tpu)
    except ValueError as e:
        raise TesselError(f"tpu={options.tpu!r}: {e}") from None


def tpu_executable(
    module: Module, entry: str | None, options: TargetOptions, host: str = "cpu"
) -> Any:
    """A TpuExecutable of a placed module, its host stages compiled for the `host` target."""
    from codegen.tpu.build import compile_tpu

    exe = compile_tpu(module, entry, tpu_config(options), options.tpu_timing)
    attach_hosts(exe, options, host)
    return exe


def attach_hosts(exe: Any, options: TargetOptions, host: str = "cpu") -> None:
    """Give a TpuExecutable's host stages the `host` target's pipeline and executable."""
    from codegen.tpu.build import prepare_hosts

    row = target(host)
    host_options = TargetOptions(threads=options.threads, cpu=options.cpu)
    prepare_hosts(
        exe, row.pipeline(host_options), lambda m, a: row.prepare(m, None, host_options, a)
    )


def _tpu(
    module: Module, entry: str | None, options: TargetOptions, analyses: Mapping[str, Any]
) -> Executable:
    from runtime.tpu.asm import listing

    exe = tpu_executable(module, entry, options)

    def artifacts() -> dict[str, str]:
        # numbered as the compiled package and the report number them (host stages count)
        return {
            f"stage{k}.tasm": listing(p.instructions)
            for k, p in zip(exe.tpu_stages, exe.programs, strict=True)
        }

    return Executable(exe.run, artifacts, None, exe, lambda: str(exe.report()))


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "interp",
            "the NumPy reference interpreter: every op's meaning, no code generated",
            lambda options: interp_pipeline(),
            _interp,
            lambda options: "every op and dtype, in NumPy",
        ),
        Target(
            "cpu",
            "LLVM code for this machine's CPU (or --cpu LEVEL), multi-threaded",
            _cpu_pipeline,
            _cpu,
            lambda options: cpu_caps(options).summary(),
            generates_code=True,
            disk_cache=True,
        ),
        Target(
            "tpu",
            "instruction streams for a simulated systolic-array TPU; the host runs the rest",
            lambda options: tpu_pipeline(tpu_config(options).multiplier),
            _tpu,
            lambda options: f"{options.tpu}: {tpu_config(options).multiplier} multipliers",
            check=tpu_config,
        ),
    )
}


def target(name: str) -> Target:
    if name not in TARGETS:
        raise TesselError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}")
    return TARGETS[name]


def default_pipeline(name: str, options: TargetOptions | None = None) -> str:
    """The pipeline `name` runs by default with `options` (default: this machine)."""
    return target(name).pipeline(options or TargetOptions())


def prepare(
    name: str, module: Module, entry: str | None = None, options: TargetOptions | None = None,
    analyses: Mapping[str, Any] | None = None,
) -> Executable:  # fmt: skip
    """`module` (optimized for `name`) ready to run; `analyses` are its pipeline's results
    (PassContext.analyses), which the target may use instead of computing them again."""
    return target(name).prepare(module, entry, options or TargetOptions(), analyses or {})
