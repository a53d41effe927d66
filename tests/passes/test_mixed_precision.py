"""bf16-mixed: f32 contractions read bf16 operands and sum in f32; nothing else changes."""

# ruff: noqa: E501  (golden IR is compared verbatim, and printed contractions are long)

from __future__ import annotations

import numpy as np
import pytest
from passcheck import apply, assert_unchanged, canonical

from codegen.executable import CpuExecutable
from compiler.driver import PipelineOptions, optimize
from ir.graph import Module
from ir.parser import parse_module
from ir.printer import print_module
from passes.mixed_precision import Bf16Mixed, Bf16MixedOptions
from runtime.inputs import random_inputs
from runtime.interp import run_module

# Each bf16 operand is off by at most 2^-8 relative (8 significant bits), so each product by at
# most 2^-7 (plus 2^-16); the f32 sum adds rounding of its own, far below that.
PRODUCT_ERROR = 2.0**-7 * 1.01


def assert_golden_mixed(pipeline: str, before: str, after: str) -> Module:
    """Like passcheck.assert_golden, with the error bound of bf16 operands instead of f32's.

    Every result of `before` must be a contraction of parameters: then running `before` on the
    operands' absolute values gives sum(|a| |b|), which bounds the error term by term.
    """
    module = parse_module(before)
    out, _ = apply(pipeline, module)
    assert print_module(out) == canonical(after)
    for seed in range(3):
        args = random_inputs(module.entry_function, seed)
        magnitude = run_module(module, [np.abs(a) for a in args])
        for x, y, m in zip(run_module(module, args), run_module(out, args), magnitude, strict=True):
            assert x.dtype == y.dtype
            assert x.shape == y.shape
            np.testing.assert_array_less(np.abs(x - y), PRODUCT_ERROR * m + 1e-6)
    return out


def test_dot_general_reads_bf16_and_sums_in_f32():
    assert_golden_mixed(
        "bf16-mixed",
        """func @main(%x: f32[4,32], %w: f32[32,8]) -> f32[4,8] {
          %y = matmul(%x, %w) : f32[4,8]
          return %y
        }""",
        """func @main(%x: f32[4,32], %w: f32[32,8]) -> f32[4,8] {
          %0 = convert(%x) {dtype = bf16} : bf16[4,32]
          %1 = convert(%w) {dtype = bf16} : bf16[32,8]
          %y = dot_general(%0, %1) {lhs_contract = [1], rhs_contract = [0], out_dtype = f32} : f32[4,8]
          return %y
        }""",
    )


def test_conv2d_keeps_its_attributes():
    assert_golden_mixed(
        "bf16-mixed",
        """func @main(%x: f32[2,6,6,4], %k: f32[3,3,2,6]) -> f32[2,3,3,6] {
          %y = conv2d(%x, %k) {strides = [2, 2], padding = same, groups = 2} : f32[2,3,3,6]
          return %y
        }""",
        """func @main(%x: f32[2,6,6,4], %k: f32[3,3,2,6]) -> f32[2,3,3,6] {
          %0 = convert(%x) {dtype = bf16} : bf16[2,6,6,4]
          %1 = convert(%k) {dtype = bf16} : bf16[3,3,2,6]
          %y = conv2d(%0, %1) {strides = [2, 2], padding = [[0, 1], [0, 1]], groups = 2, out_dtype = f32} : f32[2,3,3,6]
          return %y
        }""",
    )


def test_batched_dot_and_a_shared_operand_converted_once():
    assert_golden_mixed(
        "bf16-mixed",
        """func @main(%q: f32[2,8,16], %k: f32[2,8,16]) -> (f32[2,8,8], f32[2,8,8]) {
          %s = dot_general(%q, %k) {lhs_batch = [0], rhs_batch = [0], lhs_contract = [2], rhs_contract = [2]} : f32[2,8,8]
          %t = dot_general(%q, %q) {lhs_batch = [0], rhs_batch = [0], lhs_contract = [2], rhs_contract = [2]} : f32[2,8,8]
          return %s, %t
        }""",
        """func @main(%q: f32[2,8,16], %k: f32[2,8,16]) -> (f32[2,8,8], f32[2,8,8]) {
          %0 = convert(%q) {dtype = bf16} : bf16[2,8,16]
          %1 = convert(%k) {dtype = bf16} : bf16[2,8,16]
          %s = dot_general(%0, %1) {lhs_batch = [0], rhs_batch = [0], lhs_contract = [2], rhs_contract = [2], out_dtype = f32} : f32[2,8,8]
          %t = dot_general(%0, %0) {lhs_batch = [0], rhs_batch = [0], lhs_contract = [2], rhs_contract = [2], out_dtype = f32} : f32[2,8,8]
          return %s, %t
        }""",
    )


def test_a_widened_bf16_operand_is_used_directly():
    # narrowing a widened bf16 value gives it back exactly, so no convert pair is needed
    out, _ = apply(
        "bf16-mixed,dce",
        """func @main(%a: bf16[4,8], %w: f32[8,2]) -> f32[4,2] {
          %x = convert(%a) {dtype = f32} : f32[4,8]
          %y = matmul(%x, %w) : f32[4,2]
          return %y
        }""",
    )
    assert print_module(out) == canonical(
        """func @main(%a: bf16[4,8], %w: f32[8,2]) -> f32[4,2] {
          %0 = convert(%w) {dtype = bf16} : bf16[8,2]
          %y = dot_general(%a, %0) {lhs_contract = [1], rhs_contract = [0], out_dtype = f32} : f32[4,2]
          return %y
        }"""
    )


def test_sensitive_ops_around_a_dot_stay_f32():
    before = """func @main(%x: f32[4,16], %w: f32[16,10], %b: f32[10]) -> (f32[4,10], f32[4], f32[10]) {
      %z = matmul(%x, %w) : f32[4,10]
      %l = add(%z, %b) : f32[4,10]
      %p = softmax(%l) : f32[4,10]
      %s = reduce(%l) {kind = sum, axes = [1]} : f32[4]
      %m = mean(%l) {axes = [0]} : f32[10]
      return %p, %s, %m
    }"""
    module = parse_module(before)
    out, ctx = apply("bf16-mixed", module)
    typed = [(n.op.value, str(n.type)) for n in out.entry_function.body]
    assert typed[:2] == [("convert", "bf16[4,16]"), ("convert", "bf16[16,10]")]
    # past the two converts, every op and type is the one it was, the dot included
    assert typed[2:] == [(n.op.value, str(n.type)) for n in module.entry_function.body]
    assert ctx.remarks["bf16-mixed"] == ["dot_general f32[4,10]: bf16 operands, f32 accumulation"]


@pytest.mark.parametrize(
    "graph",
    [
        # already narrow, or wide, or integer: not f32 arithmetic to narrow
        "func @main(%a: bf16[4,8], %b: bf16[8,2]) -> f32[4,2] {\n"
        "  %y = matmul(%a, %b) {out_dtype = f32}\n  return %y\n}",
        "func @main(%a: f64[4,8], %b: f64[8,2]) -> f64[4,2] {\n"
        "  %y = matmul(%a, %b)\n  return %y\n}",
        "func @main(%a: i8[4,8], %b: i8[8,2]) -> i32[4,2] {\n"
        "  %y = matmul(%a, %b) {out_dtype = i32}\n  return %y\n}",
        # an f32 dot that widens to f64 asked for more precision, not less
        "func @main(%a: f32[4,8], %b: f32[8,2]) -> f64[4,2] {\n"
        "  %y = matmul(%a, %b) {out_dtype = f64}\n  return %y\n}",
        # no contraction at all
        "func @main(%a: f32[4,8]) -> f32[4] {\n"
        "  %s = reduce(%a) {kind = sum, axes = [1]}\n  return %s\n}",
    ],
)
def test_other_graphs_are_unchanged(graph):
    assert_unchanged("bf16-mixed", graph)


def test_min_size_keeps_small_contractions_f32():
    text = """func @main(%x: f32[4,8], %w: f32[8,2], %v: f32[8,64]) -> (f32[4,2], f32[4,64]) {
      %small = matmul(%x, %w) : f32[4,2]
      %big = matmul(%x, %v) : f32[4,64]
      return %small, %big
    }"""
    # 4*2*8 = 64 multiply-adds against 4*64*8 = 2048
    out, _ = apply("bf16-mixed{min-size=1000}", text)
    dots = [n for n in out.entry_function.body if n.op.value == "dot_general"]
    assert [d.srcs[0].dtype.value for d in dots] == ["f32", "bf16"]
    assert Bf16Mixed(Bf16MixedOptions(min_size=1000)).spec() == "bf16-mixed{min-size=1000}"


def test_running_it_twice_changes_nothing_more():
    text = "func @main(%x: f32[4,8], %w: f32[8,2]) -> f32[4,2] {\n  %y = matmul(%x, %w)\n  return %y\n}"
    once, _ = apply("bf16-mixed", text)
    twice, _ = apply("bf16-mixed", once)
    assert twice == once


CPU_GRAPH = """func @main(%x: f32[16,48], %w: f32[48,24], %im: f32[2,8,8,3], %k: f32[3,3,3,8]) -> (f32[16,24], f32[2,8,8,8]) {
  %h = matmul(%x, %w) : f32[16,24]
  %r = relu(%h) : f32[16,24]
  %p = softmax(%r) : f32[16,24]
  %c = conv2d(%im, %k) {padding = same} : f32[2,8,8,8]
  return %p, %c
}"""


def test_the_cpu_backend_runs_the_rewritten_graph_like_the_interpreter():
    mixed, _ = apply("bf16-mixed", CPU_GRAPH)
    optimized, _ = optimize(mixed, PipelineOptions(target="cpu"))
    exe = CpuExecutable(optimized, threads=1)
    for seed in range(2):
        args = random_inputs(mixed.entry_function, seed)
        # the same bf16 operands summed in f32 on both sides: only the summation order differs
        for want, got in zip(run_module(mixed, args), exe(*args), strict=True):
            assert got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
