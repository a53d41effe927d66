"""The run report: the trace timeline, the roofline and utilization plots, the report files.

The plots are read back as XML and their markers mapped back through the axes they state, so
these tests check that what is drawn is where the numbers say, not just that a file exists.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codegen.tpu.kernels import Epilogue
from runtime.tpu import plots, trace
from runtime.tpu.config import preset
from runtime.tpu.isa import Halt, Mmc
from runtime.tpu.sim import Result, Simulator
from runtime.tpu.stats import LABELS
from runtime.tpu.timing import CATEGORIES
from tests.tpu.helpers import gemm_program

SVG = "{http://www.w3.org/2000/svg}"
# weight-bound (slow weight link, one FIFO slot), input-bound and balanced runs, both timings
RUNS = [
    ("tiny-4x4:weight_bandwidth=1e9,weight_fifo_tiles=1", (9, 30, 13), "native"),
    ("tiny-4x4:weight_bandwidth=1e9", (9, 30, 13), "native"),
    ("tiny-8x8:host_bandwidth=1e9", (37, 20, 19), "native"),
    ("tiny-8x8:rows=8,cols=4", (1, 7, 1), "native"),
    ("tiny-8x8", (3, 20, 19), "native"),  # fewer vectors than rows: every shift is exposed
    ("tiny-8x8", (37, 20, 19), "compat"),
]


def gemm_run(spec: str, shape: tuple[int, int, int], mode: str = "native") -> Result:
    m, k, n = shape
    c = preset(spec)
    rng = np.random.default_rng(m * 10_000 + k * 100 + n)
    x = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = rng.integers(-128, 128, (k, n), dtype=np.int8)
    (out,), result = gemm_program(c, x.shape, w, Epilogue(wide=True)).run([x], mode)
    np.testing.assert_array_equal(out, x.astype(np.int32) @ w.astype(np.int32))
    return result


@pytest.fixture(scope="module", params=RUNS, ids=[f"{s}-{m}" for s, _, m in RUNS])
def run(request: pytest.FixtureRequest) -> Result:
    spec, shape, mode = request.param
    return gemm_run(spec, shape, mode)


@pytest.fixture(scope="module")
def weight_bound() -> Result:
    return gemm_run(*RUNS[0])


def svg_root(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    return root


class Axes:
    """The pixel <-> data mapping a plot states on its `plot` group."""

    def __init__(self, root: ET.Element) -> None:
        g = find(root, f".//{SVG}g[@id='plot']")
        self.a = {k[5:]: float(v) for k, v in g.attrib.items() if k.startswith("data-")}

    def data(self, px: float, py: float) -> tuple[float, float]:
        a = self.a
        x = a["x0"] + (px - a["left"]) / a["width"] * (a["x1"] - a["x0"])
        y = a["y0"] + (a["top"] + a["height"] - py) / a["height"] * (a["y1"] - a["y0"])
        return (10**x, 10**y) if a["log"] else (x, y)


def find(root: ET.Element, path: str) -> ET.Element:
    element = root.find(path)
    assert element is not None, path
    return element


def points_of(element: ET.Element) -> list[tuple[float, float]]:
    pairs = element.attrib["points"].split()
    return [(float(x), float(y)) for x, y in (p.split(",") for p in pairs)]


# ---- trace ----------------------------------------------------------------------------------


def test_trace_has_one_event_per_instruction_in_track_order(run: Result, tmp_path: Path) -> None:
    path = tmp_path / "trace.json"
    trace.write_trace(run, path)
    doc = json.loads(path.read_text())
    events = doc["traceEvents"]
    instructions = [e for e in events if e.get("cat") == "instruction"]
    assert sorted(e["args"]["index"] for e in instructions) == sorted(r.index for r in run.records)
    us = 1e6 / run.stats.config.clock_hz
    by_index = {r.index: r for r in run.records}
    for e in instructions:
        r = by_index[e["args"]["index"]]
        assert e["args"]["asm"] == r.instruction.asm()
        assert (e["args"]["start_cycle"], e["args"]["end_cycle"]) == (r.start, r.end)
        assert e["ts"] == pytest.approx(r.start * us, abs=1e-6)
        assert e["args"].get("stall_cycles_before", {}) == r.stall
        if isinstance(r.instruction, Mmc):  # the array is busy while the vectors stream in
            assert e["dur"] == pytest.approx(r.instruction.length * us, abs=2e-6)
    tracks: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            assert e["dur"] >= 0
            tracks[e["tid"]].append(e)
    named = {e["tid"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert set(tracks) <= named
    for track in tracks.values():  # in file order, each event ends before the next begins
        for a, b in itertools.pairwise(track):
            assert a["ts"] <= b["ts"]
            assert a["ts"] + a["dur"] <= b["ts"] + 1e-6
    assert doc["otherData"]["cycles"] == run.stats.cycles


def test_trace_shows_each_unit_on_its_own_track(weight_bound: Result) -> None:
    events = trace.trace_events(weight_bound)["traceEvents"]
    names = {e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert names == set(trace.TRACKS)
    used = {(e["tid"], e["name"]) for e in events if e["ph"] == "X"}
    expected = {
        (trace.LOAD, "rhm"),
        (trace.LOAD, "rw"),
        (trace.WEIGHT_DMA, "tile fetch"),
        (trace.WEIGHT_SHIFT, "tile shift"),
        (trace.MATRIX, "mmc"),
        (trace.MATRIX, LABELS["weight_stall"]),
        (trace.ACTIVATION, "act"),
        (trace.STORE, "whm"),
    }
    assert expected <= used


def test_weight_replay_agrees_with_the_recorded_stalls(run: Result) -> None:
    """The replayed tile shifts end before their MMC starts, exactly when it waited for one."""
    c = run.stats.config
    by_index = {r.index: r for r in run.records}
    switching = [r for r in run.records if isinstance(r.instruction, Mmc) and r.instruction.switch]
    tiles = trace.weight_tiles(run)
    assert [t.mmc_index for t in tiles] == [r.index for r in switching]
    for t in tiles:
        mmc = by_index[t.mmc_index]
        assert t.shift_end - t.shift_start == c.rows
        assert t.shift_end <= mmc.start
        if mmc.stall.get("weight_shift"):
            assert t.shift_end == mmc.start
        if mmc.stall.get("weight_stall"):  # the link was the limit: the shift began on arrival
            assert t.shift_start == t.arrival
    fetches = [
        (t.fetch_start, t.arrival)
        for t in tiles
        if t.fetch_start is not None and t.arrival is not None
    ]
    for (_, end), (start, _) in itertools.pairwise(fetches):
        assert end <= start  # one weight DMA engine, one tile at a time


def test_weight_stalls_show_up_in_a_weight_bound_run(weight_bound: Result) -> None:
    assert weight_bound.stats.breakdown["weight_stall"] > 0
    tiles = trace.weight_tiles(weight_bound)
    # one FIFO slot: a tile is fetched only after the previous one has shifted into the array
    for previous, t in itertools.pairwise(tiles):
        assert t.fetch_start is not None
        assert t.fetch_start >= previous.shift_end


# ---- utilization ----------------------------------------------------------------------------


def test_segments_and_buckets_add_up_to_the_breakdown(run: Result) -> None:
    stats = run.stats
    totals = dict.fromkeys(CATEGORIES, 0)
    previous = 0
    for category, start, end in trace.array_segments(run):
        assert previous <= start < end <= stats.cycles
        totals[category] += end - start
        previous = end
    for category in CATEGORIES[:-1]:
        # SCALE-Sim's count is one cycle short on the first weight load
        slack = 1 if stats.mode == "compat" and category == "weight_shift" else 0
        assert abs(totals[category] - stats.breakdown[category]) <= slack
    edges, shares = plots.bucket_shares(run, buckets=37)
    assert len(edges) == min(37, stats.cycles) + 1
    np.testing.assert_allclose(sum(shares.values()), 1.0, atol=1e-9)
    for category in CATEGORIES[:-1]:
        cycles = float((shares[category] * np.diff(edges)).sum())
        assert cycles == pytest.approx(totals[category], abs=1e-6)


def test_utilization_svg_draws_the_bucket_shares(run: Result) -> None:
    root = svg_root(plots.utilization_svg(run, buckets=50))
    axes = Axes(root)
    edges, shares = plots.bucket_shares(run, buckets=50)
    n = len(edges) - 1
    assert axes.a["buckets"] == n
    bands = {p.attrib["data-category"]: p for p in root.iter(f"{SVG}polygon")}
    assert list(bands) == list(CATEGORIES)
    active = points_of(bands["array_active"])
    assert len(active) == 4 * n
    tops = [axes.data(*xy)[1] for xy in active[: 2 * n : 2]]
    np.testing.assert_allclose(tops, shares["array_active"], atol=0.01)
    uppermost = [axes.data(*xy)[1] for xy in points_of(bands["non_matrix"])[: 2 * n]]
    np.testing.assert_allclose(uppermost, 1.0, atol=0.01)
    legend = [t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == "legend"]
    assert [s.split("  ")[0] for s in legend] == [LABELS[k] for k in reversed(CATEGORIES)]


def test_an_empty_program_gets_empty_plots(tmp_path: Path) -> None:
    c = preset("tiny-4x4")
    result = Simulator(c).run([Halt()], np.zeros(64, np.uint8), np.zeros(16, np.uint8))
    assert result.stats.cycles == 0
    root = svg_root(plots.utilization_svg(result))
    assert len(list(root.iter(f"{SVG}polygon"))) == len(CATEGORIES)
    plots.write_report(result, tmp_path)
    roof = svg_root((tmp_path / "roofline.svg").read_text())
    assert not [e for e in roof.iter(f"{SVG}circle") if e.get("class") == "run"]
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    assert not [e for e in events if e["ph"] == "X"]


# ---- roofline -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["tpu-v1", "tpu-v2-core", "tiny-4x4", "tiny-8x8:rows=8,cols=4"])
def test_roofline_draws_the_roof_through_the_ridge(spec: str) -> None:
    c = preset(spec)
    peak = c.peak_ops / 1e12
    roof = [
        plots.RoofPoint(
            "below the ridge", c.ridge / 50, 0.5 * 2 * c.weight_bandwidth * c.ridge / 50e12
        ),
        plots.RoofPoint("past the ridge", c.ridge * 4, 0.9 * peak),
    ]
    root = svg_root(plots.roofline_svg(roof, c))
    axes = Axes(root)
    vertices = [axes.data(*xy) for xy in points_of(find(root, f".//{SVG}polyline[@id='roof']"))]
    for x, y in vertices:
        assert y == pytest.approx(min(peak, 2 * c.weight_bandwidth * x / 1e12), rel=2e-3)
    assert any(
        x == pytest.approx(c.ridge, rel=2e-3) and y == pytest.approx(peak, rel=2e-3)
        for x, y in vertices
    )
    (x0, y0), (x1, y1) = vertices[:2]
    assert math.log10(y1 / y0) / math.log10(x1 / x0) == pytest.approx(1.0, rel=1e-2)
    ridge = find(root, f".//{SVG}circle[@id='ridge']")
    assert axes.data(float(ridge.attrib["cx"]), float(ridge.attrib["cy"]))[0] == pytest.approx(
        c.ridge, rel=2e-3
    )
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert f"ridge {c.ridge:,.0f}" in texts
    assert "TOPS" in texts


def test_roofline_has_one_labeled_point_per_run() -> None:
    c = preset("tiny-4x4:weight_bandwidth=1e9")
    runs = [gemm_run(c.name, shape) for shape in [(1, 4, 4), (9, 30, 13), (40, 8, 8)]]
    labels = ["batch 1", "9 x 30 x 13", "<conv & relu> 'q'"]
    empty = plots.RoofPoint("no MACs", 0.0, 0.0)
    root = svg_root(
        plots.roofline_svg([*zip(labels, (r.stats for r in runs), strict=True), empty], c)
    )
    axes = Axes(root)
    markers = [e for e in root.iter(f"{SVG}circle") if e.get("class") == "run"]
    assert [m.attrib["data-label"] for m in markers] == labels
    for m, r in zip(markers, runs, strict=True):
        x, y = axes.data(float(m.attrib["cx"]), float(m.attrib["cy"]))
        assert x == pytest.approx(r.stats.intensity, rel=2e-3)
        assert y == pytest.approx(r.stats.tops, rel=2e-3)
        assert r.stats.tops <= r.stats.roof_tops() * (1 + 1e-9)
    numbers = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "run-label"]
    assert numbers == ["1", "2", "3"]
    legend = [t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == "legend"]
    assert legend == [f"{n}  {label}" for n, label in enumerate(labels, 1)]
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert "not plotted (no MACs): no MACs" in texts


def test_unit_busy_counts_each_unit_once(run: Result) -> None:
    busy = plots.unit_busy(run)
    assert all(0 <= cycles <= run.stats.cycles for cycles in busy.values())
    assert busy[trace.TRACKS[trace.MATRIX]] == sum(
        r.instruction.length for r in run.records if isinstance(r.instruction, Mmc)
    )
    # a queue runs one DMA at a time, so its busy cycles are its instructions' durations
    for track, mnemonic in ((trace.STORE, "whm"), (trace.LOAD, "rhm")):
        durations = [r.end - r.start for r in run.records if r.instruction.mnemonic == mnemonic]
        assert busy[trace.TRACKS[track]] == sum(durations)
    if run.stats.mode == "native":
        assert busy[trace.TRACKS[trace.MATRIX]] == run.stats.breakdown["array_active"]


# ---- report files ---------------------------------------------------------------------------

FILES = ["report.txt", "stats.json", "trace.json", "roofline.svg", "utilization.svg"]


def test_write_report_writes_every_file(weight_bound: Result, tmp_path: Path) -> None:
    out = tmp_path / "new" / "report"
    layer = plots.RoofPoint("layer 1", 2.0, 1e-3)
    written = plots.write_report(weight_bound, out, label="the GEMM", layers=[layer], slowest=3)
    assert sorted(written) == sorted(FILES)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["cycles"] == weight_bound.stats.cycles
    assert stats["breakdown"] == weight_bound.stats.breakdown
    kinds = {r.instruction.mnemonic for r in weight_bound.records}
    assert set(stats["by_kind"]) == kinds
    assert sum(k["count"] for k in stats["by_kind"].values()) == len(weight_bound.records)
    durations = [s["cycles"] for s in stats["slowest"]]
    longest = sorted((r.end - r.start for r in weight_bound.records), reverse=True)
    assert durations == longest[:3]
    text = (out / "report.txt").read_text()
    assert text.startswith(weight_bound.stats.report())
    assert "the 3 slowest instructions" in text
    assert stats["unit_busy_cycles"] == plots.unit_busy(weight_bound)
    assert f"stalled: {LABELS['weight_stall']}" in text
    json.loads((out / "trace.json").read_text())
    roof = svg_root((out / "roofline.svg").read_text())
    labels = [e.attrib["data-label"] for e in roof.iter(f"{SVG}circle") if e.get("class") == "run"]
    assert labels == ["layer 1", "the GEMM"]
    svg_root((out / "utilization.svg").read_text())


def test_write_report_into_a_path_that_cannot_be_a_directory(
    weight_bound: Result, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory\n")
    with pytest.raises((NotADirectoryError, FileExistsError)):
        plots.write_report(weight_bound, blocker / "report")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    assert blocker.read_text() == "not a directory\n"


def test_a_failed_write_leaves_no_partial_file(
    weight_bound: Result, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace

    def full_disk(src: str, dst: str | Path) -> None:
        if Path(dst).name == "trace.json":
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        plots.write_report(weight_bound, tmp_path)
    # the files before it are complete, it and the ones after it are absent, no temporaries
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt", "stats.json"]
    assert json.loads((tmp_path / "stats.json").read_text())["cycles"] == weight_bound.stats.cycles
