"""tpu-place: contraction regions the chip can run become `fusion {device = tpu}`."""

from __future__ import annotations

from passcheck import apply, assert_golden, assert_unchanged

QUANTIZED_LAYER = """func @main(%x: i8[4,3]) -> i8[4,2] {
  %w = constant [[1, -2], [3, 4], [-5, 6]] : i8[3,2]
  %d = dot_general(%x, %w) {lhs_contract = [1], rhs_contract = [0], out_dtype = i32} : i32[4,2]
  %b = constant [100, -7] : i32[2]
  %bb = broadcast_in_dim(%b) {shape = [4, 2]} : i32[4,2]
  %a = add(%d, %bb) : i32[4,2]
  %r = relu(%a) : i32[4,2]
  %q = requantize(%r) {multiplier = [1073741824, 1500000000], shift = [1, 2], axis = 1} : i8[4,2]
  %y = neg(%q) : i8[4,2]
  return %y
}"""


def test_layer_with_bias_relu_requantize_golden():
    assert_golden(
        "tpu-place",
        QUANTIZED_LAYER,
        """func @main(%x: i8[4,3]) -> i8[4,2] {
  %q = fusion(%x) {body = func @fusion(%x: i8[4,3]) -> i8[4,2] {
    %w = constant [[1, -2], [3, 4], [-5, 6]] : i8[3,2]
    %d = dot_general(%x, %w) {lhs_contract = [1], rhs_contract = [0], out_dtype = i32} : i32[4,2]
    %b = constant [100, -7] : i32[2]
    %bb = broadcast_in_dim(%b) {shape = [4, 2]} : i32[4,2]
    %a = add(%d, %bb) : i32[4,2]
    %r = relu(%a) : i32[4,2]
    %q = requantize(%r) {multiplier = [1073741824, 1500000000], shift = [1, 2], axis = 1} : i8[4,2]
    return %q
  }, device = tpu} : i8[4,2]
  %y = neg(%q) : i8[4,2]
  return %y
}""",
    )


def test_what_the_chip_cannot_run_stays_with_a_reason():
    text = """func @main(%x: f32[4,3], %w: i8[3,2], %z: i8[4,3]) -> (f32[4,2], i32[4,2]) {
  %c = constant [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]] : f32[3,2]
  %f = dot_general(%x, %c) {lhs_contract = [1], rhs_contract = [0]} : f32[4,2]
  %v = dot_general(%z, %w) {lhs_contract = [1], rhs_contract = [0], out_dtype = i32} : i32[4,2]
  return %f, %v
}"""
    assert_unchanged("tpu-place", text)
    _, ctx = apply("tpu-place", text)
    remarks = "\n".join(ctx.remarks["tpu-place"])
    assert "%f stays on the host: operands are f32, f32; the int8 chip multiplies i8" in remarks
    assert "%v stays on the host: the weights are not a constant" in remarks


def test_bf16_chip_takes_bias_activation_and_rounding():
    out, _ = apply(
        "tpu-place{multiplier=bf16}",
        """func @main(%x: bf16[5,4]) -> bf16[5,3] {
  %w = constant [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [1.0, 0.5, 0.25]] : bf16[4,3]
  %d = dot_general(%x, %w) {lhs_contract = [1], rhs_contract = [0], out_dtype = f32} : f32[5,3]
  %b = constant [0.5, -1.0, 2.0] : f32[3]
  %bb = broadcast_in_dim(%b) {shape = [5, 3]} : f32[5,3]
  %a = add(%d, %bb) : f32[5,3]
  %t = tanh(%a) : f32[5,3]
  %y = convert(%t) {dtype = bf16} : bf16[5,3]
  return %y
}""",
    )
    body = out.entry_function.body
    assert [n.op.value for n in body] == ["fusion"]
    assert body[0].attrs["device"] == "tpu"
    inner = [n.op.value for n in body[0].attrs["body"].body]
    assert inner == [
        "constant",
        "dot_general",
        "constant",
        "broadcast_in_dim",
        "add",
        "tanh",
        "convert",
    ]
