"""Which parts of a graph the TPU runs: a contraction with constant weights and its epilogue.

A region is a `dot_general` (lhs [..., K] contracted on its last dimension with a constant
[K, N] or [N, K]) or a `conv2d` (NHWC x constant HWIO), whose operands are the chip's input
type and whose result is its accumulator type, followed by the single-use chain the activation
unit can apply per output column:

- int8 chip:  [add per-column int32 bias] [relu] [requantize to i8, per tensor or per column]
- bf16 chip:  [add per-column f32 bias] [relu | sigmoid | tanh] [convert to bf16]

The tpu-place pass wraps each region into a `fusion {device = tpu}`; the code generator reads
the same region back out of the fusion body with `match`, so both agree by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from codegen.tpu.kernels import ConvShape, Epilogue
from ir.dtypes import DType
from ir.graph import Function, Node
from ir.ops import Op
from runtime.interp import run_op
from runtime.tpu.isa import Func

INPUT = {"int8": DType.I8, "bf16": DType.BF16}
ACCUMULATOR = {"int8": DType.I32, "bf16": DType.F32}
FLOAT_FUNCS = {Op.RELU: Func.RELU, Op.SIGMOID: Func.SIGMOID, Op.TANH: Func.TANH}


@dataclass(frozen=True)
class Region:
    core: Node  # the dot_general or conv2d
    activation: Node  # its non-constant operand
    weights: np.ndarray  # [K, N] for a GEMM, HWIO for a convolution
    epilogue: Epilogue
    chain: tuple[Node, ...]  # the epilogue's nodes, in order
    absorbed: tuple[Node, ...]  # the constants and broadcasts that go into the region

    @property
    def root(self) -> Node:
        return self.chain[-1] if self.chain else self.core

    @property
    def members(self) -> tuple[Node, ...]:
        return (self.core, *self.chain, *self.absorbed)

    def conv_shape(self) -> ConvShape:
        a = self.core.attrs
        n, h, w, cin = self.activation.shape
        kh, kw, _, cout = self.weights.shape
        (pt, pb), (pl, pr) = a["padding"]
        return ConvShape(
            n,
            h,
            w,
            cin,
            kh,
            kw,
            cout,
            self.core.shape[1],
            self.core.shape[2],
            tuple(a["strides"]),
            tuple(a["dilation"]),
            ((pt, pb), (pl, pr)),
            a["groups"],
        )


Users = Callable[[Node], list[Node]]


def why_not(node: Node, multiplier: str) -> str | None:
    """Why a contraction cannot be a TPU region's core (None: it can)."""
    if node.op not in (Op.DOT_GENERAL, Op.CONV2D):
        return "not a contraction"
    x, w = node.srcs
    want = INPUT[multiplier]
    if x.dtype is not want or w.dtype is not want:
        return f"operands are {x.dtype}, {w.dtype}; the {multiplier} chip multiplies {want}"
    if node.dtype is not ACCUMULATOR[multiplier]:
        return f"result is {node.dtype}, the chip accumulates in {ACCUMULATOR[multiplier]}"
    if _constant_weights(w) is None:
        return "the weights are not a constant (they must live in weight memory)"
    if node.op is Op.DOT_GENERAL:
        a = node.attrs
        if a["lhs_batch"] or a["rhs_batch"]:
            return "batched dot_general"
        if tuple(a["lhs_contract"]) != (len(x.shape) - 1,) or len(w.shape) != 2:
            return "only lhs[..., K] x rhs[K, N] (or [N, K]) contractions"
    return None


def match(core: Node, users: Users, multiplier: str) -> Region:
    """The region around `core` (which `why_not` accepted): its epilogue chain and weights."""
    x, w_node = core.srcs
    weights, absorbed = _constant_weights(w_node)  # type: ignore[misc]
    if core.op is Op.DOT_GENERAL and tuple(core.attrs["rhs_contract"]) == (1,):
        weights = weights.T
    n = core.shape[-1]
    chain: list[Node] = []
    fields: dict[str, object] = {"wide": True}
    node = core
    for step in _STEPS[multiplier]:
        nxt = _single_user(node, users)
        if nxt is None:
            break
        taken = step(nxt, node, n, fields, absorbed)
        if taken:
            chain.append(nxt)
            node = nxt
    return Region(core, x, weights, Epilogue(**fields), tuple(chain), tuple(absorbed))  # type: ignore[arg-type]


def _constant_weights(w: Node) -> tuple[np.ndarray, list[Node]] | None:
    """A constant, or a conversion of one (what bf16-mixed leaves unfolded for large weights),
    evaluated here with the reference's conversion."""
    if w.op is Op.CONSTANT:
        return np.asarray(w.attrs["value"].array), [w]
    if w.op is Op.CONVERT and w.srcs[0].op is Op.CONSTANT:
        value = np.asarray(w.srcs[0].attrs["value"].array)
        return run_op(Op.CONVERT, value, dtype=w.dtype), [w, w.srcs[0]]
    return None


def _single_user(node: Node, users: Users) -> Node | None:
    used_by = users(node)
    return used_by[0] if len(used_by) == 1 else None


def _column_constant(b: Node, n: int) -> tuple[np.ndarray, list[Node]] | None:
    """A per-column bias: broadcast_in_dim of a constant [N] along the last dimension."""
    if b.op is not Op.BROADCAST_IN_DIM or b.srcs[0].op is not Op.CONSTANT:
        return None
    dims = tuple(b.attrs["dims"]) if b.attrs["dims"] is not None else None
    src = b.srcs[0]
    if src.shape == (n,) and dims in (None, (len(b.shape) - 1,)):
        return np.asarray(src.attrs["value"].array), [b, src]
    if src.shape in ((), (1,)):
        return np.broadcast_to(np.asarray(src.attrs["value"].array).reshape(()), (n,)), [b, src]
    return None


def _bias(nxt: Node, prev: Node, n: int, f: dict[str, object], absorbed: list[Node]) -> bool:
    if nxt.op is not Op.ADD or nxt.srcs[0] is not prev:
        return False
    found = _column_constant(nxt.srcs[1], n)
    if found is None:
        return False
    f["bias"], nodes = found
    absorbed.extend(nodes)
    return True


def _int_relu(nxt: Node, prev: Node, n: int, f: dict[str, object], absorbed: list[Node]) -> bool:
    if nxt.op is not Op.RELU:
        return False
    f["func"] = Func.RELU
    return True


def _requantize(nxt: Node, prev: Node, n: int, f: dict[str, object], absorbed: list[Node]) -> bool:
    a = nxt.attrs
    if nxt.op is not Op.REQUANTIZE or a["dtype"] is not DType.I8:
        return False
    if a["axis"] is not None and a["axis"] != len(nxt.shape) - 1 and len(a["multiplier"]) > 1:
        return False
    lo = -128 if a["min"] is None else a["min"]
    if f.get("func") is Func.RELU:  # relu before requantize: a clamp at the zero point
        lo = max(lo, a["zero_point"])
        f["func"] = Func.IDENTITY
    f.update(
        wide=False,
        zero_point=a["zero_point"],
        lo=lo,
        hi=127 if a["max"] is None else a["max"],
        multiplier=np.broadcast_to(np.asarray(a["multiplier"], np.int32), (n,)),
        shift=np.broadcast_to(np.asarray(a["shift"], np.int32), (n,)),
    )
    if "bias" not in f:
        f["bias"] = np.zeros(n, np.int32)
    return True


def _float_func(nxt: Node, prev: Node, n: int, f: dict[str, object], absorbed: list[Node]) -> bool:
    if nxt.op not in FLOAT_FUNCS:
        return False
    f["func"] = FLOAT_FUNCS[nxt.op]
    return True


def _to_bf16(nxt: Node, prev: Node, n: int, f: dict[str, object], absorbed: list[Node]) -> bool:
    if nxt.op is not Op.CONVERT or nxt.dtype is not DType.BF16:
        return False
    f["wide"] = False
    return True


_STEPS = {
    "int8": (_bias, _int_relu, _requantize),
    "bf16": (_bias, _float_func, _to_bf16),
}


def regions_of(fn: Function, multiplier: str) -> tuple[list[Region], dict[Node, str]]:
    """Every region in `fn`, and why each other contraction stays on the host."""
    users = fn.users()
    for r in fn.results:
        users.setdefault(r, []).append(r)  # a result is used outside: nothing absorbs it

    def users_of(n: Node) -> list[Node]:
        return users.get(n, [])

    regions, rejected = [], {}
    for node in fn.nodes():
        if node.op not in (Op.DOT_GENERAL, Op.CONV2D):
            continue
        reason = why_not(node, multiplier)
        if reason is None:
            regions.append(match(node, users_of, multiplier))
        else:
            rejected[node] = reason
    return regions, rejected
