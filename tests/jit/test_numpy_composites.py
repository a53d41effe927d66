"""The NumPy functions built from other traced ops (compiler/numpy_composites.py) against eager
NumPy: same dtype, shape and values, over dtypes and awkward shapes, on the interpreter and
the CPU; and a located refusal where NumPy would decide a layout from a traced value."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_numpy_ops import ALL, DTYPES, Ops, both, check_ops, sample

from compiler import jit
from compiler.numpy_api import UFUNCS
from compiler.numpy_composites import FUNCTIONS
from ir.diagnostics import TesselError

SHAPES = [(4, 5), (1, 1), (0, 3), (3, 0), (2, 3, 7), (7,), (1,), (0,)]


def _layout_ops(x: np.ndarray) -> Ops:
    """Triangles, diagonals, rolls, repeats and tiles: exact for every dtype."""
    ops: Ops = {
        "roll": lambda a: np.roll(a, 3),
        "roll-negative": lambda a: np.roll(a, -8),
        "repeat-flat": lambda a: np.repeat(a, 2),
        "repeat-0": lambda a: np.repeat(a, 0, axis=-1),
        "repeat-method": lambda a: a.repeat(3, axis=0),
        "tile": lambda a: np.tile(a, 2),
        "tile-rank-up": lambda a: np.tile(a, (2, 1, 3)),
        "tril": lambda a: np.tril(a),
        "triu": lambda a: np.triu(a, 1),
        "tril-below": lambda a: np.tril(a, -2),
    }
    if x.ndim >= 2:
        ops |= {
            "roll-axes": lambda a: np.roll(a, (1, -2), axis=(0, -1)),
            "roll-same-axis": lambda a: np.roll(a, (2, 3), axis=(0, 0)),
            "diagonal": lambda a: np.diagonal(a),
            "diagonal-above": lambda a: np.diagonal(a, 2),
            "diagonal-below": lambda a: a.diagonal(-1),
            "diagonal-axes": lambda a: np.diagonal(a, 0, -1, 0),
            "diag": lambda a: np.diag(a[..., 0, :, :] if a.ndim > 2 else a, 1),
            "trace": lambda a: np.trace(a),
        }
    if x.ndim == 1:
        ops |= {"diag-1d": lambda a: np.diag(a), "diag-1d-k": lambda a: np.diag(a, -3)}
    return ops


@pytest.mark.parametrize(("dt", "target"), both(ALL))
def test_layout_functions(dt: str, target: str) -> None:
    rng = np.random.default_rng(ALL.index(dt))
    for shape in SHAPES if target == "interp" else SHAPES[:3] + SHAPES[5:6]:
        x = sample(rng, shape, dt)
        check_ops(_layout_ops(x), (x,), target)


@pytest.mark.parametrize(("dt", "target"), both(["f64", "f32", "i64", "i32", "i8", "bool"]))
def test_prefix_sums_and_products(dt: str, target: str) -> None:
    """Integers exactly (in NumPy's result type: int32 sums in int64); floats within the
    error of a tree of additions, relative to the largest partial sum."""
    rng = np.random.default_rng(20 + ALL.index(dt))
    for shape in [(37,), (4, 9), (1,), (0,), (3, 0, 2), (2, 3, 5)]:
        x = sample(rng, shape, dt)
        small = x if DTYPES[dt].kind in "fb" else x % 3  # products of small ints stay exact
        ops: Ops = {
            "cumsum": lambda a: np.cumsum(a),
            "cumsum-last": lambda a: np.cumsum(a, axis=-1),
            "cumsum-f64": lambda a: np.cumsum(a, 0, dtype=np.float64),
            "cumsum-method": lambda a: a.cumsum(axis=0),
        }
        check_ops(ops, (x,), target, rtol=1e-5 if dt == "f32" else None)
        products: Ops = {
            "cumprod": lambda a: np.cumprod(a, axis=0),
            "method": lambda a: a.cumprod(),
        }
        check_ops(products, (small,), target, rtol=1e-5 if dt == "f32" else None)


@pytest.mark.parametrize(("dt", "target"), both(ALL))
def test_ufunc_outer_and_accumulate(dt: str, target: str) -> None:
    """ufunc.outer for every binary ufunc tessel has, and accumulate for add, multiply,
    maximum and minimum, in the ufunc's own dtype (np.add.accumulate keeps int8 and wraps)."""
    rng = np.random.default_rng(40 + ALL.index(dt))
    # (an integer to a negative power is an error NumPy raises on the value: not traceable)
    skip = {np.matmul, np.power} if DTYPES[dt].kind in "iu" else {np.matmul}
    binary = [u for u in UFUNCS if u.nin == 2 and u not in skip]
    for sx, sy in [((4,), (3,)), ((2, 3), (5,)), ((0,), (2,)), ((), (3,))]:
        x, y = sample(rng, sx, dt), sample(rng, sy, dt, nonzero=True)
        check_ops({u.__name__: (lambda a, b, u=u: u.outer(a, b)) for u in binary}, (x, y), target)
    x = sample(rng, (5, 6), dt)
    if DTYPES[dt].kind == "f":
        x[1, 2] = np.nan  # maximum and minimum carry a NaN on
    scans: Ops = {
        f"{u.__name__}-{axis}": (lambda a, u=u, axis=axis: u.accumulate(a, axis=axis))
        for u in (np.add, np.multiply, np.maximum, np.minimum)
        for axis in (0, 1)
    }
    check_ops(scans, (x,), target, rtol=1e-5 if dt == "f32" else None)


def test_prefix_sum_of_a_long_float_row_is_within_the_tree_bound() -> None:
    """1000 terms in 10 doublings: the relative error stays near 10 u, where a sum left to
    right may reach 1000 u (NumPy's own cumsum)."""
    x = np.random.default_rng(3).uniform(0.5, 1.5, 1000).astype(np.float32)
    got = jit(np.cumsum)(x)
    exact = np.cumsum(x.astype(np.float64))
    assert np.max(np.abs(got - exact) / exact) < 16 * 2.0**-24


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_linspace_with_traced_bounds(target: str) -> None:
    ops: Ops = {
        "scalars": lambda a, b: np.linspace(a[0], b[0], 7),
        "no-endpoint": lambda a, b: np.linspace(a[0], b[0], 6, endpoint=False),
        "arrays": lambda a, b: np.linspace(a, b, 5),
        "axis": lambda a, b: np.linspace(a, b, 4, axis=1),
        "one": lambda a, b: np.linspace(a[1], b[1], 1),
        "none": lambda a, b: np.linspace(a[1], b[1], 0),
        "int-dtype": lambda a, b: np.linspace(a, b, 9, dtype=np.int32),
        "python-stop": lambda a, b: np.linspace(a[0], 10, 11),
        "same-bounds": lambda a, b: np.linspace(a[2], a[2], 3),
    }
    a = np.array([-2.5, 0.0, 3.0], np.float32)
    b = np.array([4.0, 1e-30, 3.0], np.float32)
    assert check_ops(ops, (a, b), target, rtol=1e-6) == len(ops)
    assert check_ops(ops, (a.astype(np.float64), b.astype(np.float64)), target) == len(ops)
    steps = jit(lambda a, b: np.linspace(a[0], b[0], 5, retstep=True)[1])(a, b)
    assert steps == np.linspace(a[0], b[0], 5, retstep=True)[1]


@pytest.mark.filterwarnings("ignore:Degrees of freedom")  # eager NumPy's, on one observation
@pytest.mark.parametrize(("dt", "target"), both(["f64", "f32", "i32"]))
def test_covariance_and_correlation(dt: str, target: str) -> None:
    rng = np.random.default_rng(30 + ALL.index(dt))
    for shape in [(3, 8), (1, 5), (6,), (4, 2)]:
        x, y = sample(rng, shape, dt), sample(rng, shape, dt)
        ops: Ops = {
            "cov": lambda a, b: np.cov(a),
            "cov-columns": lambda a, b: np.cov(a, rowvar=False),
            "cov-bias": lambda a, b: np.cov(a, bias=True),
            "cov-ddof": lambda a, b: np.cov(a, ddof=0),
            "cov-y": lambda a, b: np.cov(a, b),
            "cov-f32": lambda a, b: np.cov(a, dtype=np.float32),
            "corrcoef": lambda a, b: np.corrcoef(a),
            "corrcoef-y": lambda a, b: np.corrcoef(a, b, rowvar=False),
        }
        check_ops(ops, (x, y), target, rtol=1e-5)


def _refusal(fn: Any, *args: Any, match: str) -> None:
    with pytest.raises(TesselError, match=match) as info:
        jit(fn)(*args)
    assert "test_numpy_composites.py" in str(info.value.loc)  # the user's line


def test_a_layout_decided_by_a_traced_value_is_refused_at_the_users_line() -> None:
    x = np.arange(6.0)
    k = np.int64(2)
    _refusal(lambda a, s: np.roll(a, s), x, k, match="shift must be a concrete integer")
    _refusal(lambda a, s: np.repeat(a, s), x, k, match="repeats must be one concrete integer")
    _refusal(lambda a: np.repeat(a, [1, 2, 3, 1, 1, 1]), x, match="a count per element")
    _refusal(lambda a, s: np.tril(a.reshape(2, 3), s), x, k, match="k must be a concrete")
    _refusal(lambda a, s: np.linspace(0.0, 1.0, s), x, k, match="num must be a concrete")
    _refusal(lambda a: np.cov(a, fweights=[1] * 6), x, match="fweights")
    # a tracer's `trace` is its Trace: the method is refused with the spelling that works
    _refusal(lambda a: a.reshape(2, 3).trace(), x, match=r"spelled np.trace\(x\)")


def test_the_table_is_covered() -> None:
    tested = {np.tril, np.triu, np.diagonal, np.diag, np.trace, np.roll, np.repeat, np.tile,
              np.cumsum, np.cumprod, np.linspace, np.cov, np.corrcoef}  # fmt: skip
    assert set(FUNCTIONS) == tested
