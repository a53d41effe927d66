"""Is a backend's answer right? The interpreter's result, with a tolerance that knows how far
rounding alone could have moved each element.

Fixed tolerances fail a differential fuzzer both ways: a random chain such as
`floor(exp(x) * 3)` turns a one-ulp difference of `exp` into a difference of 1.0, while a
tolerance loose enough for that would hide real bugs. So the reference is run again with
noise: the result of every op that rounds (arithmetic, transcendental functions, reductions,
contractions) is perturbed by a few ulps of its type, and the operands of accumulating ops
too (a backend may sum in another order). Where those noisy runs leave an element within the
per-dtype tolerance, the backend must as well; where they move it further, the allowance
grows with them; where they change an integer, a bool, or whether the value is nan or
infinite, the element is *unstable* (it depends on rounding the op semantics leave open) and
is not compared.

Sums whose terms could overflow are left open too (docs/cpu.md, "Contractions and non-finite
values"): where the magnitudes of a sum's finite terms add up past the largest finite value of
its accumulation type, which infinity or nan comes out of a reduction, a mean, an average pool
or an f64 contraction depends on the order and on fused multiply-adds. Contractions summing in
f32 have exact range instead, so of those only the results within rounding of f32's maximum
are open (either side is right). The noisy runs give open elements nan in one run and inf in
the other, so they and whatever is computed from them count as unstable.

Complex values are compared part by part with their part type's tolerance (f32's for c64),
relative to the whole number's magnitude: a product's or a quotient's part can be a
cancellation far below it. The noise moves each part by a few ulps of that magnitude, and an
element is unstable (or wrong) when either part is. Where a part is infinite or nan the CPU
backend's formulas for complex arithmetic may differ from NumPy's (docs/passes.md,
`expand-complex`), so the results of complex products, quotients, functions and contractions
that have a non-finite part, or come from an operand that has one, are open like the
overflowing sums above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from codegen.emit import contraction_depth
from ir.dtypes import DType
from ir.graph import Function, Node
from ir.ops import Op
from runtime.interp import evaluate_node
from runtime.reference import tuple_value

# ops whose result is rounded (or approximated by libm) rather than exact
ROUNDING = frozenset(
    {
        Op.ADD,
        Op.SUB,
        Op.MUL,
        Op.DIV,
        Op.POW,
        Op.EXP,
        Op.LOG,
        Op.SQRT,
        Op.RSQRT,
        Op.TANH,
        Op.SIGMOID,
        Op.ERF,
        Op.SIN,
        Op.COS,
        Op.TAN,
        Op.ASIN,
        Op.ACOS,
        Op.ATAN,
        Op.ATAN2,
        Op.SINH,
        Op.COSH,
        Op.ASINH,
        Op.ACOSH,
        Op.ATANH,
        Op.HYPOT,
        Op.LOG1P,
        Op.EXPM1,
        Op.DEQUANTIZE,
    }
)
# ops that sum (or multiply) many values, in an order a backend may change
ACCUMULATING = frozenset({Op.REDUCE, Op.MEAN, Op.DOT_GENERAL, Op.CONV2D, Op.AVG_POOL, Op.SOFTMAX})
# relative size of the injected noise (a few ulps of each type) and of the base tolerance
NOISE = {DType.F64: 4 * 2.0**-52, DType.F32: 4 * 2.0**-23, DType.F16: 2.0**-10, DType.BF16: 2.0**-7}
RTOL = {DType.F64: 1e-9, DType.F32: 2e-5, DType.F16: 2e-3, DType.BF16: 1.6e-2}
ALLOWANCE = 16.0  # how many times the noisy runs' deviation a backend may deviate
NOISY_RUNS = 2


def _perturb(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    try:
        dtype = DType.from_numpy(a.dtype)
    except ValueError:
        return a
    if a.size == 0 or not (dtype.is_float or dtype.is_complex):
        return a
    if dtype.is_complex:  # each part by a few ulps of the magnitude
        u = rng.uniform(-1.0, 1.0, a.shape) + 1j * rng.uniform(-1.0, 1.0, a.shape)
        with np.errstate(all="ignore"):
            a128 = a.astype(np.complex128)
            step = NOISE[dtype.real_part] * np.abs(a128)
            noisy = np.where(np.isfinite(step), a128 + step * u, a128)
            return np.asarray(noisy.astype(a.dtype))
    u = rng.uniform(-1.0, 1.0, a.shape)
    with np.errstate(all="ignore"):  # inf * (1 + u) stays inf; nan stays nan
        noisy = a.astype(np.float64) * (1.0 + NOISE[dtype] * u)
        return np.asarray(noisy.astype(a.dtype))


def _terms_per_element(node: Node, operand: np.ndarray) -> int:
    """How many terms a mean or an average pool divides by, at most."""
    if node.op is Op.AVG_POOL:
        return math.prod(node.attrs["window"])
    return operand.size // max(node.type.size, 1)


def may_overflow(node: Node, operands: Sequence[np.ndarray]) -> np.ndarray | None:
    """The elements of a float sum (a contraction, a sum, a mean, an average pool) whose finite
    terms' magnitudes add up past the largest finite value of the accumulation type."""
    summing = node.op in (Op.DOT_GENERAL, Op.CONV2D, Op.AVG_POOL, Op.MEAN) or (
        node.op is Op.REDUCE and node.attrs["kind"] == "sum"
    )
    if not summing or not (node.dtype.is_float or node.dtype.is_complex) or node.type.size == 0:
        return None
    if node.dtype.is_complex:  # |re| + |im| bounds each part of a sum of products
        return _may_overflow_complex(node, operands)
    scaled, signed, exponent = [], [], 0
    with np.errstate(all="ignore"):
        for a in operands:
            finite = np.where(np.isfinite(a), a, 0).astype(np.float64)
            e = max(math.frexp(float(np.abs(finite).max()))[1], 0) if finite.size else 0
            # by a power of two, to at most 1
            scaled.append((np.abs(finite) * 2.0**-e).astype(a.dtype))
            signed.append((finite * 2.0**-e).astype(a.dtype))
            exponent += e
        bound = evaluate_node(node, scaled).astype(np.float64)
    if node.op in (Op.MEAN, Op.AVG_POOL):
        bound = bound * _terms_per_element(node, operands[0])
    accumulator = np.float64 if node.srcs[0].dtype is DType.F64 else np.float32
    largest = math.ldexp(float(np.finfo(accumulator).max), -exponent)
    exact_range = node.srcs[0].dtype.is_float and accumulator is np.float32
    if node.op in (Op.DOT_GENERAL, Op.CONV2D) and exact_range:
        with np.errstate(all="ignore"):
            value = np.abs(evaluate_node(node, signed).astype(np.float64))
        # rounding, the noise and the result type's precision
        slack = 2.0**-6 * largest + 2.0**-20 * contraction_depth(node) * bound
        return np.asarray(np.abs(value - largest) <= slack)
    return np.asarray(bound > largest)


def _may_overflow_complex(node: Node, operands: Sequence[np.ndarray]) -> np.ndarray:
    """may_overflow of a complex sum or contraction, from the operands' parts' magnitudes
    (a bound: no contraction of complex numbers is taken to sum with exact range)."""
    scaled, exponent = [], 0
    with np.errstate(all="ignore"):
        for a in operands:
            re, im = np.abs(a.real.astype(np.float64)), np.abs(a.imag.astype(np.float64))
            size = np.where(np.isfinite(re), re, 0.0) + np.where(np.isfinite(im), im, 0.0)
            top = float(np.max(size)) if np.size(size) else 0.0
            e = max(math.frexp(top)[1], 0)
            scaled.append((size * 2.0**-e).astype(a.dtype))
            exponent += e
        bound = np.abs(evaluate_node(node, scaled).real.astype(np.float64))
    part = node.srcs[0].dtype.real_part
    accumulator = np.float64 if part is DType.F64 else np.float32
    return np.asarray(bound > math.ldexp(float(np.finfo(accumulator).max), -exponent))


# ops on complex numbers whose result is defined by formulas on the parts (expand-complex)
COMPLEX_FORMULAS = frozenset({Op.MUL, Op.DIV, Op.ABS, Op.EXP, Op.LOG, Op.SQRT, Op.DOT_GENERAL})


def _nonfinite_parts(a: np.ndarray) -> np.ndarray:
    return np.asarray(~(np.isfinite(a.real) & np.isfinite(a.imag)))


def complex_open(node: Node, operands: Sequence[np.ndarray], value: Any) -> np.ndarray | None:
    """The elements of a complex formula's result that have a non-finite part or (elementwise
    ops) an operand element that has one, where NumPy's and the backend's formulas differ."""
    if node.op not in COMPLEX_FORMULAS or not node.srcs[0].dtype.is_complex:
        return None
    open_ = _nonfinite_parts(np.asarray(value))
    if node.op is not Op.DOT_GENERAL:
        for a in operands:
            open_ = open_ | _nonfinite_parts(a)
    return open_


def _noisy_function(
    fn: Function, args: Sequence[np.ndarray], rng: np.random.Generator, run: int
) -> Any:
    env: dict[Node, np.ndarray] = dict(zip(fn.params, args, strict=True))
    for node in fn.body:
        exact = operands = [env[s] for s in node.srcs]
        if node.op in ACCUMULATING:
            operands = [_perturb(a, rng) for a in operands]
        if node.op is Op.FUSION:  # the body's ops are perturbed like any others
            value = _noisy_function(node.attrs["body"], operands, rng, run)[0]
        elif node.op is Op.WHILE:  # so are a loop's, on every trip
            value = _noisy_loop(node, operands, rng, run)
        elif node.op is Op.FOR:
            value = _noisy_for(node, operands, rng, run)
        elif node.op is Op.COND:  # and those of the side a branch takes
            side = node.attrs["true_branch" if bool(operands[0]) else "false_branch"]
            value = tuple_value(_noisy_function(side, operands[1:], rng, run))
        else:
            value = evaluate_node(node, operands)
        # the magnitude of a complex number rounds (abs of a real one is exact)
        complex_abs = node.op is Op.ABS and node.srcs[0].dtype.is_complex
        if node.op in ROUNDING or node.op in ACCUMULATING or complex_abs:
            value = _perturb(value, rng)
        open_ = may_overflow(node, exact)  # noise can round the largest finite value to inf
        nonfinite = complex_open(node, exact, value)
        if nonfinite is not None:
            open_ = nonfinite if open_ is None else open_ | nonfinite
        if open_ is not None and open_.any():
            value = np.array(value)
            open_value = np.nan if run % 2 == 0 else np.inf
            value[open_] = (
                complex(open_value, open_value) if value.dtype.kind == "c" else open_value
            )
        env[node] = value
    return [env[r] for r in fn.results]


MAX_NOISY_TRIPS = 10_000  # noise in a float condition must not turn a loop endless


def _noisy_loop(node: Node, args: list[np.ndarray], rng: np.random.Generator, run: int) -> Any:
    state = list(args)
    for _ in range(MAX_NOISY_TRIPS):
        if not bool(_noisy_function(node.attrs["cond"], state, rng, run)[0]):
            break
        state = _noisy_function(node.attrs["body"], state, rng, run)
    return tuple_value(state)


def _noisy_for(node: Node, args: list[np.ndarray], rng: np.random.Generator, run: int) -> Any:
    lower, upper, *state = args
    for i in range(int(lower), min(int(upper), int(lower) + MAX_NOISY_TRIPS)):
        state = _noisy_function(node.attrs["body"], [np.array(i, lower.dtype), *state], rng, run)
    return tuple_value(state)


def noisy_runs(fn: Function, args: Sequence[np.ndarray], seed: int = 0) -> list[list[np.ndarray]]:
    """The reference result of `fn` under NOISY_RUNS different draws of rounding noise."""
    runs = []
    for k in range(NOISY_RUNS):
        rng = np.random.default_rng([seed, k])
        runs.append(_noisy_function(fn, args, rng, k))
    return runs


@dataclass(frozen=True)
class Mismatch:
    output: int
    message: str


def _float_check(
    e: np.ndarray,
    g: np.ndarray,
    noisy: list[np.ndarray],
    dtype: DType,
    scale: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(bad, unstable) element masks for one float output (or one part of a complex output,
    whose magnitude `scale` is what the relative tolerance is relative to)."""
    e64, g64 = e.astype(np.float64), g.astype(np.float64)
    unstable = np.zeros(e.shape, bool)
    deviation = np.zeros(e.shape)
    with np.errstate(all="ignore"):
        for n in noisy:
            n64 = n.astype(np.float64)
            unstable |= np.isnan(n64) != np.isnan(e64)
            unstable |= np.isinf(n64) != np.isinf(e64)
            unstable |= np.isinf(e64) & (n64 != e64)
            diff = np.abs(n64 - e64)
            deviation = np.maximum(deviation, np.where(np.isfinite(diff), diff, 0.0))
        tiny = float(np.finfo(np.float64).tiny) if dtype is DType.F64 else 2.0**-126
        size = np.abs(e64) if scale is None else np.where(np.isfinite(scale), scale, np.abs(e64))
        tol = tiny + RTOL[dtype] * size + ALLOWANCE * deviation
        # an infinity must be met exactly: its own tolerance, inf, would accept the other sign
        close = np.isfinite(e64) & (np.abs(e64 - g64) <= tol)
        same = (e64 == g64) | (np.isnan(e64) & np.isnan(g64))
    return ~(close | same), unstable


def _complex_check(
    e: np.ndarray, g: np.ndarray, noisy: list[np.ndarray], dtype: DType
) -> tuple[np.ndarray, np.ndarray]:
    """(bad, unstable) element masks for one complex output: either part's."""
    with np.errstate(all="ignore"):
        scale = np.abs(e.astype(np.complex128))
    masks = [
        _float_check(part(e), part(g), [part(n) for n in noisy], dtype.real_part, scale)
        for part in (np.real, np.imag)
    ]
    return masks[0][0] | masks[1][0], masks[0][1] | masks[1][1]


def compare(
    expected: Sequence[np.ndarray], got: Sequence[np.ndarray], noisy: list[list[np.ndarray]]
) -> tuple[Mismatch | None, int]:
    """The first output that differs beyond what rounding explains, and how many elements were
    left uncompared as unstable."""
    if len(got) != len(expected):
        return Mismatch(0, f"{len(got)} outputs instead of {len(expected)}"), 0
    skipped = 0
    for i, (e, g) in enumerate(zip(expected, got, strict=True)):
        g = np.asarray(g)
        if e.shape != g.shape or e.dtype != g.dtype:
            return Mismatch(
                i, f"output {i}: {g.dtype}{list(g.shape)} instead of {e.dtype}{list(e.shape)}"
            ), skipped
        dtype = DType.from_numpy(e.dtype)
        samples = [run[i] for run in noisy]
        if dtype.is_float:
            bad, unstable = _float_check(e, g, samples, dtype)
        elif dtype.is_complex:
            bad, unstable = _complex_check(e, g, samples, dtype)
        else:
            unstable = np.zeros(e.shape, bool)
            for n in samples:
                unstable |= n != e
            bad = e != g
        skipped += int((bad & unstable).sum())
        bad &= ~unstable
        if bad.any():
            where = tuple(int(k) for k in np.argwhere(bad)[0])
            message = (
                f"output {i} ({dtype}{list(e.shape)}): {int(bad.sum())} of {e.size} elements "
                f"differ; first at {list(where)}: expected {e[where].item()!r}, "
                f"got {g[where].item()!r}"
            )
            return Mismatch(i, message), skipped
    return None, skipped
