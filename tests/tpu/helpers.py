"""Building and running one TPU kernel against the reference interpreter's ops."""

from __future__ import annotations

import numpy as np

from codegen.tpu.kernels import ConvShape, Epilogue, WeightImage, conv2d
from codegen.tpu.lower import gemm_program
from ir.dtypes import DType
from ir.ops import Op
from runtime.interp import run_op
from runtime.tpu.config import TpuConfig
from runtime.tpu.isa import Halt
from runtime.tpu.program import HostLayout, TpuProgram
from runtime.tpu.sim import Result


def run_gemm(
    c: TpuConfig, x: np.ndarray, w: np.ndarray, e: Epilogue, mode: str = "native"
) -> tuple[np.ndarray, Result]:
    (out,), result = gemm_program(c, x.shape, w, e).run([x], mode)
    assert not result.problems, result.problems
    return out, result


def conv_program(
    c: TpuConfig, x_shape: tuple[int, ...], w: np.ndarray, attrs: dict, e: Epilogue
) -> TpuProgram:
    out_shape = run_op(
        Op.CONV2D, np.zeros(x_shape, np.int8), w.astype(np.int8), out_dtype=DType.I32, **attrs
    ).shape
    layout = HostLayout()
    x = layout.add("x", c.input_dtype, x_shape)
    out = layout.add("out", c.acc_dtype if e.wide else c.input_dtype, out_shape)
    pad = attrs.get("padding", ((0, 0), (0, 0)))
    s = ConvShape(
        x_shape[0],
        x_shape[1],
        x_shape[2],
        x_shape[3],
        *w.shape[:2],
        w.shape[3],
        out_shape[1],
        out_shape[2],
        tuple(attrs.get("strides", (1, 1))),
        tuple(attrs.get("dilation", (1, 1))),
        (tuple(pad[0]), tuple(pad[1])),
        attrs.get("groups", 1),
    )
    image = WeightImage(c)
    code = [*conv2d(c, image, x, w, out, s, e), Halt()]
    return TpuProgram(c, code, image.image(), layout, ["x"], ["out"])


def reference_requantize(acc: np.ndarray, e: Epilogue) -> np.ndarray:
    """The graph ops the epilogue stands for, on the reference interpreter."""
    if e.bias is not None:
        acc = run_op(Op.ADD, acc, np.broadcast_to(e.bias.astype(np.int32), acc.shape).copy())
    lo = max(e.lo, e.zero_point) if e.func == 1 else e.lo
    return run_op(
        Op.REQUANTIZE,
        acc,
        multiplier=tuple(int(v) for v in e.multiplier),
        shift=tuple(int(v) for v in e.shift),
        zero_point=e.zero_point,
        min=lo,
        max=e.hi,
        axis=acc.ndim - 1,
        dtype=DType.I8,
    )


def chain_program(c: TpuConfig, m: int, layers: list[tuple[np.ndarray, Epilogue]]) -> TpuProgram:
    from codegen.tpu.kernels import gemm_chain

    layout = HostLayout()
    a = layout.add("a", c.input_dtype, (m, layers[0][0].shape[0]))
    last = layers[-1][1]
    out_dtype = c.acc_dtype if last.wide else c.input_dtype
    out = layout.add("out", out_dtype, (m, layers[-1][0].shape[1]))
    image = WeightImage(c)
    code = [*gemm_chain(c, image, a, layers, out), Halt()]
    macs = sum(m * w.shape[0] * w.shape[1] for w, _ in layers)
    return TpuProgram(c, code, image.image(), layout, ["a"], ["out"], macs)


def layer_starts(result: Result, layers: int) -> np.ndarray:
    """When each chained layer's first matrix multiply started (layers share the MMC count)."""
    from runtime.tpu.isa import Mmc

    starts = [r.start for r in result.records if isinstance(r.instruction, Mmc)]
    per = len(starts) // layers
    return np.array(starts[::per][:layers])
