"""int8 conv2d with int32 accumulation on the integer dot-product units: AMX tiles, AVX-512
VNNI, or PMADDWD on any x86-64 (codegen/gemm_int8.py's three ways, chosen by the caps).

It takes a conv2d whose operands are i8 or u8 and whose out_dtype is i32, any padding, strides,
dilation and groups. Nothing like im2col is built: it is an implicit GEMM per output row,
M = output pixels of the row, N = output channels of a group, K = (kh, kw, cin) walked tap by
tap, because with NHWC input the cin bytes of one tap for consecutive output pixels sit a fixed
stride apart (`strides[1]` pixels) and can be read in place.

Per kernel call the filter is packed once (W below); per output row the kh input rows that row
reads are copied into X with the padding written out, so the inner loops never test bounds:

    X[i][col][g][cp]   bytes, col = output column * sw + j * dw; cp = cin per group rounded up
                       to 64 (tiles) or 4 (otherwise), the extra channels 0 (their weights are 0)
    W[g][panel][i][j][cp / 4][16][4]   16 output channels x 4 consecutive input channels per
                       64-byte line (the layout VPDPBUSD and TDPB*D read), zero past the group

The copy is kh times the input row, against kh * kw * cout multiply-adds per input byte.

Paths: tiles where the caps have AMX-INT8 and the OS grants the AMX state when the kernel runs
(a 32-pixel x 32-channel block on four accumulator tiles, A read from X with a row stride of
sw pixels, B from W); else VPDPBUSD where the caps have AVX-512 VNNI (6 pixels x 64 channels in
24 zmm accumulators); else PMADDWD (gemm_int8.Madd: 4 pixels x 8 channels per pass with AVX2,
X widened to i16 once per row, W as it is loaded). VPDPBUSD multiplies an unsigned by a signed
byte, so when input and filter have the same signedness and VNNI is the path the tiles fall
back to, the input is shifted by 128 into the other one (its sign bit flipped) while it is
copied into X, padding included, which adds +-128 times the filter's per-channel sum to every
result: computed when the filter is packed, and subtracted. PMADDWD widens both operands in
their own signedness and needs no shift. All sums wrap modulo 2^32, as the reference's exact
sum does once wrapped, so every path is bit-identical to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite import ir

from codegen import gemm_int8
from codegen.cpu_caps import CpuCaps
from codegen.gemm_int8 import I16, Madd
from codegen.gemm_micro import at, smin
from codegen.loops import for_range, loop_nest
from codegen.types import I8, I32, I64, PTR, buffer_pointers
from codegen.x86 import amx_ready, amx_setup, memset, tile_function, void_intrinsic
from ir.dtypes import DType
from ir.graph import Node
from ir.ops import Op

KERNEL_TYPE = ir.FunctionType(ir.VoidType(), [PTR, I64, I64])  # codegen/kernel.py's ABI
OPERANDS = frozenset({DType.I8, DType.U8})
LANES = 16  # int32 lanes of a zmm register and columns of an accumulator tile
VNNI_PIXELS = 6  # output pixels per VNNI block ...
VNNI_PANELS = 4  # ... times 16-channel panels: 24 accumulators + 4 filter vectors of 32 zmm
TILE_PIXELS = 32  # two 16-row A tiles
STACK_LIMIT = 3 << 20  # bytes of scratch per call; larger convolutions keep the generic loop
# The executor shares a kernel among threads at 32768 units of work; a unit here is this many
# multiply-adds at tile speed, so a convolution on tiles is split from about 256M of them, as
# the int8 GEMM is: the 3x3 64 -> 64 convolution of a 56 x 56 image (115M) measured 1.4x
# slower on two threads than on one (waking the pool, and each thread packs W again). The
# slower paths split sooner (gemm_int8.parallel_unit): with PMADDWD that convolution took
# 0.6x the time on two threads.
MACS_PER_UNIT = 8192
VEC = ir.VectorType(I32, LANES)
VEC_BYTES = ir.VectorType(I8, 64)
FLIP = 0x80


@dataclass(frozen=True)
class Shape:
    """Everything static about one convolution, in the names of the module docstring."""

    n: int
    h: int
    w: int
    kh: int
    kw: int
    cin: int  # per group
    groups: int
    pg: int  # output channels per group
    oh: int
    ow: int
    pt: int
    pl: int
    sh: int
    sw: int
    dh: int
    dw: int
    x_signed: bool
    w_signed: bool
    tiles: bool  # whether the tile code is compiled (W and X are then laid out for it)
    vnni: bool  # whether the path without tiles is VPDPBUSD (else PMADDWD)
    madd_pixels: int  # output pixels per PMADDWD pass

    @property
    def cout(self) -> int:
        return self.groups * self.pg

    @property
    def cp(self) -> int:
        return -(-self.cin // 64) * 64 if self.tiles else -(-self.cin // 4) * 4

    @property
    def quads(self) -> int:
        return self.cp // 4

    @property
    def panels(self) -> int:  # of W per group; even with tiles, which take two at a time
        p = -(-self.pg // LANES)
        return -(-p // 2) * 2 if self.tiles else p

    @property
    def cols(self) -> int:
        """Columns of X: enough for every pixel of the last (partial) block of either path."""
        pixels = VNNI_PIXELS if self.vnni else self.madd_pixels
        blocks = -(-self.ow // pixels) * pixels
        if self.tiles:
            blocks = max(blocks, -(-self.ow // TILE_PIXELS) * TILE_PIXELS)
        return (blocks - 1) * self.sw + (self.kw - 1) * self.dw + 1

    @property
    def pixel_bytes(self) -> int:
        return self.groups * self.cp

    @property
    def x_row_bytes(self) -> int:
        return self.cols * self.pixel_bytes

    @property
    def tap_bytes(self) -> int:  # one tap of one panel in W
        return self.quads * 64

    @property
    def panel_bytes(self) -> int:
        return self.kh * self.kw * self.tap_bytes

    @property
    def w_bytes(self) -> int:
        return self.groups * self.panels * self.panel_bytes

    @property
    def flip(self) -> bool:
        """Whether the path without tiles shifts the input by 128: VPDPBUSD needs one operand
        of each signedness, and the filter's is kept."""
        return self.vnni and self.x_signed == self.w_signed

    def scratch_bytes(self) -> int:
        corr = self.groups * self.panels * LANES * 4
        tile_out = TILE_PIXELS * 2 * LANES * 4
        x16 = 0 if self.vnni else 2 * self.kh * self.x_row_bytes  # X widened for PMADDWD
        return self.kh * self.x_row_bytes + self.w_bytes + corr + tile_out + x16

    @staticmethod
    def of(node: Node, caps: CpuCaps) -> Shape:
        x, w = node.srcs
        a = node.attrs
        (pt, _), (pl, _) = a["padding"]
        n, h, wd, _ = x.shape
        kh, kw, cin, cout = w.shape
        g = a["groups"]
        _, oh, ow, _ = node.shape
        pg = cout // g
        tiles = caps.amx_int8 and tiles_pay(cin, pg)
        (sh, sw), (dh, dw) = a["strides"], a["dilation"]
        return Shape(n, h, wd, kh, kw, cin, g, pg, oh, ow, pt, pl, sh, sw, dh, dw,
                     x.dtype == DType.I8, w.dtype == DType.I8, tiles, caps.vnni,
                     Madd.of(caps).rows)  # fmt: skip


def tiles_pay(cin: int, pg: int) -> bool:
    """Whether the tiles' 64-byte K steps and pairs of 16-channel panels are mostly full: they
    are padded with zeros, which cost as much as real products."""
    padded = -(-cin // 64) * 64 * -(-pg // 32) * 32
    return 2 * padded <= 3 * cin * pg


def applicable(node: Node, caps: CpuCaps) -> bool:
    """An i8/u8 conv2d into i32 with a non-empty sum whose scratch fits the stack budget (on
    any x86-64: PMADDWD is the least path)."""
    if node.op is not Op.CONV2D or node.dtype != DType.I32:
        return False
    if any(s.dtype not in OPERANDS for s in node.srcs) or node.type.size == 0:
        return False
    if math.prod(node.srcs[1].shape[:3]) == 0:
        return False  # no input channels: the generic loop writes the zeros
    return Shape.of(node, caps).scratch_bytes() <= STACK_LIMIT


def build(module: ir.Module, node: Node, name: str, caps: CpuCaps) -> tuple[int, int]:
    """Emit the kernel `name` for `node`; returns (rows, work per row) for the executor."""
    llvm.initialize_native_asmparser()  # for the inline `syscall` of amx_ready
    s = Shape.of(node, caps)
    _Kernel(module, s, name, caps).emit()
    macs = s.ow * s.cout * s.kh * s.kw * s.cin
    return s.n * s.oh, max(1, macs // gemm_int8.parallel_unit(MACS_PER_UNIT, s.tiles, s.vnni))


def _splat(b: ir.IRBuilder, word: ir.Value) -> ir.Value:
    one = b.insert_element(ir.Constant(VEC, ir.Undefined), word, I32(0))
    return b.shuffle_vector(one, ir.Constant(VEC, ir.Undefined), ir.Constant(VEC, [0] * LANES))


class _Kernel:
    def __init__(self, module: ir.Module, s: Shape, name: str, caps: CpuCaps) -> None:
        self.module, self.s, self.name, self.caps = module, s, name, caps

    # --- the entry: packing and the choice of path ---------------------------------------

    def emit(self) -> None:
        s = self.s
        fn = ir.Function(self.module, KERNEL_TYPE, self.name)
        fn.args[0].name, fn.args[1].name, fn.args[2].name = "buffers", "start", "stop"
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        buffers, start, stop = fn.args
        out, x, w = buffer_pointers(b, buffers, 3)
        xs = self._scratch(b, s.kh * s.x_row_bytes)
        ws = self._scratch(b, s.w_bytes)
        corr = self._scratch(b, s.groups * s.panels * LANES * 4)
        tile_out = self._scratch(b, TILE_PIXELS * 2 * LANES * 4)
        ready = amx_ready(b) if s.tiles else ir.IntType(1)(0)
        vectors = self._vnni_row() if s.vnni else self._madd_row()
        tiles = self._tile_row() if s.tiles else None
        # VPDPBUSD reads the input shifted by 128 when the signedness asks for it
        flip = b.select(ready, I8(0), I8(FLIP)) if s.flip else I8(0)
        self._pack_w(b, w, ws, corr, ready)
        if tiles is not None:
            configure, release = amx_setup(self.module)
            with b.if_then(ready):
                b.call(configure, [])
        with for_range(b, stop, start, name="row") as row:
            batch, oh = b.udiv(row, I64(s.oh)), b.urem(row, I64(s.oh))
            self._pack_x(b, x, xs, batch, oh, flip)
            out_row = at(b, out, b.mul(row, I64(s.ow * s.cout)), I32)
            if tiles is None:
                b.call(vectors, [xs, ws, corr, out_row])
            else:
                with b.if_else(ready) as (on_tiles, other):
                    with on_tiles:
                        b.call(tiles, [xs, ws, tile_out, out_row])
                    with other:
                        b.call(vectors, [xs, ws, corr, out_row])
        if tiles is not None:
            with b.if_then(ready):
                b.call(release, [])
        b.ret_void()

    @staticmethod
    def _scratch(b: ir.IRBuilder, size: int) -> ir.Value:
        with b.goto_entry_block():
            ptr = b.alloca(I8, size=I64(max(size, 64)))
        ptr.align = 64
        # retyped as an opaque pointer (the printed IR is the same), so that llvmlite lets
        # scalars and vectors of any type be stored through it, as in codegen/gemm_int8.py
        ptr.type = PTR
        return ptr

    def _pack_w(self, b: ir.IRBuilder, w: ir.Value, ws: ir.Value, corr: ir.Value,
                ready: ir.Value) -> None:  # fmt: skip
        """W from the HWIO filter, walked in its own order so the reads stream; and for the
        VNNI path corr = +-128 x each output channel's filter sum (the sign: a signed filter
        meets input + 128, an unsigned one input - 128); zeros where nothing is shifted."""
        s = self.s
        memset(b, ws, s.w_bytes)
        with loop_nest(b, (s.kh * s.kw, s.cin, s.groups), name="w") as (tap, c, g):
            src = at(b, w, b.add(b.mul(b.add(b.mul(tap, I64(s.cin)), c), I64(s.cout)),
                                 b.mul(g, I64(s.pg))), I8)  # fmt: skip
            quad = b.add(b.mul(b.udiv(c, I64(4)), I64(64)), b.urem(c, I64(4)))
            dst = at(b, ws, b.add(b.mul(tap, I64(s.tap_bytes)), quad), I8)
            dst = at(b, dst, b.mul(g, I64(s.panels * s.panel_bytes)), I8)
            with for_range(b, s.pg, name="wo") as o:
                panel, lane = b.udiv(o, I64(LANES)), b.urem(o, I64(LANES))
                offset = b.add(b.mul(panel, I64(s.panel_bytes)), b.mul(lane, I64(4)))
                b.store(b.load(at(b, src, o, I8), typ=I8), at(b, dst, offset, I8))
        memset(b, corr, s.groups * s.panels * LANES * 4)
        if not s.flip:
            return
        ext = b.sext if s.w_signed else b.zext
        scale = I32(128 if s.w_signed else -128)
        extent = (s.kh * s.kw * s.cin, s.groups, s.pg)
        with b.if_then(b.not_(ready)), loop_nest(b, extent, name="ws") as (k, g, o):
            channel = b.add(b.mul(g, I64(s.pg)), o)  # the tiles need no shift
            value = b.load(at(b, w, b.add(b.mul(k, I64(s.cout)), channel), I8), typ=I8)
            slot = at(b, corr, b.add(b.mul(g, I64(s.panels * LANES)), o), I32)
            b.store(b.add(b.load(slot, typ=I32), b.mul(ext(value, I32), scale)), slot)

    def _pack_x(self, b: ir.IRBuilder, x: ir.Value, xs: ir.Value, batch: ir.Value,
                oh: ir.Value, flip: ir.Value) -> None:  # fmt: skip
        """The kh input rows of output row (batch, oh) into X, padding and extra channels as
        the value 0 (which is `flip` once shifted)."""
        s = self.s
        with for_range(b, s.kh, name="xi") as i:
            h = b.add(b.sub(b.mul(oh, I64(s.sh)), I64(s.pt)), b.mul(i, I64(s.dh)))
            h_in = b.and_(b.icmp_signed(">=", h, I64(0)), b.icmp_signed("<", h, I64(s.h)))
            dst_row = at(b, xs, b.mul(i, I64(s.x_row_bytes)), I8)
            src_row = b.mul(b.add(b.mul(batch, I64(s.h)), h), I64(s.w * s.groups * s.cin))
            with for_range(b, s.cols, name="xc") as col:
                v = b.sub(col, I64(s.pl))
                inside = b.and_(h_in, b.and_(b.icmp_signed(">=", v, I64(0)),
                                             b.icmp_signed("<", v, I64(s.w))))  # fmt: skip
                dst = at(b, dst_row, b.mul(col, I64(s.pixel_bytes)), I8)
                with b.if_else(inside) as (real, pad):
                    with real:
                        src = at(b, x, b.add(src_row, b.mul(v, I64(s.groups * s.cin))), I8)
                        with for_range(b, s.groups, name="xg") as g:
                            src_g = at(b, src, b.mul(g, I64(s.cin)), I8)
                            dst_g = at(b, dst, b.mul(g, I64(s.cp)), I8)
                            with for_range(b, s.cin, name="xk") as c:
                                value = b.load(at(b, src_g, c, I8), typ=I8)
                                b.store(b.xor(value, flip), at(b, dst_g, c, I8))
                            with for_range(b, s.cp, s.cin, name="xz") as c:
                                b.store(flip, at(b, dst_g, c, I8))
                    with pad, for_range(b, s.pixel_bytes, name="xp") as c:
                        b.store(flip, at(b, dst, c, I8))

    # --- one output row, per path: void f(ptr X, ptr W, ptr corr | S, ptr out_row) ----------

    def _row_function(self, suffix: str) -> tuple[ir.Function, ir.IRBuilder]:
        fty = ir.FunctionType(ir.VoidType(), [PTR] * 4)
        fn = ir.Function(self.module, fty, f"{self.name}_{suffix}")
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    def _x_word(self, b: ir.IRBuilder, xs: ir.Value, g: ir.Value, pixel: ir.Value,
                tap: tuple[ir.Value, ir.Value], quad: ir.Value) -> ir.Value:  # fmt: skip
        """Pointer to the 4 input bytes of quad `quad` that output pixel `pixel` reads at tap
        (i, j) in group g."""
        return at(b, xs, self._x_index(b, g, pixel, tap, quad), I8)

    def _x_index(self, b: ir.IRBuilder, g: ir.Value, pixel: ir.Value,
                 tap: tuple[ir.Value, ir.Value], quad: ir.Value) -> ir.Value:  # fmt: skip
        """Where in X (elements from its start) `_x_word` points."""
        s = self.s
        i, j = tap
        col = b.add(b.mul(pixel, I64(s.sw)), b.mul(j, I64(s.dw)))
        offset = b.add(b.mul(i, I64(s.x_row_bytes)), b.mul(col, I64(s.pixel_bytes)))
        return b.add(offset, b.add(b.mul(g, I64(s.cp)), b.mul(quad, I64(4))))

    def _w_line(self, b: ir.IRBuilder, ws: ir.Value, g: ir.Value, panel: ir.Value,
                tap: tuple[ir.Value, ir.Value], quad: ir.Value) -> ir.Value:  # fmt: skip
        s = self.s
        i, j = tap
        p = b.add(b.mul(g, I64(s.panels)), panel)
        t = b.add(b.mul(i, I64(s.kw)), j)
        offset = b.add(b.mul(p, I64(s.panel_bytes)), b.mul(t, I64(s.tap_bytes)))
        return at(b, ws, b.add(offset, b.mul(quad, I64(64))), I8)

    def _vnni_row(self) -> ir.Function:
        s = self.s
        fn, b = self._row_function("vnni")
        xs, ws, corr, out_row = fn.args
        dot = self.module.declare_intrinsic(
            "llvm.x86.avx512.vpdpbusd.512", (), ir.FunctionType(VEC, [VEC, VEC, VEC])
        )
        acc = b.alloca(VEC, size=I64(VNNI_PIXELS * VNNI_PANELS))  # registers once promoted
        acc.align = 64
        full_blocks, rest = divmod(-(-s.pg // LANES), VNNI_PANELS)

        def block(g: ir.Value, p0: ir.Value, count: int) -> None:
            """Output pixels in blocks of VNNI_PIXELS x `count` panels from p0."""
            with for_range(b, -(-s.ow // VNNI_PIXELS), name="vb") as ob:
                px0 = b.mul(ob, I64(VNNI_PIXELS))
                slots = [[b.gep(acc, [I64(r * VNNI_PANELS + p)], source_etype=VEC)
                          for p in range(count)] for r in range(VNNI_PIXELS)]  # fmt: skip
                zero = ir.Constant(VEC, [0] * LANES)
                for row in slots:
                    for slot in row:
                        b.store(zero, slot)
                with loop_nest(b, (s.kh, s.kw, s.quads), name="v") as (i, j, q):
                    lines = []
                    for p in range(count):
                        ptr = self._w_line(b, ws, g, b.add(p0, I64(p)), (i, j), q)
                        lines.append(b.bitcast(b.load(ptr, typ=VEC_BYTES), VEC))
                    for r in range(VNNI_PIXELS):
                        ptr = self._x_word(b, xs, g, b.add(px0, I64(r)), (i, j), q)
                        word = _splat(b, b.load(ptr, typ=I32))
                        for p in range(count):
                            # VPDPBUSD: first operand unsigned bytes, second signed
                            u, v = (word, lines[p]) if s.w_signed else (lines[p], word)
                            total = b.call(dot, [b.load(slots[r][p], typ=VEC), u, v])
                            b.store(total, slots[r][p])
                for r in range(VNNI_PIXELS):
                    pixel = b.add(px0, I64(r))
                    with b.if_then(b.icmp_signed("<", pixel, I64(s.ow))):
                        for p in range(count):
                            value = b.load(slots[r][p], typ=VEC)
                            self._vnni_store(b, (corr, out_row), g, b.add(p0, I64(p)), pixel, value)

        with for_range(b, s.groups, name="vg") as g:
            if full_blocks:
                with for_range(b, full_blocks, name="vpb") as pb:
                    block(g, b.mul(pb, I64(VNNI_PANELS)), VNNI_PANELS)
            if rest:
                block(g, I64(full_blocks * VNNI_PANELS), rest)
        b.ret_void()
        return fn

    def _vnni_store(self, b: ir.IRBuilder, to: tuple[ir.Value, ir.Value], g: ir.Value,
                    panel: ir.Value, pixel: ir.Value, value: ir.Value) -> None:  # fmt: skip
        """One accumulator, corrected, into the output row; lane by lane in a group's last,
        partial panel, so that nothing is stored past the group's channels."""
        s = self.s
        corr, out_row = to
        last_panel = -(-s.pg // LANES) - 1
        last_lanes = s.pg - last_panel * LANES
        index = b.add(b.mul(g, I64(s.panels * LANES)), b.mul(panel, I64(LANES)))
        sums = b.load(at(b, corr, index, I32), typ=VEC)
        sums.align = 4
        value = b.sub(value, sums)
        channel = b.add(b.mul(g, I64(s.pg)), b.mul(panel, I64(LANES)))
        dst = at(b, out_row, b.add(b.mul(pixel, I64(s.cout)), channel), I32)
        if last_lanes == LANES:
            b.store(value, dst).align = 4
            return
        with b.if_else(b.icmp_signed("==", panel, I64(last_panel))) as (part, whole):
            with part:
                for k in range(last_lanes):
                    b.store(b.extract_element(value, I32(k)), at(b, dst, I64(k), I32))
            with whole:
                b.store(value, dst).align = 4

    def _madd_row(self) -> ir.Function:
        """PMADDWD, `madd_pixels` output pixels x `columns` channels per pass (gemm_int8.Madd):
        the kh rows of X are widened to i16 first, so that a pixel's 4 channels of a tap are
        one 64-bit broadcast; lines of W are widened as they are loaded."""
        s = self.s
        shape = Madd.of(self.caps)
        assert not s.flip, "PMADDWD reads X unshifted"
        assert shape.rows == s.madd_pixels
        fn, b = self._row_function("madd")
        xs, ws, _, out_row = fn.args
        x16 = b.alloca(I16, size=I64(s.kh * s.x_row_bytes))
        x16.align = 64
        acc = shape.accumulators(b)
        ext = b.sext if s.x_signed else b.zext
        with for_range(b, s.kh * s.x_row_bytes, name="mx") as i:
            b.store(ext(b.load(at(b, xs, i, I8), typ=I8), I16), at(b, x16, i, I16))
        per_panel = LANES // shape.columns
        strips = -(-s.pg // shape.columns)  # none wholly past the group's channels
        with (
            for_range(b, s.groups, name="mg") as g,
            for_range(b, strips, name="ms") as strip,
            for_range(b, -(-s.ow // shape.rows), name="mb") as pb,
        ):
            px0 = b.mul(pb, I64(shape.rows))
            panel = b.udiv(strip, I64(per_panel))
            within = b.mul(b.urem(strip, I64(per_panel)), I64(shape.columns * 4))
            shape.zero(b, acc)
            with loop_nest(b, (s.kh, s.kw, s.quads), name="mt") as (i, j, q):
                line = at(b, self._w_line(b, ws, g, panel, (i, j), q), within, I8)
                quads = [
                    at(b, x16, self._x_index(b, g, b.add(px0, I64(r)), (i, j), q), I16)
                    for r in range(shape.rows)
                ]
                shape.step(b, acc, line, quads, s.w_signed)
            for r, row in enumerate(acc):
                pixel = b.add(px0, I64(r))
                with b.if_then(b.icmp_signed("<", pixel, I64(s.ow))):
                    first = b.add(b.mul(g, I64(s.pg)), b.mul(strip, I64(shape.columns)))
                    dst = at(b, out_row, b.add(b.mul(pixel, I64(s.cout)), first), I32)
                    for v, total in enumerate(shape.sums(b, row)):
                        self._madd_store(b, (strip, strips - 1), v * shape.lanes, total, dst)
        b.ret_void()
        return fn

    def _madd_store(self, b: ir.IRBuilder, strip: tuple[ir.Value, int], offset: int,
                    total: ir.Value, dst: ir.Value) -> None:  # fmt: skip
        """`total`, the channels from `offset` of a strip, into the output row at `dst`; lane
        by lane in the group's last strip where the group ends inside it."""
        s = self.s
        index, last = strip
        lanes = total.type.count
        columns = Madd.of(self.caps).columns
        valid = min(max(s.pg - last * columns - offset, 0), lanes)  # in the last strip
        where = at(b, dst, I64(offset), I32)
        if valid == lanes:
            b.store(total, where).align = 4
            return
        with b.if_else(b.icmp_signed("==", index, I64(last))) as (part, whole):
            with part:
                for k in range(valid):
                    b.store(b.extract_element(total, I32(k)), at(b, where, I64(k), I32))
            with whole:
                b.store(total, where).align = 4

    def _tile_row(self) -> ir.Function:
        """32 pixels x 32 channels per block: tiles 0-3 accumulate, 4-5 hold the two 16-pixel
        halves of A (read from X, rows sw pixels apart), 6-7 two panels of W. A block inside
        the output row is stored into it from the tiles; with 32 pixels or more a row's last
        block is moved back to end at its edge (recomputing a few pixels) so that it is one.
        Other blocks go through S (32 x 32 int32), of which only the valid part is stored."""
        s = self.s
        fn = tile_function(self.module, f"{self.name}_tiles", [PTR] * 4)
        xs, ws, tile_s, out_row = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        load = void_intrinsic(self.module, "llvm.x86.tileloadd64", [I8, PTR, I64])
        store = void_intrinsic(self.module, "llvm.x86.tilestored64", [I8, PTR, I64])
        zero = void_intrinsic(self.module, "llvm.x86.tilezero", [I8])
        kind = gemm_int8.DOT_INSTRUCTION[(s.x_signed, s.w_signed)]
        dot = void_intrinsic(self.module, f"llvm.x86.tdpb{kind}d", [I8, I8, I8])
        a_stride = I64(s.sw * s.pixel_bytes)
        s_stride = 2 * LANES * 4
        with for_range(b, s.groups, name="tg") as g, for_range(b, s.panels // 2, name="tp") as pp:
            p0 = b.mul(pp, I64(2))
            with for_range(b, -(-s.ow // TILE_PIXELS), name="tb") as mb:
                px0 = b.mul(mb, I64(TILE_PIXELS))
                if s.ow >= TILE_PIXELS:  # a last partial block overlaps the one before instead
                    px0 = smin(b, px0, I64(s.ow - TILE_PIXELS))
                for t in range(4):
                    b.call(zero, [I8(t)])
                with loop_nest(b, (s.kh, s.kw, s.cp // 64), name="t") as (i, j, kc):
                    quad = b.mul(kc, I64(16))
                    a0 = self._x_word(b, xs, g, px0, (i, j), quad)
                    a1 = self._x_word(b, xs, g, b.add(px0, I64(16)), (i, j), quad)
                    b0 = self._w_line(b, ws, g, p0, (i, j), quad)
                    b1 = at(b, b0, I64(s.panel_bytes), I8)
                    # Tiles are not renamed: a load waits for the last product reading its
                    # tile. Each comes right after that product, overlapping those queued.
                    b.call(load, [I8(4), a0, a_stride])
                    b.call(load, [I8(6), b0, I64(64)])
                    b.call(dot, [I8(0), I8(4), I8(6)])
                    b.call(load, [I8(7), b1, I64(64)])
                    b.call(dot, [I8(1), I8(4), I8(7)])
                    b.call(load, [I8(5), a1, a_stride])
                    b.call(dot, [I8(2), I8(5), I8(6)])
                    b.call(dot, [I8(3), I8(5), I8(7)])
                first = b.mul(p0, I64(LANES))
                channel = b.add(b.mul(g, I64(s.pg)), first)
                whole = b.icmp_signed("<=", b.add(first, I64(2 * LANES)), I64(s.pg))
                if s.ow < TILE_PIXELS:
                    whole = ir.IntType(1)(0)
                with b.if_else(whole) as (direct, edge):
                    with direct:  # straight into the output, rows cout channels apart
                        for t in range(4):
                            pixel = b.add(px0, I64((t // 2) * 16))
                            offset = b.add(b.mul(pixel, I64(s.cout)), channel)
                            offset = b.add(offset, I64((t % 2) * LANES))
                            dst = at(b, out_row, offset, I32)
                            b.call(store, [I8(t), dst, I64(s.cout * 4)])
                    with edge:
                        for t in range(4):
                            offset = (t // 2) * 16 * s_stride + (t % 2) * LANES * 4
                            b.call(store, [I8(t), at(b, tile_s, I64(offset), I8), I64(s_stride)])
                        self._copy_valid(b, tile_s, out_row, px0, channel, first)
        b.ret_void()
        return fn

    def _copy_valid(self, b: ir.IRBuilder, tile_s: ir.Value, out_row: ir.Value, px0: ir.Value,
                    channel: ir.Value, first: ir.Value) -> None:  # fmt: skip
        """The part of a 32 x 32 block in S that lies inside the output row."""
        s = self.s
        rows = smin(b, I64(TILE_PIXELS), b.sub(I64(s.ow), px0))
        cols = smin(b, I64(2 * LANES), b.sub(I64(s.pg), first))
        with for_range(b, rows, name="tr") as r:
            src = at(b, tile_s, b.mul(r, I64(2 * LANES)), I32)
            dst = at(b, out_row, b.add(b.mul(b.add(px0, r), I64(s.cout)), channel), I32)
            with for_range(b, cols, name="tc") as c:
                b.store(b.load(at(b, src, c, I32), typ=I32), at(b, dst, c, I32))
