"""`for`, the counted loop: parsing and printing, type errors, the interpreter against Python's
`for i in range(lower, upper)`, and canonicalization of values the body passes through.

A `for` takes its two bounds (integer scalars of one dtype) and its carried values; its body
takes the index and the carried values and returns the carried values' next values.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import passes  # noqa: F401  (registers every pass)
from ir.diagnostics import GraphTypeError, TesselError
from ir.graph import Module
from ir.ops import Op
from ir.parser import parse_module
from ir.printer import print_module
from runtime.interp import run_module

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "passes"))
from passcheck import apply, assert_golden

# for i in range(lo, hi): v = v * 0.5 + i, and w passed through
LOOP = """\
func @main(%lo: i32[], %hi: i32[], %x: f64[3], %y: f32[2]) -> (f64[3], f32[2]) {
  %w = for(%lo, %hi, %x, %y) {
    body = func @body(%i: i32[], %v: f64[3], %u: f32[2]) -> (f64[3], f32[2]) {
      %h = mul(%v, 0.5) : f64[3]
      %f = convert(%i) {dtype = f64} : f64[]
      %g = broadcast_in_dim(%f) {shape = [3], dims = []} : f64[3]
      %n = add(%h, %g) : f64[3]
      return %n, %u
    }
  } : (f64[3], f32[2])
  %r = get(%w) {index = 0} : f64[3]
  %s = get(%w) {index = 1} : f32[2]
  return %r, %s
}
"""


def parse(text: str) -> Module:
    return parse_module(text, "f.graph")


def test_print_parse_round_trip() -> None:
    module = parse(LOOP)
    printed = print_module(module)
    assert parse(printed) == module
    assert print_module(parse(printed)) == printed


@pytest.mark.parametrize(("lo", "hi"), [(0, 5), (3, 4), (4, 4), (7, 2), (-6, -1), (-2, 3)])
def test_interpreter_counts_like_range(lo: int, hi: int) -> None:
    x = np.array([1.0, -2.0, 8.0])
    y = np.array([0.5, 1.5], np.float32)
    r, s = run_module(parse(LOOP), [np.array(lo, np.int32), np.array(hi, np.int32), x, y])
    want = x.copy()
    for i in range(lo, hi):
        want = want * 0.5 + i
    np.testing.assert_array_equal(r, want)
    np.testing.assert_array_equal(s, y)


ONE_LINE = """\
func @main(%lo: {lo}, %hi: {hi}, %x: f32[4]) -> f32[4] {{
  %w = for(%lo, %hi{extra}) {{body = {body}}}
  %r = get(%w) {{index = 0}}
  return %r
}}
"""
BODY = "func @b(%i: i32[], %v: f32[4]) -> (f32[4]) { %d = add(%v, %v) : f32[4]  return %d }"
ERRORS = {
    "float-bound": (
        {"lo": "f32[]", "hi": "f32[]"},
        "f.graph:2:12: error: for: the lower bound must be an integer scalar, got f32[]",
    ),
    "vector-bound": (
        {"hi": "i32[2]"},
        "f.graph:2:17: error: for: the upper bound must be an integer scalar, got i32[2]",
    ),
    "bounds-of-two-types": (
        {"hi": "i64[]"},
        "f.graph:2:17: error: for: the bounds must have one type, got i32[] and i64[]",
    ),
    "nothing-carried": (
        {"extra": "", "body": "func @b(%i: i32[]) -> (i32[]) { return %i }"},
        "f.graph:2:8: error: for: a loop must carry at least one value (it computes nothing else)",
    ),
    "body-without-the-index": (
        {"body": "func @b(%v: f32[4]) -> (f32[4]) { return %v }"},
        "f.graph:2:34: error: for: body takes (f32[4]), but must take the index and the carried "
        "values, (i32[], f32[4])",
    ),
    "body-returns-the-index": (
        {"body": "func @b(%i: i32[], %v: f32[4]) -> (i32[], f32[4]) { return %i, %v }"},
        "f.graph:2:34: error: for: body returns (i32[], f32[4]), but must return the carried "
        "values, (f32[4])",
    ),
}


def loop_text(lo: str = "i32[]", hi: str = "i32[]", extra: str = ", %x", body: str = BODY) -> str:
    return ONE_LINE.format(lo=lo, hi=hi, extra=extra, body=body)


def test_the_error_template_is_valid() -> None:
    parse(loop_text())


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_error_message_first_line(case: str) -> None:
    changes, first = ERRORS[case]
    with pytest.raises(TesselError) as err:
        parse(loop_text(**changes))
    assert isinstance(err.value, GraphTypeError)
    assert str(err.value).splitlines()[0] == first


def test_a_value_the_body_passes_through_is_read_from_the_operand() -> None:
    assert_golden(
        "canonicalize",
        LOOP,
        LOOP.replace("return %r, %s", "return %r, %y").replace(
            "  %s = get(%w) {index = 1} : f32[2]\n", ""
        ),
    )


# for i in range(lo, hi): s += x[i + shift]
GATHER_LOOP = """\
func @main(%x: f32[8]) -> f32[] {{
  %lo = constant {lo} : i32[]
  %hi = constant {hi} : i32[]
  %zero = constant 0.0 : f32[]
  %w = for(%lo, %hi, %zero, %x) {{
    body = func @body(%i: i32[], %s: f32[], %v: f32[8]) -> (f32[], f32[8]) {{
      %j = add(%i, {shift}) : i32[]
      %k = convert(%j) {{dtype = i64}} : i64[]
      %at = reshape(%k) {{shape = [1]}} : i64[1]
      %g = gather(%v, %at) {{mode = "{mode}"}} : f32[]
      %t = add(%s, %g) : f32[]
      return %t, %v
    }}
  }} : (f32[], f32[8])
  %r = get(%w) {{index = 0}} : f32[]
  return %r
}}
"""


def gather_modes(module: Module) -> list[str]:
    (loop,) = [n for n in module.entry_function.body if n.op is Op.FOR]
    return [n.attrs["mode"] for n in loop.attrs["body"].body if n.op is Op.GATHER]


@pytest.mark.parametrize(("lo", "hi", "shift"), [(0, 8, 0), (1, 8, -1), (0, 6, 2), (5, 6, 2)])
def test_an_index_the_loop_keeps_in_range_is_not_checked(lo: int, hi: int, shift: int) -> None:
    """The bounds say every position is inside the axis: the gather clips, which is then the
    same as checking (and gives the same numbers)."""
    module = parse(GATHER_LOOP.format(lo=lo, hi=hi, shift=shift, mode="check"))
    out, _ = apply("canonicalize", module)
    assert gather_modes(out) == ["clip"]
    x = np.arange(8, dtype=np.float32)
    want = float(sum(x[i + shift] for i in range(lo, hi)))
    for m in (module, out):
        assert float(run_module(m, [x])[0]) == want


@pytest.mark.parametrize(
    ("lo", "hi", "shift"), [(0, 9, 0), (0, 8, 1), (0, 8, -1), (-1, 3, 0), (3, 3, 0), (4, 2, 0)]
)
def test_an_index_that_may_leave_the_axis_stays_checked(lo: int, hi: int, shift: int) -> None:
    """Past either end (NumPy's negative indices count from the end: also checked), or a loop
    of no iterations, about which the bounds say nothing."""
    module = parse(GATHER_LOOP.format(lo=lo, hi=hi, shift=shift, mode="check"))
    assert gather_modes(apply("canonicalize", module)[0]) == ["check"]
