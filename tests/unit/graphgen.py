"""Hypothesis strategies for random *valid* IR: every op, every dtype it accepts, odd shapes.

`GENERATORS[op](ctx, op, dtype)` appends one `op` node whose (data) operands have `dtype`,
creating operands as it goes: an existing value of the right type, a new parameter, or a new
constant (including nan, inf, -0.0, and bf16/f16 values). Shapes include scalars and size-0
and size-1 dimensions. `while` loops are counted (0 to 4 trips) and their bodies are drawn by
the same generators one level deeper; `get` reads an element of such a loop. Name hints are
drawn from a small pool, so they collide, and include hints the printer cannot use ("3d",
"has space") and none at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import ml_dtypes
import numpy as np
from hypothesis import strategies as st

from compiler.fuzz.gen import INTO_DOMAIN
from ir import dtypes, ops
from ir.builder import FunctionBuilder
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import OPERAND_DTYPES, QUANT_INTS, REDUCE_KINDS, Op
from ir.quant import int_range
from ir.types import TensorType, TupleType

DTYPES = sorted(DType, key=lambda t: t.value)
NAME_HINTS = [None, None, "", "x", "y", "h", "h.1", "out", "_t", "3d", "has space"]
PARAM_NAMES = ["x", "y", "w", "b", "in_0", "a.b", "_p"]
FUNC_NAMES = ["main", "f", "g", "helper.1", "_k"]

# Dtypes each op accepts for its data operands (for sources: its result), per the op table,
# minus what a type rule rejects for every attribute choice.
ACCEPTS: dict[Op, frozenset[DType]] = {op: OPERAND_DTYPES[op].allowed for op in Op}
ACCEPTS[Op.IOTA] = dtypes.NUMERIC


def _special_floats(dtype: DType) -> list[float]:
    finfo = ml_dtypes.finfo(dtype.np)  # type: ignore[no-untyped-call]
    return [
        0.0,
        -0.0,
        1.0,
        -1.5,
        math.inf,
        -math.inf,
        math.nan,
        -math.nan,
        float(finfo.max),
        -float(finfo.max),
        float(finfo.smallest_subnormal),
        0.1,
    ]


def elements(dtype: DType) -> st.SearchStrategy[Any]:
    """Python scalars that `dtype` holds exactly (NaNs only in their canonical forms)."""
    if dtype == DType.BOOL:
        return st.booleans()
    if dtype.is_int:
        info = np.iinfo(dtype.np.name)
        return st.integers(int(info.min), int(info.max))
    if dtype.is_complex:
        part = elements(dtype.real_part)
        return st.builds(complex, part, part)
    widths: dict[DType, Literal[16, 32, 64]] = {
        DType.F64: 64,
        DType.F32: 32,
        DType.F16: 16,
        DType.BF16: 32,
    }
    width = widths[dtype]
    finite = st.floats(width=width, allow_nan=False, allow_infinity=False)
    if dtype == DType.BF16:  # round to the nearest bfloat16, as the parser will
        finite = finite.map(lambda v: float(np.array(v, dtype=dtype.np)))
    return st.one_of(st.sampled_from(_special_floats(dtype)), finite)


class Ctx:
    """One function under construction: the builder, its values, and the draw function."""

    def __init__(
        self, draw: Callable[[st.SearchStrategy[Any]], Any], name: str, depth: int = 0
    ) -> None:
        self.draw = draw
        self.fb = FunctionBuilder(name)
        self.values: list[Node] = []
        self.depth = depth  # how deep in fusion or loop bodies this function is
        self.fused = False  # a fusion's body: no loops in it

    # -- drawing --

    def integer(self, lo: int, hi: int) -> int:
        return int(self.draw(st.integers(lo, hi)))

    def flag(self) -> bool:
        return bool(self.draw(st.booleans()))

    def pick(self, options: Any) -> Any:
        return self.draw(st.sampled_from(list(options)))

    def shape(self, min_rank: int = 0, max_rank: int = 3, min_side: int = 0) -> tuple[int, ...]:
        rank = self.integer(min_rank, max_rank)
        return tuple(self.integer(min_side, 4) for _ in range(rank))

    def hint(self) -> str | None:
        return self.pick(NAME_HINTS)  # type: ignore[no-any-return]

    # -- values --

    def operand(self, t: TensorType) -> Node:
        """A value of type `t`: reuse one, or add a parameter or a constant."""
        same = [v for v in self.values if v.type == t]
        how = self.integer(0, 2)
        if same and how == 0:
            return self.pick(same)  # type: ignore[no-any-return]
        if how == 1 and len(self.fb.params) < len(PARAM_NAMES):
            return self.param(t)
        return self.constant(t)

    def param(self, t: TensorType) -> Node:
        taken = {p.name for p in self.fb.params}
        name = self.pick([n for n in PARAM_NAMES if n not in taken])
        node = self.fb.param(name, t)
        self.values.append(node)
        return node

    def constant(self, t: TensorType) -> Node:
        elem = elements(t.dtype)
        if t.size and self.flag():  # a splat, which the printer writes as one number
            array = np.full(t.shape, self.draw(elem), dtype=t.dtype.np)
        else:
            flat = self.draw(st.lists(elem, min_size=t.size, max_size=t.size))
            array = np.array(flat, dtype=t.dtype.np).reshape(t.shape)
        node = self.fb.const(array, name=self.hint())
        self.values.append(node)
        return node

    def op(self, op: Op, *srcs: Node, **attrs: Any) -> Node:
        node = self.fb.op(op, *srcs, name=self.hint(), **attrs)
        self.values.append(node)
        return node

    def typed(self, dtype: DType, **kw: Any) -> Node:
        return self.operand(TensorType(self.shape(**kw), dtype))


# --- one generator per op family --------------------------------------------------------------


def g_parameter(c: Ctx, op: Op, dt: DType) -> Node:
    return c.param(TensorType(c.shape(), dt))


def g_constant(c: Ctx, op: Op, dt: DType) -> Node:
    return c.constant(TensorType(c.shape(), dt))


def g_iota(c: Ctx, op: Op, dt: DType) -> Node:
    shape = c.shape(min_rank=1)
    dim = c.integer(0, len(shape) - 1)
    attrs: dict[str, Any] = {"shape": shape, "dtype": dt}
    if dim or c.flag():
        attrs["dim"] = dim
    return c.op(op, **attrs)


def g_unary(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    if op in INTO_DOMAIN and c.flag():  # half the time, an operand in the op's domain
        x = c.op(INTO_DOMAIN[op], x)
    return c.op(op, x)


def g_binary(c: Ctx, op: Op, dt: DType) -> Node:
    t = TensorType(c.shape(), dt)
    return c.op(op, c.operand(t), c.operand(t))


def g_select(c: Ctx, op: Op, dt: DType) -> Node:
    t = TensorType(c.shape(), dt)
    return c.op(op, c.operand(t.with_dtype(DType.BOOL)), c.operand(t), c.operand(t))


def g_convert(c: Ctx, op: Op, dt: DType) -> Node:
    # a complex value converts only to a complex type (its parts are taken with real/imag)
    targets = [t for t in DTYPES if t.is_complex or not dt.is_complex]
    return c.op(op, c.typed(dt), dtype=c.pick(targets))


def g_broadcast(c: Ctx, op: Op, dt: DType) -> Node:
    out = c.shape()
    dims = sorted(c.draw(st.sets(st.integers(0, len(out) - 1), max_size=len(out))) if out else [])
    x = c.operand(TensorType(tuple(out[d] if c.flag() else 1 for d in dims), dt))
    attrs: dict[str, Any] = {"shape": out}
    trailing = list(range(len(out) - len(dims), len(out)))
    if dims != trailing or c.flag():
        attrs["dims"] = dims
    return c.op(op, x, **attrs)


def _group(c: Ctx, factors: list[int]) -> list[int]:
    """Multiply runs of adjacent factors together: one of the shapes with these factors."""
    out: list[int] = []
    for i, f in enumerate(factors):
        if out and i and c.flag():
            out[-1] *= f
        else:
            out.append(f)
    return out


def g_reshape(c: Ctx, op: Op, dt: DType) -> Node:
    factors = c.draw(st.lists(st.integers(0, 3), max_size=4))
    x = c.operand(TensorType(tuple(_group(c, factors)), dt))
    shape = _group(c, factors)
    wild = [i for i in range(len(shape)) if math.prod(shape[:i] + shape[i + 1 :]) != 0]
    if wild and c.flag():
        shape[c.pick(wild)] = -1
    return c.op(op, x, shape=shape)


def g_transpose(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    perm = c.draw(st.permutations(list(range(len(x.shape)))))
    return c.op(op, x, perm=perm)


def g_slice(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    start = [c.integer(0, d) for d in x.shape]
    limit = [c.integer(s, d) for s, d in zip(start, x.shape, strict=True)]
    attrs: dict[str, Any] = {"start": start, "limit": limit}
    if c.flag():
        attrs["stride"] = [c.integer(1, 3) for _ in x.shape]
    return c.op(op, x, **attrs)


def g_reverse(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    return c.op(op, x, dims=_axes(c, x.type.rank))


def g_concatenate(c: Ctx, op: Op, dt: DType) -> Node:
    base = c.shape(min_rank=1)
    axis = c.integer(0, len(base) - 1)
    parts = []
    for _ in range(c.integer(1, 3)):
        shape = list(base)
        shape[axis] = c.integer(0, 3)
        parts.append(c.operand(TensorType(tuple(shape), dt)))
    return c.op(op, *parts, axis=axis - len(base) if c.flag() else axis)


def g_pad(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    value = c.operand(TensorType((), dt))
    attrs: dict[str, Any] = {
        "low": [c.integer(0, 2) for _ in x.shape],
        "high": [c.integer(0, 2) for _ in x.shape],
    }
    if c.flag():
        attrs["interior"] = [c.integer(0, 2) for _ in x.shape]
    return c.op(op, x, value, **attrs)


def _indexed(c: Ctx, dt: DType) -> tuple[Node, Node, dict[str, Any]]:
    """An operand, indices into some of its axes and gather/scatter's attributes. Indices in
    mode check stay in range (negative ones included): out of range is an error, tested apart."""
    x = c.typed(dt, min_rank=1)
    axis = c.integer(0, x.type.rank - 1)
    k = c.integer(1, x.type.rank - axis)
    sides = x.shape[axis : axis + k]
    batch = c.shape(max_rank=2)
    if 0 in sides:
        batch = (*batch[:-1], 0) if batch else (0,)
    mode = c.pick(["check", "clip", "wrap"])
    itype = c.pick([DType.I32, DType.I64, DType.I8, DType.U8, DType.U16, DType.U64])
    info = np.iinfo(itype.np)
    columns = []
    for n in sides:
        lo, hi = (-n, n - 1) if mode == "check" else (-2 * n - 1, 2 * n + 1)
        lo, hi = max(lo, int(info.min)), min(max(hi, lo), int(info.max))
        columns.append(c.draw(st.lists(st.integers(lo, hi), min_size=math.prod(batch),
                                       max_size=math.prod(batch))))  # fmt: skip
    values = np.array(columns, dtype=np.int64).T.reshape(*batch, k).astype(itype.np)
    idx = c.fb.const(values, name=c.hint())
    c.values.append(idx)
    attrs: dict[str, Any] = {"axis": axis - x.type.rank if c.flag() else axis}
    if mode != "check" or c.flag():
        attrs["mode"] = mode
    return x, idx, attrs


def g_gather(c: Ctx, op: Op, dt: DType) -> Node:
    x, idx, attrs = _indexed(c, dt)
    return c.op(op, x, idx, **attrs)


def g_scatter(c: Ctx, op: Op, dt: DType) -> Node:
    x, idx, attrs = _indexed(c, dt)
    kinds = ["set", "min", "max"] + (["add", "mul"] if dt != DType.BOOL else [])
    kinds = ["set", "add"] if dt.is_complex else kinds
    kind = c.pick(kinds)
    if kind != "set" or c.flag():
        attrs["kind"] = kind
    shape = x.shape[: attrs["axis"] % x.type.rank] + idx.shape[:-1]
    shape += x.shape[attrs["axis"] % x.type.rank + idx.shape[-1] :]
    updates = c.operand(TensorType(shape, dt))
    return c.op(op, x, idx, updates, **attrs)


def _axes(c: Ctx, rank: int) -> list[int]:
    axes = c.draw(st.lists(st.integers(0, rank - 1), unique=True)) if rank else []
    return [a - rank if c.flag() else a for a in axes]  # negative axes count from the end


def g_reduce(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    kinds = [k for k in REDUCE_KINDS if dt != DType.BOOL or k in ("max", "min")]
    kinds = ["sum"] if dt.is_complex else kinds
    return c.op(op, x, kind=c.pick(kinds), axes=_axes(c, x.type.rank))


def g_mean(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    return c.op(op, x, axes=_axes(c, x.type.rank))


def g_softmax(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt, min_rank=1)
    rank = x.type.rank
    return c.op(op, x, **({"axis": c.integer(-rank, rank - 1)} if c.flag() else {}))


def g_sort(c: Ctx, op: Op, dt: DType) -> Node:
    """sort or argsort along any axis (sometimes negative), ascending or descending."""
    x = c.typed(dt, min_rank=1)
    rank = x.type.rank
    attrs: dict[str, Any] = {}
    if c.flag():
        attrs["axis"] = c.integer(-rank, rank - 1)
    if c.flag():
        attrs["descending"] = c.flag()
    return c.op(op, x, **attrs)


def _out_dtype(c: Ctx, dt: DType, attrs: dict[str, Any]) -> None:
    if c.flag():
        attrs["out_dtype"] = c.pick(
            t
            for t in DTYPES
            if (t.is_float, t.is_complex) == (dt.is_float, dt.is_complex) and t != DType.BOOL
        )


def g_dot(c: Ctx, op: Op, dt: DType) -> Node:
    """Batch, contracting and free dimensions, laid out in a random order on each side."""
    batch = [c.integer(0, 3) for _ in range(c.integer(0, 1))]
    contract = [c.integer(0, 3) for _ in range(c.integer(0, 2))]
    lfree = [c.integer(0, 3) for _ in range(c.integer(0, 1))]
    rfree = [c.integer(0, 3) for _ in range(c.integer(0, 1))]

    def side(free: list[int]) -> tuple[TensorType, list[int], list[int]]:
        roles = [("b", i) for i in range(len(batch))] + [("c", i) for i in range(len(contract))]
        roles += [("f", i) for i in range(len(free))]
        order = c.draw(st.permutations(roles))
        sizes = {"b": batch, "c": contract, "f": free}
        shape = tuple(sizes[kind][i] for kind, i in order)
        where = {role: pos for pos, role in enumerate(order)}
        return (
            TensorType(shape, dt),
            [where[("b", i)] for i in range(len(batch))],
            [where[("c", i)] for i in range(len(contract))],
        )

    lt, lb, lc = side(lfree)
    rt, rb, rc = side(rfree)
    attrs: dict[str, Any] = {"lhs_contract": lc, "rhs_contract": rc}
    if batch or c.flag():
        attrs.update(lhs_batch=lb, rhs_batch=rb)
    _out_dtype(c, dt, attrs)
    return c.op(op, c.operand(lt), c.operand(rt), **attrs)


def _padding(c: Ctx) -> Any:
    kind = c.integer(0, 3)
    if kind == 3:
        return [[c.integer(0, 2), c.integer(0, 2)] for _ in range(2)]
    return [None, "valid", "same"][kind]


def g_conv(c: Ctx, op: Op, dt: DType) -> Node:
    groups = c.integer(1, 2)
    cin, cout = groups * c.integer(1, 2), groups * c.integer(1, 2)
    kh, kw = c.integer(1, 3), c.integer(1, 3)
    dilation = [c.integer(1, 2), c.integer(1, 2)]
    eff = [(kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1]
    x = TensorType((c.integer(0, 2), eff[0] + c.integer(0, 3), eff[1] + c.integer(0, 3), cin), dt)
    w = TensorType((kh, kw, cin // groups, cout), dt)
    attrs: dict[str, Any] = {}
    if groups > 1 or c.flag():
        attrs["groups"] = groups
    if dilation != [1, 1] or c.flag():
        attrs["dilation"] = dilation
    if c.flag():
        attrs["strides"] = [c.integer(1, 3), c.integer(1, 3)]
    pad = _padding(c)
    if pad is not None:
        attrs["padding"] = pad
    _out_dtype(c, dt, attrs)
    return c.op(op, c.operand(x), c.operand(w), **attrs)


def g_pool(c: Ctx, op: Op, dt: DType) -> Node:
    window = [c.integer(1, 3), c.integer(1, 3)]
    x = c.operand(
        TensorType(
            (c.integer(0, 2), window[0] + c.integer(0, 2), window[1] + c.integer(0, 2), 2), dt
        )
    )
    attrs: dict[str, Any] = {"window": window}
    if c.flag():
        attrs["strides"] = [c.integer(1, 3), c.integer(1, 3)]
    pad = _padding(c)
    if pad is not None:
        attrs["padding"] = pad
    if op is Op.AVG_POOL and c.flag():
        attrs["count_include_pad"] = c.flag()
    return c.op(op, x, **attrs)


def _per_channel(c: Ctx, x: Node, attrs: dict[str, Any]) -> int:
    """Sometimes give the op an axis: how many parameters each list then takes."""
    rank = x.type.rank
    if rank and c.flag():
        axis = c.integer(-rank, rank - 1)
        if x.shape[axis]:  # an empty axis has no channels to give parameters to
            attrs["axis"] = axis
            return x.shape[axis]
    return 1


def _scales(c: Ctx, n: int) -> list[float]:
    return [c.draw(st.floats(1e-3, 1e3, allow_nan=False, allow_infinity=False)) for _ in range(n)]


def g_quantize(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    attrs: dict[str, Any] = {"dtype": c.pick(QUANT_INTS)}
    n = _per_channel(c, x, attrs)
    lo, hi = int_range(attrs["dtype"])
    attrs["scale"] = _scales(c, n)
    attrs["zero_point"] = [c.integer(max(lo, -300), min(hi, 300)) for _ in range(c.pick([1, n]))]
    return c.op(op, x, **attrs)


def g_dequantize(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    attrs: dict[str, Any] = {"dtype": c.pick(t for t in DTYPES if t.is_float)}
    n = _per_channel(c, x, attrs)
    lo, hi = int_range(dt)
    attrs["scale"] = _scales(c, n)
    attrs["zero_point"] = [c.integer(max(lo, -300), min(hi, 300)) for _ in range(c.pick([1, n]))]
    return c.op(op, x, **attrs)


def g_requantize(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    attrs: dict[str, Any] = {"dtype": c.pick(QUANT_INTS)}
    n = _per_channel(c, x, attrs)
    attrs["multiplier"] = [c.integer(0, (1 << 31) - 1) for _ in range(n)]
    attrs["shift"] = [c.integer(-31, 31) for _ in range(n)]
    lo, hi = int_range(attrs["dtype"])
    attrs["zero_point"] = c.integer(max(lo, -100), min(hi, 100))
    if c.flag():
        attrs["min"], attrs["max"] = sorted((c.integer(lo, hi), c.integer(lo, hi)))
    return c.op(op, x, **attrs)


def g_fusion(c: Ctx, op: Op, dt: DType) -> Node:
    """A nested body of a few random nodes (no fusion in it), fed by operands of the same types."""
    inner = Ctx(c.draw, "fusion", c.depth + 1)
    inner.fused = True
    inner.param(TensorType(c.shape(), dt))
    for _ in range(c.integer(1, 3)):
        add_node(inner)
    body = inner.fb.build([inner.values[-1]])
    return c.op(op, *(c.operand(p.type) for p in body.params), body=body)


COUNTERS = [DType.I32, DType.I64, DType.I8, DType.U8]
MAX_LOOP_DEPTH = 2  # loops nest this deep (at most 4 ** 2 trips of the innermost body)
# elementwise ops whose result has their operands' type: a carried value's update
UPDATES = sorted(ops.UNARY | ops.BINARY, key=lambda o: o.value)


def _update(c: Ctx, p: Node) -> Node:
    """A new value for carried parameter `p` of a loop body: one the body computed already,
    another carried value of its type (a swap), an elementwise op on `p`, or `p` itself."""
    made = [v for v in c.values if v.type == p.type and v.op not in (Op.PARAMETER, Op.CONSTANT)]
    if made and c.flag():
        return c.pick(made)  # type: ignore[no-any-return]
    others = [q for q in c.fb.params if q.type == p.type and q is not p]
    if others and c.flag():
        return c.pick(others)  # type: ignore[no-any-return]
    fitting = [o for o in UPDATES if p.dtype in ACCEPTS[o]]
    if not fitting or c.integer(0, 3) == 0:
        return p
    op = c.pick(fitting)
    new = c.op(op, p) if op in ops.UNARY else c.op(op, p, c.operand(p.type))
    return new if new.type == p.type else p


def counted_loop(c: Ctx, dt: DType) -> Node:
    """A `while` whose counter (an integer scalar, carried first) runs from 0..2 to a bound of
    0..4 (a constant in `cond`, or carried second, from a constant or a clamped parameter), so
    it ends within 4 trips. Its body is a small random function over the carried values; every
    parameter a drawn node adds is carried too. The last carried value has dtype `dt`."""
    ct = TensorType((), c.pick(COUNTERS))
    inner = Ctx(c.draw, "body", c.depth + 1)
    counter = inner.param(ct)
    bound = inner.param(ct) if c.flag() else None
    data = inner.param(TensorType(c.shape(), dt))
    for _ in range(c.integer(0, 2)):
        add_node(inner)
    updates = {counter: inner.op(Op.ADD, counter, inner.fb.const(np.array(1, ct.dtype.np)))}
    if bound is not None:
        updates[bound] = bound
    while len(updates) < len(inner.fb.params):  # an update may add parameters: carry them too
        p = next(p for p in inner.fb.params if p not in updates)
        updates[p] = _update(inner, p)
    order = [p for p in inner.fb.params if p is not data] + [data]
    inner.fb.params = order
    body = inner.fb.build([updates[p] for p in order])

    cb = FunctionBuilder("cond")
    cps = [cb.param(p.name or "p", p.type) for p in order]
    limit = cps[1] if bound is not None else cb.const(np.array(c.integer(0, 4), ct.dtype.np))
    test = cb.op(Op.LT, cps[0], limit) if c.flag() else cb.op(Op.GT, limit, cps[0])
    cond = cb.build([test])

    inits = [c.fb.const(np.array(c.integer(0, 2), ct.dtype.np), name=c.hint())]
    if bound is not None:
        if c.flag() and len(c.fb.params) < len(PARAM_NAMES):  # a clamped input: 0..4 trips
            low = c.fb.const(np.array(0, ct.dtype.np))
            high = c.fb.const(np.array(4, ct.dtype.np))
            inits.append(c.fb.op(Op.MIN, c.fb.op(Op.MAX, c.param(ct), low), high))
        else:
            inits.append(c.fb.const(np.array(c.integer(0, 4), ct.dtype.np)))
    inits += [c.operand(p.type) for p in order[len(inits) :]]
    return c.op(Op.WHILE, *inits, cond=cond, body=body)


def g_while(c: Ctx, op: Op, dt: DType) -> Node:
    return counted_loop(c, dt)


def g_get(c: Ctx, op: Op, dt: DType) -> Node:
    w = counted_loop(c, dt)
    elements = w.type.elements  # type: ignore[attr-defined]
    index = c.pick(i for i, e in enumerate(elements) if e.dtype == dt)
    return c.op(op, w, index=index)


def _bound(c: Ctx, ct: TensorType) -> Node:
    """A loop bound of 0..4: a constant, or a parameter clamped."""
    if c.flag() and len(c.fb.params) < len(PARAM_NAMES):
        low = c.fb.const(np.array(0, ct.dtype.np))
        high = c.fb.const(np.array(4, ct.dtype.np))
        return c.fb.op(Op.MIN, c.fb.op(Op.MAX, c.param(ct), low), high)
    return c.fb.const(np.array(c.integer(0, 4), ct.dtype.np))


def g_for(c: Ctx, op: Op, dt: DType) -> Node:
    """A `for` from 0..2 to a bound of 0..4 whose body (the index, a value of dtype `dt`, and
    every parameter a drawn node adds) is a small random function."""
    ct = TensorType((), c.pick(COUNTERS))
    inner = Ctx(c.draw, "body", c.depth + 1)
    inner.param(ct)
    inner.param(TensorType(c.shape(), dt))
    for _ in range(c.integer(0, 2)):
        add_node(inner)
    updates: dict[Node, Node] = {}
    while len(updates) < len(inner.fb.params) - 1:  # an update may add parameters: carry them
        p = next(p for p in inner.fb.params[1:] if p not in updates)
        updates[p] = _update(inner, p)
    index, data, *others = inner.fb.params
    inner.fb.params = [index, *others, data]  # the value of dtype `dt` is the last operand
    body = inner.fb.build([updates[p] for p in inner.fb.params[1:]])
    lower = c.fb.const(np.array(c.integer(0, 2), ct.dtype.np), name=c.hint())
    inits = [c.operand(p.type) for p in body.params[1:]]
    return c.op(Op.FOR, lower, _bound(c, ct), *inits, body=body)


def g_cond(c: Ctx, op: Op, dt: DType) -> Node:
    """A `cond` on a bool scalar whose sides update a value of dtype `dt` after 0..2 random
    nodes; both take the parameters either drew."""
    sides: list[Ctx] = []
    results = []
    for name in ("on_true", "on_false"):
        inner = Ctx(c.draw, name, c.depth + 1)
        for p in sides[0].fb.params if sides else []:
            inner.values.append(inner.fb.param(p.name or "x", p.type))
        start = inner.fb.params[0] if sides else inner.param(TensorType(c.shape(), dt))
        for _ in range(c.integer(0, 2)):
            add_node(inner)
        results.append([_update(inner, start)])
        sides.append(inner)
    for p in sides[1].fb.params[len(sides[0].fb.params) :]:
        sides[0].fb.param(p.name or "x", p.type)
    for side in sides:  # the value of dtype `dt` is the last operand
        side.fb.params = [*side.fb.params[1:], side.fb.params[0]]
    on_true, on_false = (s.fb.build(r) for s, r in zip(sides, results, strict=True))
    pred = c.operand(TensorType((), DType.BOOL))
    operands = [c.operand(p.type) for p in on_true.params]
    return c.op(Op.COND, pred, *operands, true_branch=on_true, false_branch=on_false)


Generator = Callable[[Ctx, Op, DType], Node]
GENERATORS: dict[Op, Generator] = {
    Op.QUANTIZE: g_quantize,
    Op.DEQUANTIZE: g_dequantize,
    Op.REQUANTIZE: g_requantize,
    Op.PARAMETER: g_parameter,
    Op.CONSTANT: g_constant,
    Op.IOTA: g_iota,
    **{op: g_unary for op in ops.UNARY},
    **{op: g_binary for op in ops.BINARY | ops.COMPARE},
    Op.SELECT: g_select,
    Op.CONVERT: g_convert,
    Op.BROADCAST_IN_DIM: g_broadcast,
    Op.RESHAPE: g_reshape,
    Op.TRANSPOSE: g_transpose,
    Op.SLICE: g_slice,
    Op.GATHER: g_gather,
    Op.SCATTER: g_scatter,
    Op.REVERSE: g_reverse,
    Op.CONCATENATE: g_concatenate,
    Op.PAD: g_pad,
    Op.REDUCE: g_reduce,
    Op.DOT_GENERAL: g_dot,
    Op.CONV2D: g_conv,
    Op.MAX_POOL: g_pool,
    Op.AVG_POOL: g_pool,
    Op.SOFTMAX: g_softmax,
    Op.SORT: g_sort,
    Op.ARGSORT: g_sort,
    Op.MEAN: g_mean,
    Op.FUSION: g_fusion,
    Op.WHILE: g_while,
    Op.FOR: g_for,
    Op.COND: g_cond,
    Op.GET: g_get,
}
LOOPS = (Op.WHILE, Op.FOR, Op.COND, Op.GET)

# Every (op, dtype) pair the generators must be able to produce.
OP_DTYPES = [(op, dt) for op in Op for dt in DTYPES if dt in ACCEPTS[op]]


def add_node(c: Ctx, op: Op | None = None, dtype: DType | None = None) -> Node:
    """Append one node (a random op and dtype unless given)."""
    if op is None:
        loops = not c.fused and c.depth < MAX_LOOP_DEPTH
        op = c.pick(
            o for o in Op if (o is not Op.FUSION or not c.depth) and (o not in LOOPS or loops)
        )
    dt = dtype if dtype is not None else c.pick(sorted(ACCEPTS[op], key=lambda t: t.value))
    return GENERATORS[op](c, op, dt)


@st.composite
def functions(
    draw: st.DrawFn, name: str = "main", op: Op | None = None, dtype: DType | None = None
) -> Function:
    """A function of a few random nodes, or of one `op` node (on `dtype`) and its operands. A
    function returns tensors: a `while` is returned through a `get` of its last element."""
    c = Ctx(draw, name)
    if op is not None:
        node = add_node(c, op, dtype)
        if isinstance(node.type, TupleType):
            node = c.op(Op.GET, node, index=len(node.type.elements) - 1)
        results = [node]
    else:
        for _ in range(c.integer(1, 4)):
            add_node(c)
        tensors = [v for v in c.values if not isinstance(v.type, TupleType)]
        results = draw(st.lists(st.sampled_from(tensors), min_size=1, max_size=3))
    return c.fb.build(results)


@st.composite
def modules(draw: st.DrawFn) -> Module:
    """One to three functions; with several, any of them may be the entry."""
    names = draw(st.lists(st.sampled_from(FUNC_NAMES), min_size=1, max_size=3, unique=True))
    funcs = tuple(draw(functions(name)) for name in names)
    return Module(funcs, draw(st.sampled_from(names)))
