"""Program workloads: small scientific programs written the way people write them in NumPy.

Each is one plain NumPy function with in-place updates, Python loops and branches on data (a
stencil, an LU factorization, k-means with masks, an n-body step, a CRC with a branch on bits,
a Mandelbrot set in complex numbers). NumPy runs it eagerly, tessel compiles it unchanged under
`@jit`, and Numba compiles it unchanged with `njit` (where that gives another result, its row
is the version a Numba user would write: `NUMBA_VARIANTS`). JAX cannot trace Python loops over its
arrays nor update them in place, so its row is the same computation written with `jax.lax`
loops and `.at[...].set`, as a JAX user would.

The programs compute in float64 (uint32 for the CRC, complex128 for the Mandelbrot set), which
is what NumPy gives a scientist by default; JAX runs them with x64 enabled to match.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]
KINDS = ("prog-jacobi", "prog-lu", "prog-kmeans", "prog-nbody", "prog-crc", "prog-mandelbrot")

NBODY_DT = 0.01
NBODY_SOFTENING = 0.1  # keeps the self-pair (distance 0) finite: it adds no force
CRC_POLY = 0xEDB88320  # CRC-32 (zlib's), bit-reversed


# ---- the NumPy programs ------------------------------------------------------------------------


def make_jacobi(steps: int) -> Callable[[np.ndarray], np.ndarray]:
    def jacobi_2d(A: np.ndarray) -> np.ndarray:
        """PolyBench jacobi-2d: two five-point sweeps per time step, each in place."""
        A = A.copy()
        B = A.copy()  # the border is never written: both arrays keep A's
        for _ in range(steps):
            B[1:-1, 1:-1] = 0.2 * (
                A[1:-1, 1:-1] + A[1:-1, :-2] + A[1:-1, 2:] + A[2:, 1:-1] + A[:-2, 1:-1]
            )
            A[1:-1, 1:-1] = 0.2 * (
                B[1:-1, 1:-1] + B[1:-1, :-2] + B[1:-1, 2:] + B[2:, 1:-1] + B[:-2, 1:-1]
            )
        return A

    return jacobi_2d


def lu(A: np.ndarray) -> np.ndarray:
    """LU factorization without pivoting, in place, a loop over the pivot rows (Gaussian
    elimination): L's multipliers below the diagonal, U on and above it."""
    A = A.copy()
    n = A.shape[0]
    for k in range(n - 1):
        A[k + 1 :, k] /= A[k, k]
        A[k + 1 :, k + 1 :] -= np.outer(A[k + 1 :, k], A[k, k + 1 :])
    return A


def make_kmeans(iters: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def kmeans(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
        """Lloyd's iterations: label each point with its nearest center, then move each
        center to the mean of its points, selected by a boolean mask (tessel reduces a masked
        selection `points[mask]` whole only, so the mask multiplies the rows instead)."""
        centers = centers.copy()
        for _ in range(iters):
            dist = ((points[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
            labels = dist.argmin(axis=1)
            for j in range(centers.shape[0]):
                mask = labels == j
                centers[j] = (points * mask[:, None]).sum(axis=0) / mask.sum()
        return centers

    return kmeans


def make_nbody(steps: int) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    def nbody(pos: np.ndarray, vel: np.ndarray, mass: np.ndarray) -> np.ndarray:
        """Direct-sum gravity, semi-implicit Euler steps; returns the final positions."""
        pos = pos.copy()
        vel = vel.copy()
        for _ in range(steps):
            d = pos[None, :, :] - pos[:, None, :]  # d[i, j] = pos[j] - pos[i]
            r2 = (d**2).sum(axis=2) + NBODY_SOFTENING**2
            acc = (d * (mass[None, :] * r2**-1.5)[:, :, None]).sum(axis=1)
            vel += acc * NBODY_DT
            pos += vel * NBODY_DT
        return pos

    return nbody


def crc32(data: np.ndarray) -> Any:
    """CRC-32 of the bytes held in a uint32 array, one bit at a time (zlib.crc32's value)."""
    crc = np.uint32(0xFFFFFFFF)
    for i in range(data.shape[0]):
        crc ^= data[i]
        for _ in range(8):
            if crc & 1:  # noqa: SIM108 - the branch on data is what this program measures
                crc = (crc >> 1) ^ np.uint32(CRC_POLY)
            else:
                crc = crc >> 1
    return ~crc


def make_mandelbrot(maxiter: int) -> Callable[[np.ndarray], np.ndarray]:
    def mandelbrot(c: np.ndarray) -> np.ndarray:
        """How many of `maxiter` iterations of z = z^2 + c stay within |z| <= 2."""
        z = np.zeros_like(c)
        count = np.zeros(c.shape, np.int32)
        for _ in range(maxiter):
            z = z * z + c
            inside = np.abs(z) <= 2
            count += inside
            z = np.where(inside, z, 2)  # keep escaped points bounded
        return count

    return mandelbrot


def function(kind: str, params: dict[str, Any]) -> Callable[..., Any]:
    """The plain NumPy function of a program workload (its sizes fixed by `params`)."""
    makers: dict[str, Callable[[], Callable[..., Any]]] = {
        "prog-jacobi": lambda: make_jacobi(params["steps"]),
        "prog-lu": lambda: lu,
        "prog-kmeans": lambda: make_kmeans(params["iters"]),
        "prog-nbody": lambda: make_nbody(params["steps"]),
        "prog-crc": lambda: crc32,
        "prog-mandelbrot": lambda: make_mandelbrot(params["maxiter"]),
    }
    return makers[kind]()


# ---- inputs ------------------------------------------------------------------------------------


def _kmeans_inputs(params: dict[str, Any], rng: np.random.Generator) -> Arrays:
    n, k = params["n"], params["k"]
    blobs = rng.uniform(-10.0, 10.0, (k, 2))
    # point i belongs to blob i % k, so the first k points start one center in each blob and
    # no cluster ever becomes empty (its mean would be 0 / 0)
    points = blobs[np.arange(n) % k] + rng.standard_normal((n, 2))
    return {"points": points, "centers": points[:k].copy()}


def _mandelbrot_grid(params: dict[str, Any]) -> Arrays:
    re = np.linspace(-2.0, 0.5, params["width"])
    im = np.linspace(-1.25, 1.25, params["height"])
    return {"c": re[None, :] + 1j * im[:, None]}


def inputs(kind: str, params: dict[str, Any], rng: np.random.Generator) -> Arrays:
    n = params.get("n", 0)
    if kind == "prog-jacobi":
        return {"A": rng.standard_normal((n, n))}
    if kind == "prog-lu":  # diagonally dominant: elimination without pivoting is stable
        return {"A": rng.standard_normal((n, n)) + n * np.eye(n)}
    if kind == "prog-kmeans":
        return _kmeans_inputs(params, rng)
    if kind == "prog-nbody":
        return {
            "pos": rng.standard_normal((n, 3)),
            "vel": 0.1 * rng.standard_normal((n, 3)),
            "mass": rng.uniform(0.5, 1.5, n) / n,
        }
    if kind == "prog-crc":
        return {"data": rng.integers(0, 256, n, dtype=np.uint32)}
    return _mandelbrot_grid(params)


# ---- Numba -------------------------------------------------------------------------------------


def crc32_masked(data: np.ndarray) -> Any:
    """`crc32` for Numba, whose integer typing carries `crc` in 64 bits after the first `^`:
    its final `~` would set the upper 32 bits too, so the result is masked back to 32."""
    crc = np.uint32(0xFFFFFFFF)
    for i in range(data.shape[0]):
        crc ^= data[i]
        for _ in range(8):
            if crc & 1:  # noqa: SIM108 - the branch on data is what this program measures
                crc = (crc >> 1) ^ np.uint32(CRC_POLY)
            else:
                crc = crc >> 1
    return ~crc & np.uint32(0xFFFFFFFF)


# where njit computes another value from the NumPy program as written, the version a Numba
# user writes (njit compiles all six; the Mandelbrot set's array version runs slower under it
# than a loop per pixel would, but it is the program as written)
NUMBA_VARIANTS: dict[str, Callable[[dict[str, Any]], Callable[..., Any]]] = {
    "prog-crc": lambda params: crc32_masked,
}


def numba_function(kind: str, params: dict[str, Any]) -> Callable[..., Any]:
    """The function Numba's njit compiles: the NumPy program itself unless it needs a variant."""
    variant = NUMBA_VARIANTS.get(kind)
    return variant(params) if variant else function(kind, params)


# ---- JAX ---------------------------------------------------------------------------------------


def _jax_jacobi(steps: int) -> Callable[..., Any]:
    from jax import lax

    def sweep(x: Any) -> Any:
        return x.at[1:-1, 1:-1].set(
            0.2 * (x[1:-1, 1:-1] + x[1:-1, :-2] + x[1:-1, 2:] + x[2:, 1:-1] + x[:-2, 1:-1])
        )

    return lambda a: lax.fori_loop(0, steps, lambda _, x: sweep(sweep(x)), a)


def _jax_lu(a: Any) -> Any:
    """The same elimination with fixed shapes: rows and columns past k are selected by masks."""
    import jax.numpy as jnp
    from jax import lax

    below = jnp.arange(a.shape[0])

    def eliminate(k: Any, a: Any) -> Any:
        after = below > k
        multipliers = jnp.where(after, a[:, k] / a[k, k], 0.0)
        a = a - jnp.outer(multipliers, jnp.where(after, a[k, :], 0.0))
        return a.at[:, k].set(jnp.where(after, multipliers, a[:, k]))

    return lax.fori_loop(0, a.shape[0] - 1, eliminate, a)


def _jax_kmeans(iters: int) -> Callable[..., Any]:
    import jax.numpy as jnp
    from jax import lax

    def kmeans(points: Any, centers: Any) -> Any:
        def step(_: Any, centers: Any) -> Any:
            dist = ((points[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
            onehot = dist.argmin(axis=1)[:, None] == jnp.arange(centers.shape[0])
            sums = onehot.T.astype(points.dtype) @ points
            return sums / onehot.sum(axis=0)[:, None]

        return lax.fori_loop(0, iters, step, centers)

    return kmeans


def _jax_nbody(steps: int) -> Callable[..., Any]:
    from jax import lax

    def nbody(pos: Any, vel: Any, mass: Any) -> Any:
        def step(_: Any, state: tuple[Any, Any]) -> tuple[Any, Any]:
            pos, vel = state
            d = pos[None, :, :] - pos[:, None, :]
            r2 = (d**2).sum(axis=2) + NBODY_SOFTENING**2
            acc = (d * (mass[None, :] * r2**-1.5)[:, :, None]).sum(axis=1)
            vel = vel + acc * NBODY_DT
            return pos + vel * NBODY_DT, vel

        return lax.fori_loop(0, steps, step, (pos, vel))[0]

    return nbody


def _jax_crc32(data: Any) -> Any:
    import jax.numpy as jnp
    from jax import lax

    poly = jnp.uint32(CRC_POLY)

    def bit(_: Any, crc: Any) -> Any:
        return jnp.where(crc & 1, (crc >> 1) ^ poly, crc >> 1)

    def byte(i: Any, crc: Any) -> Any:
        return lax.fori_loop(0, 8, bit, crc ^ data[i])

    return ~lax.fori_loop(0, data.shape[0], byte, jnp.uint32(0xFFFFFFFF))


def _jax_mandelbrot(maxiter: int) -> Callable[..., Any]:
    import jax.numpy as jnp
    from jax import lax

    def mandelbrot(c: Any) -> Any:
        def step(_: Any, state: tuple[Any, Any]) -> tuple[Any, Any]:
            z, count = state
            z = z * z + c
            inside = jnp.abs(z) <= 2
            return jnp.where(inside, z, 2), count + inside

        start = (jnp.zeros_like(c), jnp.zeros(c.shape, jnp.int32))
        return lax.fori_loop(0, maxiter, step, start)[1]

    return mandelbrot


def jax_function(kind: str, params: dict[str, Any]) -> Callable[..., Any]:
    """The same computation with jax.lax loops, jitted; call it (and put its arguments on the
    device) under `jax.enable_x64(True)`, so that it computes in the programs' dtypes."""
    import jax

    makers: dict[str, Callable[[], Callable[..., Any]]] = {
        "prog-jacobi": lambda: _jax_jacobi(params["steps"]),
        "prog-lu": lambda: _jax_lu,
        "prog-kmeans": lambda: _jax_kmeans(params["iters"]),
        "prog-nbody": lambda: _jax_nbody(params["steps"]),
        "prog-crc": lambda: _jax_crc32,
        "prog-mandelbrot": lambda: _jax_mandelbrot(params["maxiter"]),
    }
    return jax.jit(makers[kind]())
