"""expand-complex: complex values become pairs of reals that compute the reference's values."""

from __future__ import annotations

import numpy as np
import pytest
from passcheck import apply, assert_golden, assert_same_numbers, assert_unchanged

from ir.ops import Op
from ir.parser import parse_module
from passes.complex import expanded
from runtime.interp import run_module


def test_product_and_magnitude_golden():
    assert_golden(
        "expand-complex",
        """func @main(%x: c64[3], %y: c64[3]) -> (c64[3], f32[3]) {
          %m = mul(%x, %y) : c64[3]
          %a = abs(%m) : f32[3]
          return %m, %a
        }""",
        """func @main(%x: c64[3], %y: c64[3]) -> (c64[3], f32[3]) {
          %0 = real(%x) : f32[3]
          %1 = imag(%x) : f32[3]
          %2 = real(%y) : f32[3]
          %3 = imag(%y) : f32[3]
          %4 = mul(%0, %2) : f32[3]
          %5 = mul(%1, %3) : f32[3]
          %6 = sub(%4, %5) : f32[3]
          %7 = mul(%0, %3) : f32[3]
          %8 = mul(%1, %2) : f32[3]
          %9 = add(%7, %8) : f32[3]
          %a = hypot(%6, %9) : f32[3]
          %m = complex(%6, %9) : c64[3]
          return %m, %a
        }""",
    )


LOOP = """func @main(%z: c128[4], %c: c128[4]) -> c128[4] {
  %n = constant 0 : i32
  %w = while(%n, %z, %c) {cond = func @cond(%i: i32, %z: c128[4], %c: c128[4]) -> bool {
    %k = constant 5 : i32
    %go = lt(%i, %k) : bool
    return %go
  }, body = func @body(%i: i32, %z: c128[4], %c: c128[4]) -> (i32, c128[4], c128[4]) {
    %one = constant 1 : i32
    %j = add(%i, %one) : i32
    %zz = mul(%z, %z) : c128[4]
    %next = add(%zz, %c) : c128[4]
    return %j, %next, %c
  }} : (i32, c128[4], c128[4])
  %out = get(%w) {index = 1} : c128[4]
  return %out
}
"""


def test_a_loop_carries_each_complex_value_as_two():
    module = parse_module(LOOP)
    out, _ = apply("expand-complex", module)
    loop = next(n for n in out.entry_function.body if n.op is Op.WHILE)
    body = loop.attrs["body"]
    assert [str(p.type) for p in body.params] == ["i32[]", *["f64[4]"] * 4]
    assert [p.name for p in body.params[1:]] == ["z.re", "z.im", "c.re", "c.im"]
    assert expanded(out.entry_function)
    assert_same_numbers(module, out)


# z = z*z + c five times when z[0] is real, else z + c once: a counted loop and a branch
FOR_AND_COND = """func @main(%z: c64[4], %c: c64[4]) -> (c64[4], f32[]) {
  %first = slice(%z) {start = [0], limit = [1]} : c64[1]
  %im = imag(%first) : f32[1]
  %im0 = reshape(%im) {shape = []} : f32[]
  %real = eq(%im0, 0.0) : bool
  %b = cond(%real, %z, %c) {true_branch = func @t(%z: c64[4], %c: c64[4]) -> (c64[4], f32[]) {
    %lo = constant 0 : i32
    %hi = constant 5 : i32
    %w = for(%lo, %hi, %z, %c) {
      body = func @body(%i: i32, %z: c64[4], %c: c64[4]) -> (c64[4], c64[4]) {
      %zz = mul(%z, %z) : c64[4]
      %next = add(%zz, %c) : c64[4]
      return %next, %c
    }} : (c64[4], c64[4])
    %out = get(%w) {index = 0} : c64[4]
    %one = constant 1.0 : f32
    return %out, %one
  }, false_branch = func @f(%z: c64[4], %c: c64[4]) -> (c64[4], f32[]) {
    %s = add(%z, %c) : c64[4]
    %zero = constant 0.0 : f32
    return %s, %zero
  }} : (c64[4], f32[])
  %r = get(%b) {index = 0} : c64[4]
  %taken = get(%b) {index = 1} : f32[]
  return %r, %taken
}
"""


def test_a_branch_and_a_counted_loop_take_each_complex_value_as_two():
    module = parse_module(FOR_AND_COND)
    out, _ = apply("expand-complex", module)
    branch = next(n for n in out.entry_function.body if n.op is Op.COND)
    side = branch.attrs["true_branch"]
    assert [str(t) for t in branch.type.elements] == ["f32[4]", "f32[4]", "f32[]"]
    loop = next(n for n in side.body if n.op is Op.FOR)
    assert [str(p.type) for p in loop.attrs["body"].params] == ["i32[]", *["f32[4]"] * 4]
    assert expanded(out.entry_function)
    for real in (True, False):
        z = np.array([0.5, 0.1 + 0.2j, -0.3j, 0.25 - 0.1j], np.complex64)
        z[0] += 0 if real else 0.5j
        c = np.full(4, 0.1 - 0.05j, np.complex64)
        want = run_module(module, [z, c])
        assert float(want[1]) == real
        for got, w in zip(run_module(out, [z, c]), want, strict=True):
            np.testing.assert_allclose(got, w, rtol=1e-5)


CASES = [
    ("c64[2,3]", "add(%x, %y)"),
    ("c128[5]", "sub(%x, %y)"),
    ("c64[0,3]", "mul(%x, %y)"),
    ("c128[7]", "div(%x, %y)"),
    ("c64[7]", "div(%x, %y)"),
    ("c64[3]", "neg(%x)"),
    ("c128[4]", "exp(%x)"),
    ("c64[4]", "log(%x)"),
    ("c128[9]", "sqrt(%x)"),
    ("c64[2,2]", "eq(%x, %y)"),
    ("c64[2,2]", "ne(%x, %x)"),
    ("c64[3,4]", "reduce(%x) {kind = sum, axes = [1]}"),
    ("c64[3,4]", "transpose(%x) {perm = [1, 0]}"),
    ("c128[3,4]", "slice(%x) {start = [1, 0], limit = [3, 4], stride = [1, 2]}"),
    ("c64[3]", "concatenate(%x, %y) {axis = 0}"),
    ("c64[2,3]", "dot_general(%x, %y) {lhs_contract = [1], rhs_contract = [1]}"),
    ("c128[1,5]", "dot_general(%x, %y) {lhs_contract = [0, 1], rhs_contract = [0, 1]}"),
    ("c64[3]", "dot_general(%x, %y) {lhs_contract = [], rhs_contract = []}"),
    ("c64[3]", "convert(%x) {dtype = c128}"),
    ("f32[3]", "convert(%x) {dtype = c64}"),
    ("f64[2]", "complex(%x, %y)"),
]


@pytest.mark.parametrize(("t", "expr"), CASES, ids=[f"{t}-{e.split('(')[0]}" for t, e in CASES])
def test_expansion_computes_the_reference_values(t: str, expr: str):
    module = parse_module(f"func @main(%x: {t}, %y: {t}) {{\n  %r = {expr}\n  return %r\n}}\n")
    out, _ = apply("expand-complex", module)
    assert expanded(out.entry_function)
    assert_same_numbers(module, out, rtol=1e-5)


def test_special_divisors_follow_numpy():
    """Division by zero, by infinities and by NaN parts, as NumPy's algorithm gives them."""
    text = """func @main(%x: c128[6], %y: c128[6]) -> c128[6] {
      %q = div(%x, %y) : c128[6]
      return %q
    }"""
    module = parse_module(text)
    out, _ = apply("expand-complex", module)
    x = np.array([1 + 1j, -2 + 0j, 0j, 1 + 2j, 3 - 1j, 1e300 + 1e300j])
    y = np.array([0j, 0j, 0j, complex(np.inf, 1), complex(np.nan, 0), 1e-300 + 1e-300j])
    with np.errstate(all="ignore"):
        want = x / y
    (got,) = run_module(out, [x, y])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got.real), np.signbit(want.real))


def test_a_real_function_is_unchanged():
    assert_unchanged(
        "expand-complex",
        "func @main(%x: f32[3]) -> f32[3] {\n  %y = exp(%x) : f32[3]\n  return %y\n}\n",
    )


def test_a_fusion_on_complex_values_is_expanded_as_its_ops():
    """A graph file may hold a fusion over complex values (the fuzzer's find): its ops are
    inlined and expanded, and one that only passes a complex operand by is expanded too."""
    module = parse_module(
        """func @main(%x: c64[3], %w: f32[2]) -> (c64[3], f32[2]) {
          %r = fusion(%x) {body = func @fusion(%p: c64[3]) -> c64[3] {
            %n = neg(%p) : c64[3]
            return %n
          }} : c64[3]
          %s = fusion(%x, %w) {body = func @fusion(%b: c64[3], %v: f32[2]) -> f32[2] {
            return %v
          }} : f32[2]
          return %r, %s
        }"""
    )
    out, _ = apply("expand-complex", module)
    assert expanded(out.entry_function)
    assert all(n.op is not Op.FUSION for n in out.entry_function.body)
    assert_same_numbers(module, out)


def test_square_roots_of_huge_parts_do_not_overflow():
    """|a| + |x| would overflow for parts near the largest float: NumPy scales them first."""
    module = parse_module("func @main(%x: c128[4]) {\n  %r = sqrt(%x)\n  return %r\n}\n")
    out, _ = apply("expand-complex", module)
    big = float(np.finfo(np.float64).max)
    x = np.array([complex(-0.0, big), complex(big, 1), complex(-big, 0.5), 3 - 4j])
    (got,) = run_module(out, [x])
    np.testing.assert_allclose(got, np.sqrt(x), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("op", ["sqrt", "log"])
def test_subnormal_parts_are_scaled_before_they_lose_digits(op: str, dtype: type) -> None:
    """(|a| + |x|) / 2 rounds to zero for the smallest subnormals, and hypot of two is a
    subnormal with few digits: both formulas scale such parts up first, as NumPy does (fuzzer
    cases: sqrt(1e-45j) came out as inf*j, log(1e-45+1e-45j) as -103.28 for -102.93)."""
    name = "c64" if dtype is np.complex64 else "c128"
    text = f"func @main(%x: {name}[8]) {{\n  %r = {op}(%x)\n  return %r\n}}\n"
    out, _ = apply("expand-complex", parse_module(text))
    part = np.finfo(dtype().real.dtype)
    tiny, normal = float(part.smallest_subnormal), float(part.smallest_normal)
    parts = [(0, tiny), (tiny, 0), (tiny, tiny), (-tiny, tiny), (-tiny, -3 * tiny)]
    parts += [(normal / 3, -tiny), (normal, tiny), (0, normal)]
    x = np.array([complex(a, b) for a, b in parts], dtype)
    want = getattr(np, op)(x)
    for module in (out, parse_module(text)):  # the expansion, and the reference it must match
        (got,) = run_module(module, [x])
        np.testing.assert_allclose(got, want, rtol=4 * float(part.eps))
