"""One kernel per top-level node: a loop nest over the output that stores `Emitter.value`.

Kernel ABI, shared with runtime/native.py:

    void kernel(ptr* buffers, i64 start, i64 stop)

`buffers[0]` is the output, `buffers[1 + i]` the node's i-th operand (dense, row-major); a
kernel that checks indices gets the program's status word last (codegen/indexed.py).
The kernel computes the output rows `start <= r < stop`, where a row is one position of the
leading `parallel_dims` dimensions flattened; the runtime splits [0, rows) across threads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from llvmlite import ir

from codegen import (
    conv,
    conv_gemm,
    conv_int8,
    gemm,
    gemm_bf16,
    gemm_int8,
    gemm_lib,
    gemv,
    index_split,
    range_guard,
    scatter,
    softmax,
    sort,
)
from codegen.cpu_caps import CpuCaps
from codegen.emit import (
    Buffer,
    Emitter,
    LoweringError,
    hoist_scalars,
    linear,
    operand_buffers,
    unravel,
)
from codegen.index_check import StatusWord, needs_status
from codegen.loops import for_range, loop_nest
from codegen.types import I64, PTR, buffer_pointers, element_ptr, store_value
from ir.graph import Node
from ir.verify import describe

KERNEL_TYPE = ir.FunctionType(ir.VoidType(), [PTR, I64, I64])
MIN_ROW_WORK = 4096  # elements per row below which more dimensions join the parallel loop


@dataclass(frozen=True)
class KernelInfo:
    name: str
    rows: int  # the parallel iteration space: [0, rows)
    work_per_row: int  # output elements per row (for the runtime's chunking)


def parallel_dims(shape: tuple[int, ...]) -> int:
    """How many leading dimensions to flatten into the parallel row loop.

    Enough that rows can be shared among threads, few enough that each row still has a long,
    vectorizable inner loop. A rank-1 output is all rows: its row loop is the inner loop.
    """
    if len(shape) <= 1:
        return len(shape)
    dims = 1
    while (
        dims < len(shape) - 1
        and math.prod(shape[:dims]) < 64
        and math.prod(shape[dims:]) > MIN_ROW_WORK
    ):
        dims += 1
    return dims


@dataclass(frozen=True)
class SpecialKernel:
    """A hand-built kernel for the nodes it is `applicable` to on a CPU with `caps`."""

    name: str
    applicable: Callable[[Node, CpuCaps], bool]
    build: Callable[[ir.Module, Node, str, CpuCaps], tuple[int, int]]
    exact_range: bool = False  # it gives f32 sums exact range itself (else: codegen/range_guard)


def _float_gemm(module: ir.Module, node: Node, name: str, caps: CpuCaps) -> tuple[int, int]:
    # Calling the precompiled library leaves LLVM a few dozen instructions instead of a whole
    # specialized GEMM; operands whose axes need several strides keep the latter.
    build = gemm_lib.build if gemm_lib.covers(node, caps) else gemm.build
    return build(module, node, name, caps)


# In priority order: the first applicable one builds the node; else the generic loop nest.
# The int8 and bf16 kernels still check at run time that the OS lets the process use AMX.
SPECIAL_KERNELS = (
    SpecialKernel("gemm-int8", gemm_int8.applicable, gemm_int8.build),
    SpecialKernel("gemm-bf16", gemm_bf16.applicable, gemm_bf16.build),
    SpecialKernel("conv-int8", conv_int8.applicable, conv_int8.build),
    SpecialKernel("conv", conv_gemm.applicable, conv_gemm.build, exact_range=True),  # 1 group
    SpecialKernel("gemv", gemv.applicable, gemv.build, exact_range=True),  # M or N = 1
    SpecialKernel("gemm", lambda node, caps: gemm.applicable(node), _float_gemm, exact_range=True),
)


def special_kernel(node: Node, caps: CpuCaps) -> SpecialKernel | None:
    return next((k for k in SPECIAL_KERNELS if k.applicable(node, caps)), None)


def build_kernel(module: ir.Module, node: Node, name: str, caps: CpuCaps) -> KernelInfo:
    special = special_kernel(node, caps)
    # The generic loops give exact range through the emitter; special kernels say if they do.
    if special is None or special.exact_range or not range_guard.guarded(node):
        return _build(module, node, name, caps, special)
    info = _build(module, node, f"{name}.fast", caps, special)
    fast = module.get_global(info.name)
    fast.linkage = "internal"
    range_guard.build(module, node, name, info.rows, fast)
    return KernelInfo(name, info.rows, info.work_per_row)


def _build(
    module: ir.Module, node: Node, name: str, caps: CpuCaps, special: SpecialKernel | None
) -> KernelInfo:
    if special is not None:
        return KernelInfo(name, *special.build(module, node, name, caps))
    fn = ir.Function(module, KERNEL_TYPE, name)
    fn.args[0].name, fn.args[1].name, fn.args[2].name = "buffers", "start", "stop"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    buffers_arg, start, stop = fn.args
    checks = needs_status(node)  # then the last pointer is the status word
    pointer = buffer_pointers(b, buffers_arg, 1 + len(node.srcs) + checks).__getitem__
    # whole-kernel lowerings with their own loop nests
    for lowering in (conv, softmax, scatter, sort):
        if lowering.applicable(node):
            rows = lowering.build_body(b, node, pointer, start, stop)
            b.ret_void()
            return KernelInfo(name, rows, node.type.size // max(rows, 1))
    out = Buffer(pointer(0), node.dtype, node.shape)
    operands = operand_buffers(node.srcs, [pointer(i + 1) for i in range(len(node.srcs))])
    status = StatusWord(pointer(1 + len(node.srcs))) if checks else None
    emitter = Emitter(b, operands, status=status)
    shape = node.shape
    p = parallel_dims(shape)
    try:
        _loops(b, node, emitter, out, start, stop, p)
    except LoweringError as e:
        raise LoweringError(f"while lowering '{describe(node)}': {e}") from None
    if status is not None:
        status.finish(b)
    b.ret_void()
    rows = math.prod(shape[:p]) if shape else 1
    return KernelInfo(name, rows, math.prod(shape[p:]))


def _loops(
    b: ir.IRBuilder, node: Node, e: Emitter, out: Buffer, start: ir.Value, stop: ir.Value, p: int
) -> None:
    """Rows [start, stop) of the output, the last axis in the pieces index_split cuts it into
    (each piece a loop of its own, in which the emitter knows the range of the index)."""
    shape = node.shape
    hoist_scalars(e, node)

    def store(index: tuple[ir.Value, ...], piece: tuple[int, int] | None = None) -> None:
        if piece is not None:
            e.ranges[id(index[-1])] = piece
        with e.scope():
            value = e.value(node, index)
        where = element_ptr(b, out.ptr, linear(b, index, shape), out.dtype)
        store_value(b, value, where, out.dtype)

    pieces = index_split.regions(node) if len(shape) else []
    if len(pieces) > 1 and p == len(shape):  # rank 1: the row loop runs along the last axis
        for lo, hi in pieces:
            first = b.select(b.icmp_signed("<", start, I64(lo)), I64(lo), start)
            last = b.select(b.icmp_signed(">", stop, I64(hi)), I64(hi), stop)
            with for_range(b, last, first, name="row") as row:
                store((row,), (lo, hi))
        return
    with for_range(b, stop, start, name="row") as row:
        outer = tuple(unravel(b, row, shape[:p]))
        if len(pieces) <= 1:
            with loop_nest(b, shape[p:]) as inner:
                store(outer + tuple(inner))
            return
        with loop_nest(b, shape[p:-1]) as middle:
            for lo, hi in pieces:
                with for_range(b, hi, lo, name="last") as last:
                    store((*outer, *middle, last), (lo, hi))
