"""`cond` on the CPU backend against the reference interpreter, with each predicate value.

A branch runs as one kernel that calls the kernels of the side its predicate picks, writing
what that side computes straight into the branch's result; the awkward cases are the results
it must copy instead (a parameter, a constant, one value returned twice, empty and one-element
values), branches inside loops and loops inside branches, index checks inside a side, and
`tessel compile`'s library.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import runtime
from codegen.executable import CpuExecutable
from ir.diagnostics import IndexOutOfRange
from ir.graph import Module
from ir.parser import parse_module
from runtime.inputs import random_inputs
from runtime.interp import run_module
from tests.backends.test_loops import assert_same, optimized
from tests.conftest import run_tessel
from tests.unit.test_cond import BRANCH, NESTED

# results a side does not compute: a parameter, a constant, the same value twice; a bool
COPIES = """\
func @main(%p: bool[], %x: i32[5], %y: i32[5]) -> (i32[5], i32[5], i32[5], bool[5]) {
  %c = cond(%p, %x, %y) {
    true_branch = func @t(%a: i32[5], %b: i32[5]) -> (i32[5], i32[5], i32[5], bool[5]) {
      %k = constant 7 : i32[5]
      %l = lt(%a, %b) : bool[5]
      return %b, %k, %a, %l
    },
    false_branch = func @f(%a: i32[5], %b: i32[5]) -> (i32[5], i32[5], i32[5], bool[5]) {
      %s = sub(%a, %b) : i32[5]
      %l = ge(%s, 0) : bool[5]
      return %s, %s, %s, %l
    }
  } : (i32[5], i32[5], i32[5], bool[5])
  %r0 = get(%c) {index = 0} : i32[5]
  %r1 = get(%c) {index = 1} : i32[5]
  %r2 = get(%c) {index = 2} : i32[5]
  %r3 = get(%c) {index = 3} : bool[5]
  return %r0, %r1, %r2, %r3
}
"""

# an empty and a one-element result, and an f64 of an odd length
SIZES = """\
func @main(%p: bool[], %e: f32[0, 3], %one: f16[1], %x: f64[37]) -> (f32[0, 3], f16[1], f64[37]) {
  %c = cond(%p, %e, %one, %x) {
    true_branch = func @t(%a: f32[0, 3], %b: f16[1], %v: f64[37]) -> (f32[0, 3], f16[1], f64[37]) {
      %a2 = neg(%a) : f32[0, 3]
      %b2 = mul(%b, %b) : f16[1]
      %v2 = tanh(%v) : f64[37]
      return %a2, %b2, %v2
    },
    false_branch = func @f(%a: f32[0, 3], %b: f16[1], %v: f64[37]) -> (f32[0, 3], f16[1], f64[37]) {
      %v2 = exp(%v) : f64[37]
      return %a, %b, %v2
    }
  } : (f32[0, 3], f16[1], f64[37])
  %r0 = get(%c) {index = 0} : f32[0, 3]
  %r1 = get(%c) {index = 1} : f16[1]
  %r2 = get(%c) {index = 2} : f64[37]
  return %r0, %r1, %r2
}
"""

# a branch on a bit inside a loop, as a CRC computes: 8 rounds of
# v = (v >> 1) ^ poly if v & 1 else v >> 1
BIT_LOOP = """\
func @main(%x: u32[]) -> u32[] {
  %zero = constant 0 : i32[]
  %w = while(%zero, %x) {
    cond = func @more(%i: i32[], %v: u32[]) -> bool[] {
      %c = lt(%i, 8) : bool[]
      return %c
    },
    body = func @round(%i: i32[], %v: u32[]) -> (i32[], u32[]) {
      %j = add(%i, 1) : i32[]
      %bit = and(%v, 1) : u32[]
      %odd = ne(%bit, 0) : bool[]
      %half = shift_right(%v, 1) : u32[]
      %c = cond(%odd, %half) {
        true_branch = func @t(%h: u32[]) -> (u32[]) {
          %m = xor(%h, 3988292384) : u32[]
          return %m
        },
        false_branch = func @f(%h: u32[]) -> (u32[]) {
          return %h
        }
      } : (u32[])
      %u = get(%c) {index = 0} : u32[]
      return %j, %u
    }
  } : (i32[], u32[])
  %r = get(%w) {index = 1} : u32[]
  return %r
}
"""

# a gather inside the true side: an index out of range is reported at its line
CHECKED = """\
func @main(%p: bool[], %x: f32[5, 3], %idx: i32[2, 1]) -> f32[2, 3] {
  %c = cond(%p, %x, %idx) {
    true_branch = func @t(%v: f32[5, 3], %ix: i32[2, 1]) -> (f32[2, 3]) {
      %g = gather(%v, %ix) : f32[2, 3]
      return %g
    },
    false_branch = func @f(%v: f32[5, 3], %ix: i32[2, 1]) -> (f32[2, 3]) {
      %s = slice(%v) {start = [0, 0], limit = [2, 3]} : f32[2, 3]
      return %s
    }
  } : (f32[2, 3])
  %r = get(%c) {index = 0} : f32[2, 3]
  return %r
}
"""
GATHER_LINE = 4

CASES = {
    "branch": BRANCH,
    "copies": COPIES,
    "sizes": SIZES,
    "nested": NESTED,
    "bit-loop": BIT_LOOP,
    "checked": CHECKED,
}


def module_of(name: str) -> Module:
    return parse_module(CASES[name], f"{name}.graph")


def inputs(module: Module, pred: bool, seed: int = 0) -> list[np.ndarray]:
    """Random inputs with the predicate (a first bool[] parameter) set; in range indices."""
    args = random_inputs(module.entry_function, seed)
    fn = module.entry_function
    for i, p in enumerate(fn.params):
        if p.name == "p":
            args[i] = np.array(pred)
        if p.name == "idx":
            args[i] = np.array([[4], [0]], np.int32)
        if p.name == "n":
            args[i] = np.array(1 if pred else 0, np.int32)
        if p.name == "x" and p.type.shape == ():
            args[i] = np.asarray(
                np.uint32(0xDEADBEEF) if p.dtype.np == np.uint32 else 300.0, p.dtype.np
            )
    return args


@pytest.mark.parametrize("pred", [True, False])
@pytest.mark.parametrize("name", sorted(CASES))
def test_branch_matches_the_interpreter(name: str, pred: bool) -> None:
    """As written, after the CPU pipeline, in the runtime's threaded mode, and called again."""
    module = module_of(name)
    args = inputs(module, pred)
    want = run_module(module, args)
    assert_same(want, CpuExecutable(module, threads=1)(*args), f"{name} as written")
    ex = CpuExecutable(optimized(module), threads=1)
    assert_same(want, ex(*args), f"{name} after the pipeline")
    again = CpuExecutable.from_payload(*ex.payload(), threads=2)
    assert_same(want, again(*args), f"{name} with 2 threads")
    other = inputs(module, not pred, seed=1)
    assert_same(run_module(module, other), ex(*other), f"{name} the other way")


def crc_rounds(x: int) -> int:
    for _ in range(8):
        x = (x >> 1) ^ 0xEDB88320 if x & 1 else x >> 1
    return x


def test_the_bit_loop_is_a_crc_step() -> None:
    """Not only equal to the interpreter: the compiled loop against Python."""
    ex = CpuExecutable(optimized(module_of("bit-loop")), threads=1)
    for x in (0, 1, 0xDEADBEEF, 0xFFFFFFFF, 12345):
        assert int(ex(np.uint32(x))[0]) == crc_rounds(x)


def _located(err: IndexOutOfRange, file: str) -> None:
    assert err.loc is not None
    assert (Path(err.loc.file).name, err.loc.line) == (file, GATHER_LINE)
    assert "out of bounds" in err.message
    assert "gather" in err.message


def test_an_index_error_in_the_taken_side_is_located_and_the_other_side_never_checks() -> None:
    module = module_of("checked")
    ex = CpuExecutable(optimized(module), threads=1)
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    bad = np.array([[5], [0]], np.int32)
    for run in (lambda *a: run_module(module, list(a)), ex):
        with pytest.raises(IndexOutOfRange) as err:
            run(np.array(True), x, bad)
        _located(err.value, "checked.graph")
        # the false side never reads the indices: no error
        np.testing.assert_array_equal(run(np.array(False), x, bad)[0], x[:2])


def test_aot_library_matches_the_interpreter_and_locates_an_index_error(tmp_path: Path) -> None:
    for name in ("branch", "checked"):
        graph = tmp_path / f"{name}.graph"
        graph.write_text(CASES[name])
        proc = run_tessel("compile", str(graph), "-o", str(tmp_path / name))
        assert proc.returncode == 0, proc.stderr
        lib = runtime.load(tmp_path / name / f"lib{name}.so")
        module = module_of(name)
        for pred in (True, False):
            args = inputs(module, pred)
            assert_same(run_module(module, args), lib(*args), f"{name} ahead of time")
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    with pytest.raises(IndexOutOfRange) as err:
        lib(np.array(True), x, np.array([[0], [-6]], np.int32))
    _located(err.value, "checked.graph")


def test_loop_programs_release_the_gil_and_serialize_on_their_arena() -> None:
    """A program with a loop runs without the GIL (it may run long), so calls from several
    threads really overlap: each must still get its own answer (the arena is shared)."""
    ex = CpuExecutable(optimized(module_of("bit-loop")), threads=1)
    assert ex.mode == "run"
    values = list(range(0, 1 << 32, 99_991))[:600]
    got: dict[int, int] = {}
    barrier = threading.Barrier(4)

    def work(part: int) -> None:
        barrier.wait()
        for x in values[part::4]:
            got[x] = int(ex(np.uint32(x))[0])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == {x: crc_rounds(x) for x in values}
