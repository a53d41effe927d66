"""int8 post-training quantization: observers, the rewrite, fold-requantize, and the result on
real models (digits accuracy, MLP/CNN integers equal on the interpreter and the CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from passcheck import apply, canonical

from codegen.executable import CpuExecutable
from compiler.observers import KLDivergence, MinMax, MovingAverage, Percentile, observer_factory
from compiler.quantization import CLEANUP, FOLD, asymmetric, quantize, run_all
from compiler.targets import default_pipeline
from ir.diagnostics import TesselError
from ir.dtypes import DType
from ir.graph import Module
from ir.ops import Op
from ir.parser import parse_file, parse_module
from ir.printer import print_module
from passes import PassManager, parse_pipeline
from passes.requantize import fixed_point
from runtime.inputs import random_inputs
from runtime.interp import run_module, run_op

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.mark.parametrize("real", [1e-6, 0.0123, 0.5, 0.75, 0.999999999, 1.0, 3.7, 1000.0])
def test_fixed_point_factors_represent_the_real_factor(real):
    multiplier, shift = fixed_point(real)
    assert (1 << 30) <= multiplier < (1 << 31)
    assert -31 <= shift <= 31
    assert multiplier / 2**31 / 2**shift == pytest.approx(real, rel=2**-30)


def test_observers():
    data = np.concatenate([np.linspace(-1, 1, 10_001), [50.0]])
    minmax, average, percentile = MinMax(), MovingAverage(0.5), Percentile(99.0)
    for obs in (minmax, average, percentile):
        obs.add(data[:5000])
        obs.add(data[5000:])
    assert minmax.bound() == 50.0
    assert average.bound() == pytest.approx(0.5 * 1.0 + 0.5 * 50.0)
    assert percentile.bound() < 1.0  # the outlier is clipped
    assert minmax.range() == (-1.0, 50.0)
    # batch 1 spans [-1, -0.0002], batch 2 [0, 50]: the extremes are averaged separately
    assert average.range() == pytest.approx((0.5 * -1.0 + 0.5 * 0.0, 0.5 * -0.0002 + 0.5 * 50.0))
    lo, hi = percentile.range()
    assert -1.0 < lo < -0.9
    assert 0.9 < hi < 1.0
    with pytest.raises(TesselError, match="unknown observer"):
        observer_factory("kl-divergence")
    with pytest.raises(TesselError, match="unknown observer"):
        observer_factory("kl:3")
    with pytest.raises(TesselError, match="percentile must be in"):
        observer_factory("percentile:120")


def test_kl_observer_clips_outliers_and_keeps_a_full_range():
    rng = np.random.default_rng(0)
    normal = rng.normal(size=50_000)
    kl = KLDivergence()
    kl.add(normal)
    kl.add(np.array([60.0, -45.0]))  # two outliers in a second batch
    assert 2.0 < kl.bound() < 10.0  # clipped far below the largest |x|, not into the bulk
    lo, hi = kl.range()
    assert (lo, hi) == (-kl.bound(), kl.bound())
    uniform = KLDivergence()
    uniform.add(rng.uniform(-1, 1, size=20_000))
    assert uniform.bound() > 0.95  # nothing to clip: every bin is as full as the others
    assert observer_factory("kl")().bound() == 0.0  # nothing seen


@pytest.mark.parametrize(
    ("lo", "hi", "zero"), [(0.0, 2.55, 0), (-1.0, 1.55, 100), (-2.55, -1.0, 255), (0.0, 0.0, 0)]
)
def test_asymmetric_parameters_represent_zero_exactly(lo, hi, zero):
    p = asymmetric(lo, hi)
    assert p.zero == zero
    assert p.dtype.value == "u8"
    q = quantized_u8(np.array([lo, 0.0, hi]), p.scale, p.zero)
    assert q[1] == zero  # 0.0 (relu's floor, padding) is exactly a code
    assert q[0] == 0 or lo == 0


def quantized_u8(x: np.ndarray, scale: float, zero: int) -> np.ndarray:

    return run_op(
        Op.QUANTIZE, x.astype(np.float32), scale=[scale], zero_point=[zero], dtype=DType.U8
    )


FOLD_BEFORE = """func @main(%acc: i32[2,3]) -> (i8[2,3], i8[2,3]) {
  %d = dequantize(%acc) {scale = [0.001, 0.002, 0.004], axis = 1} : f32[2,3]
  %r = relu(%d) : f32[2,3]
  %q = quantize(%r) {scale = [0.01]} : i8[2,3]
  %p = quantize(%d) {scale = [0.02], zero_point = [5]} : i8[2,3]
  return %q, %p
}"""

FOLD_AFTER = """func @main(%acc: i32[2,3]) -> (i8[2,3], i8[2,3]) {
  %q = requantize(%acc) {multiplier = [1717986918, 1717986918, 1717986918], shift = [3, 2, 1], min = 0, axis = 1} : i8[2,3]
  %p = requantize(%acc) {multiplier = [1717986918, 1717986918, 1717986918], shift = [4, 3, 2], zero_point = 5, axis = 1} : i8[2,3]
  return %q, %p
}"""  # noqa: E501


def test_fold_requantize_golden_and_within_one_step_of_the_float_path():
    before = canonical(FOLD_BEFORE)
    out, ctx = apply("fold-requantize,dce", FOLD_BEFORE)
    assert print_module(out) == canonical(FOLD_AFTER)
    assert len(ctx.remarks["fold-requantize"]) == 2
    acc = np.array([[-5000, 0, 7], [123456, 5, -99]], np.int32)
    float_path = run_module(parse_module(before), [acc])
    integer_path = run_module(out, [acc])
    for f, i in zip(float_path, integer_path, strict=True):
        assert np.max(np.abs(f.astype(int) - i.astype(int))) <= 1


def digits() -> tuple[Module, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    data = np.load(SAMPLES / "digits" / "digits_data.npz")
    module = parse_file(SAMPLES / "digits" / "digits.graph")
    return module, {"x": data["x_calib"]}, data["x_test"], data["y_test"]


@pytest.mark.parametrize(
    ("observer", "activations"),
    [
        ("minmax", "symmetric"),
        ("moving-average", "symmetric"),
        ("percentile:99.99", "symmetric"),
        ("kl", "symmetric"),
        ("minmax", "asymmetric"),
        ("kl", "asymmetric"),
    ],
)
def test_digits_int8_accuracy_within_one_point(observer, activations):
    module, calibration, x, y = digits()
    float_logits = run_module(module, [x])[0]
    int8 = quantize(module, calibration, observer, activations=activations)
    ops = {n.op.value for n in int8.entry_function.body}
    assert {"quantize", "requantize", "dequantize"} <= ops
    assert "relu" not in ops  # folded into requantize's clamp
    logits = run_module(int8, [x])[0]
    float_acc = (float_logits.argmax(1) == y).mean()
    assert (logits.argmax(1) == y).mean() >= float_acc - 0.01
    assert (logits.argmax(1) == float_logits.argmax(1)).mean() >= 0.99


@pytest.mark.parametrize("activations", ["symmetric", "asymmetric"])
@pytest.mark.parametrize("sample", ["mlp", "cnn"])
def test_quantized_samples_give_the_same_integers_on_the_cpu(sample, activations):
    module = parse_file(SAMPLES / f"{sample}.graph")
    fn = module.entry_function
    calibration = [random_inputs(fn, seed) for seed in range(2)]
    int8 = quantize(module, calibration, activations=activations)
    u8 = [n for n in int8.entry_function.body if n.dtype is DType.U8]
    if activations == "symmetric" or sample == "cnn":  # the CNN's dense layer reads relu >= 0
        assert all(n.op is not Op.QUANTIZE or not n.attrs["zero_point"][0] for n in u8)
    if sample == "mlp" and activations == "asymmetric":  # random inputs straddle zero
        assert any(n.op is Op.QUANTIZE and n.attrs["zero_point"][0] for n in u8)
    args = random_inputs(int8.entry_function, 7)
    values = run_all(int8.entry_function, args)
    checked = [n for n in int8.entry_function.body if n.op.value in ("requantize", "dequantize")]
    assert checked
    body = int8.entry_function
    probe = Module((body.replace(results=tuple(checked)),), body.name)
    cpu = CpuExecutable(PassManager(parse_pipeline(default_pipeline("cpu"))).run(probe))
    for node, got in zip(checked, cpu(*args), strict=True):
        np.testing.assert_array_equal(got, values[node])


def test_per_tensor_weights_have_one_scale_per_layer():
    module, calibration, _, _ = digits()
    int8 = quantize(module, calibration, per_channel=False)
    requants = [n for n in int8.entry_function.body if n.op.value == "requantize"]
    assert requants
    assert all(len(n.attrs["multiplier"]) == 1 for n in requants)


def test_cli_quantize_report_and_errors(tessel, tmp_path):
    data = np.load(SAMPLES / "digits" / "digits_data.npz")
    np.savez(tmp_path / "calib.npz", x=data["x_calib"])
    out = tmp_path / "out" / "digits.int8.graph"
    done = tessel("quantize", str(SAMPLES / "digits" / "digits.graph"), "--calibration",
                  str(tmp_path / "calib.npz"), "-o", str(out), "--report")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "SQNR dB" in done.stdout
    assert "%h1" in done.stdout
    assert "output 0" in done.stdout
    assert tessel("run", str(out), "--backend", "cpu").returncode == 0
    bad = tessel("quantize", str(SAMPLES / "mlp.graph"), "--calibration", "random:1",
                 "-o", str(tmp_path / "x.graph"), "--observer", "entropy")  # fmt: skip
    assert bad.returncode == 1
    assert "unknown observer 'entropy'" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "x.graph").exists()
    missing = tessel("quantize", str(SAMPLES / "mlp.graph"), "--calibration", "nope.npz",
                     "-o", str(tmp_path / "y.graph"))  # fmt: skip
    assert missing.returncode == 1
    assert "cannot read it" in missing.stderr


@pytest.mark.slow  # a separate CI step runs the slow tier
def test_cli_quantize_asymmetric_kl_and_bad_flags(tessel, tmp_path):
    out = tmp_path / "mlp.u8.graph"
    mlp = str(SAMPLES / "mlp.graph")
    done = tessel("quantize", mlp, "--calibration", "random:2", "-o", str(out),
                  "--observer", "kl", "--activations", "asymmetric", "--report")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "output 0" in done.stdout
    text = out.read_text()
    assert text.startswith(f"# tessel quantize {mlp} --observer kl --activations asymmetric\n")
    assert "dtype = u8" in text
    int8 = parse_file(out)
    assert any(n.op is Op.QUANTIZE and n.attrs["zero_point"][0] for n in int8.entry_function.body)
    assert tessel("run", str(out), "--backend", "cpu").returncode == 0
    bad = tessel("quantize", mlp, "--calibration", "random:1", "-o", str(tmp_path / "x.graph"),
                 "--activations", "zero")  # fmt: skip
    assert bad.returncode == 2
    assert "invalid choice: 'zero'" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad = tessel("quantize", mlp, "--calibration", "random:1", "-o", str(tmp_path / "x.graph"),
                 "--observer", "kl:5")  # fmt: skip
    assert bad.returncode == 1
    assert "unknown observer 'kl:5'" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "x.graph").exists()


def test_api_rejects_unknown_activations():
    module, calibration, _, _ = digits()
    with pytest.raises(TesselError, match="unknown activations 'signed'"):
        quantize(module, calibration, activations="signed")


def test_cli_qdq_graph_folds_with_tessel_opt(tessel, tmp_path):
    data = np.load(SAMPLES / "digits" / "digits_data.npz")
    np.savez(tmp_path / "calib.npz", x=data["x_calib"])
    graph = str(SAMPLES / "digits" / "digits.graph")
    common = ("--calibration", str(tmp_path / "calib.npz"), "--activations", "asymmetric")
    qdq, direct = tmp_path / "digits.qdq.graph", tmp_path / "digits.int8.graph"
    assert tessel("quantize", graph, *common, "-o", str(qdq), "--qdq").returncode == 0
    assert tessel("quantize", graph, *common, "-o", str(direct)).returncode == 0
    assert "requantize" not in qdq.read_text()
    folded = tmp_path / "folded.graph"
    done = tessel("opt", str(qdq), "-p", f"{FOLD},{CLEANUP}", "-o", str(folded))
    assert done.returncode == 0, done.stderr
    x = data["x_test"]
    want = run_module(parse_file(direct), [x])
    for got, ref in zip(run_module(parse_file(folded), [x]), want, strict=True):
        np.testing.assert_array_equal(got, ref)
