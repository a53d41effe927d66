"""fold, cse and dce: goldens, cases to leave alone, and numerical equivalence."""

from __future__ import annotations

import numpy as np
import pytest
from passcheck import apply, assert_golden, assert_unchanged

from ir.parser import parse_module


def fn(body: str, ret: str = "f32[4,3]", params: str = "%x: f32[4,3]") -> str:
    return f"func @main({params}) -> {ret} {{\n{body}\n}}\n"


def test_fold_evaluates_constant_subgraphs():
    a = np.array([1.0, 2.0, 3.0], np.float32)
    folded = ", ".join(repr(float(v)) for v in np.exp(a) + a)  # exact f32 values, any spelling
    assert_golden(
        "fold,dce",
        fn(
            "%a = constant [1.0, 2.0, 3.0] : f32[3]\n%b = exp(%a)\n%c = add(%b, %a)\n"
            "%y = add(%x, %c)\nreturn %y",
            "f32[8,3]",
            "%x: f32[8,3]",
        ),
        fn(
            f"%c = constant [{folded}] : f32[3]\n"
            "%0 = broadcast_in_dim(%c) {shape = [8, 3]} : f32[8,3]\n"
            "%y = add(%x, %0)\nreturn %y",
            "f32[8,3]",
            "%x: f32[8,3]",
        ),
    )


def test_fold_uses_reference_semantics_for_integers():
    # int division truncates toward zero and x/0 is -1: the reference interpreter's rules
    out, _ = apply(
        "fold,dce",
        fn(
            "%a = constant [7, -7, 5] : i32[3]\n%b = constant [2, 2, 0] : i32[3]\n"
            "%c = div(%a, %b)\nreturn %c",
            "i32[3]",
            "",
        ),
    )
    (node,) = out.entry_function.body
    np.testing.assert_array_equal(node.attrs["value"].array, [3, -3, -1])


def test_fold_does_not_expand_broadcasts():
    text = fn(
        "%b = constant [1.0, 2.0, 3.0] : f32[3]\n"
        "%big = broadcast_in_dim(%b) {shape = [8, 3]}\n%y = add(%x, %big)\nreturn %y",
        "f32[8,3]",
        "%x: f32[8,3]",
    )
    assert_unchanged("fold", text)


def test_fold_respects_max_elements():
    text = fn(
        "%a = constant [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]"
        " : f32[4,3]\n%b = neg(%a)\n%y = add(%x, %b)\nreturn %y"
    )
    assert_unchanged("fold{max-elements=8}", text)
    out, _ = apply("fold", text)
    assert sum(n.op.value == "neg" for n in out.entry_function.body) == 0


def test_fold_leaves_iota_and_parameters():
    text = fn("%i = iota() {shape = [4, 3], dtype = f32, dim = 1}\n%y = add(%x, %i)\nreturn %y")
    assert_unchanged("fold", text)


def test_cse_merges_identical_values():
    assert_golden(
        "cse,dce",
        fn("%a = exp(%x)\n%b = exp(%x)\n%c = add(%a, %b)\nreturn %c"),
        fn("%a = exp(%x)\n%c = add(%a, %a)\nreturn %c"),
    )


def test_cse_merges_equal_constants_by_content():
    assert_golden(
        "cse,dce",
        fn(
            "%a = constant [1.0, 2.0, 3.0] : f32[3]\n%b = constant [1.0, 2.0, 3.0] : f32[3]\n"
            "%s = add(%a, %b)\n%y = add(%x, %s)\nreturn %y"
        ),
        fn(
            "%a = constant [1.0, 2.0, 3.0] : f32[3]\n%s = add(%a, %a)\n"
            "%0 = broadcast_in_dim(%s) {shape = [4, 3]} : f32[4,3]\n%y = add(%x, %0)\nreturn %y"
        ),
    )


@pytest.mark.parametrize(
    "text",
    [
        # different attributes
        fn(
            "%a = reduce(%x) {kind = sum, axes = [0]}\n%b = reduce(%x) {kind = max, axes = [0]}\n"
            "%c = add(%a, %b)\nreturn %c",
            "f32[3]",
        ),
        # same op on different operands
        fn(
            "%a = exp(%x)\n%b = exp(%y)\n%c = add(%a, %b)\nreturn %c",
            params="%x: f32[4,3], %y: f32[4,3]",
        ),
        # -0.0 and 0.0 compare equal but are different constants
        fn(
            "%a = constant -0.0 : f32[]\n%b = constant 0.0 : f32[]\n%c = div(%a, %b)\n"
            "%d = div(%b, %b)\n%e = add(%c, %d)\n%y = add(%x, %e)\nreturn %y"
        ),
    ],
)
def test_cse_leaves_distinct_values(text):
    assert_unchanged("cse", text)


def test_dce_removes_unused_values_and_keeps_order():
    assert_golden(
        "dce",
        fn("%a = exp(%x)\n%dead = log(%a)\n%b = neg(%a)\n%dead2 = abs(%dead)\nreturn %b"),
        fn("%a = exp(%x)\n%b = neg(%a)\nreturn %b"),
    )


def test_dce_keeps_everything_live():
    assert_unchanged("dce", fn("%a = exp(%x)\n%b = neg(%a)\nreturn %b, %a", "(f32[4,3], f32[4,3])"))


def test_passes_return_the_same_module_when_nothing_changes():
    module = parse_module(fn("%a = exp(%x)\nreturn %a"))
    for pipeline in ("canonicalize", "fold", "cse", "dce", "decompose"):
        out, _ = apply(pipeline, module)
        assert out is module, pipeline
