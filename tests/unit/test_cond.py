"""`cond`: parsing and printing, type errors, the interpreter against plain Python `if`, and the
passes (which run inside both sides, and fold a branch on a constant predicate away).

A branch's `true_branch` and `false_branch` are nested functions of the operands after the
predicate, returning the same types; its type is the tuple of those, which only `get` reads.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import passes  # noqa: F401  (registers every pass)
from ir.builder import FunctionBuilder, make_node, parameter
from ir.diagnostics import GraphTypeError, TesselError
from ir.dtypes import DType
from ir.graph import Module
from ir.ops import Op
from ir.parser import parse_module
from ir.printer import print_module
from ir.types import TensorType, TupleType
from runtime.interp import run_module

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "passes"))
from passcheck import assert_golden, assert_unchanged

# if p: (x + y, x) else: (exp(x * y), y)
BRANCH = """\
func @main(%p: bool[], %x: f32[4], %y: f32[4]) -> (f32[4], f32[4]) {
  %c = cond(%p, %x, %y) {
    true_branch = func @t(%a: f32[4], %b: f32[4]) -> (f32[4], f32[4]) {
      %s = add(%a, %b) : f32[4]
      return %s, %a
    },
    false_branch = func @f(%a: f32[4], %b: f32[4]) -> (f32[4], f32[4]) {
      %m = mul(%a, %b) : f32[4]
      %e = exp(%m) : f32[4]
      return %e, %b
    }
  } : (f32[4], f32[4])
  %r = get(%c) {index = 0} : f32[4]
  %q = get(%c) {index = 1} : f32[4]
  return %r, %q
}
"""

# a loop inside a branch, and a branch inside a loop: halve v while it is above 1, but only
# when n > 0; count the halvings
NESTED = """\
func @main(%n: i32[], %x: f64[]) -> (f64[], i32[]) {
  %zero = constant 0 : i32[]
  %go = gt(%n, %zero) : bool[]
  %c = cond(%go, %x, %zero) {
    true_branch = func @halve(%v: f64[], %k: i32[]) -> (f64[], i32[]) {
      %w = while(%v, %k) {
        cond = func @big(%u: f64[], %i: i32[]) -> bool[] {
          %b = gt(%u, 1.0) : bool[]
          return %b
        },
        body = func @step(%u: f64[], %i: i32[]) -> (f64[], i32[]) {
          %odd = gt(%u, 100.0) : bool[]
          %h = cond(%odd, %u) {
            true_branch = func @fast(%z: f64[]) -> (f64[]) {
              %q = mul(%z, 0.25) : f64[]
              return %q
            },
            false_branch = func @slow(%z: f64[]) -> (f64[]) {
              %q = mul(%z, 0.5) : f64[]
              return %q
            }
          } : (f64[])
          %u2 = get(%h) {index = 0} : f64[]
          %j = add(%i, 1) : i32[]
          return %u2, %j
        }
      } : (f64[], i32[])
      %r = get(%w) {index = 0} : f64[]
      %m = get(%w) {index = 1} : i32[]
      return %r, %m
    },
    false_branch = func @keep(%v: f64[], %k: i32[]) -> (f64[], i32[]) {
      return %v, %k
    }
  } : (f64[], i32[])
  %r = get(%c) {index = 0} : f64[]
  %m = get(%c) {index = 1} : i32[]
  return %r, %m
}
"""


def parse(text: str) -> Module:
    return parse_module(text, "c.graph")


def error_of(text: str) -> TesselError:
    with pytest.raises(TesselError) as e:
        parse(text)
    return e.value


def test_walk_visits_nested_functions_depth_first() -> None:
    names = [n.name for n in parse(NESTED).entry_function.walk() if n.op is not Op.CONSTANT]
    assert names == [
        "go", "c",  # the branch, then its sides:
        "w", "odd", "h", "q", "q", "u2", "j", "b",  # the true side's loop, body, condition
        "r", "m",  # the true side's own (the false side has none)
        "r", "m",  # main's
    ]  # fmt: skip


@pytest.mark.parametrize("text", [BRANCH, NESTED])
def test_print_parse_round_trip(text: str) -> None:
    module = parse(text)
    printed = print_module(module)
    assert parse(printed) == module
    assert print_module(parse(printed)) == printed


def test_the_branch_has_a_tuple_type_of_its_sides_results() -> None:
    c = next(n for n in parse(BRANCH).entry_function.body if n.op is Op.COND)
    assert c.type == TupleType.of((TensorType((4,), c.srcs[1].dtype),) * 2)
    assert [p.name for p in c.attrs["false_branch"].params] == ["a", "b"]


def python_branch(p: bool, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    return [x + y, x] if p else [np.exp(x * y), y]


@pytest.mark.parametrize("p", [True, False])
def test_interpreter_takes_the_side_the_predicate_picks(p: bool) -> None:
    x = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
    y = np.array([1.5, 2.0, -0.25, 3.0], np.float32)
    got = run_module(parse(BRANCH), [np.array(p), x, y])
    for g, w in zip(got, python_branch(p, x, y), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6)


def python_nested(n: int, x: float) -> tuple[float, int]:
    count = 0
    if n > 0:
        while x > 1.0:
            x = x * 0.25 if x > 100.0 else x * 0.5
            count += 1
    return x, count


@pytest.mark.parametrize(("n", "x"), [(1, 1000.0), (1, 0.5), (0, 1000.0), (-3, 7.0), (2, 101.0)])
def test_interpreter_nested_branches_and_loops(n: int, x: float) -> None:
    r, m = run_module(parse(NESTED), [np.array(n, np.int32), np.array(x)])
    want_r, want_m = python_nested(n, x)
    assert (float(r), int(m)) == (want_r, want_m)


# --- type errors: each names the branch and, where it is one, the side ----------------------

ONE_LINE = """\
func @main(%p: {pred}, %x: f32[4]) -> f32[4] {{
  %c = cond(%p, %x) {{true_branch = {t}, false_branch = {f}}}
  %r = get(%c) {{index = 0}}
  return %r
}}
"""
SAME = "func @t(%v: f32[4]) -> (f32[4]) { return %v }"
DOUBLE = "func @f(%v: f32[4]) -> (f32[4]) { %d = add(%v, %v) : f32[4]  return %d }"
ERRORS = {
    "predicate-not-bool": (
        {"pred": "i32[]"},
        "c.graph:2:13: error: cond: the predicate must be a bool[], got i32[]",
    ),
    "predicate-a-vector": (
        {"pred": "bool[2]"},
        "c.graph:2:13: error: cond: the predicate must be a bool[], got bool[2]",
    ),
    "side-takes-another-type": (
        {"f": "func @f(%v: f64[4]) -> (f32[4]) { %d = convert(%v) {dtype = f32}  return %d }"},
        "c.graph:2:98: error: cond: false_branch takes (f64[4]), but the operands after the "
        "predicate are (f32[4])",
    ),
    "sides-return-different-types": (
        {"f": "func @f(%v: f32[4]) -> (f64[4]) { %d = convert(%v) {dtype = f64}  return %d }"},
        "c.graph:2:98: error: cond: the branches return different types: (f32[4]) and (f64[4])",
    ),
    "sides-return-different-counts": (
        {"f": "func @f(%v: f32[4]) -> (f32[4], f32[4]) { return %v, %v }"},
        "c.graph:2:98: error: cond: the branches return different types: (f32[4]) and "
        "(f32[4], f32[4])",
    ),
    "missing-side": (
        {"f": None},
        "c.graph:2:8: error: cond: missing required attribute 'false_branch': expected a nested "
        "function body",
    ),
}


def branch_text(pred: str = "bool[]", t: str = SAME, f: str | None = DOUBLE) -> str:
    text = ONE_LINE.format(pred=pred, t=t, f=f)
    return text.replace(", false_branch = None", "") if f is None else text


def test_the_error_template_is_valid() -> None:
    parse(branch_text())


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_error_message_first_line(case: str) -> None:
    changes, first = ERRORS[case]
    err = error_of(branch_text(**changes))
    assert isinstance(err, GraphTypeError)
    assert str(err).splitlines()[0] == first


def test_a_branch_returning_nothing_is_an_error() -> None:
    """(The text form cannot write an empty `return`; a builder can.)"""
    empty = FunctionBuilder("side")
    empty.param("v", TensorType((4,), DType.F32))
    side = empty.build([])
    pred = parameter("p", TensorType((), DType.BOOL))
    x = parameter("x", TensorType((4,), DType.F32))
    with pytest.raises(GraphTypeError, match="must return at least one value"):
        make_node(Op.COND, (pred, x), {"true_branch": side, "false_branch": side})


# --- passes -----------------------------------------------------------------------------------


def constant_predicate(value: str) -> str:
    """BRANCH with its predicate a constant instead of a parameter."""
    head = "func @main(%x: f32[4], %y: f32[4]) -> (f32[4], f32[4]) {\n"
    head += f"  %p = constant {value} : bool[]\n"
    return head + BRANCH.split("\n", 1)[1]


def test_a_constant_predicate_leaves_the_taken_side_inline() -> None:
    assert_golden(
        "canonicalize,dce",
        constant_predicate("true"),
        """\
func @main(%x: f32[4], %y: f32[4]) -> (f32[4], f32[4]) {
  %s = add(%x, %y) : f32[4]
  return %s, %x
}
""",
    )
    assert_golden(
        "canonicalize,dce",
        constant_predicate("false"),
        """\
func @main(%x: f32[4], %y: f32[4]) -> (f32[4], f32[4]) {
  %m = mul(%x, %y) : f32[4]
  %e = exp(%m) : f32[4]
  return %e, %y
}
""",
    )


PASSED_THROUGH = """\
func @main(%p: bool[], %x: f32[4], %y: f32[4]) -> (f32[4], f32[4]) {
  %c = cond(%p, %y, %x) {
    true_branch = func @t(%a: f32[4], %b: f32[4]) -> (f32[4], f32[4]) {
      %s = add(%a, %b) : f32[4]
      return %s, %b
    },
    false_branch = func @f(%a: f32[4], %b: f32[4]) -> (f32[4], f32[4]) {
      %m = mul(%a, %b) : f32[4]
      return %m, %b
    }
  } : (f32[4], f32[4])
  %r = get(%c) {index = 0} : f32[4]
  %q = get(%c) {index = 1} : f32[4]
  return %r, %q
}
"""


def test_a_value_both_sides_pass_through_is_read_from_the_operand() -> None:
    out = assert_golden(
        "canonicalize",
        PASSED_THROUGH,
        PASSED_THROUGH.replace("return %r, %q", "return %r, %x").replace(
            "  %q = get(%c) {index = 1} : f32[4]\n", ""
        ),
    )
    assert sum(n.op is Op.GET for n in out.entry_function.body) == 1


def test_different_pass_throughs_are_kept() -> None:
    assert_unchanged("canonicalize", BRANCH)


def test_passes_run_inside_both_sides() -> None:
    """fuse groups each side's chain; fold computes a constant inside a side."""
    text = BRANCH.replace(
        "%e = exp(%m) : f32[4]",
        "%two = constant 2.0 : f32[]\n      %four = mul(%two, %two) : f32[]\n"
        "      %g = exp(%m) : f32[4]\n      %e = mul(%g, %four) : f32[4]",
    )
    assert_golden(
        "fold,dce,fuse",
        text,
        BRANCH.replace(
            """\
      %m = mul(%a, %b) : f32[4]
      %e = exp(%m) : f32[4]
""",
            """\
      %e = fusion(%a, %b) {body = func @fusion(%a: f32[4], %b: f32[4]) -> f32[4] {
        %m = mul(%a, %b) : f32[4]
        %g = exp(%m) : f32[4]
        %0 = constant 4.0 : f32[4]
        %e = mul(%g, %0) : f32[4]
        return %e
      }} : f32[4]
""",
        ),
    )


def test_fold_never_evaluates_a_branch_with_a_traced_predicate() -> None:
    assert_unchanged("fold", BRANCH)
