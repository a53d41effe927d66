"""Transcendental functions as branch-free LLVM IR polynomials, so elementwise loops vectorize.

A call to libm (`expf`, `erf`) or to an intrinsic that lowers to one (`llvm.exp`, `llvm.tanh`)
keeps the loop vectorizer from widening the loop: every element pays a scalar call. Here each
function is straight-line IR (range reduction with exponent bit tricks, a polynomial, selects for
the special cases), emitted once per module and float type as an `alwaysinline` internal
function, so after inlining the vectorizer sees plain arithmetic and turns it into zmm code.
f16 and bf16 compute in f32 (codegen/types.py) and use the f32 versions.

Methods (coefficients derived by codegen/mathlib_fit.py; run `python -m codegen.mathlib_fit`):
- exp: x = k·ln2 + r with |r| <= ln2/2 (Cody-Waite: ln2 split so k·ln2_hi is exact), then
  exp(r) = 1 + r + r²/2 + r³·T(r), then 2^k as two exponent-field scalings 2^(k/2)·2^(k-k/2), so
  results that are subnormal round once and overflow to inf happens in the last multiply.
- log: x = 2^e·m with m in [√½, √2) (subnormals are scaled by 2^mantissa_bits first), f = m-1,
  s = f/(2+f), log(1+f) = f - f²/2 + s·(f²/2 + s²·L(s²)) so the leading term f is exact.
- tanh: x + x³·H(x²) for |x| < 0.55, else ±(1 - 2/(E+1)) with E = exp(2|x|) (tanh >= 0.5
  there, so the errors of 2/(E+1) shrink), saturating at |x| = 10 (f32) / 20 (f64).
- sigmoid: e = exp(-|x|) in (0, 1], then 1/(1+e) for x >= 0 and e/(1+e) otherwise: no overflow.
- erf: x + x·G(x²) for |x| < 1, else ±(1 - exp(-x²)·Q(|x|)) with Q a polynomial in |x| (one
  piece on [1, 4] for f32, three on [1, 6] for f64, chosen per lane with selects), saturating at
  4 (f32) / 6 (f64) where erf rounds to ±1.
Special values: exp(-inf) = 0, exp(inf) = inf, log(±0) = -inf, log(x<0) = nan, log(inf) = inf,
tanh/erf are odd and keep -0.0, NaN passes through everything.

Measured maximum error in ULP of the result type, against numpy in long double (80-bit; for erf
`math.erf` in f64, itself within 1 ulp, so the f64 erf figure is relative to libm). Inputs: a
dense sweep of 2M points over the useful range, 64 random mantissas in every binade of the type
(subnormals included), 4M random f32 bit patterns, the extremes (±max, ±smallest subnormal,
overflow and underflow thresholds, ±inf, nan, ±0) and the next float up from each.
tests/backends/test_mathlib.py asserts these bounds with a little headroom.

| function | f32 | f64 | share of results off by more than 0.5 ulp (f32 / f64) |
|---|---:|---:|---|
| exp | 1.01 | 0.97 | 5% / 9% |
| log | 0.83 | 0.82 | 3% / 5% |
| tanh | 1.41 | 1.39 | 1.4% / 1.1% |
| sigmoid | 2.31 | 2.07 | 11% / 9% (the rounding of e, 1+e and e/(1+e) add up) |
| erf | 1.06 | 1.00 | 1.8% / 3% |

f16 and bf16 results (the f32 value rounded once) equal the reference interpreter's correctly
rounded ones in all but a handful of near-tie elements and are always within 1 ulp.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

from llvmlite import ir

from codegen.types import F32, F64, I32, I64

with localcontext() as _ctx:
    _ctx.prec = 40
    _LN2 = Decimal(2).ln()

Builder = Callable[[ir.IRBuilder, ir.Value, "_Format"], ir.Value]


@dataclass(frozen=True)
class _Format:
    """The bit layout of an IEEE float type and the per-type constants of the functions."""

    name: str
    ty: ir.Type
    ity: ir.IntType
    mantissa: int  # explicit mantissa bits
    bias: int
    exp_lo: float  # exp(x) rounds to 0 at and below, so x is clamped here
    exp_hi: float  # exp(x) overflows at and above
    tanh_small: float  # below: polynomial; above: through exp
    tanh_sat: float  # tanh rounds to ±1 from here on
    erf_sat: float  # erf rounds to ±1 from here on

    def const(self, value: float) -> ir.Constant:
        return ir.Constant(self.ty, value)

    def iconst(self, value: int) -> ir.Constant:
        return ir.Constant(self.ity, value)

    def bits(self, value: float) -> int:
        """The integer bit pattern of `value` rounded to this type."""
        if self.ty == F32:
            return int(struct.unpack("<i", struct.pack("<f", value))[0])
        return int(struct.unpack("<q", struct.pack("<d", value))[0])

    def split_ln2(self) -> tuple[float, float]:
        """ln2 = hi + lo with hi short enough that k·hi is exact for every exponent k in range.

        |k| < 2^11 (f64) or 2^8 (f32), so hi keeps mantissa+1-11 (resp. -8) significant bits.
        """
        keep = self.mantissa + 1 - (11 if self.ty == F64 else 8)
        hi = math.ldexp(math.floor(math.ldexp(math.log(2), keep)), -keep)
        # from the exact ln2, not math.log(2): the f64 rounding of ln2 is off by 2^-56, which
        # k·lo would magnify to 2^-45 relative at k = 1000
        return hi, float(_LN2 - Decimal(hi))


_F32 = _Format("f32", F32, I32, 23, 127, -104.0, 89.0, 0.55, 10.0, 4.0)
_F64 = _Format("f64", F64, I64, 52, 1023, -746.0, 710.0, 0.55, 20.0, 6.0)


def _format(ty: ir.Type) -> _Format:
    if ty == F32:
        return _F32
    if ty == F64:
        return _F64
    raise TypeError(f"mathlib has no {ty} version")


# --- coefficients (from codegen/mathlib_fit.py, lowest degree first) ---------------------------

# exp(r) = 1 + r + r²/2 + r³·T(r) on |r| <= ln2/2
EXP_T = {
    "f32": (0.16666534543037415, 0.041667237877845764, 0.008367488160729408,
            0.0013863808708265424),
    "f64": (0.166666666666666, 0.04166666666665782, 0.008333333333385396,
            0.0013888888894049794, 0.00019841269728042984, 2.4801576833329036e-05,
            2.7557398239027227e-06, 2.7566221183801204e-07, 2.505727850930102e-08,
            1.8179513988097722e-09),
}  # fmt: skip
# 2·atanh(s) = 2s + s·z·L(z), z = s² <= (3 - 2√2)²
LOG_L = {
    "f32": (0.6666677594184875, 0.39977535605430603, 0.29871875047683716),
    "f64": (0.666666666666675, 0.3999999999931602, 0.2857142876386851, 0.22222196435955202,
            0.1818367157140481, 0.1531140487936056, 0.148214787516475),
}  # fmt: skip
# tanh(x) = x + x·z·H(z), z = x², |x| < tanh_small
TANH_H = {
    "f32": (-0.33333319425582886, 0.13332600891590118, -0.0538538433611393,
            0.02107769250869751, -0.006282376125454903),
    "f64": (-0.3333333333333367, 0.13333333333378536, -0.053968253988951734,
            0.021869488996522343, -0.008863241191103299, 0.003592167455939677,
            -0.0014559697866216208, 0.0005900040089574206, -0.00023693549752929927,
            8.791425107662608e-05, -2.2074466502537462e-05),
}  # fmt: skip
# erf(x) = x + x·G(z), z = x², |x| < 1
ERF_G = {
    "f32": (0.12837916612625122, -0.37612637877464294, 0.11283782869577408,
            -0.02686544507741928, 0.005221074912697077, -0.0008484713034704328,
            0.00011270550749031827, -9.680141374701634e-06),
    "f64": (0.12837916709551256, -0.37612638903183526, 0.1128379167094339,
            -0.026866170642891245, 0.005223977603911922, -0.0008548325818250064,
            0.00012055290482807783, -1.4924665381744695e-05, 1.644684413130643e-06,
            -1.6208176231103263e-07, 1.375526409913074e-08, -8.066157140226361e-10,
            6.662471170502915e-12),
}  # fmt: skip
# erf(x) = 1 - exp(-x²)·Q(x), Q(x) = exp(x²)·erfc(x) as a polynomial in x - center on each piece:
# (upper end of the piece, center, coefficients); the last piece runs to erf_sat.
ERF_Q: dict[str, tuple[tuple[float, float, tuple[float, ...]], ...]] = {
    "f32": (
        (4.0, 2.5, (0.21080633997917175, -0.07434938102960587, 0.024929532781243324,
                    -0.008000188507139683, 0.002520717680454254, -0.0006491601816378534,
                    0.00022366223856806755, -0.0001362245820928365, -5.7788551202975214e-05,
                    -2.7996085918857716e-05)),
    ),
    "f64": (
        (2.0, 1.5, (0.32158541645431743, -0.1636229177325589, 0.07615103985552456,
                    -0.03293090529962795, 0.013377340949457065, -0.005145957549445264,
                    0.0018861349764712565, -0.0006619299644492504, 0.0002233086673856031,
                    -7.26605708891947e-05, 2.287268074864645e-05, -6.963330838376122e-06,
                    2.039282249839386e-06, -6.34130246648338e-07, 2.0732063632484345e-07)),
        (3.5, 2.75, (0.19366209627906955, -0.06323763756063795, 0.01975859298712725,
                     -0.005934337897451311, 0.001719581890471273, -0.00048219506694292125,
                     0.00013118176588478996, -3.46987966995768e-05, 8.940159034583917e-06,
                     -2.2466108226456702e-06, 5.52550615829399e-07, -1.3387753698879298e-07,
                     2.958113406474174e-08, -6.712081799771745e-09, 2.9998025621912794e-09)),
        (6.0, 4.75, (0.11630270721049352, -0.023503448591873876, 0.004661326399673843,
                     -0.0009080989298807687, 0.0001739276820885756, -3.277753876108045e-05,
                     6.079723174753755e-06, -1.1088010929613363e-06, 2.0814850946962562e-07,
                     -2.7862547468220895e-08, 8.651053821977757e-09, -2.922224332819741e-09,
                     -1.8999389421767735e-09, -8.141837294819354e-10,
                     -1.0058063003507414e-10)),
    ),
}  # fmt: skip


# --- building blocks ----------------------------------------------------------------------------


def _fmuladd(b: ir.IRBuilder, x: ir.Value, y: ir.Value, z: ir.Value) -> ir.Value:
    """x·y + z, fused where the target has FMA (llvm.fma would become a libm call where not)."""
    fnty = ir.FunctionType(x.type, [x.type] * 3)
    fn = b.module.declare_intrinsic("llvm.fmuladd", [x.type], fnty)
    return b.call(fn, [x, y, z])


def _unary_intrinsic(b: ir.IRBuilder, name: str, x: ir.Value) -> ir.Value:
    return b.call(b.module.declare_intrinsic(f"llvm.{name}", [x.type]), [x])


def _copysign(b: ir.IRBuilder, mag: ir.Value, sign: ir.Value) -> ir.Value:
    fnty = ir.FunctionType(mag.type, [mag.type, mag.type])
    fn = b.module.declare_intrinsic("llvm.copysign", [mag.type], fnty)
    return b.call(fn, [mag, sign])


def _horner(b: ir.IRBuilder, v: ir.Value, coeffs: Sequence[ir.Value]) -> ir.Value:
    acc = coeffs[-1]
    for c in reversed(coeffs[:-1]):
        acc = _fmuladd(b, acc, v, c)
    return acc


def _poly(b: ir.IRBuilder, fmt: _Format, v: ir.Value, coeffs: Sequence[float]) -> ir.Value:
    return _horner(b, v, [fmt.const(c) for c in coeffs])


def _pow2(b: ir.IRBuilder, fmt: _Format, k: ir.Value) -> ir.Value:
    """2^k as a float built in the exponent field; k must be a normal exponent."""
    field = b.shl(b.add(k, fmt.iconst(fmt.bias)), fmt.iconst(fmt.mantissa))
    return b.bitcast(field, fmt.ty)


def _is_nan(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    return b.fcmp_unordered("uno", x, x)


def _exp_core(b: ir.IRBuilder, x: ir.Value, fmt: _Format) -> ir.Value:
    """exp(x) for x in [exp_lo, exp_hi] (NaN gives some NaN or number; callers select it away)."""
    shifter = 1.5 * 2.0**fmt.mantissa  # adding it rounds to an integer kept in the low bits
    t = _fmuladd(b, x, fmt.const(1 / math.log(2)), fmt.const(shifter))
    kf = b.fsub(t, fmt.const(shifter))
    k = b.sub(b.bitcast(t, fmt.ity), fmt.iconst(fmt.bits(shifter)))
    hi, lo = fmt.split_ln2()
    r = _fmuladd(b, kf, fmt.const(-hi), x)  # exact: k·hi is exact and close to x
    r = _fmuladd(b, kf, fmt.const(-lo), r)
    tail = _fmuladd(b, _poly(b, fmt, r, EXP_T[fmt.name]), r, fmt.const(0.5))
    p = b.fadd(fmt.const(1.0), _fmuladd(b, b.fmul(r, r), tail, r))
    # two half-size scalings: each factor is a normal number even when 2^k is not
    k1 = b.ashr(k, fmt.iconst(1))
    return b.fmul(b.fmul(p, _pow2(b, fmt, k1)), _pow2(b, fmt, b.sub(k, k1)))


def _exp(b: ir.IRBuilder, x: ir.Value, fmt: _Format) -> ir.Value:
    # "ult" is also true for NaN, so NaN lanes compute exp(exp_lo) and are replaced at the end
    xc = b.select(b.fcmp_unordered("<", x, fmt.const(fmt.exp_lo)), fmt.const(fmt.exp_lo), x)
    xc = b.select(b.fcmp_ordered(">", xc, fmt.const(fmt.exp_hi)), fmt.const(fmt.exp_hi), xc)
    return b.select(_is_nan(b, x), x, _exp_core(b, xc, fmt))


def _log(b: ir.IRBuilder, x: ir.Value, fmt: _Format) -> ir.Value:
    min_normal = math.ldexp(1.0, 1 - fmt.bias)
    subnormal = b.fcmp_ordered("<", x, fmt.const(min_normal))
    xs = b.select(subnormal, b.fmul(x, fmt.const(2.0**fmt.mantissa)), x)
    # subtracting √½'s bits puts m = x/2^e in [√½, √2): f = m - 1 stays small on both sides of 1
    sqrt_half = fmt.bits(math.sqrt(0.5))
    ix = b.sub(b.bitcast(xs, fmt.ity), fmt.iconst(sqrt_half))
    e = b.sub(
        b.ashr(ix, fmt.iconst(fmt.mantissa)),
        b.select(subnormal, fmt.iconst(fmt.mantissa), fmt.iconst(0)),
    )
    mantissa_mask = (1 << fmt.mantissa) - 1
    m = b.bitcast(b.add(b.and_(ix, fmt.iconst(mantissa_mask)), fmt.iconst(sqrt_half)), fmt.ty)
    f = b.fsub(m, fmt.const(1.0))  # exact (Sterbenz)
    s = b.fdiv(f, b.fadd(fmt.const(2.0), f))
    z = b.fmul(s, s)
    big_r = b.fmul(z, _poly(b, fmt, z, LOG_L[fmt.name]))
    hfsq = b.fmul(fmt.const(0.5), b.fmul(f, f))
    ef = b.sitofp(e, fmt.ty)
    hi, lo = fmt.split_ln2()
    # log = e·hi + (f - hfsq + s·(hfsq + R) + e·lo), summed smallest terms first
    small = _fmuladd(b, s, b.fadd(hfsq, big_r), b.fmul(ef, fmt.const(lo)))
    result = _fmuladd(b, ef, fmt.const(hi), b.fsub(f, b.fsub(hfsq, small)))
    inf = fmt.const(math.inf)
    result = b.select(b.fcmp_ordered("==", x, inf), inf, result)
    result = b.select(b.fcmp_ordered("<", x, fmt.const(0.0)), fmt.const(math.nan), result)
    result = b.select(b.fcmp_ordered("==", x, fmt.const(0.0)), fmt.const(-math.inf), result)
    return b.select(_is_nan(b, x), x, result)


def _tanh(b: ir.IRBuilder, x: ir.Value, fmt: _Format) -> ir.Value:
    ax = _unary_intrinsic(b, "fabs", x)
    z = b.fmul(x, x)
    small = _fmuladd(b, b.fmul(x, z), _poly(b, fmt, z, TANH_H[fmt.name]), x)
    sat = fmt.const(fmt.tanh_sat)
    axc = b.select(b.fcmp_ordered(">", ax, sat), sat, ax)
    big_e = _exp_core(b, b.fmul(fmt.const(2.0), axc), fmt)
    # tanh >= 0.5 here, so the rounding errors of 2/(E+1) <= 0.5 shrink relative to 1 - that
    one = fmt.const(1.0)
    big = b.fsub(one, b.fdiv(fmt.const(2.0), b.fadd(big_e, one)))
    result = b.select(b.fcmp_ordered("<", ax, fmt.const(fmt.tanh_small)), small, big)
    # odd: the sign comes from x, which also keeps tanh(-0.0) = -0.0 (x + x³·H gives +0.0)
    return b.select(_is_nan(b, x), x, _copysign(b, result, x))


def _sigmoid(b: ir.IRBuilder, x: ir.Value, fmt: _Format) -> ir.Value:
    e = _exp(b, b.fneg(_unary_intrinsic(b, "fabs", x)), fmt)  # in [0, 1]: cannot overflow
    one = fmt.const(1.0)
    numerator = b.select(b.fcmp_ordered(">=", x, fmt.const(0.0)), one, e)  # NaN takes e = NaN
    return b.fdiv(numerator, b.fadd(one, e))


def _erf(b: ir.IRBuilder, x: ir.Value, fmt: _Format) -> ir.Value:
    ax = _unary_intrinsic(b, "fabs", x)
    small = _fmuladd(b, x, _poly(b, fmt, b.fmul(x, x), ERF_G[fmt.name]), x)
    sat = fmt.const(fmt.erf_sat)
    axc = b.select(b.fcmp_ordered(">", ax, sat), sat, ax)
    pieces = ERF_Q[fmt.name]
    # per-lane piece choice: select each coefficient (and the center) instead of branching
    *_, (_, center, coeffs) = pieces
    chosen = [fmt.const(c) for c in coeffs]
    center_v: ir.Value = fmt.const(center)
    for upper, c0, cs in reversed(pieces[:-1]):
        inside = b.fcmp_ordered("<", axc, fmt.const(upper))
        chosen = [b.select(inside, fmt.const(c), v) for c, v in zip(cs, chosen, strict=True)]
        center_v = b.select(inside, fmt.const(c0), center_v)
    q = _horner(b, b.fsub(axc, center_v), chosen)
    decay = _exp_core(b, b.fneg(b.fmul(axc, axc)), fmt)
    big = b.fsub(fmt.const(1.0), b.fmul(decay, q))
    result = b.select(b.fcmp_ordered("<", ax, fmt.const(1.0)), small, big)
    return b.select(_is_nan(b, x), x, _copysign(b, result, x))  # odd, and erf(-0.0) = -0.0


# --- entry points -------------------------------------------------------------------------------


def _call(name: str, body: Builder) -> Callable[[ir.IRBuilder, ir.Value], ir.Value]:
    """An emitter that calls `tessel.<name>.<type>`, defining it in the module on first use.

    The function is internal and alwaysinline: the optimizer inlines it into the loop before
    vectorizing, and the unoptimized IR stays readable (one call per use, one body per type).
    """

    def emit(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        fmt = _format(x.type)
        symbol = f"tessel.{name}.{fmt.name}"
        fn = b.module.globals.get(symbol)
        if fn is None:
            fn = ir.Function(b.module, ir.FunctionType(fmt.ty, [fmt.ty]), symbol)
            fn.linkage = "internal"
            fn.attributes.add("alwaysinline")
            fb = ir.IRBuilder(fn.append_basic_block("entry"))
            fb.ret(body(fb, fn.args[0], fmt))
        return b.call(fn, [x])

    return emit


exp = _call("exp", _exp)
log = _call("log", _log)
tanh = _call("tanh", _tanh)
sigmoid = _call("sigmoid", _sigmoid)
erf = _call("erf", _erf)
