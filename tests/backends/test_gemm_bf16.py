"""The bf16 GEMM (codegen/gemm_bf16.py: gemm_int8's kernel with bf16 operands and f32 sums)
through whole programs, against the interpreter, on each path: AMX-BF16 tiles (with AVX-512
BF16 where the OS refuses them) and AVX-512 BF16 alone.

A path is a CpuCaps passed to the executable as its target. A path this host cannot execute is
skipped with the features it lacks, but its code is still generated, verified and compiled to
an object (test_paths). Without AVX-512 BF16 the kernel is declined (the cpu pipeline widens
bf16 dots onto the f32 GEMM instead).

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
from cpu_paths import AMX, SERVER, Path, assembly_for, skip_reason

from codegen import gemm_bf16, gemm_int8
from codegen.cpu_caps import LEVELS, host_caps, level_caps
from codegen.executable import CpuExecutable
from codegen.jit import caps_target
from ir.builder import make_node, parameter
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op
from ir.types import TensorType
from passes import PassManager, parse_pipeline
from runtime.interp import run_module

BF16, F32 = DType.BF16, DType.F32
SIZES = (1, 2, 3, 15, 17, 31, 33, 63, 64, 65, 100, 129)


def _paths() -> dict[str, Path]:
    host = host_caps()
    amx = host if host.amx_bf16 and host.avx512_bf16 else SERVER
    vectors = (host if host.avx512_bf16 else SERVER).without(*AMX)
    paths = (
        Path("amx", amx, ("amx-tile", "amx-bf16"), ("tdpbf16ps", "vdpbf16ps")),
        Path("avx512", vectors, ("avx512bf16",), ("vdpbf16ps",)),
    )
    return {p.name: p for p in paths}


PATHS = _paths()


@pytest.fixture(params=list(PATHS))
def path(request: pytest.FixtureRequest) -> Path:
    """Each path this host can execute; the others are skipped, naming what they need."""
    p = PATHS[request.param]
    reason = skip_reason(p)
    if reason:
        pytest.skip(reason)
    return p


@pytest.fixture(autouse=True)
def _always_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let small shapes ask for threads too, so threads=2 really splits the rows."""
    monkeypatch.setattr(gemm_int8, "PARALLEL_MACS", 1)


def _dots(*specs: tuple[int, int, int, str, int]) -> Module:
    """One function computing [batch] x @ w from bf16 into f32 for each (m, n, k, transpose,
    batch), each operand optionally stored transposed ("a", "b", "ab")."""
    params: list[Node] = []
    results: list[Node] = []
    for i, (m, n, k, transpose, batch) in enumerate(specs):
        lead = (batch,) if batch else ()
        x_shape = (*lead, k, m) if "a" in transpose else (*lead, m, k)
        w_shape = (*lead, n, k) if "b" in transpose else (*lead, k, n)
        x = parameter(f"x{i}", TensorType(x_shape, BF16))
        w = parameter(f"w{i}", TensorType(w_shape, BF16))
        rank = len(lead)
        dims = {
            "lhs_batch": tuple(range(rank)),
            "rhs_batch": tuple(range(rank)),
            "lhs_contract": (rank if "a" in transpose else rank + 1,),
            "rhs_contract": (rank + 1 if "b" in transpose else rank,),
            "out_dtype": F32,
        }
        params += [x, w]
        results.append(make_node(Op.DOT_GENERAL, [x, w], dims))
    return Module((Function("main", tuple(params), tuple(results), tuple(results)),), "main")


def _dot(m: int, n: int, k: int, transpose: str = "", batch: int = 0) -> Module:
    return _dots((m, n, k, transpose, batch))


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


def _check(module: Module, path: Path, threads: tuple[int, ...] = (1, 2),
           integers: bool = True) -> CpuExecutable:  # fmt: skip
    """Compile `module` for the path once and compare every result on each thread count:
    bit for bit with integer data, within the sum-order bound with random data (operands
    then stored plainly: x[..., m, k] and w[..., k, n])."""
    fn = module.function("main")
    kernels = [n for n in fn.body if n.op in (Op.DOT_GENERAL, Op.FUSION)]
    assert all(gemm_bf16.applicable(n, path.caps) for n in kernels), "the bf16 GEMM declined"
    args = _inputs(module, integers)
    expected = run_module(module, args)
    exe = CpuExecutable(module, threads=threads[0], target=caps_target(path.caps))
    for t in threads:
        runner = exe if t == threads[0] else CpuExecutable.from_payload(*exe.payload(), t)
        for i, (got, want) in enumerate(zip(runner(*args), expected, strict=True)):
            assert got.dtype == want.dtype == np.float32
            if integers:
                np.testing.assert_array_equal(got, want)
                continue
            x, w = (np.abs(a.astype(np.float64)) for a in args[2 * i : 2 * i + 2])
            bound = 2 * x.shape[-1] * 2.0**-24 * np.matmul(x, w)
            assert np.all(np.abs(got.astype(np.float64) - want) <= bound)
    return exe


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


@pytest.mark.parametrize("name", list(PATHS))
def test_paths(name: str) -> None:
    """Each path's code: exact where this host runs it, else at least generated and compiled,
    with the path's instructions; only the tiles ask the OS for the tile state."""
    p = PATHS[name]
    module = _dots((70, 45, 130, "", 0), (17, 20, 9, "ab", 2))
    reason = skip_reason(p)
    asm = assembly_for(module, p.caps) if reason else _check(module, p).compiled.asm()
    assert all(i in asm for i in p.instructions)
    assert ("syscall" in asm) == (name == "amx")
    assert ("tdpbf16ps" in asm) == (name == "amx")
    if reason:
        pytest.skip(reason)


def test_declined_without_avx512_bf16() -> None:
    """The tiles' fallback is VDPBF16PS: without it (every level; AMX-BF16 alone) the kernel
    is declined and the cpu pipeline widens bf16 dots to f32."""
    (dot,) = _dot(33, 47, 70).function("main").results
    for caps in (*(level_caps(level) for level in LEVELS), SERVER.without("avx512bf16")):
        assert not gemm_bf16.supported(caps)
        assert not gemm_bf16.applicable(dot, caps)
    for p in PATHS.values():
        assert gemm_bf16.supported(p.caps)
        assert gemm_bf16.applicable(dot, p.caps)


@pytest.mark.parametrize("m", SIZES)
def test_sizes_exact(m: int, path: Path) -> None:
    """M, N and K each take every size once (a Latin square), and K = 1 with every M."""
    i = SIZES.index(m)
    _check(_dots((m, SIZES[(i + 5) % len(SIZES)], SIZES[(i + 3) % len(SIZES)], "", 0),
                 (m, 17, 1, "", 0)), path)  # fmt: skip


@pytest.mark.parametrize(
    "shape", [(1, 1, 1), (7, 13, 5), (33, 65, 129), (64, 64, 64), (97, 31, 300)]
)
def test_random_within_the_sum_order_bound(shape: tuple[int, int, int], path: Path) -> None:
    _check(_dot(*shape), path, integers=False)


def test_transposed_operands_and_batch(path: Path) -> None:
    module = _dots((37, 41, 101, "a", 0), (37, 41, 101, "b", 0), (37, 41, 101, "ab", 0),
                   (19, 23, 45, "", 3))  # fmt: skip
    _check(module, path)
    _check(_dot(19, 23, 45, batch=2), path, integers=False)


def test_several_k_and_column_blocks(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """K in blocks of 64 bytes (32 k): f32 partial sums live in the output between blocks."""
    monkeypatch.setattr(gemm_int8, "KC_MAX", 64)
    monkeypatch.setattr(gemm_int8, "NB_MAX", 32)
    _check(_dots((70, 100, 201, "", 0), (33, 65, 130, "ab", 0)), path)
    _check(_dot(40, 70, 150), path, integers=False)


@pytest.mark.parametrize("shape", [(1, 1, 1), (17, 31, 67), (70, 45, 100)])
def test_fused_epilogue(shape: tuple[int, int, int], path: Path) -> None:
    module = _fused(*shape)
    (fused,) = [n for n in module.function("main").body if n.op is Op.FUSION]
    assert gemm_bf16.applicable(fused, path.caps)
    _check(module, path)


def test_declined() -> None:
    """A bf16 result (rounded sums), f16 operands and empty products are not this kernel's."""
    dims = {"lhs_batch": (), "rhs_batch": (), "lhs_contract": (1,), "rhs_contract": (0,)}
    x, w = parameter("x", TensorType((4, 8), BF16)), parameter("w", TensorType((8, 4), BF16))
    h, v = (parameter(s, TensorType((4, 4), DType.F16)) for s in "hv")
    for p in PATHS.values():
        assert not gemm_bf16.applicable(make_node(Op.DOT_GENERAL, [x, w], dims), p.caps)
        f16 = make_node(Op.DOT_GENERAL, [h, v], {**dims, "out_dtype": F32})
        assert not gemm_bf16.applicable(f16, p.caps)
        to_f32 = make_node(Op.DOT_GENERAL, [x, w], {**dims, "out_dtype": F32})
        assert not gemm_int8.applicable(to_f32, p.caps)
    for shape in ((0, 5, 7), (5, 7, 0)):
        module = _dot(*shape)
        (dot,) = module.function("main").results
        assert not any(gemm_bf16.applicable(dot, p.caps) for p in PATHS.values())
        args = _inputs(module, True)
        np.testing.assert_array_equal(CpuExecutable(module)(*args)[0], run_module(module, args)[0])
