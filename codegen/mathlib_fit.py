"""Derive the polynomial coefficients of codegen/mathlib.py: `python -m codegen.mathlib_fit`.

Each polynomial approximates a smooth *remainder* of a function after its leading terms are
taken out exactly (e.g. exp(r) = 1 + r + r²/2 + r³·T(r)), so float64 linear algebra is accurate
enough even for f64 coefficients: the fit's own error is scaled down by the small factor r³.
The target values come from `decimal` at 80 digits (no third-party dependency). The fit is a
weighted least-squares fit on Chebyshev nodes, refined toward minimax by Lawson's iteration
(weights multiplied by the error), with residuals evaluated in long double. The weight of each
node is how much an error in the remainder moves the final result, relative to that result.

Prints the coefficient tables to paste into mathlib.py (lowest degree first) and the fit's
weighted max error, which must stay well below one unit in the last place of the type.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal, getcontext

import numpy as np

getcontext().prec = 80
D = Decimal


def _atan_inv(n: int) -> Decimal:
    """atan(1/n) by its Taylor series, for Machin's formula."""
    x, total, k = D(1) / n, D(0), 0
    power = x
    while True:
        term = power / (2 * k + 1)
        if term < D(10) ** -85:
            return total
        total += -term if k % 2 else term
        power *= x * x
        k += 1


PI = 16 * _atan_inv(5) - 4 * _atan_inv(239)
SQRT_PI = PI.sqrt()


def d_erf(x: Decimal) -> Decimal:
    """erf by its Taylor series; 80 digits leave ~60 after the cancellation at x = 6."""
    total, term, n = D(0), x, 0
    x2 = x * x
    while abs(term) > D(10) ** -85 or n < 5:
        total += term / (2 * n + 1)
        n += 1
        term = -term * x2 / n
    return 2 * total / SQRT_PI


def d_tanh(x: Decimal) -> Decimal:
    e = (2 * x).exp()
    return (e - 1) / (e + 1)


# --- remainders (each a function of the polynomial's variable, in Decimal) ----------------------


def exp_tail(r: Decimal) -> Decimal:  # exp(r) = 1 + r + r²/2 + r³·T(r)
    if r == 0:
        return D(1) / 6
    return (r.exp() - 1 - r - r * r / 2) / r**3


def log_tail(z: Decimal) -> Decimal:  # 2·atanh(s) = 2s + s·z·L(z), z = s²
    if z == 0:
        return D(2) / 3
    s = z.sqrt()
    atanh = ((1 + s) / (1 - s)).ln() / 2
    return (2 * atanh - 2 * s) / (s * z)


def tanh_tail(z: Decimal) -> Decimal:  # tanh(x) = x + x·z·H(z), z = x²
    if z == 0:
        return D(-1) / 3
    x = z.sqrt()
    return (d_tanh(x) / x - 1) / z


def erf_small(z: Decimal) -> Decimal:  # erf(x) = x + x·G(z), z = x²
    if z == 0:
        return 2 / SQRT_PI - 1
    x = z.sqrt()
    return d_erf(x) / x - 1


def erfc_scaled(x: Decimal) -> Decimal:  # erf(x) = 1 - exp(-x²)·Q(x)
    return (1 - d_erf(x)) * (x * x).exp()


# --- the fit ------------------------------------------------------------------------------------


def fit(
    fn: Callable[[Decimal], Decimal], lo: float, hi: float, degree: int, center: float,
    weight: Callable[[np.ndarray], np.ndarray], dtype: type[np.floating],
) -> tuple[list[float], float]:  # fmt: skip
    """Coefficients of sum c_j (v - center)^j ≈ fn(v) on [lo, hi], and the weighted max error."""
    n = 40 * (degree + 1)
    k = np.arange(n)
    v = (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.pi * (k + 0.5) / n)
    v = np.concatenate([v, [lo, hi]])
    target = np.array([fn(D(float(t))) for t in v], dtype=np.longdouble)
    t = v - center
    scale = max(abs(lo - center), abs(hi - center))
    vander = np.vander(t / scale, degree + 1, increasing=True)
    w0 = weight(v)
    lawson = np.ones_like(v) / len(v)
    coef = np.zeros(degree + 1, dtype=np.longdouble)
    for _ in range(60):
        sw = np.sqrt(lawson) * w0
        coef = np.zeros(degree + 1, dtype=np.longdouble)
        for _ in range(3):  # iterative refinement: residuals in long double
            resid = target - vander.astype(np.longdouble) @ coef
            step, *_ = np.linalg.lstsq(vander * sw[:, None], (resid * sw).astype(float), None)
            coef += step.astype(np.longdouble)
        err = np.abs((target - vander.astype(np.longdouble) @ coef).astype(float)) * w0
        lawson = lawson * (err + 1e-300)
        lawson /= lawson.sum()
    rounded = [float(dtype(c / np.longdouble(scale) ** j)) for j, c in enumerate(coef)]
    powers = np.vander(t.astype(np.longdouble), degree + 1, increasing=True)
    approx = powers @ np.array(rounded, dtype=np.longdouble)
    return rounded, float(np.max(np.abs((target - approx).astype(float)) * w0))


ZMAX_LOG = ((math.sqrt(2) - 1) / (math.sqrt(2) + 1)) ** 2  # s² at the ends of [√½, √2)
TANH_SMALL = {"f32": 0.55, "f64": 0.55}  # mathlib's polynomial/exp switch points for tanh and erf
ERF_SMALL = 1.0
# the pieces of erf's exp(x²)·erfc(x) between ERF_SMALL and where erf rounds to 1
ERF_PIECES = {"f32": [(1.0, 4.0)], "f64": [(1.0, 2.0), (2.0, 3.5), (3.5, 6.0)]}
Weight = Callable[[np.ndarray], np.ndarray]
# name: (remainder, weight, {dtype: (degree, [(lo, hi, center), ...])})
Pieces = list[tuple[float, float, float]]  # (lo, hi, center)
FITS: dict[str, tuple[Callable[[Decimal], Decimal], Weight, dict[str, tuple[int, Pieces]]]] = {
    "EXP": (
        exp_tail,
        lambda r: np.abs(r) ** 3 / np.exp(r),
        {"f32": (3, [(-0.3466, 0.3466, 0.0)]), "f64": (9, [(-0.3466, 0.3466, 0.0)])},
    ),
    "LOG": (
        log_tail,
        lambda z: z / 2,
        {"f32": (2, [(0.0, ZMAX_LOG, 0.0)]), "f64": (6, [(0.0, ZMAX_LOG, 0.0)])},
    ),
    "TANH": (
        tanh_tail,
        lambda z: z,
        {d: (deg, [(0.0, TANH_SMALL[d] ** 2, 0.0)]) for d, deg in (("f32", 4), ("f64", 10))},
    ),
    "ERF_SMALL": (
        erf_small,
        lambda z: np.ones_like(z),
        {"f32": (7, [(0.0, ERF_SMALL**2, 0.0)]), "f64": (12, [(0.0, ERF_SMALL**2, 0.0)])},
    ),
    "ERF_TAIL": (
        erfc_scaled,
        lambda x: np.exp(-(x**2)),
        {
            d: (deg, [(lo, hi, (lo + hi) / 2) for lo, hi in ERF_PIECES[d]])
            for d, deg in (("f32", 9), ("f64", 14))
        },
    ),
}  # fmt: skip


def main() -> None:
    for name, (fn, weight, per_dtype) in FITS.items():
        for dt, (deg, pieces) in per_dtype.items():
            dtype = np.float32 if dt == "f32" else np.float64
            rows = []
            for lo, hi, center in pieces:
                coef, err = fit(fn, lo, hi, deg, center, weight, dtype)
                print(f"# {name} {dt} on [{lo}, {hi}]: degree {deg}, error 2^{math.log2(err):.1f}")
                rows.append(tuple(coef))
            print(f"{name}_{dt.upper()} = {rows if len(rows) > 1 else rows[0]!r}")


if __name__ == "__main__":
    main()
