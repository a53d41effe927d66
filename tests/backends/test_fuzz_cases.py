"""Graphs the fuzzers (compiler/fuzz) found the CPU backend failing on, minimized: each must
now compile and match the interpreter (floats within the differential tests' tolerance)."""

from __future__ import annotations

import pytest
from test_cpu_differential import ACCUMULATING, assert_matches

from codegen.executable import CpuExecutable
from ir.graph import Function
from ir.ops import Op
from ir.parser import parse_module
from runtime.inputs import random_inputs
from runtime.interp import run_module

CASES = {
    # a fusion inside a fusion whose operand is a value of the outer body: KeyError in emit
    "nested-fusion-with-an-inner-operand": """
func @main(%z: f32[2,6,6,3]) -> f32[2,4,4,1] {
  %_t = fusion(%z) {body = func @fusion(%a.b: f32[2,6,6,3]) -> f32[2,4,4,1] {
    %x = constant 0.19508033 : f32[1]
    %_t = fusion(%a.b, %x) {body = func @fusion(%a.b: f32[2,6,6,3], %in_0: f32[1]) -> f32[2,4,4,1] {
      %0 = broadcast_in_dim(%in_0) {shape = [2, 2, 3, 1], dims = [0]} : f32[2,2,3,1]
      %1 = conv2d(%a.b, %0) {dilation = [2, 2]} : f32[2,4,4,1]
      return %1
    }} : f32[2,4,4,1]
    return %_t
  }} : f32[2,4,4,1]
  return %_t
}""",
    # a composite inside a fusion body was not expanded: "cannot lower avg_pool"
    "composite-inside-a-fusion": """
func @main(%y: bool[1,3,1]) -> bf16[2,2,1,2] {
  %x = fusion(%y) {body = func @fusion(%z: bool[1,3,1]) -> bf16[2,2,1,2] {
    %0 = constant -0.256 : bf16[1]
    %y = broadcast_in_dim(%0) {shape = [2, 5, 2, 2], dims = [0]} : bf16[2,5,2,2]
    %x = avg_pool(%y) {window = [2, 2], strides = [2, 1], count_include_pad = true} : bf16[2,2,1,2]
    return %x
  }} : bf16[2,2,1,2]
  return %x
}""",
    # dequantize to f16 read by a fused consumer: the value must be rounded to f16 first
    # (tessel fuzz --kind graphs, seed 21, case 1384: -33708 where f16 holds -33696)
    "dequantize-to-f16-in-a-fusion": """
func @main(%y: i16[1,1,3,2]) -> i64[1,1,3,2] {
  %h = fusion(%y) {body = func @fusion(%y: i16[1,1,3,2]) -> i64[1,1,3,2] {
    %h.1 = dequantize(%y) {scale = [123.93], zero_point = [276], dtype = f16} : f16[1,1,3,2]
    %h = convert(%h.1) {dtype = i64} : i64[1,1,3,2]
    return %h
  }} : i64[1,1,3,2]
  return %h
}""",
    # softmax inside a fusion body: its row kernel is a whole kernel, so it must be expanded
    "softmax-inside-a-fusion": """
func @main(%cut0: f16[5,2,2,2]) -> f32[1] {
  %0 = fusion(%cut0) {body = func @fusion(%in_0: f16[5,2,2,2]) -> f32[1] {
    %_t = constant 0.23152837 : f32[1]
    %h.1 = softmax(%_t) : f32[1]
    return %h.1
  }} : f32[1]
  return %0
}""",
    # a fusion over a complex value inside a loop body was not inlined before expand-complex
    # split the body's complex values in two: "fusion: complex operands are not supported"
    # (tessel fuzz --kind graphs, seed 202, case 1158)
    "complex-fusion-in-a-loop-body": """
func @main(%z: c128[], %y: c128[3]) -> (c128[], c128[3]) {
  %0 = constant 0 : u8[]
  %n = constant 2 : u8[]
  %1 = while(%0, %n, %z, %y) {
    cond = func @cond(%x: u8[], %b: u8[], %z: c128[], %y: c128[3]) -> bool[] {
    %0 = lt(%x, %b) : bool[]
    return %0
  }, body = func @body(%x: u8[], %b: u8[], %z: c128[], %y: c128[3])
      -> (u8[], u8[], c128[], c128[3]) {
    %one = constant 1 : u8[]
    %x2 = add(%x, %one) : u8[]
    %0 = fusion(%z) {body = func @fusion(%q: c128[]) -> c128[] {
      return %q
    }} : c128[]
    %1 = fusion(%y, %z) {body = func @fusion(%p: c128[3], %q: c128[]) -> c128[3] {
      %b = broadcast_in_dim(%q) {shape = [3], dims = []} : c128[3]
      %m = mul(%p, %b) : c128[3]
      return %m
    }} : c128[3]
    return %x2, %b, %0, %1
  }} : (u8[], u8[], c128[], c128[3])
  %r = get(%1) {index = 2} : c128[]
  %s = get(%1) {index = 3} : c128[3]
  return %r, %s
}""",
    # complex values only inside a fusion (neither operand nor result): the fusion was not
    # expanded, and codegen met a complex constant (tessel fuzz --kind graphs, seed 303)
    "complex-values-only-inside-a-fusion": """
func @main(%cut0: bf16[1,2]) -> f64[7,3,1,1] {
  %0 = fusion(%cut0) {body = func @fusion(%a.b: bf16[1,2]) -> f64[7,3,1,1] {
    %0 = constant 1.7976931348623157e+308+4.0j : c128[]
    %x = broadcast_in_dim(%0) {shape = [7, 3, 1, 1]} : c128[7,3,1,1]
    %y.1 = imag(%x) : f64[7,3,1,1]
    return %y.1
  }} : f64[7,3,1,1]
  return %0
}""",
}


def _ops(fn: Function) -> set[Op]:
    return {n.op for n in fn.walk()}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", CASES)
def test_found_case_compiles_and_matches(name: str, threads: int) -> None:
    module = parse_module(CASES[name])
    fn = module.entry_function
    args = random_inputs(fn, seed=0)
    expected = run_module(module, args)
    got = CpuExecutable(module, threads=threads)(*args)
    accumulating = bool(_ops(fn) & ACCUMULATING)
    assert len(got) == len(expected)
    for e, g in zip(expected, got, strict=True):
        assert_matches(e, g, accumulating)
