"""The value of any node at any output position: one emitter per op family, in one table.

A kernel computes its output element by element inside a loop nest. `Emitter.value(node, idx)`
emits the instructions for `node`'s element at multi-index `idx`: operands that live in memory
are loaded, everything else (the inside of a fusion, broadcasts, index remapping) is computed in
registers. Data movement ops are index arithmetic; reductions, dot_general, conv2d and pooling
open inner loops that accumulate in a stack slot.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import ml_dtypes
import numpy as np
from llvmlite import ir

from codegen.index_check import StatusWord, position
from codegen.loops import loop_nest
from codegen.scalar import SCALAR, convert
from codegen.types import (
    COMPUTE,
    F32,
    F64,
    I1,
    I32,
    I64,
    PTR,
    Index,
    element_ptr,
    global_array,
    load_value,
    round_to,
)
from ir.dtypes import DType
from ir.graph import Node
from ir.ops import ELEMENTWISE, Op


class LoweringError(Exception):
    """The CPU backend cannot lower this node (a bug or an unsupported construct)."""


@dataclass(frozen=True)
class Buffer:
    """A value that lives in memory: a pointer to a dense row-major array."""

    ptr: ir.Value
    dtype: DType
    shape: tuple[int, ...]


def operand_buffers(nodes: Sequence[Node], pointers: Sequence[ir.Value]) -> dict[Node, Buffer]:
    """`nodes` in memory, the i-th at `pointers[i]` (dense, row-major)."""
    return {n: Buffer(p, n.dtype, n.shape) for n, p in zip(nodes, pointers, strict=True)}


def linear(b: ir.IRBuilder, index: Index, shape: Sequence[int]) -> ir.Value:
    offset: ir.Value = I64(0)
    for i, (idx, dim) in enumerate(zip(index, shape, strict=True)):
        offset = b.add(b.mul(offset, I64(dim)), idx, flags=["nsw"]) if i else idx
    return offset


def unravel(b: ir.IRBuilder, flat: ir.Value, shape: Sequence[int]) -> Index:
    out: list[ir.Value] = []
    for dim in reversed(shape[1:]):
        out.append(b.urem(flat, I64(dim)))
        flat = b.udiv(flat, I64(dim))
    out.append(flat)
    return tuple(reversed(out)) if shape else ()


class Emitter:
    """`wide` makes f32 contractions sum in f64 (for exact range: see `exact_range` below);
    `status` points to the program's status word, for kernels that check indices
    (codegen/indexed.py)."""

    def __init__(
        self, b: ir.IRBuilder, buffers: dict[Node, Buffer], wide: bool = False,
        status: StatusWord | None = None,
    ) -> None:  # fmt: skip
        self.b = b
        self.buffers = buffers
        self.wide = wide
        self.status = status
        self.cache: dict[tuple[Node, tuple[int, ...]], ir.Value] = {}
        # Index values known to stay in [lo, hi) (a loop split at pad and concatenate
        # boundaries: codegen/index_split.py), so those ops need no clamp and no select there.
        self.ranges: dict[int, tuple[int, int]] = {}
        # A fusion body's scalar values, computed before the kernel's loops (`hoist_scalars`).
        self.hoisted: dict[Node, dict[tuple[Node, tuple[int, ...]], ir.Value]] = {}

    def known(self, i: ir.Value) -> tuple[int, int] | None:
        return self.ranges.get(id(i))

    def value(self, node: Node, index: Index) -> ir.Value:
        key = (node, tuple(id(i) for i in index))
        if key not in self.cache:
            buf = self.buffers.get(node)
            if buf is not None:
                offset = linear(self.b, index, buf.shape)
                result = load_value(
                    self.b, element_ptr(self.b, buf.ptr, offset, buf.dtype), buf.dtype
                )
            else:
                rule = EMIT.get(node.op)
                if rule is None:
                    raise LoweringError(f"the CPU backend cannot lower {node.op.value}")
                result = rule(self, node, index)
            self.cache[key] = result
        return self.cache[key]

    def slot(self, ty: ir.Type, init: ir.Value) -> ir.Value:
        """A stack variable allocated in the entry block (so LLVM promotes it to a register)."""
        b = self.b
        with b.goto_entry_block():
            ptr = b.alloca(ty)
        b.store(init, ptr)
        return ptr

    @contextmanager
    def scope(self) -> Iterator[None]:
        """Values computed inside an inner loop must not be reused outside it."""
        saved = dict(self.cache)
        yield
        self.cache = saved


# --- elementwise and sources ------------------------------------------------------------------


def _elementwise(e: Emitter, n: Node, idx: Index) -> ir.Value:
    args = [e.value(s, idx) for s in n.srcs]
    src_dtype = n.srcs[-1].dtype  # select's data operands come last
    return SCALAR[n.op](e.b, src_dtype, n.dtype, args)


def _constant(e: Emitter, n: Node, idx: Index) -> ir.Value:
    arr = n.attrs["value"].array
    flat = arr.reshape(-1)
    if flat.size and (flat == flat[0]).all() and not np.isnan(flat.astype(np.float64)).any():
        return scalar_constant(e, flat[0], n.dtype)
    glob = global_array(e.b.module, np.ascontiguousarray(arr))
    ptr = element_ptr(e.b, glob, linear(e.b, idx, n.shape), n.dtype)
    return load_value(e.b, ptr, n.dtype)


def scalar_constant(e: Emitter, value: object, dtype: DType) -> ir.Value:
    ty = COMPUTE[dtype]
    if dtype == DType.BOOL:
        return ir.Constant(I1, int(bool(value)))
    if dtype.is_float:
        return ir.Constant(ty, float(value))  # type: ignore[arg-type]
    return ir.Constant(ty, int(value))  # type: ignore[call-overload]


def _iota(e: Emitter, n: Node, idx: Index) -> ir.Value:
    return convert(e.b, DType.I64, n.dtype, [idx[n.attrs["dim"]]])


# --- data movement: index arithmetic ----------------------------------------------------------


def _broadcast(e: Emitter, n: Node, idx: Index) -> ir.Value:
    (x,) = n.srcs
    src_idx = tuple(I64(0) if x.shape[i] == 1 else idx[d] for i, d in enumerate(n.attrs["dims"]))
    return e.value(x, src_idx)


def _reshape(e: Emitter, n: Node, idx: Index) -> ir.Value:
    (x,) = n.srcs
    return e.value(x, unravel(e.b, linear(e.b, idx, n.shape), x.shape))


def _transpose(e: Emitter, n: Node, idx: Index) -> ir.Value:
    (x,) = n.srcs
    src = [I64(0)] * x.type.rank
    for i, p in enumerate(n.attrs["perm"]):
        src[p] = idx[i]
    return e.value(x, tuple(src))


def _slice(e: Emitter, n: Node, idx: Index) -> ir.Value:
    (x,) = n.srcs
    a = n.attrs
    b = e.b
    starts = zip(idx, a["start"], a["stride"], strict=True)
    return e.value(x, tuple(b.add(I64(lo), b.mul(i, I64(st))) for i, lo, st in starts))


def _reverse(e: Emitter, n: Node, idx: Index) -> ir.Value:
    (x,) = n.srcs
    dims = n.attrs["dims"]
    src = [e.b.sub(I64(x.shape[d] - 1), i) if d in dims else i for d, i in enumerate(idx)]
    return e.value(x, tuple(src))


def _clamp(b: ir.IRBuilder, i: ir.Value, size: int) -> ir.Value:
    """An index forced into [0, size) so a load is always in bounds; its value is then masked."""
    i = b.select(b.icmp_signed("<", i, I64(0)), I64(0), i)
    return b.select(b.icmp_signed(">=", i, I64(size)), I64(max(size - 1, 0)), i)


def _pad(e: Emitter, n: Node, idx: Index) -> ir.Value:
    x, fill = n.srcs
    b, a = e.b, n.attrs
    inside: ir.Value = ir.Constant(I1, 1)
    src = []
    for i, lo, step, size in zip(idx, a["low"], a["interior"], x.shape, strict=False):
        where = e.known(i)
        if where is not None and not step:
            if lo <= where[0] and where[1] <= lo + size:  # all inside: no clamp needed
                src.append(b.sub(i, I64(lo)))
                continue
            if where[1] <= lo or where[0] >= lo + size:  # all in the padding
                return e.value(fill, ())
        pos = b.sub(i, I64(lo))
        q = b.sdiv(pos, I64(step + 1)) if step else pos
        ok = b.icmp_signed(">=", pos, I64(0))
        ok = b.and_(ok, b.icmp_signed("<", q, I64(size)))
        if step:
            ok = b.and_(ok, b.icmp_signed("==", b.srem(pos, I64(step + 1)), I64(0)))
        inside = b.and_(inside, ok)
        src.append(_clamp(b, q, size))
    pad_value = e.value(fill, ())
    if x.type.size == 0:
        return pad_value
    return b.select(inside, e.value(x, tuple(src)), pad_value)


def _concatenate(e: Emitter, n: Node, idx: Index) -> ir.Value:
    axis, b = n.attrs["axis"], e.b
    result: ir.Value | None = None
    start = 0
    where = e.known(idx[axis])
    for x in n.srcs:
        size = x.shape[axis]
        if size == 0:
            continue
        if where is not None and start <= where[0] and where[1] <= start + size:
            local = b.sub(idx[axis], I64(start))  # all in this operand: no clamp, no select
            return e.value(x, (*idx[:axis], local, *idx[axis + 1 :]))
        local = _clamp(b, b.sub(idx[axis], I64(start)), size)
        value = e.value(x, (*idx[:axis], local, *idx[axis + 1 :]))
        if result is None:
            result = value
        else:
            result = b.select(b.icmp_signed(">=", idx[axis], I64(start)), value, result)
        start += size
    if result is None:
        raise LoweringError("concatenate of empty operands has no elements to compute")
    return result


# --- reductions and contractions: inner loops -------------------------------------------------


def _int_limits(dtype: DType) -> Any:
    return np.iinfo(dtype.np)


REDUCE_IDENTITY: dict[str, Callable[[DType], object]] = {
    "sum": lambda dt: 0,
    "prod": lambda dt: 1,
    "max": lambda dt: (
        -math.inf if dt.is_float else (0 if dt == DType.BOOL else _int_limits(dt).min)
    ),
    "min": lambda dt: math.inf if dt.is_float else (1 if dt == DType.BOOL else _int_limits(dt).max),
}
REDUCE_OP = {"sum": Op.ADD, "prod": Op.MUL, "max": Op.MAX, "min": Op.MIN}


def _accumulate(
    e: Emitter, n: Node, extents: Sequence[int], kind: str, acc_dtype: DType,
    term: Callable[[list[ir.Value]], ir.Value],
) -> ir.Value:  # fmt: skip
    """Fold `term(inner index)` over a loop nest with `kind`'s operation, in `acc_dtype`.

    Float accumulation may be reassociated, which lets LLVM keep at least one vector of partial
    sums: for n terms the error is at most (n / 16 + 16) * u * sum(|x|) in f32 (u = 2**-24),
    against n * u * sum(|x|) for one running sum (tests/backends/test_cpu_runtime.py checks it).
    Reassociation also lets LLVM cancel terms algebraically (`acc + (x - x)` becomes `acc`),
    which would lose a NaN the term holds, so sums and products also record whether any term
    was NaN and give NaN if one was. max/min use llvm.maximum/minimum, which propagate NaN.
    """
    b = e.b
    ty = COMPUTE[acc_dtype]
    slot = e.slot(ty, scalar_constant(e, REDUCE_IDENTITY[kind](acc_dtype), acc_dtype))
    track_nan = acc_dtype.is_float and kind in ("sum", "prod")
    nan_seen = e.slot(ir.IntType(1), ir.Constant(ir.IntType(1), 0)) if track_nan else None
    with e.scope(), loop_nest(b, extents, name="r") as inner:
        acc = b.load(slot, typ=ty)
        t = term(inner)
        b.store(combine(b, kind, acc_dtype, acc, t), slot)
        if nan_seen is not None:
            seen = b.load(nan_seen, typ=ir.IntType(1))
            b.store(b.or_(seen, b.fcmp_unordered("uno", t, t)), nan_seen)
    result = b.load(slot, typ=ty)
    if nan_seen is None:
        return result
    return b.select(b.load(nan_seen, typ=ir.IntType(1)), ir.Constant(ty, math.nan), result)


def combine(b: ir.IRBuilder, kind: str, dtype: DType, acc: ir.Value, t: ir.Value) -> ir.Value:
    if dtype == DType.BOOL:  # max is any, min is all
        return b.or_(acc, t) if kind == "max" else b.and_(acc, t)
    if not dtype.is_float:
        return SCALAR[REDUCE_OP[kind]](b, dtype, dtype, [acc, t])
    if kind in ("max", "min"):
        name = "maximum" if kind == "max" else "minimum"
        fnty = ir.FunctionType(acc.type, [acc.type, acc.type])
        fn = b.module.declare_intrinsic(f"llvm.{name}", [acc.type], fnty)
        return b.call(fn, [acc, t])
    op = b.fadd if kind == "sum" else b.fmul
    return op(acc, t, flags=("reassoc", "nsz"))


def _wide(dtype: DType) -> DType:
    """Accumulator type: f32 for narrow floats, the type itself otherwise (ints wrap)."""
    return DType.F32 if dtype in (DType.F16, DType.BF16) else dtype


def _reduce(e: Emitter, n: Node, idx: Index) -> ir.Value:
    (x,) = n.srcs
    axes = n.attrs["axes"]
    kept = [d for d in range(x.type.rank) if d not in axes]

    def term(inner: list[ir.Value]) -> ir.Value:
        full: list[ir.Value] = [I64(0)] * x.type.rank
        for dims, values in ((axes, inner), (kept, idx)):
            for d, v in zip(dims, values, strict=True):
                full[d] = v
        return e.value(x, tuple(full))

    acc = _accumulate(e, n, [x.shape[a] for a in axes], n.attrs["kind"], _wide(x.dtype), term)
    return round_to(e.b, acc, n.dtype)


def _dot(e: Emitter, n: Node, idx: Index) -> ir.Value:
    lhs, rhs = n.srcs
    a = n.attrs
    lb, rb, lc, rc = a["lhs_batch"], a["rhs_batch"], a["lhs_contract"], a["rhs_contract"]
    lfree = [d for d in range(lhs.type.rank) if d not in lb and d not in lc]
    rfree = [d for d in range(rhs.type.rank) if d not in rb and d not in rc]
    it = iter(idx)
    batch = [next(it) for _ in lb]
    lout = [next(it) for _ in lfree]
    rout = [next(it) for _ in rfree]
    acc_dtype = dot_accumulator(lhs.dtype, e.wide)

    def operand_index(rank: int, bdims: Sequence[int], bvals: Sequence[ir.Value],
                      cdims: Sequence[int], cvals: Sequence[ir.Value],
                      fdims: Sequence[int], fvals: Sequence[ir.Value]) -> Index:  # fmt: skip
        full: list[ir.Value] = [I64(0)] * rank
        for dims, vals in ((bdims, bvals), (cdims, cvals), (fdims, fvals)):
            for d, v in zip(dims, vals, strict=True):
                full[d] = v
        return tuple(full)

    def term(inner: list[ir.Value]) -> ir.Value:
        x = e.value(lhs, operand_index(lhs.type.rank, lb, batch, lc, inner, lfree, lout))
        y = e.value(rhs, operand_index(rhs.type.rank, rb, batch, rc, inner, rfree, rout))
        x = convert(e.b, lhs.dtype, acc_dtype, [x])
        y = convert(e.b, rhs.dtype, acc_dtype, [y])
        return SCALAR[Op.MUL](e.b, acc_dtype, acc_dtype, [x, y])

    acc = _accumulate(e, n, [lhs.shape[d] for d in lc], "sum", acc_dtype, term)
    return convert(e.b, acc_dtype, n.dtype, [_exact(e, n, idx, acc)])


def dot_accumulator(dtype: DType, wide: bool = False) -> DType:
    if dtype.is_float:
        return DType.F64 if dtype == DType.F64 or wide else DType.F32
    return DType.I64  # exact for every product of two operands of 32 bits or fewer


# --- exact range of f32 contractions ----------------------------------------------------------
# The reference (runtime/reference_nn.py) gives a contraction summing in f32 exact range: an
# element is infinite or NaN only where the sum without intermediate overflow is. An f32 sum
# that overflowed on the way stays infinite or NaN in any order (inf + x = inf, inf - inf =
# NaN), so the kernels keep their fast f32 sums and recompute in f64 just the elements that
# came out non-finite: a compare per element, and nothing else on ordinary data.

F32_MAX = float(np.finfo(np.float32).max)
ABS_BITS, INF_BITS = 0x7FFFFFFF, 0x7F800000  # |x| of an f32 as bits, and the first non-finite


def contraction_depth(node: Node) -> int:
    """K: how many products one output element of a dot_general or conv2d sums."""
    if node.op is Op.CONV2D:
        kh, kw, cin, _ = node.srcs[1].shape
        return int(kh * kw * cin)
    return math.prod(node.srcs[0].shape[d] for d in node.attrs["lhs_contract"])


def safe_magnitude(k: int) -> float:
    """The bound on |a| |b| below which k products and every partial sum of them stay in f32's
    range in any order: each rounding adds at most a factor (1 + 2^-24), at most k + 1 of them
    in a row, and half of f32's maximum leaves the rest as margin."""
    return F32_MAX / 2 / math.exp((k + 1) * 2.0**-24) / max(k, 1)


def can_overflow(node: Node) -> bool:
    """A dot_general or conv2d summing in f32 whose operand types reach f32's range (f16
    operands never can: 65504^2 K stays far below it)."""
    if node.op not in (Op.DOT_GENERAL, Op.CONV2D):
        return False
    lhs, rhs = node.srcs
    if dot_accumulator(lhs.dtype) != DType.F32 or contraction_depth(node) == 0:
        return False
    largest = [float(ml_dtypes.finfo(s.dtype.np).max) for s in (lhs, rhs)]  # type: ignore[no-untyped-call]
    return largest[0] * largest[1] >= safe_magnitude(contraction_depth(node))


def non_finite(b: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """Whether an f32 is infinite or NaN (as bits: no fast-math flag can fold it away)."""
    magnitude = b.and_(b.bitcast(value, I32), I32(ABS_BITS))
    return b.icmp_unsigned(">=", magnitude, I32(INF_BITS))


def exact_range(b: ir.IRBuilder, value: ir.Value, wide: Callable[[], ir.Value]) -> ir.Value:
    """`value`, an f32 sum; where it is not finite, `wide()` (the sum in f64) rounded to f32."""
    with b.goto_entry_block():
        result = b.alloca(F32)
    b.store(value, result)
    with b.if_then(non_finite(b, value), likely=False):
        again = wide()
        b.store(b.fptrunc(again, F32) if again.type == F64 else again, result)
    return b.load(result, typ=F32)


def exact_sum(
    b: ir.IRBuilder, value: ir.Value, contraction: Node, buffers: dict[Node, Buffer], index: Index
) -> ir.Value:
    """`value`, a kernel's f32 sum for `contraction` at `index` with its operands in `buffers`,
    with exact range."""
    wide = _wide_sum(b.module, contraction, buffers)
    pointers = [buffer.ptr for buffer in buffers.values()]
    return exact_range(b, value, lambda: b.call(wide, [*pointers, *index]))


def _wide_sum(module: ir.Module, contraction: Node, buffers: dict[Node, Buffer]) -> ir.Function:
    """A function of the buffers' pointers and an output index: `contraction` there, summed in
    f64. It runs only where an f32 sum overflowed, so it is compiled without optimization and
    costs the kernel no compile time to speak of."""
    params = [PTR] * len(buffers) + [I64] * contraction.type.rank
    fn = ir.Function(
        module, ir.FunctionType(COMPUTE[contraction.dtype], params), module.get_unique_name("wide")
    )
    fn.linkage = "internal"
    for attribute in ("cold", "noinline", "optnone"):
        fn.attributes.add(attribute)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    pointers, index = fn.args[: len(buffers)], fn.args[len(buffers) :]
    inner = {n: replace(buf, ptr=p) for (n, buf), p in zip(buffers.items(), pointers, strict=True)}
    b.ret(Emitter(b, inner, wide=True).value(contraction, tuple(index)))
    return fn


def _exact(e: Emitter, n: Node, idx: Index, acc: ir.Value) -> ir.Value:
    """The generic loops' f32 sum `acc` of `n` at `idx`, with exact range."""
    if e.wide or not can_overflow(n):
        return acc
    return exact_sum(e.b, acc, n, e.buffers, idx)


def _conv(e: Emitter, n: Node, idx: Index) -> ir.Value:
    x, w = n.srcs
    a, b = n.attrs, e.b
    (pt, _), (pl, _) = a["padding"]
    sh, sw = a["strides"]
    dh, dw = a["dilation"]
    kh, kw, cin, cout = w.shape
    per_group = cout // a["groups"]
    batch, oh, ow, oc = idx
    group_base = b.mul(b.udiv(oc, I64(per_group)), I64(cin))
    acc_dtype = dot_accumulator(x.dtype, e.wide)

    def term(inner: list[ir.Value]) -> ir.Value:
        i, j, c = inner
        h = b.add(b.mul(oh, I64(sh)), I64(-pt))
        h = b.add(h, b.mul(i, I64(dh)))
        v = b.add(b.add(b.mul(ow, I64(sw)), I64(-pl)), b.mul(j, I64(dw)))
        inside = b.and_(
            b.and_(b.icmp_signed(">=", h, I64(0)), b.icmp_signed("<", h, I64(x.shape[1]))),
            b.and_(b.icmp_signed(">=", v, I64(0)), b.icmp_signed("<", v, I64(x.shape[2]))),
        )
        tap = (batch, _clamp(b, h, x.shape[1]), _clamp(b, v, x.shape[2]), b.add(group_base, c))
        # padding is zeros in the input, so 0 * inf = nan in the filter still shows (as in XLA)
        xv = convert(b, x.dtype, acc_dtype, [e.value(x, tap)])
        xv = b.select(inside, xv, scalar_constant(e, 0, acc_dtype))
        wv = convert(b, w.dtype, acc_dtype, [e.value(w, (i, j, c, oc))])
        return SCALAR[Op.MUL](b, acc_dtype, acc_dtype, [xv, wv])

    acc = _accumulate(e, n, [kh, kw, cin], "sum", acc_dtype, term)
    return convert(b, acc_dtype, n.dtype, [_exact(e, n, idx, acc)])


def _max_pool(e: Emitter, n: Node, idx: Index) -> ir.Value:
    (x,) = n.srcs
    a, b = n.attrs, e.b
    (pt, _), (pl, _) = a["padding"]
    sh, sw = a["strides"]
    batch, oh, ow, c = idx
    lowest = scalar_constant(e, REDUCE_IDENTITY["max"](x.dtype), x.dtype)

    def term(inner: list[ir.Value]) -> ir.Value:
        i, j = inner
        h = b.add(b.mul(oh, I64(sh)), b.sub(i, I64(pt)))
        v = b.add(b.mul(ow, I64(sw)), b.sub(j, I64(pl)))
        inside = b.and_(
            b.and_(b.icmp_signed(">=", h, I64(0)), b.icmp_signed("<", h, I64(x.shape[1]))),
            b.and_(b.icmp_signed(">=", v, I64(0)), b.icmp_signed("<", v, I64(x.shape[2]))),
        )
        xv = e.value(x, (batch, _clamp(b, h, x.shape[1]), _clamp(b, v, x.shape[2]), c))
        return b.select(inside, xv, lowest)

    return _accumulate(e, n, list(a["window"]), "max", x.dtype, term)


# --- indexed reads (codegen/index_check.py) -----------------------------------------------


def source_index(e: Emitter, node: Node, index: tuple[ir.Value, ...]) -> tuple[ir.Value, ...]:
    """The position in x that gather's (or scatter's) element `index` reads (writes)."""
    x, idx = node.srcs[0], node.srcs[1]
    axis, k, batch = node.attrs["axis"], idx.shape[-1], idx.type.rank - 1
    pre, where, post = index[:axis], index[axis : axis + batch], index[axis + batch :]
    positions = [
        position(
            e.b,
            e.value(idx, (*where, I64(c))),
            idx.dtype,
            x.shape[axis + c],
            node.attrs["mode"],
            e.status,
        )
        for c in range(k)
    ]
    return (*pre, *positions, *post)


def _gather(e: Emitter, node: Node, index: tuple[ir.Value, ...]) -> ir.Value:
    return e.value(node.srcs[0], source_index(e, node, index))


def _body_emitter(e: Emitter, n: Node) -> Emitter:
    body = n.attrs["body"]
    buffers = {p: e.buffers[s] for p, s in zip(body.params, n.srcs, strict=True)}
    inner = Emitter(e.b, buffers, e.wide, e.status)
    inner.ranges = e.ranges
    inner.cache.update(e.hoisted.get(n, {}))
    return inner


def _fusion(e: Emitter, n: Node, idx: Index) -> ir.Value:
    return _body_emitter(e, n).value(n.attrs["body"].results[0], idx)


def hoist_scalars(e: Emitter, node: Node) -> None:
    """Compute the scalar values of `node`'s fusion body once, where the builder stands (before
    the kernel's loops), instead of inside the loops at every element.

    They do not depend on the loop indices, but LLVM cannot always move them out: the output
    may alias an operand. And its loop vectorizer took seconds over a long invariant chain of
    selects left in a loop (an unrolled CRC of 2 bytes, 16 bits: 10 s; 4 bytes never ended).
    """
    if node.op is not Op.FUSION:
        return
    inner = _body_emitter(e, node)
    for s in node.attrs["body"].body:
        if not s.shape:
            inner.value(s, ())
    e.hoisted[node] = {key: v for key, v in inner.cache.items() if not key[1]}


EMIT: dict[Op, Callable[[Emitter, Node, Index], ir.Value]] = {
    **{op: _elementwise for op in ELEMENTWISE},
    Op.CONSTANT: _constant,
    Op.IOTA: _iota,
    Op.BROADCAST_IN_DIM: _broadcast,
    Op.RESHAPE: _reshape,
    Op.TRANSPOSE: _transpose,
    Op.SLICE: _slice,
    Op.REVERSE: _reverse,
    Op.PAD: _pad,
    Op.CONCATENATE: _concatenate,
    Op.GATHER: _gather,
    Op.REDUCE: _reduce,
    Op.DOT_GENERAL: _dot,
    Op.CONV2D: _conv,
    Op.MAX_POOL: _max_pool,
    Op.FUSION: _fusion,
}

# The quantization ops' rows live in codegen/quant.py, which builds on this module's helpers.
from codegen.quant import QUANT_EMIT  # noqa: E402

EMIT.update(QUANT_EMIT)
