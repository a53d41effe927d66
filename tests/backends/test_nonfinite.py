"""Infinities and NaNs in a contraction's inputs follow IEEE on every kernel, as in the reference.

The semantics (docs/cpu.md, "Contractions and non-finite values"): a product with a NaN is NaN,
inf x 0 is NaN, and terms of both infinite signs sum to NaN whatever the order; one sign gives
that infinity. The GEMM, the matrix-vector kernels and the generic loops, at every capability
level this host runs (FMA or not), agree with the interpreter on which outputs are NaN, +inf,
-inf or finite. Overflow of finite products is outside this: see the docs.
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
