"""canonicalize: each rule's golden before/after, cases it must leave alone, and numerics."""

from __future__ import annotations

import pytest
from passcheck import apply, assert_golden, assert_unchanged

from ir.dtypes import DType
from passes.canonicalize import RULES, exactly_representable

SIG = "func @main(%x: f32[4,3], %i: i32[4,3]) -> {ret} {{\n{body}\n}}"


def fn(body: str, ret: str = "f32[4,3]", params: str = "%x: f32[4,3]") -> str:
    return f"func @main({params}) -> {ret} {{\n{body}\n}}\n"


GOLDEN = [
    pytest.param(  # x + (-0.0) is exact for every x
        fn("%y = add(%x, -0.0)\nreturn %y"),
        fn("return %x"),
        id="add-negative-zero",
    ),
    pytest.param(
        fn("%y = add(0, %x)\nreturn %y", "i32[4,3]", "%x: i32[4,3]"),
        fn("return %x", "i32[4,3]", "%x: i32[4,3]"),
        id="add-zero-int-constant-left",
    ),
    pytest.param(
        fn("%y = sub(%x, 0.0)\nreturn %y"),
        fn("return %x"),
        id="sub-zero",
    ),
    pytest.param(
        fn("%y = mul(%x, 1.0)\n%z = div(%y, 1.0)\nreturn %z"),
        fn("return %x"),
        id="mul-div-one",
    ),
    pytest.param(
        fn("%y = mul(%x, 0)\nreturn %y", "i32[4,3]", "%x: i32[4,3]"),
        fn(
            "%0 = constant 0 : i32[]\n%y = broadcast_in_dim(%0) {shape = [4, 3]} : i32[4,3]\n"
            "return %y",
            "i32[4,3]",
            "%x: i32[4,3]",
        ),
        id="mul-zero-int",
    ),
    pytest.param(
        fn("%y = sub(%x, %x)\nreturn %y", "i8[4,3]", "%x: i8[4,3]"),
        fn(
            "%0 = constant 0 : i8[]\n%y = broadcast_in_dim(%0) {shape = [4, 3]} : i8[4,3]\n"
            "return %y",
            "i8[4,3]",
            "%x: i8[4,3]",
        ),
        id="sub-self-int",
    ),
    pytest.param(
        fn("%a = neg(%x)\n%b = neg(%a)\nreturn %b"),
        fn("return %x"),
        id="double-negation",
    ),
    pytest.param(
        fn("%a = not(%x)\n%b = not(%a)\nreturn %b", "bool[4,3]", "%x: bool[4,3]"),
        fn("return %x", "bool[4,3]", "%x: bool[4,3]"),
        id="double-not",
    ),
    pytest.param(
        fn("%a = abs(%x)\n%b = abs(%a)\nreturn %b"),
        fn("%a = abs(%x)\nreturn %a"),
        id="abs-idempotent",
    ),
    pytest.param(
        fn("%a = max(%x, %x)\nreturn %a"),
        fn("return %x"),
        id="max-self",
    ),
    pytest.param(
        fn("%a = pow(%x, 2.0)\nreturn %a"),
        fn("%a = mul(%x, %x)\nreturn %a"),
        id="pow-two",
    ),
    pytest.param(
        fn("%a = pow(%x, 1.0)\nreturn %a"),
        fn("return %x"),
        id="pow-one",
    ),
    pytest.param(
        fn("%a = convert(%x) {dtype = f32}\nreturn %a"),
        fn("return %x"),
        id="convert-same-dtype",
    ),
    pytest.param(
        fn("%a = convert(%x) {dtype = f64}\n%b = convert(%a) {dtype = f32}\nreturn %b"),
        fn("return %x"),
        id="convert-widen-and-back",
    ),
    pytest.param(
        fn("%a = transpose(%x) {perm = [1, 0]}\n%b = transpose(%a) {perm = [1, 0]}\nreturn %b"),
        fn("return %x"),
        id="transpose-twice-identity",
    ),
    pytest.param(
        fn(
            "%a = transpose(%x) {perm = [1, 2, 0]}\n%b = transpose(%a) {perm = [1, 2, 0]}\n"
            "return %b",
            "f32[4,2,3]",
            "%x: f32[2,3,4]",
        ),
        fn("%b = transpose(%x) {perm = [2, 0, 1]}\nreturn %b", "f32[4,2,3]", "%x: f32[2,3,4]"),
        id="transpose-compose",
    ),
    pytest.param(
        fn(
            "%a = reshape(%x) {shape = [12]}\n%b = reshape(%a) {shape = [2, 6]}\nreturn %b",
            "f32[2,6]",
        ),
        fn("%b = reshape(%x) {shape = [2, 6]}\nreturn %b", "f32[2,6]"),
        id="reshape-chain",
    ),
    pytest.param(
        fn("%a = reshape(%x) {shape = [12]}\n%b = reshape(%a) {shape = [4, 3]}\nreturn %b"),
        fn("return %x"),
        id="reshape-round-trip",
    ),
    pytest.param(
        fn(
            "%a = broadcast_in_dim(%x) {shape = [3]}\n"
            "%b = broadcast_in_dim(%a) {shape = [2, 3], dims = [1]}\nreturn %b",
            "f32[2,3]",
            "%x: f32[]",
        ),
        fn("%b = broadcast_in_dim(%x) {shape = [2, 3]}\nreturn %b", "f32[2,3]", "%x: f32[]"),
        id="broadcast-of-broadcast",
    ),
    pytest.param(
        fn(
            "%a = broadcast_in_dim(%s) {shape = [4, 3]}\n"
            "%b = broadcast_in_dim(%t) {shape = [4, 3]}\n"
            "%c = mul(%a, %b)\nreturn %c",
            params="%s: f32[], %t: f32[]",
        ),
        fn(
            "%0 = mul(%s, %t) : f32[]\n%c = broadcast_in_dim(%0) {shape = [4, 3]}\nreturn %c",
            params="%s: f32[], %t: f32[]",
        ),
        id="elementwise-of-scalar-broadcasts",
    ),
    pytest.param(
        fn("%a = slice(%x) {start = [0, 0], limit = [4, 3]}\nreturn %a"),
        fn("return %x"),
        id="full-slice",
    ),
    pytest.param(
        fn("%a = reverse(%x) {dims = []}\nreturn %a"),
        fn("return %x"),
        id="reverse-nothing",
    ),
    pytest.param(
        fn("%a = reverse(%x) {dims = [0, 1]}\n%b = reverse(%a) {dims = [1, 0]}\nreturn %b"),
        fn("return %x"),
        id="reverse-twice-identity",
    ),
    pytest.param(
        fn(
            "%a = reverse(%x) {dims = [0, 2]}\n%b = reverse(%a) {dims = [1, 2]}\nreturn %b",
            "f32[2,3,4]",
            "%x: f32[2,3,4]",
        ),
        fn("%b = reverse(%x) {dims = [0, 1]}\nreturn %b", "f32[2,3,4]", "%x: f32[2,3,4]"),
        id="reverse-compose",
    ),
    pytest.param(
        fn("%z = constant 0.0 : f32[]\n%a = pad(%x, %z) {low = [0, 0], high = [0, 0]}\nreturn %a"),
        fn("return %x"),
        id="pad-nothing",
    ),
    pytest.param(
        fn("%a = concatenate(%x) {axis = 0}\nreturn %a"),
        fn("return %x"),
        id="concatenate-one",
    ),
    pytest.param(
        fn("%a = reduce(%x) {kind = sum, axes = []}\nreturn %a"),
        fn("return %x"),
        id="reduce-no-axes",
    ),
    pytest.param(
        fn("%p = gt(%x, %x)\n%a = select(%p, %x, %x)\nreturn %a"),
        fn("return %x"),
        id="select-same-branches",
    ),
    pytest.param(
        fn(
            "%t = constant true : bool[]\n%p = broadcast_in_dim(%t) {shape = [4, 3]}\n"
            "%n = neg(%x)\n%a = select(%p, %x, %n)\nreturn %a"
        ),
        fn("return %x"),
        id="select-known-predicate",
    ),
    pytest.param(
        fn(
            "%t = transpose(%a) {perm = [1, 0]}\n%d = matmul(%t, %b)\nreturn %d",
            "f32[4,5]",
            "%a: f32[3,4], %b: f32[3,5]",
        ),
        fn(
            "%d = dot_general(%a, %b) {lhs_contract = [0], rhs_contract = [0]} : f32[4,5]\n"
            "return %d",
            "f32[4,5]",
            "%a: f32[3,4], %b: f32[3,5]",
        ),
        id="transpose-into-dot-lhs",
    ),
    pytest.param(
        fn(
            "%t = transpose(%b) {perm = [1, 0]}\n%d = matmul(%a, %t)\nreturn %d",
            "f32[4,5]",
            "%a: f32[4,3], %b: f32[5,3]",
        ),
        fn(
            "%d = dot_general(%a, %b) {lhs_contract = [1], rhs_contract = [1]} : f32[4,5]\n"
            "return %d",
            "f32[4,5]",
            "%a: f32[4,3], %b: f32[5,3]",
        ),
        id="transpose-into-dot-rhs",
    ),
    pytest.param(
        fn(
            "%c = constant 2.0 : f32[]\n%b = broadcast_in_dim(%c) {shape = [4, 3]}\n"
            "%a = add(%b, %x)\nreturn %a"
        ),
        fn(
            "%c = constant 2.0 : f32[]\n%b = broadcast_in_dim(%c) {shape = [4, 3]}\n"
            "%a = add(%x, %b)\nreturn %a"
        ),
        id="constant-to-the-right",
    ),
]


@pytest.mark.parametrize(("before", "after"), GOLDEN)
def test_golden(before, after):
    assert_golden("canonicalize,dce", before, after)


LEFT_ALONE = [
    # x + 0.0 is not x when x = -0.0 (gives +0.0): only fast-math may drop it
    pytest.param(fn("%y = add(%x, 0.0)\nreturn %y"), id="float-add-positive-zero"),
    # x * 0.0 is NaN for inf/NaN and -0.0 for negative x
    pytest.param(fn("%y = mul(%x, 0.0)\nreturn %y"), id="float-mul-zero"),
    # x - x is NaN for inf
    pytest.param(fn("%y = sub(%x, %x)\nreturn %y"), id="float-sub-self"),
    # f32 -> f16 -> f32 rounds
    pytest.param(
        fn("%a = convert(%x) {dtype = f16}\n%b = convert(%a) {dtype = f32}\nreturn %b"),
        id="narrowing-round-trip",
    ),
    # the transpose reorders the free dims, so folding it into the dot would reorder the output
    pytest.param(
        fn(
            "%t = transpose(%a) {perm = [0, 2, 1]}\n"
            "%d = dot_general(%t, %b) {lhs_contract = [0], rhs_contract = [0]}\nreturn %d",
            "f32[3,4,5]",
            "%a: f32[2,4,3], %b: f32[2,5]",
        ).replace("f32[3,4,5]", "f32[3,4,5]"),
        id="transpose-reordering-free-dims",
    ),
    pytest.param(fn("%y = exp(%x)\n%z = log(%y)\nreturn %z"), id="log-exp-not-exact"),
]


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_leaves_alone(text):
    assert_unchanged("canonicalize", text)


def test_fast_math_enables_inexact_rules():
    out, _ = apply("canonicalize{fast-math=true}", fn("%y = add(%x, 0.0)\nreturn %y"))
    assert out.entry_function.results == out.entry_function.params


def test_rules_record_remarks():
    _, ctx = apply("canonicalize", fn("%a = neg(%x)\n%b = neg(%a)\nreturn %b"))
    assert ctx.remarks["canonicalize"] == ["involution: neg -> parameter"]


def test_every_rule_has_algebra_and_a_golden_case():
    names = {r.name for r in RULES}
    for r in RULES:
        assert r.algebra, f"rule {r.name} needs its algebra in the docstring"
    assert len(names) == len(RULES)


@pytest.mark.parametrize(
    ("src", "dst", "exact"),
    [
        (DType.F16, DType.F32, True),
        (DType.BF16, DType.F32, True),
        (DType.F32, DType.F16, False),
        (DType.F16, DType.BF16, False),
        (DType.BF16, DType.F16, False),
        (DType.I8, DType.I32, True),
        (DType.U8, DType.I8, False),
        (DType.U8, DType.I16, True),
        (DType.I32, DType.F32, False),
        (DType.I32, DType.F64, True),
        (DType.I64, DType.F64, False),
        (DType.I16, DType.F16, False),
        (DType.I8, DType.F16, True),
        (DType.BOOL, DType.U8, True),
        (DType.I8, DType.BOOL, False),
    ],
)
def test_exactly_representable(src, dst, exact):
    assert exactly_representable(src, dst) is exact
