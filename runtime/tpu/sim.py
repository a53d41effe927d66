"""Run an instruction stream on the simulated TPU: values exactly, time by a model.

The three queues run as concurrent processes. At each step the simulator looks at the head
of every queue, keeps those that can go (the tokens they pop are there; a switching MMC has a
tile requested), runs the one that could start first, and posts the tokens it pushes. When
no head can go while instructions remain, that is a deadlock: the report names each head and
what it waits for. Tokens still queued at the end are reported too.

Every unified-buffer access is checked against the dependency tokens with vector clocks: an
instruction may touch a row another queue wrote or read only if a chain of tokens orders the
two. A program that forgets a token is refused with the two instructions named, rather than
giving results that depend on timing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NoReturn

import numpy as np

from runtime.tpu.config import TpuConfig
from runtime.tpu.isa import Act, Halt, Instruction, Mmc, Nop, Queue, Rhm, Rw, Sync, Whm
from runtime.tpu.machine import PARAM_BYTES, Machine, TpuError
from runtime.tpu.stats import Record, RunStats
from runtime.tpu.timing import CATEGORIES, Footprint, NativeTiming, Slot, compat_cycles

MODES = ("native", "compat")
CHANNELS = {  # (flag, queue) -> (from, to)
    ("pop_prev", Queue.COMPUTE): (Queue.LOAD, Queue.COMPUTE),
    ("pop_prev", Queue.STORE): (Queue.COMPUTE, Queue.STORE),
    ("pop_next", Queue.LOAD): (Queue.COMPUTE, Queue.LOAD),
    ("pop_next", Queue.COMPUTE): (Queue.STORE, Queue.COMPUTE),
    ("push_next", Queue.LOAD): (Queue.LOAD, Queue.COMPUTE),
    ("push_next", Queue.COMPUTE): (Queue.COMPUTE, Queue.STORE),
    ("push_prev", Queue.COMPUTE): (Queue.COMPUTE, Queue.LOAD),
    ("push_prev", Queue.STORE): (Queue.STORE, Queue.COMPUTE),
}


@dataclass
class Token:
    time: int
    clock: np.ndarray  # the pusher's vector clock


@dataclass
class Result:
    stats: RunStats
    records: list[Record] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # leftover tokens, ...


class Simulator:
    def __init__(self, config: TpuConfig, mode: str = "native") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown timing mode {mode!r}; modes: {', '.join(MODES)}")
        self.config, self.mode = config, mode

    def run(
        self,
        program: list[Instruction],
        host: np.ndarray,
        weights: np.ndarray,
        useful_macs: int | None = None,
    ) -> Result:
        return _Run(self.config, self.mode, program, host, weights).run(useful_macs)


class _Run:
    def __init__(
        self,
        c: TpuConfig,
        mode: str,
        program: list[Instruction],
        host: np.ndarray,
        weights: np.ndarray,
    ) -> None:
        self.c, self.mode, self.program = c, mode, program
        self.machine = Machine(c, host, weights)
        self.timing = NativeTiming(c)
        self.channels: dict[tuple[Queue, Queue], deque[Token]] = {
            pair: deque() for pair in set(CHANNELS.values())
        }
        self.clock = np.zeros((3, 3), np.int64)  # clock[q][p]: p's instructions q knows done
        self.writer = np.full(c.ub_rows, -1, np.int64)  # queue of the last writer, per row
        self.write_seq = np.zeros(c.ub_rows, np.int64)
        self.read_seq = np.zeros((3, c.ub_rows), np.int64)
        self.records: list[Record] = []
        self.folds: list[int] = []
        self.useful = 0
        self.bytes = {"host_read": 0, "host_written": 0, "weights_read": 0}

    def run(self, useful_macs: int | None) -> Result:
        for segment in self._segments():
            self._run_segment(segment)
            self.timing.barrier()
            self.clock[:] = self.clock.max(axis=0)  # after a SYNC every queue knows it all
        problems = [
            f"{len(tokens)} token(s) from the {a.name.lower()} queue to the {b.name.lower()} "
            f"queue were never popped"
            for (a, b), tokens in sorted(self.channels.items())
            if tokens
        ]
        if self.machine.fifo:
            problems.append(f"{len(self.machine.fifo)} weight tile(s) were read but never used")
        if self.mode == "native":
            total, breakdown = self.timing.finish()
        else:
            total, breakdown = compat_cycles(self.c, self.folds)
            self._compat_records()
        stats = RunStats(
            config=self.c,
            mode=self.mode,
            cycles=total,
            breakdown=breakdown,
            useful_macs=self.useful if useful_macs is None else useful_macs,
            array_macs=sum(self.folds) * self.c.rows * self.c.cols,
            instructions=len(self.program),
            matrix_cycles=max(
                (r.end for r in self.records if isinstance(r.instruction, Mmc)), default=0
            ),
            **self.bytes,
        )
        assert sum(breakdown[k] for k in CATEGORIES) == total, (breakdown, total)
        return Result(stats, self.records, problems)

    def _segments(self) -> list[list[tuple[int, Instruction]]]:
        segments: list[list[tuple[int, Instruction]]] = [[]]
        for n, i in enumerate(self.program):
            if isinstance(i, Halt):
                if n != len(self.program) - 1:
                    raise TpuError(f"instruction {n + 1}: {self.program[n + 1].asm()} follows halt")
                break
            if isinstance(i, Sync):
                segments.append([])
            else:
                segments[-1].append((n, i))
        return segments

    def _run_segment(self, segment: list[tuple[int, Instruction]]) -> None:
        queues: dict[Queue, deque[tuple[int, Instruction]]] = {q: deque() for q in Queue}
        for n, i in segment:
            assert i.queue is not None
            queues[i.queue].append((n, i))
        while any(queues.values()):
            ready = []
            for q, items in queues.items():
                if items and self._blocker(items[0][1], q) is None:
                    ready.append((self._earliest(items[0][1], q), q))
            if not ready:
                raise TpuError(self._deadlock(queues))
            _, q = min(ready)
            n, i = queues[q].popleft()
            self._step(n, i, q)

    def _pops(self, i: Instruction, q: Queue) -> list[tuple[Queue, Queue]]:
        return [CHANNELS[(f, q)] for f in ("pop_prev", "pop_next") if getattr(i, f)]

    def _blocker(self, i: Instruction, q: Queue) -> str | None:
        for a, b in self._pops(i, q):
            if not self.channels[(a, b)]:
                return f"a token from the {a.name.lower()} queue"
        if isinstance(i, Mmc) and i.switch and not self.machine.fifo:
            return "a weight tile (no RW has read one)"
        return None

    def _earliest(self, i: Instruction, q: Queue) -> int:
        times = [self.channels[ch][0].time for ch in self._pops(i, q)]
        return max([self.timing.queue_free[q], *times])

    def _deadlock(self, queues: dict[Queue, deque[tuple[int, Instruction]]]) -> str:
        lines = ["deadlock: no queue can go on"]
        for q, items in queues.items():
            if items:
                n, i = items[0]
                lines.append(
                    f"  {q.name.lower()} queue waits at instruction {n}: {i.asm()} "
                    f"(needs {self._blocker(i, q)})"
                )
        return "\n".join(lines)

    def _step(self, n: int, i: Instruction, q: Queue) -> None:
        token_time = dict.fromkeys(Queue, 0)  # when the popped tokens were pushed, by sender
        for ch in self._pops(i, q):
            token = self.channels[ch].popleft()
            token_time[ch[0]] = token.time
            np.maximum(self.clock[q], token.clock, out=self.clock[q])
        self.clock[q][q] += 1
        f = self._footprint(i)
        self._check_races(n, i, q, f)
        if isinstance(i, Mmc):
            self._count_fold(i)
        self.machine.execute(i)
        if isinstance(i, Mmc):
            used_rows, used_cols = self.machine.tile_used
            self.useful += f.ub_read.size * used_rows * used_cols
        slot = self.timing.schedule(i, q, token_time, f)
        for flag in ("push_prev", "push_next"):
            if getattr(i, flag):
                self.channels[CHANNELS[(flag, q)]].append(Token(slot.end, self.clock[q].copy()))
        self.records.append(Record(n, i, q, slot.start, slot.end, slot.stall))

    def _count_fold(self, i: Mmc) -> None:
        if i.switch:
            self.folds.append(0)
        if not self.folds:
            raise TpuError(f"{i.asm()}: no weight tile in the array yet (switch=1 loads one)")
        self.folds[-1] += i.length

    def _footprint(self, i: Instruction) -> Footprint:
        m, c = self.machine, self.c
        if isinstance(i, Rhm):
            rows = (i.pad_top + i.y_size + i.pad_bottom) * (i.pad_left + i.x_size + i.pad_right)
            nbytes = i.y_size * i.x_size * i.elems * c.input_dtype.itemsize
            self.bytes["host_read"] += nbytes
            return Footprint(ub_write=_span(i.ub_addr, rows), host_bytes=nbytes)
        if isinstance(i, Rw):
            self.bytes["weights_read"] += i.tiles * c.tile_bytes
            return Footprint(weight_bytes=i.tiles * c.tile_bytes)
        if isinstance(i, Mmc):
            ub, acc = m.mmc_rows(i)
            return Footprint(ub_read=ub, acc_write=acc)
        if isinstance(i, Act):
            size = c.acc_dtype.itemsize if i.wide else c.input_dtype.itemsize
            k = m.vector_rows(c.cols, size)
            if i.has_params:
                self.bytes["weights_read"] += c.cols * PARAM_BYTES
            written = _span(i.ub_addr, i.rows * k)
            return Footprint(acc_read=_span(i.acc_addr, i.rows), ub_write=written)
        if isinstance(i, Whm):
            size = c.acc_dtype.itemsize if i.wide else c.input_dtype.itemsize
            count = i.y_size * i.x_size
            nbytes = count * i.elems * size
            self.bytes["host_written"] += nbytes
            k = m.vector_rows(c.cols, size)
            return Footprint(ub_read=_span(i.ub_addr, count * k), host_bytes=nbytes)
        assert isinstance(i, Nop), i
        return Footprint()

    def _check_races(self, n: int, i: Instruction, q: Queue, f: Footprint) -> None:
        """An access to a row another queue wrote or read, not ordered by a token, is a race."""
        rows_read = f.ub_read[(f.ub_read >= 0) & (f.ub_read < self.c.ub_rows)]
        rows_written = f.ub_write[(f.ub_write >= 0) & (f.ub_write < self.c.ub_rows)]
        known = self.clock[q].copy()  # the last instruction of each queue this one is after
        known[q] = np.iinfo(np.int64).max  # a queue's own instructions are in order
        for verb, rows in (("reads", rows_read), ("writes", rows_written)):
            if rows.size:
                writer, seqs = self.writer[rows], self.write_seq[rows]
                late = (writer >= 0) & (seqs > known[writer])
                if late.any():
                    k = int(np.argmax(late))
                    self._race(n, i, verb, "written", int(rows[k]), int(seqs[k]), int(writer[k]))
        if rows_written.size:
            seqs = self.read_seq[:, rows_written]
            late = seqs > known[:, None]
            if late.any():
                p, k = divmod(int(np.argmax(late)), late.shape[1])
                self._race(n, i, "writes", "read", int(rows_written[k]), int(seqs[p, k]), p)
        seq = self.clock[q][q]
        self.read_seq[q][rows_read] = seq
        self.writer[rows_written] = q.value
        self.write_seq[rows_written] = seq

    def _race(
        self, n: int, i: Instruction, verb: str, other: str, row: int, seq: int, p: int
    ) -> NoReturn:
        raise TpuError(
            f"race at instruction {n} ({i.asm()}): it {verb} unified buffer row {row}, {other} "
            f"by instruction {seq} of the {Queue(p).name.lower()} queue, and no dependency "
            f"token orders the two"
        )

    def _compat_records(self) -> None:
        """Re-time the matrix multiplies as serialized folds; everything else takes no time."""
        c, time, fold_end = self.c, 0, 0
        for r in self.records:
            if isinstance(r.instruction, Mmc):
                if r.instruction.switch:
                    time = fold_end
                    time += c.rows  # the weight load
                    r.stall = {"weight_shift": c.rows}
                r.start, r.end = time, time + r.instruction.length + c.rows + c.cols - 2
                time += r.instruction.length
                fold_end = r.end
            else:
                r.start = r.end = fold_end


def _span(first: int, count: int) -> np.ndarray:
    return np.arange(first, first + count, dtype=np.int64)


__all__ = ["MODES", "Result", "Simulator", "Slot", "TpuError"]
