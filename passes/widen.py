"""f16/bf16 products computed in f32 where that changes no number: for backends without fast
narrow-float matrix kernels.

A product of two bf16 (8-bit significand) or two f16 (11-bit) values is exact in f32 (24 bits),
and `dot_general`/`conv2d` already accumulate narrow floats in f32 (docs/graph-language.md).
So converting the operands to f32 first computes the same products, summed in f32 as before:
the result differs at most by the order of the sum, which the op leaves open anyway. The CPU
backend then runs the contraction on its f32 GEMM instead of its generic loop.

With `bf16-dots=false` bf16 x bf16 -> f32 dot_generals are left alone, for a backend that
multiplies bf16 natively: the cpu pipeline says so on hosts with AMX-BF16 or AVX-512 BF16,
where codegen/gemm_bf16.py runs them at six times the f32 GEMM's speed at 1024^3 (half the bytes
per operand, and a tile instruction of 16 x 16 x 32 products). Elsewhere that kernel would
be a portable loop, slower than the f32 GEMM, so widening stays the default.
"""

from __future__ import annotations

from dataclasses import dataclass

from ir.builder import make_node
from ir.dtypes import DType
from ir.graph import Function, Node
from ir.ops import Op
from passes.base import Pass, PassContext, register
from passes.rewrite import rewrite_function

NARROW = frozenset({DType.F16, DType.BF16})


@dataclass(frozen=True)
class WidenOptions:
    bf16_dots: bool = True  # false: leave bf16 dot_generals for a native bf16 GEMM


def widened(n: Node, bf16_dots: bool = True) -> Node | None:
    """contraction(narrow a, narrow b) {out_dtype = f32} -> contraction(f32 a, f32 b)."""
    if n.op not in (Op.DOT_GENERAL, Op.CONV2D) or n.dtype is not DType.F32:
        return None
    if not all(s.dtype in NARROW for s in n.srcs):
        return None
    if not bf16_dots and n.op is Op.DOT_GENERAL and all(s.dtype is DType.BF16 for s in n.srcs):
        return None
    srcs = [make_node(Op.CONVERT, (s,), {"dtype": DType.F32}, loc=n.loc) for s in n.srcs]
    return make_node(n.op, srcs, dict(n.attrs), name=n.name, loc=n.loc)


@register
class WidenProducts(Pass):
    """Compute f16/bf16 matrix products with f32 results on f32 operands (exact: see module).

    For a backend whose fast kernels are f32: `bf16-mixed` graphs then run on the f32 GEMM.
    Runs before `fuse`, so the converts fuse into their producers. `bf16-dots=false` keeps
    bf16 dot_generals for a backend with a native bf16 GEMM (the cpu on AMX-BF16 hosts).
    """

    name = "widen-products"
    Options = WidenOptions

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        return rewrite_function(fn, lambda n: widened(n, self.options.bf16_dots))
