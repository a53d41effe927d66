"""Post-training static int8 quantization: calibrate on real data, write a QDQ graph, fold it.

    from compiler import quantize
    int8 = quantize(module, calibration, observer="percentile:99.99")

Scheme (docs/quantization.md):
- weights: symmetric int8, one scale per output channel (per tensor on request);
- activations: one scale per tensor from the observed range; symmetric int8 (zero point 0), or
  asymmetric u8 with a zero point (`activations="asymmetric"`, dot_general inputs only);
- bias: int32, in the accumulator's scale (activation scale x weight scale).

`quantize_function` writes the QDQ graph: the float graph with `quantize -> dequantize` on every
contraction input and int8 weight constants behind a `dequantize`. The passes of passes/qdq.py
and passes/requantize.py then fold it into int32 contractions, int32 biases and `requantize`
between layers. Ops with no int8 form stay in float between dequantize and quantize.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compiler.observers import Observer, observer_factory
from ir.builder import make_node
from ir.diagnostics import TesselError
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op
from passes import PassManager, parse_pipeline
from passes.qdq import constant, quantized
from runtime.inputs import bind_inputs
from runtime.interp import evaluate_node

QMAX = 127
UMAX = 255
CLEANUP = "canonicalize,fold,cse,dce"
# fold-qdq must see the int8 weights behind their dequantize, before `fold` evaluates it
FOLD = "fold-qdq,fold-requantize,cancel-qdq,drop-requantize"
ACTIVATIONS = ("symmetric", "asymmetric")

# --- calibration --------------------------------------------------------------------------


def quantizable(node: Node) -> bool:
    """A float contraction whose weights (rhs) are a constant."""
    return (
        node.op in (Op.DOT_GENERAL, Op.CONV2D)
        and node.dtype is DType.F32
        and node.srcs[0].dtype is DType.F32
        and node.srcs[1].op is Op.CONSTANT
    )


def batches(fn: Function, data: Any) -> list[list[np.ndarray]]:
    """Calibration data as argument lists: a dict of arrays (one batch, or a leading axis of
    batches when every array has one more dimension than its parameter), or a list of those."""
    if isinstance(data, Mapping):
        first = fn.params[0]
        value = np.asarray(data.get(first.name if first.name else "", next(iter(data.values()))))
        if value.ndim == first.type.rank + 1:
            count = value.shape[0]
            return [
                bind_inputs(fn, (), {k: np.asarray(v)[i] for k, v in data.items()})
                for i in range(count)
            ]
        return [bind_inputs(fn, (), dict(data))]
    return [
        bind_inputs(fn, (), dict(b)) if isinstance(b, Mapping) else bind_inputs(fn, list(b))
        for b in data
    ]


def run_all(fn: Function, args: Sequence[np.ndarray]) -> dict[Node, np.ndarray]:
    """Every value of `fn` on `args`, by the reference semantics."""
    values: dict[Node, np.ndarray] = dict(zip(fn.params, args, strict=True))
    for node in fn.body:
        values[node] = evaluate_node(node, [values[s] for s in node.srcs])
    return values


@dataclass(frozen=True)
class QParams:
    """How one activation is quantized: x = (q - zero) * scale, q in `dtype`."""

    scale: float
    zero: int
    dtype: DType


def symmetric(bound: float) -> QParams:
    return QParams(bound / QMAX if bound > 0 else 1.0, 0, DType.I8)


def asymmetric(lo: float, hi: float) -> QParams:
    """[lo, hi] (widened to hold 0, which must be exact) onto [0, 255]."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo <= 0:
        return QParams(1.0, 0, DType.U8)
    scale = (hi - lo) / UMAX
    zero = int(min(max(round(-lo / scale), 0), UMAX))
    return QParams(scale, zero, DType.U8)


def calibrate(
    fn: Function, data: Iterable[list[np.ndarray]], observer: str
) -> dict[Node, Observer]:
    """An observer, fed every calibration batch, for each contraction input."""
    make = observer_factory(observer)
    watched = {n.srcs[0] for n in fn.body if quantizable(n)}
    observers = {n: make() for n in watched}
    seen = False
    for args in data:
        seen = True
        values = run_all(fn, args)
        for node, obs in observers.items():
            obs.add(values[node])
    if not seen:
        raise TesselError("calibration needs at least one batch of inputs")
    return observers


def activation_params(
    fn: Function, observers: Mapping[Node, Observer], activations: str
) -> dict[Node, QParams]:
    """The quantization of each observed value. Asymmetric u8 only where every consumer can take
    it: a dot_general whose zero-point correction is one constant per output channel (conv2d
    has no u8 x i8 form, and its zero padding would not be the zero point)."""
    if activations not in ACTIVATIONS:
        raise TesselError(f"unknown activations {activations!r}: use symmetric or asymmetric")
    users: dict[Node, list[Node]] = {}
    for n in fn.body:
        if quantizable(n):
            users.setdefault(n.srcs[0], []).append(n)
    params = {}
    for node, obs in observers.items():
        if activations == "asymmetric" and all(_takes_u8(u) for u in users[node]):
            params[node] = asymmetric(*obs.range())
        else:
            params[node] = symmetric(obs.bound())
    return params


def _takes_u8(node: Node) -> bool:
    if node.op is not Op.DOT_GENERAL or node.attrs["rhs_batch"]:
        return False
    a = node.attrs
    free = [d for d in range(node.srcs[1].type.rank) if d not in a["rhs_contract"]]
    return len(free) == 1


# --- the QDQ graph ------------------------------------------------------------------------


def _scale(bound: float) -> float:
    return bound / QMAX if bound > 0 else 1.0


def _weights(node: Node, per_channel: bool) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(int8 weights, scale per channel, the channel axis of the weights)."""
    w = node.srcs[1].attrs["value"].array
    w_axis: int | None
    if node.op is Op.CONV2D:
        w_axis = 3  # HWIO filter
    else:
        a = node.attrs
        free = [d for d in range(w.ndim) if d not in a["rhs_contract"] + a["rhs_batch"]]
        w_axis = free[0] if len(free) == 1 else None
    magnitude = np.abs(w.astype(np.float64))
    if not per_channel or w_axis is None or w.shape[w_axis] < 2:
        peaks = [float(np.max(magnitude, initial=0.0))]
        w_axis = None
    else:
        peaks = list(np.moveaxis(magnitude, w_axis, 0).reshape(w.shape[w_axis], -1).max(axis=1))
    scale = np.array([_scale(float(p)) for p in peaks], np.float32)  # what quantize computes in
    return quantized(w, scale, w_axis, DType.I8), scale.astype(np.float64), w_axis


def quantize_function(
    fn: Function, params: Mapping[Node, QParams], per_channel: bool = True
) -> Function:
    """`fn` as a QDQ graph: each calibrated contraction reads `dequantize(quantize(x))` and
    `dequantize(int8 weights)`; everything else is unchanged."""
    new: dict[Node, Node] = {p: p for p in fn.params}
    fake: dict[Node, Node] = {}  # one quantize -> dequantize per activation, however many users
    body: list[Node] = []

    def add(node: Node) -> Node:
        body.append(node)
        return node

    for node in fn.body:
        srcs = [new[s] for s in node.srcs]
        if quantizable(node) and node.srcs[0] in params:
            x = node.srcs[0]
            if x not in fake:
                fake[x] = _qdq(srcs[0], params[x], add)
            wq, scale_w, w_axis = _weights(node, per_channel)
            qw = add(constant(wq))
            attrs: dict[str, Any] = {"scale": [float(s) for s in scale_w], "dtype": node.dtype}
            if w_axis is not None:
                attrs["axis"] = w_axis
            dw = add(make_node(Op.DEQUANTIZE, (qw,), attrs, loc=node.srcs[1].loc))
            srcs = [fake[x], dw]
        new[node] = add(node.replace(srcs=tuple(srcs)) if srcs != list(node.srcs) else node)
    return fn.replace(body=tuple(body), results=tuple(new[r] for r in fn.results))


def _qdq(x: Node, p: QParams, add: Callable[[Node], Node]) -> Node:
    attrs = {"scale": [p.scale], "zero_point": [p.zero]}
    q = add(make_node(Op.QUANTIZE, (x,), {**attrs, "dtype": p.dtype}, loc=x.loc))
    return add(make_node(Op.DEQUANTIZE, (q,), {**attrs, "dtype": x.dtype}, loc=x.loc))


# --- the front door -----------------------------------------------------------------------


def quantize(
    model: Module | Any,
    calibration: Any,
    observer: str = "minmax",
    per_channel: bool = True,
    entry: str | None = None,
    fold: bool = True,
    activations: str = "symmetric",
) -> Module:
    """An int8 version of `model` (a Module, or a @jit function traced on the first batch),
    calibrated on `calibration` with `observer` (`minmax`, `moving-average`, `percentile:P`,
    `kl`), activations `symmetric` (i8) or `asymmetric` (u8 with a zero point).

    `fold=False` returns the QDQ graph: float contractions on quantized-then-dequantized values,
    which shows where quantization error enters, layer by layer."""
    module = _as_module(model, calibration)
    module = PassManager(parse_pipeline(CLEANUP)).run(module)
    fn = module.function(entry or module.entry)
    observers = calibrate(fn, batches(fn, calibration), observer)
    params = activation_params(fn, observers, activations)
    qdq = module.replace_function(quantize_function(fn, params, per_channel))
    pipeline = f"{FOLD},{CLEANUP}" if fold else "canonicalize,cse,dce"
    return PassManager(parse_pipeline(pipeline), verify_each=True).run(qdq)


def _as_module(model: Any, calibration: Any) -> Module:
    if isinstance(model, Module):
        return model
    lower = getattr(model, "lower", None)
    if lower is None:
        raise TesselError("quantize takes a Module or a @jit function")
    first = calibration[0] if isinstance(calibration, Sequence) else calibration
    args = list(first.values()) if isinstance(first, Mapping) else list(first)
    return lower(*args).module  # type: ignore[no-any-return]
