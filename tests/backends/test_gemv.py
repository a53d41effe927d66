"""Matrix-vector products (codegen/gemv.py) against the interpreter, at every capability level.

Sizes straddle the vector width and the blocks (4 rows; 4 vectors of columns), K is not a
multiple of the vector width, batches and a fused epilogue are included. The error bound is the
GEMM tests' (a sum of K products in any order): 2 K u |A| |x| + 4 u |C|.
"""

from __future__ import annotations

import numpy as np
import pytest

from codegen import gemv
from codegen.cpu_caps import host_levels
from codegen.executable import CpuExecutable
from codegen.jit import host_target
from ir.builder import constant, make_node, parameter
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op
from ir.types import TensorType
from passes import PassManager, parse_pipeline
from runtime.inputs import random_inputs
from runtime.interp import run_function

ROWS = [(1, 1), (1, 9), (3, 8), (4, 8), (5, 17), (9, 31), (64, 33), (13, 1000)]  # (M, K), N = 1
COLUMNS = [(2, 1), (7, 3), (8, 5), (31, 9), (32, 9), (33, 9), (100, 300), (1000, 17)]  # (N, K)


def _dot(lhs: tuple[int, ...], rhs: tuple[int, ...], dtype: DType, batch: bool) -> Function:
    a = parameter("a", TensorType(lhs, dtype))
    b = parameter("b", TensorType(rhs, dtype))
    lead = (0,) if batch else ()
    dims = {
        "lhs_batch": lead,
        "rhs_batch": lead,
        "lhs_contract": (len(lhs) - 1,),
        "rhs_contract": (len(lead),),
    }
    d = make_node(Op.DOT_GENERAL, [a, b], dims)
    return Function("main", (a, b), (d,), (d,))


def _with_epilogue(fn: Function) -> Function:
    """relu(dot * 0.5 + 0.25) converted to f16, fused into one kernel (an output that cannot
    hold partial sums)."""
    dot = fn.results[0]
    body = list(fn.body)

    def add(node: Node) -> Node:
        body.append(node)
        return node

    def scalar(value: float) -> Node:
        return add(
            make_node(Op.BROADCAST_IN_DIM, [add(constant(value, dot.dtype))], {"shape": dot.shape})
        )

    y = add(make_node(Op.MUL, [dot, scalar(0.5)]))
    y = add(make_node(Op.RELU, [add(make_node(Op.ADD, [y, scalar(0.25)]))]))
    y = add(make_node(Op.CONVERT, [y], {"dtype": DType.F16}))
    module = Module((Function("main", fn.params, tuple(body), (y,)),), "main")
    return PassManager(parse_pipeline("fuse")).run(module).entry_function


def _check(fn: Function, cpu: str, threads: int) -> None:
    kernels = [n for n in fn.body if n.op in (Op.DOT_GENERAL, Op.FUSION)]
    assert any(gemv.applicable(n, host_target(cpu).caps) for n in kernels), "gemv not taken"
    args = random_inputs(fn, seed=3)
    expected = run_function(fn, args)[0]
    got = CpuExecutable(Module((fn,), "main"), threads=threads, target=host_target(cpu))(*args)[0]
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    a, b = (np.abs(x.astype(np.float64)) for x in args[:2])
    magnitude = np.matmul(a, b)
    k = args[0].shape[-1]
    u = float(np.finfo(expected.dtype).eps) / 2
    bound = 2 * k * u * magnitude.reshape(expected.shape) + 4 * u * np.abs(expected)
    error = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    assert np.all(error <= bound + np.finfo(expected.dtype).tiny), float(np.max(error - bound))


@pytest.mark.parametrize("cpu", host_levels())
@pytest.mark.parametrize("dtype", [DType.F32, DType.F64], ids=["f32", "f64"])
def test_matrix_times_vector(cpu: str, dtype: DType) -> None:
    for m, k in ROWS:
        _check(_dot((m, k), (k, 1), dtype, False), cpu, 1)
        _check(_dot((m, k), (k,), dtype, False), cpu, 2)


@pytest.mark.parametrize("cpu", host_levels())
@pytest.mark.parametrize("dtype", [DType.F32, DType.F64], ids=["f32", "f64"])
def test_vector_times_matrix(cpu: str, dtype: DType) -> None:
    for n, k in COLUMNS:
        _check(_dot((1, k), (k, n), dtype, False), cpu, 1)
        _check(_dot((k,), (k, n), dtype, False), cpu, 2)


@pytest.mark.parametrize("threads", [1, 2])
def test_batches_and_epilogues(threads: int) -> None:
    _check(_dot((3, 5, 19), (3, 19, 1), DType.F32, True), "native", threads)
    _check(_dot((3, 1, 19), (3, 19, 37), DType.F32, True), "native", threads)
    _check(_with_epilogue(_dot((37, 70), (70, 1), DType.F32, False)), "native", threads)
    _check(_with_epilogue(_dot((1, 70), (70, 45), DType.F32, False)), "native", threads)


def test_strided_operands_keep_the_gemm() -> None:
    """A matrix whose contraction axis is not contiguous is the GEMM's (it packs)."""
    a = parameter("a", TensorType((30, 7), DType.F32))  # A stored K-major
    x = parameter("x", TensorType((30, 1), DType.F32))
    dims = {"lhs_batch": (), "rhs_batch": (), "lhs_contract": (0,), "rhs_contract": (0,)}
    assert not gemv.applicable(make_node(Op.DOT_GENERAL, [a, x], dims), host_target().caps)
