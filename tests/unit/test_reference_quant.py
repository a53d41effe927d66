"""quantize, dequantize, requantize: the reference against scalar Python written from the spec,
element by element, and the CPU backend against the reference, integer for integer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ir.dtypes import DType
from ir.ops import QUANT_INTS, Op
from ir.parser import parse_module
from ir.quant import int_range
from runtime.interp import run_op

SPECIAL = [0.0, -0.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.049, 0.051, 3.3, -7.77, 1e3, -1e3,
           1e30, -1e30, np.inf, -np.inf, np.nan]  # fmt: skip


def quantize_one(x: float, scale: float, zero: int, out: DType, compute: type) -> int:
    """The spec, one element at a time (Python's round() ties to even)."""
    q = compute(x) / compute(scale)
    if math.isnan(q):
        r = 0
    elif math.isinf(q):
        r = 1 << 50 if q > 0 else -(1 << 50)
    else:
        r = round(float(q))
    lo, hi = int_range(out)
    return max(lo, min(hi, r + zero))


@pytest.mark.parametrize("source", ["f32", "f64", "f16", "bf16"])
@pytest.mark.parametrize("out", [t.value for t in QUANT_INTS])
def test_quantize_per_tensor(source, out):
    x = np.array(SPECIAL, np.float64).astype(DType(source).np)
    got = run_op(Op.QUANTIZE, x, scale=[0.1], zero_point=[3], dtype=out)
    compute = np.float64 if source == "f64" else np.float32
    want = [quantize_one(float(v), 0.1, 3, DType(out), compute) for v in x]
    np.testing.assert_array_equal(got, np.array(want, DType(out).np))


def test_quantize_per_channel_uses_each_channels_scale_and_zero_point():
    x = np.array([[1.0, 1.0, 1.0], [-2.0, 0.25, 7.0]], np.float32)
    got = run_op(Op.QUANTIZE, x, scale=[0.5, 0.25, 2.0], zero_point=[0, 10, -3], axis=1)
    channels = [(0.5, 0), (0.25, 10), (2.0, -3)]
    want = [
        [quantize_one(float(v), s, z, DType.I8, np.float32) for v, (s, z) in pairs]
        for pairs in (zip(row, channels, strict=True) for row in x)
    ]
    np.testing.assert_array_equal(got, np.array(want, np.int8))


@pytest.mark.parametrize("source", [t.value for t in QUANT_INTS])
@pytest.mark.parametrize("out", ["f32", "f64", "f16", "bf16"])
def test_dequantize(source, out):
    lo, hi = int_range(DType(source))
    q = np.array(sorted({lo, lo + 1, -1 if lo else 0, 0, 1, 7, hi - 1, hi}), DType(source).np)
    got = run_op(Op.DEQUANTIZE, q, scale=[0.3], zero_point=[5 if hi > 5 else 0], dtype=out)
    compute = np.float64 if out == "f64" else np.float32
    zero = 5 if hi > 5 else 0
    want = [compute(int(v) - zero) * compute(0.3) for v in q]
    np.testing.assert_array_equal(got, np.array(want).astype(DType(out).np))


def requantize_one(acc: int, multiplier: int, shift: int, zero: int, lo: int, hi: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul and RoundingDivideByPOT, in Python ints."""
    if shift < 0:
        acc = max(-(2**31), min(2**31 - 1, acc * 2**-shift))
    product = acc * multiplier
    nudge = 2**30 if product >= 0 else 1 - 2**30
    y = int((product + nudge) / 2**31) if abs(product) < 2**52 else _trunc_div(product + nudge)
    if shift > 0:
        mask = 2**shift - 1
        remainder = y & mask
        threshold = (mask >> 1) + (1 if y < 0 else 0)
        y = (y >> shift) + (1 if remainder > threshold else 0)
    return max(lo, min(hi, y + zero))


def _trunc_div(n: int) -> int:
    q = abs(n) // 2**31
    return q if n >= 0 else -q


ACCUMULATORS = [0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 100, -100, 12345, -12345,
                2**20 + 1, -(2**20) - 1, 2**31 - 1, -(2**31), 2**30, -(2**30)]  # fmt: skip
FACTORS = [(1 << 30, 0), (1 << 30, 1), (1 << 30, 3), (1518500250, 5), ((1 << 31) - 1, 0),
           (1 << 30, -2), (1 << 30, -31), (0, 0), (1 << 30, 31), (1234567891, 7)]  # fmt: skip


@pytest.mark.parametrize(("multiplier", "shift"), FACTORS)
@pytest.mark.parametrize("out", [t.value for t in QUANT_INTS])
def test_requantize_matches_the_integer_spec(multiplier, shift, out):
    acc = np.array(ACCUMULATORS, np.int32)
    lo, hi = int_range(DType(out))
    zero = max(lo, min(hi, -3))
    got = run_op(Op.REQUANTIZE, acc, multiplier=[multiplier], shift=[shift], zero_point=zero,
                 dtype=out)  # fmt: skip
    want = [requantize_one(int(a), multiplier, shift, zero, lo, hi) for a in ACCUMULATORS]
    np.testing.assert_array_equal(got, np.array(want, DType(out).np))


def test_requantize_clamps_to_min_and_max_for_a_fused_relu():
    acc = np.array([-1000, -1, 0, 1, 1000], np.int32)
    got = run_op(Op.REQUANTIZE, acc, multiplier=[1 << 30], shift=[0], zero_point=-10, min=-10)
    np.testing.assert_array_equal(got, np.array([-10, -10, -10, -9, 127], np.int8))  # 0.5 rounds up


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("quantize(%x) {scale = [0.0]}", "every scale must be a positive finite number"),
        ("quantize(%x) {scale = [0.1, 0.2]}", "need an 'axis'"),
        ("quantize(%x) {scale = [0.1, 0.2], axis = 1}", "has 2 values; axis 1 has 3 channels"),
        ("quantize(%x) {scale = 0.1, zero_point = [200]}", "outside i8"),
        ("quantize(%x) {scale = 0.1, dtype = f32}", "quantized values are i8, u8, i16, i32"),
    ],
)
def test_bad_attributes_are_located_errors(text, message):
    from ir.diagnostics import GraphTypeError

    source = f"func @main(%x: f32[2,3]) -> i8[2,3] {{\n  %q = {text} : i8[2,3]\n  return %q\n}}"
    with pytest.raises(GraphTypeError, match=message):
        parse_module(source)


@pytest.mark.parametrize(("multiplier", "shift"), FACTORS)
def test_the_cpu_backend_gives_the_same_integers(multiplier, shift):
    from codegen.executable import CpuExecutable
    from runtime.interp import run_module

    n, m = len(SPECIAL), len(ACCUMULATORS)
    module = parse_module(
        f"func @main(%x: f32[{n}], %a: i32[{m}], %h: f16[{n}]) -> (i8[{n}], u8[{n}], i8[{m}], "
        f"f32[{n}], i16[{m}]) {{\n"
        f"  %q = quantize(%x) {{scale = 0.1, zero_point = [3]}} : i8[{n}]\n"
        f"  %u = quantize(%h) {{scale = 0.7, zero_point = [128], dtype = u8}} : u8[{n}]\n"
        f"  %r = requantize(%a) {{multiplier = [{multiplier}], shift = [{shift}], zero_point = -3}}"
        f" : i8[{m}]\n"
        f"  %d = dequantize(%u) {{scale = 0.3, zero_point = [128]}} : f32[{n}]\n"
        f"  %w = requantize(%a) {{multiplier = [{multiplier}], shift = [{shift}], dtype = i16}}"
        f" : i16[{m}]\n"
        f"  return %q, %u, %r, %d, %w\n}}"
    )
    args = [np.array(SPECIAL, np.float32), np.array(ACCUMULATORS, np.int32),
            np.array(SPECIAL, np.float16)]  # fmt: skip
    for got, want in zip(CpuExecutable(module)(*args), run_module(module, args), strict=True):
        np.testing.assert_array_equal(got, want)


def test_u8_times_i8_products_are_allowed_and_exact():
    a = np.array([[0, 255, 128]], np.uint8)
    b = np.array([[-128], [127], [1]], np.int8)
    got = run_op(Op.DOT_GENERAL, a, b, lhs_contract=[1], rhs_contract=[0])
    assert got.dtype == np.int32  # the default result of a mixed product
    np.testing.assert_array_equal(got, a.astype(np.int64) @ b.astype(np.int64))
    from ir.diagnostics import GraphTypeError

    with pytest.raises(GraphTypeError, match="operand dtypes differ"):
        run_op(Op.DOT_GENERAL, a, b.astype(np.int16), lhs_contract=[1], rhs_contract=[0])
