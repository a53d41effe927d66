"""Constant folding through the reference interpreter's op table (one semantics, never two)."""

from __future__ import annotations

from dataclasses import dataclass

from ir.attrs import ConstData
from ir.builder import make_node
from ir.diagnostics import IndexOutOfRange
from ir.graph import Function, Node
from ir.ops import CONTROL, SOURCES, Op
from passes.base import Pass, PassContext, register
from passes.rewrite import rewrite_function
from runtime.interp import evaluate_node

GROWTH_ALLOWANCE = 16  # results may exceed their largest input only up to this many elements


@dataclass(frozen=True)
class FoldOptions:
    max_elements: int = 1 << 16  # do not materialize results larger than this (big broadcasts)

    def __post_init__(self) -> None:
        if self.max_elements < 0:
            raise ValueError(f"max-elements must not be negative, got {self.max_elements}")


@register
class Fold(Pass):
    """Constant folding: evaluate ops whose operands are all constants at compile time.

    Values are computed by `runtime.interp.evaluate_node`, the same table that defines every op
    for the interpreter and the tests, so folding cannot change a result. Results larger than
    max-elements, or larger than their largest input (broadcasts, pads), stay as ops, so a
    bias broadcast does not become megabytes of IR.
    Keeps: types, name hints and locations of folded nodes.
    """

    name = "fold"
    Options = FoldOptions

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        def fold(node: Node) -> Node | None:
            if node.op in SOURCES | CONTROL or not all(s.op is Op.CONSTANT for s in node.srcs):
                return None
            size = node.type.size
            largest_input = max((s.type.size for s in node.srcs), default=0)
            if size > self.options.max_elements or size > max(largest_input, GROWTH_ALLOWANCE):
                return None  # a broadcast or pad would turn small data into big data
            try:
                value = evaluate_node(node, [s.attrs["value"].array for s in node.srcs])
            except IndexOutOfRange:
                return None  # reported when the program runs, as on every target
            ctx.remark(self.name, f"folded {node.op.value} : {node.type}")
            attrs = {"value": ConstData(value)}
            return make_node(Op.CONSTANT, (), attrs, name=node.name, loc=node.loc)

        return rewrite_function(fn, fold)
