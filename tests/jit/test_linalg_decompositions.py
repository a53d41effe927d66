"""np.linalg.cholesky, solve, inv, det and slogdet under @jit (compiler.decompositions), against
the same calls in eager NumPy (LAPACK) on random well-conditioned matrices, with tolerances
scaled by the matrix's condition number; plus what compiled code returns where NumPy raises
(singular and non-positive-definite input), the shape of the traced IR (one `while` op per
loop, not an unrolled chain) and a least-squares program built from them."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

from compiler import jit
from compiler.decompositions import LinalgTypeError
from compiler.tracing import TraceError
from ir.graph import Function
from ir.ops import Op

TARGETS = ["interp", "cpu"]
SIZES = [1, 2, 3, 7, 16, 33]


def close(got: Any, want: Any, cond: float, scale: float = 1.0) -> None:
    """Equal up to backward-stable rounding: a relative error of a few n u cond(a)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    assert got.dtype == want.dtype
    n = max(want.shape[-1], 1) if want.ndim else 1
    eps = np.finfo(want.dtype).eps
    err = np.max(np.abs(got - want), initial=0.0) / max(np.max(np.abs(want), initial=0.0), 1e-30)
    assert err <= 20 * n * eps * cond * scale, (err, 20 * n * eps * cond * scale)


def general(rng: np.random.Generator, n: int, dtype: Any, batch: tuple[int, ...] = ()) -> Any:
    """A random matrix with a zero on the diagonal, so that solving needs row exchanges."""
    a = rng.standard_normal((*batch, n, n))
    if n > 1:
        a[..., 0, 0] = 0.0
    return a.astype(dtype)


def spd(rng: np.random.Generator, n: int, dtype: Any, batch: tuple[int, ...] = ()) -> Any:
    a = rng.standard_normal((*batch, n, n))
    return (a @ np.swapaxes(a, -1, -2) + n * np.eye(n)).astype(dtype)


def everything(a, s, b, bs):
    sign, logdet = np.linalg.slogdet(a)
    return (np.linalg.cholesky(s), np.linalg.solve(a, b), np.linalg.solve(a, bs),
            np.linalg.inv(a), np.linalg.det(a), sign, logdet)  # fmt: skip


# Every size and dtype on the interpreter; on the CPU backend, whose compiles take seconds, every
# size once, the dtypes alternating.
CASES = [
    *((n, dtype, "interp") for n in SIZES for dtype in (np.float32, np.float64)),
    *(
        # the suite keeps three CPU compiles (seconds each); the slow tier runs the others
        pytest.param(n, (np.float64, np.float32)[k % 2], "cpu",
                     marks=() if k % 2 == 0 else pytest.mark.slow)
        for k, n in enumerate(SIZES)
    ),
]  # fmt: skip


@pytest.mark.parametrize(("n", "dtype", "target"), CASES)
def test_matches_numpy(n, dtype, target):
    rng = np.random.default_rng(n)
    a, s = general(rng, n, dtype), spd(rng, n, dtype)
    b, bs = rng.standard_normal(n).astype(dtype), rng.standard_normal((n, 3)).astype(dtype)
    got = jit(everything, target=target)(a, s, b, bs)
    want = everything(a, s, b, bs)
    cond_a, cond_s = np.linalg.cond(a.astype(np.float64)), np.linalg.cond(s.astype(np.float64))
    names = ["cholesky", "solve vector", "solve matrix", "inv", "det", "sign", "logabsdet"]
    conds = [np.sqrt(cond_s), cond_a, cond_a, cond_a, cond_a, 1.0, 1.0]
    for name, g, w, c in zip(names, got, want, conds, strict=True):
        assert np.asarray(g).dtype == np.asarray(w).dtype, name
        if name == "sign":
            np.testing.assert_array_equal(g, w)
        elif name == "logabsdet":  # an absolute error: log|det| = sum of log|pivots|
            assert abs(g - w) <= 20 * n * np.finfo(dtype).eps * cond_a * max(1, abs(w)), name
        else:
            close(g, w, c)


@pytest.mark.parametrize("target", TARGETS)
def test_stacks_follow_numpys_broadcasting(target):
    rng = np.random.default_rng(7)
    a, s = general(rng, 5, np.float64, (2, 3)), spd(rng, 5, np.float64, (2, 3))
    b_vec, b_stack = rng.standard_normal(5), rng.standard_normal((3, 5, 2))

    def f(a, s, b_vec, b_stack):
        return (np.linalg.cholesky(s), np.linalg.cholesky(s, upper=True),
                np.linalg.solve(a, b_vec), np.linalg.solve(a, b_stack),
                np.linalg.solve(a[0, 0], b_stack), np.linalg.det(a),
                *np.linalg.slogdet(a))  # fmt: skip

    got = jit(f, target=target)(a, s, b_vec, b_stack)
    want = f(a, s, b_vec, b_stack)
    cond = float(np.max(np.linalg.cond(a)))
    for g, w in zip(got, want, strict=True):
        close(g, w, cond)


def test_cholesky_reads_only_the_lower_triangle():
    s = spd(np.random.default_rng(3), 6, np.float64)
    junk = np.tril(s) + np.triu(np.full((6, 6), 1e3), 1)
    np.testing.assert_allclose(jit(np.linalg.cholesky)(junk), np.linalg.cholesky(junk))


@pytest.mark.parametrize(
    "dtype", [np.int32, np.int64, np.uint8, np.bool_, ml_dtypes.bfloat16, np.float32]
)
def test_dtypes_promote_as_numpy(dtype):
    a = (np.eye(3) * 2 + np.eye(3, k=1)).astype(dtype)
    b = np.arange(3).astype(dtype)
    s = np.eye(3, dtype=dtype)
    got = jit(everything, target="interp")(a, s, b, b[:, None])
    want = everything(a, s, b, b[:, None])
    for g, w in zip(got, want, strict=True):
        assert np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_allclose(g, w, rtol=1e-6)
    mixed = jit(np.linalg.solve, target="interp")(np.eye(2, dtype=np.float32), np.ones(2, int))
    assert mixed.dtype == np.linalg.solve(np.eye(2, dtype=np.float32), np.ones(2, int)).dtype


@pytest.mark.parametrize("fn", [np.linalg.cholesky, np.linalg.inv, np.linalg.det])
def test_float16_is_refused_as_numpy_refuses_it(fn):
    a = np.eye(3, dtype=np.float16)
    with pytest.raises(TypeError) as numpy_error:
        fn(a)
    with pytest.raises(LinalgTypeError) as ours:
        jit(fn)(a)
    assert isinstance(ours.value, TypeError)
    assert str(numpy_error.value) in str(ours.value)


@pytest.mark.parametrize("target", TARGETS)
def test_singular_matrices(target):
    """NumPy raises LinAlgError from solve and inv; compiled code cannot raise from data and
    divides by the zero pivot (non-finite values, as JAX). det and slogdet are NumPy's."""
    a = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]])  # rank 2
    zero = np.zeros((2, 2), np.float32)

    def f(a, zero):  # inv is solve with the identity for b, tested on the interpreter only
        inverse = np.linalg.inv(a) if target == "interp" else a
        return (np.linalg.det(a), *np.linalg.slogdet(a), *np.linalg.slogdet(zero),
                np.linalg.solve(a, np.ones(3)), inverse)  # fmt: skip

    got = jit(f, target=target)(a, zero)
    want = (np.linalg.det(a), *np.linalg.slogdet(a), *np.linalg.slogdet(zero))
    for g, w in zip(got[:5], want, strict=True):
        assert np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_allclose(g, w, atol=1e-12)
    assert got[1] == 0
    assert got[2] == -np.inf
    assert got[4] == -np.inf
    assert not np.isfinite(got[5]).all()
    if target == "interp":
        assert not np.isfinite(got[6]).all()
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.solve(a, np.ones(3))


@pytest.mark.parametrize("target", TARGETS)
def test_cholesky_of_a_non_positive_definite_matrix_is_nan(target):
    """NumPy raises LinAlgError; the compiled cholesky is all NaN for that matrix, as JAX's,
    and exact for the other matrices of a stack."""
    indefinite = np.array([[1.0, 2.0], [2.0, 1.0]])
    semidefinite = np.array([[1.0, 1.0], [1.0, 1.0]])
    stack = np.stack([indefinite, np.eye(2) * 4, semidefinite, -np.eye(2)])
    got = jit(np.linalg.cholesky, target=target)(stack)
    assert np.isnan(got[[0, 2, 3]]).all()
    np.testing.assert_array_equal(got[1], np.linalg.cholesky(stack[1]))
    for m in stack[[0, 2, 3]]:
        with pytest.raises(np.linalg.LinAlgError):
            np.linalg.cholesky(m)


def test_empty_matrices():
    a, b = np.zeros((2, 0, 0)), np.zeros((2, 0, 3))
    for fn, args in ((np.linalg.det, (a,)), (np.linalg.inv, (a,)), (np.linalg.cholesky, (a,)),
                     (np.linalg.solve, (a, b)), (np.linalg.slogdet, (a,))):  # fmt: skip
        got, want = jit(fn)(*args), fn(*args)
        for g, w in zip(got if isinstance(got, tuple) else [got],
                        want if isinstance(want, tuple) else [want], strict=True):  # fmt: skip
            np.testing.assert_array_equal(g, w)
            assert np.asarray(g).shape == np.asarray(w).shape


def test_shape_errors():
    with pytest.raises(TraceError, match="at least two-dimensional"):
        jit(np.linalg.inv)(np.ones(3))
    with pytest.raises(TraceError, match="must be square"):
        jit(np.linalg.det)(np.ones((2, 3)))
    with pytest.raises(TraceError, match="does not match"):
        jit(np.linalg.solve)(np.eye(3), np.ones(4))
    with pytest.raises(TraceError, match="batch dimensions"):
        jit(np.linalg.solve)(np.ones((2, 3, 3)), np.ones((4, 3, 1)))


# --- the traced IR ------------------------------------------------------------------------


def all_ops(fn: Function) -> list[Op]:
    return [n.op for n in fn.walk()]


@pytest.mark.parametrize(
    ("fn", "loops"),
    [(np.linalg.cholesky, 1), (np.linalg.solve, 2), (np.linalg.det, 1), (np.linalg.inv, 2)],
)
def test_a_factorization_is_one_loop_whatever_the_size(fn, loops):
    def ops(n):
        s = spd(np.random.default_rng(0), n, np.float64)
        args = (s, np.ones(n)) if fn is np.linalg.solve else (s,)
        return all_ops(jit(fn).lower(*args).module.entry_function)

    big, small = ops(64), ops(4)
    assert big.count(Op.FOR) == loops
    assert len(big) == len(small) < 200 * loops  # not 64 copies of a step
    text = jit(np.linalg.cholesky).lower(spd(np.random.default_rng(0), 64, np.float64)).as_text()
    assert text.count(" for(") == 1


# --- a program ----------------------------------------------------------------------------


def least_squares(X, y):
    """min |X w - y| by the normal equations: X^T X = L L^T, then two triangular solves."""
    L = np.linalg.cholesky(X.T @ X)
    z = np.linalg.solve(L, X.T @ y)
    return np.linalg.solve(L.T, z)


@pytest.mark.parametrize("target", TARGETS)
def test_least_squares_by_normal_equations(target):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 6))
    w_true = rng.standard_normal(6)
    y = X @ w_true + 0.01 * rng.standard_normal(40)
    got = jit(least_squares, target=target)(X, y)
    close(got, least_squares(X, y), np.linalg.cond(X) ** 2)
    close(got, np.linalg.lstsq(X, y, rcond=None)[0], np.linalg.cond(X) ** 2)
