"""sort and argsort: each line along the axis sorted in place in the output, by heapsort.

A kernel has no scratch memory, so the output is the work space. The rows (every position but
the sorted axis) are the parallel iteration space; a row is the axis' `n` elements, `stride`
apart (the product of the later axes' sizes, 1 for the last axis).

- argsort writes 0..n-1 and heapsorts those positions with the comparator
  (x[i], i) < (x[j], j): a strict total order, so the in-place (unstable) heapsort gives the
  one stable order, exactly the reference's.
- sort copies the row and heapsorts the values themselves. Values with equal keys have equal
  bits except -0.0/0.0 and NaNs of different signs or payloads, so for floats a last pass over
  the operand writes its zeros and its NaNs, in their order, into the places the sort gave
  zeros and NaNs: the result is then the stable one, bit for bit.

Keys compare as the reference does: ascending with NaN last, or descending with NaN first
(JAX's order); f16/bf16 in f32; values move as their stored bits, never rounded. Heapsort is
Floyd's: the hole goes down to a leaf along the larger children (one comparison a level), then
the value moves up (usually not far), about half the comparisons of the textbook sift-down.
Every access is to a position in [0, n) of its row: nothing outside either buffer is touched
for any shape, and a size-0 result is a kernel with no rows.

Importing this module also gives the emitter (codegen/emit.py) rows for both ops, a slow
element-by-element form for the rare sort inside a fusion body.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from llvmlite import ir

from codegen.emit import EMIT, Emitter
from codegen.loops import for_range
from codegen.types import COMPUTE, I64, PTR, STORAGE, Index, element_ptr, widen
from ir.dtypes import DType
from ir.graph import Node
from ir.ops import SORTING, Op

Pointer = Callable[[int], ir.Value]
Elem = tuple[ir.Value, ir.Value]  # a heap element: what moves (bits or a position), its key


def applicable(node: Node) -> bool:
    return node.op in SORTING


def _precedes(
    b: ir.IRBuilder, dtype: DType, descending: bool, a: ir.Value, c: ir.Value
) -> ir.Value:
    """Key `a` comes strictly before key `c`: a < c with NaN last (a > c with NaN first)."""
    if dtype.is_float:
        if descending:  # a > c, or a is NaN and c is not
            return b.and_(b.fcmp_unordered(">", a, c), b.fcmp_ordered("ord", c, c))
        return b.and_(b.fcmp_unordered("<", a, c), b.fcmp_ordered("ord", a, a))
    cmp = b.icmp_signed if dtype.is_signed else b.icmp_unsigned  # bool: its byte, unsigned
    return cmp(">" if descending else "<", a, c)


class _Row:
    """Element access and comparison for one kernel: a row's elements `stride` apart."""

    def __init__(self, node: Node) -> None:
        x = node.srcs[0]
        self.dtype = x.dtype
        self.axis = node.attrs["axis"]
        self.n = x.shape[self.axis]
        self.stride = math.prod(x.shape[self.axis + 1 :])
        self.descending = bool(node.attrs["descending"])
        self.out_dtype = node.dtype

    def at(self, b: ir.IRBuilder, row: ir.Value, k: ir.Value, dtype: DType) -> ir.Value:
        offset = k if self.stride == 1 else b.mul(k, I64(self.stride), flags=["nsw", "nuw"])
        return element_ptr(b, row, offset, dtype)

    def raw(self, b: ir.IRBuilder, row: ir.Value, k: ir.Value) -> ir.Value:
        return b.load(self.at(b, row, k, self.dtype), typ=STORAGE[self.dtype])

    def key(self, b: ir.IRBuilder, raw: ir.Value) -> ir.Value:
        return widen(b, raw, self.dtype) if self.dtype.is_float else raw

    def precedes(self, b: ir.IRBuilder, a: ir.Value, c: ir.Value) -> ir.Value:
        return _precedes(b, self.dtype, self.descending, a, c)


class _Values:
    """Heap elements for sort: the values themselves (stored bits) in the output row."""

    def __init__(self, r: _Row, out_row: ir.Value, x_row: ir.Value) -> None:
        self.r, self.out_row = r, out_row

    def load(self, b: ir.IRBuilder, k: ir.Value) -> Elem:
        raw = self.r.raw(b, self.out_row, k)
        return raw, self.r.key(b, raw)

    def store(self, b: ir.IRBuilder, k: ir.Value, raw: ir.Value) -> None:
        b.store(raw, self.r.at(b, self.out_row, k, self.r.dtype))

    def before(self, b: ir.IRBuilder, e: Elem, f: Elem) -> ir.Value:
        return self.r.precedes(b, e[1], f[1])


class _Positions:
    """Heap elements for argsort: positions in the output row, keyed by the operand there."""

    def __init__(self, r: _Row, out_row: ir.Value, x_row: ir.Value) -> None:
        self.r, self.out_row, self.x_row = r, out_row, x_row

    def load(self, b: ir.IRBuilder, k: ir.Value) -> Elem:
        i = b.load(self.r.at(b, self.out_row, k, DType.I64), typ=I64)
        return i, self.r.key(b, self.r.raw(b, self.x_row, i))

    def store(self, b: ir.IRBuilder, k: ir.Value, position: ir.Value) -> None:
        b.store(position, self.r.at(b, self.out_row, k, DType.I64))

    def before(self, b: ir.IRBuilder, e: Elem, f: Elem) -> ir.Value:
        """(key e, position e) < (key f, position f): equal keys keep their order."""
        r = self.r
        tie = b.and_(b.not_(r.precedes(b, f[1], e[1])), b.icmp_signed("<", e[0], f[0]))
        return b.or_(r.precedes(b, e[1], f[1]), tie)


Heap = type[_Values] | type[_Positions]


def _sift_function(module: ir.Module, name: str, r: _Row, heap: Heap) -> ir.Function:
    """void sift(ptr out_row, ptr x_row, i64 root, i64 end): restore the max-heap property of
    the row's [root, end) after its element at `root` changed (Floyd's: hole to a leaf, then
    the element up)."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, I64]), name)
    fn.linkage = "internal"
    out_row, x_row, root, end = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    h = heap(r, out_row, x_row)
    hole = b.alloca(I64, name="hole")
    value = h.load(b, root)
    b.store(root, hole)
    down, down_body, up, up_body, up_move, done = (
        fn.append_basic_block(n) for n in ("down", "down.body", "up", "up.body", "up.move", "done")
    )
    b.branch(down)

    b.position_at_end(down)  # the hole moves to the larger child while it has one
    i = b.load(hole, typ=I64)
    child = b.add(b.shl(i, I64(1)), I64(1), flags=["nsw", "nuw"])
    b.cbranch(b.icmp_signed("<", child, end), down_body, up)
    b.position_at_end(down_body)
    right = b.add(child, I64(1), flags=["nsw", "nuw"])
    right = b.select(b.icmp_signed("<", right, end), right, child)  # in bounds: else itself
    left_elem, right_elem = h.load(b, child), h.load(b, right)
    take_right = h.before(b, left_elem, right_elem)
    larger = b.select(take_right, right, child)
    h.store(b, i, b.select(take_right, right_elem[0], left_elem[0]))
    b.store(larger, hole)
    b.branch(down)

    b.position_at_end(up)  # then the element moves up from the leaf while its parent is smaller
    i = b.load(hole, typ=I64)
    b.cbranch(b.icmp_signed(">", i, root), up_body, done)
    b.position_at_end(up_body)
    parent = b.lshr(b.sub(i, I64(1)), I64(1))
    parent_elem = h.load(b, parent)
    b.cbranch(h.before(b, parent_elem, value), up_move, done)
    b.position_at_end(up_move)
    h.store(b, i, parent_elem[0])
    b.store(parent, hole)
    b.branch(up)

    b.position_at_end(done)
    h.store(b, b.load(hole, typ=I64), value[0])
    b.ret_void()
    return fn


def build_body(
    b: ir.IRBuilder, node: Node, pointer: Pointer, start: ir.Value, stop: ir.Value
) -> int:
    """Rows [start, stop) of the output, each sorted on its own; returns the number of rows."""
    if node.type.size == 0:
        return 0
    r = _Row(node)
    n, stride = r.n, r.stride
    rows = node.type.size // n
    heap: Heap = _Values if node.op is Op.SORT else _Positions
    sift = _sift_function(b.module, f"{b.function.name}.sift", r, heap)
    out_ptr, x_ptr = pointer(0), pointer(1)
    with for_range(b, stop, start, name="row") as row:
        if stride == 1:
            base = b.mul(row, I64(n), flags=["nsw", "nuw"])
        else:  # row = (before, after): the axis' elements start at before * n * stride + after
            before, after = b.udiv(row, I64(stride)), b.urem(row, I64(stride))
            base = b.add(b.mul(before, I64(n * stride), flags=["nsw", "nuw"]), after)
        out_row = element_ptr(b, out_ptr, base, r.out_dtype)
        x_row = element_ptr(b, x_ptr, base, r.dtype)
        h = heap(r, out_row, x_row)
        with for_range(b, n, name="init") as k:
            if node.op is Op.SORT:
                b.store(r.raw(b, x_row, k), r.at(b, out_row, k, r.dtype))
            else:
                b.store(k, r.at(b, out_row, k, DType.I64))
        with for_range(b, n // 2, name="heapify") as t:
            b.call(sift, [out_row, x_row, b.sub(I64(n // 2 - 1), t), I64(n)])
        with for_range(b, n - 1, name="pop") as t:
            last = b.sub(
                I64(n - 1), t
            )  # the largest goes to the end, the end's element to the root
            top, bottom = h.load(b, I64(0)), h.load(b, last)
            h.store(b, I64(0), bottom[0])
            h.store(b, last, top[0])
            b.call(sift, [out_row, x_row, I64(0), last])
        if node.op is Op.SORT and r.dtype.is_float:
            _stable_zeros_and_nans(b, r, out_row, x_row)
    return rows


def _stable_zeros_and_nans(b: ir.IRBuilder, r: _Row, out_row: ir.Value, x_row: ir.Value) -> None:
    """Put the row's zeros (either sign) and NaNs (any payload) where the sort put zeros and
    NaNs, in the operand's order. Ascending: the zeros start after the negative values, the
    NaNs after everything else; descending: the NaNs first, the zeros after the positives."""
    fn = b.function
    with b.goto_entry_block():
        zero_at, nan_at = b.alloca(I64, name="zero.at"), b.alloca(I64, name="nan.at")
    zero = ir.Constant(COMPUTE[r.dtype], 0.0)
    b.store(I64(0), zero_at)
    b.store(I64(0), nan_at)
    with for_range(b, r.n, name="count") as k:  # zero_at: values before 0; nan_at: NaNs
        v = r.key(b, r.raw(b, x_row, k))
        ahead = b.fcmp_ordered(">" if r.descending else "<", v, zero)
        b.store(b.add(b.load(zero_at, typ=I64), b.zext(ahead, I64)), zero_at)
        nan = b.fcmp_unordered("uno", v, v)
        b.store(b.add(b.load(nan_at, typ=I64), b.zext(nan, I64)), nan_at)
    nans = b.load(nan_at, typ=I64)
    if r.descending:
        b.store(b.add(b.load(zero_at, typ=I64), nans), zero_at)
        b.store(I64(0), nan_at)
    else:
        b.store(b.sub(I64(r.n), nans), nan_at)
    with for_range(b, r.n, name="place") as k:
        raw = r.raw(b, x_row, k)
        v = r.key(b, raw)
        is_zero = b.fcmp_ordered("==", v, zero)
        is_nan = b.fcmp_unordered("uno", v, v)
        where = b.select(is_zero, zero_at, nan_at)
        place, after = fn.append_basic_block("place.store"), fn.append_basic_block("place.next")
        b.cbranch(b.or_(is_zero, is_nan), place, after)
        b.position_at_end(place)
        at = b.load(where, typ=I64)
        b.store(raw, r.at(b, out_row, at, r.dtype))
        b.store(b.add(at, I64(1), flags=["nsw", "nuw"]), where)
        b.branch(after)
        b.position_at_end(after)


# --- inside a fusion body ---------------------------------------------------------------------


def _emit(e: Emitter, node: Node, index: Index) -> ir.Value:
    """The element at `index` of a sort or argsort that a fusion body holds (`fuse` never puts
    one there, but a graph file may): position j of the line whose rank under the comparator
    (x[i], i) < (x[j], j) is index[axis], found by counting, O(n^2) per element. The kernel
    above is the fast path; this one only keeps such graphs compilable."""
    b, (x,), axis = e.b, node.srcs, node.attrs["axis"]
    dtype, n = x.dtype, x.shape[axis]
    descending = bool(node.attrs["descending"])
    target = index[axis]
    ty = COMPUTE[dtype] if node.op is Op.SORT else I64
    found = e.slot(ty, ir.Constant(ty, 0))
    rank = e.slot(I64, I64(0))

    def at(k: ir.Value) -> Index:
        return (*index[:axis], k, *index[axis + 1 :])

    with for_range(b, n, name="cand") as j, e.scope():
        xj = e.value(x, at(j))
        b.store(I64(0), rank)
        with for_range(b, n, name="rank") as i, e.scope():
            xi = e.value(x, at(i))
            tie = b.and_(b.not_(_precedes(b, dtype, descending, xj, xi)), b.icmp_signed("<", i, j))
            ahead = b.or_(_precedes(b, dtype, descending, xi, xj), tie)
            b.store(b.add(b.load(rank, typ=I64), b.zext(ahead, I64)), rank)
        hit = b.icmp_signed("==", b.load(rank, typ=I64), target)
        chosen = xj if node.op is Op.SORT else j
        b.store(b.select(hit, chosen, b.load(found, typ=ty)), found)
    return b.load(found, typ=ty)


EMIT[Op.SORT] = _emit
EMIT[Op.ARGSORT] = _emit
