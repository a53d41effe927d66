"""Quantization ops' attribute rules and types: quantize, dequantize, requantize.

One scale and zero point per tensor, or one per channel along `axis`. `requantize` is the
integer-only rescaling of an int32 accumulator that integer inference engines use: a Q31
fixed-point multiplier and a power-of-two shift with round-to-nearest, so every backend can
reproduce the reference's integers exactly (runtime/reference_quant.py defines them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np

from ir.attrs import Attrs
from ir.diagnostics import ShapeError
from ir.dtypes import DType
from ir.ops import QUANT_INTS, Op
from ir.types import TensorType

Types = Sequence[TensorType]
Q31_MAX = (1 << 31) - 1


def _fail(msg: str, attr: str | None = None) -> NoReturn:
    raise ShapeError(msg, attr=attr)


def int_range(dtype: DType) -> tuple[int, int]:
    bits = dtype.itemsize * 8
    if dtype is DType.U8:
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _channels(t: Types, a: dict[str, Any], count: int, attr: str) -> None:
    """Per-channel parameters need an axis whose size is their count; per-tensor ones none."""
    rank = t[0].rank
    if count == 1 and a["axis"] is None:
        return
    if a["axis"] is None:
        _fail(f"{count} values of '{attr}' (one per channel) need an 'axis'", attr="axis")
    if not -rank <= a["axis"] < rank:
        _fail(f"axis {a['axis']} is out of range for rank {rank}", attr="axis")
    a["axis"] %= rank
    size = t[0].shape[a["axis"]]
    if count not in (1, size):
        _fail(f"'{attr}' has {count} values; axis {a['axis']} has {size} channels", attr=attr)


def _n_scaled(t: Types, a: dict[str, Any]) -> None:
    scale, zero = a["scale"], a["zero_point"]
    if any(not (np.isfinite(s) and s > 0) for s in scale):
        _fail(f"every scale must be a positive finite number, got {list(scale)}", attr="scale")
    if len(zero) not in (1, len(scale)):
        _fail(f"{len(zero)} zero points for {len(scale)} scales", attr="zero_point")
    _channels(t, a, max(len(scale), len(zero)), "scale")


def _n_quantize(t: Types, a: dict[str, Any]) -> None:
    _n_scaled(t, a)
    _quantized_type(a["dtype"], "dtype")
    lo, hi = int_range(a["dtype"])
    if any(not lo <= z <= hi for z in a["zero_point"]):
        _fail(f"zero points {list(a['zero_point'])} are outside {a['dtype']}", attr="zero_point")


def _n_dequantize(t: Types, a: dict[str, Any]) -> None:
    _n_scaled(t, a)
    if not a["dtype"].is_float:
        _fail(f"dequantize produces a float type, not {a['dtype']}", attr="dtype")
    if t and t[0].dtype in QUANT_INTS:
        lo, hi = int_range(t[0].dtype)
        if any(not lo <= z <= hi for z in a["zero_point"]):
            _fail(
                f"zero points {list(a['zero_point'])} are outside {t[0].dtype}", attr="zero_point"
            )


def _n_requantize(t: Types, a: dict[str, Any]) -> None:
    mult, shift = a["multiplier"], a["shift"]
    if not mult or len(shift) != len(mult):
        _fail(f"{len(mult)} multipliers and {len(shift)} shifts", attr="shift")
    if any(not 0 <= m <= Q31_MAX for m in mult):
        _fail(f"multipliers must lie in [0, 2^31 - 1], got {list(mult)}", attr="multiplier")
    if any(not -31 <= s <= 31 for s in shift):
        _fail(f"shifts must lie in [-31, 31], got {list(shift)}", attr="shift")
    _channels(t, a, len(mult), "multiplier")
    _quantized_type(a["dtype"], "dtype")
    lo, hi = int_range(a["dtype"])
    a["min"] = lo if a["min"] is None else a["min"]
    a["max"] = hi if a["max"] is None else a["max"]
    for name in ("zero_point", "min", "max"):
        if not lo <= a[name] <= hi:
            _fail(f"{name} {a[name]} is outside {a['dtype']}", attr=name)
    if a["min"] > a["max"]:
        _fail(f"min {a['min']} is above max {a['max']}", attr="min")


def _quantized_type(dtype: DType, attr: str) -> None:
    if dtype not in QUANT_INTS:
        names = ", ".join(d.value for d in QUANT_INTS)
        _fail(f"quantized values are {names}, not {dtype}", attr=attr)


def _t_to_dtype(t: Types, a: Attrs) -> TensorType:
    return t[0].with_dtype(a["dtype"])


NORMALIZE: dict[Op, Callable[[Types, dict[str, Any]], None]] = {
    Op.QUANTIZE: _n_quantize,
    Op.DEQUANTIZE: _n_dequantize,
    Op.REQUANTIZE: _n_requantize,
}
TYPE_RULES: dict[Op, Callable[[Types, Attrs], TensorType]] = {
    Op.QUANTIZE: _t_to_dtype,
    Op.DEQUANTIZE: _t_to_dtype,
    Op.REQUANTIZE: _t_to_dtype,
}


def channel_shape(attrs: Attrs, rank: int) -> tuple[int, ...]:
    """The shape per-channel parameters broadcast with: -1 on the channel axis, 1 elsewhere."""
    axis = attrs["axis"]
    return tuple(-1 if i == axis else 1 for i in range(rank)) if axis is not None else ()
