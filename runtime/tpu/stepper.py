"""A cycle-by-cycle, PE-by-PE model of the weight-stationary array: the fast model's referee.

Each processing element (k, c) of the R x C array has four registers: the input it passes to
the right, the partial sum it passes down, its active weight, and a shadow weight that the
next tile is latched into. Every cycle, every PE multiplies the input arriving from the left by
its active weight and adds the product to the partial sum arriving from above (row 0 adds to
zero); the bottom row's sums go to the accumulators, overwriting or adding.

Input vectors enter from the left with the usual skew: element k of the vector entering at
cycle e reaches row k at cycle e + k and column c at cycle e + k + c. The switch to a new tile
travels with the first input vector of its fold, so PE (k, c) makes its shadow weight active at
s + k + c, s being the cycle the fold's first vector entered.

Weights arrive from the top, column c delayed by c cycles (the same skew as the inputs), and
shift down a chain of transit registers for R cycles; when a column's chain is full its R
values are latched into the shadow registers at once. So a tile occupies a column's shadow
registers only from the latch on, and it may start shifting as soon as the previous tile has
started streaming (the latch comes R - 1 + c cycles later, after every PE in column c has
swapped). A fold can start streaming once its tile is latched in column 0 and the previous fold's
last vector has entered: that is double buffering. Serialized, a tile starts shifting only after
the previous fold's last output has left the array, which gives the published per-fold count of
2R + C + T - 2 cycles.

The separate transit chain has the same timing as the TPU paper's two weight registers per PE
if the shadow registers themselves form the chain and shift only where new weights have
arrived: shadow (k, c) is then first overwritten at S + c + k, after its swap at s + k + c as
long as S >= s, and holds its final weight from S + c + R. A chain that shifts every row at
once would instead need S >= s + R - 1 (and, without the column skew, S >= s + R + C - 2).

Every latch and swap checks the tags carried with the weights (tile, row): a schedule that
overwrites a shadow register before its PE has swapped, or swaps before the latch, raises
`StepHazard` instead of producing wrong numbers silently.

The registers are stored in skewed frames so that the per-cycle moves are pointer moves: the
input in PE (k, c) at cycle t is what row k received at t - c, so the input registers are a
window on the edge's history; a partial sum for the vector that entered at e, column c, stays
at one place of a buffer indexed by e + c while it moves down the rows; the transit chains are
ring buffers. Arithmetic is the array's own: int8 products summed in int32 with wrap-around, or
exact bf16 x bf16 products added to an f32 partial sum one row at a time, top to bottom (the
order `machine.column_sums_f32` documents).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from runtime.tpu.config import TpuConfig, preset


class StepHazard(RuntimeError):
    """A schedule the registers cannot honour: a weight used before it is there, or lost."""


@dataclass
class StepResult:
    acc: np.ndarray  # the accumulators after the run
    outputs: list[np.ndarray]  # per fold: the column sums that left the array, (T, C)
    done: list[np.ndarray]  # per fold: the cycle each row's last sum left the bottom row
    shift_starts: list[int]  # per fold: the cycle its tile entered the top of column 0
    stream_starts: list[int]  # per fold: the cycle its first vector entered row 0
    cycles: int  # the last output's cycle + 1
    pe_cycles: int = field(default=0)


def _compute_dtype(config: TpuConfig) -> np.dtype:
    return np.dtype(np.int32) if config.multiplier == "int8" else np.dtype(np.float32)


def step_matmul(
    config: TpuConfig,
    tiles: list[np.ndarray],
    inputs: list[np.ndarray],
    *,
    acc_addrs: list[int] | None = None,
    accumulate: list[bool] | None = None,
    arrivals: list[int] | None = None,
    double_buffered: bool = True,
    schedule: list[tuple[int, int]] | None = None,
    acc: np.ndarray | None = None,
) -> StepResult:
    """Run folds (tile f, with inputs[f] of shape (T_f, R) streamed through it) cycle by cycle.

    Fold f writes accumulator rows acc_addrs[f] + t (default 0), adding if accumulate[f].
    A tile can start shifting at arrivals[f] at the earliest (default 0: unlimited weight
    bandwidth). `schedule` gives (shift start, stream start) per fold instead of the controller's
    earliest legal choice; the run then checks that the registers can honour it.
    """
    n = len(tiles)
    if len(inputs) != n:
        raise ValueError(f"{n} tiles but {len(inputs)} input blocks")
    array = _Array(config, tiles, inputs, arrivals or [0] * n, double_buffered, schedule)
    while array.finished < n:
        array.step()
    addrs = acc_addrs or [0] * n
    if acc is None:
        rows_needed = max((a + t for a, t in zip(addrs, array.lengths, strict=True)), default=0)
        acc = np.zeros((rows_needed, config.cols), config.acc_dtype)
    acc = acc.copy()
    outputs = []
    for f in range(n):
        sums = array.column_sums(f)
        rows = addrs[f] + np.arange(array.lengths[f])
        if config.multiplier == "int8":
            wide = sums.astype(np.int64) + (
                acc[rows].astype(np.int64) if accumulate and accumulate[f] else 0
            )
            acc[rows] = wide.astype(np.int32)  # the accumulators wrap modulo 2^32
        else:
            acc[rows] = acc[rows] + sums if accumulate and accumulate[f] else sums
        outputs.append(sums)
    return StepResult(
        acc,
        outputs,
        array.done_rows,
        array.shift_at,
        array.stream_at,
        array.cycle,
        array.cycle * config.rows * config.cols,
    )


class _Array:
    """The registers of the array and its controller, advanced one cycle per `step`."""

    def __init__(
        self,
        config: TpuConfig,
        tiles: list[np.ndarray],
        inputs: list[np.ndarray],
        arrivals: list[int],
        double_buffered: bool,
        schedule: list[tuple[int, int]] | None,
    ) -> None:
        r_, c_ = config.rows, config.cols
        self.r, self.c = r_, c_
        self.acc_dtype = config.acc_dtype
        dt = _compute_dtype(config)
        self.ws = [np.asarray(w).astype(dt) for w in tiles]
        self.xs = [np.asarray(x).astype(dt) for x in inputs]
        for f, (w, x) in enumerate(zip(self.ws, self.xs, strict=True)):
            if w.shape != (r_, c_) or x.ndim != 2 or x.shape[1] != r_ or x.shape[0] < 1:
                raise ValueError(f"fold {f}: tile {w.shape}, inputs {x.shape} on a {r_}x{c_} array")
        self.lengths = [x.shape[0] for x in self.xs]
        self.arrivals, self.double_buffered, self.schedule = arrivals, double_buffered, schedule
        if schedule is not None:
            horizon = max(s + t for (_, s), t in zip(schedule, self.lengths, strict=True))
        else:
            horizon = max(arrivals, default=0) + sum(2 * r_ + c_ + t for t in self.lengths)
        self.horizon = horizon + r_ + c_ + 2
        # edge[k, base_e - t]: what row k received at cycle t; psum[base_q - (e + c), c]: the
        # partial sum of the vector that entered at e, in column c
        self.base_e, self.base_q = self.horizon + c_, self.horizon + r_ + c_
        self.edge = np.zeros((r_, self.base_e + c_ + 1), dt)
        self.psum = np.zeros((self.base_q + r_ + 1, c_), dt)
        self.ring = np.zeros((r_, c_), dt)  # transit chains: row k is ring[(k - steps[c]) % R, c]
        self.ring_tag = np.full((r_, c_), -1, np.int64)  # tile * R + row of the weight held
        self.steps = np.zeros(c_, np.int64)
        self.shadow = np.zeros((r_, c_), dt)
        self.shadow_tag = np.full((r_, c_), -1, np.int64)
        self.active = np.zeros((r_, c_), dt)
        self.prod = np.zeros((r_, c_), dt)
        self.krows, self.cols = np.arange(r_), np.arange(c_)
        self.diagonals = []  # the PEs a switch reaches d cycles after its fold's first vector
        for d in range(r_ + c_ - 1):
            ks = self.krows[(d - self.krows >= 0) & (d - self.krows < c_)]
            self.diagonals.append((ks, d - ks))
        self.shift_at: list[int] = []
        self.stream_at: list[int] = []
        self.last_done = [-1] * len(tiles)
        self.done_rows = [np.full(t, -1, np.int64) for t in self.lengths]
        self.cycle = self.finished = 0

    def step(self) -> None:
        if self.cycle >= self.horizon:
            raise StepHazard(f"the run did not finish in {self.horizon} cycles")
        self._control()
        self._swap()
        np.multiply(
            self.edge[:, self.base_e - self.cycle :][:, : self.c], self.active, out=self.prod
        )
        window = self.psum[self.base_q - self.cycle :][: self.r]
        np.add(window, self.prod, out=window)
        self._shift()
        self._drain()
        self.cycle += 1

    def _control(self) -> None:
        """When the next tile starts shifting in, and when its fold starts streaming."""
        f, cycle = len(self.shift_at), self.cycle
        if f == len(self.ws):
            return
        if self.schedule is not None:
            if self.schedule[f][0] == cycle:
                self._start(f, self.schedule[f][1])
        elif cycle >= self.arrivals[f]:
            if self.double_buffered and (f == 0 or self.stream_at[f - 1] <= cycle):
                after = self.stream_at[f - 1] + self.lengths[f - 1] if f else 0
                self._start(f, max(cycle + self.r, after))
            elif not self.double_buffered and (f == 0 or 0 <= self.last_done[f - 1] < cycle):
                self._start(f, cycle + self.r)

    def _start(self, f: int, stream: int) -> None:
        if f and self.cycle < self.shift_at[f - 1] + self.r:
            raise StepHazard(
                f"tile {f} enters column 0 at {self.cycle}, before tile {f - 1} left it"
            )
        if f and stream < self.stream_at[f - 1] + self.lengths[f - 1]:
            raise StepHazard(f"fold {f} starts streaming at {stream} while fold {f - 1} streams")
        if stream + self.lengths[f] + self.r > self.horizon:
            raise StepHazard(f"fold {f} would stream past the end of the run")
        self.shift_at.append(self.cycle)
        self.stream_at.append(stream)
        t, k = np.arange(self.lengths[f])[:, None], self.krows[None, :]
        self.edge[k, self.base_e - (stream + t + k)] = self.xs[f]  # row k sees vector t at s+t+k

    def _swap(self) -> None:
        """The switch travels with each fold's first vector; it reads the shadow registers
        before this cycle's latches, which take effect at the end of the cycle."""
        for g in range(self.finished, len(self.stream_at)):
            d = self.cycle - self.stream_at[g]
            if 0 <= d < self.r + self.c - 1:
                ks, cs = self.diagonals[d]
                tags = self.shadow_tag[ks, cs]
                bad = tags != g * self.r + ks
                if bad.any():
                    k, c, tag = int(ks[bad][0]), int(cs[bad][0]), int(tags[bad][0])
                    raise StepHazard(
                        f"cycle {self.cycle}: PE ({k}, {c}) switches to tile {g} but its shadow "
                        f"register holds tile {tag // self.r} row {tag % self.r}"
                    )
                self.active[ks, cs] = self.shadow[ks, cs]

    def _shift(self) -> None:
        """Columns whose chain is filling shift down one row; a full chain latches."""
        r_ = self.r
        for g in range(self.finished, len(self.shift_at)):
            j = self.cycle - self.shift_at[g]
            lo, hi = max(0, j - r_ + 1), min(self.c, j + 1)
            if lo < hi:
                cs = self.cols[lo:hi]
                self.steps[lo:hi] += 1
                at = (-self.steps[lo:hi]) % r_
                row = r_ - 1 - (j - cs)  # the bottom row enters first
                self.ring[at, cs] = self.ws[g][row, cs]
                self.ring_tag[at, cs] = g * r_ + row
            c = j - r_ + 1
            if 0 <= c < self.c:
                pos = (self.krows - self.steps[c]) % r_
                self.shadow[:, c] = self.ring[pos, c]
                self.shadow_tag[:, c] = self.ring_tag[pos, c]

    def _drain(self) -> None:
        """The bottom-right PE finished a vector's last column: that output row is complete."""
        e = self.cycle - (self.r - 1) - (self.c - 1)
        for g in range(self.finished, len(self.stream_at)):
            t = e - self.stream_at[g]
            if 0 <= t < self.lengths[g]:
                self.done_rows[g][t] = self.cycle
                if t == self.lengths[g] - 1:
                    self.last_done[g] = self.cycle
        while self.finished < len(self.ws) and self.last_done[self.finished] >= 0:
            self.finished += 1

    def column_sums(self, f: int) -> np.ndarray:
        """What left the bottom of each column for fold f's vectors, (T, C)."""
        e = self.stream_at[f] + np.arange(self.lengths[f])[:, None]
        cols = self.cols[None, :]
        sums: np.ndarray = self.psum[self.base_q - (e + cols), cols]
        return sums.astype(self.acc_dtype)


def measure_speed(
    spec: str = "tpu-v2-core:multiplier=int8", vectors: int = 512, folds: int = 4, repeats: int = 3
) -> dict[str, float]:
    """PE-cycles per wall-clock second of the stepper on `folds` double-buffered folds."""
    config = preset(spec)
    rng = np.random.default_rng(0)
    tiles = [rng.integers(-128, 128, (config.rows, config.cols)) for _ in range(folds)]
    inputs = [rng.integers(-128, 128, (vectors, config.rows)) for _ in range(folds)]
    if config.multiplier == "bf16":
        tiles = [t.astype(config.input_dtype) for t in tiles]
        inputs = [x.astype(config.input_dtype) for x in inputs]
    else:
        tiles = [t.astype(np.int8) for t in tiles]
        inputs = [x.astype(np.int8) for x in inputs]
    seconds = []
    result = None
    for _ in range(repeats):
        begin = time.perf_counter()
        result = step_matmul(config, tiles, inputs)
        seconds.append(time.perf_counter() - begin)
    assert result is not None
    best = float(np.median(seconds))
    return {
        "rows": config.rows,
        "cols": config.cols,
        "cycles": result.cycles,
        "seconds": best,
        "cycles_per_s": result.cycles / best,
        "pe_cycles_per_s": result.pe_cycles / best,
    }


if __name__ == "__main__":
    print(measure_speed())
