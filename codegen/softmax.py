"""Row softmax in one kernel: three passes over a row that stays in L1, instead of four kernels.

Decomposed, softmax is reduce-max, a fused exp(x - max), reduce-sum and a fused divide: four
sweeps through memory. Over the last axis each row is contiguous, so one kernel does
max, then exp and sum (writing e to the output), then e / sum, while the row is in cache. Same
arithmetic as the reference (stable: subtract the max; divide, not multiply by a reciprocal).
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from codegen.emit import REDUCE_IDENTITY, Emitter, combine, scalar_constant
from codegen.loops import for_range
from codegen.scalar import SCALAR
from codegen.types import COMPUTE, I64, element_ptr, load_value, store_value
from ir.dtypes import DType
from ir.graph import Node
from ir.ops import Op

Pointer = Callable[[int], ir.Value]


def applicable(node: Node) -> bool:
    """Softmax over the last axis of f32/f64 (narrow floats and other axes are decomposed)."""
    return (
        node.op is Op.SOFTMAX
        and node.dtype in (DType.F32, DType.F64)
        and node.attrs["axis"] == node.type.rank - 1
        and node.type.size > 0
    )


def build_body(
    b: ir.IRBuilder, node: Node, pointer: Pointer, start: ir.Value, stop: ir.Value
) -> int:
    dtype = node.dtype
    ty = COMPUTE[dtype]
    length = node.shape[-1]
    out_ptr, x_ptr = pointer(0), pointer(1)
    e = Emitter(b, {})
    peak_slot = e.slot(ty, scalar_constant(e, REDUCE_IDENTITY["max"](dtype), dtype))
    total_slot = e.slot(ty, scalar_constant(e, 0, dtype))

    def at(base: ir.Value, row_start: ir.Value, i: ir.Value) -> ir.Value:
        return element_ptr(b, base, b.add(row_start, i), dtype)

    with for_range(b, stop, start, name="row") as row:
        row_start = b.mul(row, I64(length))
        b.store(scalar_constant(e, REDUCE_IDENTITY["max"](dtype), dtype), peak_slot)
        b.store(scalar_constant(e, 0, dtype), total_slot)
        with for_range(b, length, name="max") as i:
            v = load_value(b, at(x_ptr, row_start, i), dtype)
            b.store(combine(b, "max", dtype, b.load(peak_slot, typ=ty), v), peak_slot)
        peak = b.load(peak_slot, typ=ty)
        with for_range(b, length, name="exp") as i:
            v = load_value(b, at(x_ptr, row_start, i), dtype)
            ev = SCALAR[Op.EXP](b, dtype, dtype, [SCALAR[Op.SUB](b, dtype, dtype, [v, peak])])
            store_value(b, ev, at(out_ptr, row_start, i), dtype)
            b.store(combine(b, "sum", dtype, b.load(total_slot, typ=ty), ev), total_slot)
        total = b.load(total_slot, typ=ty)
        with for_range(b, length, name="div") as i:
            ev = load_value(b, at(out_ptr, row_start, i), dtype)
            store_value(
                b, SCALAR[Op.DIV](b, dtype, dtype, [ev, total]), at(out_ptr, row_start, i), dtype
            )
    return node.type.size // length
