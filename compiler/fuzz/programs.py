"""The small programs the bad-input and cache campaigns call.

NumPy functions for `@jit` (one large enough for the GEMM library, a reduction, integer
arithmetic, a softmax) and graph files for `tessel run` and `tessel compile`. Each comes with
well-formed arguments; the campaigns spoil one of them or one of the files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def affine(x: Any, w: Any) -> Any:
    return np.maximum(x @ w + 0.5, 0.0)


def softmax(x: Any) -> Any:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def mixed(a: Any, b: Any) -> Any:
    return (a * 3 + b).sum(axis=0)


def scaled(x: Any) -> Any:
    return np.tanh(x) * 2.0


# name -> (function, the shape and dtype of each argument)
JIT_PROGRAMS: dict[str, tuple[Callable[..., Any], list[tuple[tuple[int, ...], str]]]] = {
    "affine": (affine, [((33, 64), "float32"), ((64, 17), "float32")]),
    "softmax": (softmax, [((5, 7), "float32")]),
    "mixed": (mixed, [((4, 6), "int32"), ((4, 6), "int32")]),
    "scaled": (scaled, [((9,), "float64")]),
}


def good_args(name: str, rng: np.random.Generator) -> list[np.ndarray]:
    _, specs = JIT_PROGRAMS[name]
    out = []
    for shape, dtype in specs:
        if dtype.startswith("int"):
            out.append(rng.integers(-50, 50, shape).astype(dtype))
        else:
            out.append(rng.standard_normal(shape).astype(dtype))
    return out


# `tessel run --input`: one float and one integer parameter
CLI_GRAPH = """\
func @main(%x: f32[3,4], %n: i32[4]) -> (f32[3,4], i32[4]) {
  %e = exp(%x) : f32[3,4]
  %m = mul(%n, %n) : i32[4]
  return %e, %m
}
"""

# weights files referenced by a graph file: one array of an .npz, one .npy
WEIGHTS_GRAPH = """\
func @main(%x: f32[2,4]) -> f32[2,3] {
  %w = constant "w.npz"["w"] : f32[4,3]
  %b = constant "b.npy" : f32[3]
  %y = matmul(%x, %w) : f32[2,3]
  %z = add(%y, %b) : f32[2,3]
  return %z
}
"""


def weights(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "w": rng.standard_normal((4, 3)).astype(np.float32),
        "b": rng.standard_normal(3).astype(np.float32),
    }


def aot_graph() -> str:
    """A dense layer whose weights are big enough to be kept outside the code when asked."""
    rng = np.random.default_rng(7)
    w = np.round(rng.standard_normal((16, 8)), 3).tolist()
    b = np.round(rng.standard_normal(8), 3).tolist()
    return (
        "func @main(%x: f32[4,16]) -> f32[4,8] {\n"
        f"  %w = constant {w} : f32[16,8]\n"
        f"  %b = constant {b} : f32[8]\n"
        "  %y = matmul(%x, %w) : f32[4,8]\n"
        "  %z = add(%y, %b) : f32[4,8]\n"
        "  %r = relu(%z) : f32[4,8]\n"
        "  return %r\n"
        "}\n"
    )
