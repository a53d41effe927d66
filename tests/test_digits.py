"""samples/digits: the committed classifier, its regeneration, and run.py's accuracy table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from ir.graph import Module
from ir.parser import parse_file
from ir.verify import verify_module

DIGITS = Path(__file__).resolve().parent.parent / "samples" / "digits"
DOCUMENTED_ACCURACY = 348 / 360  # samples/digits/README.md: 96.67% float32 top-1


def load_script(name: str) -> ModuleType:
    """Import a sample script by path: samples/ is not a package."""
    spec = importlib.util.spec_from_file_location(f"digits_{name}", DIGITS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run() -> ModuleType:
    return load_script("run")


@pytest.fixture(scope="module")
def rows(run):
    module, data = run.load()
    return {r.name: r for r in run.measure(module, data, run.default_variants(), repeats=0)}


def test_the_graph_parses_and_verifies():
    module = parse_file(DIGITS / "digits.graph")
    verify_module(module)
    fn = module.entry_function
    assert [str(t) for t in fn.param_types] == ["f32[360,64]"]
    assert [str(r.type) for r in fn.results] == ["f32[360,10]", "f32[360,10]"]


def test_training_again_gives_the_committed_files(tmp_path):
    pytest.importorskip("sklearn")
    load_script("train").main(["--out-dir", str(tmp_path)])
    for name in ("digits.graph", "digits_data.npz"):  # no arithmetic in these: same bytes
        assert (tmp_path / name).read_bytes() == (DIGITS / name).read_bytes(), name
    # The weights come out of float64 training rounded to f32: equal here, and on a machine
    # whose BLAS sums in another order at most an ulp off.
    with np.load(tmp_path / "digits.npz") as new, np.load(DIGITS / "digits.npz") as old:
        assert new.files == old.files
        for key in old.files:
            assert new[key].dtype == old[key].dtype == np.float32
            np.testing.assert_allclose(new[key], old[key], rtol=1e-6, atol=1e-7, err_msg=key)


def test_float32_has_the_documented_accuracy(rows):
    reference = rows["float32 (interp)"]
    assert reference.accuracy > 0.9
    assert reference.accuracy == pytest.approx(DOCUMENTED_ACCURACY)


def test_the_cpu_backend_predicts_what_the_interpreter_does(rows):
    cpu = rows["float32 (cpu)"]
    assert cpu.agreement == 1.0
    assert cpu.logits_error < 1e-4
    assert cpu.sqnr_db > 100


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_bf16_mixed_is_within_half_a_point(rows, target):
    bf16 = rows[f"bf16-mixed ({target})"]
    assert bf16.passed
    assert bf16.drop <= 0.5
    assert bf16.agreement >= 0.99
    assert 0 < bf16.logits_error < 0.5  # it did round something, and not much
    assert bf16.sqnr_db > 30


def test_both_bf16_runs_compute_the_same_numbers(rows):
    interp, cpu = rows["bf16-mixed (interp)"], rows["bf16-mixed (cpu)"]
    assert cpu.logits_error == pytest.approx(interp.logits_error, rel=1e-3)


def test_int8_rows_plug_in_with_a_quantize_function(run, capsys):
    seen: list[tuple[str, int]] = []

    def fake_quantize(module: Module, calibration: np.ndarray, observer: str) -> Module:
        seen.append((observer, len(calibration)))
        return module

    _, data = run.load()
    int8 = run.int8_variants(fake_quantize, ["minmax", "percentile"], data["x_calib"])
    assert run.main([], [run.default_variants()[0], *int8]) == 0
    assert seen == [("minmax", 360), ("percentile", 360)]
    assert "int8 percentile" in capsys.readouterr().out


def test_a_missed_target_fails_the_command(run, capsys):
    def always_zero(module: Module):
        return lambda x: (np.zeros((len(x), 10), np.float32),) * 2

    broken = run.Variant("broken", always_zero, max_drop=0.5)
    assert run.main(["--report"], [run.default_variants()[0], broken]) == 1
    captured = capsys.readouterr()
    assert "| broken |" in captured.out
    assert "missed the accuracy target: broken" in captured.err


def test_every_int8_row_meets_its_target_and_the_cpu_gives_the_same_logits(run):
    module, data = run.load()
    variants = run.default_variants(data["x_calib"])
    names = [v.name for v in variants]
    for scheme in ("int8", "int8 asymmetric"):
        assert f"{scheme} minmax" in names
        assert f"{scheme} kl" in names
        assert f"{scheme} minmax (cpu)" in names
    int8 = [v for v in variants if v.name.startswith("int8")]
    rows = {r.name: r for r in run.measure(module, data, [variants[0], *int8], repeats=0)}
    assert all(r.passed for r in rows.values())
    for scheme in ("int8", "int8 asymmetric"):
        interp, cpu = rows[f"{scheme} minmax"], rows[f"{scheme} minmax (cpu)"]
        assert cpu.logits_error == interp.logits_error  # the same integers, dequantized alike
        assert cpu.agreement == interp.agreement
    tpu, interp = rows["int8 minmax (tpu-v1)"], rows["int8 minmax"]
    assert (tpu.logits_error, tpu.agreement) == (interp.logits_error, interp.agreement)
    assert "TPU tpu-v1: 256x256 int8" in run.TPU_REPORTS[-1]
    # zero points buy asymmetric u8 a finer step on the relu outputs (and the pixels)
    assert rows["int8 asymmetric minmax"].sqnr_db > rows["int8 minmax"].sqnr_db
