"""QDQ folding passes (passes/qdq.py): golden IR before/after and the numbers on both sides."""

from __future__ import annotations

import numpy as np
from passcheck import apply, assert_golden, assert_unchanged
from test_quantize import SAMPLES, digits

from compiler.quantization import quantize
from ir.parser import parse_file, parse_module
from ir.printer import print_module
from runtime.inputs import random_inputs
from runtime.interp import run_module

# an asymmetric u8 activation (zero point 3) times per-channel int8 weights, plus a float bias:
# the bias becomes [1.0 / 0.125, -0.5 / 0.0625] = [8, -8] and the zero-point correction
# -3 * (column sums [-1, 8]) = [3, -24] joins it
FOLD_BEFORE = """func @main(%x: f32[2,3]) -> f32[2,2] {
  %q = quantize(%x) {scale = [0.5], zero_point = [3], dtype = u8} : u8[2,3]
  %dx = dequantize(%q) {scale = [0.5], zero_point = [3]} : f32[2,3]
  %w = constant [[1, -2], [3, 4], [-5, 6]] : i8[3,2]
  %dw = dequantize(%w) {scale = [0.25, 0.125], axis = 1} : f32[3,2]
  %y = dot_general(%dx, %dw) {lhs_contract = [1], rhs_contract = [0]} : f32[2,2]
  %b = constant [1.0, -0.5] : f32[2]
  %bb = broadcast_in_dim(%b) {shape = [2,2], dims = [1]} : f32[2,2]
  %z = add(%y, %bb) : f32[2,2]
  return %z
}"""

FOLD_AFTER = """func @main(%x: f32[2,3]) -> f32[2,2] {
  %q = quantize(%x) {scale = [0.5], zero_point = [3], dtype = u8} : u8[2,3]
  %w = constant [[1, -2], [3, 4], [-5, 6]] : i8[3,2]
  %0 = dot_general(%q, %w) {lhs_contract = [1], rhs_contract = [0]} : i32[2,2]
  %1 = constant [11, -32] : i32[2]
  %2 = broadcast_in_dim(%1) {shape = [2, 2]} : i32[2,2]
  %3 = add(%0, %2) : i32[2,2]
  %z = dequantize(%3) {scale = [0.125, 0.0625], axis = 1} : f32[2,2]
  return %z
}"""


def test_fold_qdq_golden_asymmetric_with_bias():
    out = assert_golden("fold-qdq,dce", FOLD_BEFORE, FOLD_AFTER)
    _, ctx = apply("fold-qdq", FOLD_BEFORE)
    assert ctx.remarks["fold-qdq"] == ["dot_general on u8", "int32 bias"]
    # the float path of values off the grid too (and clamped at 0 and 255)
    x = np.array([[-7.3, 0.2, 1.26], [100.0, -0.74, 3.3]], np.float32)
    before = run_module(parse_module(FOLD_BEFORE), [x])[0]
    np.testing.assert_allclose(run_module(out, [x])[0], before, rtol=1e-6, atol=1e-6)


CONV_BEFORE = """func @main(%x: f32[1,4,4,2]) -> f32[1,4,4,3] {
  %q = quantize(%x) {scale = [0.1]} : i8[1,4,4,2]
  %dx = dequantize(%q) {scale = [0.1]} : f32[1,4,4,2]
  %w = constant [[[[1, 2, 3], [4, 5, 6]]]] : i8[1,1,2,3]
  %dw = dequantize(%w) {scale = [0.5]} : f32[1,1,2,3]
  %y = conv2d(%dx, %dw) {padding = "same"} : f32[1,4,4,3]
  %r = relu(%y) : f32[1,4,4,3]
  return %r
}"""

CONV_AFTER = """func @main(%x: f32[1,4,4,2]) -> f32[1,4,4,3] {
  %q = quantize(%x) {scale = [0.1]} : i8[1,4,4,2]
  %w = constant [[[[1, 2, 3], [4, 5, 6]]]] : i8[1,1,2,3]
  %0 = conv2d(%q, %w) {padding = "same", out_dtype = i32} : i32[1,4,4,3]
  %y = dequantize(%0) {scale = [0.05]} : f32[1,4,4,3]
  %r = relu(%y) : f32[1,4,4,3]
  return %r
}"""


def test_fold_qdq_golden_conv_per_tensor():
    assert_golden("fold-qdq,dce", CONV_BEFORE, CONV_AFTER)


def test_fold_qdq_leaves_what_has_no_integer_form():
    # conv2d has no u8 x i8 form; per-channel activations; weights that are not constants
    u8 = "{scale = [0.1], dtype = u8} : u8[1,4,4,2]"
    assert_unchanged("fold-qdq", CONV_BEFORE.replace("{scale = [0.1]} : i8[1,4,4,2]", u8))
    assert_unchanged(
        "fold-qdq",
        """func @main(%x: i8[2,3], %w: i8[3,2]) -> f32[2,2] {
  %dx = dequantize(%x) {scale = [0.5, 0.25, 1.0], axis = 1} : f32[2,3]
  %dw = dequantize(%w) {scale = [0.25]} : f32[3,2]
  %y = dot_general(%dx, %dw) {lhs_contract = [1], rhs_contract = [0]} : f32[2,2]
  %v = dequantize(%x) {scale = [0.5]} : f32[2,3]
  %u = dot_general(%v, %dw) {lhs_contract = [1], rhs_contract = [0]} : f32[2,2]
  %s = add(%y, %u) : f32[2,2]
  return %s
}""",
    )


CANCEL_BEFORE = """func @main(%q: i8[5]) -> (i8[5], i8[5]) {
  %d = dequantize(%q) {scale = [0.5]} : f32[5]
  %same = quantize(%d) {scale = [0.5]} : i8[5]
  %other = quantize(%d) {scale = [0.25], zero_point = [-3]} : i8[5]
  return %same, %other
}"""

CANCEL_AFTER = """func @main(%q: i8[5]) -> (i8[5], i8[5]) {
  %0 = convert(%q) {dtype = i32} : i32[5]
  %other = requantize(%0) {multiplier = [1073741824], shift = [-2], zero_point = -3} : i8[5]
  return %q, %other
}"""


def test_cancel_qdq_golden_and_exact_on_extremes():
    out = assert_golden("cancel-qdq,dce", CANCEL_BEFORE, CANCEL_AFTER)
    q = np.array([-128, -1, 0, 7, 127], np.int8)  # 2q - 3 saturates at both ends
    before = run_module(parse_module(CANCEL_BEFORE), [q])
    for a, b in zip(before, run_module(out, [q]), strict=True):
        np.testing.assert_array_equal(a, b)
    # an input zero point cannot go into requantize: that pair stays
    assert_unchanged(
        "cancel-qdq",
        CANCEL_BEFORE.replace("{scale = [0.5]} : f32", "{scale = [0.5], zero_point = [1]} : f32"),
    )


IDENTITY_BEFORE = """func @main(%q: i8[4], %acc: i32[4]) -> (i8[4], i8[4], i8[4], i32[4]) {
  %w = convert(%q) {dtype = i32} : i32[4]
  %one = requantize(%w) {multiplier = [1073741824], shift = [-1]} : i8[4]
  %half = requantize(%w) {multiplier = [1073741824], shift = [0]} : i8[4]
  %relu = requantize(%w) {multiplier = [1073741824], shift = [-1], min = 0} : i8[4]
  %wide = requantize(%acc) {multiplier = [1073741824], shift = [-1], dtype = i32} : i32[4]
  return %one, %half, %relu, %wide
}"""

IDENTITY_AFTER = """func @main(%q: i8[4], %acc: i32[4]) -> (i8[4], i8[4], i8[4], i32[4]) {
  %w = convert(%q) {dtype = i32} : i32[4]
  %half = requantize(%w) {multiplier = [1073741824], shift = [0]} : i8[4]
  %relu = requantize(%w) {multiplier = [1073741824], shift = [-1], min = 0} : i8[4]
  %wide = requantize(%acc) {multiplier = [1073741824], shift = [-1], dtype = i32} : i32[4]
  return %q, %half, %relu, %wide
}"""


def test_drop_identity_requantize_golden():
    # only the first is the identity: the others halve, clamp at 0, or saturate int32 first
    assert_golden("drop-requantize,dce", IDENTITY_BEFORE, IDENTITY_AFTER)
    _, ctx = apply("drop-requantize", IDENTITY_BEFORE)
    assert ctx.remarks["drop-requantize"] == ["dropped one"]


def test_quantize_writes_a_qdq_graph_that_the_passes_fold():
    module, calibration, x, _ = digits()
    qdq = quantize(module, calibration, fold=False)
    text = print_module(qdq)
    assert "quantize(" in text
    assert "dequantize(" in text
    assert "requantize" not in text
    contractions = [n for n in qdq.entry_function.body if n.op.value == "dot_general"]
    assert contractions
    assert all(n.dtype.value == "f32" for n in contractions)
    assert all(s.op.value == "dequantize" for n in contractions for s in n.srcs)
    folded, _ = apply("fold-qdq,fold-requantize,cancel-qdq,drop-requantize,dce", qdq)
    assert print_module(folded) == print_module(apply("dce", quantize(module, calibration))[0])
    # the fake-quantized float path and the integer path agree to about one output step
    f = run_module(qdq, [x])[0]
    i = run_module(folded, [x])[0]
    assert np.max(np.abs(f - i)) < 0.05 * np.max(np.abs(f))


def test_the_cnn_sample_folds_to_integer_convolutions():
    module = parse_file(SAMPLES / "cnn.graph")
    fn = module.entry_function
    int8 = quantize(module, [random_inputs(fn, s) for s in range(2)], activations="asymmetric")
    convs = [n for n in int8.entry_function.body if n.op.value == "conv2d"]
    assert convs
    assert all(n.srcs[0].dtype.value == "i8" and n.dtype.value == "i32" for n in convs)
