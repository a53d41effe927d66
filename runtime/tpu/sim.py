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

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NoReturn

import numpy as np

from runtime.tpu.blas import one_blas_thread
from runtime.tpu.config import TpuConfig
from runtime.tpu.isa import Act, Halt, Instruction, Mmc, Nop, Queue, Rhm, Rw, Sync, Whm
from runtime.tpu.machine import (
    PARAM_BYTES,
    Machine,
    Rows,
    TpuError,
    lazy_zeros,
    row_count,
    row_span,
)
from runtime.tpu.stats import Record, RunStats
from runtime.tpu.timing import CATEGORIES, Footprint, NativeTiming, Slot, compat_cycles

MODES = ("native", "compat")
Channel = tuple[Queue, Queue]  # (from, to)
CHANNELS: dict[tuple[str, Queue], Channel] = {  # (flag, queue) -> (from, to)
    ("pop_prev", Queue.COMPUTE): (Queue.LOAD, Queue.COMPUTE),
    ("pop_prev", Queue.STORE): (Queue.COMPUTE, Queue.STORE),
    ("pop_next", Queue.LOAD): (Queue.COMPUTE, Queue.LOAD),
    ("pop_next", Queue.COMPUTE): (Queue.STORE, Queue.COMPUTE),
    ("push_next", Queue.LOAD): (Queue.LOAD, Queue.COMPUTE),
    ("push_next", Queue.COMPUTE): (Queue.COMPUTE, Queue.STORE),
    ("push_prev", Queue.COMPUTE): (Queue.COMPUTE, Queue.LOAD),
    ("push_prev", Queue.STORE): (Queue.STORE, Queue.COMPUTE),
}
_NEVER = int(np.iinfo(np.int64).max)  # a clock entry no sequence number exceeds


def _channel_table(
    flags: tuple[str, str],
) -> dict[tuple[Queue, bool, bool], tuple[Channel, ...] | None]:
    """Per queue and values of the two flags, the channels they name, looked up once per
    instruction rather than by name; None where a flag names a neighbour the queue lacks."""
    table: dict[tuple[Queue, bool, bool], tuple[Channel, ...] | None] = {}
    for q in Queue:
        for first, second in itertools.product((False, True), repeat=2):
            named = [(f, q) for f, on in zip(flags, (first, second), strict=True) if on]
            known = all(key in CHANNELS for key in named)
            table[q, first, second] = tuple(CHANNELS[key] for key in named) if known else None
    return table


_POPS = _channel_table(("pop_prev", "pop_next"))
_PUSHES = _channel_table(("push_prev", "push_next"))


class Token(NamedTuple):
    time: int
    clock: tuple[int, ...]  # the pusher's vector clock


class _Issue(NamedTuple):
    """An instruction waiting in its queue, with the channels it pops and pushes."""

    number: int  # in the program
    instruction: Instruction
    queue: Queue
    pops: tuple[Channel, ...]
    pushes: tuple[Channel, ...]


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
        self.clock = [[0, 0, 0] for _ in Queue]  # clock[q][p]: p's instructions q knows done
        # per unified buffer row, the sequence number (in its queue) of the last access:
        # rows 0-2 the last write, in the row of the queue that made it (zero in the others);
        # rows 3-5 the last read by each queue. One array, so that one reduction over an
        # instruction's rows gives everything its race check compares.
        self.seen = lazy_zeros((6, c.ub_rows), np.int64)
        self.records: list[Record] = []
        self.folds: list[int] = []
        self.useful = 0
        self.bytes = {"host_read": 0, "host_written": 0, "weights_read": 0}
        self.footprints: dict[type[Instruction], Callable[[Any], Footprint]] = {
            Rhm: self._rhm_footprint,
            Rw: self._rw_footprint,
            Mmc: self._mmc_footprint,
            Act: self._act_footprint,
            Whm: self._whm_footprint,
            Nop: lambda i: Footprint(),
        }

    def run(self, useful_macs: int | None) -> Result:
        with one_blas_thread():  # why: runtime/tpu/blas.py
            for segment in self._segments():
                self._run_segment(segment)
                self.timing.barrier()
                everything = [max(known) for known in zip(*self.clock, strict=True)]
                self.clock = [list(everything) for _ in Queue]  # after a SYNC, all know it all
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
        queues: list[deque[_Issue]] = [deque() for _ in Queue]
        for n, i in segment:
            q = i.queue
            assert q is not None
            pops, pushes = _POPS[q, i.pop_prev, i.pop_next], _PUSHES[q, i.push_prev, i.push_next]
            if pops is None or pushes is None:
                raise TpuError(
                    f"instruction {n}: {i.asm()} runs on the {q.name.lower()} queue, which has "
                    f"no such neighbour for its flags"
                )
            queues[q].append(_Issue(n, i, q, pops, pushes))
        for _ in range(len(segment)):
            chosen: deque[_Issue] | None = None
            earliest = 0
            for items in queues:  # in queue order: of two that could start together, the first
                if items and not self._blocked(items[0]):
                    time = self._earliest(items[0])
                    if chosen is None or time < earliest:
                        chosen, earliest = items, time
            if chosen is None:
                raise TpuError(self._deadlock(queues))
            self._step(chosen.popleft())

    def _blocked(self, issue: _Issue) -> bool:
        """Whether the instruction waits for a token or a weight tile (see `_blocker`)."""
        for ch in issue.pops:
            if not self.channels[ch]:
                return True
        i = issue.instruction
        return type(i) is Mmc and i.switch and not self.machine.fifo

    def _blocker(self, issue: _Issue) -> str | None:
        """What the instruction waits for, in words; None if it can go."""
        for ch in issue.pops:
            if not self.channels[ch]:
                return f"a token from the {ch[0].name.lower()} queue"
        i = issue.instruction
        if type(i) is Mmc and i.switch and not self.machine.fifo:
            return "a weight tile (no RW has read one)"
        return None

    def _earliest(self, issue: _Issue) -> int:
        earliest = self.timing.queue_free[issue.queue]
        for ch in issue.pops:
            earliest = max(earliest, self.channels[ch][0].time)
        return earliest

    def _deadlock(self, queues: list[deque[_Issue]]) -> str:
        lines = ["deadlock: no queue can go on"]
        for items in queues:
            if items:
                head = items[0]
                lines.append(
                    f"  {head.queue.name.lower()} queue waits at instruction {head.number}: "
                    f"{head.instruction.asm()} (needs {self._blocker(head)})"
                )
        return "\n".join(lines)

    def _step(self, issue: _Issue) -> None:
        n, i, q = issue.number, issue.instruction, issue.queue
        token_time = [0, 0, 0]  # when the popped tokens were pushed, by sender
        clock = self.clock[q]
        for ch in issue.pops:
            token = self.channels[ch].popleft()
            token_time[ch[0]] = token.time
            clock[:] = map(max, clock, token.clock)
        clock[q] += 1
        f = self.footprints[type(i)](i)
        self._check_races(n, i, q, f)
        if isinstance(i, Mmc):
            self._count_fold(i)
        self.machine.execute(i)
        if isinstance(i, Mmc):
            used_rows, used_cols = self.machine.tile_used
            self.useful += row_count(f.ub_read) * used_rows * used_cols
        slot = self.timing.schedule(i, q, token_time, f)
        for ch in issue.pushes:
            self.channels[ch].append(Token(slot.end, tuple(clock)))
        self.records.append(Record(n, i, q, slot.start, slot.end, slot.stall))

    def _count_fold(self, i: Mmc) -> None:
        if i.switch:
            self.folds.append(0)
        if not self.folds:
            raise TpuError(f"{i.asm()}: no weight tile in the array yet (switch=1 loads one)")
        self.folds[-1] += i.length

    # --- what each instruction touches ------------------------------------------------------

    def _rhm_footprint(self, i: Rhm) -> Footprint:
        rows = (i.pad_top + i.y_size + i.pad_bottom) * (i.pad_left + i.x_size + i.pad_right)
        nbytes = i.y_size * i.x_size * i.elems * self.c.input_dtype.itemsize
        self.bytes["host_read"] += nbytes
        return Footprint(ub_write=row_span(i.ub_addr, rows), host_bytes=nbytes)

    def _rw_footprint(self, i: Rw) -> Footprint:
        self.bytes["weights_read"] += i.tiles * self.c.tile_bytes
        return Footprint(weight_bytes=i.tiles * self.c.tile_bytes)

    def _mmc_footprint(self, i: Mmc) -> Footprint:
        ub, acc = self.machine.mmc_rows(i)
        return Footprint(ub_read=ub, acc_write=acc)

    def _act_footprint(self, i: Act) -> Footprint:
        c = self.c
        size = c.acc_dtype.itemsize if i.wide else c.input_dtype.itemsize
        k = self.machine.vector_rows(c.cols, size)
        if i.has_params:
            self.bytes["weights_read"] += c.cols * PARAM_BYTES
        written = row_span(i.ub_addr, i.rows * k)
        return Footprint(acc_read=row_span(i.acc_addr, i.rows), ub_write=written)

    def _whm_footprint(self, i: Whm) -> Footprint:
        c = self.c
        size = c.acc_dtype.itemsize if i.wide else c.input_dtype.itemsize
        count = i.y_size * i.x_size
        nbytes = count * i.elems * size
        self.bytes["host_written"] += nbytes
        k = self.machine.vector_rows(c.cols, size)
        return Footprint(ub_read=row_span(i.ub_addr, count * k), host_bytes=nbytes)

    # --- races ------------------------------------------------------------------------------

    def _in_buffer(self, rows: Rows) -> Rows | None:
        """The rows that exist (the handler refuses the others, after this check), or None."""
        if isinstance(rows, slice):
            stop = min(rows.stop, self.c.ub_rows)
            return slice(rows.start, stop) if stop > rows.start else None
        rows = rows[(rows >= 0) & (rows < self.c.ub_rows)]
        return rows if rows.size else None

    def _check_races(self, n: int, i: Instruction, q: Queue, f: Footprint) -> None:
        """An access to a row another queue wrote or read, not ordered by a token, is a race."""
        rows_read, rows_written = self._in_buffer(f.ub_read), self._in_buffer(f.ub_write)
        known = list(self.clock[q])  # the last instruction of each queue this one is after
        known[q] = _NEVER  # a queue's own instructions are in order
        late = False
        if rows_read is not None:  # another queue's write it does not know of
            last = np.maximum.reduce(self.seen[:3, rows_read], axis=1).tolist()
            late = any(s > k for s, k in zip(last, known, strict=True))
        if rows_written is not None and not late:  # ... or another queue's read
            last = np.maximum.reduce(self.seen[:, rows_written], axis=1).tolist()
            late = any(s > k for s, k in zip(last, known + known, strict=True))
        if late:
            self._explain_race(n, i, known, rows_read, rows_written)
        seq = self.clock[q][q]
        if rows_read is not None:
            self.seen[3 + q, rows_read] = seq
        if rows_written is not None:
            self.seen[:3, rows_written] = 0
            self.seen[q, rows_written] = seq

    def _explain_race(
        self,
        n: int,
        i: Instruction,
        known: list[int],
        rows_read: Rows | None,
        rows_written: Rows | None,
    ) -> NoReturn:
        """Name the first conflicting row: reads before writes, a write before a read."""
        clock = np.array(known, np.int64)
        every = np.arange(self.c.ub_rows)
        for verb, rows in (("reads", rows_read), ("writes", rows_written)):
            if rows is not None:
                writes = self.seen[:3, rows]
                writer, seqs = writes.argmax(axis=0), writes.max(axis=0)
                late = seqs > clock[writer]
                if late.any():
                    k = int(np.argmax(late))
                    row = int(every[rows][k])
                    self._race(n, i, verb, "written", row, int(seqs[k]), int(writer[k]))
        assert rows_written is not None, "a late read is only a race for a write"
        reads = self.seen[3:, rows_written]
        late = reads > clock[:, None]
        p, k = divmod(int(np.argmax(late)), late.shape[1])
        row = int(every[rows_written][k])
        self._race(n, i, "writes", "read", row, int(reads[p, k]), p)

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


__all__ = ["MODES", "Result", "Simulator", "Slot", "TpuError"]
