"""Scalar semantics of every elementwise op in LLVM IR: one small function per op family.

Each entry takes the builder, the operands' dtype, the output dtype and compute-type values, and
returns the compute-type result. The rules mirror runtime/reference.py (the oracle): integer
arithmetic wraps, integer division truncates with x/0 = -1 (all ones unsigned), integer fmod
gives x fmod 0 = 0, float max/min propagate NaN like numpy, convert saturates and sends NaN to 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from llvmlite import ir

from codegen import mathlib
from codegen.types import COMPUTE, F32, F64, I1, I32, round_to
from ir.dtypes import DType
from ir.ops import Op

ScalarRule = Callable[[ir.IRBuilder, DType, DType, Sequence[ir.Value]], ir.Value]


def _intrinsic(b: ir.IRBuilder, name: str, args: Sequence[ir.Value]) -> ir.Value:
    ty = args[0].type  # an elementwise intrinsic: every operand and the result of one type
    fn = b.module.declare_intrinsic(f"llvm.{name}", [ty], ir.FunctionType(ty, [ty] * len(args)))
    return b.call(fn, list(args))


def _llvm(name: str) -> Callable[[ir.IRBuilder, Sequence[ir.Value]], ir.Value]:
    """The float intrinsic llvm.`name` (LLVM lowers the transcendental ones to libm calls)."""
    return lambda b, a: _intrinsic(b, name, a)


def _libm(name: str) -> Callable[[ir.IRBuilder, Sequence[ir.Value]], ir.Value]:
    """A call to the C math library's `name` (f64) or `name`f (f32), where LLVM has no
    intrinsic; codegen/objsyms.py lists what generated code may call."""

    def call(b: ir.IRBuilder, a: Sequence[ir.Value]) -> ir.Value:
        ty = a[0].type
        symbol = name if ty == F64 else f"{name}f"
        fn = b.module.globals.get(symbol)
        if fn is None:
            fn = ir.Function(b.module, ir.FunctionType(ty, [ty] * len(a)), symbol)
        return b.call(fn, list(a))

    return call


def _float(op: Callable[[ir.IRBuilder, Sequence[ir.Value]], ir.Value]) -> ScalarRule:
    """A float-only rule computed in the compute type, rounded to the output type."""

    def rule(b: ir.IRBuilder, src: DType, out: DType, args: Sequence[ir.Value]) -> ir.Value:
        return round_to(b, op(b, args), out)

    return rule


def _numeric(
    fop: Callable[[ir.IRBuilder, Sequence[ir.Value]], ir.Value],
    iop: Callable[[ir.IRBuilder, DType, Sequence[ir.Value]], ir.Value],
) -> ScalarRule:
    def rule(b: ir.IRBuilder, src: DType, out: DType, args: Sequence[ir.Value]) -> ir.Value:
        if src.is_float:
            return round_to(b, fop(b, args), out)
        return iop(b, src, args)

    return rule


# x ** c for a constant c = k / 2 in these ranges is computed with multiplications and a square
# root, which vectorize (pow is a C library call per element). Each multiplication rounds, so an
# f64 result keeps to 2 ulp only for the shorter products; narrower types compute in f64.
HALF_STEPS_F64 = range(-3, 9)  # x ** -1.5 (an inverse-cube law) up to x ** 4
HALF_STEPS_WIDENED = range(-8, 9)


def _half_steps(x: ir.Value, y: ir.Value) -> int | None:
    """2c for a constant exponent c that is a nonzero multiple of 1/2 in range, else None."""
    c = y.constant if isinstance(y, ir.Constant) else None
    if not isinstance(c, float) or not math.isfinite(c) or not (2 * c).is_integer():
        return None
    k = int(2 * c)
    return k if k and k in (HALF_STEPS_F64 if x.type == F64 else HALF_STEPS_WIDENED) else None


def _float_pow(b: ir.IRBuilder, a: Sequence[ir.Value]) -> ir.Value:
    """pow(x, y): a C library call, unless y is a constant k / 2 (`_half_steps`).

    Then x ** (k / 2) is (1/x if k < 0 else x) ** (|k| // 2), times sqrt(x) (1/sqrt(x) if
    k < 0) for an odd k, computed in f64 (f32 and narrower round once at the end). The special
    values are C's pow's: a negative base of a half-integer power is NaN (its square root is),
    and -0 and -inf are taken as +0 and +inf there first, as pow does for exponents that are
    not odd integers. Measured against pow (tests/backends/test_pow.py): f64 results within
    2 ulp, f32 within 1."""
    x, y = a
    k = _half_steps(x, y)
    if k is None:
        return _intrinsic(b, "pow", a)
    wide = x.type != F64
    v = b.fpext(x, F64) if wide else x
    if k % 2:
        inf = ir.Constant(F64, math.inf)
        v = b.fadd(v, ir.Constant(F64, 0.0))  # -0 + 0 = +0; every other value stays
        v = b.select(b.fcmp_ordered("==", v, ir.Constant(F64, -math.inf)), inf, v)
    one = ir.Constant(F64, 1.0)
    whole, odd = divmod(abs(k), 2)
    factors = [b.fdiv(one, v) if k < 0 else v] * whole
    if odd:  # 1/sqrt(x), not sqrt(1/x): 1/x overflows for a subnormal x, 1/sqrt(x) does not
        root = _intrinsic(b, "sqrt", [v])
        factors.append(b.fdiv(one, root) if k < 0 else root)
    out = factors[0]
    for f in factors[1:]:
        out = b.fmul(out, f)
    return b.fptrunc(out, x.type) if wide else out


def _zero(v: ir.Value) -> ir.Value:
    return ir.Constant(v.type, 0)


def _one(v: ir.Value) -> ir.Value:
    return ir.Constant(v.type, 1)


# --- unary ------------------------------------------------------------------------------------


def _abs_int(b: ir.IRBuilder, dt: DType, a: Sequence[ir.Value]) -> ir.Value:
    (x,) = a
    if not dt.is_signed:
        return x
    return b.select(b.icmp_signed("<", x, _zero(x)), b.neg(x), x)  # abs(INT_MIN) wraps to itself


def _relu_float(b: ir.IRBuilder, a: Sequence[ir.Value]) -> ir.Value:
    (x,) = a  # max(x, 0) with numpy's rule: NaN stays NaN, -0.0 becomes +0.0
    keep = b.fcmp_unordered("uno", x, x)
    keep = b.or_(keep, b.fcmp_ordered(">", x, _zero(x)))
    return b.select(keep, x, _zero(x))


def _relu_int(b: ir.IRBuilder, dt: DType, a: Sequence[ir.Value]) -> ir.Value:
    (x,) = a
    if not dt.is_signed:
        return x
    return b.select(b.icmp_signed(">", x, _zero(x)), x, _zero(x))


def _sign_float(b: ir.IRBuilder, a: Sequence[ir.Value]) -> ir.Value:
    (x,) = a  # ±0 and NaN are their own sign
    one = ir.Constant(x.type, 1.0)
    pos = b.select(b.fcmp_ordered(">", x, _zero(x)), one, x)
    return b.select(b.fcmp_ordered("<", x, _zero(x)), ir.Constant(x.type, -1.0), pos)


def _sign_int(b: ir.IRBuilder, dt: DType, a: Sequence[ir.Value]) -> ir.Value:
    (x,) = a
    if not dt.is_signed:
        return b.zext(b.icmp_unsigned("!=", x, _zero(x)), x.type)
    pos = b.zext(b.icmp_signed(">", x, _zero(x)), x.type)
    neg = b.zext(b.icmp_signed("<", x, _zero(x)), x.type)
    return b.sub(pos, neg)


def _not(b: ir.IRBuilder, dt: DType, a: Sequence[ir.Value]) -> ir.Value:
    (x,) = a
    return b.xor(x, ir.Constant(x.type, -1 if x.type != I1 else 1))


# --- binary -----------------------------------------------------------------------------------


def _int_div(b: ir.IRBuilder, dt: DType, a: Sequence[ir.Value]) -> ir.Value:
    x, y = a
    by_zero = b.icmp_unsigned("==", y, _zero(y))
    if not dt.is_signed:
        q = b.udiv(x, b.select(by_zero, _one(y), y))
        return b.select(by_zero, ir.Constant(x.type, -1), q)
    minimum = ir.Constant(x.type, -(1 << (x.type.width - 1)))
    overflow = b.and_(
        b.icmp_signed("==", x, minimum), b.icmp_signed("==", y, ir.Constant(y.type, -1))
    )
    bad = b.or_(by_zero, overflow)
    q = b.sdiv(x, b.select(bad, _one(y), y))  # a safe divisor: sdiv by 0 or MIN/-1 is undefined
    q = b.select(overflow, minimum, q)
    return b.select(by_zero, ir.Constant(x.type, -1), q)


def _int_fmod(b: ir.IRBuilder, dt: DType, a: Sequence[ir.Value]) -> ir.Value:
    x, y = a
    # x fmod 0 is 0, and so is x fmod -1, which srem leaves undefined for INT_MIN: a divisor
    # of 1 gives both
    bad = b.icmp_unsigned("==", y, _zero(y))
    if not dt.is_signed:
        return b.urem(x, b.select(bad, _one(y), y))
    bad = b.or_(bad, b.icmp_signed("==", y, ir.Constant(y.type, -1)))
    return b.srem(x, b.select(bad, _one(y), y))


def _shift_left(b: ir.IRBuilder, dt: DType, a: Sequence[ir.Value]) -> ir.Value:
    x, count = a
    in_range = b.icmp_unsigned("<", count, ir.Constant(x.type, x.type.width))
    return b.select(in_range, b.shl(x, count), _zero(x))  # LLVM's shl is poison past the width


def _shift_right(b: ir.IRBuilder, dt: DType, a: Sequence[ir.Value]) -> ir.Value:
    x, count = a
    in_range = b.icmp_unsigned("<", count, ir.Constant(x.type, x.type.width))
    if dt.is_signed:  # every bit out leaves copies of the sign bit, as a shift by width-1 does
        return b.ashr(x, b.select(in_range, count, ir.Constant(x.type, x.type.width - 1)))
    return b.select(in_range, b.lshr(x, count), _zero(x))


def _make_complex(b: ir.IRBuilder, src: DType, out: DType, a: Sequence[ir.Value]) -> ir.Value:
    pair = ir.Constant(COMPUTE[out], ir.Undefined)
    return b.insert_value(b.insert_value(pair, a[0], 0), a[1], 1)


def _hypot(b: ir.IRBuilder, a: Sequence[ir.Value]) -> ir.Value:
    """sqrt(x² + y²) in straight-line code (the C library's hypot is a call per element, which
    stops vectorization: it was most of a complex |z| loop's time). f32 squares and sums in f64,
    where nothing overflows and the one rounding of the result is all that is lost; f64 scales
    by the larger magnitude: big * sqrt(1 + (small / big)²), within 2 ulp. An infinite operand
    gives +inf even beside a NaN, as C's hypot."""
    x, y = (_intrinsic(b, "fabs", [v]) for v in a)
    ty = x.type
    if ty == F32:
        wx, wy = b.fpext(x, F64), b.fpext(y, F64)
        wide = b.fadd(b.fmul(wx, wx), b.fmul(wy, wy))
        out = b.fptrunc(_intrinsic(b, "sqrt", [wide]), F32)
    else:
        big, small = _intrinsic(b, "maxnum", [x, y]), _intrinsic(b, "minnum", [x, y])
        ratio = b.fdiv(small, big)
        root = _intrinsic(b, "sqrt", [b.fadd(ir.Constant(ty, 1.0), b.fmul(ratio, ratio))])
        scaled = b.fmul(big, root)
        zero = ir.Constant(ty, 0.0)
        out = b.select(b.fcmp_ordered("==", big, zero), zero, scaled)  # 0 / 0 above
        nan = b.fcmp_unordered("uno", x, y)
        out = b.select(nan, ir.Constant(ty, float("nan")), out)
    inf = ir.Constant(ty, float("inf"))
    either_inf = b.or_(b.fcmp_ordered("==", x, inf), b.fcmp_ordered("==", y, inf))
    return b.select(either_inf, inf, out)


def _int_pow(b: ir.IRBuilder, dt: DType, a: Sequence[ir.Value]) -> ir.Value:
    x, y = a
    fn = _ipow_function(b.module, x.type, dt.is_signed)
    return b.call(fn, [x, y])


def _ipow_function(module: ir.Module, ty: ir.IntType, signed: bool) -> ir.Function:
    """pow by repeated squaring with wrapping; negative exponents give 1/x truncated."""
    name = f"tessel.ipow.{'s' if signed else 'u'}{ty.width}"
    existing = module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    fn = ir.Function(module, ir.FunctionType(ty, [ty, ty]), name)
    fn.linkage = "internal"
    base, exp = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    loop, done, negative = (fn.append_basic_block(n) for n in ("loop", "done", "negative"))
    zero, one = ir.Constant(ty, 0), ir.Constant(ty, 1)
    if signed:
        b.cbranch(b.icmp_signed("<", exp, zero), negative, loop)
    else:
        b.branch(loop)
    entry = b.block
    b.position_at_end(loop)
    acc = b.phi(ty)
    sq = b.phi(ty)
    e = b.phi(ty)
    acc.add_incoming(one, entry)
    sq.add_incoming(base, entry)
    e.add_incoming(exp, entry)
    odd = b.trunc(e, I1)
    acc2 = b.select(odd, b.mul(acc, sq), acc)
    sq2 = b.mul(sq, sq)
    e2 = b.lshr(e, one)
    acc.add_incoming(acc2, loop)
    sq.add_incoming(sq2, loop)
    e.add_incoming(e2, loop)
    b.cbranch(b.icmp_unsigned("==", e2, zero), done, loop)
    b.position_at_end(done)
    b.ret(acc2)
    b.position_at_end(negative)
    # x ** -n: 1 for x = 1, ±1 for x = -1 by parity, 0 otherwise (integer reciprocal)
    is_one = b.icmp_signed("==", base, one)
    is_minus_one = b.icmp_signed("==", base, ir.Constant(ty, -1))
    parity = b.select(b.trunc(exp, I1), ir.Constant(ty, -1), one)
    b.ret(b.select(is_one, one, b.select(is_minus_one, parity, zero)))
    return fn


def _max_min(greater: bool) -> ScalarRule:
    def rule(b: ir.IRBuilder, src: DType, out: DType, a: Sequence[ir.Value]) -> ir.Value:
        x, y = a
        if src.is_float:  # numpy: (x >= y or isnan(x)) ? x : y, so a NaN anywhere wins
            keep = b.fcmp_ordered(">=" if greater else "<=", x, y)
            keep = b.or_(keep, b.fcmp_unordered("uno", x, x))
            return b.select(keep, x, y)
        cmp = b.icmp_signed if src.is_signed else b.icmp_unsigned
        return b.select(cmp(">=" if greater else "<=", x, y), x, y)

    return rule


def _compare(pred: str) -> ScalarRule:
    def rule(b: ir.IRBuilder, src: DType, out: DType, a: Sequence[ir.Value]) -> ir.Value:
        x, y = a
        if src.is_float:
            # ordered except !=, which holds for NaN (IEEE, and numpy)
            if pred == "!=":
                return b.fcmp_unordered("!=", x, y)
            return b.fcmp_ordered(pred, x, y)
        if src.is_signed:
            return b.icmp_signed(pred, x, y)
        return b.icmp_unsigned(pred, x, y)

    return rule


def _select(b: ir.IRBuilder, src: DType, out: DType, a: Sequence[ir.Value]) -> ir.Value:
    p, x, y = a
    return b.select(p, x, y)


# --- convert ----------------------------------------------------------------------------------


def convert(b: ir.IRBuilder, src: DType, out: DType, a: Sequence[ir.Value]) -> ir.Value:
    """ir.Value conversion with the reference's rules (see runtime/numerics.py `cast`)."""
    (x,) = a
    target = COMPUTE[out]
    if out == DType.BOOL:
        if src.is_float:
            return b.fcmp_unordered("!=", x, _zero(x))
        return b.icmp_unsigned("!=", x, _zero(x))
    if src == DType.BOOL:
        return b.uitofp(x, target) if out.is_float else b.zext(x, target)
    if src.is_float and out.is_float:
        return _float_to_float(b, x, out)
    if src.is_float:  # truncate toward zero, saturate, NaN -> 0
        kind = "fptosi" if out.is_signed else "fptoui"
        # llvmlite's declare_intrinsic does not know the saturating casts: name them by hand
        source = "f64" if x.type == ir.DoubleType() else "f32"
        name = f"llvm.{kind}.sat.i{target.width}.{source}"
        fn = b.module.globals.get(name)
        if fn is None:
            fn = ir.Function(b.module, ir.FunctionType(target, [x.type]), name)
        return b.call(fn, [x])
    if out.is_float:
        to_float = b.sitofp if src.is_signed else b.uitofp
        if out in (DType.F16, DType.BF16):
            # exact in f64 up to 2^53, and anything larger overflows f16 or rounds the same
            # in bf16 (round to odd keeps the sticky bit), so one rounding step in effect
            return _float_to_float(b, to_float(x, F64), out)
        return to_float(x, target)
    if target.width < x.type.width:
        return b.trunc(x, target)
    if target.width > x.type.width:
        return b.sext(x, target) if src.is_signed else b.zext(x, target)
    return x


def _float_to_float(b: ir.IRBuilder, x: ir.Value, out: DType) -> ir.Value:
    if out == DType.F64:
        return b.fpext(x, F64) if x.type != F64 else x
    if out == DType.F32:
        return b.fptrunc(x, F32) if x.type == F64 else x
    # f16 and bf16 from f64: round to odd into f32 first, so the second rounding is exact
    # (f16 through F16C or integer code: codegen/halfconv.py, never a runtime helper)
    if x.type == F64:
        x = _f64_to_f32_round_to_odd(b, x)
    return round_to(b, x, out)


def _f64_to_f32_round_to_odd(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    nearest = b.fptrunc(x, F32)
    back = b.fpext(nearest, F64)
    inexact = b.fcmp_ordered("!=", back, x)
    # step toward zero when rounding went away from zero, then force the last bit to 1
    away = b.fcmp_ordered(">", _intrinsic(b, "fabs", [back]), _intrinsic(b, "fabs", [x]))
    bits = b.bitcast(nearest, I32)
    bits = b.select(b.and_(inexact, away), b.sub(bits, I32(1)), bits)
    bits = b.select(inexact, b.or_(bits, I32(1)), bits)
    return b.bitcast(bits, F32)


# --- the table --------------------------------------------------------------------------------


def _fadd(b: ir.IRBuilder, a: Sequence[ir.Value]) -> ir.Value:
    return b.fadd(*a)


SCALAR: dict[Op, ScalarRule] = {
    Op.NEG: _numeric(lambda b, a: b.fneg(a[0]), lambda b, dt, a: b.neg(a[0])),
    Op.ABS: _numeric(lambda b, a: _intrinsic(b, "fabs", a), _abs_int),
    # these transcendentals are vectorizable polynomials (codegen/mathlib.py), not libm calls
    Op.EXP: _float(lambda b, a: mathlib.exp(b, a[0])),
    Op.LOG: _float(lambda b, a: mathlib.log(b, a[0])),
    Op.SQRT: _float(_llvm("sqrt")),
    Op.RSQRT: _float(lambda b, a: b.fdiv(ir.Constant(a[0].type, 1.0), _intrinsic(b, "sqrt", a))),
    Op.TANH: _float(lambda b, a: mathlib.tanh(b, a[0])),
    Op.SIGMOID: _float(lambda b, a: mathlib.sigmoid(b, a[0])),
    Op.RELU: _numeric(_relu_float, _relu_int),
    Op.ERF: _float(lambda b, a: mathlib.erf(b, a[0])),
    # these are scalar calls of the C math library (through an intrinsic where LLVM has one)
    Op.SIN: _float(_llvm("sin")),
    Op.COS: _float(_llvm("cos")),
    Op.TAN: _float(_llvm("tan")),
    Op.ASIN: _float(_llvm("asin")),
    Op.ACOS: _float(_llvm("acos")),
    Op.ATAN: _float(_llvm("atan")),
    Op.SINH: _float(_llvm("sinh")),
    Op.COSH: _float(_llvm("cosh")),
    Op.ASINH: _float(_libm("asinh")),
    Op.ACOSH: _float(_libm("acosh")),
    Op.ATANH: _float(_libm("atanh")),
    Op.LOG1P: _float(_libm("log1p")),
    Op.EXPM1: _float(_libm("expm1")),
    Op.FLOOR: _float(_llvm("floor")),
    Op.CEIL: _float(_llvm("ceil")),
    Op.SIGN: _numeric(_sign_float, _sign_int),
    Op.NOT: lambda b, src, out, a: _not(b, src, a),
    Op.REAL: lambda b, src, out, a: b.extract_value(a[0], 0),
    Op.IMAG: lambda b, src, out, a: b.extract_value(a[0], 1),
    Op.COMPLEX: _make_complex,
    Op.ADD: _numeric(_fadd, lambda b, dt, a: b.add(*a)),
    Op.SUB: _numeric(lambda b, a: b.fsub(*a), lambda b, dt, a: b.sub(*a)),
    Op.MUL: _numeric(lambda b, a: b.fmul(*a), lambda b, dt, a: b.mul(*a)),
    Op.DIV: _numeric(lambda b, a: b.fdiv(*a), _int_div),
    Op.POW: _numeric(_float_pow, _int_pow),
    Op.ATAN2: _float(_llvm("atan2")),
    Op.HYPOT: _float(_hypot),
    Op.FMOD: _numeric(lambda b, a: b.frem(*a), _int_fmod),  # frem is the C library's fmod
    Op.MAX: _max_min(greater=True),
    Op.MIN: _max_min(greater=False),
    Op.AND: lambda b, src, out, a: b.and_(*a),
    Op.OR: lambda b, src, out, a: b.or_(*a),
    Op.XOR: lambda b, src, out, a: b.xor(*a),
    Op.SHIFT_LEFT: lambda b, src, out, a: _shift_left(b, src, a),
    Op.SHIFT_RIGHT: lambda b, src, out, a: _shift_right(b, src, a),
    Op.EQ: _compare("=="),
    Op.NE: _compare("!="),
    Op.LT: _compare("<"),
    Op.LE: _compare("<="),
    Op.GT: _compare(">"),
    Op.GE: _compare(">="),
    Op.SELECT: _select,
    Op.CONVERT: convert,
}
