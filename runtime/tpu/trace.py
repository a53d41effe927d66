"""A run's timeline, for people: which unit of the chip did what, when, and why it waited.

`write_trace` writes Chrome trace-event JSON (open it in ui.perfetto.dev or chrome://tracing):
one track per unit, one event per instruction, with its assembly line, its cycles and the
stall cycles the timing model charged to it. Times are microseconds at the chip's clock.

The simulator records when each instruction started and ended; two views are derived here:

- `array_segments`: the matrix unit's time split into streaming and the stall causes the
  model attributed to the idle gap before each MMC. The utilization plot and the trace's stall
  events both come from it, so they cannot disagree.
- `weight_tiles`: when each weight tile was fetched and shifted into the array. The records do
  not carry that, so it is replayed from the RW and MMC records by the rules of the native
  model (runtime/tpu/timing.py, NativeTiming._tile_shift); tests check the replay against the
  stalls the model recorded.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from ir.files import write_text_atomic
from runtime.tpu.isa import Act, Mmc, Nop, Queue, Rhm, Rw, Whm
from runtime.tpu.sim import Result
from runtime.tpu.stats import LABELS, Record
from runtime.tpu.timing import CATEGORIES

# tracks, top to bottom, in the order data flows through the chip
LOAD, WEIGHT_DMA, WEIGHT_SHIFT, MATRIX, ACTIVATION, STORE, CONTROL = range(7)
TRACKS = (
    "load DMA (host -> unified buffer)",
    "weight DMA (weight memory -> FIFO)",
    "weight shift (FIFO -> array)",
    "matrix unit",
    "activation unit",
    "store DMA (unified buffer -> host)",
    "token-only (nop)",
)
# where the gap before an MMC ends: the shift comes last, right before the stream starts
_STALL_ORDER = (
    "weight_shift",
    *(k for k in CATEGORIES if k not in ("array_active", "weight_shift")),
)


@dataclass
class Span:
    """One event on one track: [start, end) in cycles, end clipped so a track never overlaps."""

    track: int
    name: str
    category: str  # "instruction", "stall" or "weight"
    start: int
    end: int
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tile:
    """One weight tile's way into the array (native timing; compat has no fetch)."""

    number: int
    rw_index: int  # the RW that requested it
    mmc_index: int  # the switching MMC that made it active
    requested: int
    fetch_start: int | None
    arrival: int | None
    shift_start: int
    shift_end: int


def streaming_end(r: Record) -> int:
    """When an MMC's last input vector entered the array: the unit is free for the next one."""
    assert isinstance(r.instruction, Mmc)
    return min(r.end, r.start + r.instruction.length)


def array_segments(result: Result) -> list[tuple[str, int, int]]:
    """(category, start, end) of streaming and of each attributed stall, in time order.

    The timing model charges the idle gap before each MMC to causes (`Record.stall`) and lays
    them out with the weight shift last; cycles covered by no segment are non-matrix time
    (draining, activation, stores). In the native mode the segments and that remainder add up
    to the run's breakdown exactly.
    """
    segments: list[tuple[str, int, int]] = []
    mmcs = sorted((r for r in result.records if isinstance(r.instruction, Mmc)), key=_start)
    previous_end = 0
    for r in mmcs:
        t = r.start
        stalls = []
        for category in _STALL_ORDER:
            lo = max(previous_end, t - r.stall.get(category, 0))
            if lo < t:
                stalls.append((category, lo, t))
                t = lo
        segments += reversed(stalls)
        end = streaming_end(r)
        segments.append(("array_active", r.start, end))
        previous_end = max(previous_end, end)
    return segments


def weight_tiles(result: Result) -> list[Tile]:
    """Replay the weight path: FIFO slots, the serial weight DMA, the shift into the shadow."""
    c, native = result.stats.config, result.stats.mode == "native"
    requests: list[tuple[int, int]] = []  # per tile: (request time, RW index)
    tiles: list[Tile] = []
    tile_cycles = math.ceil(c.tile_bytes / c.weight_bytes_per_cycle)
    dma_free = switch_start = 0
    for r in result.records:
        if isinstance(r.instruction, Rw):
            requests += [(r.start, r.index)] * r.instruction.tiles
        if not (isinstance(r.instruction, Mmc) and r.instruction.switch):
            continue
        j = len(tiles)
        if j >= len(requests):
            break  # the simulator refuses such programs; nothing sensible to draw
        requested, rw_index = requests[j]
        if not native:  # memory is free; the shift is the `rows` cycles before the fold
            tiles.append(
                Tile(j, rw_index, r.index, requested, None, None, r.start - c.rows, r.start)
            )
            continue
        depth = c.weight_fifo_tiles
        slot_free = tiles[j - depth].shift_end if j >= depth else 0
        fetch_start = max(requested, dma_free, slot_free)
        arrival = dma_free = fetch_start + tile_cycles
        shift_start = max(arrival, switch_start)
        tiles.append(
            Tile(
                j,
                rw_index,
                r.index,
                requested,
                fetch_start,
                arrival,
                shift_start,
                shift_start + c.rows,
            )
        )
        switch_start = r.start
    return tiles


def _start(r: Record) -> tuple[int, int]:
    return r.start, r.index


def _track(r: Record) -> int:
    i = r.instruction
    if isinstance(i, (Rhm, Rw)):
        return LOAD
    if isinstance(i, Mmc):
        return MATRIX
    if isinstance(i, Act):
        return ACTIVATION
    if isinstance(i, Whm):
        return STORE
    assert isinstance(i, Nop), i
    return CONTROL


def _instruction_span(r: Record) -> Span:
    i = r.instruction
    args: dict[str, Any] = {
        "index": r.index,
        "asm": i.asm(),
        "queue": Queue(r.queue).name.lower(),
        "start_cycle": r.start,
        "end_cycle": r.end,
        "cycles": r.end - r.start,
    }
    end = r.end
    if isinstance(i, Mmc):
        end = streaming_end(r)
        args["vectors"] = i.length
        args["results_in_accumulators_cycle"] = r.end
    if isinstance(i, Rw):
        args["tiles"] = i.tiles
    if r.stall:
        args["stall_cycles_before"] = dict(r.stall)
        args["stall_total"] = sum(r.stall.values())
    return Span(_track(r), i.mnemonic, "instruction", r.start, end, args)


def timeline(result: Result) -> list[Span]:
    """Every instruction, stall and weight tile as spans; per track sorted and not overlapping.

    An instruction's unit can take the next one before the first one's results have landed
    (the activation unit's pipeline latency); such an event is drawn up to the next one's start
    and keeps its real end in `end_cycle`.
    """
    spans = [_instruction_span(r) for r in result.records]
    for category, start, end in array_segments(result):
        if category != "array_active":
            spans.append(Span(MATRIX, LABELS[category], "stall", start, end, {"cause": category}))
    for t in weight_tiles(result):
        info = {"tile": t.number, "requested_by": t.rw_index, "used_by": t.mmc_index}
        if t.fetch_start is not None and t.arrival is not None:
            fetch = {**info, "requested_cycle": t.requested, "wait": t.fetch_start - t.requested}
            spans.append(Span(WEIGHT_DMA, "tile fetch", "weight", t.fetch_start, t.arrival, fetch))
        spans.append(Span(WEIGHT_SHIFT, "tile shift", "weight", t.shift_start, t.shift_end, info))
    by_track: dict[int, list[Span]] = {}
    for s in sorted(spans, key=lambda s: (s.track, s.start, s.end)):
        by_track.setdefault(s.track, []).append(s)
    for track in by_track.values():
        for s, after in itertools.pairwise(track):
            s.end = max(s.start, min(s.end, after.start))
    return [s for track in by_track.values() for s in track]


def trace_events(result: Result) -> dict[str, Any]:
    """The run as a Chrome trace-event JSON object."""
    stats = result.stats
    c = stats.config
    us_per_cycle = 1e6 / c.clock_hz
    title = f"TPU {c.name} ({c.rows}x{c.cols} {c.multiplier}, {stats.mode} timing)"
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": title}},
    ]
    for tid, name in enumerate(TRACKS):
        events.append(
            {"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": name}}
        )
        events.append(
            {
                "name": "thread_sort_index",
                "ph": "M",
                "pid": 1,
                "tid": tid,
                "args": {"sort_index": tid},
            }
        )
    for s in timeline(result):
        ts = round(s.start * us_per_cycle, 6)
        events.append(
            {
                "name": s.name,
                "cat": s.category,
                "ph": "X",
                "pid": 1,
                "tid": s.track,
                "ts": ts,
                "dur": max(0.0, round(s.end * us_per_cycle, 6) - ts),
                "args": s.args,
            }
        )
    return {
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {**stats.as_dict(), "problems": list(result.problems)},
    }


def write_trace(result: Result, path: str | os.PathLike[str]) -> None:
    """Write the timeline as Chrome trace JSON; `path` appears complete or not at all."""
    write_text_atomic(path, json.dumps(trace_events(result), indent=None, separators=(",", ":")))
