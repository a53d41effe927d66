"""Basic indexing of traced arrays, reading (`x[1:, ::2]`) and writing (`x[1:, ::2] = v`).

An index here is static: integers, slices, None and one Ellipsis. NumPy returns a view for such
an index (a scalar copy when every axis gets an integer), so reading gives a tracer that stays
a function of the array it was taken from (`tracing.View`): later writes to either one show in
the other, as in NumPy. Writing is functional: the array's new value is
`select(mask, pad(v), x)`, with the mask and the spread-out `v` built by the same `pad` (low =
the slice's start, interior = its step - 1), so the IR keeps value semantics.

`x[...]` goes to `compiler.advanced_indexing` (a traced boolean mask to `compiler.masking`),
which sends static indices here and builds the others on these pieces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from compiler.tracing import Tracer, UnsupportedError, View, broadcast, lift, reshape
from ir.builder import broadcast_shapes
from ir.diagnostics import ShapeError
from ir.dtypes import DType
from ir.ops import Op


@dataclass(frozen=True)
class BasicIndex:
    """A static index normalized against a shape: per axis, the first position, the number
    of positions and the step; then the result's shape (integers drop an axis, None adds
    one)."""

    start: tuple[int, ...]
    count: tuple[int, ...]
    step: tuple[int, ...]
    shape: tuple[int, ...]
    scalar: bool  # an integer for every axis: NumPy returns a scalar, a copy
    # axes taken with a negative step: the same positions in ascending order, then reversed
    reversed: tuple[int, ...] = ()

    @property
    def limit(self) -> tuple[int, ...]:
        return tuple(
            s + (c - 1) * t + 1 if c else s
            for s, c, t in zip(self.start, self.count, self.step, strict=True)
        )


def check_item(x: Tracer, item: Any) -> None:
    """An index item that is not an array (those are compiler.advanced_indexing's)."""
    if isinstance(item, bool | np.bool_):
        raise x.trace.error(
            "indexing with a boolean scalar (a rank-0 mask) is not supported; use None to "
            "add an axis",
            UnsupportedError,
        )
    if not (
        item is None or item is Ellipsis or isinstance(item, slice | int | np.integer)
    ):  # a float would otherwise truncate silently
        raise x.trace.error(
            "only integers, slices (`:`), ellipsis (`...`), None (`np.newaxis`) and integer "
            f"or boolean arrays are valid indices, got {type(item).__name__}"
        )


def normalize(x: Tracer, index: Any) -> BasicIndex:
    items = index if isinstance(index, tuple) else (index,)
    for item in items:
        check_item(x, item)
    if sum(item is Ellipsis for item in items) > 1:
        raise x.trace.error("an index can only have a single ellipsis ('...')")
    used = sum(1 for item in items if item is not None and item is not Ellipsis)
    if used > x.ndim:
        raise x.trace.error(f"too many indices for an array of rank {x.ndim}")
    scalar = used == x.ndim and all(isinstance(i, int | np.integer) for i in items)
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = items[:at] + (slice(None),) * (x.ndim - used) + items[at + 1 :]
    else:
        items = items + (slice(None),) * (x.ndim - used)
    start, count, step, shape, reversed_ = [], [], [], [], []
    dim = 0
    for item in items:
        if item is None:
            shape.append(1)
            continue
        n = x.shape[dim]
        if isinstance(item, slice):
            lo, hi, stride = item.indices(n)
            c = len(range(lo, hi, stride))
            if stride < 0 and c:  # the same positions, ascending from the last one taken
                lo, stride = lo + (c - 1) * stride, -stride
                reversed_.append(dim)
            start.append(lo if c else 0)
            count.append(c)
            step.append(abs(stride))
            shape.append(c)
        else:
            i = int(item)
            if not -n <= i < n:
                raise x.trace.error(f"index {i} is out of bounds for axis {dim} with size {n}")
            start.append(i % n)
            count.append(1)
            step.append(1)
        dim += 1
    return BasicIndex(
        tuple(start), tuple(count), tuple(step), tuple(shape), scalar, tuple(reversed_)
    )


def read(x: Tracer, ix: BasicIndex) -> Tracer:
    sliced = x
    if ix.start != (0,) * x.ndim or ix.count != x.shape or any(s != 1 for s in ix.step):
        sliced = x.trace.emit(Op.SLICE, [x], x.weak, start=ix.start, limit=ix.limit, stride=ix.step)
    if ix.reversed:
        sliced = x.trace.emit(Op.REVERSE, [sliced], x.weak, dims=ix.reversed)
    return reshape(sliced, ix.shape)


def update(x: Tracer, ix: BasicIndex, value: Tracer) -> Tracer:
    """`x` with the positions `ix` selects replaced by `value` (x's dtype, ix's shape)."""
    if 0 in ix.count:
        return x
    value = reshape(value, ix.count)
    if ix.reversed:  # back into ascending order, as the positions are
        value = x.trace.emit(Op.REVERSE, [value], value.weak, dims=ix.reversed)
    if ix.count == x.shape:  # every position: no select needed
        return value
    trace = x.trace
    pads: dict[str, Any] = {
        "low": ix.start,
        "high": tuple(n - hi for n, hi in zip(x.shape, ix.limit, strict=True)),
        "interior": tuple(s - 1 for s in ix.step),
    }
    zero = trace.constant(np.zeros((), x.dtype), x.node.dtype)
    spread = trace.emit(Op.PAD, [value, zero], **pads)
    inside = broadcast(trace.constant(np.True_, DType.BOOL), ix.count)
    mask = trace.emit(Op.PAD, [inside, trace.constant(np.False_, DType.BOOL)], **pads)
    return trace.emit(Op.SELECT, [mask, spread, x])


def getitem(x: Tracer, index: Any) -> Tracer:
    with x.trace.operation("x[...]"):
        ix = normalize(x, index)
        value = read(x, ix)
        if ix.scalar or not x.mutable:
            return value if value is not x else Tracer(x.trace, x.node, x.weak)
        view = Tracer(x.trace, value.node, x.weak, mutable=True)
        view.view = View(x, "x[...]", lambda base: read(base, ix),
                         lambda base, new: update(base, ix, new), key=ix)  # fmt: skip
        return view


def check_writable(x: Tracer) -> None:
    if not x.mutable:
        raise x.trace.error(
            "a NumPy scalar does not support item assignment (the value is a scalar "
            "because it has rank 0: a reduction or an operation on scalars)",
            UnsupportedError,
        )


def stores_its_own_view(x: Tracer, key: Any, value: Any) -> bool:
    """Whether `x[index] = value` stores back the view `x[index]` just written through, as
    `x[i] += v` does: the write already happened."""
    view = value.view if isinstance(value, Tracer) else None
    return view is not None and view.base is x and view.key == key and view.synced == x.version


def fit_value(x: Tracer, value: Any, shape: tuple[int, ...], scalar: bool) -> Tracer:
    """`value` as NumPy stores it into x[index] of `shape`: cast to x's dtype and broadcast
    to the indexed shape (leading axes of size 1 may be dropped)."""
    v = lift(value)
    if scalar and v.ndim:  # NumPy >= 2.4 no longer takes a size-1 array as an element
        raise x.trace.error(
            f"setting an array element with a sequence (a value of shape {v.shape} "
            "stored into one element)"
        )
    fitted = v.shape
    while len(fitted) > len(shape) and fitted[0] == 1:
        fitted = fitted[1:]
    try:
        fits = broadcast_shapes(fitted, shape) == shape
    except ShapeError:
        fits = False
    if not fits:
        raise x.trace.error(
            f"could not broadcast input array from shape {v.shape} into shape {shape}"
        )
    return broadcast(reshape(lift(v, x.node.dtype), fitted), shape)


def setitem(x: Tracer, index: Any, value: Any) -> None:
    """`x[index] = value`: NumPy casts the value to x's dtype and broadcasts it to the
    indexed shape."""
    with x.trace.operation("x[...] = v"):
        check_writable(x)
        ix = normalize(x, index)
        if stores_its_own_view(x, ix, value):
            return
        v = fit_value(x, value, ix.shape, ix.scalar)
        x.assign(update(Tracer(x.trace, x.node, x.weak), ix, v))
