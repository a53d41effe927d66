"""np.bincount and np.histogram (compiler/numpy_histogram.py) against eager NumPy: the same
dtypes, shapes and values, exactly (counts of values on bin edges included), on the
interpreter and the CPU; a bincount value past `minlength` raises IndexOutOfRange at the user's
line when the code runs, and what would make the number of bins depend on the data is a
located refusal."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_numpy_ops import DTYPES, Ops, check_ops

from compiler import jit, numpy_histogram
from ir.diagnostics import IndexOutOfRange, TesselError

TARGETS = ["interp", "cpu"]


def _on_edges(dt: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """n values, many of them on the edges of the bins the tests ask for, or an ulp away."""
    dtype = DTYPES[dt]
    if dtype.kind in "iu":
        lo = 0 if dtype.kind == "u" else -3
        return rng.integers(lo, 13, n).astype(dtype)
    edges = np.concatenate([np.linspace(-2.0, 3.0, k + 1, dtype=dtype) for k in (4, 5, 7, 10)])
    near = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
    pool = np.concatenate([near, (rng.standard_normal(n) * 2).astype(dtype), [-5.0, 7.0]])
    return rng.choice(pool.astype(dtype), n)


def _histogram_ops(groups: list[str]) -> Ops:
    """Each on (odd-sized a, weights, one value, all-equal values, empty)."""
    ops: Ops = {}
    for i, name in enumerate(["odd", "one", "equal", "empty"]):
        if name not in groups:
            continue
        pick = (lambda k: lambda *xs: xs[k])(0 if i == 0 else i + 1)
        ops |= {
            f"{name}-10": lambda *xs, p=pick: np.histogram(p(*xs))[0],
            f"{name}-10-edges": lambda *xs, p=pick: np.histogram(p(*xs))[1],
            f"{name}-7": lambda *xs, p=pick: np.histogram(p(*xs), 7)[0],
            f"{name}-7-edges": lambda *xs, p=pick: np.histogram(p(*xs), bins=7)[1],
            f"{name}-density": lambda *xs, p=pick: np.histogram(p(*xs), 4, density=True)[0],
        }
        if name != "odd":  # the ranges given, on the odd-sized values only
            continue
        ops |= {
            f"{name}-range": lambda *xs, p=pick: np.histogram(p(*xs), 5, (-2.0, 3.0))[0],
            f"{name}-range-edges": lambda *xs, p=pick: np.histogram(p(*xs), 5, (-2.0, 3.0))[1],
            f"{name}-int-range": lambda *xs, p=pick: np.histogram(p(*xs), 4, range=(0, 10))[0],
            f"{name}-f64-range": lambda *xs, p=pick: np.histogram(
                p(*xs), 10, range=(np.float64(-2), np.float64(3))
            )[0],
            f"{name}-point-range": lambda *xs, p=pick: np.histogram(p(*xs), 3, range=(1, 1))[0],
            f"{name}-edges-given": lambda *xs, p=pick: np.histogram(p(*xs), [-2, 0, 0, 1, 2.5])[0],
        }
    ops |= {
        "weighted": lambda *xs: np.histogram(xs[0], 6, weights=xs[1])[0],
        "weighted-range": lambda *xs: np.histogram(xs[0], 5, (-2, 3), weights=xs[1])[0],
        "weighted-i32": lambda *xs: np.histogram(xs[0], 4, weights=xs[1].astype(np.int32))[0],
        "weighted-f32": lambda *xs: np.histogram(xs[0], 4, weights=xs[1].astype(np.float32))[0],
        "weighted-edges": lambda *xs: np.histogram(xs[0], [-1, 0.5, 4], weights=xs[1])[0],
        "2-d": lambda *xs: np.histogram(xs[0][:30].reshape(5, 6), 3)[0],
    }
    return ops


CPU_OPS = {"odd-10", "odd-10-edges", "odd-range", "odd-int-range", "odd-density",
           "odd-edges-given", "equal-7", "equal-7-edges", "weighted", "weighted-f32"}  # fmt: skip


@pytest.mark.parametrize(
    ("dt", "target"),
    [(dt, "interp") for dt in ("f64", "f32", "i64", "i32", "u8")]
    + [("f32", "cpu"), ("i64", "cpu")],
)
def test_histogram_matches_numpy(dt: str, target: str) -> None:
    """Every case on the interpreter; on the CPU (whose compiles cost real time) one float and
    one integer dtype, and a representative subset of the cases."""
    rng = np.random.default_rng(list(DTYPES).index(dt))
    a = _on_edges(dt, rng, 101)
    weights = rng.integers(-3, 9, a.shape).astype(np.float64)  # exact sums in any order
    one, equal, empty = a[:1], np.full(9, a[3]), a[:0]
    ops = _histogram_ops(["odd", "one", "equal", "empty"])
    if target == "cpu":
        ops = {k: v for k, v in ops.items() if k in CPU_OPS}
    assert check_ops(ops, (a, weights, one, equal, empty), target, rtol=0.0) == len(ops)


@pytest.mark.parametrize("target", TARGETS)
def test_bincount_matches_numpy(target: str) -> None:
    x = np.array([3, 0, 4, 4, 1, 0, 4, 6, 2, 4, 1], np.int64)
    w = np.linspace(-1.5, 4.0, x.size)
    ops: Ops = {
        "counts": lambda a, w: np.bincount(a, minlength=7),
        "more-bins": lambda a, w: np.bincount(a, minlength=12),
        "weights": lambda a, w: np.bincount(a, w, minlength=7),
        "weights-f32": lambda a, w: np.bincount(a, w.astype(np.float32), minlength=7),
        "weights-i32": lambda a, w: np.bincount(a, (w * 2).astype(np.int32), minlength=7),
        "i32": lambda a, w: np.bincount(a.astype(np.int32), minlength=7),
        "u8": lambda a, w: np.bincount(a.astype(np.uint8), minlength=8),
        "bool": lambda a, w: np.bincount(a > 2, minlength=2),
        "empty": lambda a, w: np.bincount(a[:0], minlength=3),
        "one": lambda a, w: np.bincount(a[:1], w[:1], minlength=4),
        "concrete-x": lambda a, w: np.bincount(np.array([0, 2, 2, 5, 0, 1, 1, 1, 9, 9, 0]), w),
    }
    assert check_ops(ops, (x, w), target, rtol=0.0) == len(ops)


def _marked_line(fn: Any) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if "# raises here" in line)


def _located(err: TesselError, fn: Any) -> None:
    assert err.loc is not None, err
    assert Path(err.loc.file) == Path(__file__), err.loc
    assert err.loc.line == _marked_line(fn), (err.loc, _marked_line(fn))


def _count(x: np.ndarray) -> Any:
    y = x * 2
    return np.bincount(y, minlength=8)  # raises here


def _autodetected(a: np.ndarray) -> Any:
    b = a + 1
    return np.histogram(b, 4)  # raises here


@pytest.mark.parametrize("target", TARGETS)
def test_a_value_past_minlength_raises_at_the_users_line(target: str) -> None:
    f = jit(_count, target=target)
    np.testing.assert_array_equal(f(np.array([0, 3, 3, 1])), [1, 0, 1, 0, 0, 0, 2, 0])
    for bad in ([0, 4, 1], [2, -1, 0], [-9, 0, 0]):  # NumPy would add bins, or raise
        with pytest.raises(IndexOutOfRange) as info:
            f(np.array(bad))
        assert isinstance(info.value, IndexError)
        _located(info.value, _count)


@pytest.mark.parametrize("target", TARGETS)
def test_nan_in_an_autodetected_range_raises_at_the_users_line(target: str) -> None:
    """NumPy raises ValueError on an autodetected range that is not finite; tessel cannot
    raise that when the code runs, and raises IndexOutOfRange instead."""
    f = jit(_autodetected, target=target)
    hist, _ = f(np.array([0.5, 2.0, 3.0]))
    np.testing.assert_array_equal(hist, np.histogram(np.array([1.5, 3.0, 4.0]), 4)[0])
    for bad in ([0.5, np.nan, 1.0], [np.inf, 0.0, 1.0]):
        with pytest.raises(IndexOutOfRange) as info:
            f(np.array(bad))
        _located(info.value, _autodetected)
    # with a concrete range, NumPy and tessel drop NaN
    g = jit(lambda a: np.histogram(a, 3, range=(0, 3)), target=target)
    x = np.array([0.5, np.nan, 1.0, 2.5])
    for got, want in zip(g(x), np.histogram(x, 3, range=(0, 3)), strict=True):
        np.testing.assert_array_equal(got, want)


def _refusal(fn: Any, *args: Any, match: str) -> None:
    with pytest.raises(TesselError, match=match) as info:
        jit(fn, target="interp")(*args)
    assert "test_histogram.py" in str(info.value.loc)  # the user's line


def test_a_number_of_bins_decided_by_the_data_is_refused_at_the_users_line() -> None:
    x, k = np.array([1, 2, 3]), np.int64(4)
    _refusal(lambda a: np.bincount(a), x, match="needs minlength >= 1")
    _refusal(lambda a, m: np.bincount(a, minlength=m), x, k, match="minlength must be concrete")
    _refusal(lambda a: np.bincount(a.astype(float), minlength=4), x, match="rule 'safe'")
    _refusal(lambda a: np.bincount(a.reshape(3, 1), minlength=4), x, match="too deep")
    _refusal(lambda w: np.bincount(np.array([1, -1]), w), x[:2], match="negative")
    _refusal(lambda a, b: np.histogram(a, b), x, k, match="bins and density must be concrete")
    _refusal(lambda a: np.histogram(a, "auto"), x, match="depends on the data")
    _refusal(lambda a: np.histogram(a, 3, range=(0, np.inf)), x, match="is not finite")
    _refusal(lambda a: np.histogram(a, 3, range=(2, 1)), x, match="max must be larger")
    _refusal(lambda a: np.histogram(a, [3, 1]), x, match="increase monotonically")
    _refusal(lambda a: np.histogram(a, 0), x, match="must be positive")


def test_the_table_is_covered_and_documented() -> None:
    tested = {np.bincount, np.histogram}
    assert set(numpy_histogram.FUNCTIONS) == tested
    doc = (Path(__file__).resolve().parents[2] / "docs" / "jit.md").read_text()
    assert not [f for f in tested if f"`np.{f.__name__}`" not in doc]
