"""The sample graphs: they parse, verify, round-trip, and compute what an independent NumPy model
of the same network computes.

The NumPy models below are written from the math (float64, einsum, an explicit loop over filter
taps), not from tessel's reference table, so they check the graphs and the interpreter together.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pytest

from ir import Module, verify_module
from ir.parser import parse_file, parse_module
from ir.printer import print_module
from runtime.inputs import random_inputs
from runtime.interp import run_module

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
NAMES = ("mlp", "cnn", "attention")

F64 = npt.NDArray[np.float64]
Weights = dict[str, F64]


@cache
def load_sample(name: str) -> Module:
    module = parse_file(SAMPLES / f"{name}.graph")
    verify_module(module)
    return module


@cache
def load_weights(name: str) -> Weights:
    with np.load(SAMPLES / f"{name}.npz", allow_pickle=False) as npz:
        return {k: npz[k].astype(np.float64) for k in npz.files}


def make_weights_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_weights", SAMPLES / "make_weights.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --- independent NumPy models (float64) --------------------------------------------------------


def softmax(z: F64, axis: int = -1) -> F64:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    out: F64 = e / e.sum(axis=axis, keepdims=True)
    return out


def relu(z: F64) -> F64:
    return np.maximum(z, 0.0)


def mlp_numpy(x: F64, w: Weights) -> F64:
    h1 = relu(x @ w["w1"] + w["b1"])
    h2 = relu(h1 @ w["w2"] + w["b2"])
    return softmax(h2 @ w["w3"] + w["b3"])


def conv2d_same(x: F64, f: F64) -> F64:
    """Stride-1 'same' cross-correlation of NHWC `x` with an HWIO filter, one tap at a time."""
    kh, kw = f.shape[:2]
    n, h, w, _ = x.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2
    xp = np.pad(x, ((0, 0), (top, kh - 1 - top), (left, kw - 1 - left), (0, 0)))
    out = np.zeros((n, h, w, f.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nhwc,co->nhwo", xp[:, i : i + h, j : j + w, :], f[i, j])
    return out


def max_pool_2x2(x: F64) -> F64:
    n, h, w, c = x.shape
    out: F64 = x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
    return out


def cnn_numpy(x: F64, w: Weights) -> F64:
    p1 = max_pool_2x2(relu(conv2d_same(x, w["conv1_w"]) + w["conv1_b"]))
    p2 = max_pool_2x2(relu(conv2d_same(p1, w["conv2_w"]) + w["conv2_b"]))
    return softmax(p2.reshape(len(x), -1) @ w["dense_w"] + w["dense_b"])


def attention_probs(x: F64, w: Weights, heads: int = 4) -> tuple[F64, F64]:
    """(attention probabilities [b,h,q,k], values split into heads [b,k,h,d])."""
    b, s, m = x.shape
    q, k, v = ((x @ w[f"w{n}"] + w[f"b{n}"]).reshape(b, s, heads, m // heads) for n in "qkv")
    scores = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(m // heads)
    return softmax(scores), v


def attention_numpy(x: F64, w: Weights) -> F64:
    p, v = attention_probs(x, w)
    merged = np.einsum("bhqk,bkhd->bqhd", p, v).reshape(x.shape)
    out: F64 = x + merged @ w["wo"] + w["bo"]
    return out


REFERENCES = {"mlp": mlp_numpy, "cnn": cnn_numpy, "attention": attention_numpy}
SHAPES = {
    "mlp": ((256, 784), (256, 10)),
    "cnn": ((8, 28, 28, 1), (8, 10)),
    "attention": ((2, 64, 128), (2, 64, 128)),
}


@cache
def run_sample(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(input, output of the interpreter) for deterministic random inputs."""
    module = load_sample(name)
    (x,) = random_inputs(module.entry_function, seed)
    (out,) = run_module(module, (x,))
    return x, out


# --- structure --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_sample_signature(name: str) -> None:
    fn = load_sample(name).entry_function
    in_shape, out_shape = SHAPES[name]
    assert fn.param_names == ("x",)
    assert [str(t) for t in fn.param_types] == [f"f32[{','.join(map(str, in_shape))}]"]
    assert [t.shape for t in fn.result_types] == [out_shape]


@pytest.mark.parametrize("name", NAMES)
def test_sample_round_trips(name: str) -> None:
    module = load_sample(name)
    text = print_module(module, base_dir=SAMPLES)
    again = parse_module(text, f"{name}.printed.graph", SAMPLES)
    verify_module(again)
    assert again == module
    assert print_module(again, base_dir=SAMPLES) == text


@pytest.mark.parametrize("name", NAMES)
def test_committed_weights_match_the_generator(name: str) -> None:
    fresh = make_weights_script().SAMPLES[name]()
    with np.load(SAMPLES / f"{name}.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(fresh)
        for key, arr in fresh.items():
            assert npz[key].dtype == np.float32
            np.testing.assert_array_equal(npz[key], arr, err_msg=f"{name}.npz[{key!r}]")


def test_weights_archives_are_reproducible(tmp_path: Path) -> None:
    script = make_weights_script()
    assert script.main(["--out-dir", str(tmp_path), "cnn"]) == 0
    first = (tmp_path / "cnn.npz").read_bytes()
    assert script.main(["--out-dir", str(tmp_path), "cnn"]) == 0
    assert (tmp_path / "cnn.npz").read_bytes() == first
    assert script.main(["--out-dir", str(tmp_path), "--check", "cnn"]) == 0
    assert script.main(["--out-dir", str(tmp_path), "--check", "mlp"]) == 1  # not written there
    assert [p.name for p in tmp_path.iterdir()] == ["cnn.npz"]  # no temporary file left


# --- numerics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_interpreter_matches_numpy_model(name: str) -> None:
    x, out = run_sample(name)
    assert x.shape == SHAPES[name][0]
    assert out.dtype == np.float32
    assert out.shape == SHAPES[name][1]
    expected = REFERENCES[name](x.astype(np.float64), load_weights(name))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_classifier_outputs_are_distributions(name: str) -> None:
    x, probs = run_sample(name)
    assert np.all(np.isfinite(probs))
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
    # Not degenerate: different inputs get different predictions, and no row is one-hot or flat.
    predicted = probs.argmax(axis=-1)
    assert len(np.unique(predicted)) >= min(3, len(x) // 2)
    assert probs.max(axis=-1).max() < 0.999
    assert probs.std(axis=-1).min() > 1e-3
    assert not np.allclose(probs, probs[0])


def test_attention_output_is_not_degenerate() -> None:
    x, out = run_sample("attention")
    weights = load_weights("attention")
    p, _ = attention_probs(x.astype(np.float64), weights)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)
    # The attention is neither uniform nor one-hot, and the block changes its input.
    assert 0.05 < p.max(axis=-1).mean() < 0.9
    update = out - x
    assert np.all(np.isfinite(out))
    assert 0.1 < float(update.std()) < 10.0
    assert float(update.std(axis=1).mean()) > 0.1  # positions get different updates


def test_jit_sample_runs_and_matches_numpy() -> None:
    """samples/jit_mlp.py, as the README shows it: exit 0 means tessel matched eager NumPy."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(SAMPLES / "jit_mlp.py"), "--batch", "17"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "max |tessel - numpy|" in done.stdout
    assert "compiled mlp in" in done.stdout
