"""The reference interpreter: its API, its contracts, and whole programs run end to end.

Per-op semantics are tested in test_reference_elementwise.py, test_reference_movement.py and
test_reference_nn.py; this file checks what holds for every op (a row per op, fresh results, no
warnings, type checks) and the function/module runners.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ir.attrs import Attrs, ConstData
from ir.builder import FunctionBuilder, make_node, parameter
from ir.diagnostics import GraphTypeError, InputError
from ir.dtypes import DType
from ir.graph import Function, Node
from ir.ops import Op
from ir.parser import parse_file, parse_module
from ir.types import TensorType, TupleType
from runtime.interp import InterpreterError, evaluate_node, run_function, run_module, run_op
from runtime.reference import REFERENCE, tuple_value

pytestmark = pytest.mark.filterwarnings("error")

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
F32 = DType.F32


def f32(*values: float) -> np.ndarray:
    return np.array(values, np.float32)


def fusion_node(a: Node, b: Node) -> Node:
    """fusion(a, b) whose body computes relu(a + b), as the fuse pass would build it."""
    fb = FunctionBuilder("fused")
    x, y = fb.param("x", a.type), fb.param("y", b.type)
    body = fb.build([fb.op(Op.RELU, fb.op(Op.ADD, x, y))])
    return make_node(Op.FUSION, (a, b), {"body": body})


def while_node(i: Node, v: Node, bound: int) -> Node:
    """while(i, v): while i < bound, (i, v) becomes (i + 1, v * v)."""
    cb = FunctionBuilder("cond")
    ci, _ = cb.param("i", i.type), cb.param("v", v.type)
    cond = cb.build([cb.op(Op.LT, ci, cb.const(np.array(bound, i.dtype.np)))])
    bb = FunctionBuilder("body")
    bi, bv = bb.param("i", i.type), bb.param("v", v.type)
    one = bb.const(np.array(1, i.dtype.np))
    body = bb.build([bb.op(Op.ADD, bi, one), bb.op(Op.MUL, bv, bv)])
    return make_node(Op.WHILE, (i, v), {"cond": cond, "body": body})


def for_node(lo: Node, hi: Node, v: Node) -> Node:
    """for i in range(lo, hi): v = v * v."""
    bb = FunctionBuilder("body")
    _, bv = bb.param("i", lo.type), bb.param("v", v.type)
    return make_node(Op.FOR, (lo, hi, v), {"body": bb.build([bb.op(Op.MUL, bv, bv)])})


def cond_node(p: Node, v: Node) -> Node:
    """(v,) if p else (-v,)."""
    t, f = FunctionBuilder("t"), FunctionBuilder("f")
    tv, fv = t.param("v", v.type), f.param("v", v.type)
    sides = {"true_branch": t.build([tv]), "false_branch": f.build([f.op(Op.NEG, fv)])}
    return make_node(Op.COND, (p, v), sides)


# One instance of every op, with attributes chosen so that a lazy rule would be tempted to
# hand back its operand (identity reshape, full slice, same-dtype convert, ...).
SMOKE: dict[Op, tuple[list[np.ndarray], dict[str, Any]]] = {
    Op.CONSTANT: ([], {}),
    Op.IOTA: ([], {"shape": (2, 3), "dtype": F32, "dim": 1}),
    **{op: ([f32(0.5, 2.0)], {}) for op in (Op.EXP, Op.LOG, Op.SQRT, Op.RSQRT, Op.TANH)},
    **{op: ([f32(0.5, 2.0)], {}) for op in (Op.SIGMOID, Op.ERF, Op.FLOOR, Op.CEIL)},
    **{op: ([f32(0.5, 0.25)], {}) for op in (Op.SIN, Op.COS, Op.TAN, Op.ASIN, Op.ACOS, Op.ATAN)},
    **{op: ([f32(0.5, 0.25)], {}) for op in (Op.SINH, Op.COSH, Op.ASINH, Op.ATANH)},
    **{op: ([f32(0.5, 2.0)], {}) for op in (Op.ACOSH, Op.LOG1P, Op.EXPM1)},
    **{op: ([f32(0.5, -2.0)], {}) for op in (Op.NEG, Op.ABS, Op.RELU, Op.SIGN)},
    Op.NOT: ([np.array([True, False])], {}),
    **{op: ([np.array([1 + 2j, -0.5j], np.complex64)], {}) for op in (Op.REAL, Op.IMAG)},
    Op.COMPLEX: ([f32(1, 2), f32(3, -4)], {}),
    **{op: ([f32(1, 2), f32(3, 4)], {}) for op in (Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW)},
    **{op: ([f32(1, 2), f32(3, 4)], {}) for op in (Op.ATAN2, Op.HYPOT, Op.FMOD)},
    **{op: ([f32(1, 2), f32(1, 2)], {}) for op in (Op.MAX, Op.MIN)},
    **{op: ([np.array([True, False])] * 2, {}) for op in (Op.AND, Op.OR, Op.XOR)},
    **{op: ([np.array([6, -7]), np.array([1, 70])], {}) for op in (Op.SHIFT_LEFT, Op.SHIFT_RIGHT)},
    **{op: ([f32(1, 2), f32(2, 2)], {}) for op in (Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE)},
    Op.SELECT: ([np.array([True, True]), f32(1, 2), f32(3, 4)], {}),
    Op.CONVERT: ([f32(1, 2)], {"dtype": F32}),
    Op.BROADCAST_IN_DIM: ([f32(1, 2)], {"shape": (2,)}),
    Op.RESHAPE: ([f32(1, 2)], {"shape": (2,)}),
    Op.TRANSPOSE: ([f32(1, 2)], {"perm": (0,)}),
    Op.SLICE: ([f32(1, 2)], {"start": (0,), "limit": (2,)}),
    Op.REVERSE: ([f32(1, 2)], {"dims": ()}),
    Op.CONCATENATE: ([f32(1, 2)], {"axis": 0}),
    Op.PAD: ([f32(1, 2), np.array(0, np.float32)], {"low": (0,), "high": (0,)}),
    Op.GATHER: ([f32(1, 2), np.array([[0], [1]], np.int32)], {}),
    Op.SCATTER: ([f32(1, 2), np.array([[1]], np.int32), f32(5)], {"kind": "add"}),
    Op.REDUCE: ([f32(1, 2)], {"kind": "max", "axes": ()}),
    Op.MEAN: ([f32(1, 2)], {"axes": ()}),
    Op.SOFTMAX: ([f32(1, 2)], {}),
    Op.SORT: ([f32(1, 2)], {}),  # already sorted: a lazy row might hand it back
    Op.ARGSORT: ([f32(2, 1)], {"descending": True}),
    Op.QUANTIZE: ([f32(1, 2)], {"scale": (0.5,)}),
    Op.DEQUANTIZE: ([np.array([1, 2], np.int8)], {"scale": (0.5,)}),
    Op.REQUANTIZE: ([np.array([1, 2], np.int32)], {"multiplier": (1 << 30,), "shift": (0,)}),
    Op.DOT_GENERAL: ([f32(1), f32(2)], {"lhs_contract": (), "rhs_contract": ()}),
    Op.CONV2D: ([np.ones((1, 1, 1, 1), np.float32)] * 2, {}),
    Op.MAX_POOL: ([np.ones((1, 1, 1, 1), np.float32)], {"window": (1, 1)}),
    Op.AVG_POOL: ([np.ones((1, 1, 1, 1), np.float32)], {"window": (1, 1)}),
    Op.FUSION: ([f32(1, -2), f32(0.5, 0.5)], {}),
    Op.WHILE: ([np.array(3, np.int32), f32(1, 2)], {}),  # no trips: the operands come back
    Op.FOR: ([np.array(2, np.int16), np.array(2, np.int16), f32(1, 2)], {}),  # no trips
    Op.COND: ([np.array(True), f32(1, 2)], {}),  # the true side returns its parameter
    Op.GET: ([tuple_value([np.array(3, np.int32), f32(1, 2)])], {"index": 1}),
}


def smoke_node(op: Op) -> tuple[Node, list[np.ndarray]]:
    operands, attrs = SMOKE[op]
    if op is Op.GET:  # its operand is a loop's tuple
        i, v = (parameter(f"x{k}", _type_of(e)) for k, e in enumerate(operands[0]))
        return make_node(op, (while_node(i, v, 3),), attrs), operands
    types = [_type_of(a) for a in operands]
    params = [parameter(f"x{i}", t) for i, t in enumerate(types)]
    if op is Op.CONSTANT:
        return make_node(op, (), {"value": ConstData(f32(1, 2))}), operands
    if op is Op.FUSION:
        return fusion_node(*params), operands
    if op is Op.WHILE:
        return while_node(*params, 3), operands
    if op is Op.FOR:
        return for_node(*params), operands
    if op is Op.COND:
        return cond_node(*params), operands
    return make_node(op, params, attrs), operands


def _type_of(a: np.ndarray) -> TensorType:
    return TensorType(a.shape, DType.from_numpy(a.dtype))


def _arrays(values: list[np.ndarray]) -> list[np.ndarray]:
    """The arrays in `values`, a tuple's elements included."""
    return [e for v in values for e in (v if v.dtype == object else [v])]


# --- the table ----------------------------------------------------------------------------


def test_every_op_except_parameter_has_a_reference_row() -> None:
    assert set(REFERENCE) == set(Op) - {Op.PARAMETER}


def test_every_row_has_a_smoke_case() -> None:
    assert set(SMOKE) == set(REFERENCE)


@pytest.mark.parametrize("op", sorted(SMOKE, key=str))
def test_rows_return_fresh_contiguous_arrays_of_the_node_type(op: Op) -> None:
    node, operands = smoke_node(op)
    out = REFERENCE[op](node.attrs, operands, node.type)
    assert isinstance(out, np.ndarray)
    if isinstance(node.type, TupleType):  # a loop: a fresh array per element
        assert out.dtype == object
        assert out.shape == (len(node.type.elements),)
        pairs = list(zip(out, node.type.elements, strict=True))
    else:
        pairs = [(out, node.type)]
    sources = [*_arrays(operands)]
    sources += [v.array for v in node.attrs.values() if isinstance(v, ConstData)]
    for value, t in pairs:
        assert isinstance(value, np.ndarray)
        assert value.shape == t.shape
        assert value.dtype == t.dtype.np
        assert value.flags.c_contiguous
        assert value.flags.writeable
        assert not any(np.shares_memory(value, s) for s in sources)


def test_rows_leave_no_warnings_and_no_global_error_state() -> None:
    before = np.geterr()
    cases = [
        (Op.EXP, [f32(1e4)]),
        (Op.LOG, [f32(0.0, -1.0)]),
        (Op.DIV, [f32(0.0, 1.0), f32(0.0, 0.0)]),
        (Op.MUL, [np.array([100], np.int8), np.array([100], np.int8)]),
        (Op.POW, [np.array([10], np.int64), np.array([40], np.int64)]),
        (Op.FMOD, [np.array([5, -128], np.int8), np.array([0, -1], np.int8)]),
        (Op.FMOD, [f32(1.0, np.inf), f32(0.0, 1.0)]),
        (Op.ATANH, [f32(1.0, 2.0)]),
        (Op.ACOSH, [f32(0.5)]),
        (Op.LOG1P, [f32(-1.0, -2.0)]),
        (Op.COSH, [f32(1e4)]),
        (Op.SIN, [f32(np.inf)]),
        (Op.NEG, [np.array(-128, np.int8)]),
        (Op.SUB, [np.array(-128, np.int8), np.array(1, np.int8)]),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for op, operands in cases:
            run_op(op, *operands)
        run_op(Op.CONVERT, f32(np.nan, 1e30, -np.inf), dtype="i16")
        run_op(Op.CONVERT, np.array([1e300]), dtype="f16")
        run_op(Op.MEAN, np.zeros((0, 2), np.float32), axes=(0,))
    assert np.geterr() == before


# --- evaluate_node ------------------------------------------------------------------------


def test_evaluate_node_computes_one_value() -> None:
    x = parameter("x", TensorType((2,), F32))
    node = make_node(Op.MUL, (x, x))
    assert evaluate_node(node, [f32(3, -4)] * 2).tolist() == [9.0, 16.0]


def test_parameters_have_no_rule() -> None:
    with pytest.raises(InterpreterError, match="no reference rule"):
        evaluate_node(parameter("x", TensorType((), F32)), [])


def test_operand_count_and_types_are_checked() -> None:
    x = parameter("x", TensorType((2,), F32))
    node = make_node(Op.NEG, (x,))
    with pytest.raises(InterpreterError, match="has 1 operands but got 2 values"):
        evaluate_node(node, [f32(1, 2), f32(1, 2)])
    with pytest.raises(InterpreterError, match=r"operand 0 should be f32\[2\], got f64\[2\]"):
        evaluate_node(node, [np.zeros(2)])


def test_a_result_of_the_wrong_type_is_an_interpreter_bug() -> None:
    x = parameter("x", TensorType((2,), F32))
    wrong = Node(Op.NEG, TensorType((3,), F32), (x,))  # a type no rule would have given it
    with pytest.raises(InterpreterError, match=r"produced f32\[2\], but 'neg : f32\[3\]'"):
        evaluate_node(wrong, [f32(1, 2)])


def test_fusion_runs_its_body() -> None:
    a, b = (parameter(n, TensorType((3,), F32)) for n in "ab")
    got = evaluate_node(fusion_node(a, b), [f32(1, -2, 0.5), f32(0.5, 0.5, -1)])
    assert got.tolist() == [1.5, 0.0, 0.0]


def test_while_runs_its_body_until_the_condition_fails() -> None:
    i, v = parameter("i", TensorType((), DType.I32)), parameter("v", TensorType((2,), F32))
    loop = while_node(i, v, 3)
    out = evaluate_node(loop, [np.array(1, np.int32), f32(2, -3)])
    assert [e.tolist() for e in out] == [3, [16.0, 81.0]]
    got = evaluate_node(make_node(Op.GET, (loop,), {"index": 1}), [out])
    assert got.tolist() == [16.0, 81.0]
    assert not np.shares_memory(got, out[1])


# --- run_function -------------------------------------------------------------------------


def two_outputs() -> Function:
    fb = FunctionBuilder("f")
    x, s = fb.param("x", TensorType((2,), F32)), fb.param("s", TensorType((), F32))
    scaled = fb.op(Op.MUL, x, s, implicit_broadcast=True)
    return fb.build([scaled, x, scaled])


def test_run_function_binds_positional_and_keyword_arguments() -> None:
    fn = two_outputs()
    by_position = run_function(fn, [f32(1, 2), np.float32(3)])
    by_name = run_function(fn, kwargs={"s": np.array(3, np.float32), "x": f32(1, 2)})
    for got in (by_position, by_name):
        assert [r.tolist() for r in got] == [[3.0, 6.0], [1.0, 2.0], [3.0, 6.0]]


def test_rank_0_parameters_keep_their_shape() -> None:
    fb = FunctionBuilder("f")
    s = fb.param("s", TensorType((), DType.I32))
    fn = fb.build([fb.op(Op.ADD, s, s)])
    (out,) = run_function(fn, [np.array(21, np.int32)])
    assert out.shape == ()
    assert int(out) == 42


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ([f32(1, 2)], {}, "missing argument"),
        ([f32(1, 2), np.float32(1), f32(0)], {}, "takes 2 arguments"),
        ([np.zeros(2), np.float32(1)], {}, "dtype f64, expected f32"),
        ([f32(1, 2, 3), np.float32(1)], {}, r"shape \[3\], expected \[2\]"),
        ([f32(1, 2)], {"t": np.float32(1)}, "no parameter 't'"),
    ],
)
def test_bad_arguments_are_input_errors(
    args: list[Any], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        run_function(two_outputs(), args, kwargs)


def test_results_never_alias_inputs_each_other_or_constants() -> None:
    fb = FunctionBuilder("f")
    x = fb.param("x", TensorType((2,), F32))
    c = fb.const(f32(7, 8))
    fn = fb.build([x, x, c, c])
    arg = f32(1, 2)
    outs = run_function(fn, [arg])
    for i, out in enumerate(outs):
        assert not np.shares_memory(out, arg)
        assert not np.shares_memory(out, c.attrs["value"].array)
        assert not any(np.shares_memory(out, other) for other in outs[i + 1 :])
    outs[0][0] = outs[2][0] = 99.0
    assert arg.tolist() == [1.0, 2.0]
    assert run_function(fn, [arg])[2].tolist() == [7.0, 8.0]


def test_a_bad_schedule_is_reported_not_crashed_on() -> None:
    x = parameter("x", TensorType((2,), F32))
    first = make_node(Op.NEG, (x,))
    second = make_node(Op.ABS, (first,))
    fn = Function("f", (x,), (second, first), (second,))
    with pytest.raises(InterpreterError, match=r"'abs : f32\[2\]' uses 'neg : f32\[2\]' before"):
        run_function(fn, [f32(1, 2)])


def test_errors_inside_a_rule_name_the_node() -> None:
    x = parameter("x", TensorType((2, 3), F32))
    bad = Node(Op.RESHAPE, TensorType((4,), F32), (x,), Attrs({"shape": (4,)}), name="flat")
    fn = Function("f", (x,), (bad,), (bad,))
    with pytest.raises(ValueError, match="cannot reshape") as info:
        run_function(fn, [np.zeros((2, 3), np.float32)])
    assert "while evaluating '%flat = reshape : f32[4]' in @f" in info.value.__notes__


def test_run_op_checks_attributes_like_a_graph_file() -> None:
    assert run_op(Op.IOTA, shape=(3,), dtype="i8").tolist() == [0, 1, 2]
    with pytest.raises(GraphTypeError, match="unknown attribute"):
        run_op(Op.NEG, f32(1), axis=0)


# --- modules and whole programs -----------------------------------------------------------

PROGRAM = """
func @double(%a: f32[2]) -> f32[2] {
  %b = add(%a, %a)
  return %b
}

entry func @main(%x: f32[3,4], %k: i32[4]) -> (f32[3,4], i32[]) {
  %y = mul(%x, %x)
  %one = constant 1.5 : f32[]
  %z = add(%y, %one)
  %total = reduce(%k) {kind = sum, axes = [0]}
  return %z, %total
}
"""


def test_run_module_runs_the_entry_by_default() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    k = np.array([1, 2, 3, 2**31 - 1], np.int32)
    z, total = run_module(parse_module(PROGRAM), [x, k])
    assert z.tolist() == [[v * v + 1.5 for v in row] for row in x.tolist()]
    assert total.shape == ()
    assert int(total) == 1 + 2 + 3 + 2**31 - 1 - 2**32  # wraps


def test_run_module_runs_a_named_function() -> None:
    (out,) = run_module(parse_module(PROGRAM), [f32(1, -2)], entry="double")
    assert out.tolist() == [2.0, -4.0]


def test_run_module_rejects_an_unknown_entry() -> None:
    with pytest.raises(InputError, match=r"no function @nope \(it has @double, @main\)"):
        run_module(parse_module(PROGRAM), [], entry="nope")


def test_mlp_sample_matches_numpy() -> None:
    module = parse_file(SAMPLES / "mlp.graph")
    w = np.load(SAMPLES / "mlp.npz")
    x = np.random.default_rng(0).standard_normal((256, 784)).astype(np.float32)
    (probs,) = run_module(module, [x])
    h = x.astype(np.float64)
    for layer in (1, 2):
        h = np.maximum(h @ w[f"w{layer}"] + w[f"b{layer}"], 0)
    logits = h @ w["w3"] + w["b3"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["cnn", "attention"])
def test_other_samples_run_to_sane_outputs(name: str) -> None:
    module = parse_file(SAMPLES / f"{name}.graph")
    fn = module.entry_function
    x = np.random.default_rng(1).standard_normal(fn.params[0].shape).astype(np.float32)
    (out,) = run_module(module, [x])
    assert out.shape == fn.results[0].shape
    assert np.isfinite(out).all()
    if name == "cnn":  # class probabilities
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
