"""Real NumPy functions, written the way a user writes them, compile unchanged under @jit.

Each function runs eagerly in NumPy (the oracle) and under @jit on the interpreter and the CPU
backend, on awkward shapes as well as ordinary ones.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from compiler import jit, nn

TARGETS = ["interp", "cpu"]


def rand(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# --- the programs -------------------------------------------------------------------------


def mlp(x, params):
    h = np.maximum(x @ params["w1"] + params["b1"], 0.0)
    h = np.maximum(h @ params["w2"] + params["b2"], 0.0)
    return h @ params["w3"] + params["b3"]


def softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def logsumexp(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def attention(q, k, v):
    d = q.shape[-1]
    scores = np.einsum("bqd,bkd->bqk", q, k) / np.sqrt(d)
    weights = softmax(scores)
    return weights @ v


def multi_head_attention(x, wq, wk, wv, wo, heads):
    b, t, d = x.shape
    hd = d // heads

    def split(y):
        return y.reshape(b, t, heads, hd).transpose(0, 2, 1, 3)

    q, k, v = split(x @ wq), split(x @ wk), split(x @ wv)
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(hd)
    out = softmax(scores) @ v
    return out.transpose(0, 2, 1, 3).reshape(b, t, d) @ wo


def kmeans_step(points, centers):
    """One Lloyd step: assign each point to its nearest center, then move the centers."""
    d2 = ((points[:, None, :] - centers[None, :, :]) ** 2).sum(axis=-1)
    assign = np.argmin(d2, axis=1)
    onehot = (assign[:, None] == np.arange(centers.shape[0])[None, :]).astype(points.dtype)
    counts = onehot.sum(axis=0)
    sums = onehot.T @ points
    new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centers)
    return assign, new


def cosine_similarity(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def batchnorm_inference(x, mean, var, scale, shift):
    return (x - mean) * (scale / np.sqrt(var + 1e-3)) + shift


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def polynomial(x):
    return 3 * x**3 - 2 * x**2 + x / 4 - 1


def cross_entropy(logits, labels_onehot):
    logp = logits - logsumexp(logits)[:, None]
    return -np.mean(np.sum(labels_onehot * logp, axis=1))


def pairwise_sq_distances(x, y):
    xx = np.sum(x * x, axis=1)[:, None]
    yy = np.sum(y * y, axis=1)[None, :]
    return np.maximum(xx + yy - 2 * x @ y.T, 0)


def stack_and_clip(x, y):
    z = np.stack([x, y, x * y], axis=0)
    return np.clip(z, -1.0, 1.0).sum(axis=0), np.concatenate([x, y], axis=-1)


def mlp_params(rng, sizes):
    p = {}
    for i, (a, b) in enumerate(itertools.pairwise(sizes), start=1):
        p[f"w{i}"] = rand(rng, a, b) / np.sqrt(a)
        p[f"b{i}"] = rand(rng, b) * 0.1
    return p


def cases(rng):
    """(name, function, args, kwargs, static argnames) for every program."""
    return [
        ("mlp", mlp, (rand(rng, 7, 13), mlp_params(rng, [13, 33, 17, 5])), {}, ()),
        ("mlp-batch1", mlp, (rand(rng, 1, 16), mlp_params(rng, [16, 64, 64, 10])), {}, ()),
        ("softmax", softmax, (rand(rng, 5, 37) * 10,), {}, ()),
        ("softmax-1d", softmax, (rand(rng, 129),), {}, ()),
        ("layer_norm", layer_norm, (rand(rng, 3, 4, 19), rand(rng, 19), rand(rng, 19)), {}, ()),
        ("logsumexp", logsumexp, (rand(rng, 6, 11) * 30,), {}, ()),
        ("logsumexp-axis0", logsumexp, (rand(rng, 6, 11),), {"axis": 0}, ("axis",)),
        (
            "attention",
            attention,
            (rand(rng, 2, 5, 8), rand(rng, 2, 7, 8), rand(rng, 2, 7, 3)),
            {},
            (),
        ),
        (
            "mha",
            multi_head_attention,
            (rand(rng, 2, 6, 16), *(rand(rng, 16, 16) / 4 for _ in range(4))),
            {"heads": 4},
            ("heads",),
        ),
        ("kmeans", kmeans_step, (rand(rng, 40, 3), rand(rng, 5, 3)), {}, ()),
        ("cosine", cosine_similarity, (rand(rng, 4, 9), rand(rng, 6, 9)), {}, ()),
        (
            "batchnorm",
            batchnorm_inference,
            (rand(rng, 8, 6), rand(rng, 6), np.abs(rand(rng, 6)), rand(rng, 6), rand(rng, 6)),
            {},
            (),
        ),
        ("gelu", gelu_tanh, (rand(rng, 3, 17),), {}, ()),
        ("polynomial-f64", polynomial, (rand(rng, 31, dtype=np.float64),), {}, ()),
        ("polynomial-int", polynomial, (np.arange(-5, 6, dtype=np.int32),), {}, ()),
        (
            "cross_entropy",
            cross_entropy,
            (rand(rng, 9, 4), np.eye(4, dtype=np.float32)[rng.integers(0, 4, 9)]),
            {},
            (),
        ),
        ("pairwise", pairwise_sq_distances, (rand(rng, 5, 3), rand(rng, 4, 3)), {}, ()),
        ("stack_clip", stack_and_clip, (rand(rng, 3, 4), rand(rng, 3, 4)), {}, ()),
    ]


NAMES = [c[0] for c in cases(np.random.default_rng(0))]


def assert_tree_close(got, want, rtol, atol):
    if isinstance(want, tuple | list):
        assert isinstance(got, type(want))
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_tree_close(g, w, rtol, atol)
        return
    want = np.asarray(want)
    assert isinstance(got, np.ndarray)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", NAMES)
def test_program_matches_eager_numpy(name, target):
    rng = np.random.default_rng(NAMES.index(name))
    _, fn, args, kwargs, static = next(c for c in cases(rng) if c[0] == name)
    want = fn(*args, **kwargs)
    f = jit(fn, target=target, static_argnames=static)
    got = f(*args, **kwargs)
    loose = target == "cpu" or name in ("mha", "attention")
    assert_tree_close(got, want, rtol=3e-5 if loose else 2e-6, atol=1e-5 if loose else 1e-6)
    again = f(*args, **kwargs)  # a cache hit gives the same numbers
    assert_tree_close(again, got, rtol=0, atol=0)
    assert f.cache_info().misses == 1


@pytest.mark.parametrize("target", TARGETS)
def test_nn_namespace_matches_its_eager_form(target):
    rng = np.random.default_rng(1)
    x = rand(rng, 2, 9, 9, 3)
    w = rand(rng, 3, 3, 3, 4)

    def block(x, w):
        y = nn.relu(nn.conv2d(x, w, padding="same"))
        y = nn.max_pool(y, (2, 2))
        z = nn.sigmoid(y) + nn.gelu(y)
        return nn.softmax(z.reshape(2, -1)), nn.layer_norm(z, eps=1e-3)

    want = block(x, w)  # nn runs its reference semantics on plain arrays
    got = jit(block, target=target)(x, w)
    assert_tree_close(got, want, rtol=3e-5, atol=3e-6)
