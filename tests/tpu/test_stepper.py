"""The cycle-stepping, PE-by-PE array against the fast models it referees.

Values: the stepper's accumulators equal the functional simulator's (`Machine`, BLAS for int8,
`column_sums_f32` for bf16) bit for bit. Time: serialized folds finish at SCALE-Sim's count
(`compat_cycles`), double-buffered folds exactly when the native timing model says, and a
schedule a cycle too eager is caught as a register hazard.
"""

from __future__ import annotations

import zlib
from typing import ClassVar

import numpy as np
import pytest

from codegen.tpu.kernels import Epilogue
from runtime.tpu import sim as sim_module
from runtime.tpu.config import TpuConfig, preset
from runtime.tpu.isa import Halt, Instruction, Mmc, Rw
from runtime.tpu.machine import Machine, column_sums_f32
from runtime.tpu.sim import Simulator
from runtime.tpu.stepper import StepHazard, measure_speed, step_matmul
from runtime.tpu.timing import NativeTiming, compat_cycles
from tests.tpu.helpers import conv_program, gemm_program

SHAPES = ["tiny-4x4", "tiny-8x8", "tiny-8x8:rows=8,cols=4", "tiny-8x8:rows=4,cols=8"]
SHAPES += ["tiny-8x8:rows=1,cols=7", "tiny-8x8:rows=7,cols=1", "tiny-4x4:rows=1,cols=1"]
CONFIGS = [*SHAPES, *(f"{s}{':' if ':' not in s else ','}multiplier=bf16" for s in SHAPES)]
LENGTHS = [1, 2, 3, 5, 7, 11, 13, 17, 31]  # vectors per fold: 1 and primes


def _values(c: TpuConfig, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    if c.multiplier == "int8":
        return rng.integers(-128, 128, shape).astype(np.int8)
    # wide exponents so that the f32 partial sums round, and some exact zeros
    x = rng.standard_normal(shape) * 2.0 ** rng.integers(-12, 12, shape)
    x[rng.random(shape) < 0.1] = 0
    return x.astype(c.input_dtype)


def _fast_path(
    c: TpuConfig,
    tiles: list[np.ndarray],
    inputs: list[np.ndarray],
    addrs: list[int],
    adds: list[bool],
    acc0: np.ndarray,
) -> np.ndarray:
    """The functional simulator's MMC handler on the same folds; its accumulators."""
    ub = np.concatenate(inputs)
    host = np.zeros(1, np.uint8)
    weights = np.concatenate([t.view(np.uint8).ravel() for t in tiles])
    m = Machine(c, host, weights)
    m.ub[: ub.shape[0], : c.rows * c.input_dtype.itemsize] = ub.view(np.uint8)
    m.acc[: acc0.shape[0]] = acc0
    m.execute(Rw(weight_addr=0, tiles=len(tiles)))
    first = 0
    for x, addr, add in zip(inputs, addrs, adds, strict=True):
        m.execute(Mmc(ub_addr=first, acc_addr=addr, rows=x.shape[0], switch=True, accumulate=add))
        first += x.shape[0]
    return m.acc[: acc0.shape[0]]


def _random_folds(
    c: TpuConfig, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray], list[int], list[bool]]:
    """K-tiled GEMM-like folds: runs of folds into the same rows, the first overwriting."""
    tiles, inputs, addrs, adds = [], [], [], []
    base = 0
    for _ in range(rng.integers(1, 4)):  # output tiles
        t = int(rng.choice(LENGTHS))
        for k in range(rng.integers(1, 4)):  # contraction tiles
            tiles.append(_values(c, rng, (c.rows, c.cols)))
            inputs.append(_values(c, rng, (t, c.rows)))
            addrs.append(base)
            adds.append(k > 0)
        base += t
    return tiles, inputs, addrs, adds


@pytest.mark.parametrize("spec", CONFIGS)
@pytest.mark.parametrize("double_buffered", [True, False])
def test_values_equal_the_fast_path(spec, double_buffered):
    c = preset(spec)
    rng = np.random.default_rng(zlib.crc32(f"{spec}{double_buffered}".encode()))
    for _ in range(30):
        tiles, inputs, addrs, adds = _random_folds(c, rng)
        acc0 = np.zeros(
            (max(a + x.shape[0] for a, x in zip(addrs, inputs, strict=True)), c.cols), c.acc_dtype
        )
        want = _fast_path(c, tiles, inputs, addrs, adds, acc0)
        got = step_matmul(
            c, tiles, inputs, acc_addrs=addrs, accumulate=adds, double_buffered=double_buffered
        )
        assert got.acc.dtype == want.dtype
        assert np.array_equal(got.acc.view(np.uint32), want.view(np.uint32))  # bit for bit


def test_bf16_sums_follow_the_column_order_not_another():
    """The bf16 inputs round in f32, so the order is observable: top-down, not bottom-up."""
    c = preset("tiny-8x8:multiplier=bf16")
    rng = np.random.default_rng(2)
    w, x = _values(c, rng, (c.rows, c.cols)), _values(c, rng, (64, c.rows))
    got = step_matmul(c, [w], [x]).outputs[0]
    bottom_up = np.zeros_like(got)
    for k in reversed(range(c.rows)):
        bottom_up += x[:, k, None].astype(np.float32) * w[None, k].astype(np.float32)
    assert not np.array_equal(got, bottom_up)
    assert np.array_equal(got, column_sums_f32(x.astype(np.float32), w.astype(np.float32)))


@pytest.mark.parametrize("spec", ["tiny-4x4", "tiny-8x8:rows=8,cols=4"])
def test_int32_accumulators_wrap_like_the_fast_path(spec):
    c = preset(spec)
    rng = np.random.default_rng(7)
    tiles = [np.full((c.rows, c.cols), 127, np.int8), np.full((c.rows, c.cols), -128, np.int8)]
    inputs = [np.full((5, c.rows), 127, np.int8), rng.integers(-128, 128, (5, c.rows), np.int8)]
    acc0 = np.full((5, c.cols), np.iinfo(np.int32).max - 1000, np.int32)
    want = _fast_path(c, tiles, inputs, [0, 0], [True, True], acc0)
    got = step_matmul(c, tiles, inputs, accumulate=[True, True], acc=acc0)
    assert (want < 0).any()  # it did wrap
    assert np.array_equal(got.acc, want)


@pytest.mark.parametrize("spec", SHAPES)
def test_serialized_folds_take_the_published_count(spec):
    c = preset(spec)
    rng = np.random.default_rng(3)
    lengths = [int(t) for t in rng.choice(LENGTHS, 5)]
    tiles = [_values(c, rng, (c.rows, c.cols)) for _ in lengths]
    inputs = [_values(c, rng, (t, c.rows)) for t in lengths]
    got = step_matmul(c, tiles, inputs, double_buffered=False)
    per_fold = [2 * c.rows + c.cols + t - 2 for t in lengths]
    for f, done in enumerate(got.done):
        assert done[-1] == sum(per_fold[: f + 1]) - 1  # SCALE-Sim's last-cycle index
        assert list(done) == [
            got.stream_starts[f] + t + c.rows + c.cols - 2 for t in range(len(done))
        ]
    assert got.done[-1][-1] == compat_cycles(c, lengths)[0]


def _native_mmc_records(
    c: TpuConfig, lengths: list[int], split: bool = False
) -> list[tuple[int, int]]:
    """(start, end) of each fold in the native model, for one RW of all tiles; `split` streams
    each fold of more than one vector with two MMCs, the second reusing the tile."""
    program: list[Instruction] = [Rw(weight_addr=0, tiles=len(lengths))]
    acc = 0
    for t in lengths:
        first = t // 2 if split and t > 1 else t
        program.append(Mmc(ub_addr=0, acc_addr=acc, rows=first, switch=True))
        if first < t:
            program.append(Mmc(ub_addr=0, acc_addr=acc + first, rows=t - first))
        acc += t
    program.append(Halt())
    weights = np.zeros(len(lengths) * c.tile_bytes, np.uint8)
    result = Simulator(c, "native").run(program, np.zeros(1, np.uint8), weights)
    folds: list[tuple[int, int]] = []
    for r in result.records:
        if isinstance(r.instruction, Mmc):
            if r.instruction.switch:
                folds.append((r.start, r.end))
            else:
                folds[-1] = (folds[-1][0], r.end)
    return folds


@pytest.mark.parametrize("spec", SHAPES)
def test_double_buffered_folds_match_the_native_model(spec):
    c = preset(spec).replace(weight_bandwidth=float("inf"), host_bandwidth=float("inf"))
    rng = np.random.default_rng(5)
    for lengths in ([1], [1, 1, 1], [c.rows] * 3, [31, 2, 17, 1, 5], [3, 40, 1, 1, 9]):
        tiles = [_values(c, rng, (c.rows, c.cols)) for _ in lengths]
        inputs = [_values(c, rng, (t, c.rows)) for t in lengths]
        got = step_matmul(c, tiles, inputs)
        for split in (False, True):
            native = _native_mmc_records(c, lengths, split)
            assert got.stream_starts == [start for start, _ in native]
            assert [int(d[-1]) + 1 for d in got.done] == [end for _, end in native]
        for start, done in zip(got.stream_starts, got.done, strict=True):  # acc_ready - 1
            assert list(done) == [start + t + c.rows + c.cols - 2 for t in range(len(done))]
        assert got.cycles <= compat_cycles(c, lengths)[0] + 1  # never slower than serialized


@pytest.mark.parametrize("spec", ["tiny-4x4", "tiny-8x8:rows=8,cols=4", "tiny-8x8:rows=4,cols=8"])
def test_weight_bandwidth_limit_matches_the_native_model(spec):
    """Tiles that arrive one per `tile_cycles` (a deep FIFO, so only the link limits)."""
    base = preset(spec).replace(host_bandwidth=float("inf"), weight_fifo_tiles=64)
    for tile_cycles in (1, base.rows + 3, 3 * base.rows):
        c = base.replace(weight_bandwidth=base.tile_bytes / (tile_cycles - 0.5) * base.clock_hz)
        assert NativeTiming(c).tile_cycles == tile_cycles
        rng = np.random.default_rng(tile_cycles)
        lengths = [int(t) for t in rng.choice(LENGTHS, 6)]
        tiles = [_values(c, rng, (c.rows, c.cols)) for _ in lengths]
        inputs = [_values(c, rng, (t, c.rows)) for t in lengths]
        arrivals = [(f + 1) * tile_cycles for f in range(len(lengths))]
        got = step_matmul(c, tiles, inputs, arrivals=arrivals)
        native = _native_mmc_records(c, lengths)
        assert got.stream_starts == [start for start, _ in native]
        assert [int(d[-1]) + 1 for d in got.done] == [end for _, end in native]


def test_an_eager_schedule_is_a_hazard():
    c = preset("tiny-8x8:rows=8,cols=4")
    rng = np.random.default_rng(11)
    # fold 1 waits for fold 0's long stream, so tile 2 can shift in while fold 1 has not yet
    # swapped; fold 3 is short-behind-short: its start is bound by its tile's latch
    lengths = [2 * c.rows, 3, 2, 5]
    tiles = [_values(c, rng, (c.rows, c.cols)) for _ in lengths]
    inputs = [_values(c, rng, (t, c.rows)) for t in lengths]
    ok = step_matmul(c, tiles, inputs)
    plan = list(zip(ok.shift_starts, ok.stream_starts, strict=True))
    assert plan[3][1] == plan[3][0] + c.rows  # latch-bound
    replay = step_matmul(c, tiles, inputs, schedule=plan)
    assert np.array_equal(replay.acc, ok.acc)
    assert replay.cycles == ok.cycles

    early_stream = [*plan[:3], (plan[3][0], plan[3][1] - 1)]  # before its tile is latched
    with pytest.raises(StepHazard, match="switches to tile 3 but its shadow register holds tile 2"):
        step_matmul(c, tiles, inputs, schedule=early_stream)
    early_shift = [*plan[:2], (plan[1][1] - 1, plan[2][1]), plan[3]]  # before fold 1 swapped
    with pytest.raises(StepHazard, match="switches to tile 1 but its shadow register holds tile 2"):
        step_matmul(c, tiles, inputs, schedule=early_shift)
    overlap = [plan[0], (plan[1][0], plan[0][1] + lengths[0] - 1), *plan[2:]]
    with pytest.raises(StepHazard, match="while fold 0 streams"):
        step_matmul(c, tiles, inputs, schedule=overlap)
    crowded = [*plan[:2], (plan[1][0] + c.rows - 1, plan[2][1]), plan[3]]  # two tiles, one chain
    with pytest.raises(StepHazard, match="before tile 1 left it"):
        step_matmul(c, tiles, inputs, schedule=crowded)


class _RecordingMachine(Machine):
    """The functional simulator, keeping each MMC's operands and results for a replay."""

    log: ClassVar[list[dict[str, np.ndarray | bool]]] = []

    def mmc(self, i: Mmc) -> None:
        c = self.config
        ub, acc = self.mmc_rows(i)
        before = self.acc[acc].copy()
        super().mmc(i)
        assert self.tile is not None
        # a copy: a run of rows indexes as a view, which later loads would overwrite
        x = self.ub[ub, : c.rows * c.input_dtype.itemsize].view(c.input_dtype).copy()
        tile = self.tile.astype(c.input_dtype)
        self.log.append(
            {
                "x": x,
                "tile": tile,
                "before": before,
                "after": self.acc[acc].copy(),
                "add": i.accumulate,
            }
        )


@pytest.mark.parametrize("spec", ["tiny-4x4", "tiny-8x8:rows=8,cols=4", "tiny-4x4:multiplier=bf16"])
def test_compiled_programs_replay_on_the_stepper(spec, monkeypatch):
    """Every MMC of compiled GEMMs and convolutions (strided, padded, accumulating), replayed
    PE by PE from the same operands, leaves the same accumulators bit for bit."""
    c = preset(spec)
    monkeypatch.setattr(sim_module, "Machine", _RecordingMachine)
    monkeypatch.setattr(_RecordingMachine, "log", [])
    rng = np.random.default_rng(9)
    programs = [
        (gemm_program(c, (13, 11), _values(c, rng, (11, 7)), Epilogue(wide=True)), (13, 11)),
        (gemm_program(c, (1, 5), _values(c, rng, (5, 9)), Epilogue(wide=True)), (1, 5)),
    ]
    if c.multiplier == "int8":
        attrs = {"strides": (2, 1), "padding": ((1, 1), (2, 0))}
        conv = conv_program(
            c, (1, 7, 6, 5), _values(c, rng, (3, 2, 5, 6)), attrs, Epilogue(wide=True)
        )
        programs.append((conv, (1, 7, 6, 5)))
    for program, shape in programs:
        program.run([_values(c, rng, shape)])
    log = _RecordingMachine.log
    assert len(log) >= 10
    for op in log:
        got = step_matmul(
            c, [op["tile"]], [op["x"]], accumulate=[bool(op["add"])], acc=op["before"]
        )
        assert np.array_equal(got.acc.view(np.uint32), np.asarray(op["after"]).view(np.uint32))


def test_measure_speed_reports_pe_cycles():
    r = measure_speed("tiny-8x8", vectors=16, folds=2, repeats=1)
    assert r["pe_cycles_per_s"] == pytest.approx(r["cycles"] * 64 / r["seconds"])
    assert r["cycles"] == 8 + 16 + 16 + 8 + 8 - 2  # shift, two streams, drain
