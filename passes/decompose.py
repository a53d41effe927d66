"""Composite ops (softmax, mean, avg_pool) rewritten into primitives, for backends that need it."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ir.attrs import ConstData
from ir.builder import make_node
from ir.dtypes import DType
from ir.graph import Function, Node
from ir.ops import COMPOSITE, Op
from passes.base import Pass, PassContext, register
from passes.rewrite import rewrite_function

NARROW = frozenset({DType.F16, DType.BF16})  # computed in f32 then rounded, like the reference


class _Emit:
    """Builds the replacement nodes of one composite, all carrying its source location."""

    def __init__(self, node: Node) -> None:
        self.loc = node.loc

    def __call__(self, op: Op, *srcs: Node, name: str | None = None, **attrs: Any) -> Node:
        return make_node(op, srcs, attrs, name=name, loc=self.loc)

    def const(self, value: Any, dtype: DType) -> Node:
        arr = np.asarray(value, dtype=dtype.np)
        return self(Op.CONSTANT, value=ConstData(arr))

    def spread(self, small: Node, like: Node, kept: tuple[int, ...]) -> Node:
        """Broadcast `small` (whose dims are `like`'s dims `kept`) back to `like`'s shape."""
        return self(Op.BROADCAST_IN_DIM, small, shape=like.shape, dims=kept)

    def widen(self, x: Node) -> Node:
        return self(Op.CONVERT, x, dtype=DType.F32) if x.dtype in NARROW else x

    def finish(self, out: Node, composite: Node) -> Node:
        """The result, rounded back to the composite's type and named like it."""
        if out.dtype != composite.dtype:
            return self(Op.CONVERT, out, dtype=composite.dtype, name=composite.name)
        return out.replace(name=composite.name)


def _softmax(n: Node) -> Node:
    """softmax(x) = e / sum(e) with e = exp(x - max(x)) along the axis"""
    emit, axis = _Emit(n), n.attrs["axis"]
    x = emit.widen(n.srcs[0])
    kept = tuple(d for d in range(x.type.rank) if d != axis)
    peak = emit(Op.REDUCE, x, kind="max", axes=(axis,))
    e = emit(Op.EXP, emit(Op.SUB, x, emit.spread(peak, x, kept)))
    total = emit(Op.REDUCE, e, kind="sum", axes=(axis,))
    out = emit(Op.DIV, e, emit.spread(total, e, kept))
    return emit.finish(out, n)


def _mean(n: Node) -> Node:
    """mean(x, axes) = sum(x, axes) / (number of reduced elements); 0/0 = nan for empty axes"""
    emit, axes = _Emit(n), n.attrs["axes"]
    x = emit.widen(n.srcs[0])
    total = emit(Op.REDUCE, x, kind="sum", axes=axes)
    count = math.prod(x.shape[a] for a in axes)
    divisor = emit(Op.BROADCAST_IN_DIM, emit.const(count, x.dtype), shape=total.shape)
    out = emit(Op.DIV, total, divisor)
    return emit.finish(out, n)


def window_counts(size: int, window: int, stride: int, low: int, out: int) -> np.ndarray:
    """How many unpadded input positions each output position's window covers, along one axis
    (none, not a negative count, for a window wholly in the padding: its mean is 0/0 = nan)."""
    starts = np.arange(out) * stride - low
    covered = np.minimum(starts + window, size) - np.maximum(starts, 0)
    return np.asarray(np.maximum(covered, 0))


def _avg_pool(n: Node) -> Node:
    """avg_pool(x) = depthwise conv2d(x, ones) / (window size, or the count of unpadded taps)"""
    emit, a = _Emit(n), n.attrs
    x = emit.widen(n.srcs[0])
    channels = x.shape[3]
    kh, kw = a["window"]
    ones = emit.const(np.ones((kh, kw, 1, channels)), x.dtype)
    sums = emit(
        Op.CONV2D, x, ones, strides=a["strides"], padding=a["padding"], groups=max(channels, 1)
    )
    if a["count_include_pad"]:
        counts = np.full((1, 1, 1, 1), kh * kw)
    else:
        (top, _), (left, _) = a["padding"]
        oh, ow = sums.shape[1:3]
        rows = window_counts(x.shape[1], kh, a["strides"][0], top, oh)
        cols = window_counts(x.shape[2], kw, a["strides"][1], left, ow)
        counts = np.outer(rows, cols).reshape(1, oh, ow, 1)
    divisor = emit(
        Op.BROADCAST_IN_DIM, emit.const(counts, x.dtype), shape=sums.shape, dims=(0, 1, 2, 3)
    )
    out = emit(Op.DIV, sums, divisor)
    return emit.finish(out, n)


DECOMPOSITIONS: dict[Op, Callable[[Node], Node]] = {
    Op.SOFTMAX: _softmax,
    Op.MEAN: _mean,
    Op.AVG_POOL: _avg_pool,
}
assert set(DECOMPOSITIONS) >= COMPOSITE, "every composite op needs a decomposition"


@dataclass(frozen=True)
class DecomposeOptions:
    softmax: bool = True  # false: keep softmax for a backend with its own row kernel (cpu)


@register
class Decompose(Pass):
    """Rewrite composite ops (softmax, mean, avg_pool) into primitive ops.

    Backends lower only primitives; the interpreter runs composites directly, so decomposing is
    checked against the composite's reference semantics. f16/bf16 composites compute in f32 and
    round once at the end, as the reference does.
    """

    name = "decompose"
    Options = DecomposeOptions

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        def expand(node: Node) -> Node | None:
            rule = DECOMPOSITIONS.get(node.op)
            if node.op is Op.SOFTMAX and not self.options.softmax:
                return None
            return rule(node) if rule else None

        return rewrite_function(fn, expand)
