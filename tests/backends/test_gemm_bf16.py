"""The bf16 GEMM (codegen/gemm_bf16.py: gemm_int8's kernel with bf16 operands and f32 sums)
through whole programs, against the interpreter, on each path: AMX-BF16 tiles, AVX-512 BF16
and the portable loop.

Every product of two bf16 values is exact in f32; the sums are f32 in an order the op leaves
open. So with small integers (products and every partial sum exactly representable) results
are compared bit for bit, and with random data within the bound of two f32 sums of K terms
in different orders: 2 K 2^-24 sum_k |a_k b_k| per element. Sizes straddle the tile edges
(16 rows or columns, 32-row blocks, 32 k per tile row) and K takes odd values, so the zero
padding of both packed operands is exercised.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from codegen import gemm_bf16, gemm_int8
from ir.builder import make_node, parameter
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op
from ir.types import TensorType
from passes import PassManager, parse_pipeline
from runtime.cpu import CpuExecutable
from runtime.interp import run_module

BF16, F32 = DType.BF16, DType.F32
SIZES = (1, 2, 3, 15, 17, 31, 33, 63, 64, 65, 100, 129)

pytestmark = pytest.mark.skipif(
    not gemm_bf16.host_supported(), reason="the bf16 GEMM needs AMX-BF16 (Linux) or AVX-512 BF16"
)


@pytest.fixture(autouse=True)
def _always_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let small shapes ask for threads too, so threads=2 really splits the rows."""
    monkeypatch.setattr(gemm_int8, "PARALLEL_MACS", 1)


@pytest.fixture(params=["amx", "avx512", "portable"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(gemm_int8, "USE_TILES", request.param == "amx")
    monkeypatch.setattr(gemm_int8, "USE_VNNI", request.param != "portable")
    if request.param == "amx" and not gemm_int8.BF16.has_tiles():
        pytest.skip("this host has no AMX-BF16")
    if request.param == "avx512" and not gemm_int8.BF16.has_vectors():
        pytest.skip("this host has no AVX-512 BF16")
    return str(request.param)


def _dot(m: int, n: int, k: int, transpose: str = "", batch: int = 0) -> Module:
    """[batch] x @ w from bf16 into f32, each operand optionally stored transposed."""
    lead = (batch,) if batch else ()
    x = parameter("x", TensorType((*lead, k, m) if "a" in transpose else (*lead, m, k), BF16))
    w = parameter("w", TensorType((*lead, n, k) if "b" in transpose else (*lead, k, n), BF16))
    rank = len(lead)
    dims = {
        "lhs_batch": tuple(range(rank)),
        "rhs_batch": tuple(range(rank)),
        "lhs_contract": (rank if "a" in transpose else rank + 1,),
        "rhs_contract": (rank + 1 if "b" in transpose else rank,),
        "out_dtype": F32,
    }
    y = make_node(Op.DOT_GENERAL, [x, w], dims)
    return Module((Function("main", (x, w), (y,), (y,)),), "main")


def _inputs(module: Module, integers: bool, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for p in module.function("main").params:
        if p.dtype == F32:
            out.append(rng.standard_normal(p.shape).astype(np.float32))
        elif integers:  # |product| <= 64, |sum| < 2^24 for any K here: every sum exact
            out.append(rng.integers(-8, 9, p.shape).astype(ml_dtypes.bfloat16))
        else:
            out.append((rng.standard_normal(p.shape) * 4).astype(ml_dtypes.bfloat16))
    return out


def _check(module: Module, threads: int = 1, integers: bool = True) -> None:
    fn = module.function("main")
    assert any(gemm_bf16.applicable(n) for n in fn.body), "the bf16 GEMM was not taken"
    args = _inputs(module, integers)
    got = CpuExecutable(module, threads=threads)(*args)[0]
    expected = run_module(module, args)[0]
    assert got.dtype == expected.dtype == np.float32
    if integers:
        np.testing.assert_array_equal(got, expected)
        return
    # random data only with operands stored plainly: x[..., m, k] and w[..., k, n]
    x, w = (np.abs(a.astype(np.float64)) for a in args[:2])
    bound = 2 * x.shape[-1] * 2.0**-24 * np.matmul(x, w)
    assert np.all(np.abs(got.astype(np.float64) - expected) <= bound)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m", SIZES)
def test_sizes_exact(m: int, threads: int, path: str) -> None:
    for n, k in ((m, 1), (17, m), (SIZES[(SIZES.index(m) + 5) % len(SIZES)], 67)):
        _check(_dot(m, n, k), threads)


@pytest.mark.parametrize(
    "shape", [(1, 1, 1), (7, 13, 5), (33, 65, 129), (64, 64, 64), (97, 31, 300)]
)
def test_random_within_the_sum_order_bound(shape: tuple[int, int, int], path: str) -> None:
    _check(_dot(*shape), threads=2, integers=False)


@pytest.mark.parametrize("transpose", ["a", "b", "ab"])
def test_transposed_operands(transpose: str, path: str) -> None:
    _check(_dot(37, 41, 101, transpose=transpose), threads=2)


@pytest.mark.parametrize("threads", [1, 2])
def test_batch(threads: int, path: str) -> None:
    _check(_dot(19, 23, 45, batch=3), threads)
    _check(_dot(19, 23, 45, batch=2), threads, integers=False)


@pytest.mark.parametrize("threads", [1, 2])
def test_several_k_and_column_blocks(threads: int, monkeypatch: pytest.MonkeyPatch,
                                     path: str) -> None:  # fmt: skip
    """K in blocks of 64 bytes (32 k): f32 partial sums live in the output between blocks."""
    monkeypatch.setattr(gemm_int8, "KC_MAX", 64)
    monkeypatch.setattr(gemm_int8, "NB_MAX", 32)
    _check(_dot(70, 100, 201), threads)
    _check(_dot(33, 65, 130, transpose="ab"), threads)
    _check(_dot(40, 70, 150), threads, integers=False)


def _fused(m: int, n: int, k: int) -> Module:
    """relu(x @ w + b), fused by the cpu pipeline's fuse."""
    module = _dot(m, n, k)
    fn = module.function("main")
    (dot,) = fn.results
    bias = parameter("b", TensorType((n,), F32))
    spread = make_node(Op.BROADCAST_IN_DIM, [bias], {"shape": dot.shape, "dims": (1,)})
    y = make_node(Op.RELU, [make_node(Op.ADD, [dot, spread])])
    body: tuple[Node, ...] = (dot, spread, y.srcs[0], y)
    module = Module((Function("main", (*fn.params, bias), body, (y,)),), "main")
    return PassManager(parse_pipeline("fuse")).run(module)


@pytest.mark.parametrize("shape", [(1, 1, 1), (17, 31, 67), (70, 45, 100)])
def test_fused_epilogue(shape: tuple[int, int, int], path: str) -> None:
    module = _fused(*shape)
    (fused,) = [n for n in module.function("main").body if n.op is Op.FUSION]
    assert gemm_bf16.applicable(fused)
    _check(module, threads=2)


def test_declined() -> None:
    """A bf16 result (rounded sums), f16 operands and empty products are not this kernel's."""
    dims = {"lhs_batch": (), "rhs_batch": (), "lhs_contract": (1,), "rhs_contract": (0,)}
    x, w = parameter("x", TensorType((4, 8), BF16)), parameter("w", TensorType((8, 4), BF16))
    assert not gemm_bf16.applicable(make_node(Op.DOT_GENERAL, [x, w], dims))
    h, v = (parameter(s, TensorType((4, 4), DType.F16)) for s in "hv")
    assert not gemm_bf16.applicable(make_node(Op.DOT_GENERAL, [h, v], {**dims, "out_dtype": F32}))
    assert not gemm_int8.applicable(make_node(Op.DOT_GENERAL, [x, w], {**dims, "out_dtype": F32}))
    for shape in ((0, 5, 7), (5, 7, 0)):
        module = _dot(*shape)
        (dot,) = module.function("main").results
        assert not gemm_bf16.applicable(dot)
        args = _inputs(module, True)
        np.testing.assert_array_equal(CpuExecutable(module)(*args)[0], run_module(module, args)[0])


def test_instructions() -> None:
    asm = CpuExecutable(_dot(70, 45, 130)).compiled.asm()
    if gemm_int8.BF16.has_tiles():
        assert "tdpbf16ps" in asm
    if gemm_int8.BF16.has_vectors():
        assert "vdpbf16ps" in asm
