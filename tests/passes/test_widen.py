"""widen-products: narrow-float products with f32 results computed on f32 operands."""

from __future__ import annotations

import numpy as np
import pytest
from passcheck import apply, assert_golden, assert_unchanged

from codegen import gemm_bf16
from codegen.cpu_caps import host_caps
from codegen.executable import CpuExecutable
from compiler.targets import TargetOptions, default_pipeline
from passes import PassManager, parse_pipeline
from runtime.inputs import random_inputs
from runtime.interp import run_module


def test_dot_golden() -> None:
    assert_golden(
        "widen-products",
        """func @main(%x: f16[4,8], %w: f16[8,3]) -> f32[4,3] {
  %y = dot_general(%x, %w) {lhs_contract = [1], rhs_contract = [0], out_dtype = f32} : f32[4,3]
  return %y
}""",
        """func @main(%x: f16[4,8], %w: f16[8,3]) -> f32[4,3] {
          %0 = convert(%x) {dtype = f32} : f32[4,8]
          %1 = convert(%w) {dtype = f32} : f32[8,3]
          %y = dot_general(%0, %1) {lhs_contract = [1], rhs_contract = [0]} : f32[4,3]
          return %y
        }""",
    )


@pytest.mark.parametrize(
    "text",
    [
        # a bf16 result rounds the sum: not the same op on f32 operands
        "func @main(%x: bf16[2,3], %w: bf16[3,2]) -> bf16[2,2] {\n"
        "  %y = dot_general(%x, %w) {lhs_contract = [1], rhs_contract = [0]} : bf16[2,2]\n"
        "  return %y\n}",
        "func @main(%x: f32[2,3], %w: f32[3,2]) -> f32[2,2] {\n"
        "  %y = dot_general(%x, %w) {lhs_contract = [1], rhs_contract = [0]} : f32[2,2]\n"
        "  return %y\n}",
    ],
)
def test_other_products_stay(text: str) -> None:
    assert_unchanged("widen-products", text)


def test_bf16_mixed_graph_runs_on_the_cpu_like_the_interpreter() -> None:
    source = """func @main(%x: f32[64,96], %w: f32[96,40]) -> f32[64,40] {
      %y = dot_general(%x, %w) {lhs_contract = [1], rhs_contract = [0]} : f32[64,40]
      return %y
    }"""
    mixed, _ = apply("bf16-mixed", source)
    cpu = CpuExecutable(PassManager(parse_pipeline(default_pipeline("cpu"))).run(mixed))
    # on the bf16 GEMM where the host has the units, else widened onto the f32 GEMM
    caps = host_caps()
    if gemm_bf16.supported(caps):
        assert any(s.node is not None and gemm_bf16.applicable(s.node, caps) for s in cpu.steps)
    else:
        assert any((s.node is not None and s.node.op.value == "fusion") or "gemm" in str(s.info)
                   for s in cpu.steps)  # fmt: skip
    args = random_inputs(mixed.entry_function, 3)
    want = run_module(mixed, args)[0]
    got = cpu(*args)[0]
    # same products, f32 sums in another order: within f32 rounding of the sum of |terms|
    bound = 96 * 2**-23 * (np.abs(args[0]) @ np.abs(args[1]))
    assert np.all(np.abs(got - want) <= bound + 1e-30)


def test_bf16_dots_false_keeps_bf16_dots_only() -> None:
    """For a native bf16 GEMM: bf16 dot_generals stay, f16 ones and bf16 conv2ds widen."""
    assert_golden(
        "widen-products{bf16-dots=false}",
        """func @main(%x: bf16[4,8], %w: bf16[8,3], %h: f16[4,8], %v: f16[8,3],
                      %i: bf16[1,5,5,2], %k: bf16[3,3,2,4]) -> (f32[4,3], f32[4,3], f32[1,3,3,4]) {
          %y = dot_general(%x, %w) {lhs_contract = [1], rhs_contract = [0], out_dtype = f32}
          %z = dot_general(%h, %v) {lhs_contract = [1], rhs_contract = [0], out_dtype = f32}
          %c = conv2d(%i, %k) {out_dtype = f32}
          return %y, %z, %c
        }""",
        """func @main(%x: bf16[4,8], %w: bf16[8,3], %h: f16[4,8], %v: f16[8,3], %i: bf16[1,5,5,2], %k: bf16[3,3,2,4]) -> (f32[4,3], f32[4,3], f32[1,3,3,4]) {
          %y = dot_general(%x, %w) {lhs_contract = [1], rhs_contract = [0], out_dtype = f32} : f32[4,3]
          %0 = convert(%h) {dtype = f32} : f32[4,8]
          %1 = convert(%v) {dtype = f32} : f32[8,3]
          %z = dot_general(%0, %1) {lhs_contract = [1], rhs_contract = [0]} : f32[4,3]
          %2 = convert(%i) {dtype = f32} : f32[1,5,5,2]
          %3 = convert(%k) {dtype = f32} : f32[3,3,2,4]
          %c = conv2d(%2, %3) : f32[1,3,3,4]
          return %y, %z, %c
        }""",  # noqa: E501
    )


def test_cpu_pipeline_keeps_bf16_dots_where_the_host_has_the_kernel() -> None:
    expected = "widen-products{bf16-dots=false}" if gemm_bf16.supported(host_caps()) else None
    steps = default_pipeline("cpu").split(",")
    assert (expected in steps) if expected else ("widen-products" in steps)


@pytest.mark.parametrize("cpu", ["generic", "x86-64-v3", "x86-64-v4"])
def test_cpu_pipeline_widens_bf16_dots_for_cpus_without_avx512_bf16(cpu: str) -> None:
    """The pipeline follows the target's caps, not the host's: no level has AVX-512 BF16."""
    steps = default_pipeline("cpu", TargetOptions(cpu=cpu)).split(",")
    assert "widen-products" in steps
