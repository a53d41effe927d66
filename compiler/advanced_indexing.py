"""`x[...]` with indices that are not static: integer arrays, traced integers, `x[i:i + k]`.

NumPy's rules, followed exactly (numpy.org/doc/stable/user/basics.indexing.html):

- An integer array (traced, NumPy's, a list) is an *advanced* index, and so is a concrete
  boolean array (as its `np.nonzero()` positions). All advanced indices broadcast together to
  one shape B, and once there is one, integers are advanced indices of shape () too. If the
  advanced indices are next to each other, B replaces their axes in place; otherwise B comes
  first. The result is a copy.
- A traced integer scalar (an int argument, `np.argmax(...)`, `idx[3]`) is an integer: without
  array indices `x[i]` is basic indexing and returns a view, as NumPy's `x[np.int64(1)]` does.
- `x[i:i + k]` with `i` traced and `k` a Python int is a slice of static length `k` (a view).

An index becomes a `Plan`: its result's shape, whether NumPy gives a view, and a
`compiler.index_lens.Lens` that reads `x[index]` and writes it back. Static indices go to
`compiler.indexing`; traced boolean masks (the whole index) to `compiler.masking`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compiler import indexing
from compiler.index_lens import Basic, Gather, Lens, Permute, Reshape, Step
from compiler.tracing import (
    ConcretizationError,
    Tracer,
    UnsupportedError,
    View,
    broadcast,
    convert,
    elementwise,
    full,
    lift,
    reshape,
)
from ir.builder import broadcast_shapes
from ir.diagnostics import ShapeError
from ir.dtypes import DType
from ir.graph import Node
from ir.ops import Op

# --- the index, item by item ---------------------------------------------------------------


# eq=False: items hold tracers, whose == is elementwise (and `Ellipsis in items` compares)
@dataclass(frozen=True, eq=False)
class DynInt:
    """A traced integer scalar."""

    value: Tracer


@dataclass(frozen=True, eq=False)
class DynSlice:
    """`x[start:start + length:step]` with `start` traced: `length` positions apart."""

    start: Tracer
    length: int
    step: int

    @property
    def count(self) -> int:
        return len(range(0, self.length, self.step))


@dataclass(frozen=True, eq=False)
class Positions:
    """An advanced index: integer positions, traced or concrete (int64). `extent` is the
    length of the boolean mask axis they came from, which must equal the indexed axis."""

    value: Tracer | np.ndarray
    extent: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)


Item = Any  # int | slice | None | Ellipsis | DynInt | DynSlice | Positions
DYNAMIC = (DynInt, DynSlice, Positions)


def _concrete(t: Tracer) -> np.ndarray | None:
    """The value of a tracer known while tracing (a constant not written since)."""
    if t.node.op is Op.CONSTANT:
        return np.asarray(t.node.attrs["value"].array)
    return None


def parse(x: Tracer, index: Any) -> list[Item]:
    items = index if isinstance(index, tuple) else (index,)
    return [part for item in items for part in _parse_item(x, item)]


def _parse_item(x: Tracer, item: Any) -> list[Item]:
    if isinstance(item, Tracer):
        known = _concrete(item)
        return _parse_array(x, known) if known is not None else _parse_tracer(x, item)
    if isinstance(item, slice):
        return [_parse_slice(x, item)]
    if isinstance(item, list | tuple):  # a sequence inside the index: an array, to NumPy
        if _holds_tracer(item):
            return _parse_tracer(x, _stack(x, item))
        # NumPy reads an empty list as no integer positions
        return _parse_array(x, np.asarray(item) if item else np.zeros(0, np.int64))
    if isinstance(item, np.ndarray):
        return _parse_array(x, item)
    indexing.check_item(x, item)
    return [int(item) if isinstance(item, np.integer) else item]


def _holds_tracer(v: Any) -> bool:
    return isinstance(v, Tracer) or (
        isinstance(v, list | tuple) and any(_holds_tracer(e) for e in v)
    )


def _stack(x: Tracer, values: Sequence[Any]) -> Tracer:
    """`[i, j]` with traced elements, as the integer array NumPy makes of it."""
    parts = [_stack(x, v) if isinstance(v, list | tuple) else lift(v) for v in values]
    parts = [reshape(convert(p, DType.I64), (1, *p.shape)) for p in parts]
    if len({p.shape for p in parts}) != 1:
        raise x.trace.error("an index list whose elements have different shapes")
    return x.trace.emit(Op.CONCATENATE, parts, axis=0)


def _parse_tracer(x: Tracer, t: Tracer) -> list[Item]:
    if t.node.dtype is DType.BOOL:
        if t.ndim == 0:
            indexing.check_item(x, True)  # the message for a boolean scalar
        raise x.trace.error(
            "a traced boolean mask among other indices (or in a function that indexes) selects "
            "a number of elements that depends on the data; use np.where(mask, x, 0), or the "
            "mask alone (x[mask])",
            UnsupportedError,
        )
    if not t.node.dtype.is_int:
        raise x.trace.error("arrays used as indices must be of integer (or boolean) type")
    return [DynInt(t)] if t.ndim == 0 else [Positions(t)]


def _parse_array(x: Tracer, a: np.ndarray) -> list[Item]:
    if a.dtype == np.bool_:
        if a.ndim == 0:
            indexing.check_item(x, True)
        return [Positions(p, n) for p, n in zip(np.nonzero(a), a.shape, strict=True)]
    if a.dtype.kind not in "iu":
        raise x.trace.error("arrays used as indices must be of integer (or boolean) type")
    return [int(a)] if a.ndim == 0 else [Positions(as_int64(x, a))]


def as_int64(x: Tracer, a: np.ndarray) -> np.ndarray:
    """Concrete positions as int64, where a uint64 beyond int64 would wrap to a valid one."""
    if a.dtype == np.uint64 and a.size and a.max() > np.iinfo(np.int64).max:
        raise x.trace.error(f"index {a.max()} is out of bounds")
    return a.astype(np.int64)


def _parse_slice(x: Tracer, s: slice) -> Any:
    bounds = [_bound(v) for v in (s.start, s.stop, s.step)]
    if not any(isinstance(v, Tracer) for v in bounds):
        return slice(*bounds)
    start, stop, step = bounds
    if isinstance(step, Tracer):
        raise _unknown_length(x, "a traced step")
    step = 1 if step is None else int(step)
    if step == 0:
        raise x.trace.error("slice step cannot be zero")
    if step < 0:
        raise x.trace.error(
            "a slice with traced bounds must have a positive step", UnsupportedError
        )
    if not (isinstance(start, Tracer) and isinstance(stop, Tracer)):
        raise _unknown_length(x, "one bound traced")
    if not (start.node.dtype.is_int and stop.node.dtype.is_int) or start.ndim or stop.ndim:
        raise x.trace.error("slice indices must be integer scalars")
    (base, low), (other, high) = _offset(start), _offset(stop)
    if base is not other:
        raise _unknown_length(x, "traced bounds other than i and i + k")
    if high < low:  # NumPy wraps a negative start on its own: the length depends on the value
        raise x.trace.error(
            f"a slice with traced bounds must not end before it starts ({high - low})",
            UnsupportedError,
        )
    return DynSlice(start, high - low, step)


def _bound(v: Any) -> Any:
    if isinstance(v, Tracer) and _concrete(v) is not None:
        return v.__index__()
    return v


def _unknown_length(x: Tracer, what: str) -> Exception:
    return x.trace.error(
        f"a slice with {what} (using as an index or size of a traced value): its length "
        "would depend on the data. Write x[i:i + k] with k a Python int (i an int32 or "
        "int64) for a slice of static length, or make the bound a static argument "
        "(@jit(static_argnames=...)).",
        ConcretizationError,
    )


# --- x[i:i + k]: integer scalars that are another one plus a constant ----------------------


def _offset(t: Tracer) -> tuple[Node, int]:
    """`t` as (base, k) with t == base + k."""
    known = t.offset
    if known is not None and known[0] is t.node:
        return known[1], known[2]
    return t.node, 0


def record_offset(result: Any, scalar: Any, k: Any, sign: int) -> None:
    """After `result = scalar + sign * k` (Python's + or -) with k a Python or NumPy int: keep
    result's relation to scalar's base. Only for i64 and i32 results, where a wrap-around
    would take the positions far out of any array's range (and so raise, not differ)."""
    if not (isinstance(result, Tracer) and isinstance(scalar, Tracer)):
        return
    if isinstance(k, bool | np.bool_) or not isinstance(k, int | np.integer):
        return
    if result.ndim or scalar.ndim or not scalar.node.dtype.is_int:
        return
    if result.node.dtype not in (DType.I64, DType.I32):
        return
    base, off = _offset(scalar)
    result.offset = (result.node, base, off + sign * int(k))


@dataclass(frozen=True)
class Plan:
    lens: Lens
    shape: tuple[int, ...]  # x[index].shape
    view: bool  # basic indexing: NumPy returns a view (a copy for advanced indices)
    scalar: bool  # every axis took an integer: NumPy returns a scalar
    key: Any  # the index, to recognize `x[i] += v` storing back its own view


def is_static(items: Sequence[Item]) -> bool:
    return not any(isinstance(item, DYNAMIC) for item in items)


def plan(x: Tracer, items: list[Item]) -> Plan:
    full_items = _expand(x, items)
    if any(isinstance(item, Positions) for item in full_items):
        return _advanced(x, full_items)
    return _basic(x, items, full_items)


def _expand(x: Tracer, items: list[Item]) -> list[Item]:
    """The index with its Ellipsis (or the missing trailing axes) as full slices."""
    if sum(item is Ellipsis for item in items) > 1:
        raise x.trace.error("an index can only have a single ellipsis ('...')")
    used = sum(1 for item in items if item is not None and item is not Ellipsis)
    if used > x.ndim:
        raise x.trace.error(f"too many indices for an array of rank {x.ndim}")
    rest = [slice(None)] * (x.ndim - used)
    if Ellipsis in items:
        at = items.index(Ellipsis)
        return [*items[:at], *rest, *items[at + 1 :]]
    return [*items, *rest]


def _static_step(x: Tracer, items: list[Item]) -> tuple[list[Step], tuple[int, ...]]:
    """The static part of the index (traced items read whole axes), and its result shape."""
    static = tuple(slice(None) if isinstance(item, DYNAMIC) else item for item in items)
    ix = indexing.normalize(x, static)
    whole = ix.shape == x.shape and ix.count == x.shape and not ix.reversed
    if whole and all(s == 1 for s in ix.step):
        return [], x.shape
    return [Basic(ix)], ix.shape


def _basic(x: Tracer, items: list[Item], full_items: list[Item]) -> Plan:
    """Integers and slices, some traced: a view, as NumPy's basic indexing gives."""
    steps, shape = _static_step(x, full_items)
    # each traced item's axis after the static step (where None adds one, an integer drops one)
    traced: list[tuple[int, int, DynInt | DynSlice]] = []  # with x's own axis, for errors
    axis = dim = 0
    for item in full_items:
        if isinstance(item, DynInt | DynSlice):
            traced.append((axis, dim, item))
        axis += not isinstance(item, int)
        dim += item is not None
    # adjacent traced integers take one gather (x[i, j]: positions of shape (2,)); the steps go
    # right to left, so that each leaves the axes of the ones before it where they were
    groups: list[tuple[int, int, list[DynInt | DynSlice]]] = []
    for axis, dim, item in traced:
        last = groups[-1] if groups else None
        if (
            last
            and isinstance(item, DynInt)
            and isinstance(last[2][-1], DynInt)
            and last[0] + len(last[2]) == axis
        ):
            last[2].append(item)
            continue
        groups.append((axis, dim, [item]))
    for axis, dim, group in reversed(groups):
        step = _traced_step(x, axis, dim, group, shape)
        if step is not None:
            steps.append(step)
            shape = step.shape(shape)
    scalar = len(items) == x.ndim and all(isinstance(i, int | DynInt) for i in items)
    key = tuple(_key(item) for item in items)
    return Plan(Lens(tuple(steps)), shape, True, scalar, key)


def _traced_step(
    x: Tracer, axis: int, dim: int, group: list[DynInt | DynSlice], shape: tuple[int, ...]
) -> Gather | None:
    first = group[0]
    if isinstance(first, DynSlice):
        if shape[axis] == 0:  # every slice of an empty axis is empty: nothing to gather
            return None
        return Gather(axis, _slice_positions(first, shape[axis]), "check")
    lengths = shape[axis : axis + len(group)]
    _check_nonempty(x, range(dim, dim + len(group)), lengths, 1)
    ints = [reshape(convert(i.value, DType.I64), (1,)) for i in group if isinstance(i, DynInt)]
    idx = ints[0] if len(ints) == 1 else x.trace.emit(Op.CONCATENATE, ints, axis=0)
    return Gather(axis, idx, "check")


def _slice_positions(s: DynSlice, n: int) -> Tracer:
    """start, start + step, ... (count of them), as gather positions of shape (count, 1)."""
    trace, count = s.start.trace, s.count
    start = convert(Tracer(trace, s.start.node), DType.I64)
    ramp = trace.emit(Op.IOTA, [], shape=(count,), dtype=DType.I64, dim=0)
    if s.step != 1:
        ramp = elementwise(Op.MUL, ramp, s.step)
    positions = elementwise(Op.ADD, ramp, start)
    # NumPy counts a negative start from the end but not a stop >= 0 (x[-2:1] is empty): make
    # that case out of range, so that "check" raises rather than reading x[-2], x[-1], x[0]
    crossing = elementwise(
        Op.AND, elementwise(Op.LT, start, 0), elementwise(Op.GE, start, -s.length)
    )
    past = full(trace, (count,), n, DType.I64)
    positions = trace.emit(Op.SELECT, [broadcast(crossing, (count,)), past, positions])
    return reshape(positions, (count, 1))


def _key(item: Item) -> Any:
    if isinstance(item, DynInt):
        return ("int", id(item.value.node))
    if isinstance(item, DynSlice):
        return ("slice", id(item.start.node), item.length, item.step)
    if isinstance(item, slice):
        return ("slice", item.start, item.stop, item.step)
    return item


def _advanced(x: Tracer, items: list[Item]) -> Plan:
    # with an array index, integers are advanced indices of shape () too
    items = [
        Positions(np.array(i, np.int64)) if isinstance(i, int)
        else Positions(i.value) if isinstance(i, DynInt)
        else i
        for i in items
    ]  # fmt: skip
    at = [n for n, item in enumerate(items) if isinstance(item, Positions)]
    apart = at != list(range(at[0], at[0] + len(at)))  # a None between them counts, as in NumPy
    kept = [item for item in items if item is not None]  # one per axis of x
    steps, shape = _static_step(x, kept)
    for axis in reversed(range(len(kept))):
        item = kept[axis]
        if isinstance(item, DynSlice) and shape[axis]:
            steps.append(Gather(axis, _slice_positions(item, shape[axis]), "check"))
            shape = steps[-1].shape(shape)
    sliced = shape
    axes = [a for a, item in enumerate(kept) if isinstance(item, Positions)]
    first = axes[0]
    if apart:  # the broadcast axes go first
        steps.append(Permute((*axes, *(a for a in range(len(shape)) if a not in axes))))
        shape, first = steps[-1].shape(shape), 0
    arrays = [kept[a] for a in axes]
    idx, mode = positions(x, arrays, shape[first : first + len(axes)], axes)
    steps.append(Gather(first, idx, mode))
    if len(kept) < len(items):
        steps.append(Reshape(_with_new_axes(items, sliced, idx.shape[:-1], apart)))
    lens = Lens(tuple(steps))
    return Plan(lens, lens.shape(x.shape), False, False, None)


def _with_new_axes(
    items: list[Item], sliced: tuple[int, ...], batch: tuple[int, ...], apart: bool
) -> tuple[int, ...]:
    """The result's shape with a 1 for each None: the other items in order, the broadcast
    shape first (apart) or where the first advanced index was."""
    out, placed = (list(batch), True) if apart else ([], False)
    lengths = iter(sliced)
    for item in items:
        if item is None:
            out.append(1)
            continue
        n = next(lengths)
        if not isinstance(item, Positions):
            out.append(n)
        elif not placed:
            out.extend(batch)
            placed = True
    return tuple(out)


def _check_nonempty(x: Tracer, axes: Sequence[int], lengths: Sequence[int], batch: int) -> None:
    """Every position in an empty axis is out of bounds: NumPy would always raise."""
    for axis, n in zip(axes, lengths, strict=True):
        if n == 0 and batch:
            raise x.trace.error(f"index is out of bounds for axis {axis} with size 0")


def positions(
    x: Tracer, arrays: Sequence[Positions], lengths: Sequence[int], axes: Sequence[int]
) -> tuple[Tracer, str]:
    """The gather indices (B..., k) for k advanced indices of axes of `lengths`, B their
    broadcast shape, and the mode: indices known while tracing are checked now (a located
    error, as NumPy's IndexError) and made non-negative; traced ones are checked when the
    code runs."""
    try:
        batch = broadcast_shapes(*(a.shape for a in arrays))
    except ShapeError:
        shapes = " ".join(str(a.shape) for a in arrays)
        raise x.trace.error(
            f"shape mismatch: indexing arrays could not be broadcast together with shapes {shapes}"
        ) from None
    _check_nonempty(x, axes, lengths, math.prod(batch))
    parts: list[np.ndarray | Tracer] = []
    for axis, a, n in zip(axes, arrays, lengths, strict=True):
        if a.extent is not None and a.extent != n:
            raise x.trace.error(
                f"boolean index did not match indexed array along axis {axis}; size of "
                f"axis is {n} but size of corresponding boolean axis is {a.extent}"
            )
        v = a.value
        if isinstance(v, np.ndarray):
            v = np.broadcast_to(v, batch)
            bad = (v < -n) | (v >= n)
            if bad.any():
                raise x.trace.error(
                    f"index {int(v[bad].flat[0])} is out of bounds for axis {axis} with size {n}"
                )
            v = np.where(v < 0, v + n, v)
        parts.append(v)
    if all(isinstance(p, np.ndarray) for p in parts):  # in range: clipping changes nothing
        return lift(np.stack(parts, axis=-1).astype(np.int64)), "clip"
    columns = [reshape(broadcast(convert(lift(p), DType.I64), batch), (*batch, 1)) for p in parts]
    if len(columns) == 1:
        return columns[0], "check"
    return x.trace.emit(Op.CONCATENATE, columns, axis=len(batch)), "check"


# --- x[index], x[index] = v ------------------------------------------------------------------


def getitem(x: Tracer, index: Any) -> Tracer:
    with x.trace.operation("x[...]"):
        items = parse(x, index)
        if is_static(items):
            return indexing.getitem(x, tuple(items))
        p = plan(x, items)
        value = p.lens.read(Tracer(x.trace, x.node, x.weak))
        if not p.view:  # a copy: a new array
            return Tracer(x.trace, value.node, x.weak, mutable=True)
        if p.scalar or not x.mutable:
            return value
        view = Tracer(x.trace, value.node, x.weak, mutable=True)
        view.view = View(x, "x[...]", p.lens.read, p.lens.write, key=p.key)
        return view


def setitem(x: Tracer, index: Any, value: Any) -> None:
    """`x[index] = value`; with repeated positions the last value stays, as in NumPy (so
    `x[idx] += 1` increments a repeated position once)."""
    with x.trace.operation("x[...] = v"):
        indexing.check_writable(x)
        items = parse(x, index)
        if is_static(items):
            return indexing.setitem(x, tuple(items), value)
        p = plan(x, items)
        if p.view and indexing.stores_its_own_view(x, p.key, value):
            return None
        x.assign(_written(x, p, value))
        return None


def read(x: Tracer, index: Any) -> Tracer:
    """x[index] as a new array (for functions that index: np.take_along_axis)."""
    return plan(x, parse(x, index)).lens.read(x)


def written(x: Tracer, index: Any, value: Any) -> Tracer:
    """x's new value after x[index] = value (np.put_along_axis)."""
    return _written(x, plan(x, parse(x, index)), value)


def _written(x: Tracer, p: Plan, value: Any) -> Tracer:
    v = indexing.fit_value(x, value, p.shape, p.scalar)
    return p.lens.write(Tracer(x.trace, x.node, x.weak), v)
