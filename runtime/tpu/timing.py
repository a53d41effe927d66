"""When each instruction runs: the native TPU timing model and the standard analytic one.

Native model (docs/tpu.md has the full rules). The three queues issue in order. Loads and
stores are DMAs over their link (bytes / bytes-per-cycle); RW only queues tile requests: the
weight DMA engine fetches tiles one after another into the FIFO, a tile needing a free FIFO
slot, and a fetched tile shifts into the array's shadow weight registers (`rows` cycles) once
the previous tile has become active. A matrix multiply streams one input vector per cycle;
with double-buffered weights, a switching MMC starts as soon as its tile has shifted in, so
consecutive MMCs leave no bubble. Results reach the accumulators rows + cols - 2 cycles after
their input entered. Every read waits for the data it reads and every write for the readers
of what it overwrites, per unified-buffer and accumulator row; across queues the dependency
tokens order them.

Compatibility model: the weight-stationary model of published systolic simulators
(SCALE-Sim): each fold (an MMC that switches weights, plus the MMCs that reuse its tile) costs
2R + C + T - 2 cycles, where T is the number of input vectors streamed through it; folds are
serialized, and memory is free. The reported total is the sum minus one, as SCALE-Sim counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from runtime.tpu.config import TpuConfig
from runtime.tpu.isa import Act, Instruction, Mmc, Nop, Queue, Rhm, Rw, Whm
from runtime.tpu.machine import Rows, lazy_zeros, row_count

ACT_LATENCY = 2  # cycles from the last accumulator row read to its result in the buffer
CATEGORIES = ("array_active", "weight_stall", "weight_shift", "input_stall", "non_matrix")


NO_ROWS = slice(0, 0)


class Footprint:
    """What an instruction reads and writes, by row, in the order it touches them.

    A plain class rather than a dataclass with array defaults: one is made per instruction.
    """

    __slots__ = ("acc_read", "acc_write", "host_bytes", "ub_read", "ub_write", "weight_bytes")

    def __init__(
        self,
        ub_read: Rows = NO_ROWS,
        ub_write: Rows = NO_ROWS,
        acc_read: Rows = NO_ROWS,
        acc_write: Rows = NO_ROWS,
        host_bytes: int = 0,
        weight_bytes: int = 0,
    ) -> None:
        self.ub_read, self.ub_write = ub_read, ub_write
        self.acc_read, self.acc_write = acc_read, acc_write
        self.host_bytes, self.weight_bytes = host_bytes, weight_bytes


@dataclass
class Slot:
    """An instruction's place in time, and why the matrix unit idled before it (MMC only)."""

    start: int
    end: int
    stall: dict[str, int] = field(default_factory=dict)


class NativeTiming:
    def __init__(self, c: TpuConfig) -> None:
        self.c = c
        self.queue_free = [0, 0, 0]
        self.array_free = 0
        self.act_free = 0
        self.ub_ready = lazy_zeros((c.ub_rows,), np.int64)
        self.ub_read = lazy_zeros((c.ub_rows,), np.int64)
        self.acc_ready = lazy_zeros((c.accumulator_rows,), np.int64)
        self.acc_read = lazy_zeros((c.accumulator_rows,), np.int64)
        self.requests: list[int] = []  # per tile: when its RW issued
        self.shift_end: list[int] = []  # per consumed tile
        self.dma_free = 0
        self.switch_start = 0  # when the current tile became active: the shadow is free again
        self.tile_cycles = math.ceil(c.tile_bytes / c.weight_bytes_per_cycle)
        self.latency = c.rows + c.cols - 2
        self.busy = [0, 0, 0]  # cycles each queue's unit worked
        self.last_end = 0
        self.breakdown = dict.fromkeys(CATEGORIES, 0)
        self._steps: dict[int, np.ndarray] = {}

    def steps(self, count: int) -> np.ndarray:
        """0, 1, ..., count - 1: the cycle offsets of an instruction's rows (shared, read-only)."""
        steps = self._steps.get(count)
        if steps is None:
            steps = self._steps[count] = np.arange(count, dtype=np.int64)
            steps.flags.writeable = False
        return steps

    def _dma(self, nbytes: int, per_cycle: float) -> int:
        return math.ceil(nbytes / per_cycle)  # issue overheads are not modelled

    def barrier(self) -> None:
        """SYNC: nothing after it starts before everything before it has ended."""
        self.queue_free = [max(self.last_end, q) for q in self.queue_free]

    def schedule(self, i: Instruction, q: Queue, tokens: list[int], f: Footprint) -> Slot:
        """`tokens[p]`: when the token this instruction popped from queue p was pushed (0: none)."""
        ready = max(self.queue_free[q], *tokens)
        if isinstance(i, Mmc):  # waiting for the load queue's token is waiting for input
            slot = self._mmc(i, max(self.queue_free[q], tokens[Queue.STORE]), f, tokens[Queue.LOAD])
        elif isinstance(i, Act):
            slot = self._act(i, ready, f)
        elif isinstance(i, (Rhm, Whm)):
            slot = self._dma_rows(i, ready, f)
        elif isinstance(i, Rw):
            slot = Slot(ready, ready)  # only queues the requests: decoupled access
            self.requests += [ready] * i.tiles
            self.queue_free[q] = slot.end
        else:
            assert isinstance(i, Nop), i
            slot = Slot(ready, ready)
        self.last_end = max(self.last_end, slot.end)
        self.busy[q] += slot.end - slot.start
        return slot

    def _dma_rows(self, i: Rhm | Whm, ready: int, f: Footprint) -> Slot:
        if isinstance(i, Rhm):  # overwrite only what every earlier reader has read
            start = max(ready, _max(self.ub_read[f.ub_write]), _max(self.ub_ready[f.ub_write]))
        else:
            start = max(ready, _max(self.ub_ready[f.ub_read]))
        end = start + self._dma(f.host_bytes, self.c.host_bytes_per_cycle)
        if isinstance(i, Rhm):
            self.ub_ready[f.ub_write] = end
        else:
            _raise_to(self.ub_read, f.ub_read, end)
        self.queue_free[i.queue] = end  # type: ignore[index]
        return Slot(start, end)

    def _tile_shift(self, i: Mmc) -> tuple[int, int]:
        """(arrival in the FIFO, end of the shift into the array) of the next weight tile."""
        j = len(self.shift_end)
        depth = self.c.weight_fifo_tiles
        slot_free = self.shift_end[j - depth] if j >= depth else 0
        arrival = max(self.requests[j], self.dma_free, slot_free) + self.tile_cycles
        self.dma_free = arrival
        shift_end = max(arrival, self.switch_start) + self.c.rows
        self.shift_end.append(shift_end)
        return arrival, shift_end

    def _mmc(self, i: Mmc, ready: int, f: Footprint, input_token: int) -> Slot:
        t = row_count(f.ub_read)
        steps = self.steps(t)
        acc_free = _max(self.acc_read[f.acc_write] - steps) - self.latency + 1 if t else 0
        limits = {
            "non_matrix": max(ready, self.array_free),
            "input_stall": max(input_token, _max(self.ub_ready[f.ub_read] - steps)),
            "acc": acc_free,
        }
        arrival = shift_end = 0
        if i.switch:
            arrival, shift_end = self._tile_shift(i)
            limits["weight"] = shift_end
        start = max(limits.values())
        stall = self._attribute(start, limits, arrival, shift_end)
        self.array_free = start + t
        self.acc_ready[f.acc_write] = steps + (start + self.latency + 1)
        _raise_to(self.ub_read, f.ub_read, steps + (start + 1))
        if i.switch:
            self.switch_start = start
        self.queue_free[Queue.COMPUTE] = start + 1
        self.breakdown["array_active"] += t
        return Slot(start, start + t + self.latency, stall)

    def _attribute(
        self, start: int, limits: dict[str, int], arrival: int, shift_end: int
    ) -> dict[str, int]:
        """Split the matrix unit's idle cycles before this MMC among their causes."""
        gap_start = self.array_free
        if start <= gap_start:
            return {}
        binding = max(limits, key=lambda k: (limits[k], k == "weight"))
        stall: dict[str, int] = {}
        if binding == "weight":
            shift_start = shift_end - self.c.rows
            stall["weight_shift"] = start - max(gap_start, shift_start)
            if shift_start > gap_start:
                cause = "weight_stall" if shift_start == arrival else "non_matrix"
                stall[cause] = shift_start - gap_start
        elif binding == "input_stall":
            stall["input_stall"] = start - gap_start
        else:
            stall["non_matrix"] = start - gap_start
        for k, v in stall.items():
            self.breakdown[k] += v
        return stall

    def _act(self, i: Act, ready: int, f: Footprint) -> Slot:
        reads, writes = row_count(f.acc_read), row_count(f.ub_write)
        steps = self.steps(reads)
        k = max(1, writes // max(1, reads))
        start = max(
            ready,
            self.act_free,
            _max(self.acc_ready[f.acc_read] - steps),
            _max(self.ub_read[f.ub_write]),
            _max(self.ub_ready[f.ub_write]),
        )
        busy = writes if k > 1 else reads
        end = start + busy + ACT_LATENCY
        self.act_free = start + busy
        self.acc_read[f.acc_read] = steps + start
        self.ub_ready[f.ub_write] = end
        self.queue_free[Queue.COMPUTE] = start + 1
        return Slot(start, end)

    def finish(self) -> tuple[int, dict[str, int]]:
        total = self.last_end
        b = dict(self.breakdown)
        b["non_matrix"] += max(0, total - self.array_free)
        return total, b


def _max(values: np.ndarray) -> int:
    """The largest value, 0 for none (the ufunc directly: ndarray.max adds a Python wrapper,
    and this runs a few times per instruction)."""
    return int(np.maximum.reduce(values)) if values.size else 0


def _raise_to(times: np.ndarray, rows: Rows, values: np.ndarray | int) -> None:
    """times[rows] = max(times[rows], values), in place; a row named twice keeps the larger."""
    if isinstance(rows, slice):
        view = times[rows]
        np.maximum(view, values, out=view)
    else:
        np.maximum.at(times, rows, values)


def compat_cycles(c: TpuConfig, folds: list[int]) -> tuple[int, dict[str, int]]:
    """SCALE-Sim's weight-stationary count for folds streaming `folds[f]` vectors each."""
    per_fold = [2 * c.rows + c.cols + t - 2 for t in folds]
    total = max(0, sum(per_fold) - 1)
    b = dict.fromkeys(CATEGORIES, 0)
    if folds:  # SCALE-Sim counts from cycle 0: the one cycle less comes off the first load
        b["array_active"] = sum(folds)
        b["weight_shift"] = c.rows * len(folds) - 1
        b["non_matrix"] = (c.rows + c.cols - 2) * len(folds)
    return total, b
