"""The benchmark workloads: inputs, the NumPy reference, and the tessel graph of each.

A workload is data, not code paths: its `kind` selects the builder each engine uses
(`benchmarks/peers.py`), and `params` carries the sizes. The NumPy function is both the NumPy
peer and, run in float64, the reference every engine's result is checked against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
MLP_GRAPH = REPO / "samples" / "mlp.graph"
MLP_WEIGHTS = REPO / "samples" / "mlp.npz"

# the scalars of the elementwise chain relu(x*a + b) * sigmoid(x) - 0.5*tanh(x)
EW_A = np.float32(1.5)
EW_B = np.float32(0.25)

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class Workload:
    name: str  # unique, used by --only
    kind: str  # elementwise | softmax | matmul | mlp | conv2d | compile | compile-cached
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    flops: float | None = None  # floating-point operations per call, for GFLOP/s
    rtol: float = 1e-4
    atol: float = 1e-5  # scaled by max(1, |reference|.max())

    def inputs(self, rng: np.random.Generator) -> Arrays:
        return INPUTS[self.kind](self, rng)

    def reference(self, inputs: Arrays) -> np.ndarray:
        """The float64 NumPy result that every engine is checked against."""
        wide = {k: v.astype(np.float64) for k, v in inputs.items()}
        return NUMPY[self.kind](self, wide)

    def graph(self) -> str:
        """The tessel graph text (empty for the compile workloads, which read a file)."""
        return GRAPHS[self.kind](self) if self.kind in GRAPHS else ""


def _randn(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def mlp_weights() -> Arrays:
    with np.load(MLP_WEIGHTS) as archive:
        return {k: archive[k] for k in archive.files}


# ---- inputs ------------------------------------------------------------------------------------

INPUTS: dict[str, Callable[[Workload, np.random.Generator], Arrays]] = {
    "elementwise": lambda w, rng: {
        "x": _randn(rng, w.params["n"]),
        "a": np.array(EW_A),
        "b": np.array(EW_B),
    },
    "softmax": lambda w, rng: {"x": _randn(rng, w.params["rows"], w.params["cols"])},
    "matmul": lambda w, rng: {
        "a": _randn(rng, w.params["n"], w.params["n"]),
        "b": _randn(rng, w.params["n"], w.params["n"]),
    },
    "mlp": lambda w, rng: {"x": _randn(rng, w.params["batch"], 784)},
    "compile": lambda w, rng: {"x": _randn(rng, w.params["batch"], 784)},
    "compile-cached": lambda w, rng: {"x": _randn(rng, w.params["batch"], 784)},
    "conv2d": lambda w, rng: {
        "x": _randn(rng, 1, w.params["hw"], w.params["hw"], w.params["c"]),
        "w": _randn(rng, 3, 3, w.params["c"], w.params["c"], scale=(9 * w.params["c"]) ** -0.5),
    },
}


# ---- NumPy: the peer, and (in float64) the reference --------------------------------------------


def np_elementwise(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    y: np.ndarray = np.maximum(x * a + b, 0) * (1 / (1 + np.exp(-x))) - 0.5 * np.tanh(x)
    return y


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    y: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return y


def np_mlp(x: np.ndarray, weights: Arrays) -> np.ndarray:
    h1 = np.maximum(x @ weights["w1"] + weights["b1"], 0)
    h2 = np.maximum(h1 @ weights["w2"] + weights["b2"], 0)
    return np_softmax(h2 @ weights["w3"] + weights["b3"])


def np_conv2d_same(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """NHWC x HWIO, stride 1, SAME padding, by im2col and one matmul."""
    n, h, wd, c = x.shape
    kh, kw, _, o = w.shape
    pad = np.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))
    cols = np.lib.stride_tricks.sliding_window_view(pad, (kh, kw), axis=(1, 2))  # n,h,w,c,kh,kw
    patches = cols.transpose(0, 1, 2, 4, 5, 3).reshape(n * h * wd, kh * kw * c)
    y: np.ndarray = (patches @ w.reshape(kh * kw * c, o)).reshape(n, h, wd, o)
    return y


def _np_mlp_reference(w: Workload, a: Arrays) -> np.ndarray:
    weights = {k: v.astype(np.float64) for k, v in mlp_weights().items()}
    return np_mlp(a["x"], weights)


NUMPY: dict[str, Callable[[Workload, Arrays], np.ndarray]] = {
    "elementwise": lambda w, a: np_elementwise(a["x"], a["a"], a["b"]),
    "softmax": lambda w, a: np_softmax(a["x"]),
    "matmul": lambda w, a: a["a"] @ a["b"],
    "mlp": _np_mlp_reference,
    "compile": _np_mlp_reference,
    "compile-cached": _np_mlp_reference,
    "conv2d": lambda w, a: np_conv2d_same(a["x"], a["w"]),
}


# ---- tessel graphs -----------------------------------------------------------------------------


def _graph_elementwise(w: Workload) -> str:
    n = w.params["n"]
    return f"""func @main(%x: f32[{n}], %a: f32, %b: f32) -> f32[{n}] {{
  %xa = mul(%x, %a)
  %z = add(%xa, %b)
  %r = relu(%z)
  %s = sigmoid(%x)
  %p = mul(%r, %s)
  %t = tanh(%x)
  %h = mul(%t, 0.5)
  %y = sub(%p, %h)
  return %y
}}"""


def _graph_softmax(w: Workload) -> str:
    r, c = w.params["rows"], w.params["cols"]
    return f"""func @main(%x: f32[{r},{c}]) -> f32[{r},{c}] {{
  %y = softmax(%x)
  return %y
}}"""


def _graph_matmul(w: Workload) -> str:
    n = w.params["n"]
    return f"""func @main(%a: f32[{n},{n}], %b: f32[{n},{n}]) -> f32[{n},{n}] {{
  %c = matmul(%a, %b)
  return %c
}}"""


def _graph_conv2d(w: Workload) -> str:
    hw, c = w.params["hw"], w.params["c"]
    return f"""func @main(%x: f32[1,{hw},{hw},{c}], %w: f32[3,3,{c},{c}]) -> f32[1,{hw},{hw},{c}] {{
  %y = conv2d(%x, %w) {{padding = same}}
  return %y
}}"""


GRAPHS: dict[str, Callable[[Workload], str]] = {
    "elementwise": _graph_elementwise,
    "softmax": _graph_softmax,
    "matmul": _graph_matmul,
    "mlp": lambda w: MLP_GRAPH.read_text(),
    "conv2d": _graph_conv2d,
}


# ---- the suite ---------------------------------------------------------------------------------


def suite(quick: bool = False) -> list[Workload]:
    """Every workload, at full size or (quick) at sizes that run in well under a second."""
    n_ew = 100_000 if quick else 10_000_000
    rows, cols = (64, 128) if quick else (4096, 1024)
    sizes = (32, 64) if quick else (256, 512, 1024, 2048)
    hw, c = (8, 8) if quick else (56, 64)
    mlp_flops = 2.0 * 256 * (784 * 512 + 512 * 512 + 512 * 10)
    ew = "relu(x*a + b) * sigmoid(x) - 0.5*tanh(x)"
    out = [
        Workload("elementwise", "elementwise", f"{ew}, {n_ew:,} elements", {"n": n_ew}),
        Workload("softmax", "softmax", f"row softmax {rows}x{cols}", {"rows": rows, "cols": cols}),
    ]
    for n in sizes:
        out.append(Workload(f"matmul-{n}", "matmul", f"matmul {n}^3", {"n": n}, 2.0 * n**3))
    mlp = "MLP forward b256 784-512-512-10, bias+relu, softmax"
    out.append(Workload("mlp", "mlp", mlp, {"batch": 256}, mlp_flops))
    conv = f"conv2d NHWC 1x{hw}x{hw}x{c}, 3x3x{c}x{c}, stride 1, SAME"
    out.append(Workload("conv2d", "conv2d", conv, {"hw": hw, "c": c}, 2.0 * hw * hw * 9 * c * c))
    cold = "compile the MLP, cold: parse + passes + codegen + JIT"
    out.append(Workload("compile-mlp", "compile", cold, {"batch": 256}))
    cached = "compile the MLP again, from the compile cache"
    out.append(Workload("compile-mlp-cached", "compile-cached", cached, {"batch": 256}))
    return out
