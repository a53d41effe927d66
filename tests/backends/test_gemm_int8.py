"""The int8 GEMM (codegen/gemm_int8.py) through whole programs, bit for bit against the interpreter.

Sizes straddle the tile edges (16 rows or columns, 32-row blocks, 64 bytes of K) and K takes
values that are not multiples of 4 (the tile instructions consume four bytes of K at a time),
so the zero padding of both packed operands is exercised; smaller block limits force several
K blocks (partial sums in the output) and several column blocks. Integer sums are exact, so
every comparison is equality, including the int32 wraparound of a very long K.

Fused epilogues (bias add in int32, requantize per tensor or per channel with a relu clamp,
dequantize to f32, float elementwise ops after it) are checked the same way on each path the
kernel can take: AMX tiles, AVX-512 VNNI and the portable loop.
"""

from __future__ import annotations

import numpy as np
import pytest

from codegen import gemm_int8
from codegen.jit import host_target
from ir.builder import constant, make_node, parameter
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


# --- fused epilogues ---------------------------------------------------------------------------

EPILOGUE_SHAPES = [
    (1, 1, 1), (2, 3, 5), (1, 17, 64), (31, 1, 13), (17, 31, 67), (33, 65, 129), (64, 32, 64),
    (97, 10, 128), (40, 130, 3),
]  # fmt: skip
FORMS = ("bias", "requantize", "relu-requantize", "dequantize", "float-chain")


@pytest.fixture(params=["amx", "vnni", "portable"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The kernel's three ways of computing a block (the same packed operands each time)."""
    monkeypatch.setattr(gemm_int8, "USE_TILES", request.param == "amx")
    monkeypatch.setattr(gemm_int8, "USE_VNNI", request.param != "portable")
    if request.param == "amx" and not gemm_int8._host_has_amx():
        pytest.skip("this host has no AMX-INT8")
    return str(request.param)


def _epilogue(
    m: int, n: int, k: int, types: tuple[DType, DType], form: str, per_channel: bool,
    out: DType = I8, batch: int = 0, seed: int = 0,
) -> Module:  # fmt: skip
    """x @ w into i32, then `form`'s epilogue, as the quantizer writes a layer, fused by `fuse`."""
    rng = np.random.default_rng(seed)
    module = _dot(m, n, k, types, batch=batch)
    fn = module.function("main")
    (dot,) = fn.results
    bias = parameter("bias", TensorType((n,), I32))
    rank = dot.type.rank
    spread = make_node(Op.BROADCAST_IN_DIM, [bias], {"shape": dot.shape, "dims": (rank - 1,)})
    acc = make_node(Op.ADD, [dot, spread])
    channels = n if per_channel else 1
    axis = {"axis": rank - 1} if per_channel else {}
    lo, hi = (-128, 127) if out == I8 else (0, 255)
    zero = int(rng.integers(lo // 2, hi // 2 + 1))
    requant = make_node(
        Op.REQUANTIZE,
        [acc],
        {
            # large and small multipliers, right shifts and a left one (saturating first)
            "multiplier": [int(v) for v in rng.integers(1 << 29, (1 << 31) - 1, channels)],
            "shift": [int(v) for v in rng.integers(-1, 12, channels)],
            "zero_point": zero,
            "min": zero if form == "relu-requantize" else lo,
            "max": hi,
            "dtype": out,
            **axis,
        },
    )
    scales = {"scale": [float(v) for v in rng.uniform(1e-3, 1e-1, channels)], **axis}
    body: list[Node] = [dot, spread, acc]
    if form == "bias":
        root = acc
    elif form in ("requantize", "relu-requantize"):
        body.append(root := requant)
    elif form == "dequantize":
        root = make_node(Op.DEQUANTIZE, [requant], {**scales, "zero_point": [zero] * channels})
        body += [requant, root]
    else:  # straight from the accumulator to f32, then float ops
        real = make_node(Op.DEQUANTIZE, [acc], scales)
        half = constant(np.float32(0.5))
        spread_half = make_node(Op.BROADCAST_IN_DIM, [half], {"shape": dot.shape, "dims": ()})
        scaled = make_node(Op.MUL, [real, spread_half])
        root = make_node(Op.MAX, [scaled, make_node(Op.NEG, [scaled])])
        body += [real, half, spread_half, scaled, root.srcs[1], root]
    x, w = fn.params
    module = Module((Function("main", (x, w, bias), tuple(body), (root,)),), "main")
    return PassManager(parse_pipeline("fuse")).run(module)


def _check_epilogue(module: Module, threads: int = 1, fill: int | None = None) -> None:
    fn = module.function("main")
    fused = [n for n in fn.body if n.op is Op.FUSION]
    assert len(fused) == 1, "fuse did not make one output fusion"
    assert fn.results == (fused[0],)
    assert gemm_int8.applicable(fused[0]), "the int8 GEMM declined the fusion"
    args = _inputs(module, fill=fill)
    rng = np.random.default_rng(1)
    args[2] = rng.integers(-(1 << 20), 1 << 20, args[2].shape, dtype=np.int32)  # the bias
    got = CpuExecutable(module, threads=threads)(*args)[0]
    expected = run_module(module, args)[0]
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)  # integers equal; floats to the bit


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("types", [(I8, I8), (U8, U8), (U8, I8)], ids=["i8", "u8", "u8xi8"])
@pytest.mark.parametrize("shape", EPILOGUE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_epilogue_shapes(shape: tuple[int, int, int], types: tuple[DType, DType], form: str,
                         path: str) -> None:  # fmt: skip
    per_channel = sum(shape) % 2 == 0
    _check_epilogue(_epilogue(*shape, types, form, per_channel, out=types[0]))
    _check_epilogue(_epilogue(*shape, types, form, not per_channel, out=types[0], seed=1))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("per_channel", [True, False], ids=["per-channel", "per-tensor"])
@pytest.mark.parametrize("out", [I8, U8])
def test_epilogue_requantize(out: DType, per_channel: bool, threads: int, path: str) -> None:
    for form in ("requantize", "relu-requantize", "dequantize"):
        _check_epilogue(_epilogue(70, 45, 100, (I8, I8), form, per_channel, out), threads)
        _check_epilogue(_epilogue(19, 23, 45, (U8, U8), form, per_channel, out, batch=3), threads)


@pytest.mark.parametrize("fill", [-128, 127, 255])
def test_epilogue_extreme_values(fill: int, path: str) -> None:
    """The largest sums reach requantize's saturating left shift and its clamps."""
    types = (U8, U8) if fill == 255 else (I8, I8)
    for form in ("requantize", "dequantize", "float-chain"):
        _check_epilogue(_epilogue(35, 33, 259, types, form, True, types[0]), fill=fill)


@pytest.mark.parametrize("threads", [1, 2])
def test_epilogue_column_blocks(threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With an epilogue K is one block; small limits leave room for 32 columns at a time."""
    monkeypatch.setattr(gemm_int8, "KC_MAX", 64)
    monkeypatch.setattr(gemm_int8, "NB_MAX", 32)
    _check_epilogue(_epilogue(70, 100, 50, (I8, I8), "requantize", True), threads)
    _check_epilogue(_epilogue(33, 65, 64, (U8, U8), "dequantize", False, U8), threads)


def test_epilogue_declined_when_k_does_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """K one block too long for B's scratch: the generic path computes the fusion, exactly."""
    monkeypatch.setattr(gemm_int8, "KC_MAX", 64)
    monkeypatch.setattr(gemm_int8, "NB_MAX", 32)
    module = _epilogue(9, 7, 130, (I8, I8), "requantize", True)
    (fused,) = [n for n in module.function("main").body if n.op is Op.FUSION]
    assert not gemm_int8.applicable(fused)
    plain = _dot(9, 7, 130).function("main").results[0]
    assert gemm_int8.applicable(plain)  # no epilogue: K in several blocks
    args = _inputs(module)
    got = CpuExecutable(module)(*args)[0]
    np.testing.assert_array_equal(got, run_module(module, args)[0])


@pytest.mark.parametrize("shape", [(0, 5, 7), (5, 0, 7), (5, 7, 0)], ids=["m0", "n0", "k0"])
def test_epilogue_empty(shape: tuple[int, int, int]) -> None:
    """Nothing to multiply: declined, and the generic path writes the epilogue of zeros."""
    module = _epilogue(*shape, (I8, I8), "dequantize", per_channel=False)
    (fused,) = [n for n in module.function("main").body if n.op is Op.FUSION]
    assert not gemm_int8.applicable(fused)
    args = _inputs(module)
    got = CpuExecutable(module)(*args)[0]
    expected = run_module(module, args)[0]
    assert got.shape == expected.shape == shape[:2]
    np.testing.assert_array_equal(got, expected)


def test_epilogue_that_reads_other_positions_is_declined() -> None:
    """A transpose after the dot reads C where it does not write: not an epilogue."""
    module = _dot(6, 6, 8)
    fn = module.function("main")
    (dot,) = fn.results
    flipped = make_node(Op.TRANSPOSE, [dot], {"perm": (1, 0)})
    body = Function("fusion", fn.params, (dot, flipped), (flipped,))
    node = make_node(Op.FUSION, list(fn.params), {"body": body})
    assert not gemm_int8.applicable(node)
