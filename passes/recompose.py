"""Composites recognized in primitive code, for backends with a kernel of their own.

Traced NumPy spells softmax as `e = exp(x - max(x)); e / sum(e)`. The CPU backend computes a
softmax in one kernel while the row is in cache, so this pass turns that spelling back into the
`softmax` op `decompose` would have expanded it from (the inverse of its rule, for f32 and f64,
where the two compute the same numbers in the same order).
"""

from __future__ import annotations

from ir.builder import make_node
from ir.dtypes import DType
from ir.graph import Function, Node
from ir.ops import Op
from passes.base import Pass, PassContext, register
from passes.rewrite import rewrite_function


def reduced_and_spread_back(node: Node, kind: str) -> tuple[Node, int] | None:
    """(x, a) when `node` is reduce(x, kind, axes=[a]) broadcast back to x's shape along a,
    with or without the keepdims reshape in between."""
    if node.op is not Op.BROADCAST_IN_DIM:
        return None
    inner, dims = node.srcs[0], tuple(node.attrs["dims"])
    rank = len(node.shape)
    if inner.op is Op.RESHAPE:
        if dims != tuple(range(rank)):
            return None
        inner = inner.srcs[0]
    reduce = inner
    if reduce.op is not Op.REDUCE or reduce.attrs["kind"] != kind:
        return None
    axes = reduce.attrs["axes"]
    x = reduce.srcs[0]
    if len(axes) != 1 or x.shape != node.shape:
        return None
    (a,) = axes
    kept = tuple(i for i in range(rank) if i != a)
    if node.srcs[0].op is Op.RESHAPE:
        keepdims = tuple(1 if i == a else n for i, n in enumerate(x.shape))
        return (x, a) if node.srcs[0].shape == keepdims else None
    return (x, a) if dims == kept else None


def softmax_of(n: Node) -> Node | None:
    """div(e, spread(sum(e, a))) with e = exp(sub(x, spread(max(x, a)))) is softmax(x, a)."""
    if n.op is not Op.DIV or n.dtype not in (DType.F32, DType.F64):
        return None
    e, total = n.srcs
    if e.op is not Op.EXP or e.srcs[0].op is not Op.SUB:
        return None
    x, peak = e.srcs[0].srcs
    by_max = reduced_and_spread_back(peak, "max")
    by_sum = reduced_and_spread_back(total, "sum")
    if by_max is None or by_sum is None or by_max[0] is not x or by_sum[0] is not e:
        return None
    if by_max[1] != by_sum[1]:
        return None
    return make_node(Op.SOFTMAX, (x,), {"axis": by_max[1]}, name=n.name, loc=n.loc)


@register
class Recompose(Pass):
    """Recognize softmax written in primitives (as traced NumPy writes it) as the softmax op.

    The inverse of `decompose`'s softmax rule, for f32 and f64 only (where both forms round
    alike). The exp and the reductions stay if something else uses them; dce removes them
    otherwise. The cpu pipeline runs it so `@jit` NumPy softmax gets the one-kernel softmax.
    """

    name = "recompose"

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        def recognize(node: Node) -> Node | None:
            found = softmax_of(node)
            if found is not None:
                ctx.remark(self.name, f"softmax along axis {found.attrs['axis']}")
            return found

        return rewrite_function(fn, recognize)
