"""recompose: softmax spelled in primitives becomes the softmax op, and nothing else does."""

from __future__ import annotations

import numpy as np
import pytest
from passcheck import apply, assert_golden, assert_unchanged

from ir.printer import print_module
from runtime.inputs import random_inputs
from runtime.interp import run_module

SPELLED = """func @main(%x: {t}[4,10]) -> {t}[4,10] {{
  %m = reduce(%x) {{kind = max, axes = [{a}]}} : {t}[{r}]
  %mb = broadcast_in_dim(%m) {{shape = [4, 10], dims = [{k}]}} : {t}[4,10]
  %d = sub(%x, %mb) : {t}[4,10]
  %e = exp(%d) : {t}[4,10]
  %s = reduce(%e) {{kind = sum, axes = [{a}]}} : {t}[{r}]
  %sb = broadcast_in_dim(%s) {{shape = [4, 10], dims = [{k}]}} : {t}[4,10]
  %y = div(%e, %sb) : {t}[4,10]
  return %y
}}
"""


def spelled(dtype: str = "f32", axis: int = 1) -> str:
    reduced, kept = ("4", "0") if axis == 1 else ("10", "1")
    return SPELLED.format(t=dtype, a=axis, r=reduced, k=kept)


@pytest.mark.parametrize("axis", [0, 1])
def test_softmax_spelled_out_becomes_the_op(axis):
    assert_golden(
        "recompose,dce",
        spelled(axis=axis),
        f"""func @main(%x: f32[4,10]) -> f32[4,10] {{
          %y = softmax(%x) {{axis = {axis}}} : f32[4,10]
          return %y
        }}""",
    )


def test_the_decomposed_softmax_comes_back_exactly():
    source = "func @main(%x: f64[3,7]) -> f64[3,7] {\n  %y = softmax(%x)\n  return %y\n}\n"
    original, _ = apply("", source)
    round_trip, _ = apply("decompose,recompose,dce", source)
    assert print_module(round_trip) == print_module(original)
    args = random_inputs(original.entry_function, 0)
    np.testing.assert_array_equal(run_module(original, args)[0], run_module(round_trip, args)[0])


@pytest.mark.parametrize(
    "change",
    [
        ("f32", "f16"),  # narrow floats round after every op: not the op's numbers
        ("%d = sub(%x, %mb)", "%d = sub(%mb, %x)"),  # max(x) - x is not softmax
        ("kind = sum", "kind = max"),  # divided by the max, not the sum
        ("%y = div(%e, %sb)", "%y = div(%d, %sb)"),  # dividend is not the exp
    ],
)
def test_near_misses_stay(change):
    old, new = change
    assert_unchanged("recompose", spelled().replace(old, new))


def test_broadcast_along_the_wrong_axis_stays():
    square = spelled().replace("[4,10]", "[4,4]").replace("[4, 10]", "[4, 4]")
    assert_unchanged("recompose", square.replace("dims = [0]", "dims = [1]", 1))


def test_an_exp_used_elsewhere_is_kept():
    text = (
        spelled()
        .replace("return %y", "return %y, %e")
        .replace("-> f32[4,10] {", "-> (f32[4,10], f32[4,10]) {")
    )
    out, ctx = apply("recompose,dce", text)
    ops = [n.op.value for n in out.entry_function.body]
    assert "softmax" in ops
    assert "exp" in ops
    assert ctx.remarks["recompose"] == ["softmax along axis 1"]
