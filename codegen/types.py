"""How tessel dtypes live in LLVM: a storage type in memory, a compute type in registers.

f16 and bf16 are stored as 16-bit values and computed in f32, rounding after every op exactly as
the reference interpreter does; bool is a byte in memory (numpy's layout) and an i1 in registers.
A complex number is a {real, imaginary} struct (NumPy's layout); kernels only read its parts
and build one from parts, since the expand-complex pass leaves nothing else complex.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from codegen.halfconv import f32_to_half, half_to_f32
from ir.dtypes import DType

I1, I8, I16, I32, I64 = (ir.IntType(n) for n in (1, 8, 16, 32, 64))
F16, F32, F64 = ir.HalfType(), ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
Index = tuple[ir.Value, ...]  # one position in a tensor, a value per dimension

STORAGE: dict[DType, ir.Type] = {
    DType.F64: F64,
    DType.F32: F32,
    DType.F16: F16,
    DType.BF16: I16,
    DType.I64: I64,
    DType.I32: I32,
    DType.I16: I16,
    DType.I8: I8,
    DType.U64: I64,
    DType.U32: I32,
    DType.U16: I16,
    DType.U8: I8,
    DType.BOOL: I8,
    DType.C64: ir.LiteralStructType([F32, F32]),
    DType.C128: ir.LiteralStructType([F64, F64]),
}

COMPUTE: dict[DType, ir.Type] = {
    **STORAGE,
    DType.F16: F32,
    DType.BF16: F32,
    DType.BOOL: I1,
}


def bits(dtype: DType) -> int:
    return dtype.np.itemsize * 8


def load_value(b: ir.IRBuilder, ptr: ir.Value, dtype: DType) -> ir.Value:
    """Load one element and widen it to its compute type."""
    raw = b.load(ptr, typ=STORAGE[dtype])
    return widen(b, raw, dtype)


def widen(b: ir.IRBuilder, raw: ir.Value, dtype: DType) -> ir.Value:
    if dtype == DType.F16:
        return half_to_f32(b, raw)
    if dtype == DType.BF16:  # bf16 is the top half of an f32
        return b.bitcast(b.shl(b.zext(raw, I32), I32(16)), F32)
    if dtype == DType.BOOL:
        return b.icmp_unsigned("!=", raw, I8(0))
    return raw


def narrow(b: ir.IRBuilder, value: ir.Value, dtype: DType) -> ir.Value:
    """Compute type to storage type, rounding to nearest even for f16/bf16."""
    if dtype == DType.F16:
        return f32_to_half(b, value)
    if dtype == DType.BF16:
        return _f32_to_bf16(b, value)
    if dtype == DType.BOOL:
        return b.zext(value, I8)
    return value


def round_to(b: ir.IRBuilder, value: ir.Value, dtype: DType) -> ir.Value:
    """Round an f32 compute value to what `dtype` can hold (a no-op for other types)."""
    if dtype in (DType.F16, DType.BF16):
        return widen(b, narrow(b, value, dtype), dtype)
    return value


def _f32_to_bf16(b: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """Round to nearest even on the bit pattern; NaN stays NaN (quietened)."""
    word = b.bitcast(value, I32)
    lsb = b.and_(b.lshr(word, I32(16)), I32(1))
    rounded = b.add(word, b.add(I32(0x7FFF), lsb))
    quiet = b.or_(word, I32(0x00400000))
    is_nan = b.fcmp_unordered("uno", value, value)
    chosen = b.select(is_nan, quiet, rounded)
    return b.trunc(b.lshr(chosen, I32(16)), I16)


def store_value(b: ir.IRBuilder, value: ir.Value, ptr: ir.Value, dtype: DType) -> None:
    b.store(narrow(b, value, dtype), ptr)


def buffer_pointers(b: ir.IRBuilder, buffers: ir.Value, count: int) -> list[ir.Value]:
    """The first `count` pointers of a kernel's buffer table (its output, then its operands)."""
    return [
        b.load(b.gep(buffers, [I64(i)], inbounds=True, source_etype=PTR), typ=PTR)
        for i in range(count)
    ]


def element_ptr(b: ir.IRBuilder, base: ir.Value, index: ir.Value, dtype: DType) -> ir.Value:
    return b.gep(base, [index], inbounds=True, source_etype=STORAGE[dtype])


def copy_bytes(b: ir.IRBuilder, dst: ir.Value, src: ir.Value, nbytes: int) -> None:
    """memmove(dst, src, nbytes), as LLVM's intrinsic (which it turns into moves or a call)."""
    if nbytes == 0:
        return
    fnty = ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, I1])
    memmove = b.module.declare_intrinsic("llvm.memmove", [PTR, PTR, I64], fnty)
    b.call(memmove, [dst, src, I64(nbytes), I1(0)])


def global_array(module: ir.Module, arr: np.ndarray) -> ir.GlobalVariable:
    """`arr`'s bytes as a read-only, 64-byte aligned global of `module`."""
    name = f"tessel.const.{len(module.globals)}"
    data = bytearray(arr.tobytes())
    ty = ir.ArrayType(ir.IntType(8), len(data))
    glob = ir.GlobalVariable(module, ty, name)
    glob.global_constant = True
    glob.linkage = "internal"
    glob.initializer = ir.Constant(ty, data)
    glob.align = 64
    return glob
