"""bf16 mixed precision: contractions read bfloat16 operands and accumulate in f32.

This is the TPUv2-class recipe: the matrix unit multiplies bf16 values (half the bytes of f32
to move, and a bf16 x bf16 product is exact in f32) but sums in f32, so the only error is the
one rounding of each operand to bf16. Everything else (softmax, reductions, normalization,
bias adds, activations) stays in f32, because those are where bf16's 8-bit mantissa would hurt:
a sum of many terms or an exp loses far more than one rounding of an operand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ir.builder import make_node
from ir.dtypes import DType
from ir.graph import Function, Node
from ir.ops import Op
from passes.base import Pass, PassContext, register
from passes.rewrite import rewrite_function

CONTRACTIONS = frozenset({Op.DOT_GENERAL, Op.CONV2D})


def multiply_adds(node: Node) -> int:
    """Multiply-adds of a dot_general or conv2d: each output element sums over this many."""
    if node.op is Op.DOT_GENERAL:
        lhs = node.srcs[0]
        per_output = math.prod(lhs.shape[a] for a in node.attrs["lhs_contract"])
    else:  # conv2d: a window of the filter over its group's input channels
        kh, kw, in_channels, _ = node.srcs[1].shape
        per_output = kh * kw * in_channels
    return math.prod(node.shape) * int(per_output)


def _eligible(node: Node, min_size: int) -> bool:
    if node.op not in CONTRACTIONS or node.dtype is not DType.F32:
        return False
    if any(s.dtype is not DType.F32 for s in node.srcs):
        return False
    return multiply_adds(node) >= min_size


@dataclass(frozen=True)
class Bf16MixedOptions:
    # contractions with fewer multiply-adds stay f32: for tiny ones the two converts cost more
    # than the narrower operands save
    min_size: int = 0


@register
class Bf16Mixed(Pass):
    """Run f32 dot_general and conv2d on bf16 operands, accumulating in f32.

    Each operand gets a `convert` to bf16 and the op gets `out_dtype = f32`, so its result type
    is unchanged and nothing downstream sees a difference but the rounding of the operands.
    Other ops stay f32. A value that feeds several contractions is converted once; an operand
    that is itself a bf16 value widened to f32 is used directly (narrowing it back is exact).
    Fusion bodies are left alone: run it before `fuse`.
    """

    name = "bf16-mixed"
    Options = Bf16MixedOptions

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        narrowed: dict[Node, Node] = {}

        def to_bf16(x: Node) -> Node:
            if x.op is Op.CONVERT and x.srcs[0].dtype is DType.BF16:
                return x.srcs[0]
            if x not in narrowed:
                narrowed[x] = make_node(Op.CONVERT, (x,), {"dtype": DType.BF16}, loc=x.loc)
            return narrowed[x]

        def narrow(node: Node) -> Node | None:
            if not _eligible(node, self.options.min_size):
                return None
            ctx.remark(self.name, f"{node.op.value} {node.type}: bf16 operands, f32 accumulation")
            attrs = {**node.attrs, "out_dtype": DType.F32}
            srcs = tuple(to_bf16(s) for s in node.srcs)
            return make_node(node.op, srcs, attrs, name=node.name, loc=node.loc)

        return rewrite_function(fn, narrow)
