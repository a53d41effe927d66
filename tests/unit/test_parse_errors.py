"""Malformed graph files: each error has an exact message, a location, and a caret display.

Every case gives the message, the line and column, and the text the caret must sit on, so a
wrong column fails even when the number was mistyped in the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

from ir.diagnostics import GraphSyntaxError, GraphTypeError, TesselError
from ir.parser import parse_file, parse_module


def src(*lines: str) -> str:
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    message: str  # "{dir}" stands for the weights directory
    line: int
    col: int
    at: str  # the source text starting at the caret
    cls: type[TesselError] = GraphTypeError
    files: dict[str, Any] = field(default_factory=dict)  # weights to write first


def fn(*body: str, sig: str = "(%x: f32[2])", ret: str = "f32[2]") -> str:
    """A one-function file: the signature is line 1, `body` starts on line 2."""
    return src(f"func @main{sig} -> {ret} {{", *body, "}")


CASES = [
    # --- ops, arity and operands ---
    Case(
        "unknown-op-did-you-mean",
        fn("  %y = rleu(%x)", "  return %y"),
        "unknown op 'rleu'; did you mean 'relu'?",
        2, 8, "rleu(",
    ),
    Case(
        "unknown-op",
        fn("  %y = frobnicate(%x)", "  return %y"),
        "unknown op 'frobnicate'",
        2, 8, "frobnicate",
    ),
    Case(
        "parameter-is-not-an-op",
        fn("  %y = parameter()", "  return %y"),
        "parameters are declared in the function signature, not as ops",
        2, 8, "parameter(",
    ),
    Case(
        "constant-called-like-an-op",
        fn("  %y = constant(%x)", "  return %y"),
        "constant takes a literal value, e.g. '%c = constant 1.0 : f32[]'",
        2, 8, "constant(",
    ),
    Case(
        "literal-for-other-op",
        fn("  %y = neg 1.0 : f32[2]", "  return %y"),
        "only 'constant' takes a literal value, not 'neg'",
        2, 8, "neg 1.0",
    ),
    Case(
        "arity-binary-with-one",
        fn("  %y = add(%x)", "  return %y"),
        "add: takes 2 operands, got 1",
        2, 8, "add(",
    ),
    Case(
        "arity-unary-with-two",
        fn("  %y = neg(%x, %x)", "  return %y"),
        "neg: takes 1 operand, got 2",
        2, 8, "neg(",
    ),
    Case(
        "arity-variadic-with-none",
        fn("  %y = concatenate() {axis = 0}", "  return %y"),
        "concatenate: needs at least one operand",
        2, 8, "concatenate",
    ),
    Case(
        "arity-matmul",
        fn("  %y = matmul(%x, %x, %x)", "  return %y"),
        "matmul: takes 2 operands, got 3",
        2, 8, "matmul",
    ),
    Case(
        "matmul-with-dimension-numbers",
        fn("  %y = matmul(%x, %x) {lhs_contract = [0]}", "  return %y", sig="(%x: f32[2,2])",
           ret="f32[2,2]"),
        "matmul: sets its own dimension numbers; use dot_general to give lhs_contract",
        2, 39, "[0]",
    ),
    Case(
        "operand-dtype",
        fn("  %y = exp(%x)", "  return %y", sig="(%x: i32[2])", ret="i32[2]"),
        "exp: needs a floating-point or complex type, got i32[2]",
        2, 12, "%x)",
    ),
    Case(
        "select-predicate-not-bool",
        fn("  %y = select(%p, %x, %x)", "  return %y", sig="(%p: f32[2], %x: f32[2])"),
        "select: predicate must be bool, got f32[2]",
        2, 15, "%p,",
    ),
    Case(
        "number-operands-only",
        fn("  %y = add(1.0, 2.0)", "  return %y", ret="f32[]"),
        "add: cannot tell the type of this literal; make an operand a value",
        2, 12, "1.0,",
    ),
    Case(
        "number-operand-of-the-wrong-kind",
        fn("  %y = add(%i, 1.5)", "  return %y", sig="(%i: i32[2])", ret="i32[2]"),
        "i32 constants take integers, got 1.5",
        2, 16, "1.5)",
    ),
    # --- values: undefined, order, redefinition, cycles ---
    Case(
        "undefined-value",
        fn("  %y = neg(%z)", "  return %y"),
        "use of undefined value %z",
        2, 12, "%z)",
    ),
    Case(
        "undefined-value-did-you-mean",
        fn("  %y = neg(%x2)", "  return %y", sig="(%x1: f32[2])"),
        "use of undefined value %x2; did you mean %x1?",
        2, 12, "%x2",
    ),
    Case(
        "undefined-in-return",
        fn("  %y = neg(%x)", "  return %q"),
        "use of undefined value %q",
        3, 10, "%q",
    ),
    Case(
        "use-before-definition",
        fn("  %y = neg(%z)", "  %z = neg(%x)", "  return %y"),
        "%z is used before its definition (at line 3)",
        2, 12, "%z)",
    ),
    Case(
        "cycle-of-two",
        fn("  %a = add(%x, %b)", "  %b = neg(%a)", "  return %b"),
        "cycle: %a uses %b uses %a",
        2, 16, "%b)",
    ),
    Case(
        "cycle-self",
        fn("  %a = add(%x, %a)", "  return %a"),
        "cycle: %a uses %a",
        2, 16, "%a)",
    ),
    Case(
        "cycle-reported-at-its-earliest-statement",
        fn(
            "  %u = neg(%x)",
            "  %c = add(%u, %e)",
            "  %d = neg(%c)",
            "  %e = neg(%d)",
            "  return %e",
        ),
        "cycle: %c uses %e uses %d uses %c",
        3, 16, "%e)",
    ),
    Case(
        "redefinition",
        fn("  %y = neg(%x)", "  %y = abs(%x)", "  return %y"),
        "redefinition of %y (first defined at line 2)",
        3, 3, "%y = abs",
    ),
    Case(
        "redefinition-of-parameter",
        fn("  %x = neg(%x)", "  return %x"),
        "redefinition of %x (first defined at line 1)",
        2, 3, "%x = neg",
    ),
    Case(
        "parameter-name-not-an-identifier",
        fn("  return %0", sig="(%0: f32[2])"),
        "parameter name %0 must start with a letter or '_' (arguments are passed by name)",
        1, 12, "%0:",
    ),
    # --- types ---
    Case(
        "unknown-dtype-did-you-mean",
        fn("  return %x", sig="(%x: f31[2])"),
        "unknown dtype 'f31'; did you mean 'f32'?",
        1, 16, "f31[2]",
    ),
    Case(
        "unknown-dtype",
        fn("  return %x", sig="(%x: quux[2])"),
        "unknown dtype 'quux' (dtypes: f64, f32, f16, bf16, i64, i32, i16, i8, u64, u32, u16, u8, "
        "bool, c64, c128)",
        1, 16, "quux",
    ),
    Case(
        "negative-dimension",
        fn("  return %x", sig="(%x: f32[-2])"),
        "dimension -2 is negative",
        1, 20, "-2]",
    ),
    Case(
        "binary-shape-mismatch",
        fn("  %z = add(%x, %y)", "  return %z", sig="(%x: f32[2], %y: f32[3])"),
        "add: shapes [2], [3] cannot be broadcast together",
        2, 8, "add(",
    ),
    Case(
        "binary-dtype-mismatch",
        fn("  %z = add(%x, %y)", "  return %z", sig="(%x: f32[2], %y: i32[2])"),
        "add: operand dtypes differ: f32[2] vs i32[2]",
        2, 16, "%y)",
    ),
    Case(
        "declared-type-mismatch",
        fn("  %y = neg(%x) : f32[3]", "  return %y"),
        "declared type f32[3] does not match the type f32[2] that neg produces",
        2, 18, "f32[3]",
    ),
    Case(
        "return-type-mismatch",
        fn("  %y = neg(%x)", "  return %y", ret="f32[3]"),
        "@main declares results (f32[3]) but returns (f32[2])",
        1, 27, "f32[3] {",
    ),
    Case(
        "return-count-mismatch",
        fn("  return %x", ret="(f32[2], f32[2])"),
        "@main declares results (f32[2], f32[2]) but returns (f32[2])",
        1, 27, "(f32[2], f32[2])",
    ),
    # --- attributes ---
    Case(
        "attribute-name-did-you-mean",
        fn("  %y = softmax(%x) {axs = 0}", "  return %y"),
        "softmax: unknown attribute 'axs'; did you mean 'axis'? (attributes of softmax: axis)",
        2, 21, "axs =",
    ),
    Case(
        "attribute-on-op-without-attributes",
        fn("  %y = neg(%x) {axis = 0}", "  return %y"),
        "neg: unknown attribute 'axis' (attributes of neg: none)",
        2, 17, "axis = 0",
    ),
    Case(
        "attribute-given-twice",
        fn("  %y = softmax(%x) {axis = 0, axis = 0}", "  return %y"),
        "attribute 'axis' is given twice",
        2, 31, "axis = 0}",
    ),
    Case(
        "attribute-type-list-for-int",
        fn("  %y = softmax(%x) {axis = [0]}", "  return %y"),
        "softmax: attribute 'axis': expected an int, got [0]",
        2, 28, "[0]",
    ),
    Case(
        "attribute-type-int-for-list",
        fn("  %y = reduce(%x) {kind = sum, axes = 0}", "  return %y", ret="f32[]"),
        "reduce: attribute 'axes': expected a list of ints, got 0",
        2, 39, "0}",
    ),
    Case(
        "attribute-type-bad-enum",
        fn("  %y = reduce(%x) {kind = avg, axes = [0]}", "  return %y", ret="f32[]"),
        "reduce: attribute 'kind': expected one of sum, max, min, prod, got 'avg'",
        2, 27, "avg",
    ),
    Case(
        "attribute-type-bad-dtype",
        fn("  %y = convert(%x) {dtype = f23}", "  return %y"),
        "convert: attribute 'dtype': expected a dtype (f64, f32, f16, bf16, i64, i32, i16, i8, "
        "u64, u32, u16, u8, bool, c64, c128), got 'f23'",
        2, 29, "f23}",
    ),
    Case(
        "missing-required-attribute",
        fn("  %y = reduce(%x) {axes = [0]}", "  return %y", ret="f32[]"),
        "reduce: missing required attribute 'kind': expected one of sum, max, min, prod",
        2, 8, "reduce(",
    ),
    Case(
        "bad-axis-in-axes",
        fn("  %y = reduce(%x) {kind = sum, axes = [2]}", "  return %y", sig="(%x: f32[2,3])"),
        "reduce: axis 2 in 'axes' is out of range for rank 2",
        2, 39, "[2]",
    ),
    Case(
        "bad-axis-default",
        fn("  %y = softmax(%x)", "  return %y", sig="(%x: f32[])", ret="f32[]"),
        "softmax: axis -1 is out of range for rank 0",
        2, 8, "softmax",
    ),
    Case(
        "repeated-axis",
        fn("  %y = reduce(%x) {kind = max, axes = [0, -1]}", "  return %y", ret="f32[]"),
        "reduce: axes [0, -1] repeat an axis",
        2, 39, "[0, -1]",
    ),
    Case(
        "bad-permutation",
        fn("  %y = transpose(%x) {perm = [0, 0]}", "  return %y", sig="(%x: f32[2,3])"),
        "transpose: perm [0, 0] is not a permutation of the 2 axes of f32[2,3]",
        2, 30, "[0, 0]",
    ),
    Case(
        "reverse-dim-out-of-range",
        fn("  %y = reverse(%x) {dims = [1]}", "  return %y"),
        "reverse: axis 1 in 'dims' is out of range for rank 1",
        2, 28, "[1]",
    ),
    Case(
        "reverse-repeated-dim",
        fn("  %y = reverse(%x) {dims = [0, -1]}", "  return %y"),
        "reverse: dims [0, -1] repeat an axis",
        2, 28, "[0, -1]",
    ),
    Case(
        "bad-reshape-size",
        fn("  %y = reshape(%x) {shape = [5]}", "  return %y", sig="(%x: f32[2,3])"),
        "reshape: cannot reshape f32[2,3] (6 elements) to [5]",
        2, 29, "[5]",
    ),
    Case(
        "bad-reshape-two-wildcards",
        fn("  %y = reshape(%x) {shape = [-1, -1]}", "  return %y"),
        "reshape: 'shape' may contain at most one -1, got [-1, -1]",
        2, 29, "[-1, -1]",
    ),
    Case(
        "bad-slice-limit",
        fn("  %y = slice(%x) {start = [2], limit = [6]}", "  return %y", sig="(%x: f32[4])"),
        "slice: limit 6 on axis 0 must be between start 2 and size 4",
        2, 40, "[6]",
    ),
    Case(
        "bad-slice-start",
        fn("  %y = slice(%x) {start = [5], limit = [5]}", "  return %y", sig="(%x: f32[4])"),
        "slice: start 5 on axis 0 is outside 0..4",
        2, 27, "[5], limit",
    ),
    Case(
        "bad-slice-rank",
        fn("  %y = slice(%x) {start = [0, 0], limit = [1]}", "  return %y"),
        "slice: 'start' has 2 entries but the operand has rank 1",
        2, 27, "[0, 0]",
    ),
    Case(
        "concatenate-other-axis-differs",
        fn(
            "  %z = concatenate(%x, %y) {axis = 0}",
            "  return %z",
            sig="(%x: f32[2,3], %y: f32[3,4])",
            ret="f32[5,3]",
        ),
        "concatenate: operand 1 (f32[3,4]) differs from operand 0 (f32[2,3]) on axis 1; "
        "only the concatenation axis 0 may differ",
        2, 24, "%y)",
    ),
    Case(
        "concatenate-rank-differs",
        fn(
            "  %z = concatenate(%x, %y) {axis = 0}",
            "  return %z",
            sig="(%x: f32[2], %y: f32[2,1])",
        ),
        "concatenate: operand 1 (f32[2,1]) has another rank than operand 0 (f32[2])",
        2, 24, "%y)",
    ),
    Case(
        "dot-general-contracting-size",
        fn(
            "  %z = dot_general(%x, %y) {lhs_contract = [1], rhs_contract = [0]}",
            "  return %z",
            sig="(%x: f32[2,3], %y: f32[4,5])",
            ret="f32[2,5]",
        ),
        "dot_general: contracting dimension sizes differ: lhs dim 1 has 3, rhs dim 0 has 4 "
        "(f32[2,3] x f32[4,5])",
        2, 8, "dot_general",
    ),
    Case(
        "matmul-inner-size",
        fn("  %z = matmul(%x, %y)", "  return %z", sig="(%x: f32[2,3], %y: f32[4,5])"),
        "matmul: cannot multiply f32[2,3] by f32[4,5]: lhs has 3 columns but rhs has 4 rows",
        2, 8, "matmul",
    ),
    Case(
        "dot-general-out-dtype-kind",
        fn(
            "  %z = dot_general(%x, %x) {lhs_contract = [0], rhs_contract = [0], out_dtype = i32}",
            "  return %z",
            ret="f32[]",
        ),
        "dot_general: out_dtype i32 must be a floating-point type, like the operands (f32[2])",
        2, 81, "i32}",
    ),
    Case(
        "conv2d-channels",
        fn(
            "  %z = conv2d(%x, %w)",
            "  return %z",
            sig="(%x: f32[1,8,8,3], %w: f32[3,3,4,8])",
            ret="f32[1,6,6,8]",
        ),
        "conv2d: input has 3 channels but the filter expects 4 "
        "(input f32[1,8,8,3], filter f32[3,3,4,8])",
        2, 19, "%w)",
    ),
    Case(
        "conv2d-channels-with-groups",
        fn(
            "  %z = conv2d(%x, %w) {groups = 2}",
            "  return %z",
            sig="(%x: f32[1,8,8,4], %w: f32[3,3,1,8])",
            ret="f32[1,6,6,8]",
        ),
        "conv2d: input has 4 channels but the filter expects 1 x 2 groups = 2 "
        "(input f32[1,8,8,4], filter f32[3,3,1,8])",
        2, 19, "%w)",
    ),
    Case(
        "conv2d-zero-stride-with-same-padding",
        fn(
            "  %z = conv2d(%x, %w) {strides = [0, 1], padding = same}",
            "  return %z",
            sig="(%x: f32[1,4,4,2], %w: f32[1,1,2,2])",
            ret="f32[1,4,4,2]",
        ),
        "conv2d: 'strides' must be two positive ints, got [0, 1]",
        2, 34, "[0, 1]",
    ),
    Case(
        "pool-window-zero",
        fn(
            "  %z = max_pool(%x) {window = [0, 2], padding = same}",
            "  return %z",
            sig="(%x: f32[1,4,4,2])",
            ret="f32[1,4,4,2]",
        ),
        "max_pool: 'window' must be two positive ints, got [0, 2]",
        2, 31, "[0, 2]",
    ),
    Case(
        "pad-value-type",
        fn(
            "  %y = pad(%x, %v) {low = [1], high = [1]}",
            "  return %y",
            sig="(%x: f32[2], %v: i32[])",
        ),
        "pad: padding value must be a scalar of type f32[], got i32[]",
        2, 16, "%v)",
    ),
    Case(
        "fusion-body-marked-entry",
        fn(
            "  %y = fusion(%x) {body = entry func @f(%p: f32[2]) -> f32[2] {",
            "    return %p",
            "  }}",
            "  return %y",
        ),
        "a nested function cannot be marked entry",
        2, 27, "entry func @f",
    ),
    Case(
        "fusion-operands-differ-from-body-parameters",
        fn(
            "  %y = fusion(%x) {body = func @f(%p: f32[2], %q: f32[2]) -> f32[2] {",
            "    %s = add(%p, %q)",
            "    return %s",
            "  }}",
            "  return %y",
        ),
        "fusion: operands (f32[2]) do not match the body's parameters (f32[2], f32[2])",
        2, 8, "fusion(",
    ),
    # --- syntax ---
    Case(
        "unterminated-block",
        src("func @main(%x: f32[2]) -> f32[2] {", "  %y = neg(%x)", "  return %y"),
        "unexpected end of file: unterminated block (missing '}')",
        3, 12, "",
        GraphSyntaxError,
    ),
    Case(
        "unterminated-block-before-next-function",
        src(
            "func @f(%x: f32[2]) -> f32[2] {",
            "  return %x",
            "func @main(%x: f32[2]) -> f32[2] {",
            "  return %x",
            "}",
        ),
        "unexpected 'func': the previous function is missing its closing '}'",
        3, 1, "func @main",
        GraphSyntaxError,
    ),
    Case(
        "missing-return",
        fn("  %y = neg(%x)"),
        "missing 'return': a function body ends with 'return %value'",
        3, 1, "}",
        GraphSyntaxError,
    ),
    Case(
        "return-without-value",
        fn("  return"),
        "unexpected '}'; expected a value name like %x",
        3, 1, "}",
        GraphSyntaxError,
    ),
    Case(
        "stray-token",
        fn("  %y = neg(%x) )", "  return %y"),
        "unexpected ')'; expected ':' or 'return' or '{' or a value name like %x",
        2, 16, ")",
        GraphSyntaxError,
    ),
    Case(
        "stray-character",
        fn("  %y = neg(%x) $", "  return %y"),
        "unexpected character '$'",
        2, 16, "$",
        GraphSyntaxError,
    ),
    # --- literals ---
    Case(
        "literal-element-count",
        fn("  %c = constant [1.0, 2.0] : f32[3]", "  return %c", sig="()", ret="f32[3]"),
        "literal has shape [2] but the declared type is f32[3]",
        2, 17, "[1.0, 2.0]",
    ),
    Case(
        "literal-ragged",
        fn("  %c = constant [[1.0, 2.0], [3.0]] : f32[2,2]", "  return %c", sig="()"),
        "ragged literal: this entry is a list of shape [1] but the first entry of its list "
        "is a list of shape [2]",
        2, 30, "[3.0]",
    ),
    Case(
        "literal-number-among-lists",
        fn("  %c = constant [[1.0], 2.0] : f32[2,1]", "  return %c", sig="()"),
        "ragged literal: this entry is a number but the first entry of its list "
        "is a list of shape [1]",
        2, 25, "2.0]",
    ),
    Case(
        "literal-empty-for-nonempty-type",
        fn("  %c = constant [] : f32[2]", "  return %c", sig="()"),
        "literal has shape [0] but the declared type is f32[2]",
        2, 17, "[]",
    ),
    Case(
        "literal-float-for-int",
        fn("  %c = constant [1, 2.5] : i32[2]", "  return %c", sig="()", ret="i32[2]"),
        "i32 constants take integers, got 2.5",
        2, 21, "2.5]",
    ),
    Case(
        "literal-int-out-of-range",
        fn("  %c = constant [1, 300] : i8[2]", "  return %c", sig="()", ret="i8[2]"),
        "300 does not fit in i8 (-128..127)",
        2, 21, "300]",
    ),
    Case(
        "literal-negative-unsigned",
        fn("  %c = constant -1 : u8[2]", "  return %c", sig="()", ret="u8[2]"),
        "-1 does not fit in u8 (0..255)",
        2, 17, "-1 ",
    ),
    Case(
        "literal-float-overflow",
        fn("  %c = constant [1.0, 1e10] : f16[2]", "  return %c", sig="()", ret="f16[2]"),
        "1e10 does not fit in f16 (largest finite value 65504)",
        2, 23, "1e10",
    ),
    Case(
        "literal-not-a-number",
        fn("  %c = constant [1.0, foo] : f32[2]", "  return %c", sig="()"),
        "'foo' is not a number (expected a number, inf, nan, true or false)",
        2, 23, "foo]",
    ),
    Case(
        "literal-negated-bool",
        fn("  %c = constant -true : bool[]", "  return %c", sig="()", ret="bool[]"),
        "'-true' is not a number (expected a number, inf, nan, true or false)",
        2, 17, "-true",
    ),
    Case(
        "literal-int-for-bool",
        fn("  %c = constant [true, 0] : bool[2]", "  return %c", sig="()", ret="bool[2]"),
        "bool constants take true or false, got 0",
        2, 24, "0]",
    ),
    Case(
        "literal-bool-for-float",
        fn("  %c = constant true : f32[]", "  return %c", sig="()", ret="f32[]"),
        "f32 constants take numbers, got true",
        2, 17, "true",
    ),
    Case(
        "constant-without-type",
        fn("  %c = constant 1.0", "  return %c", sig="()", ret="f32[]"),
        "a constant needs its type, e.g. ': f32[2,3]'",
        2, 17, "1.0",
    ),
    # --- weights ---
    Case(
        "weights-file-missing",
        fn('  %w = constant "nope.npz"["w"] : f32[2]', "  return %w", sig="()"),
        "weights file 'nope.npz' not found (looked for {dir}/nope.npz)",
        2, 17, '"nope.npz"',
    ),
    Case(
        "weights-key-missing",
        fn('  %w = constant "w.npz"["c"] : f32[2]', "  return %w", sig="()"),
        "'w.npz' has no array 'c' (it has: a, b)",
        2, 25, '"c"]',
        files={"w.npz": {"a": np.zeros(3, np.float32), "b": np.zeros(2, np.int32)}},
    ),
    Case(
        "weights-shape-mismatch",
        fn('  %w = constant "w.npz"["a"] : f32[2]', "  return %w", sig="()"),
        'weights "w.npz"["a"] hold f32[3], but the declared type is f32[2]',
        2, 17, '"w.npz"',
        files={"w.npz": {"a": np.zeros(3, np.float32), "b": np.zeros(2, np.int32)}},
    ),
    Case(
        "weights-dtype-mismatch",
        fn('  %w = constant "w.npz"["b"] : f32[2]', "  return %w", sig="()"),
        'weights "w.npz"["b"] hold i32[2], but the declared type is f32[2]',
        2, 17, '"w.npz"',
        files={"w.npz": {"a": np.zeros(3, np.float32), "b": np.zeros(2, np.int32)}},
    ),
    Case(
        "weights-dtype-unknown-to-tessel",
        fn('  %w = constant "w.npy" : f32[2]', "  return %w", sig="()"),
        'weights "w.npy" hold timedelta64[s][2], but the declared type is f32[2]',
        2, 17, '"w.npy"',
        files={"w.npy": np.zeros(2, "timedelta64[s]")},
    ),
    Case(
        "weights-npz-without-key",
        fn('  %w = constant "w.npz" : f32[2]', "  return %w", sig="()"),
        '\'w.npz\' is an .npz archive: name the array, e.g. "w.npz"["w"]',
        2, 17, '"w.npz"',
        files={"w.npz": {"a": np.zeros(2, np.float32)}},
    ),
    Case(
        "weights-npy-with-key",
        fn('  %w = constant "w.npy"["a"] : f32[2]', "  return %w", sig="()"),
        "'w.npy' is an .npy file and holds a single array; drop the key",
        2, 25, '"a"]',
        files={"w.npy": np.zeros(2, np.float32)},
    ),
    Case(
        "weights-wrong-extension",
        fn('  %w = constant "w.txt" : f32[2]', "  return %w", sig="()"),
        "weights file 'w.txt' must be .npy or .npz",
        2, 17, '"w.txt"',
        files={"w.txt": "0 0"},
    ),
    Case(
        "weights-inside-list",
        fn('  %w = constant ["w.npy"] : f32[1]', "  return %w", sig="()", ret="f32[1]"),
        "a weights reference cannot appear inside a list",
        2, 18, '"w.npy"]',
        files={"w.npy": np.zeros(1, np.float32)},
    ),
    # --- module level ---
    Case(
        "duplicate-function",
        src(
            "func @f(%x: f32[2]) -> f32[2] {",
            "  return %x",
            "}",
            "func @f(%x: f32[2]) -> f32[2] {",
            "  return %x",
            "}",
        ),
        "function @f is already defined at line 1",
        4, 6, "@f(",
    ),
    Case(
        "entry-ambiguous",
        src(
            "func @f(%x: f32[2]) -> f32[2] {",
            "  return %x",
            "}",
            "func @g(%x: f32[2]) -> f32[2] {",
            "  return %x",
            "}",
        ),
        "no entry function among @f, @g: mark one with 'entry func @name' or name it @main",
        1, 1, "func @f",
        GraphSyntaxError,
    ),
    Case(
        "entry-twice",
        src(
            "entry func @f(%x: f32[2]) -> f32[2] {",
            "  return %x",
            "}",
            "entry func @g(%x: f32[2]) -> f32[2] {",
            "  return %x",
            "}",
        ),
        "@g is marked entry, but so is @f (line 1); a module has one entry function",
        4, 1, "entry func @g",
    ),
    Case(
        "comment-only-file",
        src("# nothing here"),
        "the file defines no function",
        1, 1, "# nothing",
        GraphSyntaxError,
    ),
]  # fmt: skip


def _write_files(directory: Path, files: dict[str, Any]) -> None:
    for name, content in files.items():
        path = directory / name
        if isinstance(content, dict):
            np.savez(path, **content)
        elif isinstance(content, np.ndarray):
            np.save(path, content)
        else:
            path.write_text(content)


def _parse_error(text: str, base_dir: Path) -> TesselError:
    with pytest.raises(TesselError) as info:
        parse_module(text, "t.graph", base_dir)
    return info.value


def _where(err: TesselError) -> tuple[int, int]:
    assert err.loc is not None
    return err.loc.line, err.loc.col


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_error(case: Case, tmp_path: Path) -> None:
    _write_files(tmp_path, case.files)
    err = _parse_error(case.text, tmp_path)
    message = case.message.replace("{dir}", str(tmp_path))
    assert type(err) is case.cls
    assert err.message == message
    assert err.loc is not None
    assert (err.loc.file, err.loc.line, err.loc.col) == ("t.graph", case.line, case.col)
    line_text = case.text.splitlines()[case.line - 1]
    assert line_text[case.col - 1 :].startswith(case.at), "the caret is not on the offender"
    caret = " " * (case.col - 1) + "^"
    head = f"t.graph:{case.line}:{case.col}: error: {message}"
    assert err.format() == f"{head}\n  {line_text}\n  {caret}"
    assert str(err) == err.format()


def test_empty_file_has_no_source_line_to_show(tmp_path: Path) -> None:
    err = _parse_error("", tmp_path)
    assert isinstance(err, GraphSyntaxError)
    assert _where(err) == (1, 1)
    assert err.format() == "t.graph:1:1: error: the file defines no function"


def test_caret_under_tab_indented_token(tmp_path: Path) -> None:
    # Lark counts a tab as one column; the display expands it to one space so the caret lines up.
    text = "func @main(%x: f32[2]) -> f32[2] {\n\t%y = rleu(%x)\n\treturn %y\n}\n"
    err = _parse_error(text, tmp_path)
    assert _where(err) == (2, 7)
    assert err.format().splitlines()[1:] == ["   %y = rleu(%x)", "        ^"]


def test_parse_file_names_the_file_and_reads_weights_next_to_it(tmp_path: Path) -> None:
    graph = tmp_path / "model.graph"
    graph.write_text(fn('  %w = constant "w.npz"["w"] : f32[2]', "  return %w", sig="()"))
    with pytest.raises(GraphTypeError) as missing:
        parse_file(graph)
    assert missing.value.format().startswith(f"{graph}:2:17: error: weights file 'w.npz' not found")
    np.savez(tmp_path / "w.npz", w=np.array([1.5, -2.0], np.float32))
    module = parse_file(graph)
    value = module.entry_function.body[0].attrs["value"]
    assert value.array.tolist() == [1.5, -2.0]
    assert value.source is not None
    assert value.source.path == tmp_path / "w.npz"


def test_parse_file_reports_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.graph"
    with pytest.raises(TesselError, match=r"^error: cannot read .*absent\.graph"):
        parse_file(missing)


def test_corrupt_weights_file(tmp_path: Path) -> None:
    (tmp_path / "w.npy").write_bytes(b"not an npy file")
    text = fn('  %w = constant "w.npy" : f32[2]', "  return %w", sig="()")
    err = _parse_error(text, tmp_path)
    assert err.message.startswith("cannot read weights file 'w.npy': ")
    assert _where(err) == (2, 17)


def test_bf16_weights_saved_by_numpy_read_back(tmp_path: Path) -> None:
    # np.save writes bfloat16 as raw 2-byte records; the declared type says how to read them.
    data = np.array([1.5, -2.0, 0.1], dtype=ml_dtypes.bfloat16)
    np.save(tmp_path / "w.npy", data)
    text = fn('  %w = constant "w.npy" : bf16[3]', "  return %w", sig="()", ret="bf16[3]")
    module = parse_module(text, "t.graph", tmp_path)
    array = module.entry_function.body[0].attrs["value"].array
    assert array.dtype == ml_dtypes.bfloat16
    assert array.tobytes() == data.tobytes()
