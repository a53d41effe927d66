"""The quantization ops on the CPU: one Emitter row each, computing exactly what
runtime/reference_quant.py defines (integer steps in i64, so nothing overflows).

Per-channel parameters are read from a small constant table at the element's position along
the channel axis; per-tensor ones are constants in the code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from llvmlite import ir

from codegen.types import COMPUTE, F64, I64, Index, global_array, round_to
from ir.dtypes import DType
from ir.graph import Node
from ir.ops import Op
from ir.quant import int_range

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


class Emitter(Protocol):
    """What these rows use of codegen.emit.Emitter (which imports this module's table)."""

    b: ir.IRBuilder

    def value(self, node: Node, index: Index) -> ir.Value: ...


def _param(e: Emitter, n: Node, values: Sequence[float | int], ty: ir.Type, idx: Index) -> ir.Value:
    if len(values) == 1:
        return ir.Constant(ty, values[0])
    np_type = np.float64 if ty == F64 else np.float32 if isinstance(ty, ir.FloatType) else np.int64
    table = global_array(e.b.module, np.asarray(values, dtype=np_type))
    ptr = e.b.gep(table, [idx[n.attrs["axis"]]], inbounds=True, source_etype=ty)
    return e.b.load(ptr, typ=ty)


def _intrinsic(b: ir.IRBuilder, name: str, ret: ir.Type, args: Sequence[ir.Value]) -> ir.Value:
    """An LLVM intrinsic llvmlite's declare_intrinsic does not know, declared by its name."""
    fn = b.module.globals.get(name)
    if fn is None:
        fn = ir.Function(b.module, ir.FunctionType(ret, [a.type for a in args]), name)
    return b.call(fn, list(args))


def _clamp(b: ir.IRBuilder, x: ir.Value, lo: int, hi: int) -> ir.Value:
    x = b.select(b.icmp_signed("<", x, I64(lo)), I64(lo), x)
    return b.select(b.icmp_signed(">", x, I64(hi)), I64(hi), x)


def _to_i64(b: ir.IRBuilder, x: ir.Value, dtype: DType) -> ir.Value:
    if x.type == I64:
        return x
    return b.sext(x, I64) if dtype.is_signed else b.zext(x, I64)


def _quantize(e: Emitter, n: Node, idx: Index) -> ir.Value:
    b, (src,) = e.b, n.srcs
    x = e.value(src, idx)
    ty = x.type
    suffix = "f64" if ty == F64 else "f32"
    q = b.fdiv(x, _param(e, n, n.attrs["scale"], ty, idx))
    q = _intrinsic(b, f"llvm.roundeven.{suffix}", ty, [q])
    q = _intrinsic(b, f"llvm.fptosi.sat.i64.{suffix}", I64, [q])  # NaN -> 0, saturating
    q = _clamp(b, q, -(1 << 40), 1 << 40)
    q = b.add(q, _param(e, n, n.attrs["zero_point"], I64, idx))
    lo, hi = int_range(n.dtype)
    return b.trunc(_clamp(b, q, lo, hi), COMPUTE[n.dtype])


def _dequantize(e: Emitter, n: Node, idx: Index) -> ir.Value:
    b, (src,) = e.b, n.srcs
    q = _to_i64(b, e.value(src, idx), src.dtype)
    q = b.sub(q, _param(e, n, n.attrs["zero_point"], I64, idx))
    ty = COMPUTE[n.dtype]  # f32 for f16/bf16/f32, f64 for f64
    # rounded to f16/bf16 here, not only when stored: a fused consumer reads the rounded value
    # (fuzz --kind graphs, seed 21, case 1384: dequantize to f16, then convert to i64)
    return round_to(b, b.fmul(b.sitofp(q, ty), _param(e, n, n.attrs["scale"], ty, idx)), n.dtype)


def _requantize(e: Emitter, n: Node, idx: Index) -> ir.Value:
    b, a, (src,) = e.b, n.attrs, n.srcs
    acc = b.sext(e.value(src, idx), I64)
    shift = _param(e, n, a["shift"], I64, idx)
    if any(s < 0 for s in a["shift"]):  # multiply by 2^-shift first, saturating to int32
        left = b.select(b.icmp_signed("<", shift, I64(0)), b.neg(shift), I64(0))
        acc = _clamp(b, b.shl(acc, left), INT32_MIN, INT32_MAX)
    product = b.mul(acc, _param(e, n, a["multiplier"], I64, idx))
    negative = b.icmp_signed("<", product, I64(0))
    nudge = b.select(negative, I64(1 - (1 << 30)), I64(1 << 30))
    y = b.sdiv(b.add(product, nudge), I64(1 << 31))  # truncates toward zero
    right = b.select(b.icmp_signed(">", shift, I64(0)), shift, I64(0))
    mask = b.sub(b.shl(I64(1), right), I64(1))
    threshold = b.add(b.ashr(mask, I64(1)), b.zext(b.icmp_signed("<", y, I64(0)), I64))
    up = b.icmp_signed(">", b.and_(y, mask), threshold)
    y = b.add(b.ashr(y, right), b.zext(up, I64))
    y = _clamp(b, b.add(y, I64(a["zero_point"])), a["min"], a["max"])
    return b.trunc(y, COMPUTE[n.dtype]) if COMPUTE[n.dtype] != I64 else y


QUANT_EMIT: dict[Op, Callable[[Emitter, Node, Index], ir.Value]] = {
    Op.QUANTIZE: _quantize,
    Op.DEQUANTIZE: _dequantize,
    Op.REQUANTIZE: _requantize,
}
