"""The benchmark workloads: inputs, the NumPy reference, and the tessel graph of each.

A workload is data, not code paths: its `kind` selects the builder each engine uses
(`benchmarks/peers.py`), and `params` carries the sizes. The NumPy function is both the NumPy
peer and, run in float64, the reference every engine's result is checked against. A `jit-KIND`
workload is KIND again, but tessel runs the plain NumPy function under `@jit` instead of the
graph text, so the two front doors can be compared on the same computation. The `loop-*` and
`prog-*` workloads are plain NumPy functions only (benchmarks/loops.py, benchmarks/programs.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from benchmarks import loops, programs

REPO = Path(__file__).resolve().parent.parent
MLP_GRAPH = REPO / "samples" / "mlp.graph"
MLP_WEIGHTS = REPO / "samples" / "mlp.npz"

# the scalars of the elementwise chain relu(x*a + b) * sigmoid(x) - 0.5*tanh(x)
EW_A = np.float32(1.5)
EW_B = np.float32(0.25)

Arrays = dict[str, np.ndarray]
LOOP_KINDS = ("loop-diag", "loop-heat", "loop-newton")  # benchmarks/loops.py
PROG_KINDS = programs.KINDS  # prog-jacobi, prog-lu, ...: benchmarks/programs.py


@dataclass(frozen=True)
class Workload:
    name: str  # unique, used by --only
    # elementwise | softmax | matmul | matmul-int8 | matmul-bf16 | mlp | conv2d | compile |
    # compile-cached |
    # dispatch | compile-deep | jit-elementwise | jit-softmax | jit-mlp |
    # loop-diag | loop-heat | loop-newton (benchmarks/loops.py) |
    # prog-jacobi | prog-lu | prog-kmeans | prog-nbody | prog-crc | prog-mandelbrot
    # (benchmarks/programs.py)
    kind: str
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    # operations per call, for GFLOP/s (integer multiplies and adds for matmul-int8: GOP/s)
    flops: float | None = None
    rtol: float = 1e-4
    atol: float = 1e-5  # scaled by max(1, |reference|.max())
    unit: str = "ms"  # how the table shows a time: "us" for per-call overheads
    min_calls: int = 1  # calls per timed sample at least, so timer resolution does not matter

    @property
    def base_kind(self) -> str:
        """The computation, whichever front door tessel uses for it."""
        return self.kind.removeprefix("jit-")

    @property
    def returns_result(self) -> bool:
        """False when a call returns a compiled object rather than a result to check."""
        return self.kind not in ("compile", "compile-cached")

    @property
    def compares_graph(self) -> bool:
        """Whether tessel's @jit time is shown next to the graph-file time of the same graph."""
        return self.kind == "dispatch" or self.kind.startswith("jit-")

    def inputs(self, rng: np.random.Generator) -> Arrays:
        return INPUTS[self.base_kind](self, rng)

    def reference(self, inputs: Arrays) -> np.ndarray:
        """The float64 NumPy result that every engine is checked against."""
        if self.base_kind in PROG_KINDS:
            # the programs compute in their own dtypes already (float64, and uint32 or
            # complex128, which a cast to float64 would break)
            return NUMPY[self.base_kind](self, inputs)
        wide = {k: v.astype(np.float64) for k, v in inputs.items()}
        return NUMPY[self.base_kind](self, wide)

    def graph(self) -> str:
        """The tessel graph text (empty for the compile workloads, which read a file)."""
        return GRAPHS[self.base_kind](self) if self.base_kind in GRAPHS else ""

    def numpy_function(self) -> Callable[..., np.ndarray]:
        """The unmodified NumPy function that `@jit` compiles; it takes the inputs in order."""
        return JIT_FUNCTIONS[self.base_kind](self)


def _randn(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def mlp_weights() -> Arrays:
    with np.load(MLP_WEIGHTS) as archive:
        return {k: archive[k] for k in archive.files}


def deep_params(inputs: Arrays) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (weight, bias) pairs of a `compile-deep` workload, as a pytree argument."""
    layers = sum(1 for k in inputs if k.startswith("w"))
    return [(inputs[f"w{i}"], inputs[f"b{i}"]) for i in range(layers)]


def _deep_inputs(w: Workload, rng: np.random.Generator) -> Arrays:
    width = w.params["width"]
    out = {"x": _randn(rng, w.params["batch"], width)}
    for i in range(w.params["layers"]):
        # He scaling keeps the activations near unit size through 32 relu layers
        out[f"w{i}"] = _randn(rng, width, width, scale=(2 / width) ** 0.5)
        out[f"b{i}"] = _randn(rng, width, scale=0.1)
    return out


# ---- inputs ------------------------------------------------------------------------------------

INPUTS: dict[str, Callable[[Workload, np.random.Generator], Arrays]] = {
    "elementwise": lambda w, rng: {
        "x": _randn(rng, w.params["n"]),
        "a": np.array(EW_A),
        "b": np.array(EW_B),
    },
    "softmax": lambda w, rng: {"x": _randn(rng, w.params["rows"], w.params["cols"])},
    "matmul": lambda w, rng: {
        "a": _randn(rng, *_mkn(w)[:2]),
        "b": _randn(rng, *_mkn(w)[1:]),
    },
    "matmul-int8": lambda w, rng: {
        "a": rng.integers(-128, 128, (w.params["n"], w.params["n"]), dtype=np.int8),
        "b": rng.integers(-128, 128, (w.params["n"], w.params["n"]), dtype=np.int8),
    },
    "matmul-bf16": lambda w, rng: {
        "a": _randn(rng, w.params["n"], w.params["n"]).astype(ml_dtypes.bfloat16),
        "b": _randn(rng, w.params["n"], w.params["n"]).astype(ml_dtypes.bfloat16),
    },
    "mlp": lambda w, rng: {"x": _randn(rng, w.params["batch"], 784)},
    "compile": lambda w, rng: {"x": _randn(rng, w.params["batch"], 784)},
    "compile-cached": lambda w, rng: {"x": _randn(rng, w.params["batch"], 784)},
    "conv2d": lambda w, rng: {
        "x": _randn(rng, 1, w.params["hw"], w.params["hw"], w.params["c"]),
        "w": _randn(rng, 3, 3, w.params["c"], w.params["c"], scale=(9 * w.params["c"]) ** -0.5),
    },
    "conv2d-int8": lambda w, rng: {
        "x": rng.integers(-128, 128, (1, w.params["hw"], w.params["hw"], w.params["c"]), np.int8),
        "w": rng.integers(-128, 128, (3, 3, w.params["c"], w.params["c"]), np.int8),
    },
    "dispatch": lambda w, rng: {"x": _randn(rng, w.params["n"])},
    "compile-deep": _deep_inputs,
    **{k: lambda w, rng: loops.inputs(w.kind, w.params, rng) for k in LOOP_KINDS},
    **{k: lambda w, rng: programs.inputs(w.kind, w.params, rng) for k in PROG_KINDS},
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


def np_tiny(x: np.ndarray) -> np.ndarray:
    """So little work that a call's time is the engine's dispatch overhead."""
    y: np.ndarray = np.exp(x) * 2
    return y


def np_deep_mlp(x: np.ndarray, params: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    for w, b in params:
        x = np.maximum(x @ w + b, 0)
    return x


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
    # in float64 every partial sum of 8-bit products (< 2^53) is exact: the integer result
    "matmul-int8": lambda w, a: a["a"] @ a["b"],
    # bf16 values are exact in float64, and so are their products
    "matmul-bf16": lambda w, a: a["a"].astype(np.float64) @ a["b"].astype(np.float64),
    "mlp": _np_mlp_reference,
    "compile": _np_mlp_reference,
    "compile-cached": _np_mlp_reference,
    "conv2d": lambda w, a: np_conv2d_same(a["x"], a["w"]),
    # exact in float64, as matmul-int8 (a sum of 9 * c 16-bit products)
    "conv2d-int8": lambda w, a: np_conv2d_same(a["x"], a["w"]),
    "dispatch": lambda w, a: np_tiny(a["x"]),
    "compile-deep": lambda w, a: np_deep_mlp(a["x"], deep_params(a)),
    **{
        k: lambda w, a: np.asarray(w.numpy_function()(*a.values()))
        for k in (*LOOP_KINDS, *PROG_KINDS)
    },
}


def _jit_mlp(w: Workload) -> Callable[..., np.ndarray]:
    # the weights are closed over, so they are constants of the trace as in samples/mlp.graph
    weights = mlp_weights()

    def mlp(x: np.ndarray) -> np.ndarray:
        return np_mlp(x, weights)

    return mlp


JIT_FUNCTIONS: dict[str, Callable[[Workload], Callable[..., np.ndarray]]] = {
    "elementwise": lambda w: np_elementwise,
    "softmax": lambda w: np_softmax,
    "mlp": _jit_mlp,
    "dispatch": lambda w: np_tiny,
    "compile-deep": lambda w: np_deep_mlp,
    **{k: lambda w: loops.function(w.kind, w.params) for k in LOOP_KINDS},
    **{k: lambda w: programs.function(w.kind, w.params) for k in PROG_KINDS},
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


def _mkn(w: Workload) -> tuple[int, int, int]:
    """A matmul's (M, K, N): square unless the workload says otherwise."""
    n = w.params["n"]
    return w.params.get("m", n), w.params.get("k", n), n


def _graph_matmul(w: Workload) -> str:
    m, k, n = _mkn(w)
    return f"""func @main(%a: f32[{m},{k}], %b: f32[{k},{n}]) -> f32[{m},{n}] {{
  %c = matmul(%a, %b)
  return %c
}}"""


def _graph_matmul_int8(w: Workload) -> str:
    n = w.params["n"]
    dims = "lhs_contract = [1], rhs_contract = [0], lhs_batch = [], rhs_batch = []"
    return f"""func @main(%a: i8[{n},{n}], %b: i8[{n},{n}]) -> i32[{n},{n}] {{
  %c = dot_general(%a, %b) {{{dims}, out_dtype = i32}}
  return %c
}}"""


def _graph_matmul_bf16(w: Workload) -> str:
    n = w.params["n"]
    dims = "lhs_contract = [1], rhs_contract = [0]"
    return f"""func @main(%a: bf16[{n},{n}], %b: bf16[{n},{n}]) -> f32[{n},{n}] {{
  %c = dot_general(%a, %b) {{{dims}, out_dtype = f32}}
  return %c
}}"""


def _graph_conv2d(w: Workload) -> str:
    hw, c = w.params["hw"], w.params["c"]
    return f"""func @main(%x: f32[1,{hw},{hw},{c}], %w: f32[3,3,{c},{c}]) -> f32[1,{hw},{hw},{c}] {{
  %y = conv2d(%x, %w) {{padding = same}}
  return %y
}}"""


def _graph_conv2d_int8(w: Workload) -> str:
    hw, c = w.params["hw"], w.params["c"]
    return f"""func @main(%x: i8[1,{hw},{hw},{c}], %w: i8[3,3,{c},{c}]) -> i32[1,{hw},{hw},{c}] {{
  %y = conv2d(%x, %w) {{padding = same, out_dtype = i32}}
  return %y
}}"""


def _graph_dispatch(w: Workload) -> str:
    n = w.params["n"]
    return f"""func @main(%x: f32[{n}]) -> f32[{n}] {{
  %e = exp(%x)
  %y = mul(%e, 2.0)
  return %y
}}"""


GRAPHS: dict[str, Callable[[Workload], str]] = {
    "elementwise": _graph_elementwise,
    "softmax": _graph_softmax,
    "matmul": _graph_matmul,
    "matmul-int8": _graph_matmul_int8,
    "matmul-bf16": _graph_matmul_bf16,
    "mlp": lambda w: MLP_GRAPH.read_text(),
    "conv2d": _graph_conv2d,
    "conv2d-int8": _graph_conv2d_int8,
    "dispatch": _graph_dispatch,
}


# ---- the suite ---------------------------------------------------------------------------------


def _programs(quick: bool) -> list[Workload]:
    """The `prog-*` workloads: full sizes take NumPy about 5-50 ms per call."""
    n, steps = (16, 2) if quick else (256, 20)
    desc = f"PolyBench jacobi-2d, {n}x{n} float64, {steps} steps of two in-place sweeps"
    out = [Workload("prog-jacobi", "prog-jacobi", desc, {"n": n, "steps": steps})]
    # @jit unrolls the loop (its index slices A[k + 1:]): compile time grows with n, ~17 s at 128
    n = 8 if quick else 128
    desc = f"LU without pivoting of a {n}x{n} float64 matrix, a loop over the pivot rows"
    out.append(Workload("prog-lu", "prog-lu", desc, {"n": n}))
    n, k, iters = (64, 3, 2) if quick else (5000, 8, 10)
    desc = f"k-means, {n:,} 2-d points, {k} centers, {iters} Lloyd iterations with masks"
    out.append(Workload("prog-kmeans", "prog-kmeans", desc, {"n": n, "k": k, "iters": iters}))
    n, steps = (16, 2) if quick else (256, 5)
    desc = f"n-body, {n} bodies, {steps} steps: pairwise r^-3, in-place vel and pos updates"
    out.append(Workload("prog-nbody", "prog-nbody", desc, {"n": n, "steps": steps}))
    n = 64 if quick else 2000
    desc = f"CRC-32 of {n:,} bytes (uint32), bit by bit with a branch on the low bit"
    # the check is exact: a checksum has one right answer
    out.append(Workload("prog-crc", "prog-crc", desc, {"n": n}, rtol=0, atol=0))
    (h, wd), maxiter = ((8, 12), 10) if quick else ((200, 300), 50)
    desc = f"Mandelbrot escape counts, {h}x{wd} complex128 grid, {maxiter} iterations"
    params = {"height": h, "width": wd, "maxiter": maxiter}
    # counts are integers: every engine must agree exactly
    out.append(Workload("prog-mandelbrot", "prog-mandelbrot", desc, params, rtol=0, atol=0))
    return out


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
    n = 64 if quick else 4096  # matrix-vector products: bound by reading the matrix once
    shape = {"m": n, "k": n, "n": 1}
    out.append(Workload(f"matvec-{n}", "matmul", f"{n}x{n} @ {n}x1", shape, 2.0 * n * n))
    shape = {"m": 1, "k": n, "n": n}
    out.append(Workload(f"vecmat-{n}", "matmul", f"1x{n} @ {n}x{n}", shape, 2.0 * n * n))
    n = 64 if quick else 1024
    desc = f"int8 matmul {n}^3, i8 x i8 -> i32 (exact)"
    # the check is exact: integer sums have one right answer
    out.append(
        Workload(f"matmul-int8-{n}", "matmul-int8", desc, {"n": n}, 2.0 * n**3, rtol=0, atol=0)
    )
    # f32 sums of exact products, as the f32 matmul's: the same tolerance
    desc = f"bf16 matmul {n}^3, bf16 x bf16 -> f32"
    out.append(Workload(f"matmul-bf16-{n}", "matmul-bf16", desc, {"n": n}, 2.0 * n**3))
    mlp = "MLP forward b256 784-512-512-10, bias+relu, softmax"
    out.append(Workload("mlp", "mlp", mlp, {"batch": 256}, mlp_flops))
    conv = f"conv2d NHWC 1x{hw}x{hw}x{c}, 3x3x{c}x{c}, stride 1, SAME"
    out.append(Workload("conv2d", "conv2d", conv, {"hw": hw, "c": c}, 2.0 * hw * hw * 9 * c * c))
    conv = f"int8 {conv}, i8 x i8 -> i32 (exact)"
    out.append(
        Workload(
            "conv2d-int8", "conv2d-int8", conv, {"hw": hw, "c": c}, 2.0 * hw * hw * 9 * c * c,
            rtol=0, atol=0,
        )
    )  # fmt: skip
    cold = "compile the MLP, cold: parse + passes + codegen + JIT"
    out.append(Workload("compile-mlp", "compile", cold, {"batch": 256}))
    cached = "compile the MLP again, from the compile cache"
    out.append(Workload("compile-mlp-cached", "compile-cached", cached, {"batch": 256}))
    tiny = "cached call of exp(x) * 2 on float32[4]: the per-call overhead"
    out.append(Workload("dispatch", "dispatch", tiny, {"n": 4}, unit="us", min_calls=10_000))
    # the quick run keeps the 2-layer case only: 32 cold tessel compiles take seconds each
    width, batch = (32, 8) if quick else (256, 32)
    for layers in (2,) if quick else (2, 32):
        first = f"first call of a fresh @jit: {layers} x (matmul {width}, bias, relu), b{batch}"
        params = {"layers": layers, "width": width, "batch": batch}
        out.append(Workload(f"compile-mlp{layers}", "compile-deep", first, params))
    n = 200 if quick else 2000
    out.append(
        Workload(
            "loop-diag",
            "loop-diag",
            f"sum of tanh over a {n}x{n} diagonal, a Python loop",
            {"n": n},
        )
    )
    n, steps = (1000, 10) if quick else (100_000, 200)
    desc = f"1-D heat equation, {n:,} points, {steps} in-place stencil steps"
    out.append(Workload("loop-heat", "loop-heat", desc, {"n": n, "steps": steps}))
    n = 1000 if quick else 100_000
    desc = f"Newton square roots of {n:,} values, while not converged"
    out.append(Workload("loop-newton", "loop-newton", desc, {"n": n}))
    out += _programs(quick)
    by_name = {w.name: w for w in out}
    for w in (by_name["elementwise"], by_name["softmax"], by_name["mlp"]):
        desc = f"{w.description}, as a NumPy function under @jit"
        out.append(Workload(f"jit-{w.name}", f"jit-{w.kind}", desc, w.params, w.flops))
    return out
