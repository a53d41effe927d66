"""What a child process runs in test_fork.py: it must be importable by name (spawn, forkserver)."""

from __future__ import annotations

import numpy as np

from compiler import jit

N = 384  # large enough that the GEMM's rows are split across the thread pool


@jit
def product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a @ b


def operands(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, N), np.float32), rng.standard_normal((N, N), np.float32)


def error(seed: int) -> float:
    """Relative error of the compiled product against NumPy's, computed in this process."""
    a, b = operands(seed)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    return float(np.max(np.abs(product(a, b) - exact)) / np.max(np.abs(exact)))
