"""Whole graphs on the simulated TPU: placement, host stages, exact integers, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from compiler.cmd_run import load
from compiler.driver import PipelineOptions, optimize
from compiler.quantization import quantize
from compiler.targets import TargetOptions, prepare, tpu_executable
from ir.graph import Module
from ir.parser import parse_module
from ir.verify import verify_module
from runtime.inputs import random_inputs
from runtime.interp import run_module
from runtime.tpu.config import preset
from tests.conftest import SAMPLES

# On the 8x4 array the MLP's layers cannot be chained (an output vector is not an input vector
# on a non-square array), so each layer is a GEMM of its own in 16-row chunks: at the sample's
# batch of 256 that is 350,000 instructions, minutes of simulation. A batch of 48 runs the same
# weight tiles through three such chunks (enough for the input regions to be reused, as the
# sixteen chunks of 256 do) in a fifth of the instructions.
SMALLER_BATCH = {("mlp", "tiny-8x8:rows=8,cols=4"): 48}


def _quantized(module: Module) -> Module:
    calibration = [random_inputs(module.entry_function, seed) for seed in range(2)]
    return quantize(module, calibration)


def _with_batch(path: Path, batch: int) -> Module:
    """A sample graph whose leading (batch) dimension is `batch` instead, in every type."""
    sample = load(str(path)).entry_function.params[0].shape[0]
    text = path.read_text().replace(f"[{sample},", f"[{batch},")
    module = parse_module(text, str(path), base_dir=path.parent)
    verify_module(module)
    assert module.entry_function.params[0].shape[0] == batch
    return module


@pytest.fixture(scope="module")
def quantized_samples():
    out = {name: _quantized(load(str(SAMPLES / f"{name}.graph"))) for name in ("mlp", "cnn")}
    for (name, _), batch in SMALLER_BATCH.items():
        out[name, batch] = _quantized(_with_batch(SAMPLES / f"{name}.graph", batch))
    return out


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("chip", ["tpu-v1", "tiny-8x8", "tiny-8x8:rows=8,cols=4"])
def test_quantized_samples_equal_the_interpreter_exactly(quantized_samples, name, chip):
    batch = SMALLER_BATCH.get((name, chip))
    module = quantized_samples[name] if batch is None else quantized_samples[name, batch]
    placed, _ = optimize(module, PipelineOptions(target="tpu", tpu=chip))
    # host stages on the interpreter too, so every output must be bit-identical
    exe = tpu_executable(placed, None, TargetOptions(tpu=chip), host="interp")
    assert exe.programs, "nothing was placed on the TPU"
    args = random_inputs(module.entry_function, 7)
    got = exe.run(args)
    want = run_module(module, args)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    stats = exe.last.stats(preset(chip), "native")
    assert sum(stats.breakdown.values()) == stats.cycles > 0
    assert not [p for r in exe.last.results for p in r.problems]


def test_tpu_backend_runs_host_stages_on_the_cpu(quantized_samples):
    module = quantized_samples["mlp"]
    placed, _ = optimize(module, PipelineOptions(target="tpu"))
    exe = prepare("tpu", placed, None, TargetOptions())
    args = random_inputs(module.entry_function, 1)
    got = exe.run(args)[0]
    want = run_module(module, args)[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)  # softmax on the CPU backend
    # numbered among all stages, as `tessel compile --target tpu` names NAME.stage<k>.tbin
    assert exe.native.tpu_stages == [1]
    assert set(exe.artifacts()) == {"stage1.tasm"}


def test_float_graph_on_bf16_chip_matches_bf16_mixed_interpretation():
    module = load(str(SAMPLES / "mlp.graph"))
    placed, _ = optimize(module, PipelineOptions(target="tpu", tpu="tpu-v2-core"))
    exe = tpu_executable(placed, None, TargetOptions(tpu="tpu-v2-core"), host="interp")
    args = random_inputs(module.entry_function, 2)
    got = exe.run(args)[0]
    mixed, _ = optimize(module, PipelineOptions(pipeline="bf16-mixed"))
    want = run_module(mixed, args)[0]
    np.testing.assert_allclose(got, want, atol=2e-3)  # f32 sums in the array's order


def test_float_graph_on_an_int8_chip_is_refused_with_advice(tessel):
    r = tessel("run", "samples/mlp.graph", "--backend", "tpu")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "nothing in @main can run on the tpu-v1 TPU (int8)" in r.stderr
    assert "tessel quantize" in r.stderr
    assert "--tpu tpu-v2-core" in r.stderr


@pytest.mark.slow  # a separate CI step runs the slow tier
def test_tessel_run_on_the_tpu_prints_the_report(tessel, tmp_path):
    r = tessel(
        "run",
        "samples/mlp.graph",
        "--target",
        "tpu",
        "--tpu",
        "tiny-8x8:multiplier=bf16",
        "--tpu-report",
        str(tmp_path / "rep"),
        "--trace",
        str(tmp_path / "timeline.json"),
    )
    assert r.returncode == 0, r.stderr
    for label in (
        "cycles",
        "array active",
        "weight stall",
        "weight shift",
        "input stall",
        "non-matrix",
        "utilization",
        "TOPS",
        "intensity",
    ):
        assert label in r.stderr
    assert (tmp_path / "rep" / "report.txt").exists()
    assert (tmp_path / "rep" / "stats.json").exists()
    assert (tmp_path / "rep" / "roofline.svg").read_text().startswith("<svg")
    assert (tmp_path / "rep" / "stage1" / "utilization.svg").exists()
    events = json.loads((tmp_path / "timeline.json").read_text())["traceEvents"]
    assert any(e.get("name", "").startswith("mmc") for e in events)
    bad = tessel("run", "samples/mlp.graph", "--backend", "tpu", "--tpu", "tpu-v9")
    assert bad.returncode == 1
    assert "unknown TPU preset" in bad.stderr


@pytest.mark.slow  # a separate CI step runs the slow tier
def test_compile_for_the_tpu_then_simulate_gives_what_run_gives(
    tessel, tmp_path, quantized_samples
):
    from ir.printer import WeightSink, print_module

    graph = tmp_path / "qmlp.graph"
    sink = WeightSink(tmp_path / "qmlp.npz")
    graph.write_text(print_module(quantized_samples["mlp"], base_dir=tmp_path, weights=sink))
    sink.save()
    out = tmp_path / "out"
    r = tessel(
        "compile",
        str(graph),
        "--target",
        "tpu",
        "-o",
        str(out),
        "--emit",
        "tpu-bin",
        "--emit",
        "tpu-asm",
        "--emit",
        "ir",
    )
    assert r.returncode == 0, r.stderr
    names = {p.name for p in out.iterdir()}
    assert {
        "qmlp.tpu.json",
        "qmlp.stage1.tbin",
        "qmlp.stage1.tasm",
        "qmlp.stage1.weights",
        "qmlp.graph",
    } <= names
    manifest = json.loads((out / "qmlp.tpu.json").read_text())
    assert manifest["entry"] == quantized_samples["mlp"].entry  # the function, not a stage
    from runtime.tpu.asm import assemble
    from runtime.tpu.isa import decode_program

    listing = (out / "qmlp.stage1.tasm").read_text()
    assert assemble(listing) == decode_program((out / "qmlp.stage1.tbin").read_bytes())
    sim = tessel("tpu-sim", str(out / "qmlp.tpu.json"), "-o", str(tmp_path / "sim"))
    run = tessel("run", str(graph), "--backend", "tpu", "-o", str(tmp_path / "run"))
    assert sim.returncode == 0, sim.stderr
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(
        np.load(tmp_path / "sim" / "probs.npy"), np.load(tmp_path / "run" / "probs.npy")
    )
    assert "cycles" in sim.stderr
    assert "utilization" in sim.stderr
    bad = tessel(
        "compile", str(graph), "--target", "tpu", "--emit", "so", "-o", str(tmp_path / "x")
    )
    assert bad.returncode == 1
    assert "not for --target tpu" in bad.stderr
    assert not (tmp_path / "x").exists()
    broken = tessel("tpu-sim", str(graph))
    assert broken.returncode == 1
    assert "not a TPU program manifest" in broken.stderr


def test_jit_on_the_tpu():
    from compiler import jit, nn

    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 32)).astype(np.float32)

    @jit(target="tpu", tpu="tiny-8x8:multiplier=bf16")
    def layer(x):
        return nn.relu(x @ w)

    x = rng.standard_normal((5, 64)).astype(np.float32)
    y = layer(x)
    assert y.shape == (5, 32)
    np.testing.assert_allclose(y, np.maximum(x @ w, 0), atol=0.1)  # bf16 products
    assert "array active" in layer.tpu_report()

    @jit(target="tpu")
    def float_on_int8(x):
        return x @ w

    from ir.diagnostics import TesselError

    with pytest.raises(TesselError, match="Quantize it first"):
        float_on_int8(x)


def test_the_mlp_listing_in_the_docs_is_what_the_compiler_writes(tessel, tmp_path, repo_root):
    """docs/tpu-mlp.tasm: the commands in docs/tpu.md, run again."""
    q = tessel(
        "quantize",
        "samples/mlp.graph",
        "--calibration",
        "random:2",
        "-o",
        str(tmp_path / "mlp.int8.graph"),
    )
    c = tessel(
        "compile",
        str(tmp_path / "mlp.int8.graph"),
        "--target",
        "tpu",
        "-o",
        str(tmp_path / "out"),
        "--name",
        "mlp",
    )
    assert q.returncode == 0, q.stderr
    assert c.returncode == 0, c.stderr
    listing = (tmp_path / "out" / "mlp.stage1.tasm").read_text()
    assert listing == (repo_root / "docs" / "tpu-mlp.tasm").read_text()


@pytest.mark.parametrize("chip", ["tpu-v1", "tiny-8x8"])
def test_quantized_digits_classifier_on_the_tpu_equals_the_interpreter(chip):
    digits = SAMPLES / "digits"
    module = load(str(digits / "digits.graph"))
    data = np.load(digits / "digits_data.npz")
    quantized = quantize(module, {"x": data["x_calib"].astype(np.float32)})
    placed, _ = optimize(quantized, PipelineOptions(target="tpu", tpu=chip))
    exe = tpu_executable(placed, None, TargetOptions(tpu=chip), host="interp")
    assert len(exe.programs) == 1  # the three layers, one chain
    x = data["x_test"].astype(np.float32)
    got = exe.run([x])
    want = run_module(quantized, [x])
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    accuracy = float(np.mean(np.argmax(got[0], axis=-1) == data["y_test"]))
    assert accuracy > 0.95
