"""Elementwise reference semantics, op by op and dtype by dtype, against hand-written oracles.

The expectations never go through the reference table: exact arithmetic on fractions rounded to
the result type by a nearest-even search, Python integers wrapped modulo 2**bits, f64 math with
a per-dtype tolerance, and Python's own comparisons and truth rules.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from ir.dtypes import DType
from ir.ops import Op
from runtime.interp import run_op

pytestmark = pytest.mark.filterwarnings("error")  # no numpy warning may escape a reference rule

FLOATS = [DType.F64, DType.F32, DType.F16, DType.BF16]
INTS = [DType.I64, DType.I32, DType.I16, DType.I8, DType.U8]
NUMERIC = FLOATS + INTS
ALL = [*NUMERIC, DType.BOOL]
SHAPES = [(), (0,), (1,), (5,), (2, 3), (3, 0, 2), (1, 7, 1)]
# Relative tolerance for transcendental results: a few ulps of the type.
RTOL = {DType.F64: 1e-13, DType.F32: 2e-6, DType.F16: 1e-3, DType.BF16: 8e-3}


# --- oracles ------------------------------------------------------------------------------


def finfo(t: DType) -> Any:
    return ml_dtypes.finfo(t.np)  # type: ignore[no-untyped-call]  # numpy's finfo lacks bf16


def wrap(v: int, t: DType) -> int:
    """Two's-complement wrap of an exact integer into type t."""
    bits = 8 * t.itemsize
    v %= 1 << bits
    return v - (1 << bits) if t.is_signed and v >= 1 << (bits - 1) else v


def round_exact(v: Fraction, t: DType) -> float:
    """The value of float type t nearest to the exact rational v, ties to an even mantissa."""
    largest = np.array(finfo(t).max, t.np)
    below_largest = np.nextafter(largest, np.array(0, t.np))
    if abs(v) >= Fraction(float(largest)) + (Fraction(float(largest - below_largest)) / 2):
        return math.inf if v > 0 else -math.inf
    with np.errstate(over="ignore"):
        guess = np.array(float(v), t.np)  # within an ulp; the search below fixes the last bit
        up, down = (np.nextafter(guess, np.array(s * np.inf, t.np)) for s in (1, -1))
    candidates = [c for c in (down, guess, up) if np.isfinite(c)]
    bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[t.itemsize]
    best = min(candidates, key=lambda c: (abs(Fraction(float(c)) - v), int(c.view(bits)) & 1))
    return float(best)


def as_float(v: float, t: DType) -> float:
    """Round a Python float (exact) to type t; inf, NaN and signed zeros pass through."""
    return round_exact(Fraction(v), t) if math.isfinite(v) and v != 0 else v


def values(x: np.ndarray) -> list[Any]:
    """The elements of x as exact Python numbers (float, int or bool)."""
    kind = float if DType.from_numpy(x.dtype).is_float else int
    if x.dtype == np.bool_:
        kind = bool
    return [kind(v) for v in x.reshape(-1)]


def f64_op(fn: Callable[..., Any], *args: float) -> float:
    """An IEEE f64 result (inf, NaN, signed zero) where exact rationals cannot go."""
    with np.errstate(all="ignore"):
        return float(fn(*(np.float64(a) for a in args)))


def check(got: np.ndarray, want: Sequence[Any], t: DType, shape: tuple[int, ...]) -> None:
    """Exact comparison (NaN matches NaN); want is a flat list of Python values."""
    assert got.dtype == t.np
    assert got.shape == shape
    if t.is_float:
        np.testing.assert_array_equal(got.astype(np.float64).reshape(-1), np.array(want, float))
    else:
        assert values(got) == list(want)


def check_close(got: np.ndarray, want: Sequence[float], t: DType) -> None:
    assert got.dtype == t.np
    np.testing.assert_allclose(
        got.astype(np.float64).reshape(-1),
        np.array(want, float),
        rtol=RTOL[t],
        atol=float(finfo(t).tiny),
        equal_nan=True,
    )


# --- operands -----------------------------------------------------------------------------


def float_specials(t: DType) -> np.ndarray:
    fi = finfo(t)
    raw = [0.0, -0.0, 1.0, -1.0, 0.1, -3.75, 1 / 3, 2.5, -2.5, 1000.5, 7e-3, -2.5e4]
    raw += [float(fi.max), -float(fi.max), float(fi.smallest_subnormal), float(fi.tiny)]
    raw += [math.inf, -math.inf, math.nan]
    return np.array(raw, np.float64).astype(t.np)


def int_specials(t: DType) -> np.ndarray:
    info = np.iinfo(t.np.name)
    raw = [info.min, info.min + 1, -128, -7, -2, -1, 0, 1, 2, 3, 7, 62, 63, 64, 127, 255]
    raw += [info.max - 1, info.max]
    return np.array(sorted({v for v in raw if info.min <= v <= info.max}), t.np)


def random_array(t: DType, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if t.is_float:
        return (rng.standard_normal(shape) * 3).astype(t.np)
    if t is DType.BOOL:
        return rng.integers(0, 2, shape).astype(bool)
    info = np.iinfo(t.np.name)
    return rng.integers(info.min, info.max, shape, endpoint=True, dtype=t.np)


def pairs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair of x's elements, as two flat operands."""
    a, b = zip(*itertools.product(x, repeat=2), strict=True)
    return np.array(a, x.dtype), np.array(b, x.dtype)


# --- unary float math ---------------------------------------------------------------------


def _sigmoid(v: float) -> float:
    return f64_op(lambda y: 1 / (1 + np.exp(-y)), v)


def c99(fn: Callable[..., float], *args: float) -> float:
    """Python's math function, with C99's result where Python raises instead: an infinity for
    a result too large (of the function's sign at ±1) and at a pole (atanh(±1) = ±inf,
    log1p(-1) = -inf), NaN outside the domain."""
    try:
        return fn(*args)
    except OverflowError:
        return math.copysign(math.inf, fn(*(math.copysign(1.0, a) for a in args)))
    except ValueError:
        x = args[0]
        if (fn is math.atanh and abs(x) == 1) or (fn is math.log1p and x == -1):
            return math.copysign(math.inf, x)
        return math.nan


# the C math library's functions, op by op, in Python's math module
LIBM_UNARY: dict[Op, Callable[[float], float]] = {
    Op.SIN: math.sin,
    Op.COS: math.cos,
    Op.TAN: math.tan,
    Op.ASIN: math.asin,
    Op.ACOS: math.acos,
    Op.ATAN: math.atan,
    Op.SINH: math.sinh,
    Op.COSH: math.cosh,
    Op.ASINH: math.asinh,
    Op.ACOSH: math.acosh,
    Op.ATANH: math.atanh,
    Op.LOG1P: math.log1p,
    Op.EXPM1: math.expm1,
}
LIBM_BINARY: dict[Op, Callable[[float, float], float]] = {
    Op.ATAN2: math.atan2,
    Op.HYPOT: math.hypot,
}


FLOAT_MATH: dict[Op, Callable[[float], float]] = {
    Op.EXP: lambda v: f64_op(np.exp, v),
    Op.LOG: lambda v: f64_op(np.log, v),
    Op.SQRT: lambda v: f64_op(np.sqrt, v),
    Op.RSQRT: lambda v: f64_op(lambda y: 1 / np.sqrt(y), v),
    Op.TANH: lambda v: f64_op(np.tanh, v),
    Op.SIGMOID: _sigmoid,
    Op.ERF: math.erf,
    Op.FLOOR: lambda v: f64_op(np.floor, v),
    Op.CEIL: lambda v: f64_op(np.ceil, v),
    **{op: functools.partial(c99, fn) for op, fn in LIBM_UNARY.items()},
}


@pytest.mark.parametrize("t", FLOATS)
@pytest.mark.parametrize("op", list(FLOAT_MATH))
def test_float_math_matches_f64_within_ulps(op: Op, t: DType) -> None:
    x = float_specials(t)
    got = run_op(op, x)
    check_close(got, [as_float(FLOAT_MATH[op](v), t) for v in values(x)], t)


def domain_edges(t: DType) -> np.ndarray:
    """±1 and the floats next to them on both sides: where asin, acos, acosh, atanh and log1p
    (at -1) start or stop being defined."""
    one = np.array([1.0, -1.0], t.np)
    return np.concatenate([one, *(np.nextafter(one, np.array(s, t.np)) for s in (0, 2, -2))])


def check_zero_signs(got: np.ndarray, want: Sequence[float]) -> None:
    zeros = [i for i, w in enumerate(want) if w == 0]
    signs = [math.copysign(1, v) for v in values(got)]
    assert [signs[i] for i in zeros] == [math.copysign(1, want[i]) for i in zeros]


@pytest.mark.parametrize("t", FLOATS)
@pytest.mark.parametrize("op", list(LIBM_UNARY))
def test_libm_unary_special_values_and_domain_edges(op: Op, t: DType) -> None:
    """0, -0, ±inf, NaN, ±1 and their neighbours: the value, NaN outside the domain, the
    infinities at poles and the sign of every zero (odd functions keep -0.0), as in C."""
    x = np.concatenate([float_specials(t), domain_edges(t)])
    want = [as_float(c99(LIBM_UNARY[op], v), t) for v in values(x)]
    got = run_op(op, x)
    check_close(got, want, t)
    check_zero_signs(got, want)


@pytest.mark.parametrize("t", FLOATS)
@pytest.mark.parametrize("op", list(LIBM_BINARY))
def test_atan2_and_hypot_special_values(op: Op, t: DType) -> None:
    """Every pair of specials: atan2's quadrants and signed zeros (atan2(±0, -0) = ±pi),
    hypot(±inf, NaN) = inf."""
    y, x = pairs(float_specials(t))
    want = [
        as_float(c99(LIBM_BINARY[op], p, q), t) for p, q in zip(values(y), values(x), strict=True)
    ]
    got = run_op(op, y, x)
    check_close(got, want, t)
    check_zero_signs(got, want)


def test_atan2_takes_y_first() -> None:
    y, x = np.array([1.0, 1.0, -1.0, -0.0], np.float64), np.array([0.0, -1.0, -1.0, -1.0])
    want = [math.pi / 2, 3 * math.pi / 4, -3 * math.pi / 4, -math.pi]
    assert values(run_op(Op.ATAN2, y, x)) == want


# The decided rule for f16/bf16: compute in f32, round once (the reference's own f32 results,
# rounded here by ml_dtypes/numpy).
ROUNDED_ONCE = [
    Op.EXP, Op.LOG, Op.SQRT, Op.TANH, Op.FLOOR, Op.CEIL, Op.SIN, Op.COS, Op.TAN, Op.ASIN,
    Op.ACOS, Op.ATAN, Op.SINH, Op.COSH, Op.ASINH, Op.ACOSH, Op.ATANH, Op.LOG1P, Op.EXPM1,
]  # fmt: skip
ROUNDED_ONCE_BINARY = [Op.ATAN2, Op.HYPOT, Op.FMOD]


@pytest.mark.parametrize("t", [DType.F16, DType.BF16])
@pytest.mark.parametrize("op", ROUNDED_ONCE)
def test_narrow_float_math_is_f32_math_rounded_once(op: Op, t: DType) -> None:
    x = np.concatenate([float_specials(t), domain_edges(t), random_array(t, (50,))])
    with np.errstate(all="ignore"):
        want = run_op(op, x.astype(np.float32)).astype(t.np)
    got = run_op(op, x)
    assert got.dtype == t.np
    np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64))


@pytest.mark.parametrize("t", [DType.F16, DType.BF16])
@pytest.mark.parametrize("op", ROUNDED_ONCE_BINARY)
def test_narrow_float_binary_math_is_f32_math_rounded_once(op: Op, t: DType) -> None:
    a, b = pairs(float_specials(t))
    a = np.concatenate([a, random_array(t, (50,), seed=1)])
    b = np.concatenate([b, random_array(t, (50,), seed=2)])
    with np.errstate(all="ignore"):
        want = run_op(op, a.astype(np.float32), b.astype(np.float32)).astype(t.np)
    got = run_op(op, a, b)
    assert got.dtype == t.np
    np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op", list(FLOAT_MATH))
def test_float_math_keeps_awkward_shapes(op: Op, shape: tuple[int, ...]) -> None:
    x = random_array(DType.F32, shape, seed=3)
    got = run_op(op, x)
    assert got.shape == shape
    check_close(got, [FLOAT_MATH[op](v) for v in values(x)], DType.F32)


def test_erf_is_exact_f64_rounded_once() -> None:
    x = np.array([0.5, -1.25, 3.0, 1e-8], np.float64)
    assert values(run_op(Op.ERF, x)) == [math.erf(v) for v in values(x)]


def test_sigmoid_is_stable_at_extremes() -> None:
    x = np.array([-1e4, -100.0, 0.0, 100.0, 1e4, -np.inf, np.inf], np.float32)
    got = run_op(Op.SIGMOID, x)
    want = [0.0, 3.7200760e-44, 0.5, 1.0, 1.0, 0.0, 1.0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-44)  # e**-100 is subnormal in f32


def test_rsqrt_and_sqrt_of_signed_zero() -> None:
    x = np.array([0.0, -0.0], np.float32)
    assert values(run_op(Op.RSQRT, x)) == [math.inf, -math.inf]
    assert list(np.signbit(run_op(Op.SQRT, x))) == [False, True]


# --- unary numeric ops: neg, abs, sign, relu ----------------------------------------------


def _py_sign(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or v == 0):
        return v  # NaN stays NaN, and a zero keeps its sign
    return type(v)((v > 0) - (v < 0))


NUMERIC_UNARY: dict[Op, Callable[[Any], Any]] = {
    Op.NEG: operator.neg,
    Op.ABS: abs,
    Op.SIGN: _py_sign,
    Op.RELU: lambda v: v if (isinstance(v, float) and math.isnan(v)) else max(v, type(v)(0)),
}


@pytest.mark.parametrize("t", NUMERIC)
@pytest.mark.parametrize("op", list(NUMERIC_UNARY))
def test_numeric_unary(op: Op, t: DType) -> None:
    x = float_specials(t) if t.is_float else int_specials(t)
    want = [NUMERIC_UNARY[op](v) for v in values(x)]
    want = [wrap(v, t) for v in want] if t.is_int else want  # neg and abs of INT_MIN wrap
    check(run_op(op, x), want, t, x.shape)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("t", [DType.F16, DType.I8, DType.U8])
@pytest.mark.parametrize("op", list(NUMERIC_UNARY))
def test_numeric_unary_keeps_awkward_shapes(op: Op, t: DType, shape: tuple[int, ...]) -> None:
    x = random_array(t, shape, seed=1)
    want = [NUMERIC_UNARY[op](v) for v in values(x)]
    check(run_op(op, x), [wrap(v, t) for v in want] if t.is_int else want, t, shape)


def test_int_min_edge_cases() -> None:
    x = np.array([-128, 127], np.int8)
    assert values(run_op(Op.NEG, x)) == [-128, -127]
    assert values(run_op(Op.ABS, x)) == [-128, 127]


def test_sign_and_relu_of_signed_zero() -> None:
    x = np.array([-0.0, 0.0], np.float32)
    assert list(np.signbit(run_op(Op.SIGN, x))) == [True, False]  # sign keeps the zero
    assert list(np.signbit(run_op(Op.RELU, x))) == [False, False]  # relu(-0.0) is +0.0


# --- binary arithmetic --------------------------------------------------------------------

EXACT: dict[Op, Callable[[Any, Any], Any]] = {
    Op.ADD: operator.add,
    Op.SUB: operator.sub,
    Op.MUL: operator.mul,
    Op.DIV: operator.truediv,
}
IEEE = {Op.ADD: np.add, Op.SUB: np.subtract, Op.MUL: np.multiply, Op.DIV: np.divide}


def _float_arith(op: Op, a: float, b: float, t: DType) -> float:
    if not (math.isfinite(a) and math.isfinite(b)) or (op is Op.DIV and b == 0):
        return as_float(f64_op(IEEE[op], a, b), t)
    exact = EXACT[op](Fraction(a), Fraction(b))
    if exact == 0:
        return f64_op(IEEE[op], a, b)  # exact zero: only its sign is left to decide
    return round_exact(exact, t)


@pytest.mark.parametrize("t", FLOATS)
@pytest.mark.parametrize("op", list(EXACT))
def test_float_arithmetic_is_correctly_rounded(op: Op, t: DType) -> None:
    a, b = pairs(float_specials(t))
    want = [_float_arith(op, p, q, t) for p, q in zip(values(a), values(b), strict=True)]
    got = run_op(op, a, b)
    check(got, want, t, a.shape)
    zeros = [math.copysign(1, w) for w in want if w == 0]
    assert [math.copysign(1, g) for g in values(got) if g == 0] == zeros


INT_ARITH: dict[Op, Callable[[int, int], int]] = {
    Op.ADD: operator.add,
    Op.SUB: operator.sub,
    Op.MUL: operator.mul,
    Op.MAX: max,
    Op.MIN: min,
}


@pytest.mark.parametrize("t", INTS)
@pytest.mark.parametrize("op", list(INT_ARITH))
def test_int_arithmetic_wraps(op: Op, t: DType) -> None:
    a, b = pairs(int_specials(t))
    a = np.concatenate([a, random_array(t, (200,), seed=1)])
    b = np.concatenate([b, random_array(t, (200,), seed=2)])
    want = [wrap(INT_ARITH[op](p, q), t) for p, q in zip(values(a), values(b), strict=True)]
    check(run_op(op, a, b), want, t, a.shape)


def _nan_max(pick: Callable[[float, float], float]) -> Callable[[float, float], float]:
    return lambda a, b: math.nan if math.isnan(a) or math.isnan(b) else pick(a, b)


@pytest.mark.parametrize("t", FLOATS)
@pytest.mark.parametrize(("op", "pick"), [(Op.MAX, max), (Op.MIN, min)])
def test_float_max_min_propagate_nan(
    op: Op, pick: Callable[[float, float], float], t: DType
) -> None:
    a, b = pairs(float_specials(t))
    want = [_nan_max(pick)(p, q) for p, q in zip(values(a), values(b), strict=True)]
    check(run_op(op, a, b), want, t, a.shape)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("t", NUMERIC)
def test_binary_ops_keep_awkward_shapes(t: DType, shape: tuple[int, ...]) -> None:
    a, b = random_array(t, shape, seed=4), random_array(t, shape, seed=5)
    if t.is_float:
        want = [_float_arith(Op.MUL, p, q, t) for p, q in zip(values(a), values(b), strict=True)]
    else:
        want = [wrap(p * q, t) for p, q in zip(values(a), values(b), strict=True)]
    check(run_op(Op.MUL, a, b), want, t, shape)


# --- integer division and power -----------------------------------------------------------


def c_div(a: int, b: int, t: DType) -> int:
    if b == 0:
        return wrap(-1, t)  # all ones: -1 signed, the maximum unsigned
    q = abs(a) // abs(b)
    return wrap(q if (a < 0) == (b < 0) else -q, t)  # INT_MIN / -1 wraps to INT_MIN


def c_pow(a: int, e: int, t: DType) -> int:
    if e < 0:
        if a == -1:
            return 1 if e % 2 == 0 else -1
        return 1 if a == 1 else 0
    return wrap(pow(a, e, 1 << (8 * t.itemsize)), t)


def c_fmod(a: int, b: int, t: DType) -> int:
    if b == 0:
        return 0  # NumPy's too (it warns)
    r = abs(a) % abs(b)  # truncated: the remainder has the dividend's sign
    return r if a >= 0 else -r  # INT_MIN fmod -1 is 0, no overflow


def every_pair(t: DType) -> tuple[np.ndarray, np.ndarray]:
    every = np.arange(np.iinfo(t.np.name).min, np.iinfo(t.np.name).max + 1).astype(t.np)
    return np.repeat(every, every.size), np.tile(every, every.size)


INT_ORACLES = [(Op.DIV, c_div), (Op.POW, c_pow), (Op.FMOD, c_fmod)]


@pytest.mark.parametrize("t", [DType.I8, DType.U8])
@pytest.mark.parametrize(("op", "oracle"), INT_ORACLES)
def test_8_bit_div_pow_fmod_exhaustively(
    op: Op, oracle: Callable[[int, int, DType], int], t: DType
) -> None:
    a, b = every_pair(t)
    want = [oracle(p, q, t) for p, q in zip(values(a), values(b), strict=True)]
    check(run_op(op, a, b), want, t, a.shape)


@pytest.mark.parametrize("t", INTS)
@pytest.mark.parametrize(("op", "oracle"), INT_ORACLES)
def test_div_pow_fmod_edge_table(
    op: Op, oracle: Callable[[int, int, DType], int], t: DType
) -> None:
    a, b = pairs(int_specials(t))
    want = [oracle(p, q, t) for p, q in zip(values(a), values(b), strict=True)]
    check(run_op(op, a, b), want, t, a.shape)


@pytest.mark.parametrize(
    ("a", "b", "q"),
    [
        *[(7, 2, 3), (-7, 2, -3), (7, -2, -3), (-7, -2, 3), (5, 0, -1), (-5, 0, -1), (0, 0, -1)],
        *[(-(2**31), -1, -(2**31)), (-(2**31), 1, -(2**31)), (2**31 - 1, -1, -(2**31) + 1)],
    ],
)
def test_int_div_by_hand(a: int, b: int, q: int) -> None:
    got = run_op(Op.DIV, np.array(a, np.int32), np.array(b, np.int32))
    assert got.shape == ()
    assert int(got) == q


@pytest.mark.parametrize(
    ("a", "e", "p"),
    [
        *[(0, 0, 1), (2, -1, 0), (1, -5, 1), (-1, -5, -1), (-1, -4, 1), (0, -1, 0), (3, 4, 81)],
        *[(2, 31, -(2**31)), (2, 32, 0), (-2, 31, -(2**31)), (3, 21, wrap(3**21, DType.I32))],
    ],
)
def test_int_pow_by_hand(a: int, e: int, p: int) -> None:
    assert int(run_op(Op.POW, np.array(a, np.int32), np.array(e, np.int32))) == p


@pytest.mark.parametrize(
    ("a", "b", "r"),
    [
        *[(7, 3, 1), (-7, 3, -1), (7, -3, 1), (-7, -3, -1), (6, -3, 0), (5, 0, 0), (0, 0, 0)],
        *[(-(2**31), -1, 0), (-(2**31), 3, -2), (-(2**31), 0, 0), (2**31 - 1, -(2**31), 2**31 - 1)],
    ],
)
def test_int_fmod_by_hand(a: int, b: int, r: int) -> None:
    got = run_op(Op.FMOD, np.array(a, np.int32), np.array(b, np.int32))
    assert got.shape == ()
    assert int(got) == r


@pytest.mark.parametrize("t", FLOATS)
def test_float_fmod_is_exact_with_the_dividends_sign(t: DType) -> None:
    """fmod is exact in every float type; fmod(x, ±0) and fmod(±inf, y) are NaN, fmod(x, ±inf)
    is x, and a zero result keeps the dividend's sign."""
    a, b = pairs(float_specials(t))
    want = [c99(math.fmod, p, q) for p, q in zip(values(a), values(b), strict=True)]
    got = run_op(Op.FMOD, a, b)
    check(got, want, t, a.shape)
    check_zero_signs(got, want)
    x, y = np.array([-4.0, 4.0, 7.5, -7.5], t.np), np.array([2.0, -2.0, -2.0, 2.0], t.np)
    got = run_op(Op.FMOD, x, y)
    check(got, [-0.0, 0.0, 1.5, -1.5], t, (4,))
    check_zero_signs(got, [-0.0, 0.0, 1.5, -1.5])


def test_u8_div_by_zero_is_all_ones() -> None:
    got = run_op(Op.DIV, np.array([0, 1, 255], np.uint8), np.zeros(3, np.uint8))
    assert values(got) == [255, 255, 255]


@pytest.mark.parametrize("t", FLOATS)
def test_float_pow_is_numpy_pow(t: DType) -> None:
    a, b = pairs(float_specials(t)[[0, 2, 3, 4, 6, 7, 8, 16, 17, 18]])
    want = [f64_op(np.power, p, q) for p, q in zip(values(a), values(b), strict=True)]
    check_close(run_op(Op.POW, a, b), want, t)


def test_float_pow_special_cases() -> None:
    a = np.array([0.0, -8.0, np.nan, 1.0, -1.0, 2.0], np.float32)
    b = np.array([-1.0, 1 / 3, 0.0, np.nan, np.inf, -np.inf], np.float32)
    check(run_op(Op.POW, a, b), [math.inf, math.nan, 1.0, 1.0, 1.0, 0.0], DType.F32, (6,))


# --- logic, comparisons, select -----------------------------------------------------------

LOGIC: dict[Op, Callable[..., Any]] = {
    Op.AND: operator.and_,
    Op.OR: operator.or_,
    Op.XOR: operator.xor,
}


@pytest.mark.parametrize("t", [*INTS, DType.BOOL])
@pytest.mark.parametrize("op", list(LOGIC))
def test_and_or_xor_are_bitwise_or_logical(op: Op, t: DType) -> None:
    x = np.array([False, True]) if t is DType.BOOL else int_specials(t)
    a, b = pairs(x)
    want = [LOGIC[op](p, q) for p, q in zip(values(a), values(b), strict=True)]
    check(run_op(op, a, b), want, t, a.shape)


@pytest.mark.parametrize("t", [*INTS, DType.BOOL])
def test_not(t: DType) -> None:
    x = np.array([False, True]) if t is DType.BOOL else int_specials(t)
    want = [not v for v in values(x)] if t is DType.BOOL else [wrap(~v, t) for v in values(x)]
    check(run_op(Op.NOT, x), want, t, x.shape)


def _shifted(op: Op, v: int, count: int, t: DType) -> int:
    """Python's shift of `v` by `count` (read as unsigned, as NumPy does) with every bit
    shifted out past the type's width."""
    bits = t.itemsize * 8
    count %= 1 << bits
    if op is Op.SHIFT_LEFT:
        return wrap(v << count, t) if count < bits else 0
    return v >> min(count, bits - 1) if t.is_signed else (v >> count if count < bits else 0)


@pytest.mark.parametrize("t", INTS)
@pytest.mark.parametrize("op", [Op.SHIFT_LEFT, Op.SHIFT_RIGHT])
def test_shifts_follow_numpy_past_the_width(op: Op, t: DType) -> None:
    bits = t.itemsize * 8
    x = int_specials(t)
    counts = [0, 1, 3, bits - 1, bits, bits + 1] + ([-1, -bits] if t.is_signed else [])
    a = np.repeat(x, len(counts))
    c = np.tile(np.array(counts).astype(t.np), len(x))
    want = [_shifted(op, p, q, t) for p, q in zip(values(a), values(c), strict=True)]
    check(run_op(op, a, c), want, t, a.shape)


COMPARE: dict[Op, Callable[[Any, Any], bool]] = {
    Op.EQ: operator.eq,
    Op.NE: operator.ne,
    Op.LT: operator.lt,
    Op.LE: operator.le,
    Op.GT: operator.gt,
    Op.GE: operator.ge,
}


def specials(t: DType) -> np.ndarray:
    if t is DType.BOOL:
        return np.array([False, True])
    return float_specials(t) if t.is_float else int_specials(t)


@pytest.mark.parametrize("t", ALL)
@pytest.mark.parametrize("op", list(COMPARE))
def test_comparisons_follow_ieee(op: Op, t: DType) -> None:
    a, b = pairs(specials(t))  # Python compares NaN the IEEE way: only != holds
    want = [COMPARE[op](p, q) for p, q in zip(values(a), values(b), strict=True)]
    check(run_op(op, a, b), want, DType.BOOL, a.shape)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("t", ALL)
def test_select(t: DType, shape: tuple[int, ...]) -> None:
    pred = random_array(DType.BOOL, shape, seed=7)
    a, b = random_array(t, shape, seed=8), random_array(t, shape, seed=9)
    triples = zip(values(pred), values(a), values(b), strict=True)
    check(run_op(Op.SELECT, pred, a, b), [p if c else q for c, p, q in triples], t, shape)


# --- convert ------------------------------------------------------------------------------


def convert_sources(t: DType) -> np.ndarray:
    if t is DType.BOOL:
        return np.array([False, True])
    if t.is_int:
        info = np.iinfo(t.np.name)
        raw = [-(2**24) - 2**16 - 1, -129, -1, 0, 1, 127, 128, 255, 256, 300, 2**24 + 1]
        raw += [65519, 65520, 2**24 + 2**16 + 1, 2**31 - 1, 2**53 + 1, 2**53 + 2**29 + 1]
        raw += [2**62 + 2**54 + 1, 2**63 - 1]
        raw += [info.min, info.max]
        return np.array(sorted({v for v in raw if info.min <= v <= info.max}), t.np)
    floats = [0.0, -0.0, 0.5, -0.5, 2.5, -2.7, 127.9, 128.0, -129.0, 255.9, 256.0, 300.0]
    floats += [65519.9, 65520.0, 2.0**31, -(2.0**31), 2.0**63 - 1024, 2.0**63, -(2.0**63)]
    floats += [1 + 2**-8 + 2**-30, 1e10, -1e10, 1e30, -1e30, 1e300, 1e-40, 1e-320]
    floats += [math.inf, -math.inf, math.nan]
    with np.errstate(over="ignore"):  # values past the type's range become inf
        return np.array(floats, np.float64).astype(t.np)


def py_convert(v: Any, t: DType) -> Any:
    if t is DType.BOOL:
        return v != 0
    if t.is_float:
        return as_float(float(v), t) if not isinstance(v, int) else round_exact(Fraction(v), t)
    if isinstance(v, float):
        info = np.iinfo(t.np.name)
        if math.isnan(v):
            return 0
        if math.isinf(v):
            return info.max if v > 0 else info.min
        return min(max(math.trunc(v), info.min), info.max)
    return wrap(int(v), t)


@pytest.mark.parametrize("to", ALL)
@pytest.mark.parametrize("src", ALL)
def test_convert(src: DType, to: DType) -> None:
    x = convert_sources(src)
    check(run_op(Op.CONVERT, x, dtype=to), [py_convert(v, to) for v in values(x)], to, x.shape)


@pytest.mark.parametrize(
    ("value", "src", "want"),
    [
        (1 + 2**-8 + 2**-30, np.float64, 1 + 2**-7),  # ml_dtypes alone gives 1.0 here
        (2**24 + 2**16 + 1, np.int32, 2**24 + 2**17),
        (2**62 + 2**54 + 1, np.int64, 2**62 + 2**55),
        (-(2**24) - 2**16 - 1, np.int64, -(2**24) - 2**17),
    ],
)
def test_convert_to_bf16_rounds_once(value: float, src: type[np.generic], want: float) -> None:
    assert float(run_op(Op.CONVERT, np.array(value, src), dtype="bf16")) == want


@pytest.mark.parametrize("t", INTS)
def test_float_to_int_saturates(t: DType) -> None:
    info = np.iinfo(t.np.name)
    x = np.array([np.nan, np.inf, -np.inf, 1e300, -1e300, -0.9, 0.9, -2.5], np.float64)
    got = run_op(Op.CONVERT, x, dtype=t)
    assert values(got) == [0, info.max, info.min, info.max, info.min, 0, 0, max(-2, info.min)]


@pytest.mark.parametrize("shape", SHAPES)
def test_convert_keeps_awkward_shapes(shape: tuple[int, ...]) -> None:
    x = random_array(DType.F32, shape, seed=11) * 100
    want = [py_convert(v, DType.I8) for v in values(x)]
    check(run_op(Op.CONVERT, x, dtype="i8"), want, DType.I8, shape)
