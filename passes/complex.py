"""Complex numbers as pairs of real numbers, for backends that compute only on reals.

`expand-complex` gives every complex value of a function a real part and an imaginary part and
rewrites each op on complex values into ops on those parts (NumPy's formulas: a product is four
real products, a quotient follows Smith's algorithm as NumPy's does). What stays complex is the
function's boundary: a complex parameter is read with `real` and `imag`, a complex result is
made with `complex`, so callers still pass and receive NumPy complex arrays. Inside a loop's
condition and body (nested functions), a complex carried value becomes two carried values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ir.attrs import ConstData
from ir.builder import make_node, parameter
from ir.diagnostics import GraphTypeError
from ir.graph import Function, Node
from ir.ops import CONTROL, Op
from ir.types import TupleType
from passes.base import Pass, PassContext, register
from passes.rewrite import inline_fusion, rewrite_function

Pair = tuple[Node, Node]  # (real part, imaginary part)
Value = Node | Pair  # what an old node became: one real node, or a complex value's parts


def _complex(node: Node) -> bool:
    return node.dtype is not None and node.dtype.is_complex


def has_complex(fn: Function) -> bool:
    """Whether `fn` (its loops' nested functions included) computes on complex values."""
    return any(_complex(n) or _nested_complex(n) for n in fn.nodes())


def _nested_complex(node: Node) -> bool:
    if isinstance(node.type, TupleType):
        return any(t.dtype.is_complex for t in node.type.elements)
    return node.op in CONTROL and any(map(has_complex, node.functions))


# the ops a backend sees on complex values once they are expanded: the program's boundary
_BOUNDARY = frozenset({Op.PARAMETER, Op.REAL, Op.IMAG, Op.COMPLEX, Op.FUSION})


def expanded(fn: Function) -> bool:
    """Whether only the boundary ops (fusion bodies included) touch complex values in `fn`."""
    for n in fn.nodes():
        if n.op is Op.FUSION and not expanded(n.attrs["body"]):
            return False
        if n.op in CONTROL and _nested_complex(n):
            return False
        if n.op not in _BOUNDARY and (_complex(n) or any(_complex(s) for s in n.srcs)):
            return False
    return True


def _inline_complex_fusion(node: Node) -> Node | None:
    """A fusion that touches complex values, as its ops (a later `fuse` groups them again):
    through its operands or result, or only inside (`imag` of a complex constant)."""
    if node.op is not Op.FUSION:
        return None
    outside = _complex(node) or any(map(_complex, node.srcs))
    return inline_fusion(node) if outside or not expanded(node.attrs["body"]) else None


class _Expansion:
    """One function rebuilt on real values. `split`: complex parameters and results become
    two real ones (a loop's nested function); otherwise they stay complex (the program's)."""

    def __init__(self, fn: Function, split: bool) -> None:
        self.fn, self.split = fn, split
        self.values: dict[Node, Value] = {}
        self.params: list[Node] = []
        self.body: list[Node] = []
        self.made: set[Node] = set()
        self.loops: dict[Node, tuple[Node, list[int | tuple[int, int]]]] = {}
        self.loc = fn.loc

    # --- building ---
    def add(self, node: Node) -> Node:
        if node not in self.made:
            self.made.add(node)
            self.body.append(node)
        return node

    def emit(self, op: Op, *srcs: Node, name: str | None = None, **attrs: Any) -> Node:
        return self.add(make_node(op, srcs, attrs, name=name, loc=self.loc))

    def const(self, value: Any, like: Node) -> Node:
        arr = np.full(like.shape, value, like.dtype.np)
        return self.add(make_node(Op.CONSTANT, (), {"value": ConstData(arr)}, loc=self.loc))

    def each(self, op: Op, x: Pair, **attrs: Any) -> Pair:
        return self.emit(op, x[0], **attrs), self.emit(op, x[1], **attrs)

    def both(self, op: Op, x: Pair, y: Pair, **attrs: Any) -> Pair:
        return self.emit(op, x[0], y[0], **attrs), self.emit(op, x[1], y[1], **attrs)

    # --- the function ---
    def run(self) -> Function:
        for p in self.fn.params:
            self.parameter(p)
        for node in self.fn.body:
            self.loc = node.loc
            self.values[node] = self.node(node)
        results: list[Node] = []
        for r in self.fn.results:
            v = self.values[r]
            if isinstance(v, Node):
                results.append(v)
            elif self.split:
                results.extend(v)
            else:
                results.append(self.emit(Op.COMPLEX, *v, name=r.name))
        return self.fn.replace(
            params=tuple(self.params), body=tuple(self.body), results=tuple(results)
        )

    def parameter(self, p: Node) -> None:
        if not _complex(p):
            self.params.append(p)
            self.values[p] = p
            return
        if self.split:
            part = p.type.with_dtype(p.dtype.real_part)
            re, im = (parameter(f"{p.name}.{s}", part, p.loc) for s in ("re", "im"))
            self.params += [re, im]
            self.values[p] = (re, im)
            return
        self.params.append(p)
        self.loc = p.loc
        self.values[p] = (self.emit(Op.REAL, p), self.emit(Op.IMAG, p))

    def node(self, node: Node) -> Value:
        args = [self.values[s] for s in node.srcs]
        if node.op in CONTROL:
            return self.control(node, args)
        if node.op is Op.GET and node.srcs[0] in self.loops:
            new, index = self.loops[node.srcs[0]]
            at = index[node.attrs["index"]]
            if isinstance(at, int):
                return self.emit(Op.GET, new, index=at, name=node.name)
            return self.emit(Op.GET, new, index=at[0]), self.emit(Op.GET, new, index=at[1])
        if not _complex(node) and all(isinstance(a, Node) for a in args):
            srcs = tuple(args)
            return self.add(node if srcs == node.srcs else node.replace(srcs=srcs))
        rule = RULES.get(node.op)
        if rule is None:
            raise GraphTypeError(
                f"{node.op.value}: complex operands are not supported on this target", node.loc
            )
        return rule(self, node, args)

    def control(self, node: Node, args: list[Value]) -> Node:
        """A loop or branch whose nested functions take and return each complex value as its
        two parts; `get` then reads element k of the old tuple at `self.loops[node][1][k]`."""
        operands = [x for a in args for x in ((a,) if isinstance(a, Node) else a)]
        attrs = {
            k: _Expansion(rewrite_function(v, _inline_complex_fusion), split=True).run()
            if isinstance(v, Function)
            else v
            for k, v in node.attrs.items()
        }
        new = self.emit(node.op, *operands, name=node.name, **attrs)
        tup = node.type
        assert isinstance(tup, TupleType)
        index: list[int | tuple[int, int]] = []
        at = 0
        for t in tup.elements:
            index.append((at, at + 1) if t.dtype.is_complex else at)
            at += 1 + t.dtype.is_complex
        self.loops[node] = (new, index)
        return new


# --- one rule per op: (expansion, old node, its operands' values) -> the new value ----------

Rule = Callable[[_Expansion, Node, list[Any]], Value]


def _constant(e: _Expansion, n: Node, args: list[Any]) -> Pair:
    arr = n.attrs["value"].array
    parts = (arr.real.copy(), arr.imag.copy())
    return tuple(
        e.add(make_node(Op.CONSTANT, (), {"value": ConstData(p)}, loc=n.loc)) for p in parts
    )  # type: ignore[return-value]


def _to_complex(e: _Expansion, n: Node, args: list[Any]) -> Pair:
    x = args[0]
    part = n.dtype.real_part
    if isinstance(x, tuple):
        return e.each(Op.CONVERT, x, dtype=part)
    re = e.emit(Op.CONVERT, x, dtype=part)
    return re, e.const(0, re)


def _mul(e: _Expansion, x: Pair, y: Pair) -> Pair:
    (a, b), (c, d) = x, y
    re = e.emit(Op.SUB, e.emit(Op.MUL, a, c), e.emit(Op.MUL, b, d))
    im = e.emit(Op.ADD, e.emit(Op.MUL, a, d), e.emit(Op.MUL, b, c))
    return re, im


def _div(e: _Expansion, n: Node, args: list[Any]) -> Pair:
    """NumPy's complex division (Smith's algorithm; a zero divisor gives x / 0 per part)."""
    (a, b), (c, d) = args
    abs_c, abs_d = e.emit(Op.ABS, c), e.emit(Op.ABS, d)
    one = e.const(1, c)
    # |c| >= |d|: scale by d / c
    rat1 = e.emit(Op.DIV, d, c)
    scl1 = e.emit(Op.DIV, one, e.emit(Op.ADD, c, e.emit(Op.MUL, d, rat1)))
    re1 = e.emit(Op.MUL, e.emit(Op.ADD, a, e.emit(Op.MUL, b, rat1)), scl1)
    im1 = e.emit(Op.MUL, e.emit(Op.SUB, b, e.emit(Op.MUL, a, rat1)), scl1)
    # |c| < |d| (or a NaN): scale by c / d
    rat2 = e.emit(Op.DIV, c, d)
    scl2 = e.emit(Op.DIV, one, e.emit(Op.ADD, d, e.emit(Op.MUL, c, rat2)))
    re2 = e.emit(Op.MUL, e.emit(Op.ADD, e.emit(Op.MUL, a, rat2), b), scl2)
    im2 = e.emit(Op.MUL, e.emit(Op.SUB, e.emit(Op.MUL, b, rat2), a), scl2)
    zero = e.const(0, c)
    by_zero = e.emit(Op.AND, e.emit(Op.EQ, abs_c, zero), e.emit(Op.EQ, abs_d, zero))
    re1 = e.emit(Op.SELECT, by_zero, e.emit(Op.DIV, a, abs_c), re1)
    im1 = e.emit(Op.SELECT, by_zero, e.emit(Op.DIV, b, abs_d), im1)
    first = e.emit(Op.GE, abs_c, abs_d)
    return e.emit(Op.SELECT, first, re1, re2), e.emit(Op.SELECT, first, im1, im2)


def _exp(e: _Expansion, n: Node, args: list[Any]) -> Pair:
    """e^a (cos b + i sin b), with C99's special values (Annex G, which NumPy's follows): above
    the largest float's logarithm e^a is two factors e^(a/2), so that e^a cos b may still be
    finite (exp(710 + 1i) = 1.2e308 + inf i); a zero b is kept as it is (exp(inf + 0i) is
    inf + 0i, not inf·0 = NaN); with b infinite or NaN the result is ±0 ± 0i for a = -inf and
    inf + NaN i for a = +inf."""
    a, b = args[0]
    zero, one, inf = e.const(0, a), e.const(1, a), e.const(np.inf, a)
    big = e.emit(Op.GT, a, e.const(np.floor(np.log(np.finfo(a.dtype.np).max)), a))
    factor = e.emit(Op.EXP, e.emit(Op.SELECT, big, e.emit(Op.MUL, a, e.const(0.5, a)), a))
    again = e.emit(Op.SELECT, big, factor, one)

    def part(trig: Op) -> Node:
        return e.emit(Op.MUL, e.emit(Op.MUL, factor, e.emit(trig, b)), again)

    re, im = part(Op.COS), e.emit(Op.SELECT, e.emit(Op.EQ, b, zero), b, part(Op.SIN))
    down, up = e.emit(Op.EQ, a, e.emit(Op.NEG, inf)), e.emit(Op.EQ, a, inf)
    signed_zero = e.emit(Op.SELECT, e.emit(Op.LT, b, zero), e.const(-0.0, a), zero)
    limit_re = e.emit(Op.SELECT, down, zero, e.emit(Op.SELECT, up, inf, re))
    limit_im = e.emit(Op.SELECT, down, signed_zero, e.emit(Op.SELECT, up, e.const(np.nan, a), im))
    finite_b = e.emit(Op.LT, e.emit(Op.ABS, b), inf)
    return e.emit(Op.SELECT, finite_b, re, limit_re), e.emit(Op.SELECT, finite_b, im, limit_im)


def _log(e: _Expansion, n: Node, args: list[Any]) -> Pair:
    """(log hypot(a, b), atan2(b, a)). Two subnormal parts are scaled by 2^s first and s ln 2
    taken off the logarithm after: their hypot would be a subnormal too, short of digits
    (log of 1e-45 + 1e-45j in c64 was off by a third)."""
    a, b = args[0]
    info = np.finfo(a.dtype.np)
    s = info.nmant + 1  # 2^s lifts the smallest subnormal into the normal range
    normal = e.const(float(info.smallest_normal), a)
    tiny = e.emit(
        Op.AND, e.emit(Op.LT, e.emit(Op.ABS, a), normal), e.emit(Op.LT, e.emit(Op.ABS, b), normal)
    )
    scale = e.emit(Op.SELECT, tiny, e.const(2.0**s, a), e.const(1, a))
    shift = e.emit(Op.SELECT, tiny, e.const(s * np.log(2.0), a), e.const(0, a))
    magnitude = e.emit(Op.HYPOT, e.emit(Op.MUL, a, scale), e.emit(Op.MUL, b, scale))
    return e.emit(Op.SUB, e.emit(Op.LOG, magnitude), shift), e.emit(Op.ATAN2, b, a)


def _sqrt(e: _Expansion, n: Node, args: list[Any]) -> Pair:
    """t = sqrt((|a| + |x|) / 2): (t, b / 2t) for a >= 0, else (|b| / 2t, t with b's sign);
    sqrt(±0 ± 0i) = (0, b). Parts within a factor 1 + √2 of the largest float are scaled by
    1/4 first and the root by 2 after (NumPy's way), so that |a| + |x| cannot overflow; two
    subnormal parts are scaled by 4^m and the root by 2^-m, so that (|a| + |x|) / 2 does not
    round to zero (FreeBSD's csqrt, which NumPy's follows); an infinite b gives inf + bi,
    whatever a is (C99)."""
    a, b = args[0]
    info = np.finfo(a.dtype.np)
    zero, half = e.const(0, a), e.const(0.5, a)
    m = (info.nmant + 3) // 2  # 4^m lifts the smallest subnormal above the normal range's edge
    limit = e.const(float(info.max) / (1 + np.sqrt(2)), a)
    normal = e.const(float(info.smallest_normal), a)
    huge = e.emit(
        Op.OR, e.emit(Op.GE, e.emit(Op.ABS, a), limit), e.emit(Op.GE, e.emit(Op.ABS, b), limit)
    )
    tiny = e.emit(
        Op.AND, e.emit(Op.LT, e.emit(Op.ABS, a), normal), e.emit(Op.LT, e.emit(Op.ABS, b), normal)
    )

    def scale(big: float, small: float) -> Node:
        return e.emit(
            Op.SELECT,
            huge,
            e.const(big, a),
            e.emit(Op.SELECT, tiny, e.const(small, a), e.const(1, a)),
        )

    scale_in = scale(0.25, 4.0**m)
    sa, sb = e.emit(Op.MUL, a, scale_in), e.emit(Op.MUL, b, scale_in)
    t = e.emit(
        Op.SQRT,
        e.emit(Op.MUL, e.emit(Op.ADD, e.emit(Op.ABS, sa), e.emit(Op.HYPOT, sa, sb)), half),
    )
    two_t = e.emit(Op.ADD, t, t)
    negative_b = e.emit(Op.LT, e.emit(Op.DIV, e.const(1, b), b), zero)  # b < 0, or -0.0
    right = e.emit(Op.GE, a, zero)
    re = e.emit(Op.SELECT, right, t, e.emit(Op.DIV, e.emit(Op.ABS, sb), two_t))
    im = e.emit(
        Op.SELECT,
        right,
        e.emit(Op.DIV, sb, two_t),
        e.emit(Op.SELECT, negative_b, e.emit(Op.NEG, t), t),
    )
    scale_out = scale(2, 2.0**-m)
    re, im = e.emit(Op.MUL, re, scale_out), e.emit(Op.MUL, im, scale_out)
    origin = e.emit(Op.AND, e.emit(Op.EQ, a, zero), e.emit(Op.EQ, b, zero))
    re, im = e.emit(Op.SELECT, origin, zero, re), e.emit(Op.SELECT, origin, b, im)
    inf = e.const(np.inf, a)
    vertical = e.emit(Op.EQ, e.emit(Op.ABS, b), inf)  # C99: sqrt(x ± inf i) = inf ± inf i
    return e.emit(Op.SELECT, vertical, inf, re), e.emit(Op.SELECT, vertical, b, im)


def _dot(e: _Expansion, n: Node, args: list[Any]) -> Pair:
    """(a + bi)(c + di) summed: re = sum(a c - b d), im = sum(a d + b c), each one real
    product over a contraction twice as long (so each part is one sum, as NumPy's loop has)."""
    (a, b), (c, d) = args
    attrs = dict(n.attrs.items())
    attrs["out_dtype"] = n.dtype.real_part
    lc, rc = attrs["lhs_contract"], attrs["rhs_contract"]

    def dot(x: Node, y: Node) -> Node:
        return e.emit(Op.DOT_GENERAL, x, y, **attrs)

    if not lc:  # an outer product: nothing to sum
        return e.emit(Op.SUB, dot(a, c), dot(b, d)), e.emit(Op.ADD, dot(a, d), dot(b, c))
    lhs = e.emit(Op.CONCATENATE, a, b, axis=lc[0])
    rhs_re = e.emit(Op.CONCATENATE, c, e.emit(Op.NEG, d), axis=rc[0])
    rhs_im = e.emit(Op.CONCATENATE, d, c, axis=rc[0])
    return dot(lhs, rhs_re), dot(lhs, rhs_im)


def _same_op_on_parts(e: _Expansion, n: Node, args: list[Any]) -> Pair:
    """An op that acts on the real and imaginary parts alike (data movement, sums, add)."""
    attrs = dict(n.attrs.items())
    parts = []
    for i in range(2):
        srcs = [a[i] if isinstance(a, tuple) else a for a in args]
        parts.append(e.emit(n.op, *srcs, **attrs))
    return parts[0], parts[1]


def _select(e: _Expansion, n: Node, args: list[Any]) -> Pair:
    pred, x, y = args
    return e.emit(Op.SELECT, pred, x[0], y[0]), e.emit(Op.SELECT, pred, x[1], y[1])


def _compare(combine: Op) -> Rule:
    def rule(e: _Expansion, n: Node, args: list[Any]) -> Node:
        x, y = args
        return e.emit(combine, *e.both(n.op, x, y), name=n.name)

    return rule


RULES: dict[Op, Rule] = {
    Op.CONSTANT: _constant,
    Op.COMPLEX: lambda e, n, args: (args[0], args[1]),
    Op.REAL: lambda e, n, args: args[0][0],
    Op.IMAG: lambda e, n, args: args[0][1],
    Op.ABS: lambda e, n, args: e.emit(Op.HYPOT, *args[0], name=n.name),
    Op.NEG: lambda e, n, args: e.each(Op.NEG, args[0]),
    Op.ADD: _same_op_on_parts,
    Op.SUB: _same_op_on_parts,
    Op.MUL: lambda e, n, args: _mul(e, *args),
    Op.DIV: _div,
    Op.EXP: _exp,
    Op.LOG: _log,
    Op.SQRT: _sqrt,
    Op.EQ: _compare(Op.AND),
    Op.NE: _compare(Op.OR),
    Op.SELECT: _select,
    Op.CONVERT: _to_complex,
    Op.DOT_GENERAL: _dot,
    **{
        op: _same_op_on_parts
        for op in (
            Op.BROADCAST_IN_DIM, Op.RESHAPE, Op.TRANSPOSE, Op.SLICE, Op.REVERSE, Op.CONCATENATE,
            Op.PAD, Op.GATHER, Op.SCATTER, Op.REDUCE,
        )
    },
}  # fmt: skip


@register
class ExpandComplex(Pass):
    """Rewrite complex values into pairs of real values (real and imaginary parts).

    For backends without complex arithmetic (cpu): every op on complex values becomes ops on
    the parts, with NumPy's formulas (products by the four real products, division by Smith's
    algorithm, abs by hypot). The program's complex parameters and results stay complex, read
    with `real`/`imag` and made with `complex`; a loop carries each complex value as two.
    """

    name = "expand-complex"

    def run_nested(self, fn: Function, ctx: PassContext) -> Function:
        return self.run_function(fn, ctx)  # loops are expanded with the function around them

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        if expanded(fn):
            return fn
        fn = rewrite_function(fn, _inline_complex_fusion)  # its ops are expanded like any
        return _Expansion(fn, split=False).run()
