"""Accuracy and vectorization of the polynomial transcendentals (codegen/mathlib.py).

Each function runs as a one-op graph through the real CPU backend (CpuExecutable) and is
compared, in units in the last place of the result type, with a more precise numpy result:
long double numpy for exp/log/tanh/sigmoid, `math.erf` in f64 for erf. Inputs cover dense sweeps
of each function's useful range, every float32 (or float64) binade with random mantissas, and
the extremes (±max, ±smallest subnormal, thresholds of overflow and underflow, ±inf, nan, ±0).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal

import numpy as np
import pytest

from codegen.executable import CpuExecutable
from ir.dtypes import DType
from ir.parser import parse_module
from runtime.interp import run_function

FUNCTIONS = ["exp", "log", "tanh", "sigmoid", "erf"]
# Max error in ulp asserted per (function, dtype): the measured maxima of the table in
# codegen/mathlib.py's docstring, plus a little headroom for inputs the sweeps did not hit.
MAX_ULP = {
    ("exp", "f32"): 1.5,
    ("log", "f32"): 1.5,
    ("tanh", "f32"): 2.0,
    ("sigmoid", "f32"): 2.5,
    ("erf", "f32"): 1.5,
    ("exp", "f64"): 1.5,
    ("log", "f64"): 1.5,
    ("tanh", "f64"): 2.0,
    ("sigmoid", "f64"): 2.5,
    ("erf", "f64"): 1.5,
}
# the range where each function is not trivially 0, ±1 or overflowing, per dtype
RANGE = {
    ("exp", "f32"): (-104.0, 89.0),
    ("exp", "f64"): (-746.0, 710.0),
    ("log", "f32"): (0.0, 4.0),
    ("log", "f64"): (0.0, 4.0),
    ("tanh", "f32"): (-10.0, 10.0),
    ("tanh", "f64"): (-20.0, 20.0),
    ("sigmoid", "f32"): (-110.0, 20.0),
    ("sigmoid", "f64"): (-750.0, 40.0),
    ("erf", "f32"): (-4.5, 4.5),
    ("erf", "f64"): (-6.5, 6.5),
}
NP = {"f32": np.float32, "f64": np.float64}

_math_erf = np.frompyfunc(math.erf, 1, 1)


def exact(fn: str, x: np.ndarray) -> np.ndarray:
    """The function in long double (erf: f64 libm), as precise as numpy offers."""
    with np.errstate(all="ignore"):
        if fn == "erf":
            return np.asarray(_math_erf(x.astype(np.float64)), np.float64).astype(np.longdouble)
        w = x.astype(np.longdouble)
        if fn == "sigmoid":
            e = np.exp(-np.abs(w))
            return np.where(w >= 0, 1 / (1 + e), e / (1 + e))
        return {"exp": np.exp, "log": np.log, "tanh": np.tanh}[fn](w)


def compile_op(fn: str, dtype: str, n: int) -> CpuExecutable:
    text = f"func @main(%x: {dtype}[{n}]) -> {dtype}[{n}] {{\n %y = {fn}(%x)\n return %y\n}}"
    return CpuExecutable(parse_module(text), threads=1)


def run_op(fn: str, dtype: str, x: np.ndarray) -> np.ndarray:
    return compile_op(fn, dtype, x.size)(x)[0]


def ulp_error(got: np.ndarray, want: np.ndarray, dtype: type[np.floating]) -> np.ndarray:
    """|got - want| in ulps of `want` in `dtype`; inf where a special value is wrong."""
    info = np.finfo(dtype)
    with np.errstate(over="ignore"):
        rounded = want.astype(dtype)
    special = ~np.isfinite(rounded) | ~np.isfinite(got)
    same_special = (got == rounded) | (np.isnan(got) & np.isnan(rounded))
    with np.errstate(all="ignore"):
        _, e = np.frexp(np.abs(want.astype(np.float64)))
        e = np.maximum(e, int(info.minexp) + 1)  # subnormals share the smallest binade's ulp
        ulp = np.ldexp(np.longdouble(1.0), e - 1 - int(info.nmant))
        err = np.abs(got.astype(np.longdouble) - want) / ulp
    return np.where(special, np.where(same_special, 0.0, np.inf), err.astype(np.float64))


def inputs(fn: str, dtype: str, seed: int = 0, dense: int = 1 << 20) -> np.ndarray:
    ty = NP[dtype]
    info = np.finfo(ty)
    rng = np.random.default_rng(seed)
    lo, hi = RANGE[(fn, dtype)]
    sweep = np.linspace(lo, hi, dense)
    # every binade, 64 random mantissas each, both signs
    exps = np.arange(int(info.minexp) - int(info.nmant), int(info.maxexp))
    mant = rng.uniform(1.0, 2.0, (exps.size, 64))
    binades = np.ldexp(mant, exps[:, None] - 1).ravel()
    tiny, big = float(info.smallest_subnormal), float(info.max)
    extremes = [0.0, tiny, float(info.smallest_normal), big, math.inf, math.nan, 1.0, 0.5, 2.0]
    extremes += [lo, hi, 88.72283935546875, 88.72284, 709.782712893384, 709.79, -87.33654]
    extremes += [-103.97208, -103.27893, -745.1332191019411, -708.3964185322641, 9.01, 19.06]
    values = np.concatenate([sweep, binades, np.asarray(extremes)])
    with np.errstate(over="ignore"):
        values = values.astype(ty)
        return np.concatenate([values, -values, np.nextafter(values, ty(np.inf))])


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_max_ulp_error(fn: str, dtype: str) -> None:
    x = inputs(fn, dtype)
    got = run_op(fn, dtype, x)
    err = ulp_error(got, exact(fn, x), NP[dtype])
    worst = int(np.argmax(err))
    assert err[worst] <= MAX_ULP[(fn, dtype)], (
        f"{fn}({x[worst]!r}) = {got[worst]!r}, want {exact(fn, x[worst : worst + 1])[0]!r}: "
        f"{err[worst]:.3g} ulp"
    )


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_special_values(fn: str, dtype: str) -> None:
    x = np.array([0.0, -0.0, math.inf, -math.inf, math.nan], NP[dtype])
    got = run_op(fn, dtype, x)
    want = {
        "exp": [1.0, 1.0, math.inf, 0.0, math.nan],
        "log": [-math.inf, -math.inf, math.inf, math.nan, math.nan],
        "tanh": [0.0, -0.0, 1.0, -1.0, math.nan],
        "sigmoid": [0.5, 0.5, 1.0, 0.0, math.nan],
        "erf": [0.0, -0.0, 1.0, -1.0, math.nan],
    }[fn]
    np.testing.assert_array_equal(got, np.array(want, NP[dtype]))
    signed = ~np.isnan(got)  # a NaN's sign bit is not part of the contract
    np.testing.assert_array_equal(np.signbit(got[signed]), np.signbit(np.array(want)[signed]))


@pytest.mark.parametrize("dtype", [DType.F16, DType.BF16])
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_narrow_floats_match_the_interpreter(fn: str, dtype: DType) -> None:
    """f16/bf16 compute in f32 and round once, like the reference: all but near-ties agree."""
    every = np.arange(1 << 16, dtype=np.uint16).view(dtype.np)  # every 16-bit value
    module = parse_module(
        f"func @main(%x: {dtype.value}[{every.size}]) -> {dtype.value}[{every.size}] "
        f"{{\n %y = {fn}(%x)\n return %y\n}}"
    )
    got = CpuExecutable(module, threads=1)(every)[0]
    want = run_function(module.entry_function, [every])[0]
    g, w = got.astype(np.float32), want.astype(np.float32)
    agree = (g == w) | (np.isnan(g) & np.isnan(w))
    assert agree.mean() >= 0.999
    # within one ulp of the narrow type: adjacent 16-bit patterns (same sign)
    gi, wi = got.view(np.int16).astype(np.int32), want.view(np.int16).astype(np.int32)
    close = np.abs(gi - wi) <= 1
    assert (agree | close).all(), every[~(agree | close)][:8]


def test_exp_kernel_is_vectorized_without_libm_calls() -> None:
    exe = compile_op("exp", "f32", 4096)
    text = exe.llvm_ir_optimized
    width = exe.compiled.target.caps.vector_bits // 32
    assert f"<{width} x float>" in text
    for symbol in ("@expf", "@exp(", "@llvm.exp"):
        assert symbol not in text


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("fn", FUNCTIONS)
def test_every_function_is_inlined_and_vectorized(fn: str, dtype: str) -> None:
    text = compile_op(fn, dtype, 4096).llvm_ir_optimized
    scalar = "float" if dtype == "f32" else "double"
    assert f"x {scalar}>" in text
    # intrinsics (llvm.fmuladd in the scalar remainder loop) are fine; a function call is not
    assert not re.search(rf"call {scalar} @(?!llvm\.)", text)
    assert f"tessel.{fn}." not in text  # the alwaysinline helper is gone after inlining


def test_helpers_are_defined_once_per_type() -> None:
    text = """func @main(%x: f32[64], %z: f64[64]) -> (f32[64], f64[64]) {
 %a = exp(%x)
 %b = tanh(%a)
 %c = exp(%z)
 return %b, %c
}"""
    exe = CpuExecutable(parse_module(text), threads=1)
    assert exe.llvm_ir.count('define internal float @"tessel.exp.f32"') == 1
    assert exe.llvm_ir.count('define internal double @"tessel.exp.f64"') == 1
    x = np.linspace(-3, 3, 64, dtype=np.float32)
    z = np.linspace(-3, 3, 64)
    b, c = exe(x, z)
    np.testing.assert_allclose(b, np.tanh(np.exp(x)), rtol=1e-6)
    np.testing.assert_allclose(c, np.exp(z), rtol=1e-15)


def _weighted_error(
    fn: Callable[[Decimal], Decimal], weight: Callable[[np.ndarray], np.ndarray],
    piece: tuple[float, float, float], coef: Sequence[float],
) -> float:  # fmt: skip
    """The weighted max error of sum c_j (v - center)^j against fn, on the fit's own points."""
    lo, hi, center = piece
    n = 40 * len(coef)
    v = (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
    v = np.concatenate([v, [lo, hi]])
    target = np.array([fn(Decimal(float(t))) for t in v], dtype=np.longdouble)
    powers = np.vander((v - center).astype(np.longdouble), len(coef), increasing=True)
    approx = powers @ np.array(coef, dtype=np.longdouble)
    return float(np.max(np.abs((target - approx).astype(float)) * weight(v)))


def test_coefficients_are_as_good_as_the_fit_script_output() -> None:
    """The tables in mathlib.py are as accurate as what `python -m codegen.mathlib_fit` derives
    on this machine. The fit's last bits depend on the host's LAPACK, so the coefficients
    themselves may differ; what matters is the approximation error, compared here."""
    from codegen import mathlib, mathlib_fit

    tables = {
        "EXP": mathlib.EXP_T,
        "LOG": mathlib.LOG_L,
        "TANH": mathlib.TANH_H,
        "ERF_SMALL": mathlib.ERF_G,
    }
    for name, (fn, weight, per_dtype) in mathlib_fit.FITS.items():
        for dt, (degree, pieces) in per_dtype.items():
            for i, (lo, hi, center) in enumerate(pieces):
                coef, fit_error = mathlib_fit.fit(fn, lo, hi, degree, center, weight, NP[dt])
                if name == "ERF_TAIL":
                    upper, mid, table = mathlib.ERF_Q[dt][i]
                    assert (upper, mid) == (hi, center)
                else:
                    table = tables[name][dt]
                assert len(table) == len(coef), f"{name} {dt} {i}: degree changed"
                error = _weighted_error(fn, weight, (lo, hi, center), table)
                assert error <= 1.25 * fit_error, f"{name} {dt} {i}: {error:.3g} > {fit_error:.3g}"
