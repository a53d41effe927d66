"""A blocked, packed GEMM for dot_general and for fusions of a dot_general with its epilogue.

Any dimension numbers reduce to C[b, m, n] = sum_k A[b, m, k] * B[b, k, n]: batch, free and
contracting dimensions are grouped into logical axes (gemm_micro.Axis) and packing reads the
operands through them, so transposed operands cost nothing in the inner loop. The loop nest is
the classic one (Goto and van de Geijn):

    for each batch, for jc in N by NC, for pc in K by KC:   pack B[pc, jc] into KC x NR panels
        for ic in M by MC:                                   (pack A only if its axes are split)
            for jr in NC by NR, for ir in MC by MR:          MR x NR microkernel in registers

The kernel keeps codegen/kernel.py's ABI. A "row" is one MR-row tile of one (batch, column
block), so threads that take different row ranges write disjoint output tiles and, with two
column blocks, pack disjoint halves of B; each call packs into its own stack scratch. When K
spans several KC blocks the partial sums live in the output itself, and the epilogue (bias,
activation, ...) runs on the last block, on the tile just computed, through the ordinary
Emitter rules, so no op's semantics is written twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from llvmlite import ir

from codegen.cpu_caps import CpuCaps
from codegen.emit import Buffer, Emitter, exact_sum, operand_buffers, unravel
from codegen.gemm_micro import (
    PanelSource,
    Tile,
    Tiling,
    at,
    ceil_div,
    microkernel,
    pack,
    smin,
    tile_grid,
)
from codegen.gemm_plan import Geometry, Plan, applicable, plan
from codegen.loops import for_range
from codegen.types import (
    F32,
    I64,
    PTR,
    STORAGE,
    Index,
    buffer_pointers,
    element_ptr,
    store_value,
)
from ir.dtypes import DType
from ir.graph import Node

# the interface codegen/kernel.py and codegen/gemm_lib.py use
__all__ = [
    "Plan", "any_non_finite", "applicable", "build", "dot_index", "dot_operands", "exact_tile",
    "plan", "schedule", "store_epilogue", "tiling", "variants",
]  # fmt: skip

KERNEL_TYPE = ir.FunctionType(ir.VoidType(), [PTR, I64, I64])  # codegen/kernel.py's ABI

# The register tile is mr rows x `vectors` vectors of C. With 32 vector registers (AVX-512),
# 6 x 4 vectors: 24 accumulators fed by 4 loads of B and 6 broadcasts of A per step; at
# 512 bits that is 6 x 64 floats, measured 5-10% faster than 8 x 32, 12 x 32 and 14 x 32 at
# 1024-2048. With 16 registers (AVX2, SSE), 6 x 2 vectors: 12 accumulators, 2 loads of B and
# a broadcast, 15 registers (the classic Haswell tile, 6 x 16 floats). KC x NR of B streams
# from L1/L2 across an MC x KC block of A (96 KB, in L2); KC x NC of B stays in L2 or L3.
# These are the largest blocks; base_tiling shrinks them to fit a CpuCaps' caches.
CACHE_BLOCKS = {DType.F32: (256, 96, 1024), DType.F64: (256, 96, 512)}  # kc, mc, nc
# Narrow outputs (a classifier's 10 columns) would waste most of a wide tile on zero padding:
# give them fewer vectors per row and more rows (about as many accumulators).
NARROW_ROWS = {32: {1: 14, 2: 12}, 16: {1: 12}}  # registers -> {vectors per row: mr}
DIRECT_A = True  # read A in place where its layout allows (see _Gen.__init__)
PARALLEL_MACS = 1024  # work_per_row is in units of this many multiply-adds (see build)
SCRATCH_BYTES = 3 << 19  # per packed operand, on the stack (threads get 8 MB stacks on Linux)


def base_tiling(dtype: DType, caps: CpuCaps) -> Tiling:
    """The full-width register tile and default cache blocks of `dtype` on `caps`."""
    width = caps.vector_bits // (8 * dtype.np.itemsize)
    vectors = 4 if caps.vector_registers >= 32 else 2
    kc, mc, nc = CACHE_BLOCKS[dtype]
    # Smaller caches than the blocks were measured on shrink them: A's MC x KC block within
    # half of L2, B's KC x NC block within half of L3.
    panel = kc * dtype.np.itemsize
    mc = max(6, min(mc, caps.caches.l2 // 2 // panel // 6 * 6))
    nr = vectors * width
    nc = max(nr, min(nc, caps.caches.l3 // 2 // panel // nr * nr))
    return Tiling(width=width, mr=6, nr=nr, kc=kc, mc=mc, nc=nc)


def variants(dtype: DType, caps: CpuCaps) -> dict[int, Tiling]:
    """Every register tile of `dtype` on `caps`, by vectors per row."""
    t = base_tiling(dtype, caps)
    out = {t.vectors: t}
    for vectors, mr in NARROW_ROWS[caps.vector_registers].items():
        out[vectors] = replace(t, mr=mr, nr=vectors * t.width, mc=t.mc // mr * mr)
    return out


def tiling(p: Plan, g: Geometry, caps: CpuCaps) -> Tiling:
    tiles = variants(p.dot.dtype, caps)
    t = base_tiling(p.dot.dtype, caps)
    vectors = -(-g.sizes[2] // t.width)
    if vectors in tiles:
        t = tiles[vectors]
    if p.node.dtype != p.dot.dtype:
        # The output cannot hold f32 partial sums, so the whole K is one block.
        t = replace(t, kc=max(g.k, 1))
    else:
        # Equal K blocks: 784 = 4 x 196, not 3 x 256 + 16, whose last pass over C would do
        # little but load and store it.
        blocks = max(1, -(-g.k // t.kc))
        t = replace(t, kc=max(1, -(-g.k // blocks)))
    size = p.dot.dtype.np.itemsize
    # Keep each scratch block within budget however long K is.
    fit = SCRATCH_BYTES // (size * max(min(t.kc, g.k), 1))
    # At least two column blocks where there are two panels' worth: with threads taking
    # different column blocks, each packs only its part of B, and A is read in place.
    half = -(-g.sizes[2] // 2 // t.nr) * t.nr
    nc = max(t.nr, min(t.nc, fit // t.nr * t.nr, half))
    return replace(t, nc=nc, mc=max(t.mr, min(t.mc, fit // t.mr * t.mr)))


def build(module: ir.Module, node: Node, name: str, caps: CpuCaps) -> tuple[int, int]:
    """Emit the kernel `name` for `node`; returns (rows, work per row) for the executor."""
    p = plan(node)
    if p is None:
        raise ValueError(f"gemm.build: not a GEMM: {node!r}")
    g = Geometry.of(p.dot)
    t = tiling(p, g, caps)
    fn = ir.Function(module, KERNEL_TYPE, name)
    fn.args[0].name, fn.args[1].name, fn.args[2].name = "buffers", "start", "stop"
    _Gen(fn, p, g, t).emit()
    return schedule(g, t)


def schedule(g: Geometry, t: Tiling) -> tuple[int, int]:
    """(rows, work per row) of a GEMM kernel: a row is one M tile of one (batch, column block)."""
    batch, m, n = g.sizes
    tiles, blocks = max(1, -(-m // t.mr)), max(1, -(-n // t.nc))
    # The executor parallelizes when rows * work_per_row reaches 32768: in multiply-adds that
    # is about 32M (~150 us on one core). A 256^3 matmul (16M) measured slower on two threads
    # than on one: handing work to the pool costs tens of microseconds.
    work = t.mr * -(-n // blocks) * max(g.k, 1) // PARALLEL_MACS
    return batch * blocks * tiles, max(1, work)


class _Gen:
    def __init__(self, fn: ir.Function, p: Plan, g: Geometry, t: Tiling) -> None:
        self.b = b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.p, self.g, self.t = p, g, t
        self.ty = STORAGE[p.dot.dtype]
        self.exact = p.dot.dtype == DType.F32  # f32 sums get exact range (codegen/emit.py)
        self.vec = ir.VectorType(self.ty, t.width)
        self.nk = max(1, -(-g.k // t.kc))
        self.nj = max(1, -(-g.sizes[2] // t.nc))
        buffers, self.start, self.stop = fn.args
        pointers = buffer_pointers(b, buffers, 1 + len(p.node.srcs))
        self.out, self.operands = pointers[0], pointers[1:]
        _, m, n = g.sizes
        kc = max(1, min(t.kc, g.k))
        # A is read in place when M and K are each one stride (a plain or transposed matrix):
        # packing it bought nothing measurable there, and for narrow outputs (few column
        # panels to share the cost) packing A was most of the time. B is always packed.
        _, am, ak = g.a
        self.direct_a = DIRECT_A and len(am.parts) <= 1 and len(ak.parts) <= 1
        a_size = 0 if self.direct_a else kc * min(t.mc, -(-m // t.mr) * t.mr)
        self.a_scratch = self._scratch(a_size)
        self.b_scratch = self._scratch(kc * min(t.nc, -(-n // t.nr) * t.nr))
        # typed as vectors: llvmlite checks stores against an alloca's element type
        self.tile = self._scratch(t.mr * t.vectors, self.vec)

    def _scratch(self, elements: int, ty: ir.Type | None = None) -> ir.Value:
        ptr = self.b.alloca(ty or self.ty, size=I64(max(elements, 1)))
        ptr.align = 64
        return ptr

    def emit(self) -> None:
        """Rows are (batch, column block, M tile), M tiles innermost: a thread's range is a few
        runs of consecutive M tiles, each sharing one packed block of B."""
        b, t = self.b, self.t
        _, m, _ = self.g.sizes
        count = max(1, -(-m // t.mr))
        tiles = I64(count)
        first = b.sdiv(self.start, tiles)
        with for_range(b, ceil_div(b, self.stop, count), first, name="group") as group:
            base = b.mul(group, tiles)
            lo = b.sub(self.start, base)
            lo = b.select(b.icmp_signed("<", lo, I64(0)), I64(0), lo)
            hi = smin(b, b.sub(self.stop, base), tiles)
            m_hi = smin(b, b.mul(hi, I64(t.mr)), I64(m))
            bi, jc = b.udiv(group, I64(self.nj)), b.urem(group, I64(self.nj))
            self._group(bi, jc, b.mul(lo, I64(t.mr)), m_hi)
        b.ret_void()

    def _group(self, bi: ir.Value, jc: ir.Value, m_lo: ir.Value, m_hi: ir.Value) -> None:
        b, t, g = self.b, self.t, self.g
        n = g.sizes[2]
        ab, am, ak = g.a
        bb, bk, bn = g.b
        lhs = PanelSource(at(b, self.operands[self.p.lhs], ab.offset(b, bi), self.ty), am, ak)
        rhs = PanelSource(at(b, self.operands[self.p.rhs], bb.offset(b, bi), self.ty), bn, bk)
        j0 = b.mul(jc, I64(t.nc))
        nc = smin(b, I64(t.nc), b.sub(I64(n), j0))
        with for_range(b, self.nk, name="pc") as pc:
            p0 = b.mul(pc, I64(t.kc))
            kc = smin(b, I64(t.kc), b.sub(I64(g.k), p0))
            pack(b, self.p.dot.dtype, rhs, self.b_scratch, t.nr, j0, nc, p0, kc)
            with for_range(b, ceil_div(b, b.sub(m_hi, m_lo), t.mc), name="ic") as ic:
                m0 = b.add(m_lo, b.mul(ic, I64(t.mc)))
                mc = smin(b, I64(t.mc), b.sub(m_hi, m0))
                if not self.direct_a:
                    pack(b, self.p.dot.dtype, lhs, self.a_scratch, t.mr, m0, mc, p0, kc)
                self._block(bi, m0, mc, j0, nc, (p0, kc, pc), lhs.ptr)

    def _block(self, bi: ir.Value, m0: ir.Value, mc: ir.Value, j0: ir.Value, nc: ir.Value,
               depth: tuple[ir.Value, ir.Value, ir.Value], lhs: ir.Value) -> None:  # fmt: skip
        b, t = self.b, self.t
        p0, kc, pc = depth
        with tile_grid(b, t, self.ty, self.b_scratch, bi, (m0, mc, j0, nc), kc) as grid:
            i, b_panel, tile = grid
            if self.direct_a:
                a_rows, a_step = self._lhs_rows(lhs, tile.m, p0)
            else:
                panel = at(b, self.a_scratch, b.mul(b.mul(i, kc), I64(t.mr)), self.ty)
                a_rows = [at(b, panel, I64(r), self.ty) for r in range(t.mr)]
                a_step = t.mr
            self._prefetch(tile)
            acc = microkernel(b, t, self.p.dot.dtype, a_rows, a_step, b_panel, kc)
            self._writeback(acc, tile, pc)

    def _lhs_rows(self, lhs: ir.Value, m: ir.Value, p0: ir.Value) -> tuple[list[ir.Value], int]:
        """Pointers to the tile's rows of A at depth p0, read in place; rows past the edge
        repeat the last row (their results are never stored), so no load leaves the operand."""
        b, t = self.b, self.t
        (_, rows, depth), last = self.g.a, I64(max(self.g.sizes[1] - 1, 0))
        row_stride = rows.parts[0][1] if rows.parts else 0
        step = depth.parts[0][1] if depth.parts else 0
        start = at(b, lhs, b.mul(p0, I64(step)), self.ty)
        out = []
        for r in range(t.mr):
            row = smin(b, b.add(m, I64(r)), last)
            out.append(at(b, start, b.mul(row, I64(row_stride)), self.ty))
        return out, step

    def _prefetch(self, tile: Tile) -> None:
        """Start fetching the output tile now, so it is in L1 when the K loop ends.

        A large output does not stay in cache between K blocks, and the microkernel's loop is
        too long for out-of-order execution to overlap the writeback's misses with it: without
        this, large matmuls lost 10-15% waiting for C. A prefetch never faults, so rows past
        the edge need no guard (and the address is computed without `inbounds`).
        """
        b, t = self.b, self.t
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [PTR, i32, i32, i32])
        fn = b.module.declare_intrinsic("llvm.prefetch", [PTR], fnty)
        line = 64 // self.p.dot.dtype.np.itemsize
        for r in range(t.mr):
            row = b.gep(self.out, [self._out_offset(tile, r)], source_etype=self.ty)
            for c in range(0, t.nr, line):
                ptr = b.gep(row, [I64(c)], source_etype=self.ty)
                b.call(fn, [ptr, i32(1), i32(3), i32(1)])  # write, keep in L1, data

    def _writeback(self, acc: list[ir.Value], tile: Tile, pc: ir.Value) -> None:
        """Store the tile; K blocks after the first add to what earlier ones stored."""
        b = self.b
        if self.nk == 1:
            self._store(acc, tile, first=True, last=True)
            return
        with b.if_else(b.icmp_signed("==", pc, I64(0))) as (then, other):
            with then:
                self._store(acc, tile, first=True, last=False)
            with other, b.if_else(b.icmp_signed("==", pc, I64(self.nk - 1))) as (last, middle):
                with last:
                    self._store(acc, tile, first=False, last=True)
                with middle:
                    self._store(acc, tile, first=False, last=False)

    def _store(self, acc: list[ir.Value], tile: Tile, first: bool, last: bool) -> None:
        b, t = self.b, self.t
        full = b.and_(
            b.icmp_signed("==", tile.rows, I64(t.mr)), b.icmp_signed("==", tile.cols, I64(t.nr))
        )
        epilogue = last and self.p.root is not None
        if epilogue:  # one copy of the epilogue loop for whole and edge tiles: half the code
            self._elementwise(acc, tile, tile.rows, tile.cols, first, epilogue)
            return
        exact = last and self.exact
        with b.if_else(full) as (whole, edge):
            with whole:
                stored = self._vector_store(acc, tile, first)
                if exact:
                    with b.if_then(any_non_finite(b, stored), likely=False):
                        self._exact_tile(tile, I64(t.mr), I64(t.nr))
            with edge:
                self._elementwise(acc, tile, tile.rows, tile.cols, first, epilogue)
                if exact:
                    self._exact_tile(tile, tile.rows, tile.cols)

    def _exact_tile(self, tile: Tile, rows: ir.Value, cols: ir.Value) -> None:
        b = self.b
        values = at(b, self.out, self._out_offset(tile, 0), self.ty)
        position = (tile.bi, tile.m, tile.n)
        exact_tile(
            b, self.p, self.g, self.operands, values, I64(self.g.sizes[2]), position, (rows, cols)
        )

    def _out_offset(self, tile: Tile, r: ir.Value | int) -> ir.Value:
        b = self.b
        _, m, n = self.g.sizes
        row = b.add(b.add(b.mul(tile.bi, I64(m)), tile.m), r if isinstance(r, ir.Value) else I64(r))
        return b.add(b.mul(row, I64(n)), tile.n)

    def _vector_store(self, acc: list[ir.Value], tile: Tile, first: bool) -> list[ir.Value]:
        """Store the whole tile; returns the stored vectors."""
        b, t = self.b, self.t
        stored = []
        for r in range(t.mr):
            row = at(b, self.out, self._out_offset(tile, r), self.ty)
            for v in range(t.vectors):
                ptr = at(b, row, I64(v * t.width), self.ty)
                value = acc[r * t.vectors + v]
                if not first:
                    old = b.load(ptr, typ=self.vec)
                    old.align = 4  # output rows are only element-aligned
                    value = b.fadd(old, value)
                st = b.store(value, ptr)
                st.align = 4
                stored.append(value)
        return stored

    def _elementwise(self, acc: list[ir.Value], tile: Tile, rows: ir.Value, cols: ir.Value,
                     first: bool, epilogue: bool) -> None:  # fmt: skip
        """Element by element through a stack copy of the tile: edges, and the epilogue (a loop
        over a tile in L1 that LLVM vectorizes for the usual bias + activation)."""
        b, t = self.b, self.t
        for r in range(t.mr):
            for v in range(t.vectors):
                slot = at(b, self.tile, I64(r * t.vectors + v), self.vec)
                b.store(acc[r * t.vectors + v], slot).align = 64
        with for_range(b, rows, name="er") as r:
            offset = self._out_offset(tile, r)
            with for_range(b, cols, name="ec") as c:
                x = b.load(at(b, self.tile, b.add(b.mul(r, I64(t.nr)), c), self.ty), typ=self.ty)
                ptr = at(b, self.out, b.add(offset, c), self.ty)
                if not first:
                    x = b.fadd(b.load(ptr, typ=self.ty), x)
                if epilogue:
                    if self.exact:  # the dot's sum with exact range, before the epilogue
                        position = (tile.bi, b.add(tile.m, r), b.add(tile.n, c))
                        index = dot_index(b, self.g, position)
                        x = exact_sum(b, x, self.p.dot, dot_operands(self.p, self.operands), index)
                    self._epilogue(x, tile, r, c)
                else:
                    b.store(x, ptr)

    def _epilogue(self, x: ir.Value, tile: Tile, r: ir.Value, c: ir.Value) -> None:
        b = self.b
        row, col = b.add(tile.m, r), b.add(tile.n, c)
        store_epilogue(b, self.p, self.g, self.operands, self.out, x, (tile.bi, row, col))


def store_epilogue(
    b: ir.IRBuilder, p: Plan, g: Geometry, operands: list[ir.Value], out: ir.Value,
    x: ir.Value, position: tuple[ir.Value, ir.Value, ir.Value],
) -> None:  # fmt: skip
    """Apply the fusion body to the dot's value `x` at output (batch, row, column) and store
    the result there: the one implementation of the epilogue, for this kernel and the library's
    per-fusion callbacks (codegen/gemm_lib.py)."""
    assert p.root is not None
    bi, row, col = position
    body = p.node.attrs["body"]
    buffers = operand_buffers(body.params, operands)
    value = _TileEmitter(b, buffers, p.dot, x).value(p.root, dot_index(b, g, position))
    _, m, n = g.sizes
    offset = b.add(b.mul(b.add(b.mul(bi, I64(m)), row), I64(n)), col)
    store_value(b, value, element_ptr(b, out, offset, p.node.dtype), p.node.dtype)


def dot_index(b: ir.IRBuilder, g: Geometry, position: tuple[ir.Value, ...]) -> Index:
    """The dot's output index at (batch, row, column)."""
    bi, row, col = position
    return (*unravel(b, bi, g.batch), *unravel(b, row, g.m), *unravel(b, col, g.n))


def dot_operands(p: Plan, operands: Sequence[ir.Value]) -> dict[Node, Buffer]:
    """The dot's two operands in memory (the kernel's operand pointers are the node's)."""
    return operand_buffers(p.dot.srcs, [operands[p.lhs], operands[p.rhs]])


def any_non_finite(b: ir.IRBuilder, vectors: Sequence[ir.Value]) -> ir.Value:
    """Whether any lane of `vectors` may be infinite or NaN: their sum is then not finite (a
    finite sum that overflows only costs a needless `exact_tile`)."""
    total = list(vectors)
    while len(total) > 1:  # a tree: few dependent adds
        pairs = [b.fadd(x, y) for x, y in zip(total[0::2], total[1::2], strict=False)]
        total = pairs + total[2 * len(pairs) :]
    lanes = b.fcmp_unordered("uno", b.fsub(total[0], total[0]), total[0])
    return b.icmp_unsigned(
        "!=", b.bitcast(lanes, ir.IntType(lanes.type.count)), ir.IntType(lanes.type.count)(0)
    )


def exact_tile(
    b: ir.IRBuilder, p: Plan, g: Geometry, operands: Sequence[ir.Value], values: ir.Value,
    row_stride: ir.Value, position: tuple[ir.Value, ir.Value, ir.Value],
    size: tuple[ir.Value, ir.Value],
) -> None:  # fmt: skip
    """Exact range for a tile of f32 sums (codegen/emit.py): the rows x cols values at `values`,
    `row_stride` apart, for output (batch, m0, n0) on, each recomputed in f64 where it is not
    finite. Rare, so a plain loop."""
    bi, m0, n0 = position
    rows, cols = size
    buffers = dot_operands(p, operands)
    with for_range(b, rows, name="xr") as r:
        line = at(b, values, b.mul(r, row_stride), F32)
        with for_range(b, cols, name="xc") as c:
            ptr = at(b, line, c, F32)
            index = dot_index(b, g, (bi, b.add(m0, r), b.add(n0, c)))
            b.store(exact_sum(b, b.load(ptr, typ=F32), p.dot, buffers, index), ptr)


class _TileEmitter(Emitter):
    """The fusion body's Emitter, with the dot's value at this position already computed."""

    def __init__(self, b: ir.IRBuilder, buffers: dict[Node, Buffer], dot: Node, acc: ir.Value):
        super().__init__(b, buffers)
        self.dot, self.acc = dot, acc

    def value(self, node: Node, index: Index) -> ir.Value:
        if node is self.dot:
            return self.acc
        return super().value(node, index)
