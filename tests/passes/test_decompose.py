"""decompose: composites become primitives that compute the composite's reference values."""

from __future__ import annotations

import numpy as np
import pytest
from passcheck import apply, assert_golden, assert_same_numbers

from ir.ops import COMPOSITE, Op
from ir.parser import parse_module
from passes.decompose import window_counts


def test_softmax_golden():
    assert_golden(
        "decompose",
        "func @main(%x: f32[2,5]) -> f32[2,5] {\n  %s = softmax(%x)\n  return %s\n}\n",
        """func @main(%x: f32[2,5]) -> f32[2,5] {
          %0 = reduce(%x) {kind = max, axes = [1]} : f32[2]
          %1 = broadcast_in_dim(%0) {shape = [2, 5], dims = [0]} : f32[2,5]
          %2 = sub(%x, %1) : f32[2,5]
          %3 = exp(%2) : f32[2,5]
          %4 = reduce(%3) {kind = sum, axes = [1]} : f32[2]
          %5 = broadcast_in_dim(%4) {shape = [2, 5], dims = [0]} : f32[2,5]
          %s = div(%3, %5) : f32[2,5]
          return %s
        }""",
    )


def test_mean_golden():
    assert_golden(
        "decompose",
        "func @main(%x: f32[2,3,4]) -> f32[3] {\n  %m = mean(%x) {axes = [0, 2]}\n  return %m\n}\n",
        """func @main(%x: f32[2,3,4]) -> f32[3] {
          %0 = reduce(%x) {kind = sum, axes = [0, 2]} : f32[3]
          %1 = constant 8.0 : f32[]
          %2 = broadcast_in_dim(%1) {shape = [3]} : f32[3]
          %m = div(%0, %2) : f32[3]
          return %m
        }""",
    )


CASES = [
    ("f32[3,7]", "softmax(%x) {axis = 0}"),
    ("f16[4,9]", "softmax(%x)"),
    ("bf16[2,3,5]", "softmax(%x) {axis = 1}"),
    ("f64[1,1]", "softmax(%x)"),
    ("f32[0,4]", "softmax(%x)"),
    ("f32[5,6]", "mean(%x) {axes = [0, 1]}"),
    ("f16[5,6]", "mean(%x) {axes = [1]}"),
    ("f32[0,6]", "mean(%x) {axes = [0]}"),
    ("f32[2,7,9,3]", "avg_pool(%x) {window = [3, 3], strides = [2, 2], padding = same}"),
    (
        "f32[1,5,5,2]",
        "avg_pool(%x) {window = [2, 2], padding = [[1, 1], [1, 1]], count_include_pad = true}",
    ),
    ("f32[1,6,4,3]", "avg_pool(%x) {window = [2, 3], strides = [1, 1]}"),
    ("bf16[2,4,4,1]", "avg_pool(%x) {window = [2, 2], padding = same}"),
    # windows wholly in the padding average nothing: nan, as in the reference
    ("f32[1,1,1,1]", "avg_pool(%x) {window = [1, 1], padding = [[0, 0], [1, 2]]}"),
    (
        "f32[1,3,2,2]",
        "avg_pool(%x) {window = [2, 1], strides = [3, 1], padding = [[4, 3], [0, 2]]}",
    ),
]


@pytest.mark.parametrize(("ty", "expr"), CASES)
def test_decomposition_matches_composite(ty, expr):
    text = f"func @main(%x: {ty}) {{\n  %y = {expr}\n  return %y\n}}\n"
    module = parse_module(text)
    out, _ = apply("decompose", module)
    ops = {n.op for n in out.entry_function.body}
    assert not ops & (COMPOSITE | {Op.AVG_POOL})
    tol = 1e-2 if ty.startswith(("f16", "bf16")) else 1e-5
    assert_same_numbers(module, out, rtol=tol)


def test_window_counts_by_hand():
    # size 5, window 3, stride 2, one row of padding on each side: windows cover
    # [-1,2) -> 2 valid, [1,4) -> 3, [3,6) -> 2
    np.testing.assert_array_equal(window_counts(5, 3, 2, 1, 3), [2, 3, 2])
    # size 1, window 1, high padding 2: the windows at 1 and 2 cover nothing
    np.testing.assert_array_equal(window_counts(1, 1, 1, 0, 3), [1, 0, 0])
    np.testing.assert_array_equal(window_counts(2, 2, 3, 4, 3), [0, 1, 0])
