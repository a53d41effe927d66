"""np.sort, np.argsort, ndarray.sort/.argsort and np.median under @jit (compiler/numpy_sort.py)
against eager NumPy, on the interpreter and the CPU.

tessel's order is NumPy's kind="stable" whatever `kind` says, so positions are compared with
eager `kind="stable"` and values with eager NumPy's default (the same values).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from compiler import jit
from ir.diagnostics import TesselError

TARGETS = ["interp", "cpu"]
DTYPES = [np.float32, np.float64, np.float16, ml_dtypes.bfloat16, np.int64, np.int8, np.uint16,
          np.bool_]  # fmt: skip


def sample(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype) == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 6, shape).astype(dtype)
    pool = np.array([0.0, -0.0, 1.5, -2.0, np.inf, 3.25, -1.0, np.nan])
    chosen = rng.choice(pool, shape)
    return np.where(rng.integers(0, 2, shape) == 1, chosen + 0.5, chosen).astype(dtype)


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_sort_and_argsort_match_numpy(dtype: type, target: str) -> None:
    x = sample((4, 9), dtype)

    def f(a):
        return (
            np.sort(a),
            np.sort(a, axis=0),
            np.sort(a, axis=None),
            np.argsort(a),
            np.argsort(a, axis=0, kind="quicksort"),
            np.argsort(a, axis=None, kind="stable"),
            a.argsort(axis=-2),
        )

    want = (
        np.sort(x),
        np.sort(x, axis=0),
        np.sort(x, axis=None),
        np.argsort(x, kind="stable"),
        np.argsort(x, axis=0, kind="stable"),
        np.argsort(x, axis=None, kind="stable"),
        x.argsort(axis=-2, kind="stable"),
    )
    for got, w in zip(jit(f, target=target)(x), want, strict=True):
        assert_same(got, w)


@pytest.mark.parametrize("target", TARGETS)
def test_shapes_empty_one_and_long(target: str) -> None:
    def f(a, b, c, d):
        return np.sort(a), np.argsort(b), np.sort(c, axis=0), np.argsort(d), np.sort(d)

    args = (np.zeros((0,), np.float32), np.ones((3, 1), np.int32), sample((0, 5), np.float64),
            sample((1500,), np.float32, 3))  # fmt: skip
    want = (np.sort(args[0]), np.argsort(args[1], kind="stable"), np.sort(args[2], axis=0),
            np.argsort(args[3], kind="stable"), np.sort(args[3]))  # fmt: skip
    for got, w in zip(jit(f, target=target)(*args), want, strict=True):
        assert_same(got, w)


@pytest.mark.parametrize("target", TARGETS)
def test_sort_method_sorts_in_place(target: str) -> None:
    """x.sort() writes x: later reads, and a view taken before, see the sorted values."""

    def f(a):
        b = a * 2
        row = b[1]
        b.sort(axis=0)
        a.sort()
        return a, b, row + 0

    x = sample((3, 5), np.float32, 1)
    got = jit(f, target=target)(x.copy())
    a, b = x.copy(), x * 2
    row = b[1]
    b.sort(axis=0)
    a.sort()
    for g, w in zip(got, (a, b, row + 0), strict=True):
        assert_same(g, w)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32, np.uint8, np.bool_],
                         ids=lambda t: np.dtype(t).name)  # fmt: skip
def test_median_matches_numpy(dtype: type, target: str) -> None:
    x = sample((4, 6), dtype, 2)
    x_odd = sample((5, 3), dtype, 4)

    def f(a, b):
        return (
            np.median(a),
            np.median(a, axis=1),
            np.median(a, axis=0, keepdims=True),
            np.median(b, axis=(0, 1)),
            np.median(b, axis=-1),
        )

    want = (np.median(x), np.median(x, axis=1), np.median(x, axis=0, keepdims=True),
            np.median(x_odd, axis=(0, 1)), np.median(x_odd, axis=-1))  # fmt: skip
    for got, w in zip(jit(f, target=target)(x, x_odd), want, strict=True):
        assert_same(got, w)


def test_median_of_nothing_is_nan() -> None:
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        want = np.median(np.zeros((0, 3), np.float32), axis=0)
    assert_same(
        jit(lambda a: np.median(a, axis=0), target="interp")(np.zeros((0, 3), np.float32)), want
    )


def test_refusals_name_the_problem() -> None:
    x = np.ones((2, 3), np.float32)
    with pytest.raises(TesselError, match="sort kind must be one of"):
        jit(lambda a: np.sort(a, kind="bogus"), target="interp")(x)
    with pytest.raises(TesselError, match="order="):
        jit(lambda a: np.sort(a, order="f"), target="interp")(x)
    with pytest.raises(TesselError, match="out of bounds"):
        jit(lambda a: np.argsort(a, axis=2), target="interp")(x)
    with pytest.raises(TesselError, match="out of bounds"):
        jit(lambda a: np.sort(a.sum()), target="interp")(x)
    assert_same(
        jit(lambda a: np.sort(a.sum(), axis=None), target="interp")(x), np.sort(x.sum(), axis=None)
    )
