"""Random valid graphs from a seed: every op, every dtype it accepts, awkward shapes, fusions.

The product's own counterpart of the hypothesis strategies in tests/unit/graphgen.py (hypothesis
is a test dependency only). Which dtypes an op takes, its arity and its attributes come from the
op table (ir/ops.py); shapes and attribute values are drawn so that the type rules
(ir/typerules.py) accept them, and every node is built through `make_node`, so a generator
mistake is an error here, never an invalid graph handed to a backend.

Operands are existing values (to make chains worth fusing), new parameters, new constants
(with nan, inf, -0.0 and range ends when `specials` is set, in either part of a complex
number) or broadcasts of smaller values.
Shapes include scalars, size-0, size-1 and odd dimensions; `fusion` nodes carry nested bodies,
themselves possibly holding fusions. `while` loops are counted: an integer counter runs to a
bound of at most 4 (a constant, or an input clamped to 0..4), and the body is a small random
function over the carried values (possibly holding fusions and, one level down, loops). A
`for` counts from 0..2 up to such a bound. A
`cond` branches on a bool scalar between two such small functions. `get` nodes read the
results of both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from compiler.fuzz import values
from compiler.fuzz.draw import Draw
from ir import dtypes, ops
from ir.builder import FunctionBuilder
from ir.diagnostics import GraphTypeError
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import OPERAND_DTYPES, QUANT_INTS, REDUCE_KINDS, Op
from ir.quant import int_range
from ir.types import TensorType, TupleType

DTYPES = sorted(DType, key=lambda t: t.value)
NAME_HINTS = [None, None, None, "", "x", "y", "h", "h.1", "out", "_t", "3d", "has space"]
PARAM_NAMES = ["x", "y", "w", "b", "in_0", "a.b", "_p", "z", "q", "k"]
MAX_ELEMENTS = 4096  # per tensor: the interpreter and the noisy oracle stay fast

# Dtypes each op accepts for its data operands (for sources: its result), from the op table,
# minus what a type rule rejects for every attribute choice (iota has no bool or complex form).
# The type rules restrict complex operands further, per attribute: reduce only sums them,
# scatter only sets or adds, convert takes them only to complex types, and a contraction's
# out_dtype is complex exactly when its operands are.
ACCEPTS: dict[Op, list[DType]] = {
    op: sorted(OPERAND_DTYPES[op].allowed, key=lambda t: t.value) for op in Op
}
ACCEPTS[Op.IOTA] = sorted(dtypes.NUMERIC, key=lambda t: t.value)


@dataclass(frozen=True)
class GenOptions:
    max_nodes: int = 8  # ops drawn at the top level (operands add parameters and constants)
    max_rank: int = 4
    specials: float = 0.15  # chance that a constant holds nan/inf/-0.0/range ends
    fusion_depth: int = 2  # fusion bodies nest this deep
    loop_depth: int = 2  # loop bodies nest this deep (0: no loops)
    max_trips: int = 4  # a loop runs at most this many times
    big: bool = True  # allow dimensions past a vector width (31, 33, 65)
    ops: tuple[Op, ...] = ()  # restrict the top-level ops to these (empty: every op)


class Ctx:
    """One function under construction: its builder, the values so far, the random source."""

    def __init__(
        self, d: Draw, name: str, options: GenOptions, depth: int = 0, loops: int = 0
    ) -> None:
        self.d = d
        self.fb = FunctionBuilder(name)
        self.values: list[Node] = []
        self.options = options
        self.depth = depth  # how deep in fusion bodies this function is
        self.loops = loops  # how deep in loop bodies; -1: in a fusion body, where none may be

    # -- shapes --

    def shape(self, min_rank: int = 0, max_rank: int | None = None) -> tuple[int, ...]:
        top = self.options.max_rank if max_rank is None else max_rank
        rank = self.d.integer(min_rank, max(min_rank, top))
        return _bounded(tuple(self.d.side(self.options.big) for _ in range(rank)))

    def hint(self) -> str | None:
        return self.d.pick(NAME_HINTS)

    # -- values --

    def operand(self, t: TensorType) -> Node:
        """A value of type `t`: reuse one, or add a parameter, a constant or a broadcast."""
        same = [v for v in self.values if v.type == t]
        big = t.size > 16  # big constants are mostly noise in a printed case: prefer inputs
        how = self.d.weighted(
            [
                ("reuse", 3.0 if same else 0.0),
                ("param", 2.0 if big else 1.5),
                ("const", 0.4 if big else 1.2),
                ("broadcast", 1.0 if t.rank else 0.0),
            ]
        )
        if how == "reuse":
            return self.d.pick(same)
        if how == "param" and len(self.fb.params) < len(PARAM_NAMES):
            return self.param(t)
        if how == "broadcast":
            return self.broadcast_to(t)
        return self.constant(t)

    def param(self, t: TensorType) -> Node:
        taken = {p.name for p in self.fb.params}
        free = [n for n in PARAM_NAMES if n not in taken]
        # an index operand is a parameter whatever the count (a campaign once ran out of names)
        name = self.d.pick(free) if free else f"p{len(taken)}"
        node = self.fb.param(name, t)
        self.values.append(node)
        return node

    def constant(self, t: TensorType) -> Node:
        specials = self.options.specials if self.d.flag(0.5) else 0.0
        if t.size and self.d.flag(0.3):  # a splat, which the printer writes as one number
            one = values.array(self.d.rng, (), t.dtype, specials)
            array = np.full(t.shape, one, dtype=t.dtype.np)
        else:
            array = values.array(self.d.rng, t.shape, t.dtype, specials)
        node = self.fb.const(array, name=self.hint())
        self.values.append(node)
        return node

    def broadcast_to(self, t: TensorType) -> Node:
        """A smaller value broadcast to `t`: some dimensions dropped, some of size 1."""
        dims = self.d.subset(list(range(t.rank)))
        small = TensorType(tuple(t.shape[i] if self.d.flag() else 1 for i in dims), t.dtype)
        source = self.operand(small) if small.rank < t.rank else self.constant(small)
        return self.op(Op.BROADCAST_IN_DIM, source, shape=t.shape, dims=dims)

    def op(self, op: Op, *srcs: Node, **attrs: Any) -> Node:
        node = self.fb.op(op, *srcs, name=self.hint(), **attrs)
        self.values.append(node)
        return node

    def typed(self, dtype: DType, min_rank: int = 0, max_rank: int | None = None) -> Node:
        """A value of `dtype`: often an existing one (chains), else a new operand."""
        top = self.options.max_rank if max_rank is None else max_rank
        fits = [v for v in self.values if v.dtype == dtype and min_rank <= v.type.rank <= top]
        computed = [v for v in fits if v.op not in (Op.PARAMETER, Op.CONSTANT)]
        if computed and self.d.flag(0.7):  # extend a chain, most often the latest one
            return computed[-1] if self.d.flag(0.5) else self.d.pick(computed)
        if fits and self.d.flag(0.3):
            return self.d.pick(fits)
        return self.operand(TensorType(self.shape(min_rank, max_rank), dtype))


def _bounded(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Halve the largest dimensions until the tensor has at most MAX_ELEMENTS elements."""
    dims = list(shape)
    while math.prod(dims) > MAX_ELEMENTS:
        i = dims.index(max(dims))
        dims[i] = max(1, dims[i] // 2)
    return tuple(dims)


# --- one generator per op family --------------------------------------------------------------


def g_parameter(c: Ctx, op: Op, dt: DType) -> Node:
    if len(c.fb.params) >= len(PARAM_NAMES):
        return c.constant(TensorType(c.shape(), dt))
    return c.param(TensorType(c.shape(), dt))


def g_constant(c: Ctx, op: Op, dt: DType) -> Node:
    return c.constant(TensorType(c.shape(), dt))


def g_iota(c: Ctx, op: Op, dt: DType) -> Node:
    shape = c.shape(min_rank=1)
    dim = c.d.integer(0, len(shape) - 1)
    attrs: dict[str, Any] = {"shape": shape, "dtype": dt}
    if dim or c.d.flag():
        attrs["dim"] = dim
    return c.op(op, **attrs)


# Functions defined on part of the line: half the time their operand goes through a function
# onto that part (tanh: [-1, 1], cosh: [1, inf]); the other half leaves NaNs to compare too.
INTO_DOMAIN = {Op.ASIN: Op.TANH, Op.ACOS: Op.TANH, Op.ATANH: Op.TANH, Op.ACOSH: Op.COSH}


def g_unary(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    if op in INTO_DOMAIN and c.d.flag():
        x = c.op(INTO_DOMAIN[op], x)
    return c.op(op, x)


def g_binary(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    return c.op(op, *c.d.permutation([x, c.operand(x.type)]))


def g_select(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    return c.op(op, c.operand(x.type.with_dtype(DType.BOOL)), x, c.operand(x.type))


def g_convert(c: Ctx, op: Op, dt: DType) -> Node:
    # a complex value converts only to a complex type (its parts are taken with real/imag)
    targets = [t for t in DTYPES if t.is_complex or not dt.is_complex]
    return c.op(op, c.typed(dt), dtype=c.d.pick(targets))


def g_broadcast(c: Ctx, op: Op, dt: DType) -> Node:
    out = c.shape()
    dims = c.d.subset(list(range(len(out))))
    x = c.operand(TensorType(tuple(out[d] if c.d.flag() else 1 for d in dims), dt))
    attrs: dict[str, Any] = {"shape": out}
    trailing = list(range(len(out) - len(dims), len(out)))
    if dims != trailing or c.d.flag():
        attrs["dims"] = dims
    return c.op(op, x, **attrs)


def _group(c: Ctx, factors: list[int]) -> list[int]:
    """Multiply runs of adjacent factors together: one of the shapes with these factors."""
    out: list[int] = []
    for i, f in enumerate(factors):
        if out and i and c.d.flag():
            out[-1] *= f
        else:
            out.append(f)
    return out


def g_reshape(c: Ctx, op: Op, dt: DType) -> Node:
    factors = [
        c.d.integer(0, 3) if c.d.flag(0.1) else c.d.integer(1, 5) for _ in range(c.d.integer(0, 4))
    ]
    x = c.operand(TensorType(tuple(_group(c, factors)), dt))
    shape = _group(c, factors)
    wild = [i for i in range(len(shape)) if math.prod(shape[:i] + shape[i + 1 :]) != 0]
    if wild and c.d.flag():
        shape[c.d.pick(wild)] = -1
    return c.op(op, x, shape=shape)


def g_transpose(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    return c.op(op, x, perm=c.d.permutation(list(range(x.type.rank))))


def g_slice(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    start = [c.d.integer(0, d) for d in x.shape]
    limit = [c.d.integer(s, d) for s, d in zip(start, x.shape, strict=True)]
    attrs: dict[str, Any] = {"start": start, "limit": limit}
    if c.d.flag():
        attrs["stride"] = [c.d.integer(1, 3) for _ in x.shape]
    return c.op(op, x, **attrs)


def g_reverse(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    return c.op(op, x, dims=_axes(c, x.type.rank))


def g_concatenate(c: Ctx, op: Op, dt: DType) -> Node:
    first = c.typed(dt, min_rank=1)
    base = first.shape
    axis = c.d.integer(0, len(base) - 1)
    parts = [first]
    for _ in range(c.d.integer(0, 2)):
        shape = list(base)
        shape[axis] = c.d.integer(0, 3)
        parts.append(c.operand(TensorType(tuple(shape), dt)))
    return c.op(op, *c.d.permutation(parts), axis=axis - len(base) if c.d.flag() else axis)


def g_pad(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    value = c.operand(TensorType((), dt))
    attrs: dict[str, Any] = {
        "low": [c.d.integer(0, 2) for _ in x.shape],
        "high": [c.d.integer(0, 2) for _ in x.shape],
    }
    if c.d.flag():
        attrs["interior"] = [c.d.integer(0, 2) for _ in x.shape]
    return c.op(op, x, value, **attrs)


def _indexed(c: Ctx, dt: DType) -> tuple[Node, Node, dict[str, Any]]:
    """An operand, indices into some of its axes, and gather/scatter's attributes. In mode
    check the indices are constants in range (negative ones too), since an index out of range
    is an error and the oracle compares values; clip and wrap also take them as inputs."""
    x = c.typed(dt, min_rank=1)
    axis = c.d.integer(0, x.type.rank - 1)
    k = c.d.integer(1, min(2, x.type.rank - axis))
    sides = x.shape[axis : axis + k]
    batch = c.shape(max_rank=2)
    if 0 in sides:
        batch = (0,)
    mode = c.d.pick(["check", "clip", "wrap"])
    itype = c.d.pick([DType.I32, DType.I64, DType.I8, DType.U8, DType.U16, DType.U64])
    idx_type = TensorType((*batch, k), itype)
    if mode != "check" and c.d.flag():
        idx = c.param(idx_type)
    else:
        info = np.iinfo(itype.np.name)
        columns = []
        for n in sides:
            lo, hi = (-n, n - 1) if mode == "check" else (-2 * n - 1, 2 * n + 1)
            lo = max(lo, int(info.min))
            hi = min(max(hi, lo), int(info.max))
            columns.append(c.d.rng.integers(lo, hi + 1, size=math.prod(batch)))
        values_ = np.array(columns, dtype=np.int64).T.reshape(idx_type.shape)
        idx = c.fb.const(values_.astype(itype.np), name=c.hint())
        c.values.append(idx)
    attrs: dict[str, Any] = {"axis": axis - x.type.rank if c.d.flag(0.2) else axis}
    if mode != "check" or c.d.flag():
        attrs["mode"] = mode
    return x, idx, attrs


def g_gather(c: Ctx, op: Op, dt: DType) -> Node:
    x, idx, attrs = _indexed(c, dt)
    return c.op(op, x, idx, **attrs)


def g_scatter(c: Ctx, op: Op, dt: DType) -> Node:
    x, idx, attrs = _indexed(c, dt)
    kinds = ["set", "min", "max"] + (["add", "mul"] if dt != DType.BOOL else [])
    kind = c.d.pick(["set", "add"] if dt.is_complex else kinds)
    if kind != "set" or c.d.flag():
        attrs["kind"] = kind
    axis = attrs["axis"] % x.type.rank
    shape = x.shape[:axis] + idx.shape[:-1] + x.shape[axis + idx.shape[-1] :]
    updates = c.operand(TensorType(shape, dt))
    return c.op(op, x, idx, updates, **attrs)


def _axes(c: Ctx, rank: int) -> list[int]:
    axes = c.d.permutation(c.d.subset(list(range(rank))))
    return [a - rank if c.d.flag() else a for a in axes]  # negative axes count from the end


def g_reduce(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    kinds = [k for k in REDUCE_KINDS if dt != DType.BOOL or k in ("max", "min")]
    kinds = ["sum"] if dt.is_complex else kinds
    return c.op(op, x, kind=c.d.pick(kinds), axes=_axes(c, x.type.rank))


def g_mean(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    return c.op(op, x, axes=_axes(c, x.type.rank))


def g_softmax(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt, min_rank=1)
    rank = x.type.rank
    return c.op(op, x, **({"axis": c.d.integer(-rank, rank - 1)} if c.d.flag() else {}))


def g_sort(c: Ctx, op: Op, dt: DType) -> Node:
    """sort or argsort along any axis (sometimes negative), ascending or descending."""
    x = c.typed(dt, min_rank=1)
    rank = x.type.rank
    attrs: dict[str, Any] = {}
    if c.d.flag():
        attrs["axis"] = c.d.integer(-rank, rank - 1)
    if c.d.flag():
        attrs["descending"] = c.d.flag()
    return c.op(op, x, **attrs)


def _out_dtype(c: Ctx, dt: DType, attrs: dict[str, Any]) -> None:
    if c.d.flag(0.3):
        attrs["out_dtype"] = c.d.pick(
            t
            for t in DTYPES
            if (t.is_float, t.is_complex) == (dt.is_float, dt.is_complex) and t != DType.BOOL
        )


def g_dot(c: Ctx, op: Op, dt: DType) -> Node:
    """Batch, contracting and free dimensions, laid out in a random order on each side."""
    batch = [c.d.side() for _ in range(c.d.integer(0, 1))]
    contract = [c.d.side() for _ in range(c.d.integer(0, 2))]
    lfree = [c.d.side() for _ in range(c.d.integer(0, 1))]
    rfree = [c.d.side() for _ in range(c.d.integer(0, 1))]
    # keep both operands and the product within MAX_ELEMENTS
    while math.prod(batch + contract + lfree + rfree) > MAX_ELEMENTS:
        sizes = [batch, contract, lfree, rfree]
        longest = max((s for s in sizes if s), key=lambda s: max(s))
        longest[longest.index(max(longest))] //= 2

    def side(free: list[int]) -> tuple[TensorType, list[int], list[int]]:
        roles = [("b", i) for i in range(len(batch))] + [("c", i) for i in range(len(contract))]
        roles += [("f", i) for i in range(len(free))]
        order = c.d.permutation(roles)
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
    if batch or c.d.flag():
        attrs.update(lhs_batch=lb, rhs_batch=rb)
    _out_dtype(c, dt, attrs)
    return c.op(op, c.operand(lt), c.operand(rt), **attrs)


def _padding(c: Ctx) -> Any:
    kind = c.d.integer(0, 3)
    if kind == 3:
        return [[c.d.integer(0, 2), c.d.integer(0, 2)] for _ in range(2)]
    return [None, "valid", "same"][kind]


def g_conv(c: Ctx, op: Op, dt: DType) -> Node:
    groups = c.d.integer(1, 2)
    cin, cout = groups * c.d.integer(1, 3), groups * c.d.integer(1, 3)
    kh, kw = c.d.integer(1, 3), c.d.integer(1, 3)
    dilation = [c.d.integer(1, 2), c.d.integer(1, 2)]
    eff = [(kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1]
    n = c.d.integer(0, 2)
    x = TensorType((n, eff[0] + c.d.integer(0, 4), eff[1] + c.d.integer(0, 4), cin), dt)
    w = TensorType((kh, kw, cin // groups, cout), dt)
    attrs: dict[str, Any] = {}
    if groups > 1 or c.d.flag():
        attrs["groups"] = groups
    if dilation != [1, 1] or c.d.flag():
        attrs["dilation"] = dilation
    if c.d.flag():
        attrs["strides"] = [c.d.integer(1, 3), c.d.integer(1, 3)]
    pad = _padding(c)
    if pad is not None:
        attrs["padding"] = pad
    _out_dtype(c, dt, attrs)
    return c.op(op, c.operand(x), c.operand(w), **attrs)


def g_pool(c: Ctx, op: Op, dt: DType) -> Node:
    window = [c.d.integer(1, 3), c.d.integer(1, 3)]
    x = c.operand(
        TensorType(
            (
                c.d.integer(0, 2),
                window[0] + c.d.integer(0, 3),
                window[1] + c.d.integer(0, 3),
                c.d.integer(1, 3),
            ),
            dt,
        )
    )
    attrs: dict[str, Any] = {"window": window}
    if c.d.flag():
        attrs["strides"] = [c.d.integer(1, 3), c.d.integer(1, 3)]
    pad = _padding(c)
    if pad is not None:
        attrs["padding"] = pad
    if op is Op.AVG_POOL and c.d.flag():
        attrs["count_include_pad"] = c.d.flag()
    return c.op(op, x, **attrs)


def _per_channel(c: Ctx, x: Node, attrs: dict[str, Any]) -> int:
    """Sometimes give the op an axis: how many parameters each list then takes."""
    rank = x.type.rank
    if rank and c.d.flag():
        axis = c.d.integer(-rank, rank - 1)
        if x.shape[axis]:  # an empty axis has no channels to give parameters to
            attrs["axis"] = axis
            return x.shape[axis]
    return 1


def _scales(c: Ctx, n: int) -> list[float]:
    return [float(10 ** c.d.rng.uniform(-3, 3)) for _ in range(n)]


def _zero_points(c: Ctx, dtype: DType, n: int) -> list[int]:
    lo, hi = int_range(dtype)
    count = c.d.pick([1, n])
    return [c.d.integer(max(lo, -300), min(hi, 300)) for _ in range(count)]


def g_quantize(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    attrs: dict[str, Any] = {"dtype": c.d.pick(QUANT_INTS)}
    n = _per_channel(c, x, attrs)
    attrs["scale"] = _scales(c, n)
    attrs["zero_point"] = _zero_points(c, attrs["dtype"], n)
    return c.op(op, x, **attrs)


def g_dequantize(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    attrs: dict[str, Any] = {"dtype": c.d.pick(t for t in DTYPES if t.is_float)}
    n = _per_channel(c, x, attrs)
    attrs["scale"] = _scales(c, n)
    attrs["zero_point"] = _zero_points(c, dt, n)
    return c.op(op, x, **attrs)


def g_requantize(c: Ctx, op: Op, dt: DType) -> Node:
    x = c.typed(dt)
    attrs: dict[str, Any] = {"dtype": c.d.pick(QUANT_INTS)}
    n = _per_channel(c, x, attrs)
    attrs["multiplier"] = [c.d.integer(0, (1 << 31) - 1) for _ in range(n)]
    attrs["shift"] = [c.d.integer(-31, 31) for _ in range(n)]
    lo, hi = int_range(attrs["dtype"])
    attrs["zero_point"] = c.d.integer(max(lo, -100), min(hi, 100))
    if c.d.flag():
        attrs["min"], attrs["max"] = sorted((c.d.integer(lo, hi), c.d.integer(lo, hi)))
    return c.op(op, x, **attrs)


def g_fusion(c: Ctx, op: Op, dt: DType) -> Node:
    """A nested body of a few random nodes, fed by operands of its parameters' types."""
    inner = Ctx(c.d, "fusion", c.options, c.depth + 1, loops=-1)
    first = c.typed(dt)
    inner.param(first.type)
    for _ in range(c.d.integer(1, 3)):
        add_node(inner)
    body = inner.fb.build([inner.values[-1]])
    srcs = [first] + [c.operand(p.type) for p in body.params[1:]]
    return c.op(op, *srcs, body=body)


COUNTERS = [DType.I32, DType.I64, DType.I8, DType.U8, DType.U32]
# elementwise ops whose result has their operands' type: updates of a carried value (not
# real, imag and complex, which change it, nor abs of a complex value: see _keeps_type)
UPDATES = sorted((ops.UNARY | ops.BINARY) - {Op.REAL, Op.IMAG, Op.COMPLEX}, key=lambda o: o.value)


def _keeps_type(op: Op, dt: DType) -> bool:
    return dt in ACCEPTS[op] and not (op is Op.ABS and dt.is_complex)


def _update(c: Ctx, p: Node) -> Node:
    """A new value for a loop body's carried parameter `p`: one the body computed (most often
    the latest; two carried values may get the same), another carried value of its type (a
    swap), an elementwise op on `p`, or (rarely) `p` itself."""
    made = [v for v in c.values if v.type == p.type and v.op not in (Op.PARAMETER, Op.CONSTANT)]
    if made and c.d.flag(0.7):
        return made[-1] if c.d.flag() else c.d.pick(made)
    others = [q for q in c.fb.params if q.type == p.type and q is not p]
    if others and c.d.flag(0.3):
        return c.d.pick(others)
    fitting = [o for o in UPDATES if _keeps_type(o, p.dtype)]
    if not fitting or c.d.flag(0.15):
        return p
    op = c.d.pick(fitting)
    if op in INTO_DOMAIN and c.d.flag():
        p = c.op(INTO_DOMAIN[op], p)
    srcs = [p] if op in ops.UNARY else c.d.permutation([p, c.operand(p.type)])
    return c.op(op, *srcs)


def _trip_bound(c: Ctx, t: TensorType) -> Node:
    """A scalar in 0..max_trips for the loop's bound: a constant, or an input clamped."""
    top = c.options.max_trips
    if c.d.flag(0.6) or len(c.fb.params) >= len(PARAM_NAMES):
        node = c.fb.const(np.array(c.d.integer(0, top), t.dtype.np), name=c.hint())
        c.values.append(node)
        return node
    same = [p for p in c.fb.params if p.type == t]
    source = c.d.pick(same) if same and c.d.flag() else c.param(t)
    low = c.fb.const(np.array(0, t.dtype.np))
    high = c.fb.const(np.array(top, t.dtype.np))
    return c.op(Op.MIN, c.fb.op(Op.MAX, source, low), high)


def counted_loop(c: Ctx, dt: DType) -> tuple[Node, int]:
    """A `while` that ends within max_trips: its counter (an integer scalar, carried first)
    starts at 0..2 and counts up to a bound that is a constant in `cond` or carried second
    (from a constant or a clamped input). The body is 1..3 random nodes over the carried
    values, then an update of each; a parameter a drawn node adds is carried too (its initial
    value an operand outside). The first data value extends an existing chain of dtype `dt`;
    its index comes back with the loop."""
    ct = TensorType((), c.d.pick(COUNTERS))
    first = c.typed(dt)
    inner = Ctx(c.d, "body", c.options, c.depth, c.loops + 1)
    counter = inner.param(ct)
    bound = inner.param(ct) if c.d.flag() else None
    inner.param(first.type)
    for _ in range(c.d.integer(1, 3)):
        add_node(inner)
    one = inner.fb.const(np.array(1, ct.dtype.np))
    updates = {counter: inner.op(Op.ADD, *c.d.permutation([counter, one]))}
    if bound is not None:
        updates[bound] = bound
    while len(updates) < len(inner.fb.params):  # an update may add parameters: carry them too
        p = next(p for p in inner.fb.params if p not in updates)
        updates[p] = _update(inner, p)
    body = inner.fb.build([updates[p] for p in inner.fb.params])

    cb = FunctionBuilder("cond")
    cps = [cb.param(p.name or f"p{i}", p.type) for i, p in enumerate(body.params)]
    if bound is not None:
        limit = cps[1]
    else:
        limit = cb.const(np.array(c.d.integer(0, c.options.max_trips), ct.dtype.np))
    test = cb.op(Op.LT, cps[0], limit) if c.d.flag() else cb.op(Op.GT, limit, cps[0])
    cond = cb.build([test])

    start = c.fb.const(np.array(c.d.integer(0, 2), ct.dtype.np), name=c.hint())
    c.values.append(start)
    inits = [start] + ([_trip_bound(c, ct)] if bound is not None else []) + [first]
    inits += [c.operand(p.type) for p in body.params[len(inits) :]]
    node = c.fb.op(Op.WHILE, *inits, name=c.hint(), cond=cond, body=body)
    return node, 2 if bound is not None else 1  # not among the values: only a get reads it


def for_loop(c: Ctx, dt: DType) -> Node:
    """A `for` from a constant 0..2 up to a bound like a `while`'s (so at most max_trips
    iterations); the body takes the index and the carried values, the first of which extends
    a chain of dtype `dt`, and is 1..3 random nodes then an update of each carried value."""
    ct = TensorType((), c.d.pick(COUNTERS))
    first = c.typed(dt)
    inner = Ctx(c.d, "body", c.options, c.depth, c.loops + 1)
    inner.param(ct)
    inner.param(first.type)
    for _ in range(c.d.integer(1, 3)):
        add_node(inner)
    updates: dict[Node, Node] = {}
    while len(updates) < len(inner.fb.params) - 1:  # an update may add parameters too
        p = next(p for p in inner.fb.params[1:] if p not in updates)
        updates[p] = _update(inner, p)
    body = inner.fb.build([updates[p] for p in inner.fb.params[1:]])
    lower = c.fb.const(np.array(c.d.integer(0, 2), ct.dtype.np), name=c.hint())
    c.values.append(lower)
    inits = [first, *(c.operand(p.type) for p in body.params[2:])]
    return c.fb.op(Op.FOR, lower, _trip_bound(c, ct), *inits, name=c.hint(), body=body)


def g_for(c: Ctx, op: Op, dt: DType) -> Node:
    """A counted loop and a get of its first carried value, sometimes of another too."""
    w = for_loop(c, dt)
    other = c.d.integer(0, len(_elements(w)) - 1)
    if other and c.d.flag(0.4):
        c.op(Op.GET, w, index=other)
    return c.op(Op.GET, w, index=0)


def _elements(w: Node) -> tuple[TensorType, ...]:
    assert isinstance(w.type, TupleType)
    return w.type.elements


def g_while(c: Ctx, op: Op, dt: DType) -> Node:
    """A loop and a get of its first data value, sometimes of another element too."""
    w, data = counted_loop(c, dt)
    other = c.d.integer(0, len(_elements(w)) - 1)
    if other != data and c.d.flag(0.4):
        c.op(Op.GET, w, index=other)
    return c.op(Op.GET, w, index=data)


def g_get(c: Ctx, op: Op, dt: DType) -> Node:
    """A loop and a get of one of its elements of dtype `dt` (the counter when it fits)."""
    w, _ = counted_loop(c, dt)
    return c.op(op, w, index=c.d.pick(i for i, e in enumerate(_elements(w)) if e.dtype == dt))


def branch(c: Ctx, dt: DType) -> Node:
    """A `cond` on a bool scalar whose sides each extend a chain of dtype `dt` by 0..3 random
    nodes and an update of it (as a loop body updates a carried value); result 0 is that
    update, result 1 (sometimes) the chain's value passed through. Both sides take the
    parameters either drew (each ignores the other's)."""
    first = c.typed(dt)
    sides: list[Ctx] = []
    results: list[list[Node]] = []
    keep = c.d.flag(0.4)
    for name in ("on_true", "on_false"):
        inner = Ctx(c.d, name, c.options, c.depth, c.loops + 1)
        for p in sides[0].fb.params if sides else []:  # the true side's parameters, in order
            inner.values.append(inner.fb.param(p.name or "x", p.type))
        start = inner.fb.params[0] if sides else inner.param(first.type)
        for _ in range(c.d.integer(0, 3)):
            add_node(inner)
        results.append([_update(inner, start), *([start] if keep else [])])
        sides.append(inner)
    t, f = sides
    for p in f.fb.params[len(t.fb.params) :]:  # the false side's own, which the true one ignores
        t.fb.param(p.name or "x", p.type)
    on_true, on_false = (side.fb.build(r) for side, r in zip(sides, results, strict=True))
    pred = c.operand(TensorType((), DType.BOOL))
    operands = [first, *(c.operand(p.type) for p in on_true.params[1:])]
    return c.fb.op(
        Op.COND, pred, *operands, name=c.hint(), true_branch=on_true, false_branch=on_false
    )


def g_cond(c: Ctx, op: Op, dt: DType) -> Node:
    """A branch and a get of its first result, sometimes of the other too."""
    node = branch(c, dt)
    if len(_elements(node)) == 2 and c.d.flag(0.5):
        c.op(Op.GET, node, index=1)
    return c.op(Op.GET, node, index=0)


Generator = Callable[[Ctx, Op, DType], Node]
GENERATORS: dict[Op, Generator] = {
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
    Op.QUANTIZE: g_quantize,
    Op.DEQUANTIZE: g_dequantize,
    Op.REQUANTIZE: g_requantize,
    Op.FUSION: g_fusion,
    Op.WHILE: g_while,
    Op.FOR: g_for,
    Op.COND: g_cond,
    Op.GET: g_get,
}
LOOPS = (Op.WHILE, Op.FOR, Op.COND, Op.GET)
# sources are drawn as operands anyway; as top-level ops they would only add dead values
_TOP_LEVEL = [op for op in Op if op not in (Op.PARAMETER, Op.CONSTANT)]


def add_node(c: Ctx, op: Op | None = None, dtype: DType | None = None) -> Node:
    """Append one node (a random op and dtype unless given) with the operands it needs."""
    if op is None:
        allowed = list(c.options.ops) or _TOP_LEVEL
        nested = c.depth < c.options.fusion_depth
        loops = 0 <= c.loops < c.options.loop_depth
        op = c.d.pick(
            o
            for o in allowed
            if (o is not Op.FUSION or nested) and (o not in LOOPS or loops) and ACCEPTS[o]
        )
    dt = dtype if dtype is not None else c.d.pick(ACCEPTS[op])
    return GENERATORS[op](c, op, dt)


def function(d: Draw, options: GenOptions, name: str = "main") -> Function:
    """A function of 1..max_nodes random ops; its results are mostly the values nothing uses."""
    c = Ctx(d, name, options)
    for _ in range(d.integer(1, options.max_nodes)):
        add_node(c)
    used = {s for n in c.fb.body for s in n.srcs}
    sinks = [v for v in c.values if v not in used and v.op is not Op.PARAMETER]
    results = sinks[-3:] if sinks else [c.values[-1]]
    if d.flag(0.2):  # an inner value too: a result that is also an operand
        results.append(d.pick(c.values))
    return c.fb.build(results)


def module(d: Draw, options: GenOptions) -> Module:
    """A one-function module (the backends compile the entry function only)."""
    try:
        fn = function(d, options)
    except GraphTypeError as e:  # a generator bug: say so with the op's own message
        raise AssertionError(f"compiler/fuzz/gen.py built an invalid node: {e}") from e
    return Module((fn,), fn.name)
