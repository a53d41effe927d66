"""Float convolutions on the GEMM's register tile (codegen/conv_gemm.py), at every capability level.

Shapes straddle the tile (6 pixels, 16 or 64 channels), with strides, dilation, asymmetric and
negative-free padding wider than the input, 1x1 filters, one input channel and batches. The
error bound is a sum of K = kh kw cin products in any order: 2 K u (|x| * |w|) + 4 u |y|.
"""

from __future__ import annotations

import numpy as np
import pytest

from codegen import conv_gemm
from codegen.cpu_caps import host_levels
from codegen.executable import CpuExecutable
from codegen.jit import host_target
from ir.graph import Module
from ir.parser import parse_module
from runtime.inputs import random_inputs
from runtime.interp import run_module

CASES = [  # x, w, attributes
    ("[1,5,5,3]", "[1,1,3,7]", ""),
    ("[2,9,7,6]", "[3,2,6,17]", "{strides = [2, 1], padding = same}"),
    ("[1,8,8,4]", "[3,3,4,5]", "{dilation = [2, 2], padding = [[2, 1], [0, 3]]}"),
    ("[1,13,11,1]", "[3,3,1,33]", "{padding = same}"),
    ("[1,4,3,8]", "[5,5,8,16]", "{padding = [[4, 4], [4, 4]]}"),  # taps mostly in padding
    ("[3,7,19,16]", "[3,3,16,64]", "{padding = same}"),
    ("[1,6,6,65]", "[2,2,65,70]", "{strides = [2, 2]}"),
]


def _module(x: str, w: str, attrs: str) -> Module:
    text = f"func @main(%x: {x}, %w: {w}) {{\n %y = conv2d(%x, %w) {attrs}\n return %y\n}}"
    return parse_module(text)


def _check(dtype: str, case: tuple[str, str, str], cpu: str, threads: int) -> None:
    x, w, attrs = case
    module = _module(dtype + x, dtype + w, attrs)
    conv = module.entry_function.body[0]
    assert conv_gemm.applicable(conv, host_target(cpu).caps), "conv_gemm not taken"
    args = random_inputs(module.entry_function, seed=5)
    expected = run_module(module, args)[0]
    got = CpuExecutable(module, threads=threads, target=host_target(cpu))(*args)[0]
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    magnitude = run_module(module, [np.abs(a) for a in args])[0].astype(np.float64)
    kh, kw, cin, _ = conv.srcs[1].shape
    u = float(np.finfo(expected.dtype).eps) / 2
    bound = 2 * kh * kw * cin * u * magnitude + 4 * u * np.abs(expected.astype(np.float64))
    error = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    assert np.all(error <= bound + np.finfo(expected.dtype).tiny), float(np.max(error - bound))


@pytest.mark.parametrize("cpu", host_levels())
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_convolutions(dtype: str, cpu: str) -> None:
    for case in CASES:
        _check(dtype, case, cpu, threads=1)


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_split_rows(threads: int) -> None:
    _check("f32", CASES[5], "native", threads)


def test_grouped_and_integer_convolutions_keep_their_kernels() -> None:
    caps = host_target().caps
    for x, w, attrs in [
        ("f32[1,3,3,6]", "f32[3,3,1,6]", "{padding = same, groups = 6}"),
        ("i8[1,6,5,2]", "i8[2,2,2,3]", "{out_dtype = i32, padding = same}"),
        ("bf16[1,4,4,2]", "bf16[3,3,2,2]", "{padding = same}"),
    ]:
        module = _module(x, w, attrs)
        assert not conv_gemm.applicable(module.entry_function.body[0], caps)
