"""fuse: loop, input and output fusion; the limits it respects; and its explanations."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from passcheck import apply, assert_golden, assert_same_numbers, assert_unchanged

from ir.builder import parameter
from ir.dtypes import DType
from ir.ops import Op
from ir.parser import parse_file, parse_module
from ir.types import TensorType
from passes.fuse import _param_names
from passes.pipeline import PipelineError, parse_pipeline
from runtime.interp import run_module


def test_loop_fusion_of_an_elementwise_chain():
    assert_golden(
        "fuse",
        """func @main(%x: f32[8,3], %y: f32[3]) -> f32[8,3] {
          %a = add(%x, %y)
          %b = exp(%a)
          %c = mul(%b, 2.0)
          return %c
        }""",
        """func @main(%x: f32[8,3], %y: f32[3]) -> f32[8,3] {
          %c = fusion(%x, %y) {body = func @fusion(%x: f32[8,3], %y: f32[3]) -> f32[8,3] {
            %0 = broadcast_in_dim(%y) {shape = [8, 3]} : f32[8,3]
            %a = add(%x, %0) : f32[8,3]
            %b = exp(%a) : f32[8,3]
            %1 = constant 2.0 : f32[]
            %2 = broadcast_in_dim(%1) {shape = [8, 3]} : f32[8,3]
            %c = mul(%b, %2) : f32[8,3]
            return %c
          }} : f32[8,3]
          return %c
        }""",
    )


def test_output_fusion_absorbs_bias_and_activation():
    assert_golden(
        "fuse",
        """func @main(%x: f32[4,6], %w: f32[6,5], %b: f32[5]) -> f32[4,5] {
          %z = matmul(%x, %w)
          %a = add(%z, %b)
          %h = relu(%a)
          return %h
        }""",
        """func @main(%x: f32[4,6], %w: f32[6,5], %b: f32[5]) -> f32[4,5] {
          %h = fusion(%x, %w, %b) {body = func @fusion(%x: f32[4,6], %w: f32[6,5], %b: f32[5]) -> f32[4,5] {
            %z = dot_general(%x, %w) {lhs_contract = [1], rhs_contract = [0]} : f32[4,5]
            %0 = broadcast_in_dim(%b) {shape = [4, 5]} : f32[4,5]
            %a = add(%z, %0) : f32[4,5]
            %h = relu(%a) : f32[4,5]
            return %h
          }} : f32[4,5]
          return %h
        }""",
    )


def test_input_fusion_of_a_reduction_with_its_producers():
    assert_golden(
        "fuse",
        """func @main(%x: f32[8,3]) -> f32[8] {
          %a = mul(%x, %x)
          %s = reduce(%a) {kind = sum, axes = [1]}
          return %s
        }""",
        """func @main(%x: f32[8,3]) -> f32[8] {
          %s = fusion(%x) {body = func @fusion(%x: f32[8,3]) -> f32[8] {
            %a = mul(%x, %x) : f32[8,3]
            %s = reduce(%a) {kind = sum, axes = [1]} : f32[8]
            return %s
          }} : f32[8]
          return %s
        }""",
    )


def test_leaves_unfusible_graphs_alone():
    assert_unchanged(
        "fuse",
        """func @main(%x: f32[4,6], %w: f32[6,5]) -> (f32[4,5], f32[5,4]) {
          %z = matmul(%x, %w)
          %t = transpose(%z) {perm = [1, 0]}
          return %z, %t
        }""",
    )


def test_expensive_producer_with_two_consumers_is_not_duplicated():
    text = """func @main(%x: f32[8,3]) -> (f32[8,3], f32[8]) {
      %e = exp(%x)
      %a = add(%e, 1.0)
      %s = reduce(%e) {kind = sum, axes = [1]}
      return %a, %s
    }"""
    out, ctx = apply("fuse", text)
    fn = out.entry_function
    exps = [n for n in fn.body if n.op is Op.EXP]
    assert len(exps) == 1  # still computed once, at top level
    remarks = ctx.remarks["fuse"]
    assert (
        "not fused: @main: %e (exp) -> %a (add): expensive producer with several consumers"
        in remarks
    )
    assert_same_numbers(parse_module(text), out)


def test_cheap_broadcast_is_copied_into_each_consumer():
    text = """func @main(%x: f32[8,3], %y: f32[3]) -> (f32[8,3], f32[8,3]) {
      %b = broadcast_in_dim(%y) {shape = [8, 3]}
      %p = add(%x, %b)
      %q = exp(%p)
      %r = mul(%x, %b)
      %s = neg(%r)
      return %q, %s
    }"""
    out, _ = apply("fuse", text)
    fn = out.entry_function
    assert [n.op for n in fn.body] == [Op.FUSION, Op.FUSION]
    for node in fn.body:
        assert any(m.op is Op.BROADCAST_IN_DIM for m in node.attrs["body"].body)
    assert_same_numbers(parse_module(text), out)


def test_slices_and_pads_join_loops_an_update_is_one_loop():
    """`u[1:-1] += a * (u[2:] - u[:-2])` as tracing writes it: shifted slices, the update's
    pad of the new values and of its mask, and the select, in one loop over u."""
    assert_golden(
        "fuse",
        """func @main(%u: f32[6]) -> f32[6] {
          %l = slice(%u) {start = [0], limit = [4]}
          %m = slice(%u) {start = [1], limit = [5]}
          %r = slice(%u) {start = [2], limit = [6]}
          %d = sub(%r, %l)
          %v = add(%m, %d)
          %p = pad(%v, 0.0) {low = [1], high = [1]}
          %y = constant true : bool[]
          %t = broadcast_in_dim(%y) {shape = [4]}
          %k = pad(%t, false) {low = [1], high = [1]}
          %n = select(%k, %p, %u)
          return %n
        }""",
        """func @main(%u: f32[6]) -> f32[6] {
          %n = fusion(%u) {body = func @fusion(%u: f32[6]) -> f32[6] {
            %l = slice(%u) {start = [0], limit = [4]} : f32[4]
            %m = slice(%u) {start = [1], limit = [5]} : f32[4]
            %r = slice(%u) {start = [2], limit = [6]} : f32[4]
            %d = sub(%r, %l) : f32[4]
            %v = add(%m, %d) : f32[4]
            %0 = constant 0.0 : f32[]
            %p = pad(%v, %0) {low = [1], high = [1]} : f32[6]
            %y = constant true : bool[]
            %t = broadcast_in_dim(%y) {shape = [4]} : bool[4]
            %1 = constant false : bool[]
            %k = pad(%t, %1) {low = [1], high = [1]} : bool[6]
            %n = select(%k, %p, %u) : f32[6]
            return %n
          }} : f32[6]
          return %n
        }""",
    )


def test_an_element_read_through_a_unit_reshape_joins_the_loop():
    """`a[i, i]` traces as a slice and a reshape that drops its two unit dimensions: both are
    index arithmetic, so the element is read inside the loop (a Python loop over a diagonal
    made two kernels per element before). A reshape that moves elements stays outside."""
    assert_golden(
        "fuse",
        """func @main(%a: f32[3,3]) -> f32[] {
          %s = slice(%a) {start = [1, 1], limit = [2, 2]}
          %r = reshape(%s) {shape = []}
          %t = tanh(%r)
          %u = add(%t, %t)
          return %u
        }""",
        """func @main(%a: f32[3,3]) -> f32[] {
          %u = fusion(%a) {body = func @fusion(%a: f32[3,3]) -> f32[] {
            %s = slice(%a) {start = [1, 1], limit = [2, 2]} : f32[1,1]
            %r = reshape(%s) {shape = []} : f32[]
            %t = tanh(%r) : f32[]
            %u = add(%t, %t) : f32[]
            return %u
          }} : f32[]
          return %u
        }""",
    )
    text = """func @main(%a: f32[2,3]) -> f32[3,2] {
      %r = reshape(%a) {shape = [3, 2]}
      %t = tanh(%r)
      return %t
    }"""
    out, ctx = apply("fuse", text)
    assert [n.op for n in out.entry_function.body] == [Op.RESHAPE, Op.TANH]
    assert "op kind not fusible: reshape" in "\n".join(ctx.remarks["fuse"])


def test_a_gather_starts_a_loop_and_takes_its_index_reshape_and_consumers():
    """`table[idx] * 2` traces as a reshape of idx, a gather and a multiply: one loop that
    reads the table at the positions the indices give (wrapped here, so that random indices
    check the numbers too)."""
    assert_golden(
        "fuse",
        """func @main(%table: f32[5,3], %idx: i64[4]) -> f32[4,3] {
          %i = reshape(%idx) {shape = [4, 1]}
          %g = gather(%table, %i) {mode = "wrap"}
          %y = mul(%g, 2.0)
          return %y
        }""",
        """func @main(%table: f32[5,3], %idx: i64[4]) -> f32[4,3] {
          %y = fusion(%table, %idx) {body = func @fusion(%table: f32[5,3], %idx: i64[4]) -> f32[4,3] {
            %i = reshape(%idx) {shape = [4, 1]} : i64[4,1]
            %g = gather(%table, %i) {mode = "wrap"} : f32[4,3]
            %0 = constant 2.0 : f32[]
            %1 = broadcast_in_dim(%0) {shape = [4, 3]} : f32[4,3]
            %y = mul(%g, %1) : f32[4,3]
            return %y
          }} : f32[4,3]
          return %y
        }""",
    )


def test_a_value_read_at_several_shifts_is_computed_once():
    """Fused into a stencil that reads it at three positions, exp would run three times per
    element: it stays a separate loop, and the stencil reads its result."""
    text = """func @main(%x: f32[8]) -> f32[6] {
      %e = exp(%x)
      %l = slice(%e) {start = [0], limit = [6]}
      %m = slice(%e) {start = [1], limit = [7]}
      %r = slice(%e) {start = [2], limit = [8]}
      %a = add(%l, %m)
      %b = add(%a, %r)
      return %b
    }"""
    out, ctx = apply("fuse", text)
    fn = out.entry_function
    assert [n.op for n in fn.body] == [Op.EXP, Op.FUSION]
    stencil = fn.body[1].attrs["body"]
    assert Op.EXP not in {n.op for n in stencil.body}
    assert [n.op for n in stencil.body].count(Op.SLICE) == 3
    assert (
        "not fused: @main: %e (exp) -> %l (slice): read at several shifted positions: fused, "
        "it would be computed once for each" in ctx.remarks["fuse"]
    )
    assert_same_numbers(parse_module(text), out)


def test_a_reverse_fuses_but_its_shared_operand_is_computed_once():
    """reverse reads its operand at the mirrored index, like a slice at a shifted one: the add
    absorbs it, while exp, read at two positions, stays a separate loop."""
    text = """func @main(%x: f32[8,3]) -> f32[8,3] {
      %e = exp(%x)
      %r = reverse(%e) {dims = [0]}
      %a = add(%e, %r)
      return %a
    }"""
    out, ctx = apply("fuse", text)
    fn = out.entry_function
    assert [n.op for n in fn.body] == [Op.EXP, Op.FUSION]
    assert [n.op for n in fn.body[1].attrs["body"].body] == [Op.REVERSE, Op.ADD]
    assert (
        "not fused: @main: %e (exp) -> %r (reverse): read at several shifted positions: fused, "
        "it would be computed once for each" in ctx.remarks["fuse"]
    )
    assert_same_numbers(parse_module(text), out)


def test_a_path_through_a_cheap_member_that_leaves_the_group_is_a_cycle():
    """%b (a cheap broadcast of %e) is copied into %s's group, and %c outside reads it and
    feeds %s: moving %e into the group would need %e outside again."""
    text = """func @main(%x: f32[3]) -> f32[2,3] {
      %e = exp(%x)
      %b = broadcast_in_dim(%e) {shape = [2, 3]}
      %c = reduce(%b) {kind = sum, axes = [0]}
      %d = broadcast_in_dim(%c) {shape = [2, 3]}
      %s = add(%b, %d)
      return %s
    }"""
    out, _ = apply("fuse", text)
    assert_same_numbers(parse_module(text), out)
    assert sum(n.op is Op.EXP for n in out.entry_function.body) == 1


def exp_chain(n: int, type: str) -> str:
    chain = "\n".join(f"%v{i + 1} = exp(%v{i})" for i in range(n))
    return f"func @main(%v0: {type}) -> {type} {{\n{chain}\nreturn %v{n}\n}}"


@pytest.mark.parametrize(
    ("option", "type"),
    [("max-ops", "f32[17]"), ("max-tiny-ops", "f32[16]"), ("max-tiny-ops", "f64")],
)
def test_max_ops_is_respected_and_explained(option: str, type: str) -> None:
    """`max-ops` bounds groups of values over 16 elements, `max-tiny-ops` those of smaller ones."""
    text = exp_chain(6, type)
    out, ctx = apply(f"fuse{{{option}=3}}", text)
    for node in out.entry_function.body:
        if node.op is Op.FUSION:
            assert len(node.attrs["body"].body) <= 3
    assert any(f"over {option} (3)" in r for r in ctx.remarks["fuse"])
    assert_same_numbers(parse_module(text), out)


def test_a_long_scalar_chain_is_one_fusion():
    """Scalar code (a CRC's bit loop): one kernel for 100 ops, where max-ops would make four."""
    text = exp_chain(100, "f32[3]")
    out, _ = apply("fuse", text)
    (fusion,) = [n for n in out.entry_function.body if n.op is Op.FUSION]
    assert len(fusion.attrs["body"].body) == 100
    assert_same_numbers(parse_module(text), out)


def test_no_prologue_fusion_into_a_dot():
    text = """func @main(%x: f32[4,6], %w: f32[6,5]) -> f32[4,5] {
      %r = relu(%x)
      %z = matmul(%r, %w)
      return %z
    }"""
    assert_unchanged("fuse", text)
    _, ctx = apply("fuse", text)
    assert ctx.remarks["fuse"] == [
        "not fused: @main: %r (relu) -> %z (dot_general): "
        "op kind not fusible: dot_general does not absorb producers"
    ]


def test_options_turn_off_kinds():
    text = """func @main(%x: f32[4,6], %w: f32[6,5]) -> f32[4,5] {
      %z = matmul(%x, %w)
      %h = relu(%z)
      %g = neg(%h)
      return %g
    }"""
    out, _ = apply("fuse{epilogue=false}", text)
    ops = [n.op for n in out.entry_function.body]
    assert ops == [Op.DOT_GENERAL, Op.FUSION]


def test_mlp_gets_one_fusion_per_layer(samples_dir):
    module = parse_file(samples_dir / "mlp.graph")
    out, _ = apply("canonicalize,fold,cse,dce,decompose,canonicalize,fold,cse,dce,fuse", module)
    fused_dots = [
        n
        for n in out.entry_function.body
        if n.op is Op.FUSION and any(m.op is Op.DOT_GENERAL for m in n.attrs["body"].body)
    ]
    assert len(fused_dots) == 3
    assert not any(n.op is Op.DOT_GENERAL for n in out.entry_function.body)
    for layer in fused_dots[:2]:
        assert [m.op for m in layer.attrs["body"].body] == [
            Op.DOT_GENERAL, Op.BROADCAST_IN_DIM, Op.ADD, Op.RELU,
        ]  # fmt: skip
    assert_same_numbers(module, out, seeds=1, rtol=1e-4)


def test_fused_graphs_stay_acyclic_on_samples(samples_dir):
    for sample in sorted(samples_dir.glob("*.graph")):
        module = parse_file(sample)
        out, _ = apply("decompose,canonicalize,fuse", module)
        assert nx.is_directed_acyclic_graph(out.entry_function.dependency_graph())
        assert_same_numbers(module, out, seeds=1, rtol=1e-4)


# --- quantization ops -------------------------------------------------------------------------

INT8_LAYER = """func @main(%x: i8[4,6], %w: i8[6,3], %b: i32[3]) -> f32[4,3] {
  %z = dot_general(%x, %w) {lhs_contract = [1], rhs_contract = [0], out_dtype = i32}
  %a = add(%z, %b)
  %q = requantize(%a) {multiplier = [1500000000, 1200000000, 1900000000], shift = [3, 4, -1], zero_point = -3, min = -3, axis = 1}
  %r = dequantize(%q) {scale = [0.5], zero_point = [-3]}
  return %r
}"""


def test_integer_contraction_absorbs_bias_requantize_and_dequantize():
    assert_golden(
        "fuse",
        INT8_LAYER,
        """func @main(%x: i8[4,6], %w: i8[6,3], %b: i32[3]) -> f32[4,3] {
          %r = fusion(%x, %w, %b) {body = func @fusion(%x: i8[4,6], %w: i8[6,3], %b: i32[3]) -> f32[4,3] {
            %z = dot_general(%x, %w) {lhs_contract = [1], rhs_contract = [0], out_dtype = i32} : i32[4,3]
            %0 = broadcast_in_dim(%b) {shape = [4, 3]} : i32[4,3]
            %a = add(%z, %0) : i32[4,3]
            %q = requantize(%a) {multiplier = [1500000000, 1200000000, 1900000000], shift = [3, 4, -1], zero_point = -3, min = -3, axis = 1} : i8[4,3]
            %r = dequantize(%q) {scale = [0.5], zero_point = [-3]} : f32[4,3]
            return %r
          }} : f32[4,3]
          return %r
        }""",
    )


def test_int_epilogue_false_keeps_integer_contractions_alone():
    out = assert_golden(
        "fuse{int-epilogue=false}",
        INT8_LAYER,
        """func @main(%x: i8[4,6], %w: i8[6,3], %b: i32[3]) -> f32[4,3] {
          %z = dot_general(%x, %w) {lhs_contract = [1], rhs_contract = [0], out_dtype = i32} : i32[4,3]
          %r = fusion(%b, %z) {body = func @fusion(%b: i32[3], %z: i32[4,3]) -> f32[4,3] {
            %0 = broadcast_in_dim(%b) {shape = [4, 3]} : i32[4,3]
            %a = add(%z, %0) : i32[4,3]
            %q = requantize(%a) {multiplier = [1500000000, 1200000000, 1900000000], shift = [3, 4, -1], zero_point = -3, min = -3, axis = 1} : i8[4,3]
            %r = dequantize(%q) {scale = [0.5], zero_point = [-3]} : f32[4,3]
            return %r
          }} : f32[4,3]
          return %r
        }""",
    )
    assert out.entry_function.body[0].op is Op.DOT_GENERAL


def test_int_epilogue_names_the_one_contraction_that_takes_it():
    """The cpu pipeline's `dot_general`: its int8 GEMM applies epilogues, its int8
    convolution does not, so the conv's bias and requantize become a loop fusion."""
    text = """func @main(%x: i8[1,5,5,2], %k: i8[3,3,2,4], %w: i8[4,4], %b: i32[4]) -> i32[9,4] {
      %c = conv2d(%x, %k) {out_dtype = i32}
      %a = add(%c, %b)
      %q = requantize(%a) {multiplier = [1500000000], shift = [3]}
      %f = reshape(%q) {shape = [9, 4]}
      %z = dot_general(%f, %w) {lhs_contract = [1], rhs_contract = [0], out_dtype = i32}
      %y = add(%z, %b)
      return %y
    }"""
    assert_golden(
        "fuse{int-epilogue=dot_general}",
        text,
        """func @main(%x: i8[1,5,5,2], %k: i8[3,3,2,4], %w: i8[4,4], %b: i32[4]) -> i32[9,4] {
          %c = conv2d(%x, %k) {out_dtype = i32} : i32[1,3,3,4]
          %q = fusion(%b, %c) {body = func @fusion(%b: i32[4], %c: i32[1,3,3,4]) -> i8[1,3,3,4] {
            %0 = broadcast_in_dim(%b) {shape = [1, 3, 3, 4]} : i32[1,3,3,4]
            %a = add(%c, %0) : i32[1,3,3,4]
            %q = requantize(%a) {multiplier = [1500000000], shift = [3]} : i8[1,3,3,4]
            return %q
          }} : i8[1,3,3,4]
          %f = reshape(%q) {shape = [9, 4]} : i8[9,4]
          %y = fusion(%w, %b, %f) {body = func @fusion(%w: i8[4,4], %b: i32[4], %f: i8[9,4]) -> i32[9,4] {
            %z = dot_general(%f, %w) {lhs_contract = [1], rhs_contract = [0], out_dtype = i32} : i32[9,4]
            %0 = broadcast_in_dim(%b) {shape = [9, 4]} : i32[9,4]
            %y = add(%z, %0) : i32[9,4]
            return %y
          }} : i32[9,4]
          return %y
        }""",
    )
    _, ctx = apply("fuse{int-epilogue=dot_general}", text)
    assert (
        "not fused: @main: %c (conv2d) -> %a (add): integer contraction: "
        "int-epilogue=dot_general keeps it alone for its kernel"
    ) in ctx.remarks["fuse"]


def test_float_contraction_does_not_absorb_quantize():
    text = """func @main(%x: f32[4,6], %w: f32[6,3]) -> i8[4,3] {
      %z = matmul(%x, %w)
      %q = quantize(%z) {scale = [0.25]}
      return %q
    }"""
    out, ctx = apply("fuse", text)
    assert [n.op for n in out.entry_function.body] == [Op.DOT_GENERAL, Op.QUANTIZE]
    assert ctx.remarks["fuse"] == [
        "not fused: @main: %z (dot_general) -> %q (quantize): "
        "float contraction: quantization ops join integer contractions only"
    ]


def test_quantization_ops_join_loop_fusions():
    assert_golden(
        "fuse",
        """func @main(%q: i8[4,3]) -> u8[4,3] {
          %d = dequantize(%q) {scale = [0.1, 0.2, 0.3], axis = 1}
          %e = exp(%d)
          %r = quantize(%e) {scale = [0.05], zero_point = [10], dtype = u8}
          return %r
        }""",
        """func @main(%q: i8[4,3]) -> u8[4,3] {
          %r = fusion(%q) {body = func @fusion(%q: i8[4,3]) -> u8[4,3] {
            %d = dequantize(%q) {scale = [0.1, 0.2, 0.3], axis = 1} : f32[4,3]
            %e = exp(%d) : f32[4,3]
            %r = quantize(%e) {scale = [0.05], zero_point = [10], dtype = u8} : u8[4,3]
            return %r
          }} : u8[4,3]
          return %r
        }""",
    )


def test_int_epilogue_rejects_unknown_values():
    with pytest.raises(
        PipelineError,
        match="int-epilogue must be one of true, false, conv2d, dot_general, got 'conv'",
    ):
        parse_pipeline("fuse{int-epilogue=conv}")


def test_body_parameters_get_distinct_names_whatever_the_outer_names():
    """An outer value named p1 and an unnamed operand numbered 1 once both became %p1 in the
    body; the interpreter binds by name, so one argument overwrote the other."""
    pattern = ", ".join(["5", "-5"] * 50)
    module = parse_module(
        f"""func @main(%p1: i32[100]) -> i8[100] {{
          %0 = constant [{pattern}] : i32[100]
          %1 = gt(%p1, %0)
          %2 = convert(%1) {{dtype = i8}}
          return %2
        }}"""
    )
    out, _ = apply("fuse", module)
    (fusion,) = [n for n in out.entry_function.body if n.op is Op.FUSION]
    names = [p.name for p in fusion.attrs["body"].params]
    assert len(names) == 2
    assert len(set(names)) == 2
    assert_same_numbers(module, out)
    (zeros_out,) = run_module(out, [np.zeros(100, np.int32)])
    np.testing.assert_array_equal(zeros_out, np.tile(np.array([0, 1], np.int8), 50))


@pytest.mark.parametrize(
    "hints",
    [
        ["p1", None],
        ["p0", "p0", None],
        [None, "p0", "p1"],
        ["p1_1", "p1", None, None],
        ["3d", "3d"],
    ],
)
def test_param_names_are_distinct_by_construction(hints):
    operands = [parameter(h, TensorType((), DType.F32)) for h in hints]
    names = _param_names(operands)
    assert len(set(names)) == len(names)
    assert all(n.isidentifier() for n in names)
