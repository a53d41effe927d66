"""`pow` with a constant exponent that is a multiple of 1/2 (codegen/scalar.py `_float_pow`):
multiplications and a square root instead of a C library call, against NumPy's `np.power`.

Special values (zeros of both signs, infinities, NaN, negative bases) must give exactly NumPy's
result; finite results must be within 2 ulp (f64) or 1 ulp (f32, computed in f64 and rounded
once) of it, over magnitudes from subnormal to huge, where the intermediate powers could
overflow or underflow.
"""

from __future__ import annotations

import numpy as np
import pytest

from codegen.executable import CpuExecutable
from codegen.scalar import HALF_STEPS_F64, HALF_STEPS_WIDENED
from ir.dtypes import DType
from ir.parser import parse_module
from tests.backends.test_loops import optimized

# 1 and 2 are canonicalized; f64 takes the fast form from -1.5 on (HALF_STEPS_F64)
CASES = [(k / 2, np.float32) for k in HALF_STEPS_WIDENED if k not in (0, 2, 4)] + [
    (k / 2, np.float64) for k in HALF_STEPS_F64 if k not in (0, 2, 4)
]
ULPS = {np.float64: 2, np.float32: 1}


def inputs(dtype: type) -> np.ndarray:
    info = np.finfo(dtype)
    rng = np.random.default_rng(0)
    magnitudes = np.exp(rng.uniform(np.log(info.smallest_subnormal), np.log(info.max), 4000))
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 2.0, -2.5, info.max, info.tiny]
    values = np.concatenate([magnitudes, -magnitudes[:200], rng.uniform(0, 3, 500), specials])
    return values.astype(dtype)


def ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """How many representable numbers apart two finite arrays of one float type are."""
    bits = {np.dtype(np.float64): np.int64, np.dtype(np.float32): np.int32}[got.dtype]

    def ordered(a: np.ndarray) -> np.ndarray:
        i = a.view(bits).astype(np.int64)
        return np.where(i < 0, np.iinfo(bits).min - i, i)

    return np.abs(ordered(got) - ordered(want))


@pytest.mark.parametrize(("c", "dtype"), CASES)
def test_a_half_integer_power_matches_numpy(c: float, dtype: type) -> None:
    x = inputs(dtype)
    t = f"{DType.from_numpy(x.dtype).value}[{x.size}]"
    text = f"func @main(%x: {t}) -> {t} {{\n  %r = pow(%x, {c})\n  return %r\n}}\n"
    ex = CpuExecutable(optimized(parse_module(text)), threads=1)
    assert "llvm.pow" not in ex.llvm_ir  # the fast form, not the C library's pow
    (got,) = ex(x)
    with np.errstate(all="ignore"):  # an array exponent: C's pow (0.5 is not NumPy's sqrt)
        want = np.power(x, np.full_like(x, c))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~finite], want[~finite])  # infinities, with their signs
    zero = want == 0
    np.testing.assert_array_equal(np.signbit(got[zero]), np.signbit(want[zero]))
    worst = ulps(got[finite], want[finite]).max()
    assert worst <= ULPS[dtype], f"x ** {c}: {worst} ulp"


def test_other_exponents_still_call_pow() -> None:
    text = "func @main(%x: f64[7], %y: f64[7]) -> (f64[7], f64[7]) {\n"
    text += "  %a = pow(%x, -2.5)\n  %b = pow(%x, %y)\n  return %a, %b\n}\n"
    module = optimized(parse_module(text))
    ex = CpuExecutable(module, threads=1)
    x = np.linspace(0.1, 5, 7)
    y = np.linspace(-3, 3, 7)
    got = ex(x, y)
    assert "llvm.pow" in ex.llvm_ir
    np.testing.assert_allclose(got[0], x**-2.5, rtol=1e-15)
    np.testing.assert_allclose(got[1], x**y, rtol=1e-15)
