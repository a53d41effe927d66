"""The int8 convolution (codegen/conv_int8.py) through whole programs, bit for bit against the
interpreter, on each of its paths: AMX tiles, AVX-512 VNNI and the portable loop.

Shapes are chosen to hit the edges of the kernel's blocks and packing: input channels not a
multiple of 4 or 64 (zero channels in X and W), output channels not a multiple of 16 (the last
panel's lane-by-lane store; an odd panel count, padded to a pair for the tiles), rows of more
than 32 output pixels and not a multiple of 6 or 32 (garbage pixels in the last block), padding
wider than the filter (rows that see only padding), asymmetric padding, strides wider than the
filter, dilation, groups and depthwise. The tile path is forced onto shapes it would decline
(narrow channels) by overriding `tiles_pay`. Integer sums are exact, so every comparison is
equality, including the int32 wraparound of a very long reduction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from codegen import conv_int8, gemm_int8
from codegen.jit import host_target
from ir.builder import make_node, parameter
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op
from ir.types import TensorType
from runtime.cpu import CpuExecutable
from runtime.interp import run_module

I8, U8, I32 = DType.I8, DType.U8, DType.I32

pytestmark = pytest.mark.skipif(
    not (gemm_int8._host_has_amx() or gemm_int8._host_has_vnni()),
    reason="the int8 convolution needs a host with AMX-INT8 (Linux) or AVX-512 VNNI",
)

# (input NHWC, filter HWIO, attrs)
SHAPES: list[tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
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


def _conv(x_shape: tuple[int, ...], w_shape: tuple[int, ...], attrs: dict[str, Any],
          dtype: DType = I8) -> Module:  # fmt: skip
    x = parameter("x", TensorType(x_shape, dtype))
    w = parameter("w", TensorType(w_shape, dtype))
    y = make_node(Op.CONV2D, [x, w], {**attrs, "out_dtype": I32})
    return Module((Function("main", (x, w), (y,), (y,)),), "main")


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


def _check(module: Module, threads: int = 1, fill: int | None = None) -> CpuExecutable:
    assert conv_int8.applicable(_node(module)), "the int8 convolution was not taken"
    args = _inputs(module, fill=fill)
    exe = CpuExecutable(module, threads=threads)
    got = exe(*args)[0]
    expected = run_module(module, args)[0]
    assert got.dtype == expected.dtype == np.int32
    np.testing.assert_array_equal(got, expected)
    return exe


@pytest.fixture(params=["tiles", "vnni", "portable"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each path on every shape: the tiles even where they would not pay, the fallbacks by
    refusing what comes before them, as on a host without it."""
    name: str = request.param
    if name == "tiles" and not gemm_int8._host_has_amx():
        pytest.skip("this host has no AMX-INT8")
    if name == "vnni" and not gemm_int8._host_has_vnni():
        pytest.skip("this host has no AVX-512 VNNI")
    monkeypatch.setattr(conv_int8, "tiles_pay", lambda cin, pg: True)
    monkeypatch.setattr(conv_int8, "USE_TILES", name == "tiles")
    monkeypatch.setattr(conv_int8, "USE_VNNI", name == "vnni")
    monkeypatch.setattr(conv_int8, "MACS_PER_UNIT", 1)  # small shapes split across threads too
    return name


@pytest.mark.parametrize("dtype", [I8, U8], ids=["i8", "u8"])
@pytest.mark.parametrize(("x_shape", "w_shape", "attrs"), SHAPES, ids=IDS)
def test_shapes(path: str, x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                attrs: dict[str, Any], dtype: DType) -> None:  # fmt: skip
    module = _conv(x_shape, w_shape, attrs, dtype)
    assert conv_int8.Shape.of(_node(module)).tiles == (path == "tiles")
    _check(module)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("dtype", "fill"), [(I8, -128), (I8, 127), (U8, 255)])
def test_extreme_values(path: str, dtype: DType, fill: int, threads: int) -> None:
    """Every product at its largest, -128 * -128 or 255 * 255, and the shift by 128 of the
    fallbacks at its edge (128 x the filter's sums)."""
    _check(_conv((2, 6, 37, 67), (3, 3, 67, 35), {"padding": "same"}, dtype), threads, fill)


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_share_rows(path: str, threads: int) -> None:
    _check(_conv((3, 11, 13, 20), (3, 3, 20, 24), {"padding": ((0, 1), (1, 1))}), threads)


def test_instructions(path: str) -> None:
    """The path under test is really the one compiled in."""
    asm = _check(_conv((1, 5, 40, 64), (3, 3, 64, 32), {"padding": "same"})).compiled.asm()
    assert ("tdpbssd" in asm) == (path == "tiles")
    assert ("vpdpbusd" in asm) == (path == "vnni")


@pytest.mark.parametrize("dtype", [I8, U8], ids=["i8", "u8"])
@pytest.mark.parametrize("path", ["vnni", "portable"], indirect=True)
def test_long_sum_wraps_like_the_reference(path: str, dtype: DType) -> None:
    """11 x 11 x 1100 = 133100 products of 128 * 128 (or 255 * 255) overflow int32: both sides
    wrap the exact sum. (With the tiles the packed filter, two panels of a 1152-byte K per tap,
    is past the stack limit, and the convolution is declined.)"""
    module = _conv((1, 11, 11, 1100), (11, 11, 1100, 1), {}, dtype)
    fill = -128 if dtype == I8 else 255
    _check(module, fill=fill)
    exact = (128 * 128 if dtype == I8 else 255 * 255) * 133_100
    assert exact > 2**31
    got = CpuExecutable(module)(*_inputs(module, fill=fill))[0]
    assert (got == np.int64((exact + 2**31) % 2**32 - 2**31)).all()


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
    assert not conv_int8.applicable(_node(module))
    args = _inputs(module)
    got = CpuExecutable(module)(*args)[0]
    expected = run_module(module, args)[0]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_declined() -> None:
    """Not int8 into int32, or a filter whose packed copy would not fit the stack budget."""
    x = parameter("x", TensorType((1, 4, 4, 8), I8))
    w = parameter("w", TensorType((3, 3, 8, 8), I8))
    assert not conv_int8.applicable(make_node(Op.CONV2D, [x, w], {}))  # i8 result
    xf = parameter("x", TensorType((1, 4, 4, 8), DType.F32))
    wf = parameter("w", TensorType((3, 3, 8, 8), DType.F32))
    assert not conv_int8.applicable(make_node(Op.CONV2D, [xf, wf], {}))
    big = _conv((1, 3, 3, 1024), (3, 3, 1024, 512), {"padding": "same"})
    assert conv_int8.Shape.of(_node(big)).scratch_bytes() > conv_int8.STACK_LIMIT
    assert not conv_int8.applicable(_node(big))
    assert conv_int8.applicable(_node(_conv((1, 4, 4, 8), (3, 3, 8, 8), {})))


def test_tiles_pay() -> None:
    assert conv_int8.tiles_pay(64, 64)
    assert conv_int8.tiles_pay(256, 96)
    assert not conv_int8.tiles_pay(3, 64)  # a first layer: 3 of 64 bytes per step
    assert not conv_int8.tiles_pay(1, 1)  # depthwise


@pytest.mark.parametrize("cpu", ["generic", "x86-64-v3"])
def test_programs_for_other_cpus_still_use_the_tiles(cpu: str) -> None:
    """The tile and VNNI code carry their own target features, so a module built for a
    baseline CPU compiles them too; they run only after the run-time checks."""
    if not gemm_int8._host_has_amx():
        pytest.skip("this host has no AMX-INT8")
    module = _conv((1, 6, 35, 64), (3, 3, 64, 48), {"padding": "same"})
    args = _inputs(module)
    exe = CpuExecutable(module, target=host_target(cpu))
    np.testing.assert_array_equal(exe(*args)[0], run_module(module, args)[0])
    assert "tdpbssd" in exe.compiled.asm()
