"""np.linalg.cholesky, solve, inv, det and slogdet on tracers, as loops of full-size masked ops.

Each factorization and substitution is one `lax.fori_loop` over the column index, traced once
into a `while` op: a 500x500 matrix compiles as fast as a 5x5 one. The index is traced, so
nothing in a body has a shape that depends on it: a step reads column `j` with a gather
(`A[..., :, j]`), works on whole columns and matrices, writes a row or a column of a carried
value (`L[..., :, j] = ...`), and keeps what belongs to the step with masks built from
`np.arange(n)` compared with `j` (`np.where`). Every function takes stacks `(..., n, n)`, as
NumPy's do.

- cholesky: left-looking, column `j` of L is `A[:, j] - L @ L[j]` scaled by the root of its
  diagonal entry. Only the lower triangle of `a` is read, as LAPACK's potrf with UPLO='L'.
- solve, inv, det, slogdet: LU with partial pivoting (the pivot is the largest magnitude on or
  below the diagonal; the first one on ties, as LAPACK's getrf) of `a` augmented with the
  right-hand sides, in Crout's order (two matrix-vector products and a few row and column
  writes per step, no rank-1 update of the whole matrix), then back substitution, a second
  loop (solve, inv).

Compiled code cannot raise from data, so where NumPy raises LinAlgError the result says so in
its values instead, as JAX's do: cholesky of a matrix that is not positive definite is all NaN
(per matrix of a stack); solve and inv of a singular matrix divide by a zero pivot, giving
infinities and NaNs; det of a singular matrix is 0 and slogdet (0, -inf), as NumPy's (a zero
pivot column is skipped, as getrf does). slogdet returns a plain `(sign, logabsdet)` tuple,
not NumPy's named tuple.

Result dtypes and the dtypes refused are NumPy's, asked of NumPy on stand-in values: float32
stays float32, integers, bool and bfloat16 compute in float64, float16 is a TypeError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from compiler import lax
from compiler.tracing import TraceError, convert, lift, to_dtype, trace_of

__all__ = ["FUNCTIONS", "cholesky", "det", "inv", "slogdet", "solve"]

# A Tracer: its NumPy operators and functions are installed at run time, unseen by mypy.
Array = Any


class LinalgTypeError(TraceError, TypeError):
    """A dtype NumPy's linalg refuses (float16), refused at the user's line as NumPy does."""


def _dtype(api: Callable[..., Any], *xs: Array) -> np.dtype[Any]:
    """The dtype NumPy's `api` computes in for operands of these dtypes (or NumPy's error)."""
    stand_ins = [np.eye(1, dtype=xs[0].dtype), *(np.ones((1, 1), x.dtype) for x in xs[1:])]
    try:
        out = api(*stand_ins)
    except TypeError as e:
        raise xs[0].trace.error(str(e), LinalgTypeError) from None
    return np.dtype(np.asarray(out[0] if isinstance(out, tuple) else out).dtype)


def _square(a: Any) -> Array:
    x = lift(a)
    if x.ndim < 2:
        raise x.trace.error(
            f"{x.ndim}-dimensional array given. Array must be at least two-dimensional"
        )
    if x.shape[-1] != x.shape[-2]:
        raise x.trace.error("Last 2 dimensions of the array must be square")
    return x


def _as(x: Array, dtype: np.dtype[Any]) -> Array:
    return convert(x, to_dtype(dtype, x.trace.api))


# --- cholesky -----------------------------------------------------------------------------


def cholesky(a: Any, /, *, upper: bool = False) -> Array:
    x = _square(a)
    A = _as(x, _dtype(np.linalg.cholesky, x))
    n = A.shape[-1]
    idx = np.arange(n)

    def column(j: Array, L: Array) -> Array:
        # columns >= j of L are still zero, so L @ L[j] sums over k < j only
        v = A[..., :, j] - np.matmul(L, L[..., j, :, None])[..., 0]
        d = np.sqrt(v[..., j])[..., None]
        L[..., :, j] = np.where(idx > j, v / d, np.where(idx == j, d, 0))
        return L

    if n == 0:
        return A
    L = lax.fori_loop(0, n, column, np.zeros(A.shape, A.dtype))
    diagonal = np.diagonal(L, axis1=-2, axis2=-1)
    ok = np.all(np.isfinite(diagonal) & (diagonal > 0), axis=-1)
    L = np.where(ok[..., None, None], L, np.nan)
    return np.swapaxes(L, -1, -2) if upper else L


# --- Gaussian elimination -----------------------------------------------------------------


def _swap_rows(X: Array, k: Array, p: Array) -> Array:
    """X with rows k and p (one per matrix of the stack) exchanged, written in place."""
    row_k = X[..., k, :]
    row_p = np.take_along_axis(X, p[..., None, None], axis=-2)[..., 0, :]
    np.put_along_axis(X, p[..., None, None], row_k[..., None, :], axis=-2)
    X[..., k, :] = row_p
    return X


def _eliminate(A: Array, B: Array | None) -> tuple[Array, Array | None, Array]:
    """P [A | B] = L [U | Y] with partial pivoting, by Crout's column-and-row order: step k
    computes column k of L and row k of [U | Y] from the ones before (two matrix-vector
    products), swapping rows of what it has so far. Returns U, Y (None without B) and the
    sign of the permutation P."""
    n = A.shape[-1]
    batch = A.shape[:-2]
    # Without B, one column of zeros all the same: the CPU code of the loop was twice as slow
    # (n = 256) when M, L and U were all n x n.
    extra = np.zeros((*batch, n, 1), A.dtype) if B is None else B
    M = np.concatenate([A, extra], axis=-1)
    width = M.shape[-1]
    rows, cols = np.arange(n), np.arange(width)
    Carry = tuple[Array, Array, Array, Array]

    def step(k: Array, carry: Carry) -> Carry:
        M, L, U, sign = carry  # L: columns < k so far, unit diagonal left out; U: rows < k
        c = M[..., :, k] - np.matmul(L, U[..., :, k, None])[..., 0]
        p = np.argmax(np.where(rows >= k, np.abs(c), -1), axis=-1)
        pivot = np.take_along_axis(c, p[..., None], axis=-1)  # (..., 1)
        c = np.where(rows == p[..., None], c[..., k, None], c)  # c's rows k and p swapped,
        M = _swap_rows(M, k, p)  # except row k, which only the pivot below stands for
        L = _swap_rows(L, k, p)
        sign = np.where(p != k, -sign, sign)
        # a zero pivot has only zeros below it: the column is skipped, as LAPACK's getrf does
        L[..., :, k] = np.where(rows > k, c / np.where(pivot == 0, 1, pivot), 0)
        u = M[..., k, :] - np.matmul(L[..., k, None, :], U)[..., 0, :]
        U[..., k, :] = np.where(cols >= k, u, 0)
        return M, L, U, sign

    zeros = np.zeros((*batch, n, n), A.dtype)
    init = (M, zeros, np.zeros((*batch, n, width), A.dtype), np.ones(batch, A.dtype))
    if n == 0:
        return A, B, lift(init[3])
    _, _, U, sign = lax.fori_loop(0, n, step, init)
    return U[..., :, :n], (None if B is None else U[..., :, n:]), sign


def _back_substitute(U: Array, Y: Array) -> Array:
    """X with U X = Y, row by row from the last: U is upper triangular (zeros below), and the
    rows of X not yet computed are zero, so row k is (Y[k] - U[k] @ X) / U[k, k]."""
    n = U.shape[-1]

    def step(i: Array, X: Array) -> Array:
        k = n - 1 - i
        rest = np.matmul(U[..., k, None, :], X)[..., 0, :]  # (..., m)
        X[..., k, :] = (Y[..., k, :] - rest) / U[..., k, k][..., None]
        return X

    X: Array = lax.fori_loop(0, n, step, np.zeros(Y.shape, Y.dtype)) if n else Y
    return X


def _solve(A: Array, B: Array) -> Array:
    U, Y, _ = _eliminate(A, B)
    assert Y is not None
    return _back_substitute(U, Y)


def solve(a: Any, b: Any) -> Array:
    x = _square(a)
    y = lift(b)
    trace = trace_of(x, y)
    dtype = _dtype(np.linalg.solve, x, y)
    n = x.shape[-1]
    vector = y.ndim == 1
    if y.ndim == 0 or y.shape[-2 if not vector else -1] != n:
        raise trace.error(
            f"b of shape {list(y.shape)} does not match a of shape {list(x.shape)}: b must "
            f"be ({n},) or (..., {n}, K)"
        )
    B = np.expand_dims(y, -1) if vector else y
    try:
        batch = np.broadcast_shapes(x.shape[:-2], B.shape[:-2])
    except ValueError as e:
        raise trace.error(f"batch dimensions of a and b: {e}") from None
    A = np.broadcast_to(_as(x, dtype), (*batch, n, n))
    B = np.broadcast_to(_as(B, dtype), (*batch, n, B.shape[-1]))
    out = _solve(A, B)
    return out[..., 0] if vector else out


def inv(a: Any) -> Array:
    x = _square(a)
    A = _as(x, _dtype(np.linalg.inv, x))
    n = A.shape[-1]
    identity = np.broadcast_to(np.eye(n, dtype=A.dtype), A.shape)
    return _solve(A, lift(identity))


def _pivots(a: Any, api: Callable[..., Any]) -> tuple[Array, Array]:
    x = _square(a)
    A = _as(x, _dtype(api, x))
    U, _, sign = _eliminate(A, None)
    return np.diagonal(U, axis1=-2, axis2=-1), sign


def det(a: Any) -> Array:
    diagonal, sign = _pivots(a, np.linalg.det)
    out: Array = sign * np.prod(diagonal, axis=-1)
    return out


def slogdet(a: Any) -> tuple[Array, Array]:
    diagonal, sign = _pivots(a, np.linalg.slogdet)
    sign = sign * np.prod(np.sign(diagonal), axis=-1)
    return sign, np.sum(np.log(np.abs(diagonal)), axis=-1)


FUNCTIONS: dict[Callable[..., Any], Callable[..., Any]] = {
    np.linalg.cholesky: cholesky,
    np.linalg.solve: solve,
    np.linalg.inv: inv,
    np.linalg.det: det,
    np.linalg.slogdet: slogdet,
}
