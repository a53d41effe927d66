"""Reference semantics of the quantization ops, exact to the bit: every backend must give these
integers (and, for dequantize, these floats).

- quantize: q = clamp(round_half_even(x / scale) + zero_point, dtype's range), with x / scale
  computed in x's compute type (f32 for f16/bf16/f32, f64 for f64; the scale rounded to it
  first). NaN becomes zero_point; +-inf saturate.
- dequantize: x = (q - zero_point) * scale: the difference is exact, converted to the output's
  compute type (round to nearest even), multiplied by the scale in that type, and rounded once
  to the output dtype.
- requantize (integer only, as gemmlowp/TFLite do): a negative shift first multiplies the
  accumulator by 2^-shift, saturating to int32; then y = round(acc * multiplier / 2^31) with
  ties away from zero (the "saturating rounding doubling high multiply"), then
  y = round(y / 2^shift) with ties away from zero for a positive shift, and finally
  clamp(y + zero_point, min, max).
"""

from __future__ import annotations

import numpy as np

from ir.attrs import Attrs
from ir.ops import Op
from ir.quant import channel_shape, int_range
from ir.types import TensorType
from runtime.numerics import Reference, cast, widen

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _params(attrs: Attrs, name: str, rank: int, dtype: type) -> np.ndarray:
    values: np.ndarray = np.asarray(attrs[name], dtype=dtype)
    shape = channel_shape(attrs, rank)
    return values.reshape(shape) if shape and values.size > 1 else values.reshape(())


def _quantize(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    x = widen(args[0])
    scale = _params(attrs, "scale", x.ndim, x.dtype.type)
    zero = _params(attrs, "zero_point", x.ndim, np.int64)
    q = np.rint(x / scale)
    q = np.where(np.isnan(q), 0, np.clip(q, -(2.0**40), 2.0**40))  # exact in float: |q| < 2^53
    lo, hi = int_range(out.dtype)
    return np.asarray(np.clip(q.astype(np.int64) + zero, lo, hi).astype(out.dtype.np))


def _dequantize(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    compute = np.float64 if out.dtype.np == np.float64 else np.float32
    q = args[0].astype(np.int64) - _params(attrs, "zero_point", args[0].ndim, np.int64)
    scale = _params(attrs, "scale", args[0].ndim, compute)
    return np.asarray(cast(q.astype(compute) * scale, out.dtype))


def rounding_high_mul(acc: np.ndarray, multiplier: np.ndarray) -> np.ndarray:
    """round(acc * multiplier / 2^31), ties away from zero (int64 arithmetic, no overflow)."""
    product = acc * multiplier
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    total = product + nudge
    return np.asarray(np.where(total >= 0, total >> 31, -((-total) >> 31)))  # truncates to zero


def rounding_shift_right(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """round(x / 2^shift), ties away from zero (shift >= 0)."""
    mask = (np.int64(1) << shift) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return np.asarray((x >> shift) + (remainder > threshold))


def _requantize(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    acc = args[0].astype(np.int64)
    multiplier = _params(attrs, "multiplier", acc.ndim, np.int64)
    shift = _params(attrs, "shift", acc.ndim, np.int64)
    left = np.maximum(-shift, 0)
    acc = np.clip(acc << left, INT32_MIN, INT32_MAX)
    y = rounding_shift_right(rounding_high_mul(acc, multiplier), np.maximum(shift, 0))
    y = np.clip(y + attrs["zero_point"], attrs["min"], attrs["max"])
    return np.asarray(y.astype(out.dtype.np))


QUANT_REFERENCE: dict[Op, Reference] = {
    Op.QUANTIZE: _quantize,
    Op.DEQUANTIZE: _dequantize,
    Op.REQUANTIZE: _requantize,
}
