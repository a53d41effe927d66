"""Infinities and NaNs in a contraction's inputs follow IEEE on every kernel, as in the reference.

The semantics (docs/cpu.md, "Contractions and non-finite values"): a product with a NaN is NaN,
inf x 0 is NaN, and terms of both infinite signs sum to NaN whatever the order; one sign gives
that infinity. The GEMM, the matrix-vector kernels and the generic loops, at every capability
level this host runs (FMA or not), agree with the interpreter on which outputs are NaN, +inf,
-inf or finite. Overflow of finite products: tests/backends/test_exact_range.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from codegen.cpu_caps import host_levels
from codegen.executable import CpuExecutable
from codegen.jit import host_target
from ir.builder import make_node, parameter
from ir.dtypes import DType
from ir.graph import Function, Module
from ir.ops import Op
from ir.parser import parse_module
from ir.types import TensorType
from runtime.interp import run_function

# (M, K, N): vector x matrix, matrix x vector, the GEMM (small, and large enough to pack and
# split K into blocks), a K of 1
SHAPES = [(1, 5, 1), (1, 9, 7), (7, 9, 1), (13, 40, 17), (64, 300, 33), (3, 1, 4)]
SPECIAL = np.array([np.inf, -np.inf, np.nan, 0.0])


def _kind(values: np.ndarray) -> np.ndarray:
    """0 finite, 1 nan, 2 +inf, 3 -inf."""
    return np.select([np.isnan(values), np.isposinf(values), np.isneginf(values)], [1, 2, 3], 0)


@pytest.mark.parametrize("cpu", host_levels())
@pytest.mark.parametrize("dtype", [DType.F32, DType.F64], ids=["f32", "f64"])
def test_non_finite_inputs_give_the_references_non_finite_outputs(cpu: str, dtype: DType) -> None:
    rng = np.random.default_rng(7)
    dims = {"lhs_batch": (), "rhs_batch": (), "lhs_contract": (1,), "rhs_contract": (0,)}
    for m, k, n in SHAPES:
        a = parameter("a", TensorType((m, k), dtype))
        b = parameter("b", TensorType((k, n), dtype))
        d = make_node(Op.DOT_GENERAL, [a, b], dims)
        fn = Function("main", (a, b), (d,), (d,))
        exe = CpuExecutable(Module((fn,), "main"), threads=2, target=host_target(cpu))
        for trial in range(12):
            x = rng.standard_normal((m, k)).astype(dtype.np)
            y = rng.standard_normal((k, n)).astype(dtype.np)
            for arr in (x, y):  # one or two special values in each operand
                for _ in range(1 + trial % 2):
                    arr.flat[rng.integers(arr.size)] = rng.choice(SPECIAL)
            with np.errstate(invalid="ignore", over="ignore"):
                want = run_function(fn, [x, y])[0]
            got = exe(x, y)[0]
            np.testing.assert_array_equal(_kind(got), _kind(want), err_msg=f"{(m, k, n)} {trial}")
            finite = _kind(want) == 0
            magnitude = np.abs(x.astype(np.float64)) @ np.abs(y.astype(np.float64))
            bound = 2 * k * np.finfo(dtype.np).eps * np.where(np.isfinite(magnitude), magnitude, 0)
            error = np.abs(got.astype(np.float64) - want.astype(np.float64))
            assert np.all(error[finite] <= bound[finite] + np.finfo(dtype.np).tiny)


@pytest.mark.parametrize("cpu", host_levels())
@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("%d = sub(%x, %x) : f32[4,9]\n  %r = reduce(%d) {kind = sum, axes = [1]}", "f32[4]"),
        ("%d = div(%x, %x) : f32[4,9]\n  %r = reduce(%d) {kind = prod, axes = [1]}", "f32[4]"),
        ("%d = sub(%x, %x) : f32[4,9]\n  %r = mean(%d) {axes = [0]}", "f32[9]"),
    ],
    ids=["sum", "prod", "mean"],
)
def test_a_reduction_keeps_a_nan_its_terms_cancel_algebraically(
    cpu: str, text: str, result: str
) -> None:
    """`x - x` is NaN for a NaN or infinite x; the reduction's reassociation must not cancel
    it to 0 (tessel fuzz --kind numpy, seed 18, case 656: `(a - a).sum()` gave 0.0)."""
    # fused, as the cpu pipeline leaves it: the term is computed inside the reduction's loop
    module = parse_module(
        f"func @main(%x: f32[4,9]) -> {result} {{\n"
        f"  %f = fusion(%x) {{body = func @fusion(%x: f32[4,9]) -> {result} {{\n"
        f"    {text}\n    return %r\n  }}}} : {result}\n  return %f\n}}"
    )
    x = np.random.default_rng(3).standard_normal((4, 9)).astype(np.float32)
    x[0, 3], x[1, 0], x[2, 8] = np.nan, np.inf, -np.inf
    x[:, 5] = 0.0  # 0 / 0 for the product
    (want,) = run_function(module.entry_function, [x])
    exe = CpuExecutable(module, threads=2, target=host_target(cpu))
    (got,) = exe(x)
    assert np.array_equal(_kind(got), _kind(want))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
