"""Sources and data movement for every dtype, against index-by-index Python loops.

Each expectation is written as "output element at index i comes from operand element at index
f(i)" (or is the padding value), straight from the op's definition, with no numpy indexing
tricks that the reference rule itself might share.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ir.attrs import Attrs
from ir.builder import FunctionBuilder
from ir.dtypes import DType
from ir.graph import Node
from ir.ops import Op
from ir.types import TensorType
from runtime.interp import run_function, run_op

pytestmark = pytest.mark.filterwarnings("error")

ALL = list(DType)


def sample(t: DType, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Distinct-looking values of any dtype (so a misplaced element shows)."""
    n = math.prod(shape)
    if t is DType.BOOL:
        return np.asarray(np.arange(n) % 3 == 1).reshape(shape)
    base = np.arange(n) * 7 + seed
    if t.is_int:
        return (base % 100 - 50 if t.is_signed else base % 200).astype(t.np).reshape(shape)
    return (base % 97 - 48.5).astype(t.np).reshape(shape)


def fill_value(t: DType) -> np.ndarray:
    return np.array(True if t is DType.BOOL else 99, t.np)


def build(shape: tuple[int, ...], fn: Callable[[tuple[int, ...]], Any]) -> np.ndarray:
    """A new array of `shape` whose element at each index is fn(index)."""
    items = [fn(idx) for idx in itertools.product(*map(range, shape))]
    return np.array(items, dtype=object).reshape(shape)


def check(got: np.ndarray, want: np.ndarray, t: DType) -> None:
    assert got.dtype == t.np
    assert got.shape == want.shape
    assert [got[i] for i in np.ndindex(got.shape)] == [want[i] for i in np.ndindex(want.shape)]


# --- constant and iota --------------------------------------------------------------------


@pytest.mark.parametrize("t", ALL)
@pytest.mark.parametrize("shape", [(), (0,), (1,), (2, 3), (3, 0, 2)])
def test_constant(shape: tuple[int, ...], t: DType) -> None:
    value = sample(t, shape)
    fb = FunctionBuilder("c")
    node = fb.const(value)
    (got,) = run_function(fb.build([node]))
    check(got, build(shape, lambda i: value[i]), t)
    assert not np.shares_memory(got, node.attrs["value"].array)


IOTAS = [((5,), 0), ((2, 3), 0), ((2, 3), 1), ((0, 4), 1), ((3, 0), 0), ((1, 1, 4), 2)]


@pytest.mark.parametrize("t", [t for t in ALL if t is not DType.BOOL])
@pytest.mark.parametrize(("shape", "dim"), IOTAS)
def test_iota(shape: tuple[int, ...], dim: int, t: DType) -> None:
    got = run_op(Op.IOTA, shape=shape, dtype=t, dim=dim)
    check(got, build(shape, lambda idx: idx[dim]), t)


def test_long_iota_wraps_narrow_ints_and_rounds_bf16() -> None:
    i8, u8 = (run_op(Op.IOTA, shape=(300,), dtype=t) for t in ("i8", "u8"))
    assert i8[[127, 128, 255, 256]].tolist() == [127, -128, -1, 0]
    assert u8[[255, 256, 299]].tolist() == [255, 0, 43]
    bf16 = run_op(Op.IOTA, shape=(300,), dtype="bf16").astype(np.float64)
    # bf16 keeps 8 significant bits: past 256 only even numbers exist, ties go to even mantissas
    assert bf16[[255, 256, 257, 258, 259, 299]].tolist() == [255, 256, 256, 258, 260, 300]


# --- broadcast_in_dim ---------------------------------------------------------------------

BROADCASTS = [
    ((), (2, 3), ()),
    ((3,), (2, 3), (1,)),
    ((3,), (3, 4), (0,)),
    ((2, 1), (2, 5), (0, 1)),
    ((1, 3), (4, 5, 3), (1, 2)),
    ((1,), (0,), (0,)),
    ((2, 1), (2, 0, 3), (0, 1)),
    ((2, 3), (2, 3), (0, 1)),
]


@pytest.mark.parametrize("t", ALL)
@pytest.mark.parametrize(("src", "shape", "dims"), BROADCASTS)
def test_broadcast_in_dim(
    src: tuple[int, ...], shape: tuple[int, ...], dims: tuple[int, ...], t: DType
) -> None:
    x = sample(t, src)

    def source(idx: tuple[int, ...]) -> Any:
        return x[tuple(0 if x.shape[i] == 1 else idx[d] for i, d in enumerate(dims))]

    check(run_op(Op.BROADCAST_IN_DIM, x, shape=shape, dims=dims), build(shape, source), t)


@pytest.mark.parametrize("t", [DType.F32, DType.I8])
def test_broadcast_default_dims_are_trailing(t: DType) -> None:
    x = sample(t, (3,))
    check(run_op(Op.BROADCAST_IN_DIM, x, shape=(2, 3)), build((2, 3), lambda i: x[i[1]]), t)


# --- reshape, transpose and reverse -------------------------------------------------------

RESHAPES = [
    ((2, 3), (3, 2)),
    ((6,), (1, 2, 3, 1)),
    ((), (1, 1)),
    ((1, 1), ()),
    ((0, 3), (3, 0)),
    ((2, 3, 4), (4, 6)),
]


def row_major(x: np.ndarray) -> list[Any]:
    return [x[i] for i in itertools.product(*map(range, x.shape))]


@pytest.mark.parametrize("t", ALL)
@pytest.mark.parametrize(("src", "shape"), RESHAPES)
def test_reshape_keeps_row_major_order(
    src: tuple[int, ...], shape: tuple[int, ...], t: DType
) -> None:
    x = sample(t, src)
    flat = row_major(x)
    strides = [math.prod(shape[k + 1 :]) for k in range(len(shape))]
    want = build(shape, lambda idx: flat[sum(i * s for i, s in zip(idx, strides, strict=True))])
    check(run_op(Op.RESHAPE, x, shape=shape), want, t)


def test_reshape_infers_minus_one() -> None:
    x = sample(DType.I32, (2, 3, 2))
    assert run_op(Op.RESHAPE, x, shape=(3, -1)).shape == (3, 4)


TRANSPOSES = [
    ((), ()),
    ((4,), (0,)),
    ((2, 3), (1, 0)),
    ((2, 3, 4), (2, 0, 1)),
    ((2, 0, 3), (2, 1, 0)),
]


@pytest.mark.parametrize("t", ALL)
@pytest.mark.parametrize(("src", "perm"), TRANSPOSES)
def test_transpose(src: tuple[int, ...], perm: tuple[int, ...], t: DType) -> None:
    x = sample(t, src)
    shape = tuple(src[p] for p in perm)

    def source(idx: tuple[int, ...]) -> Any:
        where = [0] * len(src)
        for k, p in enumerate(perm):  # output axis k is operand axis perm[k]
            where[p] = idx[k]
        return x[tuple(where)]

    check(run_op(Op.TRANSPOSE, x, perm=perm), build(shape, source), t)


REVERSES = [
    ((), ()),
    ((5,), (0,)),
    ((4,), ()),
    ((1,), (0,)),
    ((0,), (0,)),
    ((2, 3), (1,)),
    ((3, 1, 5), (0, 2)),
    ((2, 0, 3), (0, 1, 2)),
]


@pytest.mark.parametrize("t", ALL)
@pytest.mark.parametrize(("src", "dims"), REVERSES)
def test_reverse(src: tuple[int, ...], dims: tuple[int, ...], t: DType) -> None:
    x = sample(t, src)

    def source(idx: tuple[int, ...]) -> Any:  # on a reversed axis, index i reads n - 1 - i
        where = [
            n - 1 - i if d in dims else i for d, (i, n) in enumerate(zip(idx, src, strict=True))
        ]
        return x[tuple(where)]

    check(run_op(Op.REVERSE, x, dims=dims), build(src, source), t)


def test_reverse_dims_may_count_from_the_end_in_any_order() -> None:
    x = sample(DType.I32, (2, 3, 4))
    check(run_op(Op.REVERSE, x, dims=(-1, 0)), run_op(Op.REVERSE, x, dims=(0, 2)), DType.I32)


# --- slice and concatenate ----------------------------------------------------------------

SLICES = [
    ((5,), (1,), (4,), (1,)),
    ((5,), (0,), (5,), (2,)),
    ((5,), (2,), (2,), (1,)),  # empty
    ((7,), (1,), (7,), (10,)),  # stride past the end: one element
    ((4, 6), (1, 0), (3, 6), (1, 4)),
    ((3, 4, 5), (0, 1, 2), (3, 3, 5), (2, 1, 3)),
    ((0, 3), (0, 1), (0, 3), (1, 1)),
]


@pytest.mark.parametrize("t", ALL)
@pytest.mark.parametrize(("src", "start", "limit", "stride"), SLICES)
def test_slice(
    src: tuple[int, ...],
    start: tuple[int, ...],
    limit: tuple[int, ...],
    stride: tuple[int, ...],
    t: DType,
) -> None:
    x = sample(t, src)
    triples = list(zip(start, limit, stride, strict=True))
    shape = tuple(len(range(a, b, s)) for a, b, s in triples)

    def source(idx: tuple[int, ...]) -> Any:
        return x[tuple(a + i * s for (a, _, s), i in zip(triples, idx, strict=True))]

    check(run_op(Op.SLICE, x, start=start, limit=limit, stride=stride), build(shape, source), t)


def test_slice_stride_defaults_to_one() -> None:
    x = sample(DType.I16, (5,))
    check(
        run_op(Op.SLICE, x, start=(1,), limit=(4,)), build((3,), lambda i: x[i[0] + 1]), DType.I16
    )


CONCATS = [
    ([(3,)], 0),
    ([(2,), (0,), (3,)], 0),
    ([(2, 3), (1, 3)], 0),
    ([(2, 1), (2, 0), (2, 3)], 1),
    ([(2, 2, 1), (2, 2, 2)], 2),
]


@pytest.mark.parametrize("t", ALL)
@pytest.mark.parametrize(("shapes", "axis"), CONCATS)
def test_concatenate(shapes: list[tuple[int, ...]], axis: int, t: DType) -> None:
    xs = [sample(t, s, seed=k) for k, s in enumerate(shapes)]
    starts = list(itertools.accumulate((s[axis] for s in shapes), initial=0))
    shape = list(shapes[0])
    shape[axis] = starts[-1]

    def source(idx: tuple[int, ...]) -> Any:
        k = max(j for j in range(len(xs)) if starts[j] <= idx[axis] < starts[j + 1])
        return xs[k][(*idx[:axis], idx[axis] - starts[k], *idx[axis + 1 :])]

    check(run_op(Op.CONCATENATE, *xs, axis=axis), build(tuple(shape), source), t)


def test_concatenate_negative_axis() -> None:
    a, b = sample(DType.F32, (2, 1)), sample(DType.F32, (2, 2), seed=5)
    assert run_op(Op.CONCATENATE, a, b, axis=-1).shape == (2, 3)


# --- pad ----------------------------------------------------------------------------------


Widths = Sequence[int]


def padded(x: np.ndarray, value: Any, low: Widths, high: Widths, interior: Widths) -> np.ndarray:
    """XLA pad, by definition: operand element i lands at low + i * (interior + 1), if inside."""
    shape = tuple(
        lo + hi + n + max(n - 1, 0) * it
        for n, lo, hi, it in zip(x.shape, low, high, interior, strict=True)
    )
    out = build(shape, lambda idx: value)
    for idx in itertools.product(*map(range, x.shape)):
        pos = tuple(lo + i * (it + 1) for i, lo, it in zip(idx, low, interior, strict=True))
        if all(0 <= p < n for p, n in zip(pos, shape, strict=True)):
            out[pos] = x[idx]
    return out


PADS = [
    ((3,), (1,), (2,), (0,)),
    ((3,), (0,), (0,), (2,)),
    ((3,), (1,), (1,), (1,)),
    ((0,), (2,), (1,), (3,)),
    ((1,), (0,), (0,), (5,)),
    ((), (), (), ()),
    ((2, 3), (1, 0), (0, 2), (1, 1)),
    ((2, 0, 2), (0, 1, 1), (1, 1, 0), (0, 0, 2)),
]


@pytest.mark.parametrize("t", ALL)
@pytest.mark.parametrize(("src", "low", "high", "interior"), PADS)
def test_pad(
    src: tuple[int, ...],
    low: tuple[int, ...],
    high: tuple[int, ...],
    interior: tuple[int, ...],
    t: DType,
) -> None:
    x, value = sample(t, src), fill_value(t)
    got = run_op(Op.PAD, x, value, low=low, high=high, interior=interior)
    check(got, padded(x, value[()], low, high, interior), t)


def run_pad_node(
    x: np.ndarray, value: np.ndarray, low: Widths, high: Widths, interior: Widths
) -> tuple[np.ndarray, np.ndarray]:
    """Pad through a hand-built node. ir.typerules currently rejects negative low/high, but
    the decided semantics are XLA's, where they crop, and the reference implements them."""
    t = TensorType(x.shape, DType.from_numpy(x.dtype))
    fb = FunctionBuilder("pad")
    operand, pad_value = fb.param("x", t), fb.param("v", TensorType((), t.dtype))
    want = padded(x, value[()], low, high, interior)
    attrs = Attrs({"low": tuple(low), "high": tuple(high), "interior": tuple(interior)})
    node = fb.add(Node(Op.PAD, t.with_shape(want.shape), (operand, pad_value), attrs))
    return run_function(fb.build([node]), [x, value])[0], want


NEGATIVE_PADS = [
    ((5,), (-2,), (1,), (0,)),
    ((5,), (1,), (-3,), (0,)),
    ((3,), (-1,), (-1,), (2,)),  # crops into the interior padding
    ((4,), (-4,), (0,), (0,)),  # crops everything
    ((2, 4), (-1, 2), (1, -2), (0, 1)),
    ((3,), (-6,), (2,), (1,)),  # crops past the whole operand into the high padding
]


@pytest.mark.parametrize("t", ALL)
@pytest.mark.parametrize(("src", "low", "high", "interior"), NEGATIVE_PADS)
def test_negative_pad_crops(
    src: tuple[int, ...],
    low: tuple[int, ...],
    high: tuple[int, ...],
    interior: tuple[int, ...],
    t: DType,
) -> None:
    got, want = run_pad_node(sample(t, src), fill_value(t), low, high, interior)
    check(got, want, t)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.integers(-4, 3), st.integers(-4, 3), st.integers(0, 2)),
        min_size=0,
        max_size=3,
    )
)
def test_pad_matches_definition_for_random_configurations(
    axes: list[tuple[int, int, int, int]],
) -> None:
    shape = tuple(n for n, *_ in axes)
    size = [lo + hi + n + max(n - 1, 0) * it for n, lo, hi, it in axes]
    assume(all(d >= 0 for d in size))  # otherwise no such pad: a dimension would be negative
    low, high, interior = ([a[k] for a in axes] for k in (1, 2, 3))
    got, want = run_pad_node(sample(DType.I32, shape), fill_value(DType.I32), low, high, interior)
    check(got, want, DType.I32)
