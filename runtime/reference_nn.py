"""Reference semantics of reductions, contractions, windowed ops and composites.

Accumulation rules: f16/bf16 accumulate in f32, f32 in f32, f64 in f64. Contractions
(dot_general, conv2d) accumulate integers exactly in int64 and wrap once into `out_dtype`; integer
reductions wrap in their own type, which gives the same bits. Results round once to the result
type. Rows are assembled with the rest in `runtime.reference.REFERENCE`.

Float contractions that sum in f32 have exact range: an element is infinite or NaN only where
the sum computed without intermediate overflow is (a NaN or an infinity among its operands, or a
true sum beyond f32's range), so the answer cannot depend on the order of the sum. An f32 sum
that overflowed on the way is sticky (inf, or NaN after inf - inf), so such elements are exactly
the non-finite ones: they are recomputed in f64, whose range no f32 product or sum of them can
leave. f64 contractions are plain IEEE sums in an unspecified order, as in BLAS.

A complex contraction is two real ones over a contraction twice as long: with x = a + bi and
y = c + di, its real part is [a, b] . [c, -d] and its imaginary part [a, b] . [d, c], the parts
joined along the first contracting dimension (so each part is one sum, with the rules above; a
contraction with no contracting dimension is the plain complex product).

Choices the op docs leave open:
- An empty max/min reduction gives the identity (-inf/+inf, INT_MIN/INT_MAX, False/True);
  max_pool over a window that lies wholly in the padding gives the same -inf/INT_MIN.
- avg_pool over a window with no valid element (possible when padding >= window) is 0/0 = NaN.
- softmax of a slice holding +inf or only -inf is NaN (x - max is NaN there).
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ir.attrs import Attrs
from ir.ops import Op
from ir.types import TensorType
from runtime.numerics import Reference, accumulator, cast, complex_from_parts, widen

# --- reductions ---------------------------------------------------------------------------


def _lowest(dtype: np.dtype) -> float:
    if dtype == np.bool_:
        return False
    return -np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


def _highest(dtype: np.dtype) -> float:
    if dtype == np.bool_:
        return True
    return np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).max


# kind -> (ufunc, identity for an empty reduction, or None where the ufunc has its own)
_REDUCERS = {
    "sum": (np.add, None),
    "prod": (np.multiply, None),
    "max": (np.maximum, _lowest),  # maximum/minimum propagate NaN; on bool they are any/all
    "min": (np.minimum, _highest),
}


def _reduce(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    x = widen(args[0])
    ufunc, identity = _REDUCERS[attrs["kind"]]
    extra: dict[str, Any] = {} if identity is None else {"initial": identity(x.dtype)}
    # dtype= stops numpy from summing small ints in int64; wrapping in the type is intended.
    return cast(ufunc.reduce(x, axis=attrs["axes"], dtype=x.dtype, **extra), out.dtype)


def _mean(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    x = widen(args[0])
    count = math.prod(x.shape[a] for a in attrs["axes"])
    total = np.add.reduce(x, axis=attrs["axes"], dtype=x.dtype)
    if count == 0:  # 0/0 without relying on numpy's warning path
        return np.full(out.shape, np.nan, out.dtype.np)
    return cast(total / count, out.dtype)


def _softmax(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    x, axis = widen(args[0]), attrs["axis"]
    top = np.maximum.reduce(x, axis=axis, keepdims=True, initial=-np.inf)
    e = np.exp(x - top)  # every exponent <= 0: no overflow
    return cast(e / np.add.reduce(e, axis=axis, keepdims=True), out.dtype)


# --- contractions -------------------------------------------------------------------------


def _exact_range(
    contract: Callable[[np.ndarray, np.ndarray], np.ndarray], args: list[np.ndarray]
) -> np.ndarray:
    """`contract` in the accumulation type, with exact range for f32 (see the module doc)."""
    result = contract(*(a.astype(accumulator(a)) for a in args))
    if result.dtype != np.float32 or np.isfinite(result).all():
        return result
    wide = contract(*(a.astype(np.float64) for a in args))
    return np.where(np.isfinite(result), result, wide)


def _dot_general(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    lc, rc = attrs["lhs_contract"], attrs["rhs_contract"]
    if out.dtype.is_complex and lc:
        part = out.with_dtype(out.dtype.real_part)
        x, y = args
        lhs = np.concatenate([x.real, x.imag], axis=lc[0])
        rhs_re = np.concatenate([y.real, -y.imag], axis=rc[0])
        rhs_im = np.concatenate([y.imag, y.real], axis=rc[0])
        re, im = (_real_dot_general(attrs, [lhs, r], part) for r in (rhs_re, rhs_im))
        return complex_from_parts(re, im)
    return _real_dot_general(attrs, args, out)


def _real_dot_general(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    lb, lc, rb, rc = (attrs[k] for k in ("lhs_batch", "lhs_contract", "rhs_batch", "rhs_contract"))
    letters = iter(string.ascii_letters)
    lhs_sub = [next(letters) for _ in range(args[0].ndim)]
    rhs_sub = [next(letters) for _ in range(args[1].ndim)]
    for i, j in zip(lb + lc, rb + rc, strict=True):
        rhs_sub[j] = lhs_sub[i]  # paired dimensions share one einsum index
    result = [lhs_sub[i] for i in lb]
    result += [s for i, s in enumerate(lhs_sub) if i not in lb + lc]
    result += [s for j, s in enumerate(rhs_sub) if j not in rb + rc]
    spec = f"{''.join(lhs_sub)},{''.join(rhs_sub)}->{''.join(result)}"
    return cast(_exact_range(lambda lhs, rhs: np.einsum(spec, lhs, rhs), args), out.dtype)


def _pad_hw(x: np.ndarray, attrs: Attrs, fill: float) -> np.ndarray:
    (top, bottom), (left, right) = attrs["padding"]
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)


def _taps(
    padded: np.ndarray,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilation: tuple[int, int],
    out_hw: tuple[int, ...],
) -> Iterator[tuple[int, int, np.ndarray]]:
    """For each kernel offset (i, j), what every output position sees there at once: a strided
    [N, out_h, out_w, C] slice of the padded NHWC input. Summing over taps replaces the loops
    over output positions, which keeps the rule short and still obviously a convolution."""
    (sh, sw), (dh, dw), (oh, ow) = strides, dilation, out_hw
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            rows = slice(i * dh, i * dh + (oh - 1) * sh + 1, sh)
            cols = slice(j * dw, j * dw + (ow - 1) * sw + 1, sw)
            yield i, j, padded[:, rows, cols, :]


def _conv2d(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    kh, kw, per_group, channels = args[1].shape
    n, oh, ow, _ = out.shape
    g = attrs["groups"]

    def contract(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        # Group k reads input channels [k*I, (k+1)*I), writes output channels [k*O/g, (k+1)*O/g).
        grouped_w = w.reshape(kh, kw, per_group, g, channels // g)
        acc = np.zeros((n, oh, ow, g, channels // g), x.dtype)
        taps = _taps(_pad_hw(x, attrs, 0), (kh, kw), attrs["strides"], attrs["dilation"], (oh, ow))
        for i, j, window in taps:
            patch = window.reshape(n, oh, ow, g, per_group)
            acc += np.einsum("nhwgi,igo->nhwgo", patch, grouped_w[i, j])
        return acc.reshape(out.shape)

    return cast(_exact_range(contract, args), out.dtype)


# --- windows ------------------------------------------------------------------------------


def _window_sum(x: np.ndarray, attrs: Attrs, out_shape: tuple[int, ...]) -> np.ndarray:
    total = np.zeros(out_shape, x.dtype)
    padded = _pad_hw(x, attrs, 0)
    for _, _, window in _taps(padded, attrs["window"], attrs["strides"], (1, 1), out_shape[1:3]):
        total += window
    return total


def _max_pool(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    x = widen(args[0])
    lowest = _lowest(x.dtype)
    padded = _pad_hw(x, attrs, lowest)
    best = np.full(out.shape, lowest, x.dtype)
    for _, _, window in _taps(padded, attrs["window"], attrs["strides"], (1, 1), out.shape[1:3]):
        best = np.maximum(best, window)  # NaN in a window stays NaN
    return cast(best, out.dtype)


def _avg_pool(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    x = widen(args[0])
    total = _window_sum(x, attrs, out.shape)
    if attrs["count_include_pad"]:
        return cast(total / math.prod(attrs["window"]), out.dtype)
    # The same windows over a map of ones count the taps that fall on real input.
    ones = np.ones((1, *x.shape[1:3], 1), x.dtype)
    count = _window_sum(ones, attrs, (1, *out.shape[1:3], 1))
    return cast(total / count, out.dtype)


NN_REFERENCE: dict[Op, Reference] = {
    Op.REDUCE: _reduce,
    Op.MEAN: _mean,
    Op.SOFTMAX: _softmax,
    Op.DOT_GENERAL: _dot_general,
    Op.CONV2D: _conv2d,
    Op.MAX_POOL: _max_pool,
    Op.AVG_POOL: _avg_pool,
}
