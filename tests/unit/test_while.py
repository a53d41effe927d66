"""`while` loops and `get`: parsing and printing, type and verifier errors, the interpreter
against plain Python loops, and the passes, which run inside loop bodies too.

A loop's `cond` and `body` are nested functions of the loop's carried values; its type is the
tuple of those values, which only `get` reads.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import passes  # noqa: F401  (registers every pass)
from compiler.targets import default_pipeline
from ir.attrs import Attrs
from ir.builder import make_node, parameter
from ir.diagnostics import GraphSyntaxError, GraphTypeError, TesselError, VerifyError
from ir.dtypes import DType
from ir.graph import Function, Module
from ir.ops import Op
from ir.parser import parse_module
from ir.printer import print_module
from ir.types import TensorType, TupleType
from ir.verify import verify_function, verify_module
from passes import PassManager, parse_pipeline
from runtime.interp import run_module

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "passes"))
from passcheck import apply, assert_golden, assert_unchanged

# x squared five times, and the count
LOOP = """\
func @main(%x: f32[4]) -> (f32[4], i32[]) {
  %zero = constant 0 : i32[]
  %w = while(%zero, %x) {
    cond = func @cond(%i: i32[], %v: f32[4]) -> bool[] {
      %c = lt(%i, 5) : bool[]
      return %c
    },
    body = func @body(%i: i32[], %v: f32[4]) -> (i32[], f32[4]) {
      %j = add(%i, 1) : i32[]
      %u = mul(%v, %v) : f32[4]
      return %j, %u
    }
  } : (i32[], f32[4])
  %r = get(%w) {index = 1} : f32[4]
  %n = get(%w) {index = 0} : i32[]
  return %r, %n
}
"""

# for i in range(3): for k in range(i, 4): v = v * 0.5 + k
NESTED = """\
func @main(%x: f64[3]) -> f64[3] {
  %zero = constant 0 : i64[]
  %w = while(%zero, %x) {
    cond = func @outer_cond(%i: i64[], %v: f64[3]) -> bool[] {
      %c = lt(%i, 3) : bool[]
      return %c
    },
    body = func @outer_body(%i: i64[], %v: f64[3]) -> (i64[], f64[3]) {
      %j = add(%i, 1) : i64[]
      %in = while(%i, %v) {
        cond = func @inner_cond(%k: i64[], %q: f64[3]) -> bool[] {
          %c = lt(%k, 4) : bool[]
          return %c
        },
        body = func @inner_body(%k: i64[], %q: f64[3]) -> (i64[], f64[3]) {
          %k2 = add(%k, 1) : i64[]
          %h = mul(%q, 0.5) : f64[3]
          %kf = convert(%k) {dtype = f64} : f64[]
          %q2 = add(%h, %kf) : f64[3]
          return %k2, %q2
        }
      } : (i64[], f64[3])
      %u = get(%in) {index = 1} : f64[3]
      return %j, %u
    }
  } : (i64[], f64[3])
  %r = get(%w) {index = 1} : f64[3]
  return %r
}
"""


def parse(text: str) -> Module:
    module = parse_module(text, "loop.graph")
    verify_module(module)
    return module


# --- parsing and printing ---------------------------------------------------------------------


@pytest.mark.parametrize("text", [LOOP, NESTED], ids=["loop", "nested"])
def test_print_parse_round_trip(text: str) -> None:
    module = parse(text)
    printed = print_module(module)
    again = parse_module(printed, "printed.graph")
    assert again == module
    assert print_module(again) == printed


def test_the_loop_has_a_tuple_type_and_get_reads_its_elements() -> None:
    fn = parse(LOOP).entry_function
    w = next(n for n in fn.body if n.op is Op.WHILE)
    i32, f4 = TensorType((), DType.I32), TensorType((4,), DType.F32)
    assert isinstance(w.type, TupleType)
    assert w.type == TupleType.of((i32, f4))
    assert str(w.type) == "(i32[], f32[4])"
    assert w.type.size == 5
    assert w.type.nbytes == 20
    assert w.type.offsets(64) == ((0, 64), 128)
    assert [r.type for r in fn.results] == [f4, i32]
    assert w.attrs["cond"].name == "cond"
    assert w.attrs["body"].result_types == (i32, f4)


def test_the_declared_tuple_type_is_optional() -> None:
    text = LOOP.replace("  } : (i32[], f32[4])\n", "  }\n")
    assert text != LOOP
    assert parse(text) == parse(LOOP)


def test_nested_loops_print_their_inner_loop_inside_the_body() -> None:
    printed = print_module(parse(NESTED))
    outer_body = printed.index("@outer_body")
    assert outer_body < printed.index("while", outer_body) < printed.index("@inner_body")
    assert printed.count("while(") == 2
    assert "%in = while(%i, %v) {cond = func @inner_cond" in printed


# --- type errors, verifier errors, syntax errors ----------------------------------------------


def loop_text(
    cond_result: str = "bool[]",
    cond_stmt: str = "%c = lt(%i, 5) : bool[]",
    body_result: str = "(i32[], f32[4])",
    body_return: str = "%j, %u",
    operands: str = "%zero, %x",
    declared: str = " : (i32[], f32[4])",
    read: str = "%r = get(%w) {index = 1} : f32[4]",
    result: str = "%r",
    result_type: str = "f32[4]",
) -> str:
    return f"""\
func @main(%x: f32[4]) -> {result_type} {{
  %zero = constant 0 : i32[]
  %w = while({operands}) {{
    cond = func @cond(%i: i32[], %v: f32[4]) -> {cond_result} {{ {cond_stmt}  return %c }},
    body = func @body(%i: i32[], %v: f32[4]) -> {body_result} {{
      %j = add(%i, 1) : i32[]
      %u = mul(%v, %v) : f32[4]
      return {body_return}
    }}
  }}{declared}
  {read}
  return {result}
}}
"""


def error_of(text: str) -> TesselError:
    with pytest.raises(TesselError) as info:
        parse_module(text, "w.graph")
    return info.value


COND = "      cond = func @cond(%i: i32[], %v: f32[4]) -> {} {{ {}  return %c }},"
BODY = "      body = func @body(%i: i32[], %v: f32[4]) -> {} {{"
ERRORS = {
    "cond-returns-non-bool": (
        {"cond_result": "i32[]", "cond_stmt": "%c = add(%i, 5) : i32[]"},
        GraphTypeError,
        "w.graph:4:12: error: while: cond must return one bool[], it returns (i32[])\n"
        + COND.format("i32[]", "%c = add(%i, 5) : i32[]")
        + "\n             ^",
    ),
    "body-returns-more": (
        {"body_result": "(i32[], f32[4], f32[4])", "body_return": "%j, %u, %u"},
        GraphTypeError,
        "w.graph:5:12: error: while: body returns (i32[], f32[4], f32[4]), but must return "
        "what it takes, (i32[], f32[4])\n" + BODY.format("(i32[], f32[4], f32[4])") + "\n"
        "             ^",
    ),
    "body-returns-other-types": (
        {"body_result": "(i32[], i32[])", "body_return": "%j, %j"},
        GraphTypeError,
        "w.graph:5:12: error: while: body returns (i32[], i32[]), but must return what it "
        "takes, (i32[], f32[4])\n" + BODY.format("(i32[], i32[])") + "\n             ^",
    ),
    "operand-count": (
        {"operands": "%zero, %x, %x", "declared": ""},
        GraphTypeError,
        "w.graph:4:12: error: while: cond takes (i32[], f32[4]), but the loop carries "
        "(i32[], f32[4], f32[4])\n"
        + COND.format("bool[]", "%c = lt(%i, 5) : bool[]")
        + "\n             ^",
    ),
    "no-operands": (
        {"operands": "", "declared": ""},
        GraphTypeError,
        "w.graph:3:8: error: while: needs at least one operand\n    %w = while() {\n         ^",
    ),
    "get-index-out-of-range": (
        {"read": "%r = get(%w) {index = 2} : f32[4]"},
        GraphTypeError,
        "w.graph:11:25: error: get: index 2 is out of range for (i32[], f32[4])\n"
        "    %r = get(%w) {index = 2} : f32[4]\n"
        "                          ^",
    ),
    "get-negative-index": (
        {"read": "%r = get(%w) {index = -1} : f32[4]"},
        GraphTypeError,
        "w.graph:11:25: error: get: index -1 is out of range for (i32[], f32[4])\n"
        "    %r = get(%w) {index = -1} : f32[4]\n"
        "                          ^",
    ),
    "get-of-a-tensor": (
        {"read": "%r = get(%x) {index = 0} : f32[4]"},
        GraphTypeError,
        "w.graph:11:12: error: get: operand must be a tuple, got f32[4]\n"
        "    %r = get(%x) {index = 0} : f32[4]\n"
        "             ^",
    ),
    "tuple-into-neg": (
        {"read": "%r = neg(%w)"},
        GraphTypeError,
        "w.graph:11:12: error: neg: operand must be a tensor, not a tuple (read one with get), "
        "got (i32[], f32[4])\n"
        "    %r = neg(%w)\n"
        "             ^",
    ),
    "declared-type-differs": (
        {"declared": " : (i32[], f32[5])"},
        GraphTypeError,
        "w.graph:10:7: error: declared type (i32[], f32[5]) does not match the type "
        "(i32[], f32[4]) that while produces\n"
        "    } : (i32[], f32[5])\n"
        "        ^",
    ),
    # a function's results are tensors: the result list cannot even spell a tuple
    "tuple-as-result": (
        {"read": "", "result": "%w", "result_type": "(i32[], f32[4])"},
        GraphTypeError,
        "w.graph:1:27: error: @main declares results (i32[], f32[4]) but returns "
        "((i32[], f32[4]))\n"
        "  func @main(%x: f32[4]) -> (i32[], f32[4]) {\n"
        "                            ^",
    ),
    "unclosed-tuple-type": (
        {"declared": " : (i32[], f32[4]"},
        GraphSyntaxError,
        "w.graph:11:3: error: unexpected '%r'; expected ')' or ','\n"
        "    %r = get(%w) {index = 1} : f32[4]\n"
        "    ^",
    ),
    "empty-tuple-type": (
        {"declared": " : ()"},
        GraphSyntaxError,
        "w.graph:10:8: error: unexpected ')'; expected a name\n    } : ()\n         ^",
    ),
}


def test_the_error_template_is_valid() -> None:
    parse(loop_text())


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_error_message(case: str) -> None:
    changes, kind, message = ERRORS[case]
    err = error_of(loop_text(**changes))
    assert type(err) is kind
    assert str(err) == message


ONE_LINE = (
    "func @main(%x: f32[4]) -> f32[4] {{\n  %w = while(%x) {{{attrs}}}\n  {read}\n  return %x\n}}\n"
)
NEVER_COND = "cond = func @c(%v: f32[4]) -> bool[] { %k = constant false : bool[]  return %k }"
SAME_BODY = "body = func @b(%v: f32[4]) -> (f32[4]) { return %v }"
GET = "%r = get(%w) {index = 0}"
# (attributes of the loop, the line after it, the first line of the message)
FIRST_LINES = {
    "missing-body": (
        NEVER_COND,
        GET,
        "w.graph:2:8: error: while: missing required attribute 'body': expected a nested "
        "function body",
    ),
    "cond-not-a-function": (
        "cond = 3, " + SAME_BODY,
        GET,
        "w.graph:2:26: error: while: attribute 'cond': expected a nested function body, got 3",
    ),
    "cond-returns-two": (
        NEVER_COND.replace("-> bool[]", "-> (bool[], bool[])").replace("%k }", "%k, %k }")
        + ", "
        + SAME_BODY,
        GET,
        "w.graph:2:26: error: while: cond must return one bool[], it returns (bool[], bool[])",
    ),
    "cond-returns-a-vector": (
        "cond = func @c(%v: f32[4]) -> bool[4] { %k = gt(%v, 0) : bool[4]  return %k }, "
        + SAME_BODY,
        GET,
        "w.graph:2:26: error: while: cond must return one bool[], it returns (bool[4])",
    ),
    "get-without-index": (
        NEVER_COND + ", " + SAME_BODY,
        "%r = get(%w)",
        "w.graph:3:8: error: get: missing required attribute 'index': expected an int",
    ),
    "get-of-two": (
        NEVER_COND + ", " + SAME_BODY,
        "%r = get(%w, %w) {index = 0}",
        "w.graph:3:8: error: get: takes 1 operand, got 2",
    ),
    "loop-of-a-tuple": (
        NEVER_COND + ", " + SAME_BODY,
        "%w2 = while(%w) {" + NEVER_COND + ", " + SAME_BODY + "}",
        "w.graph:3:15: error: while: operand must be a tensor, not a tuple (read one with get), "
        "got (f32[4])",
    ),
    "tuple-into-fusion": (
        NEVER_COND + ", " + SAME_BODY,
        "%f = fusion(%w) {body = func @fusion(%p: f32[4]) -> f32[4] { return %p }}",
        "w.graph:3:15: error: fusion: operand must be a tensor, not a tuple (read one with "
        "get), got (f32[4])",
    ),
}


@pytest.mark.parametrize("case", sorted(FIRST_LINES))
def test_error_message_first_line(case: str) -> None:
    attrs, read, first = FIRST_LINES[case]
    err = error_of(ONE_LINE.format(attrs=attrs, read=read))
    assert isinstance(err, GraphTypeError)
    assert str(err).splitlines()[0] == first


def test_tuple_type_outside_a_statement_is_a_syntax_error() -> None:
    err = error_of("func @main(%x: (f32[4], i32[])) -> f32[4] {\n  return %x\n}\n")
    assert isinstance(err, GraphSyntaxError)
    assert str(err).startswith("w.graph:1:16: error: unexpected '('")


def test_verifier_rejects_a_function_returning_a_tuple() -> None:
    """Built directly, as a buggy pass could: the parser cannot spell it."""
    fn = parse(LOOP).entry_function
    w = next(n for n in fn.body if n.op is Op.WHILE)
    broken = fn.replace(body=fn.body[: fn.body.index(w) + 1], results=(w,))
    with pytest.raises(VerifyError) as info:
        verify_function(broken)
    assert info.value.message == (
        "in @main, at '%w = while : (i32[], f32[4])': a function returns tensors; "
        "read each element with get"
    )


def test_verifier_checks_inside_loop_bodies() -> None:
    """A body whose schedule uses a value before defining it is caught, and named."""
    fn = parse(LOOP).entry_function
    w = next(n for n in fn.body if n.op is Op.WHILE)
    body: Function = w.attrs["body"]
    shuffled = body.replace(body=tuple(reversed(body.body)))
    bad = w.replace(attrs=Attrs({**w.attrs, "body": shuffled}))
    broken = fn.replace(body=tuple(bad if n is w else n for n in fn.body))
    with pytest.raises(VerifyError) as info:
        verify_function(broken)
    assert info.value.message == (
        "in @body, at '%j = add : i32[]': operand 1 ('constant : i32[]') "
        "is used before its definition"
    )


def test_make_node_infers_the_tuple_type() -> None:
    fn = parse(LOOP).entry_function
    w = next(n for n in fn.body if n.op is Op.WHILE)
    x = parameter("x", TensorType((4,), DType.F32))
    zero = w.srcs[0]
    again = make_node(Op.WHILE, [zero, x], {"cond": w.attrs["cond"], "body": w.attrs["body"]})
    assert again.type == w.type
    got = make_node(Op.GET, [again], {"index": 0})
    assert got.type == TensorType((), DType.I32)


# --- the interpreter against Python loops -----------------------------------------------------


def test_interpreter_squares_five_times() -> None:
    x = np.array([1.0, -1.5, 0.5, 1.1], np.float32)
    r, n = run_module(parse(LOOP), [x])
    want, i = x.copy(), 0
    while i < 5:
        i, want = i + 1, want * want
    assert n.dtype == np.int32
    assert int(n) == i
    assert r.dtype == np.float32
    np.testing.assert_array_equal(r, want)


def test_interpreter_nested_loops() -> None:
    x = np.array([1.0, -2.0, 0.25])
    (r,) = run_module(parse(NESTED), [x])
    want = x.copy()
    for i in range(3):
        for k in range(i, 4):
            want = want * 0.5 + k
    np.testing.assert_allclose(r, want, rtol=1e-15)


ZERO_TRIP = LOOP.replace("%zero = constant 0 : i32[]", "%zero = constant 9 : i32[]")


def test_interpreter_zero_trip_loop_returns_the_operands() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    r, n = run_module(parse(ZERO_TRIP), [x])
    assert int(n) == 9
    np.testing.assert_array_equal(r, x)
    assert not np.shares_memory(r, x)  # a result is fresh, never the caller's array


SWAP = """\
func @main(%a: i32[2], %b: i32[2]) -> (i32[2], i32[2]) {
  %zero = constant 0 : u8[]
  %w = while(%zero, %a, %b) {
    cond = func @cond(%i: u8[], %x: i32[2], %y: i32[2]) -> bool[] {
      %c = lt(%i, 7) : bool[]
      return %c
    },
    body = func @body(%i: u8[], %x: i32[2], %y: i32[2]) -> (u8[], i32[2], i32[2]) {
      %j = add(%i, 1) : u8[]
      %s = add(%x, %y) : i32[2]
      return %j, %y, %s
    }
  } : (u8[], i32[2], i32[2])
  %p = get(%w) {index = 1} : i32[2]
  %q = get(%w) {index = 2} : i32[2]
  return %p, %q
}
"""


def test_interpreter_fibonacci_by_swapping() -> None:
    a, b = np.array([0, 5], np.int32), np.array([1, 2], np.int32)
    p, q = run_module(parse(SWAP), [a, b])
    x, y = a.copy(), b.copy()
    for _ in range(7):
        x, y = y, x + y
    np.testing.assert_array_equal(p, x)
    np.testing.assert_array_equal(q, y)


# --- passes inside loop bodies ----------------------------------------------------------------

# fold (2 * 0.25 and its broadcast become one constant) and fuse (mul, add, tanh become one
# fusion) inside the body; the counters' scalar adds and compares are fusions of their own
FOLD_FUSE_BEFORE = """\
func @main(%x: f32[8]) -> f32[8] {
  %zero = constant 0 : i32[]
  %w = while(%zero, %x) {
    cond = func @cond(%i: i32[], %v: f32[8]) -> bool[] {
      %c = lt(%i, 3) : bool[]
      return %c
    },
    body = func @body(%i: i32[], %v: f32[8]) -> (i32[], f32[8]) {
      %j = add(%i, 1) : i32[]
      %a = constant 2 : f32[]
      %b = constant 0.25 : f32[]
      %s = mul(%a, %b) : f32[]
      %sb = broadcast_in_dim(%s) {shape = [8]} : f32[8]
      %u = mul(%v, %sb) : f32[8]
      %t = add(%u, 1) : f32[8]
      %e = tanh(%t) : f32[8]
      return %j, %e
    }
  } : (i32[], f32[8])
  %r = get(%w) {index = 1} : f32[8]
  return %r
}
"""
FOLD_FUSE_EXPECTED = """\
func @main(%x: f32[8]) -> f32[8] {
  %zero = constant 0 : i32[]
  %w = while(%zero, %x) {cond = func @cond(%i: i32[], %v: f32[8]) -> bool[] {
    %c = fusion(%i) {body = func @fusion(%i: i32[]) -> bool[] {
      %0 = constant 3 : i32[]
      %c = lt(%i, %0) : bool[]
      return %c
    }} : bool[]
    return %c
  }, body = func @body(%i: i32[], %v: f32[8]) -> (i32[], f32[8]) {
    %j = fusion(%i) {body = func @fusion(%i: i32[]) -> i32[] {
      %0 = constant 1 : i32[]
      %j = add(%i, %0) : i32[]
      return %j
    }} : i32[]
    %e = fusion(%v) {body = func @fusion(%v: f32[8]) -> f32[8] {
      %sb = constant 0.5 : f32[8]
      %u = mul(%v, %sb) : f32[8]
      %0 = constant 1.0 : f32[8]
      %t = add(%u, %0) : f32[8]
      %e = tanh(%t) : f32[8]
      return %e
    }} : f32[8]
    return %j, %e
  }} : (i32[], f32[8])
  %r = get(%w) {index = 1} : f32[8]
  return %r
}
"""


def test_fold_and_fuse_inside_a_loop_body() -> None:
    assert_golden("canonicalize,fold,cse,dce,fuse", FOLD_FUSE_BEFORE, FOLD_FUSE_EXPECTED)


def _body_ops(module: Module, which: str = "body") -> list[Op]:
    w = next(n for n in module.entry_function.body if n.op is Op.WHILE)
    return [n.op for n in w.attrs[which].body]


def test_canonicalize_inside_a_body_and_a_condition() -> None:
    """x * 1, x + 0 and --x simplify inside the body and the condition as anywhere else."""
    text = LOOP.replace(
        "      %u = mul(%v, %v) : f32[4]\n",
        "      %one = mul(%v, 1) : f32[4]\n"
        "      %n1 = neg(%one) : f32[4]\n"
        "      %n2 = neg(%n1) : f32[4]\n"
        "      %u = mul(%n2, %n2) : f32[4]\n",
    ).replace(
        "      %c = lt(%i, 5) : bool[]\n",
        "      %i0 = add(%i, 0) : i32[]\n      %c = lt(%i0, 5) : bool[]\n",
    )
    module = parse(text)
    assert Op.NEG in _body_ops(module)
    assert Op.ADD in _body_ops(module, "cond")
    out, _ = apply("canonicalize,dce", module)
    assert _body_ops(out) == [Op.CONSTANT, Op.ADD, Op.MUL]
    assert _body_ops(out, "cond") == [Op.CONSTANT, Op.LT]
    x = np.array([0.5, 1.5, -1.0, 0.0], np.float32)
    for got, want in zip(run_module(out, [x]), run_module(module, [x]), strict=True):
        np.testing.assert_array_equal(got, want)


def test_cse_and_dce_inside_a_body() -> None:
    text = LOOP.replace(
        "      %u = mul(%v, %v) : f32[4]\n",
        "      %u = mul(%v, %v) : f32[4]\n"
        "      %u2 = mul(%v, %v) : f32[4]\n"
        "      %dead = exp(%v) : f32[4]\n"
        "      %s = add(%u, %u2) : f32[4]\n",
    ).replace("return %j, %u\n", "return %j, %s\n")
    module = parse(text)
    assert _body_ops(module).count(Op.MUL) == 2
    out, _ = apply("cse,dce", module)
    assert _body_ops(out) == [Op.CONSTANT, Op.ADD, Op.MUL, Op.ADD]
    x = np.array([0.5, 1.5, -1.0, 0.0], np.float32)
    for got, want in zip(run_module(out, [x]), run_module(module, [x]), strict=True):
        np.testing.assert_array_equal(got, want)


CONSTANT_LOOP = """\
func @main() -> f32[4] {
  %zero = constant 0 : i32[]
  %x = constant [1, 2, 3, 4] : f32[4]
  %w = while(%zero, %x) {
    cond = func @cond(%i: i32[], %v: f32[4]) -> bool[] {
      %c = lt(%i, %zero_in_cond) : bool[]
      return %c
    },
    body = func @body(%i: i32[], %v: f32[4]) -> (i32[], f32[4]) {
      %one = constant 1 : i32[]
      %j = add(%i, %one) : i32[]
      %u = mul(%v, %v) : f32[4]
      return %j, %u
    }
  } : (i32[], f32[4])
  %r = get(%w) {index = 1} : f32[4]
  return %r
}
""".replace("%zero_in_cond) : bool[]", "%five) : bool[]").replace(
    "    cond = func @cond(%i: i32[], %v: f32[4]) -> bool[] {\n",
    "    cond = func @cond(%i: i32[], %v: f32[4]) -> bool[] {\n      %five = constant 5 : i32[]\n",
)


def test_fold_never_evaluates_a_loop() -> None:
    """Every operand of the loop is a constant, but a loop may not end: fold leaves it (and
    the get of it) alone."""
    assert_unchanged("fold", CONSTANT_LOOP)
    (r,) = run_module(parse(CONSTANT_LOOP), [])
    want = np.array([1, 2, 3, 4], np.float32)
    for _ in range(5):
        want = want * want
    np.testing.assert_array_equal(r, want)


TWO_LOOPS = """\
func @main(%x: f32[4]) -> f32[4] {
  %zero = constant 0 : i32[]
  %w = while(%zero, %x) {
    cond = func @cond(%i: i32[], %v: f32[4]) -> bool[] {
      %c = lt(%i, 5) : bool[]
      return %c
    },
    body = func @body(%i: i32[], %v: f32[4]) -> (i32[], f32[4]) {
      %j = add(%i, 1) : i32[]
      %u = mul(%v, 0.5) : f32[4]
      return %j, %u
    }
  } : (i32[], f32[4])
  %w2 = while(%zero, %x) {
    cond = func @cond(%i: i32[], %v: f32[4]) -> bool[] {
      %c = lt(%i, 5) : bool[]
      return %c
    },
    body = func @body(%i: i32[], %v: f32[4]) -> (i32[], f32[4]) {
      %j = add(%i, 1) : i32[]
      %u = mul(%v, 0.5) : f32[4]
      return %j, %u
    }
  } : (i32[], f32[4])
  %r = get(%w) {index = 1} : f32[4]
  %r2 = get(%w2) {index = 1} : f32[4]
  %s = add(%r, %r2) : f32[4]
  return %s
}
"""


def test_cse_merges_two_identical_loops() -> None:
    module = parse(TWO_LOOPS)
    out, _ = apply("cse,dce", module)
    ops = [n.op for n in out.entry_function.body]
    assert ops.count(Op.WHILE) == 1
    assert ops.count(Op.GET) == 1
    x = np.array([1.0, -2.0, 4.0, 0.0], np.float32)
    np.testing.assert_array_equal(run_module(out, [x])[0], run_module(module, [x])[0])


def test_cse_keeps_loops_that_differ() -> None:
    second = TWO_LOOPS.index("%w2")
    text = TWO_LOOPS[:second] + TWO_LOOPS[second:].replace("mul(%v, 0.5)", "mul(%v, 0.25)", 1)
    out, _ = apply("cse,dce", text)
    assert [n.op for n in out.entry_function.body].count(Op.WHILE) == 2


def test_the_cpu_pipeline_verifies_after_every_pass_on_loops() -> None:
    pipeline = parse_pipeline(default_pipeline("cpu"))
    for text in (LOOP, NESTED, SWAP, TWO_LOOPS, FOLD_FUSE_BEFORE):
        module = parse(text)
        out = PassManager(pipeline, verify_each=True).run(module)
        verify_module(out)
        args = [np.linspace(-1, 1, p.type.size).astype(p.type.dtype.np).reshape(p.type.shape)
                for p in module.entry_function.params]  # fmt: skip
        for got, want in zip(run_module(out, args), run_module(module, args), strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6)
