"""Reductions, contractions, pools and composites against naive Python loops.

Integer expectations are exact Python sums wrapped into the result type; float expectations are
f64 sums compared at the tolerance of the accumulator and result types. The convolution oracle
is the textbook seven nested loops.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from ir.dtypes import DType
from ir.ops import Op
from runtime.interp import run_op

pytestmark = pytest.mark.filterwarnings("error")

FLOATS = [DType.F64, DType.F32, DType.F16, DType.BF16]
INTS = [DType.I64, DType.I32, DType.I16, DType.I8, DType.U8]
NUMERIC = FLOATS + INTS
RTOL = {DType.F64: 1e-12, DType.F32: 1e-5, DType.F16: 2e-3, DType.BF16: 1.6e-2}
Pads = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))


def wrap(v: int, t: DType) -> int:
    bits = 8 * t.itemsize
    v %= 1 << bits
    return v - (1 << bits) if t.is_signed and v >= 1 << (bits - 1) else v


def sample(t: DType, shape: Sequence[int], seed: int = 0, spread: int = 4) -> np.ndarray:
    """Small values: floats on a 1/4 grid (exact in every float type), ints in a narrow range."""
    rng = np.random.default_rng(seed)
    if t is DType.BOOL:
        return rng.integers(0, 2, shape).astype(bool)
    lo = 0 if t is DType.U8 else -spread
    ints = rng.integers(lo, spread + 1, shape)
    return (ints / 4).astype(t.np) if t.is_float else ints.astype(t.np)


def each(fn: Callable[[Any], Any], x: np.ndarray) -> np.ndarray:
    """fn applied to every element of an object array (of numbers, or of lists of numbers)."""
    out = np.empty(x.shape, dtype=object)
    for i in np.ndindex(x.shape):
        out[i] = fn(x[i])
    return out


def py(x: np.ndarray) -> np.ndarray:
    """x as an object array of exact Python numbers."""
    out = np.empty(x.shape, dtype=object)
    kind = bool if x.dtype == np.bool_ else float if DType.from_numpy(x.dtype).is_float else int
    for i in np.ndindex(x.shape):
        out[i] = kind(x[i])
    return out


def check(got: np.ndarray, want: np.ndarray, t: DType) -> None:
    """want: object array of Python numbers (or NaN); floats compare at the type's tolerance."""
    assert got.dtype == t.np
    assert got.shape == want.shape
    if t.is_float:
        np.testing.assert_allclose(
            got.astype(np.float64),
            want.astype(np.float64),
            rtol=RTOL[t],
            atol=1e-6,
            equal_nan=True,
        )
    else:
        assert [got[i] for i in np.ndindex(got.shape)] == [want[i] for i in np.ndindex(got.shape)]


# --- reduce -------------------------------------------------------------------------------


def empty_identity(kind: str, t: DType) -> Any:
    if t is DType.BOOL:
        return kind == "min"
    if t.is_float:
        return {"sum": 0.0, "prod": 1.0, "max": -math.inf, "min": math.inf}[kind]
    info = np.iinfo(t.np.name)
    return {"sum": 0, "prod": 1, "max": info.min, "min": info.max}[kind]


def nan_aware(pick: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def f(a: Any, b: Any) -> Any:
        if any(isinstance(v, float) and math.isnan(v) for v in (a, b)):
            return math.nan
        return pick(a, b)

    return f


COMBINE = {"sum": operator.add, "prod": operator.mul, "max": nan_aware(max), "min": nan_aware(min)}


def groups(x: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """For each output index of a reduction over `axes`, the list of values reduced there."""
    kept = [d for d in range(x.ndim) if d not in axes]
    out = np.empty(tuple(x.shape[d] for d in kept), dtype=object)
    for idx in np.ndindex(out.shape):
        out[idx] = []
    for i in np.ndindex(x.shape):
        out[tuple(i[d] for d in kept)].append(x[i])
    return out


def reduced(x: np.ndarray, kind: str, axes: Sequence[int], t: DType) -> np.ndarray:
    def fold(vs: list[Any]) -> Any:
        v = functools.reduce(COMBINE[kind], vs, empty_identity(kind, t))
        return wrap(v, t) if t.is_int else v

    return each(fold, groups(x, axes))


REDUCE_CASES = [
    ((2, 3), (0,)),
    ((2, 3), (1,)),
    ((2, 3), (0, 1)),
    ((2, 3), ()),
    ((4,), (0,)),
    ((), ()),
    ((0, 3), (0,)),  # empty reduction: the identity
    ((3, 0), (0,)),  # nothing reduced over, empty result
    ((2, 1, 3), (0, 2)),
]


@pytest.mark.parametrize(("shape", "axes"), REDUCE_CASES)
@pytest.mark.parametrize("t", NUMERIC)
@pytest.mark.parametrize("kind", ["sum", "prod", "max", "min"])
def test_reduce(kind: str, t: DType, shape: tuple[int, ...], axes: tuple[int, ...]) -> None:
    x = sample(t, shape, seed=len(shape))
    got = run_op(Op.REDUCE, x, kind=kind, axes=axes)
    check(got, reduced(py(x), kind, axes, t), t)


@pytest.mark.parametrize(("shape", "axes"), REDUCE_CASES)
@pytest.mark.parametrize("kind", ["max", "min"])
def test_reduce_bool_is_any_all(kind: str, shape: tuple[int, ...], axes: tuple[int, ...]) -> None:
    x = sample(DType.BOOL, shape, seed=3)
    pick = {"max": any, "min": all}[kind]
    want = each(pick, groups(py(x), axes))
    check(run_op(Op.REDUCE, x, kind=kind, axes=axes), want, DType.BOOL)


@pytest.mark.parametrize("t", NUMERIC)
@pytest.mark.parametrize("kind", ["sum", "prod", "max", "min"])
def test_empty_reduction_is_the_identity(kind: str, t: DType) -> None:
    got = run_op(Op.REDUCE, np.zeros((0, 2), t.np), kind=kind, axes=(0,))
    assert got.dtype == t.np
    assert [got[0], got[1]] == [empty_identity(kind, t)] * 2


def test_reduce_negative_axes_are_normalized() -> None:
    x = sample(DType.I32, (2, 3))
    check(
        run_op(Op.REDUCE, x, kind="sum", axes=(-1,)),
        reduced(py(x), "sum", (1,), DType.I32),
        DType.I32,
    )


@pytest.mark.parametrize("kind", ["sum", "prod", "max", "min"])
@pytest.mark.parametrize("t", FLOATS)
def test_reduce_propagates_nan(kind: str, t: DType) -> None:
    x = np.array([1.0, np.nan, -np.inf, 3.0], t.np)
    assert math.isnan(float(run_op(Op.REDUCE, x, kind=kind, axes=(0,))))


@pytest.mark.parametrize(("t", "n"), [(DType.F16, 4096), (DType.BF16, 1024)])
def test_narrow_float_sums_accumulate_in_f32(t: DType, n: int) -> None:
    # Accumulating in the type itself would stall at 2048 (f16) or 256 (bf16).
    got = run_op(Op.REDUCE, np.ones(n, t.np), kind="sum", axes=(0,))
    assert float(got) == n


def test_int_sum_and_prod_wrap() -> None:
    assert int(run_op(Op.REDUCE, np.full(200, 1, np.int8), kind="sum", axes=(0,))) == -56
    assert int(run_op(Op.REDUCE, np.full(9, 2, np.uint8), kind="prod", axes=(0,))) == 0
    got = run_op(Op.REDUCE, np.full(3, 100, np.int16), kind="prod", axes=(0,))
    assert int(got) == 10**6 - 15 * 2**16


# --- mean ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "axes"), REDUCE_CASES)
@pytest.mark.parametrize("t", FLOATS)
def test_mean(t: DType, shape: tuple[int, ...], axes: tuple[int, ...]) -> None:
    x = sample(t, shape, seed=2)
    sums = reduced(py(x), "sum", axes, t)
    count = math.prod(shape[a] for a in axes)
    want = np.array([s / count if count else math.nan for s in sums.flat], dtype=object)
    check(run_op(Op.MEAN, x, axes=axes), want.reshape(sums.shape), t)


def test_mean_of_narrow_floats_accumulates_in_f32() -> None:
    assert float(run_op(Op.MEAN, np.full(4096, 3.0, np.float16), axes=(0,))) == 3.0


# --- dot_general --------------------------------------------------------------------------


Dims = tuple[int, ...]


def dot_oracle(
    lhs: np.ndarray, rhs: np.ndarray, lb: Dims, rb: Dims, lc: Dims, rc: Dims
) -> np.ndarray:
    """Sum over the contracting index space for every (batch, lhs free, rhs free) index."""
    lf = [d for d in range(lhs.ndim) if d not in lb and d not in lc]
    rf = [d for d in range(rhs.ndim) if d not in rb and d not in rc]
    shape = [lhs.shape[d] for d in lb] + [lhs.shape[d] for d in lf] + [rhs.shape[d] for d in rf]
    out = np.empty(tuple(shape), dtype=object)
    for idx in np.ndindex(out.shape):
        b, f, g = idx[: len(lb)], idx[len(lb) : len(lb) + len(lf)], idx[len(lb) + len(lf) :]
        total: Any = 0
        for c in itertools.product(*(range(lhs.shape[d]) for d in lc)):
            li, ri = [0] * lhs.ndim, [0] * rhs.ndim
            for dims, vals, pos in ((lb, b, li), (rb, b, ri), (lc, c, li), (rc, c, ri)):
                for d, v in zip(dims, vals, strict=True):
                    pos[d] = v
            for d, v in zip(lf, f, strict=True):
                li[d] = v
            for d, v in zip(rf, g, strict=True):
                ri[d] = v
            total += lhs[tuple(li)] * rhs[tuple(ri)]
        out[idx] = total
    return out


DOTS = [  # lhs shape, rhs shape, lhs_batch, rhs_batch, lhs_contract, rhs_contract
    ((2, 3), (3, 4), (), (), (1,), (0,)),
    ((3,), (3,), (), (), (0,), (0,)),  # to a scalar
    ((3,), (4,), (), (), (), ()),  # outer product
    ((2, 3, 4), (2, 4, 5), (0,), (0,), (2,), (1,)),
    ((3, 2, 4), (4, 5, 2), (1,), (2,), (2,), (0,)),  # batch dims away from the front
    ((2, 3, 4), (3, 4, 5), (), (), (1, 2), (0, 1)),  # two contracting dims
    ((4, 3), (3, 4), (), (), (0,), (1,)),  # contract lhs dim 0
    ((2, 0), (0, 3), (), (), (1,), (0,)),  # empty contraction: zeros
    ((0, 3), (3, 2), (), (), (1,), (0,)),  # empty free dim
    ((1, 1), (1, 1), (0,), (1,), (1,), (0,)),
]


@pytest.mark.parametrize(("ls", "rs", "lb", "rb", "lc", "rc"), DOTS)
@pytest.mark.parametrize("t", NUMERIC)
def test_dot_general(
    t: DType,
    ls: tuple[int, ...],
    rs: tuple[int, ...],
    lb: tuple[int, ...],
    rb: tuple[int, ...],
    lc: tuple[int, ...],
    rc: tuple[int, ...],
) -> None:
    lhs, rhs = sample(t, ls, seed=1), sample(t, rs, seed=2)
    want = dot_oracle(py(lhs), py(rhs), lb, rb, lc, rc)
    if t.is_int:
        want = each(lambda v: wrap(v, t), want)
    attrs = {"lhs_batch": lb, "rhs_batch": rb, "lhs_contract": lc, "rhs_contract": rc}
    check(run_op(Op.DOT_GENERAL, lhs, rhs, **attrs), want, t)


@pytest.mark.parametrize(
    ("t", "out"),
    [(DType.I8, DType.I32), (DType.I8, DType.I8), (DType.I32, DType.U8), (DType.U8, DType.I16)],
)
def test_int_dot_accumulates_exactly_then_wraps(t: DType, out: DType) -> None:
    lhs, rhs = sample(t, (2, 9), seed=5, spread=100), sample(t, (9, 3), seed=6, spread=100)
    want = dot_oracle(py(lhs), py(rhs), (), (), (1,), (0,))
    want = each(lambda v: wrap(v, out), want)
    got = run_op(Op.DOT_GENERAL, lhs, rhs, lhs_contract=(1,), rhs_contract=(0,), out_dtype=out)
    check(got, want, out)


@pytest.mark.parametrize(("t", "n"), [(DType.F16, 4096), (DType.BF16, 1024)])
@pytest.mark.parametrize("out", [DType.F32, None])
def test_narrow_float_dot_accumulates_in_f32(t: DType, n: int, out: DType | None) -> None:
    extra = {} if out is None else {"out_dtype": out}
    ones = np.ones(n, t.np)
    got = run_op(Op.DOT_GENERAL, ones, ones, lhs_contract=(0,), rhs_contract=(0,), **extra)
    assert got.dtype == (out or t).np
    assert float(got) == n


def test_f32_dot_to_f16_rounds_once() -> None:
    # In f32 the sum lies just above an f16 tie and rounds up; summing in f16 would hit the tie
    # after two terms, round to 1.0 and never recover.
    lhs, rhs = np.array([1.0, 2.0**-11, 2.0**-22], np.float32), np.ones(3, np.float32)
    dims = {"lhs_contract": (0,), "rhs_contract": (0,)}
    assert float(run_op(Op.DOT_GENERAL, lhs, rhs, out_dtype="f16", **dims)) == 1.0 + 2.0**-10


# --- conv2d -------------------------------------------------------------------------------


def naive_conv(
    x: np.ndarray,
    w: np.ndarray,
    strides: tuple[int, int],
    pads: Pads,
    dil: tuple[int, int],
    groups: int,
) -> np.ndarray:
    n_, h_, w_, _ = x.shape
    kh_, kw_, per_group, o_ = w.shape
    (pt, pb), (pl, pr) = pads
    oh_ = (h_ + pt + pb - (kh_ - 1) * dil[0] - 1) // strides[0] + 1
    ow_ = (w_ + pl + pr - (kw_ - 1) * dil[1] - 1) // strides[1] + 1
    out = np.empty((n_, oh_, ow_, o_), dtype=object)
    for n in range(n_):
        for oh in range(oh_):
            for ow in range(ow_):
                for o in range(o_):
                    g = o // (o_ // groups)
                    total: Any = 0
                    for kh in range(kh_):
                        for kw in range(kw_):
                            for ci in range(per_group):
                                ih = oh * strides[0] + kh * dil[0] - pt
                                iw = ow * strides[1] + kw * dil[1] - pl
                                if 0 <= ih < h_ and 0 <= iw < w_:
                                    total += x[n, ih, iw, g * per_group + ci] * w[kh, kw, ci, o]
                    out[n, oh, ow, o] = total
    return out


CONVS = [  # x shape, w shape, strides, padding, dilation, groups
    ((1, 5, 5, 1), (3, 3, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
    ((2, 5, 6, 3), (3, 2, 3, 4), (1, 1), ((1, 1), (0, 1)), (1, 1), 1),
    ((1, 7, 7, 2), (3, 3, 2, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), 1),
    ((1, 9, 8, 4), (2, 3, 2, 6), (2, 3), ((2, 0), (1, 3)), (2, 2), 2),  # grouped+dilated+strided
    ((2, 6, 6, 4), (3, 3, 1, 4), (1, 2), ((1, 2), (2, 1)), (1, 2), 4),  # depthwise
    ((1, 4, 4, 6), (1, 1, 2, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), 3),  # 1x1, one out per group
    ((0, 4, 4, 2), (2, 2, 2, 2), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),  # empty batch
    ((1, 3, 3, 0), (2, 2, 0, 2), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),  # no input channels
]


@pytest.mark.parametrize(("xs", "ws", "strides", "padding", "dilation", "groups"), CONVS)
@pytest.mark.parametrize("t", NUMERIC)
def test_conv2d_matches_seven_loops(
    t: DType,
    xs: tuple[int, ...],
    ws: tuple[int, ...],
    strides: tuple[int, int],
    padding: Pads,
    dilation: tuple[int, int],
    groups: int,
) -> None:
    x, w = sample(t, xs, seed=1), sample(t, ws, seed=2)
    want = naive_conv(py(x), py(w), strides, padding, dilation, groups)
    if t.is_int:
        want = each(lambda v: wrap(v, t), want)
    attrs = {"strides": strides, "padding": padding, "dilation": dilation, "groups": groups}
    check(run_op(Op.CONV2D, x, w, **attrs), want, t)


@pytest.mark.parametrize(
    ("strides", "dilation", "pads"),
    [
        # same: out = ceil(in / stride); padding (out - 1) * stride + extent - in, low half first
        ((1, 1), (1, 1), ((1, 1), (0, 1))),
        ((2, 2), (1, 1), ((1, 1), (0, 0))),
        ((1, 1), (2, 1), ((2, 2), (0, 1))),  # dilation 2 stretches the 3-tap height to 5
    ],
)
def test_conv2d_same_padding(
    strides: tuple[int, int], dilation: tuple[int, int], pads: Pads
) -> None:
    x, w = sample(DType.F32, (1, 7, 6, 2), seed=3), sample(DType.F32, (3, 2, 2, 3), seed=4)
    got = run_op(Op.CONV2D, x, w, strides=strides, padding="same", dilation=dilation)
    assert got.shape[1:3] == (-(-7 // strides[0]), -(-6 // strides[1]))
    check(got, naive_conv(py(x), py(w), strides, pads, dilation, 1), DType.F32)


def test_int8_conv_into_i32_does_not_wrap() -> None:
    x = np.full((1, 3, 3, 4), 100, np.int8)
    w = np.full((3, 3, 4, 1), 100, np.int8)
    got = run_op(Op.CONV2D, x, w, out_dtype="i32")
    assert got.dtype == np.int32
    assert int(got[0, 0, 0, 0]) == 9 * 4 * 100 * 100


# --- pools --------------------------------------------------------------------------------


def windows(
    x: np.ndarray, window: tuple[int, int], strides: tuple[int, int], pads: Pads
) -> np.ndarray:
    """For each output position, the list of operand values its window covers (padding left out)."""
    n_, h_, w_, c_ = x.shape
    (pt, pb), (pl, pr) = pads
    oh_ = (h_ + pt + pb - window[0]) // strides[0] + 1
    ow_ = (w_ + pl + pr - window[1]) // strides[1] + 1
    out = np.empty((n_, oh_, ow_, c_), dtype=object)
    for n, oh, ow, c in itertools.product(range(n_), range(oh_), range(ow_), range(c_)):
        out[n, oh, ow, c] = [
            x[n, ih, iw, c]
            for ih in range(oh * strides[0] - pt, oh * strides[0] - pt + window[0])
            for iw in range(ow * strides[1] - pl, ow * strides[1] - pl + window[1])
            if 0 <= ih < h_ and 0 <= iw < w_
        ]
    return out


def naive_max_pool(
    x: np.ndarray, window: tuple[int, int], strides: tuple[int, int], pads: Pads, lowest: float
) -> np.ndarray:
    cells = windows(x, window, strides, pads)
    size = window[0] * window[1]
    return each(
        lambda vs: functools.reduce(nan_aware(max), vs + [lowest] * (size - len(vs))), cells
    )


def naive_avg_pool(
    x: np.ndarray, window: tuple[int, int], strides: tuple[int, int], pads: Pads, include_pad: bool
) -> np.ndarray:
    cells = windows(x, window, strides, pads)
    size = window[0] * window[1]

    def mean(vs: list[float]) -> float:
        count = size if include_pad else len(vs)
        return sum(vs) / count if count else math.nan

    return each(mean, cells)


POOLS = [  # x shape, window, strides, padding
    ((1, 4, 4, 1), (2, 2), (2, 2), ((0, 0), (0, 0))),
    ((2, 5, 5, 3), (3, 3), (1, 1), ((1, 1), (1, 1))),
    ((1, 7, 6, 2), (3, 2), (2, 3), ((1, 1), (0, 1))),
    ((1, 5, 5, 1), (2, 2), (1, 1), ((2, 2), (0, 0))),  # some windows lie wholly in padding
    ((0, 3, 3, 2), (2, 2), (1, 1), ((0, 0), (0, 0))),
    ((1, 1, 1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),
]


def lowest(t: DType) -> float:
    return -math.inf if t.is_float else int(np.iinfo(t.np.name).min)


@pytest.mark.parametrize(("xs", "window", "strides", "padding"), POOLS)
@pytest.mark.parametrize("t", NUMERIC)
def test_max_pool(
    t: DType, xs: tuple[int, ...], window: tuple[int, int], strides: tuple[int, int], padding: Pads
) -> None:
    x = sample(t, xs, seed=7)
    got = run_op(Op.MAX_POOL, x, window=window, strides=strides, padding=padding)
    check(got, naive_max_pool(py(x), window, strides, padding, lowest(t)), t)


@pytest.mark.parametrize(("xs", "window", "strides", "padding"), POOLS)
@pytest.mark.parametrize("include_pad", [False, True])
@pytest.mark.parametrize("t", FLOATS)
def test_avg_pool(
    t: DType,
    include_pad: bool,
    xs: tuple[int, ...],
    window: tuple[int, int],
    strides: tuple[int, int],
    padding: Pads,
) -> None:
    x = sample(t, xs, seed=8)
    attrs = {"window": window, "strides": strides, "padding": padding}
    got = run_op(Op.AVG_POOL, x, count_include_pad=include_pad, **attrs)
    check(got, naive_avg_pool(py(x), window, strides, padding, include_pad), t)


@pytest.mark.parametrize("op", [Op.MAX_POOL, Op.AVG_POOL])
@pytest.mark.parametrize("t", [DType.F32, DType.BF16])
def test_pools_with_same_padding(op: Op, t: DType) -> None:
    x = sample(t, (1, 5, 7, 2), seed=9)
    got = run_op(op, x, window=(3, 3), strides=(2, 2), padding="same")
    # same: out = ceil(in / stride), padding (out - 1) * stride + window - in, low half first
    pads = ((1, 1), (1, 1))
    assert got.shape == (1, 3, 4, 2)
    if op is Op.MAX_POOL:
        check(got, naive_max_pool(py(x), (3, 3), (2, 2), pads, -math.inf), t)
    else:
        check(got, naive_avg_pool(py(x), (3, 3), (2, 2), pads, False), t)


def test_pool_strides_default_to_the_window() -> None:
    x = sample(DType.I32, (1, 4, 6, 1), seed=1)
    got = run_op(Op.MAX_POOL, x, window=(2, 3))
    check(
        got, naive_max_pool(py(x), (2, 3), (2, 3), ((0, 0), (0, 0)), lowest(DType.I32)), DType.I32
    )


def test_max_pool_propagates_nan() -> None:
    x = np.zeros((1, 2, 2, 1), np.float32)
    x[0, 1, 0, 0] = np.nan
    got = run_op(Op.MAX_POOL, x, window=(2, 2), strides=(1, 1), padding=((0, 1), (0, 0)))
    assert [math.isnan(v) for v in got.reshape(-1)] == [True, True]


# --- softmax ------------------------------------------------------------------------------


def naive_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    out = np.empty(x.shape, dtype=object)
    for idx in np.ndindex(x.shape):
        row = [x[(*idx[:axis], k, *idx[axis + 1 :])] for k in range(x.shape[axis])]
        top = max(row)
        out[idx] = math.exp(x[idx] - top) / sum(math.exp(v - top) for v in row)
    return out


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((5,), 0), ((2, 3), 1), ((2, 3), 0), ((2, 1, 4), 1), ((3, 4), -1), ((0, 3), 1)],
)
@pytest.mark.parametrize("t", FLOATS)
def test_softmax(t: DType, shape: tuple[int, ...], axis: int) -> None:
    x = sample(t, shape, seed=4, spread=12)
    got = run_op(Op.SOFTMAX, x, axis=axis)
    check(got, naive_softmax(py(x), axis % len(shape)), t)


@pytest.mark.parametrize("t", FLOATS)
def test_softmax_is_stable_for_large_inputs(t: DType) -> None:
    big = 60000.0  # exp(big) overflows every float type, even f64
    x = np.array([[big, big], [-big, -np.inf]], t.np)
    got = run_op(Op.SOFTMAX, x, axis=1)
    check(got, np.array([[0.5, 0.5], [1.0, 0.0]], dtype=object), t)


def test_softmax_of_all_minus_inf_is_nan() -> None:
    got = run_op(Op.SOFTMAX, np.full((1, 3), -np.inf, np.float32), axis=1)
    assert all(math.isnan(v) for v in got.reshape(-1))
