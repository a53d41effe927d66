"""np.sort, np.argsort and np.median on tracers, as the sort and argsort ops.

Every `kind` (and `stable=`) gives the stable order, NumPy's kind="stable": equal values keep
their order and NaNs sort last. NumPy's default kind ("quicksort", an introsort) returns the
same sorted values (except that it may order -0.0 and 0.0 differently), but argsort's positions
of equal values can differ from it: compare against `np.argsort(x, kind="stable")`.
`ndarray.sort` (in place) and `ndarray.argsort` are installed by compiler.tracer_methods.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from compiler.tracing import (
    Tracer,
    UnsupportedError,
    convert,
    elementwise,
    full,
    lift,
    normalize_axes,
    reshape,
    to_dtype,
    transpose,
    write_into,
)
from ir.dtypes import DType
from ir.ops import Op

KINDS = (None, "quicksort", "mergesort", "heapsort", "stable")


def _sortable(a: Any, axis: Any, kind: Any, order: Any, stable: Any) -> tuple[Tracer, int]:
    """The operand and the axis to sort along (`axis=None`: the flattened array, axis 0)."""
    x = lift(a)
    trace = x.trace
    if order is not None:
        raise trace.error(
            "order= (fields of a structured array) is not supported", UnsupportedError
        )
    if kind not in KINDS:
        raise trace.error(f"sort kind must be one of 'quick', 'heap', or 'stable' (got {kind!r})")
    if kind is not None and stable is not None:
        raise trace.error(
            "`kind` and `stable` parameters can't be provided at the same time. Use only one of "
            "them."
        )
    if axis is None:
        return reshape(x, (x.size,)), 0
    if isinstance(axis, bool | np.bool_) or not isinstance(axis, int | np.integer | Tracer):
        raise trace.error(f"axis must be an integer, got {axis!r}")
    (ax,) = normalize_axes(axis, x.ndim, trace.api)
    if x.ndim == 0:  # normalize_axes takes 0 for any axis of a scalar; NumPy refuses
        raise trace.error(f"axis {int(axis)} is out of bounds for array of dimension 0")
    return x, ax


def np_sort(
    a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *, stable: Any = None
) -> Tracer:
    x, ax = _sortable(a, axis, kind, order, stable)
    return x.trace.emit(Op.SORT, [x], x.weak, axis=ax)


def np_argsort(
    a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *, stable: Any = None
) -> Tracer:
    x, ax = _sortable(a, axis, kind, order, stable)
    return x.trace.emit(Op.ARGSORT, [x], axis=ax)


def sort_in_place(
    a: Tracer, axis: Any = -1, kind: Any = None, order: Any = None, *, stable: Any = None
) -> None:
    """`x.sort()`: x's values replaced by np.sort(x, axis) (views of x see it, as in NumPy)."""
    if axis is None:  # ndarray.sort has no flattened form
        raise a.trace.error("axis=None is not supported by ndarray.sort (NumPy: use np.sort)")
    write_into(a, np_sort(a, axis, kind, order, stable=stable), "x.sort")


def _median_dtypes(x: Tracer) -> tuple[DType, DType]:
    """(what the middle values are averaged in, the result type), as NumPy's median/mean."""
    if x.node.dtype in (DType.F16, DType.BF16):
        return DType.F32, x.node.dtype
    if x.node.dtype.is_float:
        return x.node.dtype, x.node.dtype
    return DType.F64, to_dtype(np.median(np.zeros(1, x.dtype)).dtype, x.trace.api)


def np_median(
    a: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False, keepdims: bool = False
) -> Tracer:
    """The middle of the sorted values along `axis` (an int, a sequence, or None: all), the
    mean of the two middle ones for an even count; NaN where a NaN is among the values, as
    NumPy's median (which sorts NaN last and checks the last value)."""
    x = lift(a)
    trace = x.trace
    if out is not None:
        raise trace.error("out= is not supported under @jit", UnsupportedError)
    axes = normalize_axes(axis, x.ndim, trace.api)
    compute, result = _median_dtypes(x)
    kept = tuple(i for i in range(x.ndim) if i not in axes)
    count = math.prod(x.shape[i] for i in axes)
    shape = tuple(x.shape[i] for i in kept)
    if count == 0:  # NumPy: nan, with "Mean of empty slice"
        m = full(trace, shape, np.nan, result)
    else:
        rows = reshape(transpose(x, kept + axes), (*shape, count))
        s = trace.emit(Op.SORT, [rows], axis=len(shape))
        mid = _middle(s, count // 2)
        if count % 2 == 0:
            low = convert(_middle(s, count // 2 - 1), compute)
            mid = elementwise(Op.DIV, elementwise(Op.ADD, low, convert(mid, compute)), 2.0)
        m = convert(convert(mid, compute), result)
        if x.node.dtype.is_float:  # the NaNs are last
            last = _middle(s, count - 1)
            m = trace.emit(Op.SELECT, [elementwise(Op.NE, last, last), convert(last, result), m])
    if keepdims:
        m = reshape(m, tuple(1 if i in axes else n for i, n in enumerate(x.shape)))
    return m


def _middle(s: Tracer, k: int) -> Tracer:
    """s[..., k]: the k-th value of each sorted row."""
    start, limit = (*(0,) * (s.ndim - 1), k), (*s.shape[:-1], k + 1)
    return reshape(s.trace.emit(Op.SLICE, [s], start=start, limit=limit), s.shape[:-1])


FUNCTIONS: dict[Callable[..., Any], Callable[..., Any]] = {
    np.sort: np_sort,
    np.argsort: np_argsort,
    np.median: np_median,
}
