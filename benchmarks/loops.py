"""Loop workloads: NumPy programs whose time is in a Python loop, as scientists write them.

Each is one plain NumPy function: NumPy runs it eagerly (every iteration goes through the
interpreter), Numba compiles it with `njit`, and tessel compiles it unchanged under `@jit`
(the loop becomes one `while` op: docs/jit.md). JAX cannot trace these Python loops over its
arrays, so its row is the same computation written with `jax.lax` loops, as a JAX user would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]
HEAT_ALPHA = 0.25


def diag_tanh(a: np.ndarray) -> Any:
    """A loop over the diagonal (issue 17's compile-time example)."""
    t = 0.0
    for i in range(a.shape[0]):
        t += np.tanh(a[i, i])
    return t


def make_heat(steps: int) -> Callable[[np.ndarray], np.ndarray]:
    def heat(u: np.ndarray) -> np.ndarray:
        """Explicit 1-D heat equation: an in-place stencil update per time step."""
        u = u.copy()
        for _ in range(steps):
            u[1:-1] = u[1:-1] + HEAT_ALPHA * (u[2:] - 2 * u[1:-1] + u[:-2])
        return u

    return heat


def newton_sqrt(x: np.ndarray) -> np.ndarray:
    """Square roots by Newton's iteration until every one has converged: a data-dependent
    while loop."""
    y = x.copy()
    while np.max(np.abs(y * y - x)) > 1e-4 * np.max(x):
        y = 0.5 * (y + x / y)
    return y


def function(kind: str, params: dict[str, Any]) -> Callable[..., Any]:
    """The plain NumPy function of a loop workload (its sizes fixed by `params`)."""
    if kind == "loop-diag":
        return diag_tanh
    if kind == "loop-heat":
        return make_heat(params["steps"])
    return newton_sqrt


def inputs(kind: str, params: dict[str, Any], rng: np.random.Generator) -> Arrays:
    n = params["n"]
    if kind == "loop-diag":
        return {"a": rng.standard_normal((n, n)).astype(np.float32)}
    if kind == "loop-heat":
        return {"u": rng.standard_normal(n).astype(np.float32)}
    # float64: Numba types 0.5 * float32 array as float64, and a carried value keeps its type
    return {"x": rng.uniform(1.0, 1000.0, n)}


def jax_function(kind: str, params: dict[str, Any]) -> Callable[..., Any]:
    """The same computation with jax.lax loops (JAX cannot trace the Python loops)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    if kind == "loop-diag":
        return jax.jit(
            lambda a: lax.fori_loop(
                0, a.shape[0], lambda i, t: t + jnp.tanh(a[i, i]), jnp.zeros((), a.dtype)
            )
        )
    if kind == "loop-heat":

        def heat_step(_: Any, u: Any) -> Any:
            return u.at[1:-1].set(u[1:-1] + HEAT_ALPHA * (u[2:] - 2 * u[1:-1] + u[:-2]))

        return jax.jit(lambda u: lax.fori_loop(0, params["steps"], heat_step, u))

    def newton(x: Any) -> Any:
        def unconverged(y: Any) -> Any:
            return jnp.max(jnp.abs(y * y - x)) > 1e-4 * jnp.max(x)

        return lax.while_loop(unconverged, lambda y: 0.5 * (y + x / y), x)

    return jax.jit(newton)
