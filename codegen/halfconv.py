"""f16 <-> f32 conversion without runtime helpers, on every CPU.

LLVM lowers `fptrunc`/`fpext` of `half` to one instruction where the target has F16C, and
otherwise to calls of compiler-rt helpers (`__truncsfhf2`, `__extendhfsf2`, and
`__truncdfhf2` for f64 on every x86 target) that a JIT may not resolve. So kernels never
convert `half` directly: they call `tessel_f32_to_f16` / `tessel_f16_to_f32`, which
`define_conversions` fills in once the target is known: the instruction with F16C, integer
code otherwise. Both are internal and always inlined, so no symbol is left behind.

f64 -> f16 rounds to odd into f32 first (codegen/scalar.py), which makes the second rounding
exact: f32 keeps more than two bits beyond f16's.
"""

from __future__ import annotations

from llvmlite import ir

from codegen.cpu_caps import CpuCaps

I16, I32 = ir.IntType(16), ir.IntType(32)
F16, F32 = ir.HalfType(), ir.FloatType()
TO_HALF, FROM_HALF = "tessel_f32_to_f16", "tessel_f16_to_f32"


def _declared(module: ir.Module, name: str, ret: ir.Type, arg: ir.Type) -> ir.Function:
    existing = module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    fn = ir.Function(module, ir.FunctionType(ret, [arg]), name)
    fn.linkage = "internal"
    fn.attributes.add("alwaysinline")
    return fn


def f32_to_half(b: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """Round an f32 to the nearest even f16 (stored as `half`)."""
    return b.call(_declared(b.module, TO_HALF, F16, F32), [value])


def half_to_f32(b: ir.IRBuilder, raw: ir.Value) -> ir.Value:
    """A `half` as the f32 of the same value (exact)."""
    return b.call(_declared(b.module, FROM_HALF, F32, F16), [raw])


def define_conversions(module: ir.Module, caps: CpuCaps) -> None:
    """Give the conversions that `module` uses their bodies for a CPU with `caps`."""
    for name, body in ((TO_HALF, _to_half), (FROM_HALF, _from_half)):
        fn = module.globals.get(name)
        if isinstance(fn, ir.Function) and fn.is_declaration:
            b = ir.IRBuilder(fn.append_basic_block("entry"))
            x = fn.args[0]
            if caps.f16c:
                b.ret(b.fptrunc(x, F16) if name == TO_HALF else b.fpext(x, F32))
            else:
                b.ret(body(b, x))


def _to_half(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Round to nearest even on the bit pattern, as F16C's VCVTPS2PH does: overflow to
    infinity, NaN quietened with its payload's top bits kept."""
    bits = b.bitcast(x, I32)
    sign = b.and_(b.lshr(bits, I32(16)), I32(0x8000))
    mag = b.and_(bits, I32(0x7FFFFFFF))
    # normal results: rebias the exponent (127 -> 15) and round the 13 dropped bits to even;
    # a carry out of the mantissa steps the exponent, up to infinity from 65520 on
    odd = b.and_(b.lshr(mag, I32(13)), I32(1))
    rounded = b.add(b.add(mag, I32(0xFFF - (112 << 23))), odd)
    normal = b.lshr(rounded, I32(13))
    # subnormal results: adding 0.5 puts the f16 subnormal's last bit at the f32's last bit,
    # so the float addition does the rounding
    magic = ir.Constant(F32, 0.5)
    shifted = b.fadd(b.bitcast(mag, F32), magic)
    subnormal = b.sub(b.bitcast(shifted, I32), I32(0x3F000000))
    nan = b.or_(I32(0x7E00), b.and_(b.lshr(mag, I32(13)), I32(0x3FF)))
    out = b.select(b.icmp_unsigned("<", mag, I32(113 << 23)), subnormal, normal)
    out = b.select(b.icmp_unsigned(">=", mag, I32(0x47800000)), I32(0x7C00), out)
    out = b.select(b.icmp_unsigned(">", mag, I32(0x7F800000)), nan, out)
    return b.bitcast(b.trunc(b.or_(out, sign), I16), F16)


def _from_half(b: ir.IRBuilder, raw: ir.Value) -> ir.Value:
    """Exact: rebias normal numbers, scale subnormals by 2^-24, keep NaN payloads."""
    h = b.zext(b.bitcast(raw, I16), I32)
    sign = b.shl(b.and_(h, I32(0x8000)), I32(16))
    mag = b.and_(h, I32(0x7FFF))
    normal = b.add(b.shl(mag, I32(13)), I32(112 << 23))
    special = b.or_(I32(0x7F800000), b.shl(b.and_(mag, I32(0x3FF)), I32(13)))
    tiny = b.fmul(b.sitofp(mag, F32), ir.Constant(F32, 2.0**-24))  # exact: mag < 2^10
    out = b.select(b.icmp_unsigned("<", mag, I32(0x400)), b.bitcast(tiny, I32), normal)
    out = b.select(b.icmp_unsigned(">=", mag, I32(0x7C00)), special, out)
    return b.bitcast(b.or_(out, sign), F32)
