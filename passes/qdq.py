"""Folding a QDQ graph into integer arithmetic.

`compiler.quantize` first writes a QDQ graph: the float graph with `quantize -> dequantize` on
every activation that feeds a contraction, and int8 weight constants behind a `dequantize`. The
graph still computes in float (with quantized values), and the dumps show where precision
changes. These passes then make it integer:

- `fold-qdq`: `dot_general`/`conv2d` of two dequantized operands (+ a constant bias) becomes the
  integer contraction with int32 accumulation (+ an int32 bias, which also absorbs the zero-point
  correction of asymmetric activations), followed by one `dequantize` of the accumulator;
- `fold-requantize` (passes/requantize.py) turns `quantize(relu?(dequantize(acc)))` into one
  `requantize`;
- `cancel-qdq`: `quantize(dequantize(q))` with the same parameters is `q`; with other ones a
  `requantize`;
- `drop-requantize`: a `requantize` by exactly 1 that clamps nothing is its operand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ir.attrs import ConstData
from ir.builder import make_node
from ir.dtypes import DType
from ir.graph import Function, Node
from ir.ops import Op
from ir.quant import int_range
from passes.base import Pass, PassContext, register
from passes.requantize import fixed_point
from passes.rewrite import rewrite_function
from runtime.interp import run_op

INT32_MIN, INT32_MAX = int_range(DType.I32)


def quantized(x: np.ndarray, scale: np.ndarray, axis: int | None, dtype: DType) -> np.ndarray:
    """`x` through the quantize op's own reference semantics (one definition of rounding)."""
    attrs: dict[str, Any] = {"scale": [float(s) for s in scale], "dtype": dtype}
    if axis is not None:
        attrs["axis"] = axis
    return run_op(Op.QUANTIZE, np.asarray(x, np.float32), **attrs)


def constant(value: np.ndarray) -> Node:
    return make_node(Op.CONSTANT, (), {"value": ConstData(np.ascontiguousarray(value))})


def _per_tensor(n: Node) -> bool:
    return len(n.attrs["scale"]) == 1 and len(n.attrs["zero_point"]) == 1


@dataclass(frozen=True)
class Contraction:
    """What folding one contraction needs: its operands and where its channels are."""

    x: Node  # the integer activation (i8, or u8 with a zero point)
    zero: int
    w: np.ndarray  # the integer weights
    w_axis: int | None  # the weights' output-channel axis, if the scales are per channel
    out_axis: int  # the output's channel axis
    free: int | None  # the weights' only free (output) axis, None if several


def _contraction(n: Node) -> Contraction | None:
    """The parts of `contraction(dequantize(x), dequantize(constant w))`, or None."""
    if n.op not in (Op.DOT_GENERAL, Op.CONV2D) or not n.dtype.is_float:
        return None
    dx, dw = n.srcs
    if dx.op is not Op.DEQUANTIZE or dw.op is not Op.DEQUANTIZE or not _per_tensor(dx):
        return None
    x, w = dx.srcs[0], dw.srcs[0]
    if x.dtype not in (DType.I8, DType.U8) or w.dtype is not DType.I8 or w.op is not Op.CONSTANT:
        return None
    if any(dw.attrs["zero_point"]) or (x.dtype is not DType.U8 and dx.attrs["zero_point"][0]):
        return None
    if n.op is Op.CONV2D:
        free: int | None = 3  # HWIO filter, NHWC output
        out_axis = 3
        if x.dtype is not DType.I8:  # conv2d takes equal operand types (no u8 x i8 form)
            return None
    else:
        a = n.attrs
        rank = w.type.rank
        frees = [d for d in range(rank) if d not in a["rhs_contract"] + a["rhs_batch"]]
        free = frees[0] if len(frees) == 1 else None
        lhs_free = x.type.rank - len(a["lhs_contract"]) - len(a["lhs_batch"])
        out_axis = len(a["lhs_batch"]) + lhs_free
    w_axis = dw.attrs["axis"] if len(dw.attrs["scale"]) > 1 else None
    if w_axis is not None and w_axis != free:
        return None
    zero = dx.attrs["zero_point"][0]
    if zero and (free is None or n.attrs["rhs_batch"]):
        return None  # the zero-point correction would not be one value per output channel
    return Contraction(x, zero, w.attrs["value"].array, w_axis, out_axis, free)


def _channel_bias(acc: Node, values: np.ndarray, axis: int) -> Node:
    """acc + broadcast(values along `axis`), values int32."""
    spread = make_node(
        Op.BROADCAST_IN_DIM, (constant(values.astype(np.int32)),),
        {"shape": list(acc.shape), "dims": [axis]},
    )  # fmt: skip
    return make_node(Op.ADD, (acc, spread), {}, loc=acc.loc)


def fold_contraction(n: Node) -> Node | None:
    """contraction(dequantize(x), dequantize(w)) -> dequantize(integer contraction + correction)."""
    c = _contraction(n)
    if c is None:
        return None
    dx, dw = n.srcs
    attrs = dict(n.attrs)
    attrs["out_dtype"] = DType.I32
    acc = make_node(n.op, (c.x, dw.srcs[0]), attrs, loc=n.loc)
    if c.zero:
        # sum((x - z) w) = sum(x w) - z sum(w): the second term is a constant per output column
        assert c.free is not None
        sums = np.moveaxis(c.w.astype(np.int64), c.free, 0).reshape(c.w.shape[c.free], -1)
        acc = _channel_bias(acc, _int32(-c.zero * sums.sum(axis=1)), c.out_axis)
    scale_x = dx.attrs["scale"][0]
    out: dict[str, Any] = {"scale": [float(scale_x * s) for s in dw.attrs["scale"]]}
    out["dtype"] = n.dtype
    if c.w_axis is not None:
        out["axis"] = c.out_axis
    return make_node(Op.DEQUANTIZE, (acc,), out, name=n.name, loc=n.loc)


def _int32(values: np.ndarray) -> np.ndarray:
    if values.size and (values.min() < INT32_MIN or values.max() > INT32_MAX):
        raise OverflowError("an int32 bias overflows")
    return values.astype(np.int32)


def fold_bias(n: Node) -> Node | None:
    """dequantize(acc: i32) + broadcast(constant float bias along the channel axis) ->
    dequantize(acc + broadcast(int32 bias)), the bias merged with a constant already added."""
    if n.op is not Op.ADD or not n.dtype.is_float:
        return None
    for d, spread in (n.srcs, n.srcs[::-1]):
        if (
            d.op is not Op.DEQUANTIZE
            or d.srcs[0].dtype is not DType.I32
            or any(d.attrs["zero_point"])
        ):
            continue
        if spread.op is not Op.BROADCAST_IN_DIM or spread.srcs[0].op is not Op.CONSTANT:
            continue
        axis = d.attrs["axis"] if d.attrs["axis"] is not None else n.type.rank - 1
        const = spread.srcs[0]
        if const.type.rank != 1 or list(spread.attrs["dims"]) != [axis]:
            continue
        scales = np.asarray(d.attrs["scale"], np.float64)
        bias = const.attrs["value"].array.astype(np.float64)
        if bias.size not in (1, n.shape[axis]):
            continue
        values = quantized(bias, scales, 0 if scales.size > 1 else None, DType.I32)
        acc = d.srcs[0]
        merged = _merge_bias(acc, values, axis)
        try:
            new_acc = merged or _channel_bias(
                acc, _int32(np.broadcast_to(values, bias.shape)), axis
            )
        except OverflowError:
            continue
        return d.replace(srcs=(new_acc,), name=n.name)
    return None


def _merge_bias(acc: Node, values: np.ndarray, axis: int) -> Node | None:
    """An accumulator that already ends in `+ broadcast(int32 constant)` on the same axis takes
    `values` into that constant (one bias add, not two)."""
    if acc.op is not Op.ADD:
        return None
    inner, spread = acc.srcs
    if spread.op is not Op.BROADCAST_IN_DIM or list(spread.attrs["dims"]) != [axis]:
        return None
    if spread.srcs[0].op is not Op.CONSTANT or spread.srcs[0].type.rank != 1:
        return None
    old = spread.srcs[0].attrs["value"].array.astype(np.int64)
    try:
        total = _int32(np.broadcast_to(old + values.astype(np.int64), (acc.shape[axis],)))
    except OverflowError:
        return None
    return _channel_bias(inner, total, axis)


@register
class FoldQdq(Pass):
    """Fold dequantize -> dot_general/conv2d (+ bias) into an int32 contraction and a dequantize.

    The operands must be a per-tensor dequantized activation (i8, or u8 with a zero point; conv2d
    only i8) and per-tensor or per-output-channel dequantized int8 constant weights. The
    contraction then accumulates exactly in int32; a constant float bias added after it is
    quantized to int32 in the accumulator's scale, and an activation zero point z becomes the
    constant -z * (column sums of w) in that same bias. Results equal the float path up to float
    rounding of the dequantized operands and of the bias.
    """

    name = "fold-qdq"

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        def fold(node: Node) -> Node | None:
            new = fold_contraction(node)
            if new is not None:
                ctx.remark(self.name, f"{node.op.value} on {node.srcs[0].srcs[0].dtype.value}")
                return new
            new = fold_bias(node)
            if new is not None:
                ctx.remark(self.name, "int32 bias")
            return new

        return rewrite_function(fn, fold)


def _same_params(q: Node, d: Node) -> bool:
    return (
        list(q.attrs["scale"]) == list(d.attrs["scale"])
        and list(q.attrs["zero_point"]) == list(d.attrs["zero_point"])
        and (q.attrs["axis"] == d.attrs["axis"] or len(q.attrs["scale"]) == 1)
    )


def cancel(n: Node) -> Node | None:
    """quantize(dequantize(q)): q itself with equal parameters, else a requantize."""
    if n.op is not Op.QUANTIZE or n.srcs[0].op is not Op.DEQUANTIZE:
        return None
    d = n.srcs[0]
    q = d.srcs[0]
    if q.dtype is n.dtype and _same_params(n, d):
        return q
    if len(n.attrs["scale"]) != 1 or any(d.attrs["zero_point"]) or q.dtype is DType.I32:
        return None  # requantize has no input zero point; i32 inputs are fold-requantize's
    (out_scale,) = n.attrs["scale"]
    factors = [fixed_point(s / out_scale) for s in d.attrs["scale"]]
    wide = make_node(Op.CONVERT, (q,), {"dtype": DType.I32}, loc=n.loc)
    attrs = {
        "multiplier": [m for m, _ in factors],
        "shift": [s for _, s in factors],
        "zero_point": n.attrs["zero_point"][0],
        "axis": d.attrs["axis"],
        "dtype": n.dtype,
    }
    return make_node(Op.REQUANTIZE, (wide,), attrs, name=n.name, loc=n.loc)


@register
class CancelQdq(Pass):
    """Cancel dequantize -> quantize pairs: equal parameters give the integer value back.

    `quantize(dequantize(q))` with the same scales, zero points and type is `q` exactly (every
    dequantized value is a multiple of the scale, which quantize rounds back). With different
    per-tensor output parameters and no input zero point it becomes `requantize(convert(q))`,
    integer-only, which may differ from the float path by one step (as `fold-requantize`).
    """

    name = "cancel-qdq"

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        def fold(node: Node) -> Node | None:
            new = cancel(node)
            if new is not None:
                kind = "requantize" if new.op is Op.REQUANTIZE else "cancelled"
                ctx.remark(self.name, f"{kind}: {node.name or node.op.value}")
            return new

        return rewrite_function(fn, fold)


def identity_requantize(n: Node) -> Node | None:
    """requantize(x) by exactly 1, zero point 0, clamped to x's own full range -> x."""
    if n.op is not Op.REQUANTIZE or n.attrs["zero_point"]:
        return None
    x = n.srcs[0]
    if x.op is Op.CONVERT and x.srcs[0].dtype is n.dtype and n.dtype.is_int:
        x = x.srcs[0]  # the convert only widened to the accumulator type
    if x.dtype is not n.dtype:
        return None
    if x.dtype is DType.I32 and any(s < 0 for s in n.attrs["shift"]):
        return None  # the left shift saturates large int32 values first
    one = all(
        m * 2 ** (-s) == 1 << 31
        for m, s in zip(n.attrs["multiplier"], n.attrs["shift"], strict=True)
    )
    lo, hi = int_range(n.dtype)
    if not one or n.attrs["min"] != lo or n.attrs["max"] != hi:
        return None
    return x


@register
class DropIdentityRequantize(Pass):
    """Remove a requantize whose factor is exactly 1 with zero point 0 and no clamping.

    Such a requantize returns its operand unchanged (a widened int8 value rescaled by 1 and
    clamped to int8 is itself); it appears when two layers happen to share a scale.
    """

    name = "drop-requantize"

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        def drop(node: Node) -> Node | None:
            new = identity_requantize(node)
            if new is not None:
                ctx.remark(self.name, f"dropped {node.name or 'requantize'}")
            return new

        return rewrite_function(fn, drop)
