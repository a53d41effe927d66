"""Kernels whose last axis is split at pad and concatenate boundaries (codegen/index_split.py)
against the reference interpreter.

Inside each piece the emitter drops the clamps and selects of those ops, so every piece must
still read exactly what the whole-range code reads: pads on either side, interior padding
(not split), empty operands, a piece that is all padding, and, for rank-1 outputs, row ranges that
the threaded runtime cuts across the pieces.
"""

from __future__ import annotations

import numpy as np
import pytest

from codegen.executable import CpuExecutable
from codegen.index_split import regions
from ir.parser import parse_module
from runtime.inputs import random_inputs
from runtime.interp import run_module

# (name, graph text): each a fused-looking kernel built from pads, concatenates and selects
CASES = {
    # x[1:-1] = stencil(x), as @jit writes it: a pad of the update, a pad of the mask, select
    "update-slice": """
func @main(%x: f32[37]) -> f32[37] {
  %a = slice(%x) {start = [0], limit = [35]}
  %c = slice(%x) {start = [2], limit = [37]}
  %s = add(%a, %c)
  %p = pad(%s, 0.0) {low = [1], high = [1]}
  %t = constant true : bool[]
  %tt = broadcast_in_dim(%t) {shape = [35]}
  %m = pad(%tt, false) {low = [1], high = [1]}
  %r = select(%m, %p, %x)
  return %r
}""",
    "two-pads": """
func @main(%x: f32[3,20]) -> f32[3,23] {
  %p = pad(%x, 1.5) {low = [0, 0], high = [0, 3]}
  %q = pad(%x, 2.5) {low = [0, 3], high = [0, 0]}
  %r = add(%p, %q)
  return %r
}""",
    "all-padding-piece": """
func @main(%x: i32[2,4]) -> i32[2,40] {
  %p = pad(%x, 7) {low = [0, 30], high = [0, 6]}
  %n = neg(%p)
  return %n
}""",
    "concatenate": """
func @main(%a: f64[4,5], %b: f64[4,0], %c: f64[4,9], %d: f64[4,1]) -> f64[4,15] {
  %k = concatenate(%a, %b, %c, %d) {axis = 1}
  %e = exp(%k)
  return %e
}""",
    "interior-and-rank-1": """
func @main(%x: f32[9], %y: f32[25]) -> f32[25] {
  %p = pad(%x, 0.0) {low = [2], high = [6], interior = [1]}
  %q = pad(%x, 1.0) {low = [0], high = [16]}
  %s = add(%p, %q)
  %r = mul(%s, %y)
  return %r
}""",
    "long-rank-1": """
func @main(%x: f32[70000]) -> f32[70002] {
  %p = pad(%x, 0.5) {low = [1], high = [1]}
  %q = pad(%x, 0.0) {low = [2], high = [0]}
  %r = sub(%p, %q)
  return %r
}""",
}


def test_the_pieces_follow_the_pads_and_concatenates() -> None:
    module = parse_module(CASES["update-slice"])
    root = module.entry_function.results[0]
    assert regions(root) == [(0, 1), (1, 36), (36, 37)]
    concat = parse_module(CASES["concatenate"]).entry_function.results[0]
    assert regions(concat) == [(0, 5), (5, 14), (14, 15)]


@pytest.mark.parametrize("name", sorted(CASES))
def test_split_kernels_match_the_interpreter(name: str) -> None:
    module = parse_module(CASES[name])
    args = random_inputs(module.entry_function, seed=11)
    want = run_module(module, args)
    for threads in (1, 2):  # this process's CPU level: CI runs the suite under each lower one
        got = CpuExecutable(module, threads=threads)(*args)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-6, err_msg=f"{threads} threads")


def test_threads_cut_rank_1_rows_across_pieces() -> None:
    """The threaded runtime hands a kernel row ranges that start and stop inside pieces."""
    module = parse_module(CASES["long-rank-1"])
    ex = CpuExecutable(module, threads=2)
    assert ex.mode == "threaded"
    (x,) = random_inputs(module.entry_function, seed=5)
    np.testing.assert_array_equal(ex(x)[0], run_module(module, [x])[0])
