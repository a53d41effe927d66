"""The packed GEMM as a library compiled once per process, and thin kernels that call it.

A kernel specialized to its sizes (codegen/gemm.py) costs ~55 ms of LLVM time per distinct
dot; XLA's answer, taken here too, is a precompiled matmul. The library holds the same loop
nest, packing and microkernels with sizes, strides and cache blocks read at run time from an
argument struct:

    void tessel_gemm_f32(ptr args, i64 start, i64 stop)      (and tessel_gemm_f64)

`args` points to ARGS_TYPE (FIELDS below; all 8-byte fields): C[batch, m, n] = A B with one
stride per logical axis of each operand, C contiguous, the cache blocks kc/mc/nc that
gemm.tiling chose, `vectors` (which register tile: the library holds one per NR, as
gemm.variants defines them for the target) and an optional epilogue. [start, stop) are the
kernel ABI's rows, tiles numbered exactly as gemm.build numbers them, so the executor's thread
split is unchanged.

The epilogue is a small function generated per fusion,

    void epilogue(ptr context, ptr tile, i64 batch, i64 m0, i64 n0, i64 rows, i64 cols)

called once per finished output tile (on the last K block) with the dot's values, row-major
with row stride NR; it applies the fusion body through gemm.store_epilogue (the one
implementation of it) and stores the results. Without one the library stores C itself.

The wrapper kernel keeps codegen/kernel.py's ABI, fills the struct on its stack with
constants and calls the library: a few dozen instructions for LLVM instead of ~500 lines.
The library's object code is linked into every engine whose program calls it (codegen/jit.py).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import astuple
from pathlib import Path

import llvmlite.binding as llvm
from llvmlite import ir

from codegen import jit
from codegen.cpu_caps import CpuCaps
from codegen.gemm import (
    KERNEL_TYPE,
    any_non_finite,
    base_tiling,
    exact_tile,
    schedule,
    store_epilogue,
    tiling,
    variants,
)
from codegen.gemm_micro import (
    Axis,
    PanelSource,
    RuntimeAxis,
    Tile,
    Tiling,
    at,
    ceil_div,
    microkernel,
    pack,
    smin,
    tile_grid,
)
from codegen.gemm_plan import Geometry, Plan, plan
from codegen.loops import for_range
from codegen.types import F32, I1, I64, PTR, STORAGE, buffer_pointers
from ir.dtypes import DType
from ir.files import atomic_write
from ir.graph import Node

USE_LIBRARY = True  # False: every GEMM gets a specialized kernel (for comparisons)
# From this many multiply-adds on, the specialized kernel: it measured 2-5% faster at 1024^3
# and 2048^3 (its constant sizes and strides), and a call then takes 12 ms or more, so its
# ~55 ms of compile time is repaid within a few dozen calls.
LARGE_MACS = 1 << 30
LIBRARY_VERSION = 2  # part of the on-disk cache key, with the IR text

FIELDS: tuple[tuple[str, ir.Type], ...] = (
    ("batch", I64), ("m", I64), ("n", I64), ("k", I64),
    ("a", PTR), ("a_batch", I64), ("a_m", I64), ("a_k", I64),
    ("b", PTR), ("b_batch", I64), ("b_k", I64), ("b_n", I64),
    ("c", PTR), ("epilogue", PTR), ("context", PTR), ("exact", PTR),
    ("kc", I64), ("mc", I64), ("nc", I64), ("vectors", I64),
)  # fmt: skip
FIELD = {name: i for i, (name, _) in enumerate(FIELDS)}
ARGS_TYPE = ir.LiteralStructType([ty for _, ty in FIELDS])
EPILOGUE_TYPE = ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, I64, I64, I64, I64])
SYMBOLS = {DType.F32: "tessel_gemm_f32", DType.F64: "tessel_gemm_f64"}
I32 = ir.IntType(32)


def _single(axis: Axis) -> bool:
    return len(axis.parts) <= 1


def _stride(axis: Axis) -> int:
    return axis.parts[0][1] if axis.parts else 0  # no parts: every index is 0


def covers(node: Node, caps: CpuCaps) -> bool:
    """Whether `node`'s GEMM calls the library: each logical axis of each operand one stride
    (otherwise the specialized kernel packs through the axes' parts), and not a large one."""
    p = plan(node)
    if not USE_LIBRARY or p is None:
        return False
    g = Geometry.of(p.dot)
    batch, m, n = g.sizes
    if batch * m * n * g.k >= LARGE_MACS:
        return False
    vectors = tiling(p, g, caps).vectors
    return all(_single(a) for a in (*g.a, *g.b)) and vectors in variants(p.dot.dtype, caps)


# --- the thin kernel, per node ------------------------------------------------------------


def build(module: ir.Module, node: Node, name: str, caps: CpuCaps) -> tuple[int, int]:
    """Emit the kernel `name` calling the library; returns (rows, work per row) like gemm.build."""
    p = plan(node)
    assert p is not None, node
    g = Geometry.of(p.dot)
    t = tiling(p, g, caps)
    fn = ir.Function(module, KERNEL_TYPE, name)
    buffers, start, stop = fn.args
    buffers.name, start.name, stop.name = "buffers", "start", "stop"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    pointers = buffer_pointers(b, buffers, 1 + len(p.node.srcs))
    (ab, am, ak), (bb, bk, bn) = g.a, g.b
    batch, m, n = g.sizes
    epilogue: ir.Constant | ir.Function = ir.Constant(PTR, None)
    exact: ir.Constant | ir.Function = ir.Constant(PTR, None)
    if p.root is not None:
        epilogue = _epilogue(module, f"{name}_epilogue", p, g, t)
    elif p.dot.dtype == DType.F32:
        exact = _exact(module, f"{name}_exact", p, g)
    values: dict[str, ir.Value] = {
        "batch": I64(batch), "m": I64(m), "n": I64(n), "k": I64(g.k),
        "a": pointers[1 + p.lhs], "a_batch": I64(_stride(ab)), "a_m": I64(_stride(am)),
        "a_k": I64(_stride(ak)),
        "b": pointers[1 + p.rhs], "b_batch": I64(_stride(bb)), "b_k": I64(_stride(bk)),
        "b_n": I64(_stride(bn)),
        "c": pointers[0], "epilogue": epilogue, "context": buffers, "exact": exact,
        "kc": I64(t.kc), "mc": I64(t.mc), "nc": I64(t.nc), "vectors": I64(t.vectors),
    }  # fmt: skip
    # One aggregate store (llvmlite checks a store against the alloca's type, so not field
    # by field); LLVM splits it into plain stores.
    record: ir.Value = ir.Constant(ARGS_TYPE, ir.Undefined)
    for field, value in values.items():
        record = b.insert_value(record, value, FIELD[field])
    args = b.alloca(ARGS_TYPE)
    b.store(record, args)
    b.call(_declare(module, SYMBOLS[p.dot.dtype]), [args, start, stop])
    b.ret_void()
    return schedule(g, t)


def _declare(module: ir.Module, symbol: str) -> ir.Function:
    existing = module.globals.get(symbol)
    if isinstance(existing, ir.Function):
        return existing
    return ir.Function(module, KERNEL_TYPE, symbol)


def _epilogue(module: ir.Module, name: str, p: Plan, g: Geometry, t: Tiling) -> ir.Function:
    """The fusion body over one tile: the context is the kernel's buffer array."""
    fn = ir.Function(module, EPILOGUE_TYPE, name)
    fn.linkage = "internal"
    context, tile, bi, m0, n0, rows, cols = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    pointers = [
        b.load(b.gep(context, [I64(i)], inbounds=True, source_etype=PTR), typ=PTR)
        for i in range(1 + len(p.node.srcs))
    ]
    ty = STORAGE[p.dot.dtype]
    if p.dot.dtype == DType.F32:  # exact range for the dot's sums, before the epilogue
        exact_tile(b, p, g, pointers[1:], tile, I64(t.nr), (bi, m0, n0), (rows, cols))
    with for_range(b, rows, name="er") as r:
        row = at(b, tile, b.mul(r, I64(t.nr)), ty)
        with for_range(b, cols, name="ec") as c:
            x = b.load(at(b, row, c, ty), typ=ty)
            position = (bi, b.add(m0, r), b.add(n0, c))
            store_epilogue(b, p, g, pointers[1:], pointers[0], x, position)
    b.ret_void()
    return fn


def _exact(module: ir.Module, name: str, p: Plan, g: Geometry) -> ir.Function:
    """Exact range for a stored tile of C (its sums, no epilogue): the library calls this,
    with the epilogue's signature (`tile` unused), where a tile's sums may not be finite."""
    fn = ir.Function(module, EPILOGUE_TYPE, name)
    fn.linkage = "internal"
    context, _, bi, m0, n0, rows, cols = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    pointers = buffer_pointers(b, context, 1 + len(p.node.srcs))
    _, m, n = g.sizes
    first = b.add(b.mul(b.add(b.mul(bi, I64(m)), m0), I64(n)), n0)
    values = at(b, pointers[0], first, F32)
    exact_tile(b, p, g, pointers[1:], values, I64(n), (bi, m0, n0), (rows, cols))
    b.ret_void()
    return fn


# --- the library ---------------------------------------------------------------------------


def library_module(dtype: DType, caps: CpuCaps) -> ir.Module:
    """The routine for one element type on `caps`: its entry point dispatches to the tile
    variants (the program's kernels choose among the same `variants`)."""
    symbol = SYMBOLS[dtype]
    module = ir.Module(name=f"tessel.{symbol}")
    entry = ir.Function(module, KERNEL_TYPE, symbol)
    bodies = {}
    for vectors, t in variants(dtype, caps).items():
        fn = ir.Function(module, KERNEL_TYPE, f"{symbol}_{t.mr}x{t.nr}")
        fn.linkage = "internal"
        _Variant(fn, dtype, t).emit()
        bodies[vectors] = fn
    _dispatch(entry, bodies, base_tiling(dtype, caps).vectors)
    return module


def _dispatch(entry: ir.Function, bodies: dict[int, ir.Function], default: int) -> None:
    args, start, stop = entry.args
    b = ir.IRBuilder(entry.append_basic_block("entry"))
    vectors = _field(b, args, "vectors")
    blocks = {v: entry.append_basic_block(f"v{v}") for v in bodies}
    switch = b.switch(vectors, blocks[default])
    for v, block in blocks.items():
        if v != default:
            switch.add_case(I64(v), block)
        b.position_at_end(block)
        b.call(bodies[v], [args, start, stop])
        b.ret_void()


def _field(b: ir.IRBuilder, args: ir.Value, name: str) -> ir.Value:
    index = FIELD[name]
    ptr = b.gep(args, [I32(0), I32(index)], inbounds=True, source_etype=ARGS_TYPE)
    return b.load(ptr, typ=FIELDS[index][1], name=name)


def _cdiv(b: ir.IRBuilder, x: ir.Value, d: ir.Value) -> ir.Value:
    return b.sdiv(b.add(x, b.sub(d, I64(1))), d)


def _smax(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed(">", x, y), x, y)


class _Variant:
    """One register tile's GEMM: gemm._Gen's loop nest with every size read from the struct.
    A is always read in place (the library only takes single-stride axes, where gemm._Gen does
    the same), so each output element sums the same products in the same order as there."""

    def __init__(self, fn: ir.Function, dtype: DType, t: Tiling) -> None:
        args, self.start, self.stop = fn.args
        self.b = b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.dtype, self.t = dtype, t
        self.ty = STORAGE[dtype]
        self.vec = ir.VectorType(self.ty, t.width)
        self.f = {name: _field(b, args, name) for name, _ in FIELDS}
        # typed as a function pointer: llvmlite takes an indirect call's signature from it
        slot = b.gep(args, [I32(0), I32(FIELD["epilogue"])], inbounds=True, source_etype=ARGS_TYPE)
        self.epilogue = b.load(slot, typ=EPILOGUE_TYPE.as_pointer())
        slot = b.gep(args, [I32(0), I32(FIELD["exact"])], inbounds=True, source_etype=ARGS_TYPE)
        self.exact = b.load(slot, typ=EPILOGUE_TYPE.as_pointer())
        self.suspect = b.alloca(I1)  # whether the tile just stored may hold a non-finite sum
        f = self.f
        self.m, self.n, self.k = f["m"], f["n"], f["k"]
        self.kc, self.mc, self.nc = f["kc"], f["mc"], f["nc"]
        self.nk = _smax(b, I64(1), _cdiv(b, self.k, self.kc))
        self.nj = _cdiv(b, self.n, self.nc)
        # The packed block of B, as large as gemm._Gen's (the cache blocks bound it).
        depth = _smax(b, I64(1), smin(b, self.kc, self.k))
        width = smin(b, self.nc, b.mul(ceil_div(b, self.n, t.nr), I64(t.nr)))
        self.b_scratch = b.alloca(self.ty, size=b.mul(depth, width))
        self.b_scratch.align = 64
        # typed as vectors: llvmlite checks stores against an alloca's element type
        self.tile = b.alloca(self.vec, size=I64(t.mr * t.vectors))
        self.tile.align = 64
        # C + tile, for an epilogue after several K blocks
        self.sums = b.alloca(self.ty, size=I64(t.mr * t.nr))
        self.sums.align = 64

    def emit(self) -> None:
        b, t = self.b, self.t
        tiles = _smax(b, I64(1), ceil_div(b, self.m, t.mr))
        first = b.sdiv(self.start, tiles)
        with for_range(b, _cdiv(b, self.stop, tiles), first, name="group") as group:
            base = b.mul(group, tiles)
            lo = b.sub(self.start, base)
            lo = b.select(b.icmp_signed("<", lo, I64(0)), I64(0), lo)
            hi = smin(b, b.sub(self.stop, base), tiles)
            m_hi = smin(b, b.mul(hi, I64(t.mr)), self.m)
            bi, jc = b.udiv(group, self.nj), b.urem(group, self.nj)
            self._group(bi, jc, b.mul(lo, I64(t.mr)), m_hi)
        b.ret_void()

    def _group(self, bi: ir.Value, jc: ir.Value, m_lo: ir.Value, m_hi: ir.Value) -> None:
        b, t, f = self.b, self.t, self.f
        lhs = at(b, f["a"], b.mul(bi, f["a_batch"]), self.ty)
        rhs_ptr = at(b, f["b"], b.mul(bi, f["b_batch"]), self.ty)
        rhs = PanelSource(rhs_ptr, RuntimeAxis(f["b_n"]), RuntimeAxis(f["b_k"]))
        j0 = b.mul(jc, self.nc)
        nc = smin(b, self.nc, b.sub(self.n, j0))
        with for_range(b, self.nk, name="pc") as pc:
            p0 = b.mul(pc, self.kc)
            kc = smin(b, self.kc, b.sub(self.k, p0))
            pack(b, self.dtype, rhs, self.b_scratch, t.nr, j0, nc, p0, kc)
            with for_range(b, _cdiv(b, b.sub(m_hi, m_lo), self.mc), name="ic") as ic:
                m0 = b.add(m_lo, b.mul(ic, self.mc))
                mc = smin(b, self.mc, b.sub(m_hi, m0))
                self._block(bi, (m0, mc, j0, nc), (p0, kc, pc), lhs)

    def _block(self, bi: ir.Value, block: tuple[ir.Value, ir.Value, ir.Value, ir.Value],
               depth: tuple[ir.Value, ir.Value, ir.Value], lhs: ir.Value) -> None:  # fmt: skip
        b, t, f = self.b, self.t, self.f
        p0, kc, pc = depth
        last_row = b.sub(self.m, I64(1))
        a_start = at(b, lhs, b.mul(p0, f["a_k"]), self.ty)
        with tile_grid(b, t, self.ty, self.b_scratch, bi, block, kc) as (_, b_panel, tile):
            # Rows past the edge repeat the last row (their results are never stored), so no
            # load leaves A.
            a_rows = [
                at(b, a_start, b.mul(smin(b, b.add(tile.m, I64(r)), last_row), f["a_m"]), self.ty)
                for r in range(t.mr)
            ]
            self._prefetch(tile)
            # A with unit stride along K (a plain row-major lhs) gets its own copy of the
            # microkernel, with the step a constant as in the specialized kernel.
            unit = b.icmp_signed("==", f["a_k"], I64(1))
            with b.if_else(unit) as (contiguous, strided):
                with contiguous:
                    acc = microkernel(b, t, self.dtype, a_rows, 1, b_panel, kc)
                    self._writeback(acc, tile, pc)
                with strided:
                    acc = microkernel(b, t, self.dtype, a_rows, f["a_k"], b_panel, kc)
                    self._writeback(acc, tile, pc)

    def _offset(self, tile: Tile, r: ir.Value | int) -> ir.Value:
        b = self.b
        row = b.add(b.add(b.mul(tile.bi, self.m), tile.m), I64(r) if isinstance(r, int) else r)
        return b.add(b.mul(row, self.n), tile.n)

    def _prefetch(self, tile: Tile) -> None:
        """Fetch the output tile during the K loop, as gemm._Gen does (a prefetch never faults,
        so rows and columns past the edge need no guard)."""
        b, t = self.b, self.t
        fnty = ir.FunctionType(ir.VoidType(), [PTR, I32, I32, I32])
        fn = b.module.declare_intrinsic("llvm.prefetch", [PTR], fnty)
        line = 64 // self.dtype.np.itemsize
        for r in range(t.mr):
            row = b.gep(self.f["c"], [self._offset(tile, r)], source_etype=self.ty)
            for c in range(0, t.nr, line):
                ptr = b.gep(row, [I64(c)], source_etype=self.ty)
                b.call(fn, [ptr, I32(1), I32(3), I32(1)])

    def _writeback(self, acc: list[ir.Value], tile: Tile, pc: ir.Value) -> None:
        """K blocks after the first add to what earlier ones stored in C (old + new, as in
        gemm._Gen); the last hands the tile to the epilogue when there is one."""
        b, t, f = self.b, self.t, self.f
        first = b.icmp_signed("==", pc, I64(0))
        last = b.icmp_signed("==", pc, b.sub(self.nk, I64(1)))
        epilogue = self.epilogue
        has_epilogue = b.icmp_unsigned("!=", b.ptrtoint(epilogue, I64), I64(0))
        full = b.and_(
            b.icmp_signed("==", tile.rows, I64(t.mr)), b.icmp_signed("==", tile.cols, I64(t.nr))
        )
        with b.if_else(b.and_(last, has_epilogue)) as (finish, store):
            with finish:
                self._spill(acc)
                where = [tile.bi, tile.m, tile.n, tile.rows, tile.cols]
                with b.if_else(first) as (fresh, add):
                    with fresh:
                        b.call(epilogue, [f["context"], self.tile, *where])
                    with add:
                        self._elementwise(tile, into=self.sums)
                        b.call(epilogue, [f["context"], self.sums, *where])
            with store:
                with b.if_else(full) as (whole, edge):
                    with whole, b.if_else(first) as (fresh, add):
                        with fresh:
                            self._flag(self._vector_store(acc, tile, accumulate=False))
                        with add:
                            self._flag(self._vector_store(acc, tile, accumulate=True))
                    with edge:
                        self._spill(acc)
                        with b.if_else(first) as (fresh, add):
                            with fresh:
                                self._elementwise(tile, accumulate=False)
                            with add:
                                self._elementwise(tile)
                        self._flag(None)
                if self.dtype == DType.F32:  # only f32 sums get exact range (codegen/emit.py)
                    has_exact = b.icmp_unsigned("!=", b.ptrtoint(self.exact, I64), I64(0))
                    check = b.and_(b.and_(last, has_exact), b.load(self.suspect, typ=I1))
                    with b.if_then(check, likely=False):
                        where = [tile.bi, tile.m, tile.n, tile.rows, tile.cols]
                        b.call(self.exact, [f["context"], f["c"], *where])

    def _flag(self, stored: list[ir.Value] | None) -> None:
        """Record whether the tile just stored may hold a non-finite f32 sum (an edge tile,
        stored element by element, always may); the f64 variant records nothing."""
        if self.dtype == DType.F32:
            suspect = I1(1) if stored is None else any_non_finite(self.b, stored)
            self.b.store(suspect, self.suspect)

    def _spill(self, acc: list[ir.Value]) -> None:
        for i, value in enumerate(acc):
            self.b.store(value, at(self.b, self.tile, I64(i), self.vec)).align = 64

    def _vector_store(self, acc: list[ir.Value], tile: Tile, accumulate: bool) -> list[ir.Value]:
        """Store the whole tile; returns the stored vectors."""
        b, t = self.b, self.t
        stored = []
        for r in range(t.mr):
            row = at(b, self.f["c"], self._offset(tile, r), self.ty)
            for v in range(t.vectors):
                ptr = at(b, row, I64(v * t.width), self.ty)
                value = acc[r * t.vectors + v]
                if accumulate:
                    old = b.load(ptr, typ=self.vec)
                    old.align = 4  # output rows are only element-aligned
                    value = b.fadd(old, value)
                b.store(value, ptr).align = 4
                stored.append(value)
        return stored

    def _elementwise(
        self, tile: Tile, into: ir.Value | None = None, accumulate: bool = True
    ) -> None:
        """Edges through the spilled tile: C = (C +) tile, or `into` = C + tile (same layout as
        the tile) for the epilogue."""
        b, t = self.b, self.t
        with for_range(b, tile.rows, name="er") as r:
            offset = self._offset(tile, r)
            with for_range(b, tile.cols, name="ec") as c:
                slot = at(b, self.tile, b.add(b.mul(r, I64(t.nr)), c), self.ty)
                x = b.load(slot, typ=self.ty)
                ptr = at(b, self.f["c"], b.add(offset, c), self.ty)
                if accumulate:
                    x = b.fadd(b.load(ptr, typ=self.ty), x)
                if into is None:
                    b.store(x, ptr)
                else:
                    b.store(x, at(b, into, b.add(b.mul(r, I64(t.nr)), c), self.ty))


# --- compiling it --------------------------------------------------------------------------


@functools.cache
def library_object(target: jit.Target, dtype: DType) -> bytes:
    """The `dtype` routine's object code for `target`: built once per process, and kept on disk
    (see `_cache_dir`) so later processes load it in milliseconds instead of the ~0.7 s build.
    PIC, so the same bytes link into MCJIT engines and into shared libraries."""
    key = _cache_key(target, dtype)
    cached = _load_cached(key)
    if cached is not None:
        return cached
    tm, text = _library_ir(target, dtype)
    code = bytes(tm.emit_object(_optimized(tm, text)))
    _store_cached(key, code, target)
    return code


def library_assembly(target: jit.Target, dtype: DType) -> str:
    """The routine's assembly, for `Compiled.asm()` of programs that call it (built anew:
    asking for assembly is rare, and the object code may have come from the disk cache)."""
    tm, text = _library_ir(target, dtype)
    return str(tm.emit_assembly(_optimized(tm, text)))


def _library_ir(target: jit.Target, dtype: DType) -> tuple[llvm.TargetMachine, str]:
    tm = jit.target_machine(target, jit=False)
    module = library_module(dtype, target.caps)
    module.triple = llvm.get_process_triple()
    module.data_layout = str(tm.target_data)
    return tm, str(module)


def _optimized(tm: llvm.TargetMachine, text: str) -> llvm.ModuleRef:
    ref = llvm.parse_assembly(text)
    ref.verify()
    jit.optimize(ref, tm)
    return ref


@functools.cache
def _codegen_fingerprint() -> str:
    """A hash of the code generator's sources: the library is a function of them (and of the
    target and LLVM), so a changed generator never reuses an old object."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _cache_key(target: jit.Target, dtype: DType) -> str:
    facts = [LIBRARY_VERSION, _codegen_fingerprint(), dtype.value, target.cpu, target.features,
             astuple(target.caches), list(llvm.llvm_version_info)]  # fmt: skip
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:32]


def library_calls(object_code: bytes) -> list[DType]:
    """The element types whose routine a program's object code calls (its symbol table names
    them; each symbol is unique to the library)."""
    return [dtype for dtype, symbol in SYMBOLS.items() if symbol.encode() in object_code]


def _cache_dir() -> Path | None:
    """$TESSEL_CACHE_DIR/lib, else the user's cache folder: the library is tessel's own code,
    like an installed runtime, so it is kept by default; TESSEL_LIBRARY_CACHE=0 turns it off."""
    if os.environ.get("TESSEL_LIBRARY_CACHE", "1") == "0":
        return None
    root = os.environ.get("TESSEL_CACHE_DIR")
    if root:
        return Path(root) / "lib"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tessel" / "lib"


def _load_cached(key: str) -> bytes | None:
    folder = _cache_dir()
    if folder is None:
        return None
    try:
        meta = json.loads((folder / f"gemm-{key}.json").read_text())
        code = (folder / f"gemm-{key}.o").read_bytes()
    except (OSError, ValueError):
        return None
    # The JSON is written last, so its digest vouches for a complete object file. Anything
    # else found there (another JSON value, a damaged object) is a miss: the files are input.
    if not isinstance(meta, dict) or meta.get("sha256") != hashlib.sha256(code).hexdigest():
        return None
    return code


def _store_cached(key: str, code: bytes, target: jit.Target) -> None:
    folder = _cache_dir()
    if folder is None:
        return
    meta = {"cpu": target.cpu, "features": target.features,
            "sha256": hashlib.sha256(code).hexdigest()}  # fmt: skip
    try:
        with atomic_write(folder / f"gemm-{key}.o") as out:
            out.write(code)
        with atomic_write(folder / f"gemm-{key}.json") as out:
            out.write(json.dumps(meta).encode())
    except OSError:
        pass  # a cache that cannot be written only costs the next process the build
