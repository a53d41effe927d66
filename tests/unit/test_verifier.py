"""The verifier rejects broken IR with a message naming the function, the node and the problem.

Invalid functions are built directly (Node(...), .replace, object.__setattr__ on the frozen
dataclasses), bypassing the builder's checks, the way a buggy pass would produce them.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from graphgen import modules
from hypothesis import HealthCheck, given, settings

from ir.attrs import Attrs, ConstData
from ir.builder import constant, make_node, parameter
from ir.diagnostics import VerifyError
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op
from ir.parser import parse_module
from ir.types import TensorType
from ir.verify import verify_function, verify_module

F2 = TensorType((2,), DType.F32)
F23 = TensorType((2, 3), DType.F32)


def fails(fn: Function, message: str) -> VerifyError:
    with pytest.raises(VerifyError) as info:
        verify_function(fn)
    assert info.value.message == message
    return info.value


def func(params: list[Node], body: list[Node], results: list[Node]) -> Function:
    return Function("main", tuple(params), tuple(body), tuple(results))


# --- schedule and SSA ---------------------------------------------------------------------------


def test_operand_missing_from_the_schedule() -> None:
    c = constant(np.zeros(2, np.float32), name="c")
    y = make_node(Op.NEG, [c], name="y")
    fails(
        func([], [y], [y]),
        "in @main, at '%y = neg : f32[2]': operand 0 ('%c = constant : f32[2]') "
        "is not defined here",
    )


def test_operand_used_before_its_definition() -> None:
    x = parameter("x", F2)
    a = make_node(Op.NEG, [x], name="a")
    b = make_node(Op.ABS, [a])
    fails(
        func([x], [b, a], [b]),
        "in @main, at 'abs : f32[2]': operand 0 ('%a = neg : f32[2]') "
        "is used before its definition",
    )


def test_operand_from_another_function() -> None:
    other = parameter("x", F2)
    x = parameter("x", F2)
    y = make_node(Op.ADD, [x, other], name="y")
    fails(
        func([x], [y], [y]),
        "in @main, at '%y = add : f32[2]': operand 1 ('%x = parameter : f32[2]') "
        "is not defined here",
    )


def test_result_not_defined() -> None:
    x = parameter("x", F2)
    stray = make_node(Op.NEG, [x], name="stray")
    fails(
        func([x], [], [stray]),
        "in @main: result '%stray = neg : f32[2]' is not defined in the function",
    )


def test_no_results() -> None:
    x = parameter("x", F2)
    fails(func([x], [], []), "in @main: a function must return at least one value")


def test_parameter_in_body() -> None:
    x = parameter("x", F2)
    p = parameter("p", F2)
    fails(
        func([x], [p], [x]),
        "in @main, at '%p = parameter : f32[2]': parameters belong in the parameter list, "
        "not the body",
    )


def test_duplicate_node_in_schedule() -> None:
    x = parameter("x", F2)
    y = make_node(Op.NEG, [x], name="y")
    fails(
        func([x], [y, y], [y]),
        "in @main, at '%y = neg : f32[2]': the node appears twice in the schedule",
    )


def test_non_parameter_in_parameter_list() -> None:
    c = constant(np.zeros(2, np.float32), name="c")
    fails(
        func([c], [], [c]),
        "in @main, at '%c = constant : f32[2]': parameter list holds a node that is not a "
        "parameter",
    )


@pytest.mark.parametrize("name", [None, "", "0", "has space", "x"])
def test_bad_parameter_names(name: str | None) -> None:
    x = parameter("x", F2)
    p = Node(Op.PARAMETER, F2, name=name)
    shown = f"%{name} = " if name else ""
    fails(
        func([x, p], [], [x]),
        f"in @main, at '{shown}parameter : f32[2]': parameter name {name!r} is missing, "
        "invalid or repeated",
    )


def test_two_node_cycle() -> None:
    x = parameter("x", F2)
    a = make_node(Op.NEG, [x], name="a")
    b = make_node(Op.NEG, [a], name="b")
    object.__setattr__(a, "srcs", (b,))  # what a buggy in-place rewrite would do
    fails(
        func([x], [a, b], [b]),
        "in @main, at '%a = neg : f32[2]': operand cycle: '%a = neg : f32[2]' uses "
        "'%b = neg : f32[2]' uses '%a = neg : f32[2]'",
    )


def test_self_cycle() -> None:
    x = parameter("x", F2)
    a = make_node(Op.ADD, [x, x], name="a")
    object.__setattr__(a, "srcs", (x, a))
    fails(
        func([x], [a], [a]),
        "in @main, at '%a = add : f32[2]': operand cycle: '%a = add : f32[2]' uses "
        "'%a = add : f32[2]'",
    )


# --- types and attributes -----------------------------------------------------------------------


def test_type_differs_from_rule() -> None:
    x = parameter("x", F2)
    y = make_node(Op.NEG, [x], name="y").replace(type=TensorType((3,), DType.F32))
    fails(
        func([x], [y], [y]),
        "in @main, at '%y = neg : f32[3]': type is f32[3] but the neg rule gives f32[2]",
    )


def test_dtype_differs_from_rule() -> None:
    x = parameter("x", F2)
    y = make_node(Op.LT, [x, x]).replace(type=F2)
    fails(
        func([x], [y], [y]),
        "in @main, at 'lt : f32[2]': type is f32[2] but the lt rule gives bool[2]",
    )


def test_incompatible_operand_shapes() -> None:
    x = parameter("x", F2)
    z = parameter("z", TensorType((3,), DType.F32))
    y = Node(Op.ADD, F2, (x, z), name="y")
    fails(
        func([x, z], [y], [y]),
        "in @main, at '%y = add : f32[2]': operand shapes differ: f32[2] vs f32[3]",
    )


def test_wrong_operand_count() -> None:
    x = parameter("x", F2)
    y = Node(Op.ADD, F2, (x,), name="y")
    fails(func([x], [y], [y]), "in @main, at '%y = add : f32[2]': takes 2 operands, got 1")


def test_non_canonical_negative_axis() -> None:
    x = parameter("x", F23)
    s = Node(Op.REDUCE, F2, (x,), Attrs({"kind": "sum", "axes": (-1,)}), name="s")
    fails(
        func([x], [s], [s]),
        "in @main, at '%s = reduce : f32[2]': attribute 'axes' is [-1], not in canonical form [1]",
    )


def test_default_attribute_left_out() -> None:
    x = parameter("x", F23)
    s = Node(Op.SOFTMAX, F23, (x,), Attrs(), name="s")
    fails(
        func([x], [s], [s]),
        "in @main, at '%s = softmax : f32[2,3]': attribute 'axis' is missing (canonical value 1)",
    )


def test_unresolved_same_padding() -> None:
    x = parameter("x", TensorType((1, 4, 4, 1), DType.F32))
    good = make_node(Op.MAX_POOL, [x], {"window": (3, 3), "padding": "same"})
    assert good.attrs["padding"] == ((1, 1), (1, 1))
    bad = good.replace(attrs=good.attrs.replace(padding="same"))
    fails(
        func([x], [bad], [bad]),
        "in @main, at 'max_pool : f32[1,2,2,1]': attribute 'padding' is 'same', "
        "not in canonical form [[1, 1], [1, 1]]",
    )


def test_wrong_attribute_type() -> None:
    x = parameter("x", F23)
    s = Node(Op.SOFTMAX, F23, (x,), Attrs({"axis": "1"}), name="s")
    fails(
        func([x], [s], [s]),
        "in @main, at '%s = softmax : f32[2,3]': attribute 'axis': expected an int, got '1'",
    )


def test_dtype_attribute_spelled_as_string() -> None:
    x = parameter("x", F2)
    y = make_node(Op.CONVERT, [x], {"dtype": DType.I32}, name="y")
    bad = y.replace(attrs=Attrs({"dtype": "i32"}))
    fails(
        func([x], [bad], [bad]),
        "in @main, at '%y = convert : i32[2]': attribute 'dtype' is 'i32', not in canonical "
        "form i32",
    )


def test_unknown_attribute() -> None:
    x = parameter("x", F2)
    y = Node(Op.NEG, F2, (x,), Attrs({"axis": 0}), name="y")
    fails(
        func([x], [y], [y]),
        "in @main, at '%y = neg : f32[2]': unknown attribute 'axis' (attributes of neg: none)",
    )


def test_bad_axes() -> None:
    x = parameter("x", F23)
    s = Node(Op.REDUCE, F23, (x,), Attrs({"kind": "max", "axes": (5,)}))
    fails(
        func([x], [s], [s]),
        "in @main, at 'reduce : f32[2,3]': axis 5 in 'axes' is out of range for rank 2",
    )


def test_bad_permutation() -> None:
    x = parameter("x", F23)
    t = Node(Op.TRANSPOSE, F23, (x,), Attrs({"perm": (1, 1)}), name="t")
    fails(
        func([x], [t], [t]),
        "in @main, at '%t = transpose : f32[2,3]': perm [1, 1] is not a permutation of the "
        "2 axes of f32[2,3]",
    )


def test_constant_of_a_dtype_tessel_lacks() -> None:
    value = ConstData(np.zeros(2, np.clongdouble))
    c = Node(Op.CONSTANT, F2, (), Attrs({"value": value}), name="c")
    fails(
        func([], [c], [c]),
        "in @main, at '%c = constant : f32[2]': numpy dtype complex256 has no tessel equivalent",
    )


# --- locations and modules ----------------------------------------------------------------------


def test_error_points_at_the_node_in_its_graph_file() -> None:
    text = "func @main(%x: f32[2]) -> f32[2] {\n  %y = neg(%x)\n  return %y\n}\n"
    fn = parse_module(text, "m.graph").entry_function
    y = fn.body[0]
    broken = fn.replace(body=(y.replace(type=TensorType((3,), DType.F32)),))
    err = fails(
        broken.replace(results=broken.body),
        "in @main, at '%y = neg : f32[3]': type is f32[3] but the neg rule gives f32[2]",
    )
    assert err.format().splitlines() == [
        "m.graph:2:8: error: in @main, at '%y = neg : f32[3]': type is f32[3] but the neg rule "
        "gives f32[2]",
        "    %y = neg(%x)",
        "         ^",
    ]


def test_module_with_a_function_defined_twice() -> None:
    x = parameter("x", F2)
    f = func([x], [], [x])
    with pytest.raises(VerifyError, match=re.escape("function @main is defined twice")):
        verify_module(Module((f, f), "main"))


def test_module_whose_entry_went_missing() -> None:
    x = parameter("x", F2)
    m = Module((func([x], [], [x]),), "main")
    object.__setattr__(m, "entry", "gone")
    with pytest.raises(VerifyError, match=re.escape("entry function @gone does not exist")):
        verify_module(m)


def test_verify_module_checks_every_function() -> None:
    x = parameter("x", F2)
    good = func([x], [], [x])
    bad = Function("helper", (x,), (), ())
    with pytest.raises(VerifyError, match=re.escape("in @helper: a function must return")):
        verify_module(Module((good, bad), "main"))


# --- well-formed IR passes ---------------------------------------------------------------------


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(modules())
def test_every_generated_module_verifies(m: Module) -> None:
    verify_module(m)
    for fn in m.functions:
        verify_function(fn)


def test_dead_code_and_shared_operands_verify() -> None:
    x = parameter("x", F2)
    a = make_node(Op.ADD, [x, x])
    dead = make_node(Op.EXP, [a])
    b = make_node(Op.MUL, [a, a])
    verify_function(func([x], [a, dead, b], [b, b, x]))


def test_nested_fusion_body_is_verified_in_its_own_scope() -> None:
    p = parameter("p", F2)
    inner = make_node(Op.EXP, [p], name="e")
    body = Function("fusion", (p,), (inner.replace(type=TensorType((3,), DType.F32)),), ())
    body = body.replace(results=body.body)
    x = parameter("x", F2)
    attrs = Attrs({"body": body, "device": "host"})
    fused = Node(Op.FUSION, TensorType((3,), DType.F32), (x,), attrs, name="f")
    fails(
        func([x], [fused], [fused]),
        "in @fusion, at '%e = exp : f32[3]': type is f32[3] but the exp rule gives f32[2]",
    )
