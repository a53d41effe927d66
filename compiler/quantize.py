"""Post-training static int8 quantization: calibrate on real data, then rewrite the graph.

    from compiler import quantize
    int8 = quantize(module, calibration, observer="percentile:99.99")

Scheme (docs/quantization.md):
- weights: symmetric int8, one scale per output channel (per tensor on request);
- activations: symmetric int8 (zero point 0), one scale per tensor, from the observed range;
- bias: int32, in the accumulator's scale (activation scale x weight scale);
- each dot_general/conv2d with constant weights becomes quantize -> integer dot/conv with int32
  accumulation (+ int32 bias) -> dequantize, and `fold-requantize` then turns every
  dequantize -> relu -> quantize between layers into one integer `requantize`.
Ops with no int8 form stay in float between dequantize and quantize.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ir.attrs import ConstData
from ir.builder import make_node
from ir.diagnostics import TesselError
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op
from passes import PassManager, parse_pipeline
from runtime.inputs import bind_inputs
from runtime.interp import evaluate_node, run_op

QMAX = 127
CLEANUP = "canonicalize,fold,cse,dce"

# --- observers ----------------------------------------------------------------------------


class Observer:
    """Watches one value across calibration batches and proposes its symmetric range."""

    def add(self, values: np.ndarray) -> None:
        raise NotImplementedError

    def bound(self) -> float:
        raise NotImplementedError


class MinMax(Observer):
    def __init__(self) -> None:
        self.peak = 0.0

    def add(self, values: np.ndarray) -> None:
        if values.size:
            self.peak = max(self.peak, float(np.max(np.abs(values))))

    def bound(self) -> float:
        return self.peak


class MovingAverage(Observer):
    """The per-batch peak, averaged with momentum (outlier batches count less)."""

    def __init__(self, momentum: float = 0.9) -> None:
        self.momentum = momentum
        self.average: float | None = None

    def add(self, values: np.ndarray) -> None:
        if not values.size:
            return
        peak = float(np.max(np.abs(values)))
        if self.average is None:
            self.average = peak
        else:
            self.average = self.momentum * self.average + (1 - self.momentum) * peak

    def bound(self) -> float:
        return self.average or 0.0


class Percentile(Observer):
    """A percentile of |x| over every value seen: clips rare outliers for finer steps."""

    def __init__(self, percent: float) -> None:
        if not 0 < percent <= 100:
            raise TesselError(f"observer percentile:{percent}: the percentile must be in (0, 100]")
        self.percent = percent
        self.seen: list[np.ndarray] = []

    def add(self, values: np.ndarray) -> None:
        self.seen.append(np.abs(values.astype(np.float64)).reshape(-1))

    def bound(self) -> float:
        values = np.concatenate(self.seen) if self.seen else np.zeros(1)
        return float(np.percentile(values, self.percent)) if values.size else 0.0


def observer_factory(spec: str) -> Callable[[], Observer]:
    """`minmax`, `moving-average[:momentum]`, or `percentile:P`."""
    name, _, arg = spec.partition(":")
    try:
        if name == "minmax" and not arg:
            return MinMax
        if name == "moving-average":
            momentum = float(arg) if arg else 0.9
            return lambda: MovingAverage(momentum)
        if name == "percentile":
            percent = float(arg or "99.99")
            Percentile(percent)  # checks the range now, not at the first batch
            return lambda: Percentile(percent)
    except ValueError:
        pass
    raise TesselError(
        f"unknown observer {spec!r}: use minmax, moving-average[:MOMENTUM] or percentile:P"
    )


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


def calibrate(fn: Function, data: Iterable[list[np.ndarray]], observer: str) -> dict[Node, float]:
    """The symmetric range (largest |x| to represent) of every contraction's input."""
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
    return {node: obs.bound() for node, obs in observers.items()}


# --- the rewrite --------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """A quantized contraction: its int32 accumulator and the scale of each output channel."""

    acc: Node
    scales: tuple[float, ...]
    axis: int | None


def _scale(bound: float) -> float:
    return bound / QMAX if bound > 0 else 1.0


def _weights(node: Node, per_channel: bool) -> tuple[np.ndarray, np.ndarray, int | None, int]:
    """(int8 weights, scale per channel, the channel axis of the weights and of the output)."""
    w = node.srcs[1].attrs["value"].array
    w_axis: int | None
    if node.op is Op.CONV2D:
        w_axis, out_axis = 3, 3  # HWIO filter, NHWC output
    else:
        a = node.attrs
        free = [d for d in range(w.ndim) if d not in a["rhs_contract"] + a["rhs_batch"]]
        w_axis = free[0] if len(free) == 1 else None
        lhs_free = node.srcs[0].type.rank - len(a["lhs_contract"]) - len(a["lhs_batch"])
        out_axis = len(a["lhs_batch"]) + lhs_free
    magnitude = np.abs(w.astype(np.float64))
    if not per_channel or w_axis is None or w.shape[w_axis] < 2:
        peaks = [float(np.max(magnitude, initial=0.0))]
        w_axis = None
    else:
        peaks = list(np.moveaxis(magnitude, w_axis, 0).reshape(w.shape[w_axis], -1).max(axis=1))
    scale = np.array([_scale(float(p)) for p in peaks], np.float32)  # what quantize computes in
    return _quantized(w, scale, w_axis, DType.I8), scale.astype(np.float64), w_axis, out_axis


def _quantized(x: np.ndarray, scale: np.ndarray, axis: int | None, dtype: DType) -> np.ndarray:
    """`x` through the quantize op's own reference semantics (one definition of rounding)."""
    attrs: dict[str, Any] = {"scale": [float(s) for s in scale], "dtype": dtype}
    if axis is not None:
        attrs["axis"] = axis
    return run_op(Op.QUANTIZE, np.asarray(x, np.float32), **attrs)


def _const(value: np.ndarray) -> Node:
    return make_node(Op.CONSTANT, (), {"value": ConstData(np.ascontiguousarray(value))})


def quantize_function(
    fn: Function, ranges: Mapping[Node, float], per_channel: bool = True
) -> Function:
    """`fn` with every calibrated contraction in int8 (see the module docstring)."""
    new: dict[Node, Node] = {p: p for p in fn.params}
    layers: dict[Node, Layer] = {}
    body: list[Node] = []

    def add(node: Node) -> Node:
        body.append(node)
        return node

    for node in fn.body:
        srcs = [new[s] for s in node.srcs]
        layer = None
        if quantizable(node) and node.srcs[0] in ranges:
            layer = _quantize_layer(node, srcs[0], ranges[node.srcs[0]], per_channel, add)
        else:
            layer = _bias(node, layers, add)
        if layer is not None:
            layers[node] = layer
            # the float value keeps its name, so reports can line it up with the original
            new[node] = add(_dequantize(layer, node.dtype).replace(name=node.name))
            continue
        new[node] = add(node.replace(srcs=tuple(srcs)) if srcs != list(node.srcs) else node)
    return fn.replace(body=tuple(body), results=tuple(new[r] for r in fn.results))


def _quantize_layer(
    node: Node, x: Node, bound: float, per_channel: bool, add: Callable[[Node], Node]
) -> Layer:
    scale_x = _scale(bound)
    qx = add(make_node(Op.QUANTIZE, (x,), {"scale": [scale_x]}, loc=node.loc))
    wq, scale_w, w_axis, out_axis = _weights(node, per_channel)
    qw = add(_const(wq))
    attrs = dict(node.attrs)
    attrs["out_dtype"] = DType.I32
    acc = add(make_node(node.op, (qx, qw), attrs, loc=node.loc))
    scales = tuple(float(scale_x * s) for s in scale_w)
    return Layer(acc, scales, out_axis if w_axis is not None else None)


def _dequantize(layer: Layer, dtype: DType) -> Node:
    attrs: dict[str, Any] = {"scale": list(layer.scales), "dtype": dtype}
    if layer.axis is not None:
        attrs["axis"] = layer.axis
    return make_node(Op.DEQUANTIZE, (layer.acc,), attrs, loc=layer.acc.loc)


def _bias(node: Node, layers: Mapping[Node, Layer], add: Callable[[Node], Node]) -> Layer | None:
    """add(layer, broadcast(constant bias along the channel axis)) -> an int32 bias add."""
    if node.op is not Op.ADD or node.dtype is not DType.F32:
        return None
    for i, j in ((0, 1), (1, 0)):
        layer, spread = layers.get(node.srcs[i]), node.srcs[j]
        if layer is None or spread.op is not Op.BROADCAST_IN_DIM:
            continue
        const = spread.srcs[0]
        channel = [layer.axis] if layer.axis is not None else [node.type.rank - 1]
        if const.op is not Op.CONSTANT or list(spread.attrs["dims"]) != channel[: const.type.rank]:
            continue
        bias = const.attrs["value"].array.astype(np.float64).reshape(-1)
        scales = np.array(layer.scales) if len(layer.scales) > 1 else np.full(1, layer.scales[0])
        if bias.size not in (1, node.shape[channel[0]]) or const.type.rank != 1:
            continue
        bias_q = _quantized(bias, scales, 0 if scales.size > 1 else None, DType.I32)
        qb = add(_const(bias_q))
        spread_q = add(make_node(Op.BROADCAST_IN_DIM, (qb,), dict(spread.attrs), loc=spread.loc))
        acc = add(make_node(Op.ADD, (layer.acc, spread_q), {}, loc=node.loc))
        return Layer(acc, layer.scales, layer.axis)
    return None


# --- the front door -----------------------------------------------------------------------


def quantize(
    model: Module | Any,
    calibration: Any,
    observer: str = "minmax",
    per_channel: bool = True,
    entry: str | None = None,
    fold: bool = True,
) -> Module:
    """An int8 version of `model` (a Module, or a @jit function traced on the first batch),
    calibrated on `calibration` with `observer` (`minmax`, `moving-average`, `percentile:P`).

    `fold=False` stops before `fold-requantize`: every quantized layer then ends in a
    dequantize to float, which shows where quantization error enters, layer by layer."""
    module = _as_module(model, calibration)
    module = PassManager(parse_pipeline(CLEANUP)).run(module)
    fn = module.function(entry or module.entry)
    ranges = calibrate(fn, batches(fn, calibration), observer)
    quantized = module.replace_function(quantize_function(fn, ranges, per_channel))
    pipeline = f"fold-requantize,{CLEANUP}" if fold else CLEANUP
    return PassManager(parse_pipeline(pipeline), verify_each=True).run(quantized)


def _as_module(model: Any, calibration: Any) -> Module:
    if isinstance(model, Module):
        return model
    lower = getattr(model, "lower", None)
    if lower is None:
        raise TesselError("quantize takes a Module or a @jit function")
    first = calibration[0] if isinstance(calibration, Sequence) else calibration
    args = list(first.values()) if isinstance(first, Mapping) else list(first)
    return lower(*args).module  # type: ignore[no-any-return]
