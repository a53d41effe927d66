"""NumPy functions that are compositions of traced ops: triangles, rolls, repeats, prefix sums,
diagonals, evenly spaced values, covariance.

Each row of `FUNCTIONS` follows the NumPy function's signature and result (dtype and shape
included: `np.cumsum` of int32 is int64, as NumPy's); what NumPy decides from values must be
concrete here (a shift, a repeat count, a number of samples), and a traced one is a located
error. They join `compiler.numpy_api.FUNCTIONS`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from compiler import linalg
from compiler.tracing import (
    Tracer,
    UnsupportedError,
    broadcast,
    broadcast_all,
    convert,
    elementwise,
    full,
    lift,
    normalize_axes,
    reshape,
    to_dtype,
    transpose,
)
from ir.dtypes import DType
from ir.ops import Op


def _concrete_int(value: Any, what: str, x: Tracer) -> int:
    if isinstance(value, Tracer):
        raise x.trace.error(
            f"{what} must be a concrete integer: it decides the result's layout",
            UnsupportedError,
        )
    try:
        return operator.index(value)
    except TypeError:
        raise x.trace.error(f"{what} must be an integer, got {value!r}") from None


def _slice(x: Tracer, axis: int, start: int, stop: int, step: int = 1) -> Tracer:
    begin = [0] * x.ndim
    limit = list(x.shape)
    stride = [1] * x.ndim
    begin[axis], limit[axis], stride[axis] = start, stop, step
    return x.trace.emit(
        Op.SLICE, [x], x.weak, start=tuple(begin), limit=tuple(limit), stride=tuple(stride)
    )


def _select(mask: np.ndarray, x: Tracer, otherwise: Any) -> Tracer:
    m, a, b = broadcast_all([lift(mask), x, lift(otherwise, x.node.dtype)])
    return x.trace.emit(Op.SELECT, [m, a, b], x.weak)


# --- triangles and diagonals ----------------------------------------------------------------


def np_tril(m: Any, k: int = 0) -> Tracer:
    x = lift(m)
    return _select(_lower(x, _concrete_int(k, "k", x)), x, 0)


def np_triu(m: Any, k: int = 0) -> Tracer:
    x = lift(m)
    return _select(~_lower(x, _concrete_int(k, "k", x) - 1), x, 0)


def _lower(x: Tracer, k: int) -> np.ndarray:
    """True on and below the k-th diagonal of x's last two axes (a 1-D x is both, as in NumPy,
    whose result is then square)."""
    if x.ndim == 0:
        raise x.trace.error("the array must have at least one dimension")
    rows, cols = x.shape[-2:] if x.ndim >= 2 else (x.shape[0], x.shape[0])
    return np.tri(rows, cols, k, dtype=np.bool_)


def np_diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tracer:
    """The diagonal as the last axis: the two axes flattened, then every (columns + 1)-th
    element from the offset's first one."""
    x = lift(a)
    if x.ndim < 2:
        raise x.trace.error("diag requires an array of at least two dimensions")
    offset = _concrete_int(offset, "offset", x)
    (first,) = normalize_axes(axis1, x.ndim, x.trace.api)
    (second,) = normalize_axes(axis2, x.ndim, x.trace.api)
    if first == second:
        raise x.trace.error("axis1 and axis2 cannot be the same")
    rest = [d for d in range(x.ndim) if d not in (first, second)]
    x = transpose(x, (*rest, first, second))
    *outer, rows, cols = x.shape
    length = max(0, min(rows, cols - offset) if offset >= 0 else min(rows + offset, cols))
    start = offset if offset >= 0 else -offset * cols
    flat = reshape(x, (*outer, rows * cols))
    if length == 0:
        return _slice(flat, len(outer), 0, 0)
    return _slice(flat, len(outer), start, start + (length - 1) * (cols + 1) + 1, cols + 1)


def np_diag(v: Any, k: int = 0) -> Tracer:
    """A 1-D array's square matrix with it on the k-th diagonal, or a 2-D array's diagonal."""
    x = lift(v)
    k = _concrete_int(k, "k", x)
    if x.ndim == 2:
        return np_diagonal(x, k)
    if x.ndim != 1:
        raise x.trace.error("Input must be 1- or 2-d.")
    n = x.shape[0] + abs(k)
    # the value at (i, i + k) is v[i] for k >= 0: it depends on the row (on the column if k < 0)
    padded = x.trace.emit(Op.PAD, [x, lift(0, x.node.dtype)], x.weak, low=(0,), high=(abs(k),))
    line = reshape(padded, (n, 1) if k >= 0 else (1, n))
    return _select(np.eye(n, k=k, dtype=bool), broadcast(line, (n, n)), 0)


def np_trace(
    a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype: Any = None, out: Any = None
) -> Tracer:
    if out is not None:
        raise lift(a).trace.error("out= is not supported under @jit", UnsupportedError)
    d = np_diagonal(a, offset, axis1, axis2)
    result = to_dtype(dtype, d.trace.api) if dtype is not None else _numpy_dtype(np.sum, d)
    return _sum(convert(d, result), d.ndim - 1)


def _sum(x: Tracer, axis: int) -> Tracer:
    return x.trace.emit(Op.REDUCE, [x], x.weak, kind="sum", axes=(axis,))


def _numpy_dtype(fn: Callable[..., Any], x: Tracer, **kwargs: Any) -> DType:
    """The dtype NumPy's `fn` returns for an array of x's dtype."""
    return to_dtype(np.asarray(fn(np.zeros(1, x.dtype), **kwargs)).dtype, x.trace.api)


# --- rearrangements -----------------------------------------------------------------------


def np_roll(a: Any, shift: Any, axis: Any = None) -> Tracer:
    x = lift(a)
    if axis is None:
        return reshape(np_roll(reshape(x, (x.size,)), shift, 0), x.shape)
    if isinstance(shift, Tracer):
        _concrete_int(shift, "shift", x)
    shifts, axes = np.broadcast_arrays(np.asarray(shift), np.asarray(axis))
    total = dict.fromkeys(range(x.ndim), 0)
    for s, ax in zip(shifts.ravel(), axes.ravel(), strict=True):
        (ax,) = normalize_axes(int(ax), x.ndim, x.trace.api)
        total[ax] += _concrete_int(s, "shift", x)
    for ax, s in total.items():
        n = x.shape[ax]
        if n == 0 or s % n == 0:
            continue
        cut = n - s % n
        parts = [_slice(x, ax, cut, n), _slice(x, ax, 0, cut)]
        x = x.trace.emit(Op.CONCATENATE, parts, x.weak, axis=ax)
    return x


def np_repeat(a: Any, repeats: Any, axis: Any = None) -> Tracer:
    """Each element `repeats` times in a row: a new axis after `axis`, broadcast, merged."""
    x = lift(a)
    if not isinstance(repeats, Tracer) and np.ndim(repeats) == 1 and len(repeats) == 1:
        repeats = repeats[0]
    if isinstance(repeats, Tracer) or np.ndim(repeats) != 0:
        raise x.trace.error(
            "repeats must be one concrete integer (a count per element makes a gather)",
            UnsupportedError,
        )
    count = _concrete_int(repeats, "repeats", x)
    if count < 0:
        raise x.trace.error("negative dimensions are not allowed")
    if axis is None:
        x, axis = reshape(x, (x.size,)), 0
    (ax,) = normalize_axes(axis, x.ndim, x.trace.api)
    shape = x.shape
    spread = broadcast(
        reshape(x, (*shape[: ax + 1], 1, *shape[ax + 1 :])),
        (*shape[: ax + 1], count, *shape[ax + 1 :]),
    )
    return reshape(spread, (*shape[:ax], shape[ax] * count, *shape[ax + 1 :]))


def np_tile(A: Any, reps: Any) -> Tracer:
    """The whole array `reps` times along each axis: (1, s0, 1, s1, ...) broadcast to
    (r0, s0, r1, s1, ...) and merged pairwise."""
    x = lift(A)
    if isinstance(reps, Tracer):
        _concrete_int(reps, "reps", x)
    counts = [_concrete_int(r, "reps", x) for r in np.atleast_1d(np.asarray(reps, dtype=object))]
    if any(c < 0 for c in counts):
        raise x.trace.error("negative dimensions are not allowed")
    rank = max(x.ndim, len(counts))
    counts = [1] * (rank - len(counts)) + counts
    x = reshape(x, (1,) * (rank - x.ndim) + x.shape)
    pairs = [(1, s) for s in x.shape]
    spread = broadcast(
        reshape(x, tuple(v for p in pairs for v in p)),
        tuple(v for c, s in zip(counts, x.shape, strict=True) for v in (c, s)),
    )
    return reshape(spread, tuple(c * s for c, s in zip(counts, x.shape, strict=True)))


# --- prefix sums --------------------------------------------------------------------------


def _scan(
    op: Op, identity: Callable[[DType], Any], fn: Callable[..., Any]
) -> Callable[..., Tracer]:
    """Inclusive prefix sums (products, maxima) along an axis in log2(n) steps: each combines
    the values 2^i places before, the first 2^i positions taking the identity (Hillis and
    Steele). Float sums round in a tree, not left to right as NumPy's do: the error bound is
    log2(n) u sum|x| instead of n u sum|x|. `fn` (NumPy's own) decides the result's dtype."""

    def run(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Tracer:
        x = lift(a)
        if out is not None:
            raise x.trace.error("out= is not supported under @jit", UnsupportedError)
        result = to_dtype(dtype, x.trace.api) if dtype is not None else _numpy_dtype(fn, x)
        if axis is None:
            x, axis = reshape(x, (x.size,)), 0
        (ax,) = normalize_axes(axis, x.ndim, x.trace.api)
        x = convert(x, result)
        n, step = x.shape[ax], 1
        fill = lift(identity(result), result)
        combine = _ON_BOOL[op] if result is DType.BOOL else op
        while step < n:
            low, high = [0] * x.ndim, [0] * x.ndim
            low[ax] = step
            before = x.trace.emit(
                Op.PAD, [_slice(x, ax, 0, n - step), fill], x.weak, low=tuple(low), high=tuple(high)
            )
            x = x.trace.emit(combine, [x, before], x.weak)
            step *= 2
        return x

    return run


# NumPy's add and maximum of bools are `or`, multiply and minimum are `and`
_ON_BOOL = {Op.ADD: Op.OR, Op.MAX: Op.OR, Op.MUL: Op.AND, Op.MIN: Op.AND}


def _extreme(dtype: DType, highest: bool) -> Any:
    if dtype is DType.BOOL:
        return highest
    if dtype.is_float:
        return np.inf if highest else -np.inf
    info = np.iinfo(dtype.np.type)  # type: ignore[type-var]
    return info.max if highest else info.min


np_cumsum = _scan(Op.ADD, lambda dt: 0, np.cumsum)
np_cumprod = _scan(Op.MUL, lambda dt: 1, np.cumprod)
# ufunc.accumulate: the ufunc's own result dtype (np.maximum.accumulate keeps int8), axis 0
ACCUMULATE: dict[np.ufunc, Callable[..., Tracer]] = {
    np.add: _scan(Op.ADD, lambda dt: 0, np.add.accumulate),
    np.multiply: _scan(Op.MUL, lambda dt: 1, np.multiply.accumulate),
    np.maximum: _scan(Op.MAX, lambda dt: _extreme(dt, False), np.maximum.accumulate),
    np.minimum: _scan(Op.MIN, lambda dt: _extreme(dt, True), np.minimum.accumulate),
}


# --- sampling and statistics --------------------------------------------------------------


def np_linspace(
    start: Any, stop: Any, num: int = 50, endpoint: bool = True, retstep: bool = False,
    dtype: Any = None, axis: int = 0, *, device: Any = None,
) -> Any:  # fmt: skip
    """NumPy's formula on traced bounds: start + i * step, and `stop` itself last."""
    lo, hi = lift(start), lift(stop)
    trace = lo.trace
    num = _concrete_int(num, "num", lo)
    if num < 0:
        raise trace.error(f"Number of samples, {num}, must be non-negative.")
    div = num - 1 if endpoint else num
    common = np.result_type(_stand_in(start), _stand_in(stop))
    inexact = to_dtype(common if common.kind in "fc" else np.float64, trace.api)
    lo, hi = (convert(t, inexact) for t in broadcast_all([lo, hi]))
    delta = elementwise(Op.SUB, hi, lo)
    shape = (num, *delta.shape)
    ramp = broadcast(
        reshape(lift(np.arange(num, dtype=inexact.np)), (num,) + (1,) * delta.ndim), shape
    )
    if div > 0:
        step = elementwise(Op.DIV, delta, float(div), dtype=inexact)
        # NumPy scales by the step unless it is 0 (a span too small for it): then i / div * delta
        by_step = elementwise(Op.MUL, ramp, step)
        by_ratio = elementwise(Op.MUL, elementwise(Op.DIV, ramp, float(div), dtype=inexact), delta)
        zero = elementwise(Op.EQ, step, 0.0)
        y = trace.emit(Op.SELECT, broadcast_all([zero, by_ratio, by_step]), False)
    else:
        step = full(trace, delta.shape, np.nan, inexact)
        y = elementwise(Op.MUL, ramp, delta)
    y = elementwise(Op.ADD, y, lo)
    if endpoint and num > 1:
        last = np.zeros(shape, bool)
        last[-1] = True
        y = trace.emit(Op.SELECT, broadcast_all([lift(last), broadcast(hi, shape), y]), False)
    if axis != 0:
        (ax,) = normalize_axes(axis, y.ndim, trace.api)
        y = transpose(y, (*range(1, ax + 1), 0, *range(ax + 1, y.ndim)))
    if dtype is not None:
        result = to_dtype(dtype, trace.api)
        if result.is_int:
            y = elementwise(Op.FLOOR, y)
        y = convert(y, result)
    return (y, step) if retstep else y


def _stand_in(x: Any) -> Any:
    return np.zeros((), x.dtype) if isinstance(x, Tracer) else x


def np_cov(
    m: Any, y: Any = None, rowvar: bool = True, bias: bool = False, ddof: Any = None,
    fweights: Any = None, aweights: Any = None, *, dtype: Any = None,
) -> Tracer:  # fmt: skip
    """Variables in rows (columns when rowvar is False), observations along the other axis."""
    x = lift(m)
    if fweights is not None or aweights is not None:
        raise x.trace.error("fweights and aweights are not supported", UnsupportedError)
    if x.ndim > 2:
        raise x.trace.error("m has more than 2 dimensions")
    if dtype is None:
        dtype = np.result_type(_stand_in(x), *([] if y is None else [_stand_in(y)]), np.float64)
    inexact = to_dtype(dtype, x.trace.api)
    data = convert(_at_least_2d(x), inexact)
    if not rowvar and x.ndim != 1:
        data = transpose(data, (1, 0))
    if data.shape[0] == 0:
        return lift(np.array([]).reshape(0, 0))
    if y is not None:
        other = convert(_at_least_2d(lift(y)), inexact)
        if not rowvar and other.shape[0] != 1:
            other = transpose(other, (1, 0))
        data = x.trace.emit(Op.CONCATENATE, [data, other], False, axis=0)
    ddof = (0 if bias else 1) if ddof is None else _concrete_int(ddof, "ddof", x)
    count = data.shape[1]
    mean = elementwise(Op.DIV, _sum(data, 1), float(count), dtype=inexact)
    centered = elementwise(Op.SUB, data, reshape(mean, (data.shape[0], 1)))
    product = linalg.matmul(centered, transpose(centered, (1, 0)))
    with np.errstate(divide="ignore"):  # no observations left: NumPy multiplies by inf too
        scale = float(np.true_divide(1, max(count - ddof, 0)))
    c = elementwise(Op.MUL, product, scale, dtype=inexact)
    return reshape(c, tuple(d for d in c.shape if d != 1)) if 1 in c.shape else c


def _at_least_2d(x: Tracer) -> Tracer:
    return reshape(x, (1,) * (2 - x.ndim) + x.shape) if x.ndim < 2 else x


def np_corrcoef(x: Any, y: Any = None, rowvar: bool = True, *, dtype: Any = None) -> Tracer:
    c = np_cov(x, y, rowvar, dtype=dtype)
    if c.ndim == 0:
        return elementwise(Op.DIV, c, c)
    std = elementwise(Op.SQRT, np_diagonal(c))
    c = elementwise(Op.DIV, c, reshape(std, (c.shape[0], 1)))
    c = elementwise(Op.DIV, c, reshape(std, (1, c.shape[0])))
    return elementwise(Op.MIN, elementwise(Op.MAX, c, -1.0, dtype=c.node.dtype), 1.0,
                       dtype=c.node.dtype)  # fmt: skip


FUNCTIONS: dict[Callable[..., Any], Callable[..., Any]] = {
    np.tril: np_tril,
    np.triu: np_triu,
    np.diagonal: np_diagonal,
    np.diag: np_diag,
    np.trace: np_trace,
    np.roll: np_roll,
    np.repeat: np_repeat,
    np.tile: np_tile,
    np.cumsum: np_cumsum,
    np.cumprod: np_cumprod,
    np.linspace: np_linspace,
    np.cov: np_cov,
    np.corrcoef: np_corrcoef,
}
