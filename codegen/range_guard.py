"""Exact range for kernels that cannot check their own sums: a guard, and an f64 fallback.

The reference gives a dot_general or conv2d summing in f32 exact range (runtime/reference_nn.py,
codegen/emit.py). Most kernels check their f32 sums as they store them and recompute the
non-finite ones (`emit.exact_sum`); a special kernel that does not (`exact_range=False` in
codegen/kernel.py: today the AMX bf16 GEMM, whose tiles live in tile registers) gets this guard.

The guard, `name`, sits in front of two kernels with the same rows: `name.fast` (the special
kernel) and `name.wide` (the generic emitter summing in f64, over the same share of the output).
It scans the operands of each contraction for their largest finite magnitudes |a|, |b|: while
K |a| |b| stays below `emit.safe_magnitude(K)`, no product or partial sum can overflow in any
order, so the fast kernel is exact in range (an infinity or a NaN among the operands does not
count: IEEE arithmetic keeps it in any order). Anything else runs the wide kernel. The scan
reads the operands once more: O((M + N) K) next to the O(M N K) product.
"""

from __future__ import annotations

from collections.abc import Iterator

from llvmlite import ir

from codegen.emit import (
    ABS_BITS,
    INF_BITS,
    Buffer,
    Emitter,
    can_overflow,
    contraction_depth,
    operand_buffers,
    safe_magnitude,
    unravel,
)
from codegen.loops import for_range, loop_nest
from codegen.scalar import convert
from codegen.types import F32, F64, I1, I32, I64, PTR, buffer_pointers, element_ptr, store_value
from ir.dtypes import DType
from ir.graph import Node
from ir.ops import Op

KERNEL_TYPE = ir.FunctionType(ir.VoidType(), [PTR, I64, I64])  # codegen/kernel.py's ABI


def _contractions(
    node: Node, buffers: dict[Node, Buffer]
) -> Iterator[tuple[Node, dict[Node, Buffer]]]:
    """The contractions in `node` (or its fusion body, however nested) that can overflow, each
    with the buffers its operands are read from, as codegen/emit.py's `_fusion` binds them."""
    if node.op is Op.FUSION:
        body = node.attrs["body"]
        inner = {p: buffers[s] for p, s in zip(body.params, node.srcs, strict=True)}
        for n in body.body:
            yield from _contractions(n, inner)
    elif can_overflow(node) and node.type.size:
        yield node, buffers


def guarded(node: Node) -> bool:
    """Whether `node`'s kernel needs the guard."""
    if node.op is Op.FUSION:
        return any(guarded(n) for n in node.attrs["body"].body)
    return can_overflow(node) and node.type.size > 0


def build(module: ir.Module, node: Node, name: str, rows: int, fast: ir.Function) -> None:
    """Emit the guard `name` in front of the kernel `fast`, which splits its work in `rows`."""
    wide = _wide_kernel(module, node, f"{name}.wide", rows)
    fn = ir.Function(module, KERNEL_TYPE, name)
    fn.args[0].name, fn.args[1].name, fn.args[2].name = "buffers", "start", "stop"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    pointer = buffer_pointers(b, fn.args[0], 1 + len(node.srcs))
    buffers = operand_buffers(node.srcs, pointer[1:])
    safe: ir.Value = ir.Constant(I1, 1)
    for contraction, level in _contractions(node, buffers):
        emitter = Emitter(b, level)
        lhs, rhs = (_finite_max(emitter, s) for s in contraction.srcs)
        bound = ir.Constant(F64, safe_magnitude(contraction_depth(contraction)))
        safe = b.and_(safe, b.fcmp_ordered("<", b.fmul(lhs, rhs), bound))
    with b.if_else(safe) as (then, otherwise):
        with then:
            b.call(fast, list(fn.args))
        with otherwise:
            b.call(wide, list(fn.args))
    b.ret_void()


def _finite_max(emitter: Emitter, operand: Node) -> ir.Value:
    """The largest finite |x| over `operand`, as an f64 (0 when there is none).

    As bits, |x| of a float orders like its value and the finite ones lie below the infinity's
    pattern, so this is an integer max reduction, which LLVM vectorizes."""
    b = emitter.b
    umax = b.module.declare_intrinsic("llvm.umax", [I32], ir.FunctionType(I32, [I32, I32]))
    best = emitter.slot(I32, I32(0))
    with loop_nest(b, operand.shape, name="scan") as index, emitter.scope():
        value = convert(b, operand.dtype, DType.F32, [emitter.value(operand, tuple(index))])
        magnitude = b.and_(b.bitcast(value, I32), I32(ABS_BITS))
        finite = b.select(b.icmp_unsigned("<", magnitude, I32(INF_BITS)), magnitude, I32(0))
        b.store(b.call(umax, [b.load(best, typ=I32), finite]), best)
    return b.fpext(b.bitcast(b.load(best, typ=I32), F32), F64)


def _wide_kernel(module: ir.Module, node: Node, name: str, rows: int) -> ir.Function:
    """`node` through the generic emitter with contractions summed in f64. The fast kernel's
    row r of `rows` maps to the output's elements [r size / rows, (r + 1) size / rows), so the
    executor's split is the same for both."""
    fn = ir.Function(module, KERNEL_TYPE, name)
    fn.linkage = "internal"
    for attribute in ("cold", "noinline", "optnone"):  # rarely run: compile it fast
        fn.attributes.add(attribute)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    buffers_arg, start, stop = fn.args
    pointer = buffer_pointers(b, buffers_arg, 1 + len(node.srcs))
    emitter = Emitter(b, operand_buffers(node.srcs, pointer[1:]), wide=True)
    size, share = I64(node.type.size), I64(max(rows, 1))
    first, last = (b.udiv(b.mul(bound, size), share) for bound in (start, stop))
    with for_range(b, last, first, name="element") as flat, emitter.scope():
        value = emitter.value(node, unravel(b, flat, node.shape))
        store_value(b, value, element_ptr(b, pointer[0], flat, node.dtype), node.dtype)
    b.ret_void()
    return fn
