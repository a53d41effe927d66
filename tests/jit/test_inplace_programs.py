"""Programs that update arrays in place, written the way scientists write them (PolyBench-style
kernels, solvers with loops over rows, optimizer steps), compiled unchanged: results and the
arguments they write match eager NumPy on the interpreter and the CPU backend."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from compiler import jit

TARGETS = ("interp", "cpu")
RNG = np.random.default_rng(5)


def jacobi_2d(A, B, steps):
    for _ in range(steps):
        B[1:-1, 1:-1] = 0.2 * (A[1:-1, 1:-1] + A[1:-1, :-2] + A[1:-1, 2:] + A[2:, 1:-1]
                               + A[:-2, 1:-1])  # fmt: skip
        A[1:-1, 1:-1] = 0.2 * (B[1:-1, 1:-1] + B[1:-1, :-2] + B[1:-1, 2:] + B[2:, 1:-1]
                               + B[:-2, 1:-1])  # fmt: skip


def heat_1d(u, alpha, steps):
    for _ in range(steps):
        u[1:-1] += alpha * (u[2:] - 2 * u[1:-1] + u[:-2])
    return u.max()


def lu(A):
    n = A.shape[0]
    for i in range(n):
        for j in range(i):
            A[i, j] -= A[i, :j] @ A[:j, j]
            A[i, j] /= A[j, j]
        for j in range(i, n):
            A[i, j] -= A[i, :i] @ A[:i, j]


def forward_substitution(L, b):
    x = np.zeros_like(b)
    for i in range(b.shape[0]):
        x[i] = (b[i] - L[i, :i] @ x[:i]) / L[i, i]
    return x


def cholesky(A):
    n = A.shape[0]
    L = np.zeros_like(A)
    for i in range(n):
        for j in range(i + 1):
            s = A[i, j] - L[i, :j] @ L[j, :j]
            L[i, j] = np.sqrt(s) if i == j else s / L[j, j]
    return L


def gemm(alpha, beta, C, A, B):
    C[:] = alpha * A @ B + beta * C


def atax(A, x, y, tmp):
    tmp[:] = A @ x
    y[:] = A.T @ tmp


def prefix_sum(x):
    for i in range(1, x.shape[0]):
        x[i] += x[i - 1]


def normalize_rows(X):
    for row in X:
        row /= np.linalg.norm(row)
    return X


def nbody_step(pos, vel, mass, dt):
    d = pos[None, :, :] - pos[:, None, :]
    r2 = (d**2).sum(-1) + 1e-3
    acc = (d * (mass[None, :, None] / r2[..., None] ** 1.5)).sum(axis=1)
    vel += acc * dt
    pos += vel * dt


def sgd_momentum(params, grads, velocity, lr, mu):
    for k in params:
        velocity[k] *= mu
        velocity[k] -= lr * grads[k]
        params[k] += velocity[k]


def mandelbrot(c, maxiter):
    z = np.zeros_like(c)
    count = np.zeros(c.shape, np.int32)
    for _ in range(maxiter):
        z = z * z + c
        inside = np.abs(z) <= 2
        count += inside
        z = np.where(inside, z, 2)
    return count


def crc32(data):
    crc = np.uint32(0xFFFFFFFF)
    for i in range(data.shape[0]):
        crc ^= data[i]
        for _ in range(8):
            if crc & 1:  # noqa: SIM108 (as written)
                crc = (crc >> 1) ^ np.uint32(0xEDB88320)
            else:
                crc = crc >> 1
    return ~crc


def crc32_bytes(data):  # iterating over the array itself
    crc = np.uint32(0xFFFFFFFF)
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (np.uint32(0xEDB88320) & -(crc & 1))
    return ~crc


def complex_grid(dtype, rows=5, cols=7):
    """Points of the plane around the Mandelbrot set: some inside it, most outside."""
    re, im = np.meshgrid(np.linspace(-2.0, 0.6, cols), np.linspace(-1.2, 1.2, rows))
    return (re + 1j * im).astype(dtype)


def byte_data(n):
    return RNG.integers(0, 256, n).astype(np.uint32)


def spd(n):
    a = RNG.standard_normal((n, n))
    return a @ a.T + n * np.eye(n)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


MAXITER = {"static_argnames": "maxiter"}  # one loop unrolled 30 times; traced below
PROGRAMS: list[tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = [
    ("jacobi_2d", jacobi_2d, (f32(12, 9), f32(12, 9), 3), {"static_argnames": "steps"}),
    ("jacobi_2d-3x3", jacobi_2d, (f32(3, 3), f32(3, 3), 2), {"static_argnames": "steps"}),
    ("heat_1d", heat_1d, (f32(33), 0.2, 10), {"static_argnames": "steps"}),
    ("lu", lu, (spd(7),), {}),
    ("lu-1x1", lu, (spd(1),), {}),
    ("forward_substitution", forward_substitution, (np.tril(spd(9)), RNG.standard_normal(9)), {}),
    ("cholesky", cholesky, (spd(6),), {}),
    ("gemm", gemm, (1.5, 0.5, f32(5, 7), f32(5, 3), f32(3, 7)), {}),
    ("atax", atax, (f32(6, 5), f32(5), f32(5), f32(6)), {}),
    ("prefix_sum", prefix_sum, (RNG.integers(-5, 5, 17),), {}),
    ("normalize_rows", normalize_rows, (f32(4, 7),), {}),
    ("nbody_step", nbody_step, (f32(5, 3), f32(5, 3), np.abs(f32(5)), 0.01), {}),
    ("mandelbrot-c128", mandelbrot, (complex_grid(np.complex128), 30), MAXITER),
    ("mandelbrot-c64", mandelbrot, (complex_grid(np.complex64), 30), MAXITER),
    ("mandelbrot-traced-maxiter", mandelbrot, (complex_grid(np.complex128, 3, 4), 30), {}),
    ("crc32-0", crc32, (byte_data(0),), {}),
    ("crc32-1", crc32, (byte_data(1),), {}),
    # unrolled whole (MAX_UNROLL bytes): a chain of 128 branches on bits, which once kept
    # LLVM's loop vectorizer busy for minutes
    ("crc32-16", crc32, (byte_data(16),), {}),
    ("crc32-40", crc32, (byte_data(40),), {}),
    ("crc32_bytes-0", crc32_bytes, (byte_data(0),), {}),
    ("crc32_bytes-1", crc32_bytes, (byte_data(1),), {}),
    ("crc32_bytes-40", crc32_bytes, (byte_data(40),), {}),
    ("sgd_momentum", sgd_momentum,
     ({"w": f32(4, 3), "b": f32(3)}, {"w": f32(4, 3), "b": f32(3)},
      {"w": np.zeros((4, 3), np.float32), "b": np.zeros(3, np.float32)}, 0.1, 0.9), {}),
]  # fmt: skip


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value.copy() if isinstance(value, np.ndarray) else value


def _close(got: Any, want: Any) -> None:
    if isinstance(want, dict | list | tuple):
        items = want.items() if isinstance(want, dict) else enumerate(want)
        for k, w in items:
            _close(got[k], w)
    elif want is None:
        assert got is None
    else:
        got, want = np.asarray(got), np.asarray(want)
        assert got.dtype == want.dtype
        tol = 1e-4 if want.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("name", "fn", "args", "options"), PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_program_matches_numpy_arguments_included(
    name: str, fn: Callable[..., Any], args: tuple[Any, ...], options: dict[str, Any], target: str
) -> None:
    numpy_args = [_copy(a) for a in args]
    want = fn(*numpy_args)
    ours = [_copy(a) for a in args]
    got = jit(fn, target=target, **options)(*ours)
    _close(got, want)
    _close(ours, numpy_args)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("fn", [crc32, crc32_bytes])
def test_crc32_matches_zlib(fn: Callable[..., Any], target: str) -> None:
    compiled = jit(fn, target=target)
    for n in (0, 1, 40):
        data = byte_data(n)
        got = compiled(data)
        assert got.dtype == np.uint32
        assert int(got) == zlib.crc32(data.astype(np.uint8).tobytes()), n
