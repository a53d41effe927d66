"""Building IR: typed node construction and a function builder shared by every front end.

The graph-file parser, the @jit tracer, the samples and the tests all create nodes through
`make_node`, so every node that exists has passed its op's type rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.attrs import ConstData, WeightRef
from ir.diagnostics import GraphTypeError, Loc, ShapeError
from ir.dtypes import DType
from ir.graph import Function, Node
from ir.ops import ELEMENTWISE, Op
from ir.typerules import infer
from ir.types import TensorType


def make_node(
    op: Op,
    srcs: Sequence[Node] = (),
    attrs: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    loc: Loc | None = None,
    attr_locs: Mapping[str, Loc] | None = None,
    src_locs: Sequence[Loc] | None = None,
) -> Node:
    """Create a node, inferring its type. Raises GraphTypeError naming the op on bad input.

    The error is located at `loc`, or at the offending attribute or operand when the caller
    knows where those are (`attr_locs` by attribute name, `src_locs` by operand index).
    """
    try:
        out_type, norm = infer(op, [s.type for s in srcs], attrs or {})
    except ShapeError as e:
        at = loc
        if e.attr is not None and attr_locs and e.attr in attr_locs:
            at = attr_locs[e.attr]
        elif e.operand is not None and src_locs and e.operand < len(src_locs):
            at = src_locs[e.operand]
        raise GraphTypeError(f"{op.value}: {e}", at) from None
    return Node(op, out_type, tuple(srcs), norm, name=name, loc=loc)


def parameter(name: str, type: TensorType, loc: Loc | None = None) -> Node:
    return Node(Op.PARAMETER, type, name=name, loc=loc)


def constant(
    value: Any,
    dtype: DType | None = None,
    *,
    source: WeightRef | None = None,
    name: str | None = None,
    loc: Loc | None = None,
) -> Node:
    arr = np.asarray(value, dtype=dtype.np if dtype else None)
    if dtype is None:
        DType.from_numpy(arr.dtype)  # reject dtypes tessel does not have
    return make_node(Op.CONSTANT, (), {"value": ConstData(arr, source)}, name=name, loc=loc)


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy broadcasting of shapes; raises ShapeError when they are incompatible."""
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(
            "shapes " + ", ".join(str(list(s)) for s in shapes) + " cannot be broadcast together"
        ) from None


def broadcast_to(node: Node, shape: tuple[int, ...], loc: Loc | None = None) -> Node:
    """NumPy-style broadcast of `node` to `shape` as an explicit broadcast_in_dim (or itself)."""
    if node.shape == tuple(shape):
        return node
    return make_node(Op.BROADCAST_IN_DIM, (node,), {"shape": tuple(shape)}, loc=loc)


class FunctionBuilder:
    """Collects nodes in creation order and assembles them into a Function."""

    def __init__(self, name: str, loc: Loc | None = None) -> None:
        self.name = name
        self.loc = loc
        self.params: list[Node] = []
        self.body: list[Node] = []

    def param(self, name: str, type: TensorType, loc: Loc | None = None) -> Node:
        node = parameter(name, type, loc)
        self.params.append(node)
        return node

    def add(self, node: Node) -> Node:
        self.body.append(node)
        return node

    def op(
        self,
        op: Op,
        *srcs: Node,
        name: str | None = None,
        loc: Loc | None = None,
        implicit_broadcast: bool = False,
        **attrs: Any,
    ) -> Node:
        """Append `op(srcs)`; with implicit_broadcast, elementwise operands broadcast like NumPy."""
        if implicit_broadcast and op in ELEMENTWISE and len(srcs) > 1:
            srcs = self.broadcast_operands(op, srcs, loc)
        return self.add(make_node(op, srcs, attrs, name=name, loc=loc))

    def broadcast_operands(self, op: Op, srcs: Sequence[Node], loc: Loc | None) -> tuple[Node, ...]:
        try:
            shape = broadcast_shapes(*(s.shape for s in srcs))
        except ShapeError as e:
            raise GraphTypeError(f"{op.value}: {e}", loc) from None
        out = []
        for s in srcs:
            b = broadcast_to(s, shape, loc)
            out.append(b if b is s else self.add(b))
        return tuple(out)

    def const(self, value: Any, dtype: DType | None = None, **kw: Any) -> Node:
        return self.add(constant(value, dtype, **kw))

    def build(self, results: Sequence[Node]) -> Function:
        return Function(self.name, tuple(self.params), tuple(self.body), tuple(results), self.loc)


def matmul_attrs(lhs: TensorType, rhs: TensorType) -> dict[str, tuple[int, ...]]:
    """dot_general dimension numbers for NumPy's matmul (leading dims are batch dims)."""
    if lhs.rank == 0 or rhs.rank == 0:
        raise ValueError(f"operands must have rank at least 1, got {lhs} and {rhs}")
    inner = 0 if rhs.rank == 1 else rhs.rank - 2  # the rhs dimension that meets lhs's last
    if lhs.shape[-1] != rhs.shape[inner]:
        raise ValueError(
            f"cannot multiply {lhs} by {rhs}: lhs has {lhs.shape[-1]} columns "
            f"but rhs has {rhs.shape[inner]} rows"
        )
    if lhs.rank > 2 or rhs.rank > 2:
        if lhs.rank != rhs.rank or lhs.shape[:-2] != rhs.shape[:-2]:
            raise ValueError(
                f"batched operands must have equal batch dimensions, got {lhs} and {rhs} "
                "(broadcast the batch dimensions first)"
            )
        batch = tuple(range(lhs.rank - 2))
        return {
            "lhs_batch": batch,
            "rhs_batch": batch,
            "lhs_contract": (lhs.rank - 1,),
            "rhs_contract": (rhs.rank - 2,),
        }
    return {"lhs_contract": (lhs.rank - 1,), "rhs_contract": (0,)}
