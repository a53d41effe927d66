"""Train a small classifier on scikit-learn's handwritten digits and export it as a tessel graph.

The data set (1,797 grayscale 8x8 images, 0-16 per pixel) ships inside scikit-learn, so nothing
is downloaded. 36 images of each digit are held out for testing; the rest train an MLP
64 -> 128 -> 64 -> 10 (relu) with Adam and softmax cross-entropy, in plain NumPy.

Writes, next to this script (or to --out-dir):
    digits.graph      the float32 model; input: a batch of TEST_PER_CLASS * 10 flattened
                      images scaled to [0, 1]; outputs: the logits and the softmax probabilities
    digits.npz        its weights
    digits_data.npz   x_test/y_test (the held-out split) and x_calib/y_calib (a calibration
                      batch drawn from the training split, for int8 observers)

Everything comes from fixed seeds and the archives have fixed timestamps, so running it again
gives the same files. Training runs in float64 and only the exported weights are rounded to
float32, so a BLAS that sums in another order changes the weights by far less than one f32 ulp.

    python samples/digits/train.py [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # make_weights.py: the samples' deterministic .npz writer

from make_weights import npz_bytes, write_atomic  # noqa: E402

Arrays = dict[str, np.ndarray]

SEED = 8_8_10
TEST_PER_CLASS = 36
BATCH = TEST_PER_CLASS * 10  # the graph's batch: the whole test split in one run
LAYERS = (64, 128, 64, 10)
EPOCHS = 40
MINIBATCH = 32
LEARNING_RATE = 1e-3
PIXEL_MAX = 16.0  # load_digits counts ink in 4x4 blocks of a 32x32 bitmap: 0..16


def split(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices with TEST_PER_CLASS of every class in test, both shuffled.

    A fixed count per class, not a fraction, so the test split is exactly one graph batch.
    """
    test = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c))[:TEST_PER_CLASS] for c in range(10)]
    )
    train = np.setdiff1d(np.arange(len(labels)), test)
    return rng.permutation(train), rng.permutation(test)


def init(rng: np.random.Generator) -> list[np.ndarray]:
    """He-scaled weights (every hidden layer is followed by a relu), zero biases."""
    params = []
    for fan_in, fan_out in itertools.pairwise(LAYERS):
        params += [rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)]
        params += [np.zeros(fan_out)]
    return params


def forward(params: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits, and each layer's input (what the backward pass needs)."""
    inputs = []
    h = x
    for i in range(0, len(params), 2):
        inputs.append(h)
        h = h @ params[i] + params[i + 1]
        if i + 2 < len(params):
            h = np.maximum(h, 0.0)
    return h, inputs


def gradients(params: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Gradients of the mean softmax cross-entropy."""
    logits, inputs = forward(params, x)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    delta = p / len(y)
    grads: list[np.ndarray] = []
    for i in range(len(params) - 2, -1, -2):
        h = inputs[i // 2]
        grads = [h.T @ delta, delta.sum(axis=0), *grads]
        delta = (delta @ params[i].T) * (h > 0)  # h is a relu output: its mask is the derivative
    return grads


def train(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Adam (beta1 0.9, beta2 0.999) on shuffled minibatches."""
    params = init(rng)
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    step = 0
    for _ in range(EPOCHS):
        order = rng.permutation(len(x))
        for start in range(0, len(x), MINIBATCH):
            batch = order[start : start + MINIBATCH]
            step += 1
            for p, g, mi, vi in zip(
                params, gradients(params, x[batch], y[batch]), m, v, strict=True
            ):
                mi += 0.1 * (g - mi)
                vi += 0.001 * (g * g - vi)
                m_hat = mi / (1 - 0.9**step)
                v_hat = vi / (1 - 0.999**step)
                p -= LEARNING_RATE * m_hat / (np.sqrt(v_hat) + 1e-8)
    return params


def graph_text(batch: int = BATCH) -> str:
    """The model as a graph file reading its weights from digits.npz."""
    (i, h1, h2, o) = LAYERS
    return f"""\
# An MLP for scikit-learn's 8x8 handwritten digits, 64 -> {h1} -> {h2} -> 10, trained by
# samples/digits/train.py (which wrote this file and digits.npz; do not edit by hand).
#
#   h1     = relu(x  @ w1 + b1)
#   h2     = relu(h1 @ w2 + b2)
#   logits = h2 @ w3 + b3
#   probs  = softmax(logits)
#
# %x is a batch of {batch} flattened images, each pixel divided by {PIXEL_MAX:g} (so in [0, 1]).

func @main(%x: f32[{batch},{i}]) -> (f32[{batch},{o}], f32[{batch},{o}]) {{
  %w1 = constant "digits.npz"["w1"] : f32[{i},{h1}]
  %b1 = constant "digits.npz"["b1"] : f32[{h1}]
  %w2 = constant "digits.npz"["w2"] : f32[{h1},{h2}]
  %b2 = constant "digits.npz"["b2"] : f32[{h2}]
  %w3 = constant "digits.npz"["w3"] : f32[{h2},{o}]
  %b3 = constant "digits.npz"["b3"] : f32[{o}]

  %z1 = matmul(%x, %w1) : f32[{batch},{h1}]
  %a1 = add(%z1, %b1) : f32[{batch},{h1}]
  %h1 = relu(%a1) : f32[{batch},{h1}]

  %z2 = matmul(%h1, %w2) : f32[{batch},{h2}]
  %a2 = add(%z2, %b2) : f32[{batch},{h2}]
  %h2 = relu(%a2) : f32[{batch},{h2}]

  %z3 = matmul(%h2, %w3) : f32[{batch},{o}]
  %logits = add(%z3, %b3) : f32[{batch},{o}]
  %probs = softmax(%logits) {{axis = 1}} : f32[{batch},{o}]
  return %logits, %probs
}}
"""


def build() -> tuple[Arrays, Arrays]:
    """(weights, data): the trained float32 weights and the test and calibration batches."""
    digits = load_digits()
    x = (digits.data / PIXEL_MAX).astype(np.float64)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(SEED)
    train_idx, test_idx = split(y, rng)
    params = train(x[train_idx], y[train_idx], rng)
    weights = {
        f"{kind}{layer + 1}": p.astype(np.float32)
        for layer in range(len(params) // 2)
        for kind, p in (("w", params[2 * layer]), ("b", params[2 * layer + 1]))
    }
    calib_idx = train_idx[:BATCH]  # train_idx is shuffled: a random training batch
    data = {
        "x_test": x[test_idx].astype(np.float32),
        "y_test": y[test_idx],
        "x_calib": x[calib_idx].astype(np.float32),
        "y_calib": y[calib_idx],
    }
    return weights, data


def export(out_dir: Path) -> None:
    weights, data = build()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "digits.npz", npz_bytes(weights))
    write_atomic(out_dir / "digits_data.npz", npz_bytes(data))
    write_atomic(out_dir / "digits.graph", graph_text().encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where to write the files")
    args = parser.parse_args(argv)
    export(args.out_dir)
    for name in ("digits.graph", "digits.npz", "digits_data.npz"):
        path = args.out_dir / name
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
