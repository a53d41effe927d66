"""The native timing model shows the TPU paper's behaviour (Jouppi et al., ISCA 2017)."""

from __future__ import annotations

import numpy as np
import pytest

from codegen.tpu.kernels import Epilogue
from runtime.tpu.config import preset
from tests.tpu.helpers import chain_program, layer_starts


def _fc_chain(chip: str, batch: int, width: int, layers: int):
    rng = np.random.default_rng(0)
    weights = [
        (rng.integers(-128, 128, (width, width)).astype(np.int8), Epilogue()) for _ in range(layers)
    ]
    program = chain_program(preset(chip), batch, weights)
    x = rng.integers(-128, 128, (batch, width)).astype(np.int8)
    _, result = program.run([x])
    return result


@pytest.mark.parametrize(
    ("chip", "paper_us"), [("tpu-v1", 18.0), ("tpu-v1:rows=512,cols=512", 32.0)]
)
def test_lstm1_layer_time_on_two_array_sizes(chip: str, paper_us: float) -> None:
    """A 600x600 layer at batch 96: 9 weight tiles on 256x256, 4 (four times larger) on 512x512;
    both are weight-bandwidth bound, so the bigger array is slower (paper section 7)."""
    result = _fc_chain(chip, 96, 600, 3)
    per_layer = np.diff(layer_starts(result, 3)) / preset(chip).clock_hz * 1e6
    assert np.all(np.abs(per_layer - paper_us) / paper_us < 0.10), per_layer


def test_fc_chain_throughput_follows_the_roofline_with_its_knee_near_1350() -> None:
    chip = preset("tpu-v1")
    measured = {}
    for batch in (256, 1024, 1350, 2048):
        result = _fc_chain("tpu-v1", batch, 2048, 4)
        layer_cycles = float(np.median(np.diff(layer_starts(result, 4))[1:]))  # steady state
        measured[batch] = 2 * batch * 2048 * 2048 / (layer_cycles / chip.clock_hz) / 1e12
    for batch, tops in measured.items():
        roof = min(chip.peak_ops, 2 * chip.weight_bandwidth * batch) / 1e12
        assert tops == pytest.approx(roof, rel=0.03), (batch, tops, roof)
    assert measured[1024] < 0.8 * chip.peak_ops / 1e12 < measured[1350]  # the knee
    assert measured[2048] == pytest.approx(measured[1350], rel=0.01)  # flat above it
