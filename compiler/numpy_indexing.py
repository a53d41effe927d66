"""NumPy's indexed reads and writes as functions: `np.take`, `np.take_along_axis`, `np.put`,
`np.put_along_axis` and `ufunc.at`, built on `compiler.advanced_indexing`'s gathers and
scatters.

`mode='raise'` is gather's "check" (a traced index out of range raises IndexOutOfRange when the
code runs; a concrete one is a located error now), 'clip' and 'wrap' are gather's own. The
functions that write (`np.put`, `np.put_along_axis`, `ufunc.at`) write a traced array in
place, as NumPy does; `FUNCTIONS` and `AT` join compiler.numpy_api's dispatch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from compiler import advanced_indexing, indexing
from compiler.advanced_indexing import Positions
from compiler.tracing import (
    Tracer,
    UnsupportedError,
    concrete_array,
    convert,
    lift,
    normalize_axes,
    reshape,
    result_dtype,
    trace_of,
)
from ir.dtypes import DType
from ir.ops import Op

_MODES = {"raise": "check", "clip": "clip", "wrap": "wrap"}


def _mode(x: Tracer, mode: Any) -> str:
    if mode not in _MODES:
        raise x.trace.error(f"clipmode must be one of 'clip', 'raise', or 'wrap' (got {mode!r})")
    return _MODES[mode]


def _writable(a: Any, *others: Any) -> Tracer:
    if not isinstance(a, Tracer) or not a.mutable:
        raise trace_of(a, *others).error(
            "the array written must be a traced one (an argument, an array computed from one, "
            "or one made with np.zeros/np.empty); this one is NumPy's",
            UnsupportedError,
        )
    return a


def _index_value(x: Tracer, indices: Any) -> Tracer | np.ndarray:
    """Integer positions, concrete (int64) where known while tracing."""
    if isinstance(indices, Tracer) and indices.node.op is not Op.CONSTANT:
        if not (indices.node.dtype.is_int or indices.node.dtype is DType.BOOL):
            raise x.trace.error("`indices` must be an integer array")
        return indices
    known = np.asarray(indices.node.attrs["value"].array if isinstance(indices, Tracer) else
                       concrete_array(indices))  # fmt: skip
    if known.size == 0:  # np.take(a, []): no positions, whatever the list's dtype
        known = known.astype(np.int64)
    if known.dtype.kind not in "biu":  # NumPy casts booleans to positions 0 and 1
        raise x.trace.error("`indices` must be an integer array")
    return advanced_indexing.as_int64(x, known)


def _take_positions(
    x: Tracer, indices: Tracer | np.ndarray, axis: int, mode: str
) -> tuple[Tracer, str]:
    """Gather indices of shape indices.shape + (1,) into x's `axis`, and their mode."""
    n = x.shape[axis]
    if math.prod(indices.shape) and n == 0:
        raise x.trace.error("cannot do a non-empty take from an empty axes.")
    if isinstance(indices, np.ndarray) and mode != "check":  # clip or wrap them now
        v = np.clip(indices, 0, n - 1) if mode == "clip" else np.mod(indices, max(n, 1))
        return lift(v[..., None].astype(np.int64)), "clip"
    if mode == "check":
        return advanced_indexing.positions(x, [Positions(indices)], [n], [axis])
    assert isinstance(indices, Tracer)
    return reshape(convert(indices, DType.I64), (*indices.shape, 1)), mode


def np_take(a: Any, indices: Any, axis: Any = None, out: Any = None, mode: str = "raise") -> Tracer:
    x = lift(a)
    if out is not None:
        raise x.trace.error("out= is not supported under @jit", UnsupportedError)
    gather_mode = _mode(x, mode)
    if axis is None:
        x, ax = reshape(x, (x.size,)), 0
    else:
        (ax,) = normalize_axes(axis, x.ndim, x.trace.api)
    idx, gather_mode = _take_positions(x, _index_value(x, indices), ax, gather_mode)
    return x.trace.emit(Op.GATHER, [x, idx], x.weak, axis=ax, mode=gather_mode)


def np_put(a: Any, ind: Any, v: Any, mode: str = "raise") -> None:
    """`a.flat[ind] = v`, with `v` repeated as often as needed (NumPy's np.put)."""
    x = _writable(a, ind, v)
    gather_mode = _mode(x, mode)
    flat = reshape(Tracer(x.trace, x.node, x.weak), (x.size,))
    where = _index_value(x, ind)
    count = math.prod(where.shape)
    if count and x.size == 0:
        raise x.trace.error("cannot replace elements of an empty array")
    values = lift(v, x.node.dtype)
    values = reshape(values, (values.size,))
    if values.size == 0 or count == 0:
        return  # NumPy writes nothing without values
    if values.size < count:
        repeats = -(-count // values.size)
        values = x.trace.emit(Op.CONCATENATE, [values] * repeats, values.weak, axis=0)
    if values.size > count:
        values = x.trace.emit(
            Op.SLICE, [values], values.weak, start=(0,), limit=(count,), stride=(1,)
        )
    flat_where = where.reshape(-1) if isinstance(where, np.ndarray) else reshape(where, (count,))
    idx, gather_mode = _take_positions(flat, flat_where, 0, gather_mode)
    new = x.trace.emit(Op.SCATTER, [flat, idx, values], axis=0, mode=gather_mode, kind="set")
    x.assign(reshape(new, x.shape))


def _along_axis(x: Tracer, indices: Any, axis: Any) -> tuple[Tracer, tuple[Any, ...]]:
    """NumPy's fancy index for take/put_along_axis: `indices` at `axis`, each other axis
    indexed by its own positions (np.arange, broadcast against `indices`)."""
    ind = _index_value(x, indices)
    if isinstance(ind, Tracer) and ind.node.dtype is DType.BOOL:
        raise x.trace.error("`indices` must be an integer array")
    if axis is None:
        if len(ind.shape) != 1:
            raise x.trace.error("when axis=None, `indices` must have a single dimension.")
        x, ax = reshape(x, (x.size,)), 0
    else:
        (ax,) = normalize_axes(axis, x.ndim, x.trace.api)
    if len(ind.shape) != x.ndim:
        raise x.trace.error("`indices` and `arr` must have the same number of dimensions")
    ones = (1,) * x.ndim
    fancy = tuple(
        ind if d == ax else np.arange(n).reshape((*ones[:d], n, *ones[d + 1 :]))
        for d, n in enumerate(x.shape)
    )
    return x, fancy


def np_take_along_axis(arr: Any, indices: Any, axis: Any = -1) -> Tracer:
    x, fancy = _along_axis(lift(arr), indices, axis)
    return advanced_indexing.read(x, fancy)


def np_put_along_axis(arr: Any, indices: Any, values: Any, axis: Any) -> None:
    x = _writable(arr, indices, values)
    if axis is None:  # NumPy writes arr.flat: the array itself, through a flat view
        flat = Tracer(x.trace, reshape(x, (x.size,)).node, x.weak)
        _, fancy = _along_axis(flat, indices, 0)
        new = advanced_indexing.written(flat, fancy, values)
        x.assign(reshape(new, x.shape))
        return
    _, fancy = _along_axis(x, indices, axis)
    x.assign(advanced_indexing.written(x, fancy, values))


# --- ufunc.at ---------------------------------------------------------------------------------

# the scatter that combines like each ufunc; subtract adds the negated values
AT: dict[np.ufunc, str] = {
    np.add: "add",
    np.subtract: "add",
    np.multiply: "mul",
    np.minimum: "min",
    np.maximum: "max",
}
_ON_BOOL = {"add": "max", "mul": "min"}  # NumPy's add of booleans is `or`, multiply `and`
_COMBINE = {"add": Op.ADD, "mul": Op.MUL, "min": Op.MIN, "max": Op.MAX}
_COMBINE_BOOL = {"min": Op.AND, "max": Op.OR}


def ufunc_at(ufunc: np.ufunc) -> Callable[..., None]:
    """`ufunc.at(a, indices, b)`: a[indices] = ufunc(a[indices], b) element by element, each
    repeated position combined again (np.add.at counts repeats, where a[idx] += b does not)."""

    def run(a: Any, indices: Any, b: Any = None) -> None:
        x = _writable(a, indices, b)
        if b is None:
            raise x.trace.error("second operand needed for ufunc")
        kind = _kind(ufunc, x, b)
        items = advanced_indexing.parse(x, indices)
        plan = advanced_indexing.plan(x, items)
        v = indexing.fit_value(x, b, plan.shape, False)
        if ufunc is np.subtract:
            v = x.trace.emit(Op.NEG, [v])
        base = Tracer(x.trace, x.node, x.weak)
        if plan.lens.combines is not None:
            x.assign(plan.lens.write(base, v, kind))
            return
        # no gather, so no repeated positions: a plain read, combine and write
        op = _COMBINE_BOOL[kind] if x.node.dtype is DType.BOOL else _COMBINE[kind]
        x.assign(plan.lens.write(base, x.trace.emit(op, [plan.lens.read(base), v])))

    return run


def _kind(ufunc: np.ufunc, x: Tracer, b: Any) -> str:
    """The scatter kind, when scattering in x's dtype gives NumPy's result: NumPy combines in
    the loop's dtype (x's, unless b's is wider) and casts each result to x's."""
    loop = result_dtype(x, b)
    own = x.node.dtype
    kind = AT[ufunc]
    if own is DType.BOOL:
        if ufunc is np.subtract:
            raise x.trace.error("numpy boolean subtract, the `-` operator, is not supported")
        kind = _ON_BOOL.get(kind, kind)
    if loop is own or _exact_in(own, loop, kind, b):
        return kind
    raise x.trace.error(
        f"values of type {loop.np} into an array of {own.np}: NumPy computes each result in "
        f"{loop.np} and rounds it to {own.np}; cast the values to {own.np} first",
        UnsupportedError,
    )


def _exact_in(own: DType, loop: DType, kind: str, b: Any) -> bool:
    """Whether combining in `own` equals combining in the wider `loop` and casting: integer
    sums and products wrap alike; otherwise the values must be concrete and exact in `own`
    (a float loop of more than twice the precision then rounds as `own` would)."""
    if own.is_int and loop.is_int and kind in ("add", "mul"):
        return True
    if isinstance(b, Tracer):
        if b.node.op is not Op.CONSTANT:
            return False
        b = b.node.attrs["value"].array
    if not (own.is_int and loop.is_int) and not (own.is_float and loop.is_float):
        return False
    value = np.asarray(b)
    with np.errstate(all="ignore"):
        back = value.astype(own.np).astype(loop.np)
    return bool(np.array_equal(back, value.astype(loop.np), equal_nan=own.is_float))


FUNCTIONS: dict[Callable[..., Any], Callable[..., Any]] = {
    np.take: np_take,
    np.take_along_axis: np_take_along_axis,
    np.put: np_put,
    np.put_along_axis: np_put_along_axis,
}
