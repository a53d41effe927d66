"""Turning tiled work into a synchronized, double-buffered instruction stream.

The kernels (codegen/tpu/kernels.py) describe their work as chunks: a chunk loads some input
vectors into the unified buffer and then runs units; a unit multiplies them by a run of weight
tiles into one half of the accumulators and activates and stores the result. This module
lays the chunks out in time:

- input chunks alternate between two unified-buffer regions, so chunk c + 1 loads while chunk
  c computes; the load of chunk c + 2 waits (a compute -> load token) until c's last MMC;
  every load posts a token, and the chunk's first unit pops each just before the first MMC
  that reads it, so compute starts after the first load rather than the last;
- units alternate between the two accumulator halves and two output regions, and a unit's
  ACT is issued after the next unit's MMCs (software pipelining), so the array never waits for
  the activation unit; the ACT of unit u + 2 waits (a store -> compute token) for the store of
  unit u to have read its output region;
- a chunk's weight tiles are requested (RW) before its inputs load; the weight FIFO prefetches.

Only tokens that someone pops are pushed, so a finished program leaves none behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runtime.tpu.config import TpuConfig
from runtime.tpu.isa import Act, Halt, Instruction, Mmc, Nop, Queue, Rhm, Rw, Whm


class TilingError(ValueError):
    """The work cannot be laid out on this chip (and no tiling tried helps)."""


@dataclass
class Unit:
    """MMCs into one accumulator block, then an ACT (and a WHM to the host).

    Addresses are relative and the stream fills in the bases: acc_addr to the accumulator
    half; MMC ub_addr to `source` (the chunk's input region, or scratch region 0/1 holding a
    previous layer's output); ACT ub_addr to `dest` (the output region, whose WHM then stores
    it, or a scratch region, where the next layer of a chain reads it and nothing is stored).
    """

    weight_addr: int
    tiles: int
    mmcs: list[Mmc]
    act: Act
    whm: Whm | None
    needs: list[int] = field(default_factory=list)  # per MMC: the chunk load it reads last
    source: str = "input"  # "input", "scratch0" or "scratch1"
    dest: str = "output"  # "output", "scratch0" or "scratch1"


@dataclass
class Chunk:
    loads: list[Rhm]  # ub_addr relative to the input region
    units: list[Unit] = field(default_factory=list)


@dataclass
class Regions:
    input_rows: int  # unified buffer rows one chunk's inputs need
    output_rows: int  # rows one unit's output needs
    acc_rows: int  # accumulator rows one unit needs
    scratch_rows: int = 0  # rows of each of the two regions chained layers alternate between


def check_fits(c: TpuConfig, r: Regions) -> None:
    need = 2 * r.input_rows + 2 * r.output_rows + 2 * r.scratch_rows
    if need > c.ub_rows:
        raise TilingError(
            f"needs {need} unified buffer rows (2 x {r.input_rows} input, "
            f"2 x {r.output_rows} output, 2 x {r.scratch_rows} between layers), the chip has "
            f"{c.ub_rows}"
        )
    if 2 * r.acc_rows > c.accumulator_rows:
        raise TilingError(
            f"needs 2 x {r.acc_rows} accumulator rows, the chip has {c.accumulator_rows}"
        )


def _span(i: Mmc | Act, c: TpuConfig) -> tuple[int, int]:
    """The unified-buffer rows an MMC reads or an ACT writes, as [first, last)."""
    if isinstance(i, Act):
        size = (c.acc_dtype if i.wide else c.input_dtype).itemsize
        return i.ub_addr, i.ub_addr + i.rows * max(1, -(-c.cols * size // c.row_bytes))
    last = i.ub_addr + (i.outer - 1) * i.ub_outer_stride + (i.rows - 1) * i.ub_stride
    return i.ub_addr, last + 1


class _Stream:
    def __init__(self, c: TpuConfig, chunks: list[Chunk], r: Regions) -> None:
        check_fits(c, r)
        self.c, self.chunks = c, chunks
        self.base = {
            "input": (0, r.input_rows),
            "output": (2 * r.input_rows, 2 * r.input_rows + r.output_rows),
            "scratch0": (2 * (r.input_rows + r.output_rows),) * 2,
            "scratch1": (2 * (r.input_rows + r.output_rows) + r.scratch_rows,) * 2,
        }
        self.acc_base = (0, c.accumulator_rows // 2)
        self.load: list[Instruction] = []
        self.compute: list[Instruction] = []
        self.store: list[Instruction] = []
        self.pending: list[Act] = []  # the last unit's ACT, issued after the next unit's MMCs
        self.units = [(ci, u) for ci, chunk in enumerate(chunks) for u in chunk.units]
        readers = [(ci, n) for n, (ci, u) in enumerate(self.units) if u.source == "input"]
        self.first_reader = {ci: n for ci, n in reversed(readers)}
        self.last_reader = dict(readers)
        self.stored = [n for n, (_, u) in enumerate(self.units) if u.whm is not None]

    def build(self) -> list[Instruction]:
        for ci, chunk in enumerate(self.chunks):
            self._loads(ci, chunk)
        for n, (ci, u) in enumerate(self.units):
            self._unit(n, ci, u)
        self.compute += self.pending
        return self.load + self.compute + self.store + [Halt()]

    def _loads(self, ci: int, chunk: Chunk) -> None:
        base = self.base["input"][ci % 2]
        for u in chunk.units:  # first: the weight DMA then runs ahead while inputs load
            self.load.append(Rw(weight_addr=u.weight_addr, tiles=u.tiles))
        for k, rhm in enumerate(chunk.loads):
            self.load.append(rhm.replace(  # each load posts a token: compute starts early
                ub_addr=rhm.ub_addr + base,
                pop_next=k == 0 and ci >= 2,  # chunk ci - 2 has finished reading this region
                push_next=True,
            ))  # fmt: skip

    def _unit(self, n: int, ci: int, u: Unit) -> None:
        half = self.acc_base[n % 2]
        loads = len(self.chunks[ci].loads)
        popped = 0 if self.first_reader.get(ci) == n else loads
        frees_input = (
            self.last_reader.get(ci) == n and ci + 2 < len(self.chunks)
            and bool(self.chunks[ci + 2].loads)
        )  # fmt: skip
        for k, mmc in enumerate(u.mmcs):
            needed = (u.needs[k] + 1) if u.needs else loads
            while popped < needed - 1:  # more than one load to wait for: the extra tokens
                self.compute.append(Nop(queue_id=Queue.COMPUTE, pop_prev=True))
                popped += 1
            placed = mmc.replace(
                ub_addr=mmc.ub_addr + self.base[u.source][ci % 2],
                acc_addr=mmc.acc_addr + half, pop_prev=popped < needed,
                push_prev=frees_input and k == len(u.mmcs) - 1,
            )  # fmt: skip
            self._flush_if_read(placed)
            self.compute.append(placed)
            popped = max(popped, needed)
        while popped < loads:
            self.compute.append(Nop(queue_id=Queue.COMPUTE, pop_prev=True))
            popped += 1
        self.compute += self.pending
        if u.whm is None:  # a chained layer: the next one reads it from the unified buffer
            act = u.act.replace(
                acc_addr=u.act.acc_addr + half, ub_addr=u.act.ub_addr + self.base[u.dest][0]
            )
        else:
            s = self.stored.index(n)
            out = self.base["output"][s % 2]
            act = u.act.replace(
                acc_addr=u.act.acc_addr + half,
                ub_addr=u.act.ub_addr + out,
                pop_next=s >= 2,
                push_next=True,
            )
            self.store.append(u.whm.replace(
                ub_addr=u.whm.ub_addr + out, pop_prev=True,
                push_prev=s + 2 < len(self.stored),
            ))  # fmt: skip
        self.pending = [act]

    def _flush_if_read(self, mmc: Mmc) -> None:
        """An MMC that reads what the deferred ACT writes must come after it."""
        if not self.pending:
            return
        (a0, a1), (m0, m1) = _span(self.pending[0], self.c), _span(mmc, self.c)
        if a0 < m1 and m0 < a1:
            self.compute += self.pending
            self.pending = []


def build_stream(c: TpuConfig, chunks: list[Chunk], r: Regions) -> list[Instruction]:
    """The three queues' instructions, in one program, ending with HALT."""
    return _Stream(c, chunks, r).build()
