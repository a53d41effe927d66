"""Algebraic simplification as a declarative list of rewrite rules.

Each rule is a small function registered with the ops it applies to and its algebra as a one-line
docstring. A rule sees a node whose operands are already canonical and returns a replacement of
the same type, or None. Rules are exact under IEEE arithmetic unless marked `fast_math`: those
ignore the sign of zero and NaN/inf propagation and only run with `canonicalize{fast-math=true}`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

from ir.attrs import ConstData
from ir.builder import make_node
from ir.dtypes import DType
from ir.graph import Function, Node
from ir.ops import COMMUTATIVE, ELEMENTWISE, Op
from passes.base import Pass, PassContext, register
from passes.rewrite import rewrite_function

RuleFn = Callable[[Node], Node | None]


@dataclass(frozen=True)
class Rule:
    name: str
    ops: frozenset[Op]
    apply: RuleFn
    algebra: str
    fast_math: bool = False


RULES: list[Rule] = []


def rule(*ops: Op, fast_math: bool = False) -> Callable[[RuleFn], RuleFn]:
    def add(fn: RuleFn) -> RuleFn:
        algebra = (fn.__doc__ or "").strip()
        RULES.append(Rule(fn.__name__, frozenset(ops), fn, algebra, fast_math))
        return fn

    return add


# --- helpers ----------------------------------------------------------------------------------


def splat(node: Node) -> float | int | bool | None:
    """The single value of a constant whose elements are all equal (seen through broadcasts)."""
    while node.op is Op.BROADCAST_IN_DIM:
        node = node.srcs[0]
    if node.op is not Op.CONSTANT:
        return None
    arr = node.attrs["value"].array
    if arr.size == 0 or arr.dtype.kind == "c":  # the identities here are for real numbers
        return None
    flat = arr.reshape(-1)
    first = flat[0]
    signs = np.signbit(flat.astype(np.float64))
    if not (flat == first).all() or (signs != signs[0]).any():
        return None  # not a splat; ±0 mixes compare equal but are different values
    return (
        bool(first)
        if flat.dtype == bool
        else int(first)
        if flat.dtype.kind in "iu"
        else float(first)
    )


def _is(node: Node, value: float, negative_zero: bool | None = None) -> bool:
    v = splat(node)
    if v is None or v != value:
        return False
    return negative_zero is None or bool(np.signbit(float(v))) == negative_zero


def like(node: Node, op: Op, *srcs: Node, **attrs: object) -> Node:
    """A new node computing `op` that keeps `node`'s name hint and source location."""
    return make_node(op, srcs, attrs, name=node.name, loc=node.loc)


def filled(node: Node, value: float | int | bool) -> Node:
    """`value` in every element of `node`'s type: a scalar constant, broadcast if needed."""
    scalar = make_node(Op.CONSTANT, (), {"value": ConstData(np.asarray(value, node.dtype.np))})
    if node.type.rank == 0:
        return scalar.replace(name=node.name, loc=node.loc)
    return like(node, Op.BROADCAST_IN_DIM, scalar, shape=node.shape)


# --- arithmetic identities --------------------------------------------------------------------


@rule(*COMMUTATIVE)
def constant_to_the_right(n: Node) -> Node | None:
    """c ∘ x = x ∘ c for commutative ∘; one order for CSE and for the rules below"""
    a, b = n.srcs
    if splat(a) is not None and splat(b) is None:
        return n.replace(srcs=(b, a))
    return None


@rule(Op.ADD)
def add_zero(n: Node) -> Node | None:
    """x + (-0.0) = x exactly; x + 0 = x for integers (for floats only fast-math: -0 + 0 = +0)"""
    x, c = n.srcs
    if n.dtype.is_float:
        return x if _is(c, 0, negative_zero=True) else None
    return x if _is(c, 0) else None


@rule(Op.ADD, fast_math=True)
def add_positive_zero(n: Node) -> Node | None:
    """x + 0.0 = x except that -0.0 + 0.0 = +0.0"""
    return n.srcs[0] if _is(n.srcs[1], 0) else None


@rule(Op.SUB)
def sub_zero(n: Node) -> Node | None:
    """x - 0 = x (exact, also for -0.0 - 0.0 = -0.0)"""
    x, c = n.srcs
    return x if _is(c, 0, negative_zero=False if n.dtype.is_float else None) else None


@rule(Op.MUL, Op.DIV)
def times_one(n: Node) -> Node | None:
    """x * 1 = x / 1 = x (exact, NaN stays NaN)"""
    x, c = n.srcs
    return x if _is(c, 1) else None


@rule(Op.MUL)
def times_zero_int(n: Node) -> Node | None:
    """x * 0 = 0 for integers"""
    return filled(n, 0) if n.dtype.is_int and _is(n.srcs[1], 0) else None


@rule(Op.MUL, fast_math=True)
def times_zero_float(n: Node) -> Node | None:
    """x * 0.0 = 0.0 unless x is NaN, ±inf or negative"""
    return filled(n, 0) if n.dtype.is_float and _is(n.srcs[1], 0) else None


@rule(Op.SUB)
def sub_self_int(n: Node) -> Node | None:
    """x - x = 0 for integers (inf - inf is NaN for floats)"""
    a, b = n.srcs
    return filled(n, 0) if a is b and n.dtype.is_int else None


@rule(Op.MAX, Op.MIN, Op.AND, Op.OR)
def idempotent(n: Node) -> Node | None:
    """max(x, x) = min(x, x) = x & x = x | x = x"""
    a, b = n.srcs
    return a if a is b else None


@rule(Op.POW)
def pow_small(n: Node) -> Node | None:
    """x ** 1 = x; x ** 2 = x * x (both correctly rounded)"""
    x, c = n.srcs
    if _is(c, 1):
        return x
    if _is(c, 2):
        return like(n, Op.MUL, x, x)
    return None


@rule(Op.NEG, Op.NOT)
def involution(n: Node) -> Node | None:
    """-(-x) = x; not(not x) = x"""
    (x,) = n.srcs
    return x.srcs[0] if x.op is n.op else None


@rule(Op.ABS, Op.RELU, Op.FLOOR, Op.CEIL, Op.SIGN)
def idempotent_unary(n: Node) -> Node | None:
    """f(f(x)) = f(x) for abs, relu, floor, ceil, sign"""
    (x,) = n.srcs
    return x if x.op is n.op else None


@rule(Op.SELECT)
def select_known(n: Node) -> Node | None:
    """select(true, a, b) = a; select(false, a, b) = b; select(p, a, a) = a"""
    p, a, b = n.srcs
    if a is b:
        return a
    v = splat(p)
    if v is None:
        return None
    return a if v else b


# --- data movement ----------------------------------------------------------------------------


@rule(Op.CONVERT)
def convert_noop(n: Node) -> Node | None:
    """convert(x: T, T) = x"""
    (x,) = n.srcs
    return x if x.dtype == n.dtype else None


def _bits(dtype: DType) -> tuple[int, int]:
    """(significand bits, largest exponent) of a float type."""
    info: Any = ml_dtypes.finfo(dtype.np)  # type: ignore[no-untyped-call]
    return int(info.nmant) + 1, int(info.maxexp)


def _int_range(dtype: DType) -> tuple[int, int]:
    info: Any = np.iinfo(dtype.np)
    return int(info.min), int(info.max)


def exactly_representable(src: DType, dst: DType) -> bool:
    """Every value of `src` converts to `dst` and back unchanged."""
    if src == dst or src == DType.BOOL:
        return True
    if dst == DType.BOOL or (src.is_float and not dst.is_float):
        return False
    if src.is_float:
        (src_digits, src_exp), (dst_digits, dst_exp) = _bits(src), _bits(dst)
        return dst_digits >= src_digits and dst_exp >= src_exp
    lo, hi = _int_range(src)
    if dst.is_float:
        return max(-lo, hi).bit_length() <= _bits(dst)[0]
    out_lo, out_hi = _int_range(dst)
    return out_lo <= lo and hi <= out_hi


@rule(Op.CONVERT)
def convert_round_trip(n: Node) -> Node | None:
    """convert(convert(x: T, U), T) = x when U holds every value of T"""
    (inner,) = n.srcs
    if inner.op is not Op.CONVERT:
        return None
    x = inner.srcs[0]
    if x.dtype == n.dtype and exactly_representable(x.dtype, inner.dtype):
        return x
    return None


@rule(Op.TRANSPOSE)
def transpose_identity(n: Node) -> Node | None:
    """transpose(x, [0, 1, ..., r-1]) = x"""
    return n.srcs[0] if n.attrs["perm"] == tuple(range(n.type.rank)) else None


@rule(Op.TRANSPOSE)
def transpose_of_transpose(n: Node) -> Node | None:
    """transpose(transpose(x, p), q) = transpose(x, p∘q), i.e. perm[i] = p[q[i]]"""
    (inner,) = n.srcs
    if inner.op is not Op.TRANSPOSE:
        return None
    p, q = inner.attrs["perm"], n.attrs["perm"]
    perm = tuple(p[i] for i in q)
    x = inner.srcs[0]
    return x if perm == tuple(range(x.type.rank)) else like(n, Op.TRANSPOSE, x, perm=perm)


@rule(Op.RESHAPE)
def reshape_noop_or_chain(n: Node) -> Node | None:
    """reshape(x: S, S) = x; reshape(reshape(x), S) = reshape(x, S) (row-major order is kept)"""
    (x,) = n.srcs
    if x.shape == n.shape:
        return x
    if x.op is Op.RESHAPE:
        inner = x.srcs[0]
        return inner if inner.shape == n.shape else like(n, Op.RESHAPE, inner, shape=n.shape)
    return None


@rule(Op.BROADCAST_IN_DIM)
def broadcast_noop(n: Node) -> Node | None:
    """broadcast_in_dim(x: S, S, dims=identity) = x"""
    (x,) = n.srcs
    return x if x.shape == n.shape and n.attrs["dims"] == tuple(range(x.type.rank)) else None


@rule(Op.BROADCAST_IN_DIM)
def broadcast_of_broadcast(n: Node) -> Node | None:
    """broadcast(broadcast(x, dims=d1), dims=d2) = broadcast(x, dims=d2∘d1)"""
    (inner,) = n.srcs
    if inner.op is not Op.BROADCAST_IN_DIM:
        return None
    dims = tuple(n.attrs["dims"][d] for d in inner.attrs["dims"])
    return like(n, Op.BROADCAST_IN_DIM, inner.srcs[0], shape=n.shape, dims=dims)


@rule(*ELEMENTWISE)
def elementwise_of_scalar_broadcasts(n: Node) -> Node | None:
    """f(broadcast(a), broadcast(b)) = broadcast(f(a, b)) for scalars a, b: compute once, fold"""
    if not n.srcs or n.type.rank == 0:
        return None
    if not all(s.op is Op.BROADCAST_IN_DIM and s.srcs[0].type.rank == 0 for s in n.srcs):
        return None
    scalar = like(n, n.op, *(s.srcs[0] for s in n.srcs), **n.attrs)
    return like(n, Op.BROADCAST_IN_DIM, scalar.replace(name=None), shape=n.shape)


@rule(Op.SLICE)
def slice_everything(n: Node) -> Node | None:
    """x[0:d:1, ...] = x"""
    return n.srcs[0] if n.shape == n.srcs[0].shape and set(n.attrs["stride"]) <= {1} else None


@rule(Op.REVERSE)
def reverse_nothing(n: Node) -> Node | None:
    """reverse(x, dims=[]) = x"""
    return n.srcs[0] if not n.attrs["dims"] else None


@rule(Op.REVERSE)
def reverse_of_reverse(n: Node) -> Node | None:
    """reverse(reverse(x, d1), d2) = reverse(x, d1 △ d2): an axis reversed twice is unchanged"""
    (inner,) = n.srcs
    if inner.op is not Op.REVERSE:
        return None
    dims = tuple(sorted(set(inner.attrs["dims"]) ^ set(n.attrs["dims"])))
    x = inner.srcs[0]
    return like(n, Op.REVERSE, x, dims=dims) if dims else x


@rule(Op.PAD)
def pad_nothing(n: Node) -> Node | None:
    """pad(x, v, low=0, high=0, interior=0) = x"""
    a = n.attrs
    return n.srcs[0] if not any(a["low"] + a["high"] + a["interior"]) else None


@rule(Op.CONCATENATE)
def concatenate_one(n: Node) -> Node | None:
    """concatenate(x) = x"""
    return n.srcs[0] if len(n.srcs) == 1 else None


@rule(Op.REDUCE, Op.MEAN)
def reduce_nothing(n: Node) -> Node | None:
    """reduce(x, axes=[]) = x; mean(x, axes=[]) = x"""
    return n.srcs[0] if not n.attrs["axes"] else None


@rule(Op.DOT_GENERAL)
def transpose_into_dot(n: Node) -> Node | None:
    """dot(transpose(a, p), b) = dot(a, b) with a's dimension numbers mapped through p
    (and likewise for b), when p keeps the free dimensions in order, so the output is unchanged"""
    a = dict(n.attrs)
    srcs = list(n.srcs)
    changed = False
    for side, i in (("lhs", 0), ("rhs", 1)):
        t = srcs[i]
        if t.op is not Op.TRANSPOSE:
            continue
        perm = t.attrs["perm"]
        bound = set(a[f"{side}_batch"]) | set(a[f"{side}_contract"])
        free = [perm[d] for d in range(len(perm)) if d not in bound]
        if free != sorted(free):
            continue
        for key in (f"{side}_batch", f"{side}_contract"):
            a[key] = tuple(perm[d] for d in a[key])
        srcs[i] = t.srcs[0]
        changed = True
    return like(n, Op.DOT_GENERAL, *srcs, **a) if changed else None


@rule(Op.GET)
def get_loop_invariant(n: Node) -> Node | None:
    """get(while(..., x_k, ...), k) = x_k when the body returns its parameter k unchanged
    (for a `for`, whose operands and body parameters start with two bounds and an index:
    get(for(lo, hi, ..., x_k, ...), k) = x_k when the body returns parameter k + 1)"""
    (loop,) = n.srcs
    if loop.op is not Op.WHILE and loop.op is not Op.FOR:
        return None
    k, body = n.attrs["index"], loop.attrs["body"]
    shift = 1 if loop.op is Op.FOR else 0
    return loop.srcs[k + 2 * shift] if body.results[k] is body.params[k + shift] else None


@rule(Op.GET)
def get_taken_side(n: Node) -> Node | None:
    """get(cond(c, x...), k) = result k of the side c picks, computed on x, when c is constant"""
    (branch,) = n.srcs
    if branch.op is not Op.COND or branch.srcs[0].op is not Op.CONSTANT:
        return None
    side = branch.attrs["true_branch" if splat(branch.srcs[0]) else "false_branch"]
    mapping: dict[Node, Node] = dict(zip(side.params, branch.srcs[1:], strict=True))
    for inner in side.body:
        mapping[inner] = inner.replace(srcs=tuple(mapping[s] for s in inner.srcs))
    return mapping[side.results[n.attrs["index"]]]


@rule(Op.GET)
def get_passed_through_both_sides(n: Node) -> Node | None:
    """get(cond(c, x...), k) = x_j when both sides return their parameter j as result k"""
    (branch,) = n.srcs
    if branch.op is not Op.COND:
        return None
    k = n.attrs["index"]
    t, f = branch.attrs["true_branch"], branch.attrs["false_branch"]
    if t.results[k] not in t.params:
        return None
    j = t.params.index(t.results[k])
    return branch.srcs[1 + j] if f.results[k] is f.params[j] else None


@rule(Op.FOR)
def loop_index_in_range(n: Node) -> Node | None:
    """for(lo, hi, ...) with constant bounds: a checked gather or scatter in the body whose
    indices are the loop index (converted, reshaped, broadcast, plus or minus a constant) and
    always name a position of their axes → mode clip (no check can fail, so none is made)"""
    lo, hi = splat(n.srcs[0]), splat(n.srcs[1])
    if not isinstance(lo, int) or not isinstance(hi, int) or hi <= lo:
        return None
    body: Function = n.attrs["body"]
    ranges = _index_ranges(body, (lo, hi - 1))
    changed = False

    def clip(node: Node) -> Node | None:
        nonlocal changed
        if node.op not in (Op.GATHER, Op.SCATTER) or node.attrs["mode"] != "check":
            return None
        span = ranges.get(node.srcs[1])
        axis, k = node.attrs["axis"], node.srcs[1].shape[-1]
        sizes = node.srcs[0].shape[axis : axis + k]
        if span is None or span[0] < 0 or any(span[1] >= size for size in sizes):
            return None
        changed = True
        return node.replace(attrs=node.attrs.replace(mode="clip"))

    new = rewrite_function(body, clip)
    return n.replace(attrs=n.attrs.replace(body=new)) if changed else None


def _index_ranges(body: Function, index: tuple[int, int]) -> dict[Node, tuple[int, int]]:
    """The values of `body` computed from its first parameter (a loop index in `index`,
    inclusive) by ops that keep every element within a known interval."""
    ranges = {body.params[0]: index}
    for node in body.body:
        spans = [ranges.get(s) for s in node.srcs]
        if node.op in (Op.CONVERT, Op.RESHAPE, Op.BROADCAST_IN_DIM) and spans[0] is not None:
            span: tuple[int, int] | None = spans[0]
        elif node.op in (Op.ADD, Op.SUB) and node.dtype.is_int:
            k = [splat(s) for s in node.srcs]
            if spans[0] is not None and isinstance(k[1], int):
                step = k[1] if node.op is Op.ADD else -k[1]
                span = (spans[0][0] + step, spans[0][1] + step)
            elif node.op is Op.ADD and spans[1] is not None and isinstance(k[0], int):
                span = (spans[1][0] + k[0], spans[1][1] + k[0])
            else:
                span = None
        else:
            span = None
        if span is not None and node.dtype.is_int:
            info = np.iinfo(node.dtype.np)  # type: ignore[type-var]
            if info.min <= span[0] and span[1] <= info.max:  # no wrap-around
                ranges[node] = span
    return ranges


# --- the pass ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CanonicalizeOptions:
    fast_math: bool = False  # also apply rules that ignore signed zeros and NaN/inf
    max_iterations: int = 8  # rounds over the whole function until nothing changes

    def __post_init__(self) -> None:
        if self.max_iterations < 1:
            raise ValueError(f"max-iterations must be at least 1, got {self.max_iterations}")


@register
class Canonicalize(Pass):
    """Algebraic simplification: x+0, x*1, --x, transpose/reshape/broadcast chains, and more.

    Applies the declarative RULES in `passes/canonicalize.py` bottom-up until a fixed point.
    Every rule is exact in IEEE arithmetic unless the fast-math option enables the ones that
    are not. Keeps: types of all values, name hints of rewritten nodes, the schedule order.
    """

    name = "canonicalize"
    Options = CanonicalizeOptions

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        table: dict[Op, list[Rule]] = {}
        for r in RULES:
            if self.options.fast_math or not r.fast_math:
                for op in r.ops:
                    table.setdefault(op, []).append(r)

        def simplify(node: Node) -> Node | None:
            current = node
            for _ in range(64):  # rules shrink or reorder; the bound only guards against bugs
                for r in table.get(current.op, ()):
                    new = r.apply(current)
                    if new is not None:
                        ctx.remark(self.name, f"{r.name}: {current.op.value} -> {new.op.value}")
                        current = new
                        break
                else:
                    break
            return None if current is node else current

        for _ in range(self.options.max_iterations):
            new = rewrite_function(fn, simplify)
            if new is fn:
                break
            fn = new
        return fn
