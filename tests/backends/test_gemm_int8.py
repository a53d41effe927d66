"""The int8 GEMM (codegen/gemm_int8.py) through whole programs, bit for bit against the interpreter.

Sizes straddle the tile edges (16 rows or columns, 32-row blocks, 64 bytes of K) and K takes
values that are not multiples of 4 (the tile instructions consume four bytes of K at a time),
so the zero padding of both packed operands is exercised; smaller block limits force several
K blocks (partial sums in the output) and several column blocks. Integer sums are exact, so
every comparison is equality, including the int32 wraparound of a very long K.
"""

from __future__ import annotations

import numpy as np
import pytest

from codegen import gemm_int8
from codegen.jit import host_target
from ir.builder import make_node, parameter
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op
from ir.types import TensorType
from passes import PassManager, parse_pipeline
from runtime.cpu import CpuExecutable
from runtime.interp import run_module

I8, U8, I32 = DType.I8, DType.U8, DType.I32
SIZES = (1, 2, 3, 15, 17, 31, 33, 63, 64, 65, 100, 129)

pytestmark = pytest.mark.skipif(
    not (gemm_int8._host_has_amx() or gemm_int8._host_has_vnni()),
    reason="the int8 GEMM needs a host with AMX-INT8 (Linux) or AVX-512 VNNI",
)


@pytest.fixture(autouse=True)
def _always_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let small shapes ask for threads too, so threads=2 really splits the rows."""
    monkeypatch.setattr(gemm_int8, "PARALLEL_MACS", 1)


def _dot(
    m: int, n: int, k: int, types: tuple[DType, DType] = (I8, I8), transpose: str = "",
    batch: int = 0,
) -> Module:  # fmt: skip
    """[batch] x @ w into i32, each operand optionally stored transposed."""
    lead = (batch,) if batch else ()
    lhs_shape = (*lead, k, m) if "a" in transpose else (*lead, m, k)
    rhs_shape = (*lead, n, k) if "b" in transpose else (*lead, k, n)
    x = parameter("x", TensorType(lhs_shape, types[0]))
    w = parameter("w", TensorType(rhs_shape, types[1]))
    rank = len(lead)
    dims = {
        "lhs_batch": tuple(range(rank)),
        "rhs_batch": tuple(range(rank)),
        "lhs_contract": (rank if "a" in transpose else rank + 1,),
        "rhs_contract": (rank + 1 if "b" in transpose else rank,),
        "out_dtype": I32,
    }
    y = make_node(Op.DOT_GENERAL, [x, w], dims)
    return Module((Function("main", (x, w), (y,), (y,)),), "main")


def _inputs(module: Module, seed: int = 0, fill: int | None = None) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for p in module.function("main").params:
        lo, hi = (-128, 127) if p.dtype == I8 else (0, 255)
        if fill is None:
            out.append(rng.integers(lo, hi + 1, p.shape, dtype=p.dtype.np))
        else:  # a value the type cannot hold becomes its largest
            out.append(np.full(p.shape, fill if lo <= fill <= hi else hi, p.dtype.np))
    return out


def _check(module: Module, threads: int = 1, fill: int | None = None) -> None:
    fn = module.function("main")
    assert any(gemm_int8.applicable(n) for n in fn.body), "the int8 GEMM was not taken"
    args = _inputs(module, fill=fill)
    got = CpuExecutable(module, threads=threads)(*args)[0]
    expected = run_module(module, args)[0]
    assert got.dtype == expected.dtype == np.int32
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("types", [(I8, I8), (U8, U8), (U8, I8)], ids=["i8", "u8", "u8xi8"])
@pytest.mark.parametrize("m", SIZES)
def test_sizes(m: int, types: tuple[DType, DType], threads: int) -> None:
    for n, k in ((m, 1), (17, m), (SIZES[(SIZES.index(m) + 5) % len(SIZES)], 67)):
        _check(_dot(m, n, k, types), threads)


@pytest.mark.parametrize("types", [(I8, U8), (U8, U8)], ids=["i8xu8", "u8xu8"])
def test_other_signedness(types: tuple[DType, DType]) -> None:
    _check(_dot(33, 47, 70, types))


@pytest.mark.parametrize("transpose", ["a", "b", "ab"])
def test_transposed_operands(transpose: str) -> None:
    _check(_dot(37, 41, 101, transpose=transpose), threads=2)


@pytest.mark.parametrize("threads", [1, 2])
def test_batch(threads: int) -> None:
    _check(_dot(19, 23, 45, batch=3), threads)
    _check(_dot(40, 9, 130, transpose="b", batch=2), threads)


@pytest.mark.parametrize(
    ("types", "fill"),
    [((I8, I8), -128), ((I8, I8), 127), ((U8, U8), 255), ((U8, I8), 255), ((U8, I8), -128)],
)
def test_extreme_values(types: tuple[DType, DType], fill: int) -> None:
    """Every product at its largest: -128 * -128, 255 * -128, 255 * 255."""
    _check(_dot(35, 33, 259, types), fill=fill)


@pytest.mark.parametrize("threads", [1, 2])
def test_several_k_and_column_blocks(threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gemm_int8, "KC_MAX", 64)
    monkeypatch.setattr(gemm_int8, "NB_MAX", 32)
    _check(_dot(70, 100, 201), threads)  # 4 K blocks of 51, 4 column blocks
    _check(_dot(33, 65, 130, (U8, U8), transpose="ab"), threads)


def test_long_k_wraps_like_the_reference() -> None:
    """K > 2^17 overflows int32 with -128 * -128 products: both sides wrap the exact sum."""
    module = _dot(2, 3, 140_001)
    _check(module, fill=-128)
    args = _inputs(module, fill=-128)
    exact = 128 * 128 * 140_001
    assert exact > 2**31
    got = CpuExecutable(module)(*args)[0]
    assert (got == np.int64(exact - 2**32)).all()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("vnni", [True, False], ids=["vnni", "portable"])
def test_fallbacks(vnni: bool, threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """What runs when the OS refuses the tile state, AVX-512 VNNI or a portable loop, computes
    the same bits (u8 x u8 has no VNNI form and is always the portable loop)."""
    monkeypatch.setattr(gemm_int8, "USE_TILES", False)
    monkeypatch.setattr(gemm_int8, "USE_VNNI", vnni)
    module = _dot(33, 47, 70)
    _check(module, threads)
    _check(_dot(35, 33, 259), fill=-128)  # the s8 x s8 correction at its largest
    _check(_dot(17, 20, 9, (U8, U8), transpose="a"), threads)
    _check(_dot(5, 6, 7, (U8, U8)), threads, fill=255)
    if vnni and gemm_int8._host_has_vnni():
        assert "vpdpbusd" in CpuExecutable(module).compiled.asm()


def test_fused_epilogue_is_left_to_the_generic_path() -> None:
    """An int8 dot fused with a bias add is declined here and still computed exactly."""
    x = parameter("x", TensorType((9, 20), I8))
    w = parameter("w", TensorType((20, 7), I8))
    bias = parameter("bias", TensorType((7,), I32))
    dims = {"lhs_batch": (), "rhs_batch": (), "lhs_contract": (1,), "rhs_contract": (0,)}
    dot = make_node(Op.DOT_GENERAL, [x, w], {**dims, "out_dtype": I32})
    spread = make_node(Op.BROADCAST_IN_DIM, [bias], {"shape": (9, 7), "dims": (1,)})
    y = make_node(Op.ADD, [dot, spread])
    body: tuple[Node, ...] = (dot, spread, y)
    module = Module((Function("main", (x, w, bias), body, (y,)),), "main")
    module = PassManager(parse_pipeline("fuse")).run(module)
    fn = module.function("main")
    assert not any(gemm_int8.applicable(n) for n in fn.body if n.op is Op.FUSION)
    args = _inputs(module)
    got = CpuExecutable(module, threads=2)(*args)[0]
    np.testing.assert_array_equal(got, run_module(module, args)[0])


def test_declined_without_int8_operands_or_i32_result() -> None:
    x = parameter("x", TensorType((4, 8), I8))
    w = parameter("w", TensorType((8, 4), I8))
    dims = {"lhs_batch": (), "rhs_batch": (), "lhs_contract": (1,), "rhs_contract": (0,)}
    assert not gemm_int8.applicable(make_node(Op.DOT_GENERAL, [x, w], dims))  # i8 result
    a, b = (parameter(s, TensorType((4, 4), DType.I16)) for s in "ab")
    assert not gemm_int8.applicable(make_node(Op.DOT_GENERAL, [a, b], {**dims, "out_dtype": I32}))


@pytest.mark.parametrize("cpu", ["generic", "x86-64-v3"])
def test_programs_for_other_cpus_still_use_the_tiles(cpu: str) -> None:
    """The tile code carries its own target features, so a module built for a baseline CPU
    compiles it too; it runs only after the OS has granted the tile state."""
    module = _dot(70, 45, 130)
    args = _inputs(module)
    exe = CpuExecutable(module, target=host_target(cpu))
    np.testing.assert_array_equal(exe(*args)[0], run_module(module, args)[0])
    assert "tdpbssd" in exe.compiled.asm()


def test_vnni_host_without_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a host with VNNI but no AMX the kernel is still chosen, and never asks for tiles."""
    if not gemm_int8._host_has_vnni():
        pytest.skip("this host has no AVX-512 VNNI")
    monkeypatch.setattr(gemm_int8, "_host_has_amx", lambda: False)
    module = _dot(65, 31, 100)
    _check(module, threads=2)
    asm = CpuExecutable(module).compiled.asm()
    assert "vpdpbusd" in asm
    assert "syscall" not in asm
