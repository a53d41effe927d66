"""A packed int8 GEMM with int32 accumulation, for 8-bit dot_generals on any x86-64: AMX
tiles, AVX-512 VNNI or PMADDWD, whichever the target's CpuCaps have; the same loop nest with
bf16 operands and f32 accumulation for bf16 ones (codegen/gemm_bf16.py).

It takes a dot_general whose operands are i8 or u8 and whose out_dtype is i32 (any mix of
the two, though the IR's type rules currently ask for equal operand dtypes):
C[b, m, n] = sum_k A[b, m, k] B[b, k, n], with the dimension numbers reduced as in
codegen/gemm_plan.py, alone or as the output fusion around it: an epilogue of elementwise and
quantization ops (bias add in int32, requantize with its clamp, dequantize to f32, ...) that
reads the dot only at the element it writes. The epilogue runs on each finished 32-row block
of C while it is in L1, through gemm.store_epilogue (the Emitter's rules, so every op means
what the reference says).

Both operands are packed into zero-padded scratch on the stack first: A as 32 rows of KCP
bytes (KCP = the K block rounded up to 64), B as 16-column panels holding 16 columns x 4
consecutive k per 64-byte row (the "VNNI" layout), so edges and any dimension numbers cost
nothing in the inner loops and zeros add nothing to the sums. A 32 x NB block of C is then
computed from the packed operands in one of three ways, chosen by the caps:

- AMX-INT8 tiles: TDPB{S,U}{S,U}D multiplies a 16 x 64-byte tile of A with a 16 x 64-byte
  tile of B and adds the sums of four products into a 16 x 16 tile of int32. Four
  accumulator tiles make a 32 x 32 block of C, fed by two tiles of A and two of B per 64 k.
- AVX-512 VNNI: VPDPBUSD sums four u8 x s8 products into each int32 lane (_vnni_block).
- PMADDWD, on every x86-64 (SSE2; 256-bit with AVX2, 512-bit with AVX-512BW): the 8-bit
  values widened to i16, two products summed per int32 lane (_madd_block). It is exact for
  every signedness, where VPMADDUBSW would saturate u8 x s8 pairs.

Loop nest, one "row" being one 32-row M block of one (batch, column block):

    for each (batch, column block of NB) in the thread's rows, for pc in K by KC:  pack B
        for each 32-row M block:   pack A;  the 32 x NB block of C

A block wholly inside C is stored from the tiles straight into C (later K blocks load it back
into the accumulators); an edge block, and every block computed without tiles, goes through a
stack copy S, of which only the part inside C is stored (added, after the first K block).
With an epilogue the output cannot hold int32 partial sums, so K is one block (the column
block narrows to keep B's packed block within KC_MAX x NB_MAX bytes) and every block goes
through S, where the epilogue reads it.

Every sum is exact modulo 2^32: the dot-product instructions and the K-block additions wrap
rather than saturate (a product of 8-bit values, or the sum of two, fits in int32), and
wrapping int32 addition is int64 addition followed by one wrap, which is what the reference
does, so results are bit-identical however long K is.

The code is emitted for the module's target, whose caps decide the paths: nothing is probed
when the kernel runs except the one thing no target can promise. Linux hands out the AMX
register state only to processes that ask for it (arch_prctl ARCH_REQ_XCOMP_PERM for
XTILEDATA). The kernel asks itself, once per process, through the system call; if the OS
says no (an older kernel, a library loaded elsewhere), the same blocks are computed from the
same packed operands with VNNI (about a tenth of the tile speed) where the caps have it, and
with PMADDWD otherwise. There is no scalar loop: every x86-64 has PMADDWD.

bf16 (Kind BF16) is the same structure with two k per 32-bit element instead of four: a tile
row is still 64 bytes (32 k of A; 16 columns x 2 k of B), TDPBF16PS replaces TDPB*D, the
AVX-512 BF16 VDPBF16PS replaces VPDPBUSD, and the sums are f32. It needs AVX-512 BF16, the
tiles' fallback; every CPU with AMX-BF16 has it, and without either the cpu pipeline widens
bf16 dots onto the f32 GEMM, which is faster than any scalar bf16 loop. Everything about K
below is counted in bytes (KC_MAX, the padding to 64), so both kinds share the blocking.
"""

from __future__ import annotations

from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite import ir

from codegen.cpu_caps import CpuCaps
from codegen.gemm import store_epilogue
from codegen.gemm_micro import Axis, PanelSource, at, ceil_div, smin
from codegen.gemm_plan import Geometry, Plan, fusion_plan
from codegen.loops import for_range
from codegen.types import I8, I32, I64, PTR, buffer_pointers
from codegen.x86 import amx_ready, amx_setup, memset, tile_function, void_intrinsic
from ir.dtypes import DType
from ir.graph import Node
from ir.ops import ELEMENTWISE, QUANTIZATION, Op

KERNEL_TYPE = ir.FunctionType(ir.VoidType(), [PTR, I64, I64])  # codegen/kernel.py's ABI
DIRECT_C = True  # whole blocks on tiles store into the output, not through a stack tile
OPERANDS = frozenset({DType.I8, DType.U8})
MB = 32  # rows of C per block: two A tiles
PANEL = 16  # columns of C per B tile
KC_MAX = 2048  # bytes of K per block: B's block is KCP x NB bytes of stack (1 MB at most)
NB_MAX = 512  # columns per column block; with N = 1024 two threads pack disjoint halves of B
# The executor splits a kernel when rows * work_per_row reaches 32768; in multiply-adds that
# is 32768 * 8192 = 256M, a 640^3 product, about 0.1 ms on one core at tile speed: below that
# waking the pool costs more than a second thread saves. Scaled to the slower paths by
# parallel_unit.
PARALLEL_MACS = 8192
FALSE = ir.IntType(1)(0)
I16 = ir.IntType(16)
VNNI_ROWS = 8  # rows of C per pass of the VNNI loop: 8 independent accumulator chains
MADD_VECTORS = 2  # accumulators per row of a PMADDWD pass: `lanes` columns of C
MADD_INTRINSIC = {  # by vector width
    128: "llvm.x86.sse2.pmadd.wd",
    256: "llvm.x86.avx2.pmadd.wd",
    512: "llvm.x86.avx512.pmaddw.d.512",
}
# the tile instruction for each (A signed, B signed)
DOT_INSTRUCTION = {
    (True, True): "ss",
    (True, False): "su",
    (False, True): "us",
    (False, False): "uu",
}


@dataclass(frozen=True)
class Kind:
    """What the operands and sums are: int8 into int32, or bf16 into f32."""

    name: str
    size: int  # bytes per operand element
    element: ir.Type  # how an operand element is moved (bf16 as its 16 bits)
    acc: ir.Type  # the type of C's sums

    @property
    def per(self) -> int:
        """k per 32-bit element of a B panel row (and per dot-product lane)."""
        return 4 // self.size

    def has_tiles(self, caps: CpuCaps) -> bool:
        return caps.amx_int8 if self is INT8 else caps.amx_bf16

    def has_vectors(self, caps: CpuCaps) -> bool:
        """VPDPBUSD (int8) or VDPBF16PS (bf16): the AVX-512 dot-product instructions."""
        return caps.vnni if self is INT8 else caps.avx512_bf16

    def supported(self, caps: CpuCaps) -> bool:
        """Whether the kernel runs on `caps`: int8 everywhere (PMADDWD at least), bf16 with
        VDPBF16PS (which the tiles fall back to when the OS refuses them)."""
        return self is INT8 or self.has_vectors(caps)


INT8 = Kind("int8", 1, I8, I32)
BF16 = Kind("bf16", 2, ir.IntType(16), ir.FloatType())


def plan(node: Node, caps: CpuCaps, kind: Kind = INT8) -> Plan | None:
    """An i8/u8 dot_general into i32 (bf16 into f32 for BF16), alone or in an output fusion
    whose epilogue this kernel applies, on a CPU with `caps` that `kind` supports; else None."""
    if node.op is Op.DOT_GENERAL:
        p: Plan | None = Plan(node, node, 0, 1, None)
    else:
        # quantization ops too compute each element from the same element of their operand
        p = fusion_plan(node, ELEMENTWISE | QUANTIZATION) if node.op is Op.FUSION else None
    result, operands = (DType.I32, OPERANDS) if kind is INT8 else (DType.F32, {DType.BF16})
    if p is None or p.dot.dtype != result or any(s.dtype not in operands for s in p.dot.srcs):
        return None
    g = Geometry.of(p.dot)
    if p.dot.type.size == 0 or g.k == 0:
        return None  # nothing to multiply: the generic loop writes the (epilogue of) zeros
    if p.root is not None and blocks(g, True, kind).nb == 0:
        return None  # K too long for one block of B on the stack
    return p if kind.supported(caps) else None


def applicable(node: Node, caps: CpuCaps) -> bool:
    """An int8 dot_general (or output fusion around one) this kernel computes on `caps`."""
    return plan(node, caps) is not None


@dataclass(frozen=True)
class Blocks:
    """Static block sizes: K per block (kc) and its padded width (kcp), columns per block."""

    kc: int  # elements
    kcp: int
    nb: int
    nk: int  # K blocks
    nj: int  # column blocks
    mt: int  # 32-row M blocks


def blocks(g: Geometry, epilogue: bool, kind: Kind = INT8) -> Blocks:
    """Block sizes; with an epilogue K is one block and nb is 0 when even 32 columns of B's
    block would not fit."""
    _, m, n = g.sizes
    nk = 1 if epilogue else -(-g.k * kind.size // KC_MAX)
    kc = -(-g.k // nk)  # equal blocks, so the last is not a sliver
    step = 64 // kind.size  # k per 64-byte tile row
    kcp = -(-kc // step) * step
    fit = KC_MAX * NB_MAX // (kcp * kind.size) // (2 * PANEL) * (2 * PANEL)
    nb = min(NB_MAX, fit, -(-n // (2 * PANEL)) * 2 * PANEL)
    return Blocks(kc, kcp, nb, nk, -(-n // max(nb, 1)), -(-m // MB))


def parallel_unit(macs: int, tiles: bool, vnni: bool) -> int:
    """Multiply-adds per unit of executor work on a path, from `macs` at tile speed. PMADDWD
    gains from a second thread from about 30M multiply-adds (units of 1024), an eighth of the
    tiles' 256M: on Zen 3 two threads took 0.6x the time of one at 115M and 134M, 1.1x at 29M.
    VNNI, unmeasured, is put between the two."""
    return max(1, macs // (1 if tiles else 4 if vnni else 8))


def build(
    module: ir.Module, node: Node, name: str, caps: CpuCaps, kind: Kind = INT8
) -> tuple[int, int]:
    """Emit the kernel `name` for `node`; returns (rows, work per row) for the executor."""
    # the object emitter assembles inline assembly (amx_ready's `syscall`, VDPBF16PS) only
    # with a parser
    llvm.initialize_native_asmparser()
    p = plan(node, caps, kind)
    if p is None:
        raise ValueError(f"gemm_int8.build: not a {kind.name} GEMM: {node!r}")
    g = Geometry.of(p.dot)
    z = blocks(g, p.root is not None, kind)
    fn = ir.Function(module, KERNEL_TYPE, name)
    fn.args[0].name, fn.args[1].name, fn.args[2].name = "buffers", "start", "stop"
    signed = tuple(s.dtype == DType.I8 for s in p.dot.srcs)
    _Gen(fn, p, g, z, (signed[0], signed[1]), caps, kind).emit()
    batch, _, n = g.sizes
    unit = parallel_unit(PARALLEL_MACS, kind.has_tiles(caps), kind.has_vectors(caps))
    work = MB * -(-n // z.nj) * g.k // unit
    return batch * z.nj * z.mt, max(1, work)


def _amx_block(module: ir.Module, name: str, z: Blocks, signed: tuple[bool, bool],
               kind: Kind) -> ir.Function:  # fmt: skip
    """void f(ptr a, i64 a_stride, ptr b, ptr c, i64 c_stride, i1 accumulate): the MB x NB
    block C = A B (C += A B when accumulating) on tiles configured by amx_setup; A's rows
    are `a_stride` bytes apart, C's `c_stride`."""
    fn = tile_function(module, name, [PTR, I64, PTR, PTR, I64, ir.IntType(1)])
    a, a_stride, bp, s, row_bytes, accumulate = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    load = void_intrinsic(module, "llvm.x86.tileloadd64", [I8, PTR, I64])
    # B's panels are read once per block: the T1 hint keeps them from evicting A from L1
    # (measured 25% faster at 1024^3)
    bload = void_intrinsic(module, "llvm.x86.tileloaddt164", [I8, PTR, I64])
    store = void_intrinsic(module, "llvm.x86.tilestored64", [I8, PTR, I64])
    zero = void_intrinsic(module, "llvm.x86.tilezero", [I8])
    op = f"tdpb{DOT_INSTRUCTION[signed]}d" if kind is INT8 else "tdpbf16ps"
    dot = void_intrinsic(module, f"llvm.x86.{op}", [I8, I8, I8])
    panel_bytes = z.kcp * kind.size * PANEL
    with for_range(b, z.nb // (2 * PANEL), name="q") as q:
        col = b.mul(q, I64(2 * PANEL * 4))
        lower = b.mul(row_bytes, I64(16))
        c_tiles = []
        for acc in range(4):
            offset = b.add(col, I64((acc % 2) * PANEL * 4))
            if acc >= 2:
                offset = b.add(offset, lower)
            c_tiles.append(at(b, s, offset, I8))
        with b.if_else(accumulate) as (more, first):
            with more:
                for acc in range(4):
                    b.call(load, [I8(acc), c_tiles[acc], row_bytes])
            with first:
                for acc in range(4):
                    b.call(zero, [I8(acc)])
        b0 = at(b, bp, b.mul(q, I64(2 * panel_bytes)), I8)
        b1 = at(b, b0, I64(panel_bytes), I8)
        with for_range(b, z.kcp * kind.size // 64, name="kt") as kt:
            ka = b.mul(kt, I64(64))
            kb = b.mul(kt, I64(16 * 64))  # 16 rows of 64 bytes per 64 bytes of K
            a1 = at(b, a, b.add(ka, b.mul(a_stride, I64(16))), I8)
            # Tiles are not renamed: a load waits for the last product reading its tile. Each
            # load comes right after that product, so it overlaps the products still queued.
            b.call(load, [I8(4), at(b, a, ka, I8), a_stride])
            b.call(bload, [I8(6), at(b, b0, kb, I8), I64(64)])
            b.call(dot, [I8(0), I8(4), I8(6)])
            b.call(bload, [I8(7), at(b, b1, kb, I8), I64(64)])
            b.call(dot, [I8(1), I8(4), I8(7)])
            b.call(load, [I8(5), a1, a_stride])
            b.call(dot, [I8(2), I8(5), I8(6)])
            b.call(dot, [I8(3), I8(5), I8(7)])
        for acc in range(4):
            b.call(store, [I8(acc), c_tiles[acc], row_bytes])
    b.ret_void()
    return fn


def _vnni_block(module: ir.Module, name: str, z: Blocks, signed: tuple[bool, bool],
                kind: Kind = INT8) -> ir.Function:  # fmt: skip
    """void f(ptr a, ptr b, ptr s): the MB x NB block S = A B of the packed operands with
    VPDPBUSD, which sums four u8 x s8 products into each int32 lane (for bf16, VDPBF16PS:
    two bf16 products into each f32 lane).

    u8 x s8 maps straight onto it, s8 x u8 with the operands swapped. For s8 x s8, A is made
    unsigned by adding 128 (flipping its sign bits), which adds 128 * (column sum of B) to
    every element: that is computed with the same instruction and subtracted.
    """
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR]), name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    a, bp, s = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    words = ir.VectorType(I32, 16)
    vec = ir.VectorType(kind.acc, 16)
    dot: ir.Function | ir.InlineAsm
    if kind is INT8:
        dot = module.declare_intrinsic(
            "llvm.x86.avx512.vpdpbusd.512", (), ir.FunctionType(vec, [vec, vec, vec])
        )
    else:  # as inline assembly: llvmlite has no bfloat type for the intrinsic's operands
        dot = ir.InlineAsm(
            ir.FunctionType(vec, [vec, words, words]), "vdpbf16ps $3, $2, $0", "=v,0,v,v"
        )
    zero = ir.Constant(vec, [0] * 16)
    flip = ir.Constant(vec, [0x80808080 - (1 << 32)] * 16)  # 128 in every byte
    both_signed = kind is INT8 and signed == (True, True)
    kcb = z.kcp * kind.size  # bytes of a packed row of A
    acc = b.alloca(vec, size=I64(VNNI_ROWS + 1))  # registers once promoted; the last: 128 * sums
    acc.align = 64

    def slot(i: int) -> ir.Value:
        return b.gep(acc, [I64(i)], source_etype=vec)

    def splat(word: ir.Value) -> ir.Value:
        one = b.insert_element(ir.Constant(words, ir.Undefined), word, I32(0))
        return b.shuffle_vector(one, ir.Constant(words, ir.Undefined), ir.Constant(words, [0] * 16))

    with for_range(b, z.nb // PANEL, name="vp") as p:
        panel = at(b, bp, b.mul(p, I64(kcb * PANEL)), I8)
        b.store(zero, slot(VNNI_ROWS))
        if both_signed:
            with for_range(b, kcb // 4, name="vs") as k4:
                line = b.load(at(b, panel, b.mul(k4, I64(64)), I8), typ=vec)
                b.store(
                    b.call(dot, [b.load(slot(VNNI_ROWS), typ=vec), flip, line]), slot(VNNI_ROWS)
                )
        sums = b.load(slot(VNNI_ROWS), typ=vec)
        with for_range(b, MB // VNNI_ROWS, name="vg") as g:
            rows = b.mul(g, I64(VNNI_ROWS))
            for i in range(VNNI_ROWS):
                b.store(zero, slot(i))
            with for_range(b, kcb // 4, name="vk") as k4:
                line = b.load(at(b, panel, b.mul(k4, I64(64)), I8), typ=words)
                for i in range(VNNI_ROWS):
                    row = at(b, a, b.mul(b.add(rows, I64(i)), I64(kcb)), I8)
                    word = b.load(at(b, row, b.mul(k4, I64(4)), I8), typ=I32)
                    if both_signed:
                        word = b.xor(word, I32(0x80808080 - (1 << 32)))
                    x, y = (line, splat(word)) if signed == (True, False) else (splat(word), line)
                    b.store(b.call(dot, [b.load(slot(i), typ=vec), x, y]), slot(i))
            for i in range(VNNI_ROWS):
                out = at(b, s, b.add(b.mul(b.add(rows, I64(i)), I64(z.nb)), b.mul(p, I64(16))), I32)
                total = b.load(slot(i), typ=vec)
                b.store(b.sub(total, sums) if both_signed else total, out).align = 4
    b.ret_void()
    return fn


@dataclass(frozen=True)
class Madd:
    """PMADDWD on one CPU: its vector width and register blocking, and the pieces of an inner
    loop around it (the GEMM's here, the int8 convolution's in codegen/conv_int8.py).

    A pass keeps `rows` x MADD_VECTORS accumulators of `lanes` int32. Each step takes 4 k: a
    vector of B is lanes / 2 columns x 4 k (16 bytes of a 64-byte panel row at 256 bits),
    widened to i16 as it is loaded, and the 4 k of A that meet it are one 64-bit broadcast of
    i16, so PMADDWD leaves the sums over k 0-1 and k 2-3 of each column in adjacent lanes:
    added when K is done (`sums`). Products of 8-bit values and sums of two fit in int32.
    """

    bits: int  # 128 (SSE2), 256 (AVX2) or 512 (AVX-512BW)
    rows: int  # rows of A per pass, one broadcast each

    @property
    def lanes(self) -> int:
        """int32 lanes per vector: the two partial sums of lanes / 2 columns."""
        return self.bits // 32

    @property
    def columns(self) -> int:
        """Columns of C per pass; a divisor of PANEL."""
        return MADD_VECTORS * self.lanes // 2

    @staticmethod
    def of(caps: CpuCaps) -> Madd:
        # rows x 2 accumulators, 2 vectors of B, a broadcast of A and a product in the
        # registers there are: 4 rows of 16 (12 in use), 8 of 32 (20)
        if caps.has("avx512f", "avx512bw"):
            return Madd(512, 8)
        return Madd(256 if caps.avx2 else 128, 4)

    def accumulators(self, b: ir.IRBuilder) -> list[list[ir.Value]]:
        """Stack slots that mem2reg makes registers: acc[row][vector]."""
        vec = ir.VectorType(I32, self.lanes)
        return [[b.alloca(vec) for _ in range(MADD_VECTORS)] for _ in range(self.rows)]

    def zero(self, b: ir.IRBuilder, acc: list[list[ir.Value]]) -> None:
        for row in acc:
            for slot in row:
                b.store(ir.Constant(ir.VectorType(I32, self.lanes), [0] * self.lanes), slot)

    def step(self, b: ir.IRBuilder, acc: list[list[ir.Value]], line: ir.Value,
             quads: list[ir.Value], b_signed: bool) -> None:  # fmt: skip
        """acc[r][v] += 4 k of row r (i16 at quads[r]) times vector v of B, from the bytes at
        `line` (a column's 4 k each 4 bytes, in B's signedness)."""
        lanes = self.lanes
        words, vec = ir.VectorType(I16, 2 * lanes), ir.VectorType(I32, lanes)
        quad, half = ir.VectorType(I64, lanes // 2), ir.VectorType(I32, lanes // 2)
        madd = b.module.declare_intrinsic(
            MADD_INTRINSIC[self.bits], (), ir.FunctionType(vec, [words, words])
        )
        ext = b.sext if b_signed else b.zext
        columns = []
        for v in range(MADD_VECTORS):
            load = b.load(at(b, line, I64(v * 2 * lanes), I8), typ=ir.VectorType(I8, 2 * lanes))
            load.align = 1
            columns.append(ext(load, words))
        for row, ptr in zip(acc, quads, strict=True):
            one = b.insert_element(ir.Constant(quad, ir.Undefined), b.load(ptr, typ=I64), I32(0))
            splat = b.shuffle_vector(one, ir.Constant(quad, ir.Undefined), ir.Constant(half, 0))
            a = b.bitcast(splat, words)
            for slot, column in zip(row, columns, strict=True):
                b.store(b.add(b.load(slot, typ=vec), b.call(madd, [a, column])), slot)

    def sums(self, b: ir.IRBuilder, row: list[ir.Value]) -> list[ir.Value]:
        """One row's columns in order, `lanes` per vector: the partial sums of a column
        (adjacent lanes of one accumulator) added, two accumulators making one vector."""
        vec = ir.VectorType(I32, self.lanes)
        even = ir.Constant(vec, list(range(0, 2 * self.lanes, 2)))
        odd = ir.Constant(vec, list(range(1, 2 * self.lanes, 2)))
        out = []
        for v in range(0, len(row), 2):
            x, y = b.load(row[v], typ=vec), b.load(row[v + 1], typ=vec)
            out.append(b.add(b.shuffle_vector(x, y, even), b.shuffle_vector(x, y, odd)))
        return out


def _madd_block(module: ir.Module, name: str, z: Blocks, signed: tuple[bool, bool],
                shape: Madd) -> ir.Function:  # fmt: skip
    """void f(ptr a, ptr b, ptr s, ptr a16, i64 mc, i64 nc): the block S = A B of the packed
    int8 operands with PMADDWD (i16 x i16, adjacent products summed into int32 lanes), for
    the row groups that hold its first `mc` rows and the panels that hold its first `nc`
    columns (a vector-times-matrix product computes 4 rows, not 32).

    A is widened into `a16` (rows x KCP i16, in its signedness) once per block, so that 4 k
    of a row are one 64-bit broadcast. Per pass, a strip of `columns` columns x KCP of B stays
    in L1 while the row groups stream A from L2. Measured at 1024^3 on Zen 3 (AVX2, one
    core): 1.6x the f32 GEMM; 2 rows x 4 vectors measured the same as 4 x 2, and unrolling K
    was no faster.
    """
    fty = ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR, PTR, I64, I64])
    fn = ir.Function(module, fty, name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    a, bp, s, a16, mc, nc = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    acc = shape.accumulators(b)
    ext = b.sext if signed[0] else b.zext
    groups = ceil_div(b, mc, shape.rows)
    with for_range(b, b.mul(b.mul(groups, I64(shape.rows)), I64(z.kcp)), name="wa") as i:
        b.store(ext(b.load(at(b, a, i, I8), typ=I8), I16), at(b, a16, i, I16))
    with for_range(b, ceil_div(b, nc, PANEL), name="mp") as p:
        panel = at(b, bp, b.mul(p, I64(z.kcp * PANEL)), I8)
        s_panel = at(b, s, b.mul(p, I64(PANEL)), I32)
        with for_range(b, PANEL // shape.columns, name="ms") as strip:
            col = b.mul(strip, I64(shape.columns))
            strip_line = at(b, panel, b.mul(col, I64(4)), I8)
            with for_range(b, groups, name="mg") as group:
                first = b.mul(group, I64(shape.rows))
                shape.zero(b, acc)
                rows = [at(b, a16, b.mul(b.add(first, I64(r)), I64(z.kcp)), I16)
                        for r in range(shape.rows)]  # fmt: skip
                with for_range(b, z.kcp // 4, name="mk") as k4:
                    quads = [at(b, row, b.mul(k4, I64(4)), I16) for row in rows]
                    line = at(b, strip_line, b.mul(k4, I64(64)), I8)
                    shape.step(b, acc, line, quads, signed[1])
                for r, row in enumerate(acc):
                    dst = at(b, s_panel, b.add(b.mul(b.add(first, I64(r)), I64(z.nb)), col), I32)
                    for v, total in enumerate(shape.sums(b, row)):
                        b.store(total, at(b, dst, I64(v * shape.lanes), I32)).align = 4
    b.ret_void()
    return fn


class _Gen:
    """One kernel: B and A packed block by block, each block computed on the tiles or by the
    vector block function, and stored into C (through the epilogue, if any)."""

    def __init__(self, fn: ir.Function, p: Plan, g: Geometry, z: Blocks,
                 signed: tuple[bool, bool], caps: CpuCaps, kind: Kind = INT8) -> None:  # fmt: skip
        self.fn, self.p, self.g, self.z, self.signed, self.kind = fn, p, g, z, signed, kind
        self.kcb = z.kcp * kind.size  # bytes of a packed row of A
        self.b = b = ir.IRBuilder(fn.append_basic_block("entry"))
        buffers, self.start, self.stop = fn.args
        pointers = buffer_pointers(b, buffers, 1 + len(p.node.srcs))
        self.out, self.operands = pointers[0], pointers[1:]
        self.lhs, self.rhs = self.operands[p.lhs], self.operands[p.rhs]
        self.a_pack = self._scratch(MB * self.kcb, I8)
        self.b_pack = self._scratch(self.kcb * z.nb, I8)
        self.s = self._scratch(MB * z.nb, kind.acc)
        self.amx = None
        if kind.has_tiles(caps):
            self.amx = _amx_block(fn.module, f"{fn.name}_amx", z, signed, kind)
        # Blocks without tiles: bf16 always has VDPBF16PS (Kind.supported). VPDPBUSD needs one
        # operand unsigned and one signed, so u8 x u8 takes PMADDWD as CPUs without VNNI do.
        self.a16: ir.Value | None = None
        if kind is BF16 or (kind.has_vectors(caps) and signed != (False, False)):
            self.vector = _vnni_block(fn.module, f"{fn.name}_vnni", z, signed, kind)
        else:
            self.vector = _madd_block(fn.module, f"{fn.name}_madd", z, signed, Madd.of(caps))
            self.a16 = self._scratch(MB * z.kcp, I16)

    def _scratch(self, elements: int, ty: ir.Type) -> ir.Value:
        ptr = self.b.alloca(ty, size=I64(elements))
        ptr.align = 64
        # retyped as an opaque pointer (the printed IR is the same): llvmlite then lets
        # vectors and scalars alike be stored through it
        ptr.type = PTR
        return ptr

    def emit(self) -> None:
        """Rows are (batch, column block, M block), M blocks innermost, as in codegen/gemm.py:
        a thread's range is a few runs of M blocks, each run sharing one packed B."""
        b, z = self.b, self.z
        ready = FALSE
        if self.amx is not None:
            ready = amx_ready(b)
            configure, release = amx_setup(b.module)
            with b.if_then(ready):
                b.call(configure, [])
        tiles = I64(z.mt)
        with for_range(b, ceil_div(b, self.stop, z.mt), b.sdiv(self.start, tiles), "group") as grp:
            base = b.mul(grp, tiles)
            lo = b.sub(self.start, base)
            lo = b.select(b.icmp_signed("<", lo, I64(0)), I64(0), lo)
            hi = smin(b, b.sub(self.stop, base), tiles)
            bi, jc = b.udiv(grp, I64(z.nj)), b.urem(grp, I64(z.nj))
            self._group(ready, bi, jc, lo, hi)
        if self.amx is not None:
            with b.if_then(ready):
                b.call(release, [])
        b.ret_void()

    def _group(self, ready: ir.Value, bi: ir.Value, jc: ir.Value, lo: ir.Value,
               hi: ir.Value) -> None:  # fmt: skip
        b, z, g = self.b, self.z, self.g
        _, m, n = g.sizes
        ab, am, ak = g.a
        bb, bk, bn = g.b
        ety = self.kind.element
        lhs = PanelSource(at(b, self.lhs, ab.offset(b, bi), ety), am, ak)
        rhs = PanelSource(at(b, self.rhs, bb.offset(b, bi), ety), bn, bk)
        j0 = b.mul(jc, I64(z.nb))
        nc = smin(b, I64(z.nb), b.sub(I64(n), j0))
        with for_range(b, z.nk, name="pc") as pc:
            p0 = b.mul(pc, I64(z.kc))
            kc = smin(b, I64(z.kc), b.sub(I64(g.k), p0))
            # zeros are needed only where the block does not fill the packed panels
            with b.if_then(
                b.or_(b.icmp_signed("<", nc, I64(z.nb)), b.icmp_signed("<", kc, I64(z.kcp)))
            ):
                memset(b, self.b_pack, self.kcb * z.nb)
            self._pack_b(rhs, j0, nc, p0, kc)
            with for_range(b, hi, lo, name="mb") as mb:
                m0 = b.mul(mb, I64(MB))
                mc = smin(b, I64(MB), b.sub(I64(m), m0))
                block = (bi, m0, mc, j0, nc, pc)
                if self.amx is None:
                    self._pack_a(lhs, m0, mc, p0, kc)
                    self._vector_block(mc, nc)
                    self._write(*block)
                else:
                    self._block_or_tiles(ready, lhs, block, (p0, kc))

    def _block_or_tiles(self, ready: ir.Value, lhs: PanelSource, block: tuple[ir.Value, ...],
                        depth: tuple[ir.Value, ir.Value]) -> None:  # fmt: skip
        """One block where the kernel has tiles: on them once the OS has granted them (a
        whole block straight into C), else with vectors."""
        b, z = self.b, self.z
        _, m0, mc, _, nc, _ = block
        p0, kc = depth
        assert self.amx is not None
        full = b.and_(b.icmp_signed("==", mc, I64(MB)), b.icmp_signed("==", nc, I64(z.nb)))
        with b.if_else(b.and_(ready, full)) as (whole, edge):
            with whole:
                self._whole_block(lhs, block, p0, kc)
            with edge:
                self._pack_a(lhs, m0, mc, p0, kc)
                with b.if_else(ready) as (tiles, vectors):
                    with tiles:
                        args = [self.a_pack, I64(self.kcb), self.b_pack, self.s]
                        b.call(self.amx, [*args, I64(z.nb * 4), FALSE])
                    with vectors:
                        self._vector_block(mc, nc)
                self._write(*block)

    def _whole_block(self, lhs: PanelSource, block: tuple[ir.Value, ...], p0: ir.Value,
                     kc: ir.Value) -> None:  # fmt: skip
        """A block inside C on tiles, stored straight into C.

        A is packed even when its rows could be read in place: tile loads of rows a power of
        two apart (1 KB at K = 1024) conflict in L1, and that measured 1.5x slower."""
        b, z, g = self.b, self.z, self.g
        assert self.amx is not None
        bi, m0, mc, j0 = block[:4]
        _, m, n = g.sizes
        self._pack_a(lhs, m0, mc, p0, kc)
        a, a_stride = self.a_pack, I64(self.kcb)
        if DIRECT_C and self.p.root is None:  # later K blocks add to what earlier ones stored
            row = b.add(b.mul(b.add(b.mul(bi, I64(m)), m0), I64(n)), j0)
            c = at(b, self.out, row, self.kind.acc)
            later = b.icmp_signed("!=", block[5], I64(0))
            b.call(self.amx, [a, a_stride, self.b_pack, c, I64(n * 4), later])
        else:
            b.call(self.amx, [a, a_stride, self.b_pack, self.s, I64(z.nb * 4), FALSE])
            self._write(*block)

    def _pack_a(self, src: PanelSource, m0: ir.Value, mc: ir.Value, p0: ir.Value,
                kc: ir.Value) -> None:  # fmt: skip
        """Rows of A at KCP elements each; with K contiguous in A the copy loop vectorizes."""
        b, kcp, ety = self.b, self.z.kcp, self.kind.element
        with b.if_then(b.or_(b.icmp_signed("<", mc, I64(MB)), b.icmp_signed("<", kc, I64(kcp)))):
            memset(b, self.a_pack, MB * self.kcb)  # zero rows and columns past the operand
        with for_range(b, mc, name="ar") as r:
            row = at(b, src.ptr, src.rows.offset(b, b.add(m0, r)), ety)
            dst = at(b, self.a_pack, b.mul(r, I64(kcp)), ety)
            with for_range(b, kc, name="ak") as k:
                value = b.load(at(b, row, src.depth.offset(b, b.add(p0, k)), ety), typ=ety)
                b.store(value, at(b, dst, k, ety))

    def _pack_b(self, src: PanelSource, j0: ir.Value, nc: ir.Value, p0: ir.Value,
                kc: ir.Value) -> None:  # fmt: skip
        """16-column panels, each KCP / per rows of (16 columns x `per` consecutive k): 4 k
        of int8 or 2 of bf16, 64 bytes a row either way."""
        b, kcp, ety, per = self.b, self.z.kcp, self.kind.element, self.kind.per
        whole, fours = I64(0), I64(0)  # whole panels and rows of `per` k the vector loop packs
        if isinstance(src.rows, Axis) and src.rows.unit:
            whole, fours = b.sdiv(nc, I64(PANEL)), b.sdiv(kc, I64(per))
            self._pack_b_vector(src, j0, whole, p0, fours)
        # the rest element by element: a partial panel, K's last k % 4, or strided columns
        with for_range(b, ceil_div(b, nc, PANEL), name="bp") as p:
            first = b.add(j0, b.mul(p, I64(PANEL)))
            valid = smin(b, I64(PANEL), b.sub(nc, b.mul(p, I64(PANEL))))
            panel = at(b, self.b_pack, b.mul(p, I64(kcp * PANEL)), ety)
            done = b.select(b.icmp_signed("<", p, whole), b.mul(fours, I64(per)), I64(0))
            with for_range(b, kc, done, name="bk") as k:
                depth = src.depth.offset(b, b.add(p0, k))
                line = b.mul(b.udiv(k, I64(per)), I64(PANEL * per))
                dst = at(b, panel, b.add(line, b.urem(k, I64(per))), ety)
                with for_range(b, valid, name="bn") as c:
                    offset = b.add(src.rows.offset(b, b.add(first, c)), depth)
                    value = b.load(at(b, src.ptr, offset, ety), typ=ety)
                    b.store(value, at(b, dst, b.mul(c, I64(per)), ety))

    def _pack_b_vector(self, src: PanelSource, j0: ir.Value, panels: ir.Value, p0: ir.Value,
                       count: ir.Value) -> None:  # fmt: skip
        """Whole 16-column panels with columns contiguous: `per` rows of 16 elements
        interleave into one 64-byte row of a panel, with shuffles. Along B's rows in the inner
        loop: panel by panel, each line of B was fetched four times at K = 2048 (3x slower)."""
        b, kcp, ety, per = self.b, self.z.kcp, self.kind.element, self.kind.per
        v16, v64 = ir.VectorType(ety, 16), ir.VectorType(ety, 16 * per)
        i32 = ir.IntType(32)

        def mask(values: list[int]) -> ir.Constant:
            return ir.Constant(ir.VectorType(i32, len(values)), values)

        column = src.rows.offset(b, j0)
        with for_range(b, count, name="bv") as k4:
            starts = []
            for j in range(per):
                depth = src.depth.offset(b, b.add(p0, b.add(b.mul(k4, I64(per)), I64(j))))
                starts.append(at(b, src.ptr, b.add(column, depth), ety))
            with for_range(b, panels, name="bw") as p:
                rows = []
                for j in range(per):
                    load = b.load(at(b, starts[j], b.mul(p, I64(PANEL)), ety), typ=v16)
                    load.align = 1
                    rows.append(load)
                if per == 4:  # shuffles take two operands: the four rows as two pairs
                    rows = [
                        b.shuffle_vector(rows[i], rows[i + 1], mask(list(range(32))))
                        for i in (0, 2)
                    ]
                # lane per * c + j of the result is column c of row j
                order = [j * 16 + c for c in range(16) for j in range(per)]
                packed = b.shuffle_vector(rows[0], rows[1], mask(order))
                assert packed.type == v64
                panel = at(b, self.b_pack, b.mul(p, I64(kcp * PANEL)), ety)
                b.store(packed, at(b, panel, k4, v64)).align = 64

    def _vector_block(self, mc: ir.Value, nc: ir.Value) -> None:
        """The block into S from the packed operands without tiles; PMADDWD computes only the
        passes that hold some of its `mc` rows and `nc` columns."""
        args = [self.a_pack, self.b_pack, self.s]
        self.b.call(self.vector, args if self.a16 is None else [*args, self.a16, mc, nc])

    def _write(self, bi: ir.Value, m0: ir.Value, mc: ir.Value, j0: ir.Value, nc: ir.Value,
               pc: ir.Value) -> None:  # fmt: skip
        """The valid part of S into C: stored by the first K block, added by later ones; or
        through the epilogue (K is then one block)."""
        b, z = self.b, self.z
        _, m, n = self.g.sizes
        if self.p.root is not None:
            with for_range(b, mc, name="er") as r:
                src = at(b, self.s, b.mul(r, I64(z.nb)), self.kind.acc)
                with for_range(b, nc, name="ec") as c:
                    x = b.load(at(b, src, c, self.kind.acc), typ=self.kind.acc)
                    where = (bi, b.add(m0, r), b.add(j0, c))
                    store_epilogue(b, self.p, self.g, self.operands, self.out, x, where)
            return
        later = b.icmp_signed("!=", pc, I64(0))
        with for_range(b, mc, name="wr") as r:
            row = b.add(b.mul(b.add(b.mul(bi, I64(m)), b.add(m0, r)), I64(n)), j0)
            acc = self.kind.acc
            dst = at(b, self.out, row, acc)
            src = at(b, self.s, b.mul(r, I64(z.nb)), acc)
            with for_range(b, nc, name="wc") as c:
                value = b.load(at(b, src, c, acc), typ=acc)
                ptr = at(b, dst, c, acc)
                if z.nk > 1:
                    old = b.load(ptr, typ=acc)
                    total = b.fadd(old, value) if self.kind is BF16 else b.add(old, value)
                    value = b.select(later, total, value)
                b.store(value, ptr)
