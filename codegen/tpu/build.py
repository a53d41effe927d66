"""A placed module compiled into a TpuExecutable: TPU stages into instruction streams, host stages
into functions that a host target compiles (compiler/targets.py chooses which, cpu or interp).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from codegen.tpu.lower import compile_tpu_stage, is_tpu, split_stages, stage_function
from codegen.tpu.regions import regions_of
from ir.diagnostics import TesselError
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op
from passes import PassContext, PassManager, parse_pipeline
from runtime.tpu.config import TpuConfig
from runtime.tpu.executable import Step, TpuExecutable


def compile_tpu(
    module: Module, entry: str | None, config: TpuConfig, mode: str = "native"
) -> TpuExecutable:
    """The stages of `entry`, TPU ones compiled; host ones wait for `prepare_hosts`."""
    fn = module.function(entry or module.entry)
    _check_placed(fn, config)
    steps = []
    for stage in split_stages(fn):
        step = Step(list(stage.inputs), list(stage.outputs))
        if stage.device == "tpu":
            step.program = compile_tpu_stage(config, stage)
        else:
            stage_fn = stage_function(fn, stage)
            step.host_module = Module((stage_fn,), stage_fn.name)
        steps.append(step)
    constants: dict[Hashable, np.ndarray] = {
        r: np.asarray(r.attrs["value"].array) for r in fn.results if r.op is Op.CONSTANT
    }
    return TpuExecutable(config, mode, steps, list(fn.params), list(fn.results), constants)


def prepare_hosts(
    exe: TpuExecutable, pipeline: str, compile_host: Callable[[Module, dict[str, Any]], Any]
) -> None:
    """Run `pipeline` on each host stage, then `compile_host(module, analyses)` it (anything
    with a `run`)."""
    for step in exe.steps:
        if step.host_module is not None:
            ctx = PassContext()
            optimized = PassManager(parse_pipeline(pipeline)).run(step.host_module, ctx)
            step.host = compile_host(optimized, ctx.analyses)


def _check_placed(fn: Function, c: TpuConfig) -> None:
    """A function with contractions but none on the TPU was not made for this chip: say why."""
    if any(is_tpu(n) for n in fn.body):
        return
    _, rejected = regions_of(fn, c.multiplier)
    if not rejected:
        return
    reasons = "; ".join(f"%{n.name or n.op.value}: {why}" for n, why in rejected.items())
    hint = _int8_hint(list(rejected)) if c.multiplier == "int8" else ""
    raise TesselError(
        f"nothing in @{fn.name} can run on the {c.name} TPU ({c.multiplier}): {reasons}.{hint}"
    )


_BF16_CHIP = "the bf16 chip tpu-v2-core (--tpu tpu-v2-core, or jit(..., tpu='tpu-v2-core'))"


def _int8_hint(contractions: list[Node]) -> str:
    """What to do about contractions the int8 chip refused, by what their activations are."""
    activations = {n.srcs[0].dtype for n in contractions}
    if DType.U8 in activations:  # quantized already, but asymmetrically
        return (
            " The graph is quantized with asymmetric u8 activations; the int8 chip takes "
            "symmetric i8 activations (zero point 0): quantize the float graph again with "
            "symmetric activations (tessel quantize --activations symmetric, the default; "
            f"compiler.quantize(..., activations='symmetric')), or run the float graph on "
            f"{_BF16_CHIP}."
        )
    if any(dt.is_float for dt in activations):
        return (
            " Quantize it first (tessel quantize, or compiler.quantize), "
            f"or run it on {_BF16_CHIP}."
        )
    return ""
