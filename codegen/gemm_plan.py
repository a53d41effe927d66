"""What a GEMM kernel computes: which nodes it applies to, and the dot as C[b, m, n] = A B.

A node qualifies when it is a float dot_general, or an output fusion whose body is one such dot
followed by elementwise ops only (the epilogue), so every output element needs the dot at that
element alone. Dimension numbers are reduced to logical batch, M, N and K axes per operand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from codegen.gemm_micro import Axis
from ir.dtypes import DType
from ir.graph import Node
from ir.ops import ELEMENTWISE, Op

DTYPES = frozenset({DType.F32, DType.F64})  # other dtypes keep the generic emitter


@dataclass(frozen=True)
class Plan:
    """What the kernel computes: `node` (the dot, or the fusion around it) and its parts."""

    node: Node
    dot: Node
    lhs: int  # index of the dot's operands in node.srcs
    rhs: int
    root: Node | None  # the fusion body's result when there is an epilogue


def plan(node: Node) -> Plan | None:
    """A Plan when `node` is a float dot_general or an output fusion that this GEMM handles."""
    if node.op is Op.DOT_GENERAL:
        p = Plan(node, node, 0, 1, None)
    elif node.op is Op.FUSION:
        found = fusion_plan(node)
        if found is None:
            return None
        p = found
    else:
        return None
    dot = p.dot
    if dot.dtype not in DTYPES or any(s.dtype != dot.dtype for s in dot.srcs):
        return None
    return p


def fusion_plan(node: Node, epilogue_ops: frozenset[Op] = ELEMENTWISE) -> Plan | None:
    """A fusion of one dot_general and an epilogue of `epilogue_ops` applied to its result."""
    body = node.attrs["body"]
    dots = [n for n in body.body if n.op is Op.DOT_GENERAL]
    if len(dots) != 1 or len(body.results) != 1:
        return None
    dot, root = dots[0], body.results[0]
    params = [i for s in dot.srcs for i, p in enumerate(body.params) if p is s]
    if len(params) != 2 or root.shape != dot.shape:
        return None
    # The epilogue must read the dot only at the position it writes: elementwise ops all the way
    # from the dot to the result. Other operands (a broadcast bias) may be anything.
    tainted = {id(dot)}
    for n in body.body:
        if any(id(s) in tainted for s in n.srcs):
            if n.op not in epilogue_ops or n.shape != dot.shape:
                return None
            tainted.add(id(n))
    if id(root) not in tainted:
        return None
    return Plan(node, dot, params[0], params[1], None if root is dot else root)


def applicable(node: Node) -> bool:
    return plan(node) is not None


@dataclass(frozen=True)
class Geometry:
    """The dot as C[batch, m, n] = A[batch, m, k] B[batch, k, n], with each operand's axes."""

    batch: tuple[int, ...]  # output dimension sizes of each group
    m: tuple[int, ...]
    n: tuple[int, ...]
    k: int
    a: tuple[Axis, Axis, Axis]  # batch, m, k of the lhs
    b: tuple[Axis, Axis, Axis]  # batch, k, n of the rhs

    @staticmethod
    def of(dot: Node) -> Geometry:
        lhs, rhs = dot.srcs
        at = dot.attrs
        lb, rb, lc, rc = at["lhs_batch"], at["rhs_batch"], at["lhs_contract"], at["rhs_contract"]
        lfree = [d for d in range(lhs.type.rank) if d not in lb and d not in lc]
        rfree = [d for d in range(rhs.type.rank) if d not in rb and d not in rc]
        return Geometry(
            batch=tuple(lhs.shape[d] for d in lb),
            m=tuple(lhs.shape[d] for d in lfree),
            n=tuple(rhs.shape[d] for d in rfree),
            k=math.prod(lhs.shape[d] for d in lc),
            a=(Axis.of(lhs.shape, lb), Axis.of(lhs.shape, lfree), Axis.of(lhs.shape, lc)),
            b=(Axis.of(rhs.shape, rb), Axis.of(rhs.shape, rc), Axis.of(rhs.shape, rfree)),
        )

    @property
    def sizes(self) -> tuple[int, int, int]:
        return math.prod(self.batch), math.prod(self.m), math.prod(self.n)
