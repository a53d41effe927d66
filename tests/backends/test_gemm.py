"""The packed GEMM (codegen/gemm.py) against the reference interpreter.

Shapes cover the degenerate (1x1x1, size-0 dimensions, K = 0), the odd (primes, one past the
tile and block sizes, several K blocks, several N blocks) and every kind of dimension numbers
(batch dimensions anywhere, contracting dimensions first, several contracting or free
dimensions in an order that cannot be merged). Epilogues come from the fuse pass.

Tolerance: both sides sum K products in the working precision, in different orders. Each sum
is within K * u * sum_k |a_k b_k| of the exact one (u = unit roundoff: the classic bound for
any summation order), so they differ by at most 2 K u (|A| @ |B|), elementwise. We allow that
bound plus a few ulp of the result for the epilogue's own roundings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from codegen import gemm
from codegen.executable import CpuExecutable
from codegen.gemm_micro import Axis
from codegen.jit import host_target
from ir.builder import constant, make_node, parameter
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op
from ir.types import TensorType
from passes import PassManager, parse_pipeline
from runtime.inputs import random_inputs
from runtime.interp import run_function

F32, F64 = DType.F32, DType.F64
MATMUL = {"lhs_contract": (1,), "rhs_contract": (0,)}


@pytest.fixture(autouse=True)
def _always_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small test shapes are below the size where the GEMM asks for threads: lower it, so the
    threads=2 cases really split the rows."""
    monkeypatch.setattr(gemm, "PARALLEL_MACS", 1)


def dot_function(
    lhs: Sequence[int], rhs: Sequence[int], dims: dict[str, tuple[int, ...]], dtype: DType
) -> Function:
    a = parameter("a", TensorType(tuple(lhs), dtype))
    b = parameter("b", TensorType(tuple(rhs), dtype))
    d = make_node(Op.DOT_GENERAL, [a, b], dims)
    return Function("main", (a, b), (d,), (d,))


def contraction_size(fn: Function) -> int:
    dot = next(n for n in fn.nodes() if n.op is Op.DOT_GENERAL)
    return int(np.prod([dot.srcs[0].shape[d] for d in dot.attrs["lhs_contract"]]))


def check(fn: Function, dot_fn: Function, threads: int = 1, cpu: str = "native") -> None:
    """Run `fn` through the GEMM and compare with the interpreter, within the bound above."""
    kernels = [n for n in fn.body if n.op in (Op.DOT_GENERAL, Op.FUSION)]
    assert any(gemm.applicable(n) for n in kernels), "the GEMM path was not taken"
    args = random_inputs(fn, seed=1)
    k = contraction_size(dot_fn)
    expected = run_function(fn, args)[0]
    exe = CpuExecutable(Module((fn,), "main"), threads=threads, target=host_target(cpu))
    if threads > 1 and k * expected.size > 1 << 15:  # big enough that the executor splits it
        assert any(
            s.info.rows > 1 and s.info.rows * s.info.work_per_row >= 1 << 15 for s in exe.steps
        )
    got = exe(*args)[0]
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    # |A| @ |B| through the same dimension numbers: the interpreter on absolute values
    dot_args = [np.abs(x) for x in args[: len(dot_fn.params)]]
    magnitude = run_function(dot_fn, dot_args)[0].astype(np.float64)
    u = float(np.finfo(expected.dtype).eps) / 2
    bound = 2 * k * u * magnitude + 4 * u * np.abs(expected.astype(np.float64))
    error = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    assert np.all(error <= bound + np.finfo(expected.dtype).tiny), float(np.max(error - bound))


SHAPES = [  # (M, N, K)
    (1, 1, 1),
    (7, 13, 29),
    (8, 32, 16),  # exactly one tile
    (9, 33, 17),  # one past it in every direction
    (257, 129, 65),
    (100, 70, 600),  # several K blocks: partial sums in the output
    (5, 7, 0),  # K = 0: zeros
    (0, 5, 3),
    (4, 0, 3),
    (3, 1100, 5),  # several N blocks
    (256, 10, 512),  # narrow outputs get narrower tiles: one vector per row
    (50, 20, 300),  # two vectors per row
]


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize(("m", "n", "k"), SHAPES, ids=[f"{m}x{n}x{k}" for m, n, k in SHAPES])
def test_matmul(m: int, n: int, k: int, dtype: DType) -> None:
    fn = dot_function((m, k), (k, n), MATMUL, dtype)
    check(fn, fn)


DIMENSION_NUMBERS = {
    "lhs-transposed": ((29, 7), (29, 13), {"lhs_contract": (0,), "rhs_contract": (0,)}),
    "rhs-transposed": ((7, 29), (13, 29), {"lhs_contract": (1,), "rhs_contract": (1,)}),
    "both-transposed": ((29, 37), (41, 29), {"lhs_contract": (0,), "rhs_contract": (1,)}),
    "batch": (
        (3, 17, 9),
        (3, 9, 11),
        {"lhs_batch": (0,), "rhs_batch": (0,), "lhs_contract": (2,), "rhs_contract": (1,)},
    ),
    "batch-inside": (
        (17, 3, 9),
        (9, 11, 3),
        {"lhs_batch": (1,), "rhs_batch": (2,), "lhs_contract": (2,), "rhs_contract": (0,)},
    ),
    "two-batch": (
        (2, 3, 10, 9),
        (2, 3, 9, 12),
        {"lhs_batch": (0, 1), "rhs_batch": (0, 1), "lhs_contract": (3,), "rhs_contract": (2,)},
    ),
    "two-contracting-crossed": (
        (5, 4, 6),
        (6, 4, 7),
        {"lhs_contract": (1, 2), "rhs_contract": (1, 0)},
    ),
    "lhs-contracting-crossed": (
        (5, 6, 4),
        (4, 6, 7),
        {"lhs_contract": (2, 1), "rhs_contract": (0, 1)},
    ),
    "lhs-free-split": ((3, 10, 4), (10, 9), {"lhs_contract": (1,), "rhs_contract": (0,)}),
    "two-free-each": ((2, 3, 10), (10, 4, 5), {"lhs_contract": (2,), "rhs_contract": (0,)}),
    "outer-product": ((9,), (11,), {"lhs_contract": (), "rhs_contract": ()}),
    "vector-dot": ((37,), (37,), {"lhs_contract": (0,), "rhs_contract": (0,)}),
    "batched-big": (
        (2, 70, 300),
        (2, 300, 45),
        {"lhs_batch": (0,), "rhs_batch": (0,), "lhs_contract": (2,), "rhs_contract": (1,)},
    ),
}


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(DIMENSION_NUMBERS))
def test_dimension_numbers(case: str, dtype: DType) -> None:
    lhs, rhs, dims = DIMENSION_NUMBERS[case]
    fn = dot_function(lhs, rhs, dims, dtype)
    check(fn, fn)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "case", [(257, 129, 65), (100, 70, 600), (1, 40, 8), (33, 64, 64)], ids=str
)
def test_threads(case: tuple[int, int, int], threads: int) -> None:
    m, n, k = case
    fn = dot_function((m, k), (k, n), MATMUL, F32)
    check(fn, fn, threads=threads)


@pytest.mark.parametrize("case", [(257, 129, 65), (100, 70, 600), (29, 7, 31)], ids=str)
def test_packed_lhs(case: tuple[int, int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain lhs is read in place; the packed path must give the same answers."""
    monkeypatch.setattr(gemm, "DIRECT_A", False)
    m, n, k = case
    fn = dot_function((k, m), (k, n), {"lhs_contract": (0,), "rhs_contract": (0,)}, F32)
    check(fn, fn, threads=2)


def test_threads_batched() -> None:
    lhs, rhs, dims = DIMENSION_NUMBERS["batched-big"]
    fn = dot_function(lhs, rhs, dims, F32)
    check(fn, fn, threads=2)


def test_avx2_target() -> None:
    """Built for a CPU without AVX-512, the 16-lane vectors are split in two; still correct."""
    fn = dot_function((45, 300), (300, 77), MATMUL, F32)
    check(fn, fn, threads=2, cpu="x86-64-v3")


# --- epilogue fusions ------------------------------------------------------------------------


def fused(fn: Function) -> Function:
    module = PassManager(parse_pipeline("fuse")).run(Module((fn,), "main"))
    out = module.function("main")
    assert any(n.op is Op.FUSION for n in out.body), "nothing was fused"
    return out


def dense(m: int, n: int, k: int, dtype: DType, epilogue: str) -> tuple[Function, Function]:
    """x @ w + bias followed by `epilogue`; returns (the graph, its bare dot for the bound)."""
    x = parameter("x", TensorType((m, k), dtype))
    w = parameter("w", TensorType((k, n), dtype))
    bias = parameter("bias", TensorType((n,), dtype))
    body: list[Node] = []

    def add(node: Node) -> Node:
        body.append(node)
        return node

    z = add(make_node(Op.DOT_GENERAL, [x, w], MATMUL))
    y = add(make_node(Op.ADD, [z, add(make_node(Op.BROADCAST_IN_DIM, [bias], {"shape": (m, n)}))]))
    if epilogue == "relu":
        y = add(make_node(Op.RELU, [y]))
    elif epilogue == "scale-sigmoid":
        half = add(constant(0.5, dtype))
        y = add(
            make_node(Op.MUL, [y, add(make_node(Op.BROADCAST_IN_DIM, [half], {"shape": (m, n)}))])
        )
        y = add(make_node(Op.SIGMOID, [y]))
    elif epilogue == "to-f16":
        y = add(make_node(Op.CONVERT, [y], {"dtype": DType.F16}))
    fn = Function("main", (x, w, bias), tuple(body), (y,))
    return fused(fn), dot_function((m, k), (k, n), MATMUL, dtype)


EPILOGUES = [
    ("relu", (64, 512, 96)),
    ("relu", (257, 129, 65)),
    ("relu", (100, 70, 600)),  # epilogue after several K blocks
    ("relu", (5, 7, 0)),  # K = 0: relu(bias)
    ("scale-sigmoid", (37, 50, 19)),
    ("to-f16", (40, 45, 300)),  # the output cannot hold partial sums: one K block
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize(("epilogue", "shape"), EPILOGUES, ids=[f"{e}-{s}" for e, s in EPILOGUES])
def test_epilogue(epilogue: str, shape: tuple[int, int, int], dtype: DType, threads: int) -> None:
    fn, dot_fn = dense(*shape, dtype, epilogue)
    check(fn, dot_fn, threads=threads)


def test_mlp_sample_layers_take_the_gemm_path() -> None:
    fn, _ = dense(256, 512, 784, F32, "relu")
    (fusion,) = [n for n in fn.body if n.op is Op.FUSION]
    p = gemm.plan(fusion)
    assert p is not None
    assert p.root is not None
    assert p.root.op is Op.RELU


def test_not_applicable() -> None:
    ints = dot_function((4, 5), (5, 6), MATMUL, DType.I32)
    assert not gemm.applicable(ints.body[0])
    # an epilogue that reads the dot at another position (a transpose) is not elementwise
    x = parameter("x", TensorType((4, 4), F32))
    d = make_node(Op.DOT_GENERAL, [x, x], MATMUL)
    t = make_node(Op.TRANSPOSE, [d], {"perm": (1, 0)})
    s = make_node(Op.ADD, [d, t])
    body = Function("fusion", (x,), (d, t, s), (s,))
    fusion = make_node(Op.FUSION, [x], {"body": body})
    assert not gemm.applicable(fusion)


def test_axis_merging() -> None:
    assert Axis.of((2, 3, 4), (1, 2)).parts == ((12, 1),)  # contiguous: one stride
    assert Axis.of((2, 3, 4), (2, 1)).parts == ((4, 1), (3, 4))  # crossed: two
    assert Axis.of((2, 1, 4), (0, 1)).parts == ((2, 4),)  # size-1 dimensions vanish
