"""conv2d with output channels innermost: a vectorizable loop order for NHWC x HWIO.

The generic emitter computes one output element at a time, so its inner loop runs over input
channels with a stride of `cout` through the filter. Here each output pixel keeps a row of
`cout` accumulators: for every tap (i, j, c) one input value is broadcast and multiplied by the
contiguous filter row w[i, j, c, :], which LLVM turns into vector FMAs. Nothing like im2col is
materialized. Rows of the parallel loop are (batch, output row) pairs.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from codegen.emit import (
    Emitter,
    can_overflow,
    dot_accumulator,
    exact_sum,
    operand_buffers,
    scalar_constant,
)
from codegen.loops import for_range
from codegen.scalar import SCALAR, convert
from codegen.types import COMPUTE, I64, element_ptr, load_value, store_value
from ir.graph import Node
from ir.ops import Op

Pointer = Callable[[int], ir.Value]


def applicable(node: Node) -> bool:
    return node.op is Op.CONV2D and node.type.size > 0


def build_body(
    b: ir.IRBuilder, node: Node, pointer: Pointer, start: ir.Value, stop: ir.Value
) -> int:
    """Emit the row loop; returns the number of rows (batch x output height)."""
    x, w = node.srcs
    a = node.attrs
    (pt, _), (pl, _) = a["padding"]
    sh, sw = a["strides"]
    dh, dw = a["dilation"]
    n_batch, height, width, _ = x.shape
    kh, kw, cin, cout = w.shape
    _, oh_count, ow_count, _ = node.shape
    groups = a["groups"]
    per_group = cout // groups
    acc_dtype = dot_accumulator(x.dtype)
    acc_ty = COMPUTE[acc_dtype]
    out_ptr, x_ptr, w_ptr = pointer(0), pointer(1), pointer(2)
    operands = operand_buffers(node.srcs, (x_ptr, w_ptr))
    e = Emitter(b, {})
    zero = scalar_constant(e, 0, acc_dtype)
    with b.goto_entry_block():
        acc = b.alloca(acc_ty, size=I64(cout), name="acc")

    def acc_at(oc: ir.Value) -> ir.Value:
        return b.gep(acc, [oc], inbounds=True, source_etype=acc_ty)

    with for_range(b, stop, start, name="row") as row:
        batch = b.udiv(row, I64(oh_count))
        oh = b.urem(row, I64(oh_count))
        with for_range(b, ow_count, name="ow") as ow:
            with for_range(b, cout, name="init") as oc:
                b.store(zero, acc_at(oc))
            with for_range(b, kh, name="i") as i:
                h = b.add(b.sub(b.mul(oh, I64(sh)), I64(pt)), b.mul(i, I64(dh)))
                h_in = b.and_(b.icmp_signed(">=", h, I64(0)), b.icmp_signed("<", h, I64(height)))
                with for_range(b, kw, name="j") as j:
                    v = b.add(b.sub(b.mul(ow, I64(sw)), I64(pl)), b.mul(j, I64(dw)))
                    v_in = b.and_(b.icmp_signed(">=", v, I64(0)), b.icmp_signed("<", v, I64(width)))
                    inside = b.and_(h_in, v_in)
                    # clamped so the load stays in bounds; padding contributes 0 * w, as in XLA
                    hc = b.select(inside, h, I64(0))
                    vc = b.select(inside, v, I64(0))
                    pixel = b.mul(
                        b.add(b.mul(b.add(b.mul(batch, I64(height)), hc), I64(width)), vc),
                        I64(cin * groups),
                    )
                    for g in range(groups):
                        with for_range(b, cin, name="c") as c:
                            channel = b.add(I64(g * cin), c)
                            xv = load_value(
                                b, element_ptr(b, x_ptr, b.add(pixel, channel), x.dtype), x.dtype
                            )
                            xv = b.select(inside, convert(b, x.dtype, acc_dtype, [xv]), zero)
                            w_row = b.mul(
                                b.add(b.mul(b.add(b.mul(i, I64(kw)), j), I64(cin)), c), I64(cout)
                            )
                            with for_range(b, (g + 1) * per_group, g * per_group, name="oc") as oc:
                                wv = load_value(
                                    b, element_ptr(b, w_ptr, b.add(w_row, oc), w.dtype), w.dtype
                                )
                                wv = convert(b, w.dtype, acc_dtype, [wv])
                                prod = SCALAR[Op.MUL](b, acc_dtype, acc_dtype, [xv, wv])
                                slot = acc_at(oc)
                                total = SCALAR[Op.ADD](
                                    b, acc_dtype, acc_dtype, [b.load(slot, typ=acc_ty), prod]
                                )
                                b.store(total, slot)
            out_base = b.mul(b.add(b.mul(row, I64(ow_count)), ow), I64(cout))
            with for_range(b, cout, name="store") as oc:
                total = b.load(acc_at(oc), typ=acc_ty)
                if can_overflow(node):  # exact range: an f32 sum that is not finite, in f64
                    total = exact_sum(b, total, node, operands, (batch, oh, ow, oc))
                value = convert(b, acc_dtype, node.dtype, [total])
                store_value(
                    b, value, element_ptr(b, out_ptr, b.add(out_base, oc), node.dtype), node.dtype
                )
    return n_batch * oh_count
