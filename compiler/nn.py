"""What NumPy lacks, for jitted code: activations, softmax, convolution and pooling.

Each function works on traced values (it adds the op to the trace) and on plain NumPy arrays
(it runs the op's reference semantics), so a model written with `compiler.nn` runs the same
with and without `@jit`.

    from compiler import jit, nn

    @jit
    def block(x, w, b):
        return nn.relu(nn.conv2d(x, w, padding="same") + b)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from compiler import tracer_methods as _tracer_methods  # noqa: F401  (installs the methods)
from compiler.tracing import Tracer, current_trace, lift
from ir.ops import Op
from runtime.interp import run_op


def _apply(api: str, op: Op, *xs: Any, **attrs: Any) -> Any:
    if any(isinstance(x, Tracer) for x in xs) and current_trace() is not None:
        tracers = [lift(x) for x in xs]
        trace = tracers[0].trace
        with trace.operation(api):
            return trace.emit(op, tracers, all(t.weak for t in tracers), **attrs)
    return run_op(op, *(np.asarray(x) for x in xs), **attrs)


def relu(x: Any) -> Any:
    """max(x, 0); NaN stays NaN."""
    return _apply("nn.relu", Op.RELU, x)


def sigmoid(x: Any) -> Any:
    """1 / (1 + exp(-x)), without overflow for large |x|."""
    return _apply("nn.sigmoid", Op.SIGMOID, x)


def erf(x: Any) -> Any:
    return _apply("nn.erf", Op.ERF, x)


def rsqrt(x: Any) -> Any:
    """1 / sqrt(x)."""
    return _apply("nn.rsqrt", Op.RSQRT, x)


def gelu(x: Any) -> Any:
    """The exact (erf) form: x * (1 + erf(x / sqrt(2))) / 2."""
    return 0.5 * x * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))


def softmax(x: Any, axis: int = -1) -> Any:
    """exp(x - max) / sum(exp(x - max)) along `axis`."""
    return _apply("nn.softmax", Op.SOFTMAX, x, axis=axis)


def log_softmax(x: Any, axis: int = -1) -> Any:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def layer_norm(
    x: Any, gamma: Any = None, beta: Any = None, eps: float = 1e-5, axis: int = -1
) -> Any:
    mean = np.mean(x, axis=axis, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=axis, keepdims=True)
    y = centred * rsqrt(var + eps)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return y


def conv2d(
    x: Any, w: Any, strides: Any = (1, 1), padding: Any = "valid", dilation: Any = (1, 1),
    groups: int = 1,
) -> Any:  # fmt: skip
    """2-D cross-correlation of an NHWC input with an HWIO filter (graph-language `conv2d`)."""
    return _apply(
        "nn.conv2d", Op.CONV2D, x, w, strides=tuple(strides), padding=padding,
        dilation=tuple(dilation), groups=groups,
    )  # fmt: skip


def max_pool(x: Any, window: Any, strides: Any = None, padding: Any = "valid") -> Any:
    """Max over H x W windows of an NHWC input."""
    attrs: dict[str, Any] = {"window": tuple(window), "padding": padding}
    if strides is not None:
        attrs["strides"] = tuple(strides)
    return _apply("nn.max_pool", Op.MAX_POOL, x, **attrs)


def avg_pool(
    x: Any,
    window: Any,
    strides: Any = None,
    padding: Any = "valid",
    count_include_pad: bool = False,
) -> Any:
    """Mean over H x W windows of an NHWC input."""
    attrs: dict[str, Any] = {"window": tuple(window), "padding": padding,
                             "count_include_pad": count_include_pad}  # fmt: skip
    if strides is not None:
        attrs["strides"] = tuple(strides)
    return _apply("nn.avg_pool", Op.AVG_POOL, x, **attrs)
