"""Float conv2d (NHWC x HWIO, one group) on the GEMM's register tile.

For one output row (batch, oh), the convolution is a GEMM with the row's pixels as M, the
output channels as N and (tap, input channel) as K: pixel p's row of A for tap (i, j) is the
input pixel it sees, `cin` contiguous channels, so the GEMM microkernel (codegen/gemm_micro.py)
reads it in place, one tap at a time, adding to the same accumulators. A tap that falls in the
padding reads a row of zeros instead. The filter is packed once per call into the microkernel's
NR-wide panels (k-major, zero-padded past `cout`).

Loop nest, a "row" of the executor being (batch, oh):

    for each row:  for each tile of MR pixels, for each NR-panel of output channels:
        for each tap (i, j):  acc += x[pixels at tap] (MR x cin) @ W[i, j] panel (cin x NR)
        store the tile's pixels and channels that lie inside the output

The register tile is the GEMM's for the caps (6 x 16 floats on AVX2, 6 x 64 on AVX-512). Sums
are in an order of the kernel's choosing, as the GEMM's, and an f32 sum that is not finite is
recomputed in f64 as it is stored (exact range, codegen/emit.py); grouped convolutions and other
dtypes keep codegen/conv.py's loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from codegen.cpu_caps import CpuCaps
from codegen.emit import exact_sum, operand_buffers
from codegen.gemm import base_tiling
from codegen.gemm_micro import Tiling, at, microkernel, smin
from codegen.loops import for_range
from codegen.types import I64, PTR, STORAGE, buffer_pointers
from ir.dtypes import DType
from ir.graph import Node
from ir.ops import Op

KERNEL_TYPE = ir.FunctionType(ir.VoidType(), [PTR, I64, I64])  # codegen/kernel.py's ABI
STACK_LIMIT = 2 << 20  # bytes of packed filter per call; larger filters keep the loop kernel
MACS_PER_UNIT = 1024  # work units as the GEMM counts them


@dataclass(frozen=True)
class Shape:
    n: int
    h: int
    w: int
    cin: int
    kh: int
    kw: int
    cout: int
    oh: int
    ow: int
    pads: tuple[int, int]  # top, left
    strides: tuple[int, int]
    dilation: tuple[int, int]

    @staticmethod
    def of(node: Node) -> Shape:
        x, w = node.srcs
        a = node.attrs
        (pt, _), (pl, _) = a["padding"]
        n, h, wd, cin = x.shape
        kh, kw, _, cout = w.shape
        _, oh, ow, _ = node.shape
        return Shape(n, h, wd, cin, kh, kw, cout, oh, ow, (pt, pl), a["strides"], a["dilation"])


def applicable(node: Node, caps: CpuCaps) -> bool:
    """An f32/f64 conv2d with one group, a non-empty sum and a filter that packs on the stack."""
    if node.op is not Op.CONV2D or node.dtype not in (DType.F32, DType.F64):
        return False
    if any(s.dtype != node.dtype for s in node.srcs) or node.attrs["groups"] != 1:
        return False
    if node.type.size == 0 or node.srcs[1].type.size == 0:
        return False
    return _packed_bytes(Shape.of(node), _tiling(node, caps), node.dtype) <= STACK_LIMIT


def _tiling(node: Node, caps: CpuCaps) -> Tiling:
    return base_tiling(node.dtype, caps)


def _panels(s: Shape, t: Tiling) -> int:
    return -(-s.cout // t.nr)


def _packed_bytes(s: Shape, t: Tiling, dtype: DType) -> int:
    return _panels(s, t) * s.kh * s.kw * s.cin * t.nr * dtype.np.itemsize


def build(module: ir.Module, node: Node, name: str, caps: CpuCaps) -> tuple[int, int]:
    """Emit the kernel `name`; returns (rows, work per row) for the executor."""
    s, t = Shape.of(node), _tiling(node, caps)
    fn = ir.Function(module, KERNEL_TYPE, name)
    fn.args[0].name, fn.args[1].name, fn.args[2].name = "buffers", "start", "stop"
    _Gen(fn, node, t).emit()
    macs = s.ow * s.cout * s.kh * s.kw * s.cin
    return s.n * s.oh, max(1, macs // MACS_PER_UNIT)


class _Gen:
    def __init__(self, fn: ir.Function, node: Node, t: Tiling) -> None:
        self.b = b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.node, self.s, self.t, self.dtype = node, Shape.of(node), t, node.dtype
        s, dtype = self.s, node.dtype
        self.ty = STORAGE[dtype]
        self.vec = ir.VectorType(self.ty, t.width)
        buffers, self.start, self.stop = fn.args
        self.out, self.x, self.w = buffer_pointers(b, buffers, 3)
        self.operands = operand_buffers(node.srcs, (self.x, self.w))
        self.packed = self._scratch(_packed_bytes(s, t, dtype) // dtype.np.itemsize, self.ty)
        self.zeros = self._scratch(s.cin, self.ty)  # what a tap in the padding reads
        self.acc = self._scratch(t.mr * t.vectors, self.vec)

    def _scratch(self, count: int, ty: ir.Type) -> ir.Value:
        ptr = self.b.alloca(ty, size=I64(max(count, 1)))
        ptr.align = 64
        ptr.type = PTR  # an opaque pointer (the printed IR is the same): any type goes through
        return ptr

    def emit(self) -> None:
        b, s, ty = self.b, self.s, self.ty
        with for_range(b, I64(s.cin), name="z") as c:
            b.store(ir.Constant(ty, 0), at(b, self.zeros, c, ty))
        self._pack_filter()
        with for_range(b, self.stop, self.start, name="row") as row:
            batch, oh = b.udiv(row, I64(s.oh)), b.urem(row, I64(s.oh))
            tiles, panels = I64(-(-s.ow // self.t.mr)), I64(_panels(s, self.t))
            with for_range(b, tiles, name="pt") as tile, for_range(b, panels, name="np") as panel:
                self._tile(row, batch, oh, b.mul(tile, I64(self.t.mr)), panel)
        b.ret_void()

    def _pack_filter(self) -> None:
        """W[i, j, c, n] into panels of NR output channels: panel p, tap, c, then NR lanes."""
        b, s, t, ty = self.b, self.s, self.t, self.ty
        taps = s.kh * s.kw
        depth = taps * s.cin  # k = (tap, c), tap-major as W is stored
        with for_range(b, I64(_panels(s, t)), name="wp") as p, for_range(b, I64(depth)) as k:
            line = at(b, self.packed, b.mul(b.add(b.mul(p, I64(depth)), k), I64(t.nr)), ty)
            source = at(b, self.w, b.mul(k, I64(s.cout)), ty)
            first = b.mul(p, I64(t.nr))
            valid = smin(b, I64(t.nr), b.sub(I64(s.cout), first))
            with for_range(b, valid, name="wn") as n:
                value = b.load(at(b, source, b.add(first, n), ty), typ=ty)
                b.store(value, at(b, line, n, ty))
            with for_range(b, I64(t.nr), valid, name="wz") as n:
                b.store(ir.Constant(ty, 0), at(b, line, n, ty))

    def _tile(self, row: ir.Value, batch: ir.Value, oh: ir.Value, ow0: ir.Value,
              panel: ir.Value) -> None:  # fmt: skip
        b, s, t, ty = self.b, self.s, self.t, self.ty
        (pt, pl), (sh, sw), (dh, dw) = s.pads, s.strides, s.dilation
        zero = ir.Constant(self.vec, [ir.Constant(ty, 0)] * t.width)
        for i in range(t.mr * t.vectors):
            b.store(zero, at(b, self.acc, I64(i), self.vec))
        taps = s.kh * s.kw
        panel_base = at(b, self.packed, b.mul(panel, I64(taps * s.cin * t.nr)), ty)
        with for_range(b, I64(s.kh), name="ti") as i:
            h = b.add(b.sub(b.mul(oh, I64(sh)), I64(pt)), b.mul(i, I64(dh)))
            h_in = b.and_(b.icmp_signed(">=", h, I64(0)), b.icmp_signed("<", h, I64(s.h)))
            line = b.mul(b.add(b.mul(batch, I64(s.h)), h), I64(s.w))
            with for_range(b, I64(s.kw), name="tj") as j:
                rows = []
                for r in range(t.mr):
                    ow = b.add(ow0, I64(r))
                    v = b.add(b.sub(b.mul(ow, I64(sw)), I64(pl)), b.mul(j, I64(dw)))
                    inside = b.and_(
                        b.and_(h_in, b.icmp_signed("<", ow, I64(s.ow))),
                        b.and_(b.icmp_signed(">=", v, I64(0)), b.icmp_signed("<", v, I64(s.w))),
                    )
                    pixel = at(b, self.x, b.mul(b.add(line, v), I64(s.cin)), ty)
                    rows.append(b.select(inside, pixel, self.zeros))
                tap = b.add(b.mul(i, I64(s.kw)), j)
                weights = at(b, panel_base, b.mul(tap, I64(s.cin * t.nr)), ty)
                start = [
                    b.load(at(b, self.acc, I64(k), self.vec), typ=self.vec)
                    for k in range(t.mr * t.vectors)
                ]
                acc = microkernel(b, t, self.dtype, rows, 1, weights, I64(s.cin), start)
                for k, value in enumerate(acc):
                    b.store(value, at(b, self.acc, I64(k), self.vec))
        self._store(row, ow0, panel)

    def _store(self, row: ir.Value, ow0: ir.Value, panel: ir.Value) -> None:
        """The tile's pixels and channels that lie inside the output."""
        b, s, t, ty = self.b, self.s, self.t, self.ty
        n0 = b.mul(panel, I64(t.nr))
        channels = smin(b, I64(t.nr), b.sub(I64(s.cout), n0))
        pixels = smin(b, I64(t.mr), b.sub(I64(s.ow), ow0))
        tile = at(b, self.acc, I64(0), ty)  # the accumulators as MR rows of NR values
        batch, oh = b.udiv(row, I64(s.oh)), b.urem(row, I64(s.oh))
        with for_range(b, pixels, name="sp") as r:
            out = at(b, self.out, b.add(b.mul(b.add(b.mul(row, I64(s.ow)), b.add(ow0, r)),
                                              I64(s.cout)), n0), ty)  # fmt: skip
            src = at(b, tile, b.mul(r, I64(t.nr)), ty)
            with for_range(b, channels, name="sc") as c:
                value = b.load(at(b, src, c, ty), typ=ty)
                if self.dtype == DType.F32:
                    index = (batch, oh, b.add(ow0, r), b.add(n0, c))
                    value = exact_sum(b, value, self.node, self.operands, index)
                b.store(value, at(b, out, c, ty))
