"""The pieces of the GEMM kernel that touch memory in the hot loops: packing and the microkernel.

Packing copies an operand block into micro-panels: panel p holds P consecutive rows (P = MR for
A, NR for B) of the block, stored k-major, `panel[k * P + i]`, so the microkernel reads both
operands with unit stride whatever the dimension numbers were. Rows past the operand's edge are
zero-filled: the microkernel then always runs a full MR x NR tile and only the writeback has to
care about edges (zeros add nothing to the dot products, and no load ever leaves the operand).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from llvmlite import ir

from codegen.loops import for_range
from codegen.types import I64, STORAGE
from ir.dtypes import DType


@dataclass(frozen=True)
class Tiling:
    """Block sizes, in elements. mr x nr is the register tile; kc, mc, nc the cache blocks."""

    width: int  # vector lanes: 512 bits of the element type
    mr: int
    nr: int
    kc: int
    mc: int
    nc: int

    @property
    def vectors(self) -> int:
        return self.nr // self.width


@dataclass(frozen=True)
class Axis:
    """Several operand dimensions flattened into one logical index (M, N, K or batch).

    `parts` are (size, stride) pairs, outermost first, with size-1 dimensions dropped and
    neighbours that are contiguous in memory merged, so the usual case is a single stride.
    """

    parts: tuple[tuple[int, int], ...]

    @staticmethod
    def of(shape: Sequence[int], dims: Sequence[int]) -> Axis:
        strides = [math.prod(shape[d + 1 :]) for d in range(len(shape))]
        parts: list[tuple[int, int]] = []
        for d in dims:
            if shape[d] == 1:
                continue
            if parts and parts[-1][1] == shape[d] * strides[d]:
                parts[-1] = (parts[-1][0] * shape[d], strides[d])
            else:
                parts.append((shape[d], strides[d]))
        return Axis(tuple(parts))

    @property
    def unit(self) -> bool:
        """True when consecutive indices are neighbours in memory."""
        return len(self.parts) == 1 and self.parts[0][1] == 1

    def offset(self, b: ir.IRBuilder, index: ir.Value) -> ir.Value:
        """Element offset of logical `index` along this axis."""
        if not self.parts:
            return I64(0)
        offset: ir.Value = I64(0)
        rest = index
        for size, stride in reversed(self.parts[1:]):
            digit = b.urem(rest, I64(size))
            rest = b.udiv(rest, I64(size))
            offset = b.add(offset, b.mul(digit, I64(stride)))
        return b.add(offset, b.mul(rest, I64(self.parts[0][1]), flags=["nsw"]), flags=["nsw"])

    def is_unit(self, b: ir.IRBuilder) -> bool:
        return self.unit


@dataclass(frozen=True)
class RuntimeAxis:
    """One logical axis with a single stride known only when the kernel runs (the GEMM library's
    operands): the same interface as Axis, so packing serves both."""

    stride: ir.Value

    def offset(self, b: ir.IRBuilder, index: ir.Value) -> ir.Value:
        return b.mul(index, self.stride, flags=["nsw"])

    def is_unit(self, b: ir.IRBuilder) -> ir.Value:
        return b.icmp_signed("==", self.stride, I64(1))


def smin(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def ceil_div(b: ir.IRBuilder, x: ir.Value, d: int) -> ir.Value:
    # signed, so an empty (negative) range gives a count <= 0 and its loop never runs
    return b.sdiv(b.add(x, I64(d - 1)), I64(d))


def at(b: ir.IRBuilder, ptr: ir.Value, index: ir.Value, ty: ir.Type) -> ir.Value:
    return b.gep(ptr, [index], inbounds=True, source_etype=ty)


@dataclass(frozen=True)
class PanelSource:
    """Where a packed block comes from: `ptr` (already offset to the batch), the panel-row
    axis (M for A, N for B) and the contraction axis."""

    ptr: ir.Value
    rows: Axis | RuntimeAxis
    depth: Axis | RuntimeAxis


def pack(
    b: ir.IRBuilder, dtype: DType, src: PanelSource, dst: ir.Value, panel: int,
    row0: ir.Value, nrows: ir.Value, k0: ir.Value, kc: ir.Value,
) -> None:  # fmt: skip
    """Pack rows [row0, row0 + nrows) x depth [k0, k0 + kc) into ceil(nrows / panel) panels."""
    # Walk the source along whichever axis is contiguous, so the reads stream. With runtime
    # strides that is decided when the kernel runs: both loop orders are emitted.
    rows_unit, depth_unit = src.rows.is_unit(b), src.depth.is_unit(b)
    if isinstance(rows_unit, bool) and isinstance(depth_unit, bool):
        _pack(b, dtype, src, dst, panel, (row0, nrows, k0, kc), rows_unit or not depth_unit)
        return
    rows_inner = b.or_(_as_bit(rows_unit), b.not_(_as_bit(depth_unit)))
    with b.if_else(rows_inner) as (then, other):
        with then:
            _pack(b, dtype, src, dst, panel, (row0, nrows, k0, kc), True)
        with other:
            _pack(b, dtype, src, dst, panel, (row0, nrows, k0, kc), False)


def _as_bit(flag: bool | ir.Value) -> ir.Value:
    return ir.Constant(ir.IntType(1), int(flag)) if isinstance(flag, bool) else flag


def _pack(
    b: ir.IRBuilder, dtype: DType, src: PanelSource, dst: ir.Value, panel: int,
    block: tuple[ir.Value, ir.Value, ir.Value, ir.Value], rows_inner: bool,
) -> None:  # fmt: skip
    row0, nrows, k0, kc = block
    ty = STORAGE[dtype]
    with for_range(b, ceil_div(b, nrows, panel), name="pp") as p:
        first = b.add(row0, b.mul(p, I64(panel)))
        valid = smin(b, I64(panel), b.sub(nrows, b.mul(p, I64(panel))))
        out = at(b, dst, b.mul(b.mul(p, kc), I64(panel)), ty)

        def copy(i: ir.Value, k: ir.Value) -> None:
            offset = b.add(src.rows.offset(b, b.add(first, i)), src.depth.offset(b, b.add(k0, k)))
            value = b.load(at(b, src.ptr, offset, ty), typ=ty)
            b.store(value, at(b, out, b.add(b.mul(k, I64(panel)), i), ty))

        def zero(i: ir.Value, k: ir.Value) -> None:
            b.store(ir.Constant(ty, 0), at(b, out, b.add(b.mul(k, I64(panel)), i), ty))

        if rows_inner:
            with for_range(b, kc, name="pk") as k:
                with for_range(b, valid, name="pi") as i:
                    copy(i, k)
                with for_range(b, I64(panel), valid, name="pz") as i:
                    zero(i, k)
        else:
            with for_range(b, valid, name="pi") as i, for_range(b, kc, name="pk") as k:
                copy(i, k)
            with for_range(b, I64(panel), valid, name="pz") as i, for_range(b, kc, name="pk") as k:
                zero(i, k)


@dataclass(frozen=True)
class Tile:
    """One MR x NR tile of C: batch index, first row and column, and how many of its rows and
    columns lie inside C (fewer at the edges)."""

    bi: ir.Value
    m: ir.Value
    n: ir.Value
    rows: ir.Value
    cols: ir.Value


@contextmanager
def tile_grid(
    b: ir.IRBuilder, t: Tiling, ty: ir.Type, b_scratch: ir.Value, bi: ir.Value,
    block: tuple[ir.Value, ir.Value, ir.Value, ir.Value], kc: ir.Value,
) -> Iterator[tuple[ir.Value, ir.Value, Tile]]:  # fmt: skip
    """The tiles of one (m0, mc, j0, nc) block: yields (i, packed B panel, tile), columns
    outer so each B panel is reused down the block's rows."""
    m0, mc, j0, nc = block
    with for_range(b, ceil_div(b, nc, t.nr), name="jr") as jr:
        b_panel = at(b, b_scratch, b.mul(b.mul(jr, kc), I64(t.nr)), ty)
        with for_range(b, ceil_div(b, mc, t.mr), name="ir") as i:
            yield (
                i,
                b_panel,
                Tile(
                    bi,
                    b.add(m0, b.mul(i, I64(t.mr))),
                    b.add(j0, b.mul(jr, I64(t.nr))),
                    smin(b, I64(t.mr), b.sub(mc, b.mul(i, I64(t.mr)))),
                    smin(b, I64(t.nr), b.sub(nc, b.mul(jr, I64(t.nr)))),
                ),
            )


def fmuladd(module: ir.Module, ty: ir.Type) -> ir.Function:
    """llvm.fmuladd for a float or a vector of floats.

    llvm.fmuladd rather than llvm.fma: one FMA instruction where the target has FMA, a multiply
    and an add (not a slow libm call) where it does not."""
    element = ty.element if isinstance(ty, ir.VectorType) else ty
    bits = 32 if element == ir.FloatType() else 64
    name = f"llvm.fmuladd.v{ty.count}f{bits}" if isinstance(ty, ir.VectorType) else (
        f"llvm.fmuladd.f{bits}"
    )  # fmt: skip
    existing = module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    return ir.Function(module, ir.FunctionType(ty, [ty, ty, ty]), name)


@contextmanager
def _counted(b: ir.IRBuilder, count: ir.Value, carried: list[ir.Value]) -> Iterator[
    tuple[ir.Value, list[ir.Value], list[ir.Value]]
]:  # fmt: skip
    """A loop with loop-carried values: yields (k, current values, list to fill with next)."""
    pre = b.block
    header = b.append_basic_block("mk.header")
    body = b.append_basic_block("mk.body")
    done = b.append_basic_block("mk.end")
    b.branch(header)
    b.position_at_end(header)
    k = b.phi(I64, name="k")
    k.add_incoming(I64(0), pre)
    phis = []
    for v in carried:
        phi = b.phi(v.type)
        phi.add_incoming(v, pre)
        phis.append(phi)
    b.cbranch(b.icmp_signed("<", k, count), body, done)
    b.position_at_end(body)
    nxt: list[ir.Value] = []
    yield k, list(phis), nxt
    end = b.block
    k.add_incoming(b.add(k, I64(1), flags=["nsw", "nuw"]), end)
    for phi, v in zip(phis, nxt, strict=True):
        phi.add_incoming(v, end)
    b.branch(header)
    b.position_at_end(done)
    carried[:] = phis


def microkernel(
    b: ir.IRBuilder, t: Tiling, dtype: DType, a_rows: Sequence[ir.Value], a_step: int | ir.Value,
    b_panel: ir.Value, kc: ir.Value, start: Sequence[ir.Value] = (),
) -> list[ir.Value]:  # fmt: skip
    """C_tile = A B over kc steps (added to `start` where given: a convolution's earlier taps);
    returns mr * vectors accumulators, row-major.

    Row r of A is read from `a_rows[r]`, `a_step` elements apart per k: a packed panel or the
    operand itself. Every step loads `vectors` vectors of B, broadcasts mr scalars of A and
    issues mr * vectors independent FMAs, enough to cover the FMA latency on two ports.
    """
    ty = STORAGE[dtype]
    vec = ir.VectorType(ty, t.width)
    fma = fmuladd(b.module, vec)
    zeros = ir.Constant(vec, [ir.Constant(ty, 0)] * t.width)
    lane0 = ir.Constant(ir.VectorType(ir.IntType(32), t.width), [0] * t.width)
    acc = list(start) or [zeros] * (t.mr * t.vectors)
    with _counted(b, kc, acc) as (k, cur, nxt):
        brow = at(b, b_panel, b.mul(k, I64(t.nr)), ty)
        bvec = [b.load(at(b, brow, I64(v * t.width), ty), typ=vec) for v in range(t.vectors)]
        for inst in bvec:
            inst.align = 64  # the scratch is 64-byte aligned and a B row is whole vectors
        ka = b.mul(k, I64(a_step) if isinstance(a_step, int) else a_step)
        for r in range(t.mr):
            scalar = b.load(at(b, a_rows[r], ka, ty), typ=ty)
            splat = b.shuffle_vector(
                b.insert_element(ir.Constant(vec, ir.Undefined), scalar, ir.IntType(32)(0)),
                ir.Constant(vec, ir.Undefined),
                lane0,
            )
            for v in range(t.vectors):
                nxt.append(b.call(fma, [splat, bvec[v], cur[r * t.vectors + v]]))
    return acc
