"""Matrix-vector products: float dot_generals where M or N is 1, alone or with an epilogue.

The GEMM would run them on register tiles that are one row (or one vector) full, and pack the
matrix first; a matrix-vector product is bound by reading the matrix once, so it gets loops that
stream it in place instead:

- `ROWS` shape, N = 1 (C[b, m] = A[b, m, :] . x): `ROWS_AT_ONCE` rows of A at a time, each with
  a vector accumulator along K, sharing every vector of x they load; the lanes are summed at
  the end. A's K must be contiguous, as must x's.
- `COLUMNS` shape, M = 1 (C[b, n] = x . B[b, :, n]): a block of `COLUMN_BYTES` of C summed on
  the stack (in L1), each step adding x[k] times a contiguous stretch of B's row k, so B is
  read in order. B's N must be contiguous; x may have any stride.

A kernel "row" (the executor's unit of work) is one block of rows or columns of one batch. Sums
are f32/f64 in an order of the kernel's choosing, as the GEMM's are; an f32 sum that is not
finite is recomputed in f64 (exact range: codegen/emit.py's `exact_sum`). Every load stays
inside its operand: the vector loops cover whole vectors only, and a scalar loop does the rest.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from codegen.cpu_caps import CpuCaps
from codegen.emit import exact_sum
from codegen.gemm import dot_index, dot_operands, store_epilogue
from codegen.gemm_micro import Axis, at, fmuladd, smin
from codegen.gemm_plan import Geometry, Plan, plan
from codegen.loops import for_range
from codegen.types import I64, PTR, STORAGE, buffer_pointers
from ir.dtypes import DType
from ir.graph import Node

KERNEL_TYPE = ir.FunctionType(ir.VoidType(), [PTR, I64, I64])  # codegen/kernel.py's ABI
ROWS_AT_ONCE = 4  # rows of A per pass over x: 4 independent accumulator chains
COLUMN_BYTES = 16384  # C's columns per kernel row, summed in L1 while B's rows stream by
MACS_PER_UNIT = 256  # the executor splits a kernel from 32768 units: 8M multiply-adds (~32 MB)


def shape(node: Node, caps: CpuCaps) -> tuple[Plan, Geometry, str] | None:
    """(plan, geometry, "rows" | "columns") when this kernel takes `node`, else None."""
    p = plan(node)
    if p is None or p.node.type.size == 0:
        return None
    g = Geometry.of(p.dot)
    _, m, n = g.sizes
    if g.k == 0:
        return None  # nothing to multiply: the generic loop writes the (epilogue of) zeros
    if n == 1 and _contiguous(g.a[2]) and _contiguous(g.b[1]):
        return p, g, "rows"
    if m == 1 and _contiguous(g.b[2]) and n > 1:
        return p, g, "columns"
    return None


def _contiguous(axis: Axis) -> bool:
    """Consecutive indices are neighbours in memory (or there is only index 0)."""
    return axis.unit or not axis.parts


def applicable(node: Node, caps: CpuCaps) -> bool:
    return shape(node, caps) is not None


def build(module: ir.Module, node: Node, name: str, caps: CpuCaps) -> tuple[int, int]:
    """Emit the kernel `name`; returns (rows, work per row) for the executor."""
    found = shape(node, caps)
    assert found is not None, node
    p, g, kind = found
    fn = ir.Function(module, KERNEL_TYPE, name)
    fn.args[0].name, fn.args[1].name, fn.args[2].name = "buffers", "start", "stop"
    gen = _Gen(fn, p, g, caps)
    batch, m, n = g.sizes
    if kind == "rows":
        blocks = -(-m // ROWS_AT_ONCE)
        gen.emit(blocks, gen.rows_block)
        return batch * blocks, max(1, ROWS_AT_ONCE * g.k // MACS_PER_UNIT)
    blocks = -(-n // gen.column_block)
    gen.emit(blocks, gen.columns_block)
    return batch * blocks, max(1, gen.column_block * g.k // MACS_PER_UNIT)


class _Gen:
    def __init__(self, fn: ir.Function, p: Plan, g: Geometry, caps: CpuCaps) -> None:
        self.b = b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.p, self.g = p, g
        self.ty = STORAGE[p.dot.dtype]
        self.width = caps.vector_bits // (8 * p.dot.dtype.np.itemsize)
        self.vec = ir.VectorType(self.ty, self.width)
        buffers, self.start, self.stop = fn.args
        pointers = buffer_pointers(b, buffers, 1 + len(p.node.srcs))
        self.out, self.operands = pointers[0], pointers[1:]
        self.lhs, self.rhs = self.operands[p.lhs], self.operands[p.rhs]
        self.column_block = COLUMN_BYTES // p.dot.dtype.np.itemsize
        self.sums = b.alloca(self.ty, size=I64(self.column_block))
        self.sums.align = 64
        self.sums.type = PTR  # an opaque pointer (the IR is the same): vectors may go through it
        self.fma = fmuladd(b.module, self.vec)
        self.scalar_fma = fmuladd(b.module, self.ty)

    def emit(self, blocks: int, block: Callable[[ir.Value, ir.Value], None]) -> None:
        """The executor's rows [start, stop), each one (batch, block) pair."""
        b = self.b
        with for_range(b, self.stop, self.start, name="row") as row:
            block(b.udiv(row, I64(blocks)), b.urem(row, I64(blocks)))
        b.ret_void()

    # --- N = 1: rows of A against x ------------------------------------------------------

    def rows_block(self, bi: ir.Value, block: ir.Value) -> None:
        b, g = self.b, self.g
        _, m, _ = g.sizes
        m0 = b.mul(block, I64(ROWS_AT_ONCE))
        count = smin(b, I64(ROWS_AT_ONCE), b.sub(I64(m), m0))
        with b.if_else(b.icmp_signed("==", count, I64(ROWS_AT_ONCE))) as (whole, edge):
            with whole:
                self._rows(bi, [b.add(m0, I64(r)) for r in range(ROWS_AT_ONCE)])
            with edge, for_range(b, count, name="er") as r:
                self._rows(bi, [b.add(m0, r)])

    def _rows(self, bi: ir.Value, rows: list[ir.Value]) -> None:
        """C[bi, row] for each of `rows`: one accumulator vector per row, then lane sums."""
        b, g, ty, w = self.b, self.g, self.ty, self.width
        (ab, am, _), (bb, _, _) = g.a, g.b
        base = at(b, self.lhs, ab.offset(b, bi), ty)
        a_rows = [at(b, base, am.offset(b, r), ty) for r in rows]
        x = at(b, self.rhs, bb.offset(b, bi), ty)
        slots = self._slots(len(rows), self.vec)
        with for_range(b, I64(g.k // w), name="kv") as kv:
            k = b.mul(kv, I64(w))
            xv = self._load_vector(x, k)
            for slot, row in zip(slots, a_rows, strict=True):
                acc = b.load(slot, typ=self.vec)
                b.store(b.call(self.fma, [self._load_vector(row, k), xv, acc]), slot)
        sums = self._slots(len(rows), ty)
        for slot, total in zip(sums, slots, strict=True):
            b.store(_lane_sum(b, b.load(total, typ=self.vec)), slot)
        with for_range(b, I64(g.k), I64(g.k // w * w), name="kt") as k:
            xk = b.load(at(b, x, k, ty), typ=ty)
            for slot, row in zip(sums, a_rows, strict=True):
                acc = b.load(slot, typ=ty)
                b.store(b.call(self.scalar_fma, [b.load(at(b, row, k, ty), typ=ty), xk, acc]), slot)
        for slot, row in zip(sums, rows, strict=True):
            self._store(b.load(slot, typ=ty), bi, row, I64(0))

    # --- M = 1: x against columns of B ----------------------------------------------------

    def columns_block(self, bi: ir.Value, block: ir.Value) -> None:
        """C[bi, n0 : n0 + count]: the sums live in an L1-sized stack block while B's rows
        stream through in order, each a contiguous stretch (walking a column block down all of
        K instead jumps a row's length per step, which measured 4x slower at 4096)."""
        b, g, ty = self.b, self.g, self.ty
        (ab, _, _), (bb, _, _) = g.a, g.b
        _, _, n = g.sizes
        n0 = b.mul(block, I64(self.column_block))
        count = smin(b, I64(self.column_block), b.sub(I64(n), n0))
        acc = self.sums
        with for_range(b, count, name="z") as c:
            b.store(ir.Constant(ty, 0), at(b, acc, c, ty))
        x = at(b, self.lhs, ab.offset(b, bi), ty)
        columns = at(b, at(b, self.rhs, bb.offset(b, bi), ty), n0, ty)
        with for_range(b, I64(g.k // ROWS_AT_ONCE), name="k4") as k4:
            k0 = b.mul(k4, I64(ROWS_AT_ONCE))
            self._add_rows(x, columns, [b.add(k0, I64(j)) for j in range(ROWS_AT_ONCE)], count)
        with for_range(b, I64(g.k), I64(g.k // ROWS_AT_ONCE * ROWS_AT_ONCE), name="kt") as k:
            self._add_rows(x, columns, [k], count)
        with for_range(b, count, name="s") as c:
            self._store(b.load(at(b, acc, c, ty), typ=ty), bi, I64(0), b.add(n0, c))

    def _add_rows(self, x: ir.Value, columns: ir.Value, ks: list[ir.Value], count: ir.Value
                  ) -> None:  # fmt: skip
        """sums[:count] += sum over k in `ks` of x[k] B[k, :count]: several rows of B per pass
        over the sums, so each load and store of a sum serves that many products."""
        b, g, ty, w = self.b, self.g, self.ty, self.width
        (_, _, ak), (_, bk, _) = g.a, g.b
        scalars = [b.load(at(b, x, ak.offset(b, k), ty), typ=ty) for k in ks]
        lane0 = ir.Constant(ir.VectorType(ir.IntType(32), w), [0] * w)
        splats = [
            b.shuffle_vector(
                b.insert_element(ir.Constant(self.vec, ir.Undefined), xk, ir.IntType(32)(0)),
                ir.Constant(self.vec, ir.Undefined),
                lane0,
            )
            for xk in scalars
        ]
        lines = [at(b, columns, bk.offset(b, k), ty) for k in ks]
        vectors = b.sdiv(count, I64(w))
        with for_range(b, vectors, name="v") as v:
            first = b.mul(v, I64(w))
            total = b.load(at(b, self.sums, first, ty), typ=self.vec)
            for splat, line in zip(splats, lines, strict=True):
                total = b.call(self.fma, [splat, self._load_vector(line, first), total])
            b.store(total, at(b, self.sums, first, ty))
        with for_range(b, count, b.mul(vectors, I64(w)), name="c") as c:
            total = b.load(at(b, self.sums, c, ty), typ=ty)
            for xk, line in zip(scalars, lines, strict=True):
                value = b.load(at(b, line, c, ty), typ=ty)
                total = b.call(self.scalar_fma, [xk, value, total])
            b.store(total, at(b, self.sums, c, ty))

    # --- shared ----------------------------------------------------------------------------

    def _slots(self, count: int, ty: ir.Type) -> list[ir.Value]:
        """Zeroed accumulators (stack slots that LLVM keeps in registers), allocated in the
        entry block so loops do not grow the stack."""
        b = self.b
        here = b.block
        b.position_at_start(b.function.entry_basic_block)
        slots = [b.alloca(ty) for _ in range(count)]
        b.position_at_end(here)
        zero = ir.Constant(self.ty, 0)
        if ty == self.vec:
            zero = ir.Constant(ty, [zero] * self.width)
        for slot in slots:
            b.store(zero, slot)
        return slots

    def _load_vector(self, ptr: ir.Value, index: ir.Value) -> ir.Value:
        load = self.b.load(at(self.b, ptr, index, self.ty), typ=self.vec)
        load.align = self.p.dot.dtype.np.itemsize  # operands are element-aligned only
        return load

    def _store(self, value: ir.Value, bi: ir.Value, row: ir.Value, col: ir.Value) -> None:
        b, g, p = self.b, self.g, self.p
        if p.dot.dtype == DType.F32:  # exact range: a sum that is not finite, again in f64
            index = dot_index(b, g, (bi, row, col))
            value = exact_sum(b, value, p.dot, dot_operands(p, self.operands), index)
        if p.root is not None:
            store_epilogue(b, p, g, self.operands, self.out, value, (bi, row, col))
            return
        _, m, n = g.sizes
        offset = b.add(b.mul(b.add(b.mul(bi, I64(m)), row), I64(n)), col)
        b.store(value, at(b, self.out, offset, self.ty))


def _lane_sum(b: ir.IRBuilder, vec: ir.Value) -> ir.Value:
    """The sum of a vector's lanes, halving it each step."""
    width = vec.type.count
    i32 = ir.IntType(32)
    while width > 1:
        width //= 2
        low = b.shuffle_vector(vec, vec, ir.Constant(ir.VectorType(i32, width), list(range(width))))
        high = b.shuffle_vector(
            vec, vec, ir.Constant(ir.VectorType(i32, width), list(range(width, 2 * width)))
        )
        vec = b.fadd(low, high)
    return b.extract_element(vec, i32(0))
