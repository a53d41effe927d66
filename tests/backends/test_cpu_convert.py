"""Float-to-integer conversion on the CPU: truncation, saturation and NaN -> 0, as the reference."""

from __future__ import annotations

import numpy as np
import pytest

from codegen.executable import CpuExecutable
from ir.dtypes import DType
from ir.parser import parse_module
from runtime.interp import run_module

SPECIAL = [0.0, -0.0, 0.5, -0.5, 1.5, -2.7, 126.9, 127.5, 128.0, -129.0, 255.9, 256.0,
           2.0**31, -(2.0**31) - 4096, 2.0**63, 1e30, -1e30, np.inf, -np.inf, np.nan]  # fmt: skip
INTS = [t for t in DType if t.is_int]


@pytest.mark.parametrize("source", ["f32", "f64", "f16", "bf16"])
@pytest.mark.parametrize("dest", [t.value for t in INTS])
def test_float_to_int_matches_the_reference(source, dest):
    n = len(SPECIAL)
    module = parse_module(
        f"func @main(%x: {source}[{n}]) -> {dest}[{n}] {{\n"
        f"  %y = convert(%x) {{dtype = {dest}}} : {dest}[{n}]\n  return %y\n}}"
    )
    with np.errstate(all="ignore"):
        x = np.array(SPECIAL, np.float64).astype(DType(source).np)
    got = CpuExecutable(module)(x)[0]
    np.testing.assert_array_equal(got, run_module(module, [x])[0])


def test_a_repeated_operand_does_not_share_a_kernel_with_distinct_ones():
    """mul(a, a) reads one pointer; the kernel must not be reused for mul(a, b)."""
    module = parse_module(
        "func @main(%a: f32[4], %b: f32[4]) -> (f32[4], f32[4]) {\n"
        "  %s = mul(%a, %a)\n  %p = mul(%a, %b)\n  return %s, %p\n}"
    )
    a, b = np.arange(4, dtype=np.float32), np.full(4, 10, np.float32)
    square, product = CpuExecutable(module)(a, b)
    np.testing.assert_array_equal(square, a * a)
    np.testing.assert_array_equal(product, a * b)
