"""The compat timing mode agrees with SCALE-Sim to the cycle; native is never slower.

tests/tpu/data/scalesim.json holds SCALE-Sim 3.0.0's own counts (weight-stationary, CALC
bandwidth), produced by `python benchmarks/scalesim_check.py --scalesim-python <venv python>`.
Each case is compiled here the way a weight-stationary compiler tiles it: for a GEMM
M x K x N, per N tile and K tile one RW and one switching MMC that streams all M rows; for a
convolution the K tiles are (kh, kw, input-channel chunk) and each MMC streams OH x OW pixels
straight out of the image in the unified buffer. The programs load real data and store real
results, which must equal NumPy's integer product.

The code generator's own streams (codegen/tpu) are checked the same way. With unlimited
bandwidth it keeps every fold's M rows together, as SCALE-Sim does; with a finite host link it
may split M into row blocks to overlap transfers, which adds folds (so it is not compared there).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codegen.tpu.kernels import Epilogue
from runtime.tpu.config import TpuConfig, preset
from runtime.tpu.isa import Act, Halt, Instruction, Mmc, Rhm, Rw, Sync, Whm
from runtime.tpu.sim import Simulator
from tests.tpu.helpers import conv_program, gemm_program

DATA = json.loads((Path(__file__).parent / "data" / "scalesim.json").read_text())
CASES = {case["name"]: case for case in DATA["cases"]}


@dataclass
class Built:
    config: TpuConfig
    program: list[Instruction]
    host: np.ndarray
    weights: np.ndarray
    out: tuple[int, tuple[int, int]]  # host offset, (rows, N) int32
    expected: np.ndarray
    macs: int


def _config(case: dict[str, Any]) -> TpuConfig:
    rows, cols = case["array"]
    return preset(f"tiny-8x8:rows={rows},cols={cols}")


def _tiles(c: TpuConfig, w: np.ndarray) -> tuple[np.ndarray, dict[tuple[int, int], int]]:
    """The weight image of a (K, N) matrix cut into zero-padded tiles; tile (k0, n0) -> addr."""
    k, n = w.shape
    image, where = [], {}
    for n0 in range(0, n, c.cols):
        for k0 in range(0, k, c.rows):
            tile = np.zeros((c.rows, c.cols), np.int8)
            block = w[k0 : k0 + c.rows, n0 : n0 + c.cols]
            tile[: block.shape[0], : block.shape[1]] = block
            where[(k0, n0)] = len(image) * c.tile_bytes
            image.append(tile.view(np.uint8).ravel())
    return np.concatenate(image), where


def _store(c: TpuConfig, n: int, vectors: int, ub: int, out_addr: int) -> list[Instruction]:
    """Per N tile: accumulators -> unified buffer (int32) -> host, after all the multiplies."""
    per_vector = math.ceil(4 * c.cols / c.row_bytes)
    acts: list[Instruction] = []
    writes: list[Instruction] = []
    for nt, n0 in enumerate(range(0, n, c.cols)):
        at = ub + nt * vectors * per_vector
        acts.append(Act(acc_addr=nt * vectors, ub_addr=at, rows=vectors, wide=True))
        writes.append(
            Whm(
                host_addr=out_addr + 4 * n0,
                ub_addr=at,
                elems=min(c.cols, n - n0),
                wide=True,
                x_size=vectors,
                x_stride=4 * n,
            )
        )
    return [*acts, Sync(), *writes]


def build_gemm(case: dict[str, Any], rng: np.random.Generator) -> Built:
    c = _config(case)
    m, k, n = case["gemm"]
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = rng.integers(-128, 128, (k, n), dtype=np.int8)
    weights, where = _tiles(c, w)
    out_addr = m * k
    host = np.zeros(out_addr + 4 * m * n, np.uint8)
    host[: m * k] = a.view(np.uint8).ravel()
    program: list[Instruction] = []
    for kt, k0 in enumerate(range(0, k, c.rows)):  # the K chunk of every row of A
        program.append(
            Rhm(host_addr=k0, ub_addr=kt * m, elems=min(c.rows, k - k0), x_size=m, x_stride=k)
        )
    program.append(Sync())
    for nt, n0 in enumerate(range(0, n, c.cols)):
        for kt, k0 in enumerate(range(0, k, c.rows)):
            program.append(Rw(weight_addr=where[(k0, n0)]))
            program.append(
                Mmc(ub_addr=kt * m, acc_addr=nt * m, rows=m, switch=True, accumulate=kt > 0)
            )
    program += [Sync(), *_store(c, n, m, math.ceil(k / c.rows) * m, out_addr), Halt()]
    expected = a.astype(np.int64) @ w.astype(np.int64)
    return Built(c, program, host, weights, (out_addr, (m, n)), expected, m * k * n)


def build_conv(case: dict[str, Any], rng: np.random.Generator) -> Built:
    c = _config(case)
    h, w_, kh, kw, cin, f, s = case["conv"]
    assert cin % c.rows == 0, "the fold count matches SCALE-Sim's only for whole channel chunks"
    oh, ow = (h - kh) // s + 1, (w_ - kw) // s + 1
    x = rng.integers(-128, 128, (h, w_, cin), dtype=np.int8)
    w = rng.integers(-128, 128, (kh, kw, cin, f), dtype=np.int8)
    weights, where = _tiles(c, w.reshape(kh * kw * cin, f))
    out_addr = x.size
    host = np.zeros(out_addr + 4 * oh * ow * f, np.uint8)
    host[: x.size] = x.view(np.uint8).ravel()
    chunks = range(0, cin, c.rows)
    program: list[Instruction] = [
        Rhm(
            host_addr=c0,
            ub_addr=ct * h * w_,
            elems=c.rows,
            x_size=w_,
            x_stride=cin,
            y_size=h,
            y_stride=w_ * cin,
        )
        for ct, c0 in enumerate(chunks)
    ]
    program.append(Sync())
    vectors = oh * ow
    for nt, n0 in enumerate(range(0, f, c.cols)):
        first = True
        for i in range(kh):
            for j in range(kw):
                for ct, c0 in enumerate(chunks):
                    program.append(Rw(weight_addr=where[((i * kw + j) * cin + c0, n0)]))
                    program.append(
                        Mmc(
                            ub_addr=ct * h * w_ + i * w_ + j,
                            acc_addr=nt * vectors,
                            rows=ow,
                            outer=oh,
                            ub_stride=s,
                            ub_outer_stride=s * w_,
                            acc_outer_stride=ow,
                            switch=True,
                            accumulate=not first,
                        )
                    )
                    first = False
    program += [Sync(), *_store(c, f, vectors, len(chunks) * h * w_, out_addr), Halt()]
    patches = np.stack(
        [x[i : i + s * oh : s, j : j + s * ow : s] for i in range(kh) for j in range(kw)], axis=2
    )  # (oh, ow, taps, cin)
    expected = patches.reshape(vectors, -1).astype(np.int64) @ w.reshape(-1, f).astype(np.int64)
    return Built(
        c, program, host, weights, (out_addr, (vectors, f)), expected, expected.size * kh * kw * cin
    )


def build(name: str) -> Built:
    case = CASES[name]
    rng = np.random.default_rng(len(name))
    return build_gemm(case, rng) if "gemm" in case else build_conv(case, rng)


def test_the_data_came_from_scalesim_in_ws_calc_mode():
    assert DATA["tool"].startswith("scalesim 3.0.0")
    assert "dataflow ws" in DATA["settings"]
    assert "CALC" in DATA["settings"]
    assert len(CASES) == len(DATA["cases"]) >= 18
    arrays = {tuple(case["array"]) for case in DATA["cases"]}
    assert {(4, 4), (8, 8), (8, 4), (4, 8), (32, 32), (128, 128)} <= arrays
    for case in DATA["cases"]:
        assert case["stall_cycles"] == 0  # CALC mode sizes the bandwidth: compute only


@pytest.mark.parametrize("name", list(CASES))
def test_compat_cycles_equal_scalesim(name):
    case, b = CASES[name], build(name)
    result = Simulator(b.config, "compat").run(b.program, b.host, b.weights, useful_macs=b.macs)
    assert not result.problems, result.problems
    offset, shape = b.out
    got = b.host[offset : offset + 4 * shape[0] * shape[1]].view(np.int32).reshape(shape)
    assert np.array_equal(got, b.expected.astype(np.int32))
    assert result.stats.cycles == case["total_cycles"]
    assert result.stats.utilization * 100 == pytest.approx(case["overall_util_percent"], rel=1e-9)


@pytest.mark.parametrize("name", list(CASES))
def test_native_with_unlimited_bandwidth_is_never_slower(name):
    """The same weight loads and multiplies (SCALE-Sim models no host transfers)."""
    case, b = CASES[name], build(name)
    c = b.config.replace(weight_bandwidth=float("inf"), host_bandwidth=float("inf"))
    matrix = [
        dataclasses.replace(i, pop_prev=False, push_next=False)
        for i in b.program
        if isinstance(i, (Rw, Mmc))
    ]
    result = Simulator(c, "native").run([*matrix, Halt()], b.host, b.weights)
    folds = sum(isinstance(i, Mmc) for i in matrix)
    # native counts elapsed cycles, SCALE-Sim the index of the last one: one fold is a tie
    assert result.stats.cycles - 1 <= case["total_cycles"]
    if folds > 1:
        assert result.stats.cycles - 1 < case["total_cycles"]


@pytest.mark.parametrize("name", list(CASES))
def test_codegen_streams_agree_with_scalesim(name):
    case = CASES[name]
    c = _config(case).replace(weight_bandwidth=float("inf"), host_bandwidth=float("inf"))
    rng = np.random.default_rng(len(name))
    if "gemm" in case:
        m, k, n = case["gemm"]
        w = rng.integers(-128, 128, (k, n), dtype=np.int8)
        x = rng.integers(-128, 128, (m, k), dtype=np.int8)
        program = gemm_program(c, x.shape, w, Epilogue(wide=True))
        expected = x.astype(np.int64) @ w.astype(np.int64)
    else:
        h, w_, kh, kw, cin, f, s = case["conv"]
        w = rng.integers(-128, 128, (kh, kw, cin, f), dtype=np.int8)
        x = rng.integers(-128, 128, (1, h, w_, cin), dtype=np.int8)
        program = conv_program(c, x.shape, w, {"strides": (s, s)}, Epilogue(wide=True))
        oh, ow = (h - kh) // s + 1, (w_ - kw) // s + 1
        patches = np.stack(
            [x[0, i : i + s * oh : s, j : j + s * ow : s] for i in range(kh) for j in range(kw)],
            axis=2,
        )
        expected = patches.reshape(oh * ow, -1).astype(np.int64) @ w.reshape(-1, f).astype(np.int64)
        expected = expected.reshape(1, oh, ow, f)
    (out,), compat = program.run([x], "compat")
    assert np.array_equal(out, expected.astype(np.int32))
    assert compat.stats.cycles == case["total_cycles"]
    (out,), native = program.run([x], "native")
    assert np.array_equal(out, expected.astype(np.int32))
    folds = sum(isinstance(i, Mmc) and i.switch for i in program.instructions)
    # the matrix unit's part of the run; host transfers and activations are not in SCALE-Sim
    assert native.stats.matrix_cycles - 1 <= case["total_cycles"]
    if folds > 1:
        assert native.stats.matrix_cycles - 1 < case["total_cycles"]
