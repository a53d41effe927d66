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

import dataclasses
from dataclasses import dataclass, field

from runtime.tpu.config import TpuConfig
from runtime.tpu.isa import Act, Halt, Instruction, Mmc, Nop, Queue, Rhm, Rw, Whm


class TilingError(ValueError):
    """The work cannot be laid out on this chip (and no tiling tried helps)."""


@dataclass
class Unit:
    """MMCs into one accumulator block, then ACT and WHM. Addresses are relative: MMC ub_addr
    to the chunk's input region, acc_addr to the accumulator half, ACT/WHM ub_addr to the output
    region (the stream fills them in)."""

    weight_addr: int
    tiles: int
    mmcs: list[Mmc]
    act: Act
    whm: Whm
    needs: list[int] = field(default_factory=list)  # per MMC: the chunk load it reads last


@dataclass
class Chunk:
    loads: list[Rhm]  # ub_addr relative to the input region
    units: list[Unit] = field(default_factory=list)


@dataclass
class Regions:
    input_rows: int  # unified buffer rows one chunk's inputs need
    output_rows: int  # rows one unit's output needs
    acc_rows: int  # accumulator rows one unit needs


def check_fits(c: TpuConfig, r: Regions) -> None:
    need = 2 * r.input_rows + 2 * r.output_rows
    if need > c.ub_rows:
        raise TilingError(
            f"needs {need} unified buffer rows (2 x {r.input_rows} input, "
            f"2 x {r.output_rows} output), the chip has {c.ub_rows}"
        )
    if 2 * r.acc_rows > c.accumulator_rows:
        raise TilingError(
            f"needs 2 x {r.acc_rows} accumulator rows, the chip has {c.accumulator_rows}"
        )


def build_stream(c: TpuConfig, chunks: list[Chunk], r: Regions) -> list[Instruction]:
    """The three queues' instructions, in one program, ending with HALT."""
    check_fits(c, r)
    input_base = (0, r.input_rows)
    output_base = (2 * r.input_rows, 2 * r.input_rows + r.output_rows)
    acc_base = (0, c.accumulator_rows // 2)
    load: list[Instruction] = []
    compute: list[Instruction] = []
    store: list[Instruction] = []
    units = [(ci, u) for ci, chunk in enumerate(chunks) for u in chunk.units]
    last_unit_of_chunk = {ci: n for n, (ci, _) in enumerate(units)}
    first_unit_of_chunk = {ci: n for n, (ci, _) in reversed(list(enumerate(units)))}
    pending_act: list[Instruction] = []

    for ci, chunk in enumerate(chunks):
        base = input_base[ci % 2]
        for u in chunk.units:  # first: the weight DMA then runs ahead while inputs load
            load.append(Rw(weight_addr=u.weight_addr, tiles=u.tiles))
        for k, rhm in enumerate(chunk.loads):
            load.append(
                dataclasses.replace(  # each load posts a token: compute starts early
                    rhm,
                    ub_addr=rhm.ub_addr + base,
                    pop_next=k == 0 and ci >= 2,  # chunk ci - 2 has finished reading this region
                    push_next=True,
                )
            )
    for n, (ci, u) in enumerate(units):
        half = acc_base[n % 2]
        popped = 0 if n == first_unit_of_chunk[ci] else len(chunks[ci].loads)
        for k, mmc in enumerate(u.mmcs):
            last = k == len(u.mmcs) - 1
            needed = (u.needs[k] + 1) if u.needs else len(chunks[ci].loads)
            while popped < needed - 1:  # more than one load to wait for: the extra tokens
                compute.append(Nop(queue_id=Queue.COMPUTE, pop_prev=True))
                popped += 1
            compute.append(
                dataclasses.replace(
                    mmc,
                    ub_addr=mmc.ub_addr + input_base[ci % 2],
                    acc_addr=mmc.acc_addr + half,
                    pop_prev=popped < needed,
                    push_prev=last
                    and n == last_unit_of_chunk[ci]
                    and ci + 2 < len(chunks)
                    and bool(chunks[ci + 2].loads),
                )
            )
            popped = max(popped, needed)
        while popped < len(chunks[ci].loads):
            compute.append(Nop(queue_id=Queue.COMPUTE, pop_prev=True))
            popped += 1
        compute += pending_act
        out = output_base[n % 2]
        pending_act = [
            dataclasses.replace(
                u.act,
                acc_addr=u.act.acc_addr + half,
                ub_addr=u.act.ub_addr + out,
                pop_next=n >= 2,
                push_next=True,
            )
        ]
        store.append(
            dataclasses.replace(
                u.whm,
                ub_addr=u.whm.ub_addr + out,
                pop_prev=True,
                push_prev=n + 2 < len(units),
            )
        )
    compute += pending_act
    return load + compute + store + [Halt()]
