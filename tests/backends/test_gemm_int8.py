"""The int8 GEMM (codegen/gemm_int8.py) through whole programs, bit for bit against the interpreter,
on each of its paths: AMX tiles, AVX-512 VNNI, and PMADDWD at 512, 256 and 128 bits.

A path is a CpuCaps (the host's, a psABI level's, or the host's without AMX), passed to the
executable as its target, never a switch inside the kernel. A path this host cannot execute
is skipped with the features it lacks, but its code is still generated, verified and compiled
to an object (test_paths), so every path at least compiles everywhere.

Sizes straddle the blocks' edges (16 rows or columns, 32-row blocks, the PMADDWD passes' 4, 8
or 16 columns, 64 bytes of K) and K takes values that are not multiples of 4 (every path
consumes four bytes of K at a time), so the zero padding of both packed operands is exercised;
smaller block limits force several K blocks (partial sums in the output) and several column
blocks. Integer sums are exact, so every comparison is equality, including the int32
wraparound of a very long K. Each executable runs on one thread and on two.

Fused epilogues (bias add in int32, requantize per tensor or per channel with a relu clamp,
dequantize to f32, float elementwise ops after it) are checked the same way: every form with
every signedness on the host's own path, every shape on every path. Each kernel compiles in
about 0.15 s, so the matrices are covering designs rather than full products: every value of
each parameter meets every other parameter at least once, with the host's path.
"""

from __future__ import annotations

import numpy as np
import pytest
from cpu_paths import Path, assembly_for, int8_paths, skip_reason

from codegen import gemm_int8
from codegen.cpu_caps import host_caps
from codegen.executable import CpuExecutable
from codegen.jit import caps_target
from ir.builder import constant, make_node, parameter
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op
from ir.types import TensorType
from passes import PassManager, parse_pipeline
from runtime.interp import run_module

I8, U8, I32 = DType.I8, DType.U8, DType.I32
SIZES = (1, 2, 3, 15, 17, 31, 33, 63, 64, 65, 100, 129)
TYPES = ((I8, I8), (U8, U8), (U8, I8), (I8, U8))
PATHS = int8_paths("amx")
HOST = Path("host", host_caps(), (), ())  # whichever path this machine takes by default


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


def _dots(*specs: tuple[int, int, int, tuple[DType, DType], str, int], first: int = 0) -> Module:
    """One function computing [batch] x @ w into i32 for each (m, n, k, types, transpose,
    batch), each operand optionally stored transposed ("a", "b", "ab"); the operands are
    x{i} and w{i}, counted from `first`."""
    params: list[Node] = []
    results: list[Node] = []
    for i, (m, n, k, types, transpose, batch) in enumerate(specs, first):
        lead = (batch,) if batch else ()
        lhs_shape = (*lead, k, m) if "a" in transpose else (*lead, m, k)
        rhs_shape = (*lead, n, k) if "b" in transpose else (*lead, k, n)
        x = parameter(f"x{i}", TensorType(lhs_shape, types[0]))
        w = parameter(f"w{i}", TensorType(rhs_shape, types[1]))
        rank = len(lead)
        dims = {
            "lhs_batch": tuple(range(rank)),
            "rhs_batch": tuple(range(rank)),
            "lhs_contract": (rank if "a" in transpose else rank + 1,),
            "rhs_contract": (rank + 1 if "b" in transpose else rank,),
            "out_dtype": I32,
        }
        params += [x, w]
        results.append(make_node(Op.DOT_GENERAL, [x, w], dims))
    return Module((Function("main", tuple(params), tuple(results), tuple(results)),), "main")


def _dot(m: int, n: int, k: int, types: tuple[DType, DType] = (I8, I8), transpose: str = "",
         batch: int = 0) -> Module:  # fmt: skip
    return _dots((m, n, k, types, transpose, batch))


def _inputs(module: Module, seed: int = 0, fill: int | None = None) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for p in module.function("main").params:
        lo, hi = (-128, 127) if p.dtype == I8 else (0, 255)
        if p.dtype == I32:  # a bias
            out.append(rng.integers(-(1 << 20), 1 << 20, p.shape, dtype=np.int32))
        elif fill is None:
            out.append(rng.integers(lo, hi + 1, p.shape, dtype=p.dtype.np))
        else:  # a value the type cannot hold becomes its largest
            out.append(np.full(p.shape, fill if lo <= fill <= hi else hi, p.dtype.np))
    return out


def _check(module: Module, path: Path = HOST, fills: tuple[int | None, ...] = (None,),
           threads: tuple[int, ...] = (1, 2)) -> CpuExecutable:  # fmt: skip
    """Compile `module` for the path once; every result, with inputs random or all `fill`,
    on each thread count, equals the interpreter's, bit for bit."""
    fn = module.function("main")
    kernels = [n for n in fn.body if n.op in (Op.DOT_GENERAL, Op.FUSION)]
    assert kernels, "nothing to compute"
    assert all(gemm_int8.applicable(n, path.caps) for n in kernels), "the int8 GEMM declined"
    exe = CpuExecutable(module, threads=threads[0], target=caps_target(path.caps))
    for fill in fills:
        args = _inputs(module, fill=fill)
        expected = run_module(module, args)
        for t in threads:
            runner = exe if t == threads[0] else CpuExecutable.from_payload(*exe.payload(), t)
            got = runner(*args)
            for g, e in zip(got, expected, strict=True):
                assert g.dtype == e.dtype
                np.testing.assert_array_equal(g, e)  # integers equal; floats to the bit
    return exe


# --- every path ----------------------------------------------------------------------------


def _zoo() -> Module:
    """One kernel for each signedness, with edges in every dimension, operands transposed, a
    batch, one of everything; and an epilogue."""
    dots = _dots(
        (33, 47, 70, (I8, I8), "", 0),
        (31, 17, 9, (U8, U8), "a", 0),
        (19, 23, 45, (U8, I8), "b", 3),
        (1, 1, 1, (I8, U8), "", 0),
        first=1,  # x0 and w0 are the epilogue's
    )
    fn = dots.function("main")
    fused = _epilogue(17, 31, 67, (I8, I8), "requantize", True).function("main")
    params, results = (*fn.params, *fused.params), (*fn.results, *fused.results)
    return Module((Function("main", params, (*fn.body, *fused.body), results),), "main")


@pytest.mark.parametrize("name", list(PATHS))
def test_paths(name: str) -> None:
    """Each path's code: exact where this host runs it, else at least generated and compiled;
    its assembly has the path's instructions and registers, and asks the OS for the tile
    state only when it has tiles."""
    p = PATHS[name]
    module = _zoo()
    reason = skip_reason(p)
    asm = assembly_for(module, p.caps) if reason else _check(module, p).compiled.asm()
    assert all(i in asm for i in p.instructions)
    assert p.register in asm
    wider = {"%xmm": "%ymm", "%ymm": "%zmm"}.get(p.register)
    assert wider is None or wider not in asm
    assert ("syscall" in asm) == (name == "amx")
    if name == "amx":  # the fallback where the OS refuses the tiles
        assert "vpdpbusd" in asm
        assert "tdpbuud" in asm
    if name in ("amx", "vnni"):  # VPDPBUSD has no u8 x u8 form: PMADDWD, fused with its
        assert "vpdpwssd" in asm  # addition into VNNI's VPDPWSSD
    if name not in ("amx", "vnni"):
        assert "vpdpbusd" not in asm
    if reason:
        pytest.skip(reason)


def test_extreme_values(path: Path) -> None:
    """Every product at its largest for each signedness: -128 * -128, 255 * -128, 255 * 255,
    and where the VNNI path shifts a signed A by 128, its correction at its largest."""
    module = _dots(*[(35, 33, 259, types, "", 0) for types in TYPES])
    _check(module, path, fills=(-128, 127, 255), threads=(1,))


def test_several_k_and_column_blocks(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gemm_int8, "KC_MAX", 64)
    monkeypatch.setattr(gemm_int8, "NB_MAX", 32)
    # 4 K blocks of 51 and 4 column blocks; u8 transposed
    _check(_dots((70, 100, 201, (I8, I8), "", 0), (33, 65, 130, (U8, U8), "ab", 0)), path)


def test_long_k_wraps_like_the_reference(path: Path) -> None:
    """K > 2^17 overflows int32 with -128 * -128 products: both sides wrap the exact sum."""
    module = _dot(2, 3, 140_001)
    exe = _check(module, path, fills=(-128,), threads=(1,))
    exact = 128 * 128 * 140_001
    assert exact > 2**31
    got = exe(*_inputs(module, fill=-128))[0]
    assert (got == np.int64(exact - 2**32)).all()


# --- the host's path -----------------------------------------------------------------------


@pytest.mark.parametrize("m", SIZES)
def test_sizes(m: int) -> None:
    """M, N and K each take every size once (a Latin square), the signedness in turn."""
    i = SIZES.index(m)
    n, k = SIZES[(i + 5) % len(SIZES)], SIZES[(i + 3) % len(SIZES)]
    _check(_dot(m, n, k, TYPES[i % 3]))


@pytest.mark.parametrize("transpose", ["a", "b", "ab"])
def test_transposed_operands(transpose: str) -> None:
    _check(_dot(37, 41, 101, transpose=transpose))


def test_batch() -> None:
    _check(_dots((19, 23, 45, (I8, I8), "", 3), (40, 9, 130, (U8, U8), "b", 2)))


def test_declined_without_int8_operands_or_i32_result() -> None:
    x = parameter("x", TensorType((4, 8), I8))
    w = parameter("w", TensorType((8, 4), I8))
    dims = {"lhs_batch": (), "rhs_batch": (), "lhs_contract": (1,), "rhs_contract": (0,)}
    for p in PATHS.values():
        assert not gemm_int8.applicable(make_node(Op.DOT_GENERAL, [x, w], dims), p.caps)
        a, b = (parameter(s, TensorType((4, 4), DType.I16)) for s in "ab")
        dot16 = make_node(Op.DOT_GENERAL, [a, b], {**dims, "out_dtype": I32})
        assert not gemm_int8.applicable(dot16, p.caps)
        assert gemm_int8.applicable(make_node(Op.DOT_GENERAL, [x, w], {**dims, "out_dtype": I32}),
                                    p.caps)  # fmt: skip


# --- fused epilogues ---------------------------------------------------------------------------

EPILOGUE_SHAPES = [
    (1, 1, 1), (2, 3, 5), (1, 17, 64), (31, 1, 13), (17, 31, 67), (33, 65, 129), (64, 32, 64),
    (97, 10, 128), (40, 130, 3),
]  # fmt: skip
FORMS = ("bias", "requantize", "relu-requantize", "dequantize", "float-chain")


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


def _check_epilogue(module: Module, path: Path = HOST, fills: tuple[int | None, ...] = (None,),
                    threads: tuple[int, ...] = (1,)) -> None:  # fmt: skip
    fn = module.function("main")
    fused = [n for n in fn.body if n.op is Op.FUSION]
    assert len(fused) == 1, "fuse did not make one output fusion"
    assert fn.results == (fused[0],)
    _check(module, path, fills, threads)


@pytest.mark.parametrize("form", FORMS)
def test_epilogue_forms(form: str) -> None:
    """Every form, the signedness and per channel or per tensor in turn (each form meets the
    other scale granularity in test_epilogue_shapes)."""
    i = FORMS.index(form)
    types = TYPES[i % 3]
    _check_epilogue(_epilogue(33, 65, 129, types, form, i % 2 == 1, out=types[0], seed=i))


@pytest.mark.parametrize("shape", EPILOGUE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_epilogue_shapes(shape: tuple[int, int, int], path: Path) -> None:
    """Every shape on every path, the forms and signedness taken in turn."""
    i = EPILOGUE_SHAPES.index(shape)
    types = TYPES[i % 3]
    _check_epilogue(_epilogue(*shape, types, FORMS[i % len(FORMS)], i % 2 == 0, out=types[0]))


@pytest.mark.parametrize("per_channel", [True, False], ids=["per-channel", "per-tensor"])
@pytest.mark.parametrize("out", [I8, U8])
def test_epilogue_requantize(out: DType, per_channel: bool) -> None:
    """Into i8 and u8, a relu's clamp, and dequantized, with threads."""
    forms = ("requantize", "relu-requantize", "dequantize")
    i = 2 * (out == U8) + per_channel
    module = _epilogue(70, 45, 100, (I8, I8), forms[i % 3], per_channel, out)
    _check_epilogue(module, threads=(1, 2))
    module = _epilogue(19, 23, 45, (U8, U8), forms[(i + 1) % 3], per_channel, out, batch=3)
    _check_epilogue(module, threads=(1, 2))


@pytest.mark.parametrize("form", ["requantize", "dequantize", "float-chain"])
def test_epilogue_extreme_values(form: str) -> None:
    """The largest sums reach requantize's saturating left shift and its clamps."""
    if form == "dequantize":
        _check_epilogue(_epilogue(35, 33, 259, (U8, U8), form, True, U8), fills=(255,))
    else:
        _check_epilogue(_epilogue(35, 33, 259, (I8, I8), form, True, I8), fills=(-128, 127))


def test_epilogue_column_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """With an epilogue K is one block; small limits leave room for 32 columns at a time."""
    monkeypatch.setattr(gemm_int8, "KC_MAX", 64)
    monkeypatch.setattr(gemm_int8, "NB_MAX", 32)
    _check_epilogue(_epilogue(70, 100, 50, (I8, I8), "requantize", True), threads=(1, 2))
    _check_epilogue(_epilogue(33, 65, 64, (U8, U8), "dequantize", False, U8), threads=(1, 2))


def test_epilogue_declined_when_k_does_not_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """K one block too long for B's scratch: the generic path computes the fusion, exactly."""
    monkeypatch.setattr(gemm_int8, "KC_MAX", 64)
    monkeypatch.setattr(gemm_int8, "NB_MAX", 32)
    module = _epilogue(9, 7, 130, (I8, I8), "requantize", True)
    (fused,) = [n for n in module.function("main").body if n.op is Op.FUSION]
    assert not gemm_int8.applicable(fused, host_caps())
    plain = _dot(9, 7, 130).function("main").results[0]
    assert gemm_int8.applicable(plain, host_caps())  # no epilogue: K in several blocks
    args = _inputs(module)
    got = CpuExecutable(module)(*args)[0]
    np.testing.assert_array_equal(got, run_module(module, args)[0])


@pytest.mark.parametrize("shape", [(0, 5, 7), (5, 0, 7), (5, 7, 0)], ids=["m0", "n0", "k0"])
def test_epilogue_empty(shape: tuple[int, int, int]) -> None:
    """Nothing to multiply: declined, and the generic path writes the epilogue of zeros."""
    module = _epilogue(*shape, (I8, I8), "dequantize", per_channel=False)
    (fused,) = [n for n in module.function("main").body if n.op is Op.FUSION]
    assert not gemm_int8.applicable(fused, host_caps())
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
    assert not gemm_int8.applicable(node, host_caps())
