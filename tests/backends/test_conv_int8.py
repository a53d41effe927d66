"""The int8 convolution (codegen/conv_int8.py) through whole programs, bit for bit against the
interpreter, on each of its paths: AMX tiles, AVX-512 VNNI, and PMADDWD at 512, 256 and 128
bits.

A path is a CpuCaps passed to the executable as its target. A path this host cannot execute is
skipped with the features it lacks, but its code is still generated, verified and compiled to
an object (test_paths).

Shapes are chosen to hit the edges of the kernel's blocks and packing: input channels not a
multiple of 4 or 64 (zero channels in X and W), output channels not a multiple of 16 or of the
PMADDWD passes' 4, 8 or 16 (the last panel's lane-by-lane store; an odd panel count, padded to
a pair for the tiles), rows of more than 32 output pixels and not a multiple of 4, 6 or 32
(garbage pixels in the last block), padding wider than the filter (rows that see only
padding), asymmetric padding, strides wider than the filter, dilation, groups and depthwise.
The tile path is forced onto shapes it would decline (narrow channels) by overriding
`tiles_pay`. Integer sums are exact, so every comparison is equality, including the int32
wraparound of a very long reduction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from cpu_paths import Path, assembly_for, int8_paths, skip_reason

from codegen import conv_int8
from codegen.executable import CpuExecutable
from codegen.jit import caps_target
from ir.builder import make_node, parameter
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op
from ir.types import TensorType
from runtime.interp import run_module

I8, U8, I32 = DType.I8, DType.U8, DType.I32
PATHS = int8_paths("tiles")


@pytest.fixture(params=list(PATHS))
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each path this host can execute on every shape, the tiles even where they would not
    pay; the others are skipped, naming what they need."""
    p = PATHS[request.param]
    reason = skip_reason(p)
    if reason:
        pytest.skip(reason)
    monkeypatch.setattr(conv_int8, "tiles_pay", lambda cin, pg: True)
    monkeypatch.setattr(conv_int8, "MACS_PER_UNIT", 1)  # small shapes split across threads too
    return p


Spec = tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]  # input NHWC, filter HWIO, attrs
SHAPES: list[Spec] = [
    ((1, 9, 10, 64), (3, 3, 64, 64), {"padding": "same"}),
    ((1, 5, 7, 13), (1, 1, 13, 17), {}),
    (
        (2, 7, 11, 5),
        (3, 2, 5, 19),
        {"padding": ((1, 2), (0, 3)), "strides": (2, 3), "dilation": (2, 1)},
    ),
    ((1, 7, 7, 6), (3, 3, 1, 6), {"padding": "same", "groups": 6}),
    ((1, 6, 5, 12), (3, 3, 4, 18), {"padding": ((2, 0), (1, 1)), "groups": 3}),
    ((1, 4, 9, 70), (2, 3, 70, 33), {"padding": "same"}),
    ((3, 3, 4, 2), (2, 2, 2, 5), {"padding": ((3, 3), (2, 4))}),
    ((1, 3, 45, 66), (3, 3, 66, 40), {"padding": "same", "dilation": (1, 2)}),
    ((1, 9, 9, 8), (1, 1, 8, 16), {"strides": (3, 4)}),
    ((2, 2, 3, 1), (3, 3, 1, 1), {"padding": ((2, 2), (2, 2)), "strides": (2, 1)}),
    ((1, 2, 70, 130), (1, 3, 65, 48), {"padding": ((0, 0), (1, 0)), "groups": 2}),
]
IDS = [f"{x[1]}x{x[2]}x{x[3]}-k{w[0]}x{w[1]}-g{a.get('groups', 1)}" for x, w, a in SHAPES]


def _convs(*specs: tuple[tuple[int, ...], tuple[int, ...], dict[str, Any], DType]) -> Module:
    """One function computing each (input shape, filter shape, attrs, dtype) convolution."""
    params: list[Node] = []
    results: list[Node] = []
    for i, (x_shape, w_shape, attrs, dtype) in enumerate(specs):
        x = parameter(f"x{i}", TensorType(x_shape, dtype))
        w = parameter(f"w{i}", TensorType(w_shape, dtype))
        params += [x, w]
        results.append(make_node(Op.CONV2D, [x, w], {**attrs, "out_dtype": I32}))
    return Module((Function("main", tuple(params), tuple(results), tuple(results)),), "main")


def _conv(x_shape: tuple[int, ...], w_shape: tuple[int, ...], attrs: dict[str, Any],
          dtype: DType = I8) -> Module:  # fmt: skip
    return _convs((x_shape, w_shape, attrs, dtype))


def _node(module: Module) -> Node:
    return module.function("main").body[-1]


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


def _check(module: Module, path: Path, fills: tuple[int | None, ...] = (None,),
           threads: tuple[int, ...] = (1,)) -> CpuExecutable:  # fmt: skip
    """Compile `module` for the path once; every result, with inputs random or all `fill`,
    on each thread count, equals the interpreter's, bit for bit."""
    convs = [n for n in module.function("main").body if n.op is Op.CONV2D]
    assert all(conv_int8.applicable(n, path.caps) for n in convs), "the int8 conv declined"
    exe = CpuExecutable(module, threads=threads[0], target=caps_target(path.caps))
    for fill in fills:
        args = _inputs(module, fill=fill)
        expected = run_module(module, args)
        for t in threads:
            runner = exe if t == threads[0] else CpuExecutable.from_payload(*exe.payload(), t)
            for got, want in zip(runner(*args), expected, strict=True):
                assert got.dtype == want.dtype == np.int32
                np.testing.assert_array_equal(got, want)
    return exe


@pytest.mark.parametrize("name", list(PATHS))
def test_paths(name: str) -> None:
    """Each path's code: exact where this host runs it, else at least generated and compiled;
    its assembly has the path's instructions and registers, and asks the OS for the tile
    state only when it has tiles."""
    p = PATHS[name]
    module = _convs(
        (*SHAPES[0], I8),  # 64 -> 64 channels: the tiles pay
        (*SHAPES[2], U8),
        (*SHAPES[4], I8),
        (*SHAPES[3], U8),
    )
    reason = skip_reason(p)
    asm = assembly_for(module, p.caps) if reason else _check(module, p).compiled.asm()
    assert all(i in asm for i in p.instructions)
    assert p.register in asm
    wider = {"%xmm": "%ymm", "%ymm": "%zmm"}.get(p.register)
    assert wider is None or wider not in asm
    assert ("syscall" in asm) == (name == "tiles")
    assert ("vpdpbusd" in asm) == (name in ("tiles", "vnni"))  # the tiles' fallback: VNNI
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), SHAPES, ids=IDS)
def test_shapes(path: Path, x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                attrs: dict[str, Any]) -> None:  # fmt: skip
    """Every shape on every path, i8 and u8 in turn."""
    dtype = (I8, U8)[(SHAPES.index((x_shape, w_shape, attrs)) + list(PATHS).index(path.name)) % 2]
    module = _conv(x_shape, w_shape, attrs, dtype)
    assert conv_int8.Shape.of(_node(module), path.caps).tiles == (path.name == "tiles")
    _check(module, path)


def test_extreme_values(path: Path) -> None:
    """Every product at its largest, -128 * -128 or 255 * 255, and the shift by 128 of the
    VNNI path at its edge (128 x the filter's sums); on one thread and two."""
    shape: Spec = ((2, 6, 37, 67), (3, 3, 67, 35), {"padding": "same"})
    _check(_conv(*shape, I8), path, fills=(-128, 127), threads=(1, 2))
    _check(_conv(*shape, U8), path, fills=(255,), threads=(1, 2))


def test_threads_share_rows(path: Path) -> None:
    _check(_conv((3, 11, 13, 20), (3, 3, 20, 24), {"padding": ((0, 1), (1, 1))}), path,
           threads=(1, 2))  # fmt: skip


def test_long_sum_wraps_like_the_reference(path: Path) -> None:
    """11 x 11 x 1100 = 133100 products of 128 * 128 (or 255 * 255) overflow int32: both sides
    wrap the exact sum. With the tiles the packed filter, two panels of a 1152-byte K per tap,
    is past the stack limit, and the convolution is declined."""
    shape: Spec = ((1, 11, 11, 1100), (11, 11, 1100, 1), {})
    module = _convs((*shape, I8), (*shape, U8))
    if path.name == "tiles":
        assert not conv_int8.applicable(_node(module), path.caps)
        return
    got = _check(module, path, fills=(-128,))(*_inputs(module, fill=-128))  # u8 takes 255
    for result, product in zip(got, (128 * 128, 255 * 255), strict=True):
        exact = product * 133_100
        assert exact > 2**31
        assert (result == np.int64((exact + 2**31) % 2**32 - 2**31)).all()


@pytest.mark.parametrize(
    ("x_shape", "w_shape"),
    [((0, 5, 5, 4), (3, 3, 4, 8)), ((1, 5, 5, 0), (3, 3, 0, 8)), ((1, 2, 2, 3), (3, 3, 3, 0))],
    ids=["no-batch", "no-input-channels", "no-output-channels"],
)
def test_empty_operands_are_left_to_the_generic_loop(
    x_shape: tuple[int, ...], w_shape: tuple[int, ...]
) -> None:
    """Size-0 outputs and sums over nothing (all zeros) are declined and still exact."""
    module = _conv(x_shape, w_shape, {"padding": "same"})
    assert not any(conv_int8.applicable(_node(module), p.caps) for p in PATHS.values())
    args = _inputs(module)
    got = CpuExecutable(module)(*args)[0]
    expected = run_module(module, args)[0]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", list(PATHS))
def test_declined(name: str) -> None:
    """Not int8 into int32, or a filter whose packed copy would not fit the stack budget."""
    caps = PATHS[name].caps
    x = parameter("x", TensorType((1, 4, 4, 8), I8))
    w = parameter("w", TensorType((3, 3, 8, 8), I8))
    assert not conv_int8.applicable(make_node(Op.CONV2D, [x, w], {}), caps)  # i8 result
    xf = parameter("x", TensorType((1, 4, 4, 8), DType.F32))
    wf = parameter("w", TensorType((3, 3, 8, 8), DType.F32))
    assert not conv_int8.applicable(make_node(Op.CONV2D, [xf, wf], {}), caps)
    big = _conv((1, 3, 3, 1024), (3, 3, 1024, 512), {"padding": "same"})
    assert conv_int8.Shape.of(_node(big), caps).scratch_bytes() > conv_int8.STACK_LIMIT
    assert not conv_int8.applicable(_node(big), caps)
    assert conv_int8.applicable(_node(_conv((1, 4, 4, 8), (3, 3, 8, 8), {})), caps)


def test_tiles_pay() -> None:
    assert conv_int8.tiles_pay(64, 64)
    assert conv_int8.tiles_pay(256, 96)
    assert not conv_int8.tiles_pay(3, 64)  # a first layer: 3 of 64 bytes per step
    assert not conv_int8.tiles_pay(1, 1)  # depthwise
