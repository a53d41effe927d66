"""Integer-only rescaling between quantized layers: dequantize -> (relu) -> quantize pairs
become one `requantize`.

A quantized layer ends in `dequantize(acc)` (int32 accumulator to float) and the next begins with
`quantize(...)` (float to int8). Between them the value only needs rescaling by
`s_acc / s_out`, which `requantize` does with a Q31 multiplier and a shift, as integer inference
engines do; a relu in between becomes the clamp at the zero point.
"""

from __future__ import annotations

import math

from ir.builder import make_node
from ir.dtypes import DType
from ir.graph import Function, Node
from ir.ops import Op
from ir.quant import Q31_MAX
from passes.base import Pass, PassContext, register
from passes.rewrite import rewrite_function


def fixed_point(real: float) -> tuple[int, int]:
    """(multiplier, shift) with real == multiplier / 2^31 / 2^shift, multiplier in [2^30, 2^31)."""
    if real <= 0:
        return 0, 0
    mantissa, exponent = math.frexp(real)  # real = mantissa * 2^exponent, mantissa in [0.5, 1)
    multiplier = round(mantissa * (1 << 31))
    if multiplier > Q31_MAX:  # the mantissa rounded up to 1.0
        multiplier, exponent = multiplier // 2, exponent + 1
    return multiplier, -exponent


def requantized(n: Node) -> Node | None:
    """quantize(relu?(dequantize(acc: i32))) -> requantize(acc)."""
    if n.op is not Op.QUANTIZE or len(n.attrs["scale"]) != 1:
        return None
    x, relu = n.srcs[0], False
    if x.op is Op.RELU:
        x, relu = x.srcs[0], True
    if x.op is not Op.DEQUANTIZE or x.srcs[0].dtype is not DType.I32 or any(x.attrs["zero_point"]):
        return None
    (out_scale,) = n.attrs["scale"]
    (zero,) = n.attrs["zero_point"]
    factors = [fixed_point(s / out_scale) for s in x.attrs["scale"]]
    attrs = {
        "multiplier": [m for m, _ in factors],
        "shift": [s for _, s in factors],
        "zero_point": zero,
        "axis": x.attrs["axis"],
        "dtype": n.dtype,
    }
    if relu:
        attrs["min"] = zero
    return make_node(Op.REQUANTIZE, (x.srcs[0],), attrs, name=n.name, loc=n.loc)


@register
class FoldRequantize(Pass):
    """Fold dequantize -> (relu) -> quantize between quantized layers into one requantize.

    The value then stays an integer from one layer's int32 accumulator to the next layer's
    int8 input. The float path is replaced by integer-only arithmetic: results may differ from
    it by one unit in the last place of the quantized value, by design (that is the integer
    semantics every backend reproduces exactly).
    """

    name = "fold-requantize"

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        def fold(node: Node) -> Node | None:
            new = requantized(node)
            if new is not None:
                ctx.remark(self.name, f"requantize with {len(new.attrs['multiplier'])} factor(s)")
            return new

        return rewrite_function(fn, fold)
