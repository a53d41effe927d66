"""Element-type arithmetic behind the reference tables: conversion, widening, integer division.

These functions pin down the numerics every backend must reproduce bit for bit: how a value
changes type (`cast`, which *is* the convert op), where narrow floats compute (`widen`), what
integer ops accumulate in (`accumulator`), and integer `div`/`pow`, whose C-like results numpy
does not give directly. Callers run them under `np.errstate(all="ignore")`: overflow and NaN are
defined results here, not accidents to warn about.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ir.attrs import Attrs
from ir.dtypes import DType
from ir.types import TensorType

# One op's semantics: normalized attributes, operand values, result type -> a new array.
Reference = Callable[[Attrs, list[np.ndarray], TensorType], np.ndarray]

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
_NARROW_FLOATS = frozenset({DType.F16.np, DType.BF16.np})
_FLOATS = frozenset(t.np for t in (DType.F64, DType.F32, DType.F16, DType.BF16))
# Source types whose every value is exact in f32, so one rounding step reaches bf16.
_EXACT_IN_F32 = frozenset({F32, np.dtype(np.bool_), np.dtype(np.int8), np.dtype(np.int16)})
_EXACT_IN_F32 |= _NARROW_FLOATS | {np.dtype(np.uint8), np.dtype(np.uint16)}


def is_float(x: np.ndarray) -> bool:
    return x.dtype in _FLOATS


def widen(x: np.ndarray) -> np.ndarray:
    """The value elementwise math runs on: f16/bf16 as f32, everything else as is.

    f32 has more than twice the precision of f16 and bf16 plus two bits, so rounding an f32
    result of +, -, *, / or sqrt back to the narrow type gives the correctly rounded answer.
    """
    return x.astype(F32) if x.dtype in _NARROW_FLOATS else x


def complex_from_parts(re: np.ndarray, im: np.ndarray) -> np.ndarray:
    """The complex array with exactly these parts (re + 1j * im would turn inf * 0 into NaN)."""
    out = np.empty(np.broadcast_shapes(re.shape, im.shape), np.result_type(re, im, 1j))
    out.real, out.imag = re, im
    return out


def accumulator(x: np.ndarray) -> np.dtype:
    """What contractions sum in: f64 for f64, f32 for other floats, exact int64 for integers;
    a complex type in itself."""
    if x.dtype == F64 or x.dtype.kind == "c":
        return x.dtype
    return F32 if is_float(x) else np.dtype(np.int64)


def cast(x: np.ndarray, to: DType) -> np.ndarray:
    """Convert to `to` with tessel's convert semantics; always returns a new array.

    To bool: x != 0 (NaN is true). Float to int: truncate toward zero, saturate, NaN -> 0.
    Int to int: two's-complement wrap. To float or complex: round to nearest even, once.
    """
    x = np.asarray(x)  # ufuncs hand back numpy scalars for rank-0 operands
    if to is DType.BOOL:
        return np.asarray(widen(x) != 0)
    if to.is_float:
        return _to_float(x, to)
    if to.is_complex:  # from a real type, the imaginary part is 0 (complex to real is no op)
        return widen(x).astype(to.np)
    if is_float(x):
        return _float_to_int(x, to)
    return x.astype(to.np)  # numpy wraps int -> int and maps bool to 0/1


def _to_float(x: np.ndarray, to: DType) -> np.ndarray:
    if to is not DType.BF16:
        return x.astype(to.np)  # numpy rounds every source directly to f16/f32/f64
    f = x.astype(F32)
    if x.dtype in _EXACT_IN_F32:
        return f.astype(to.np)
    # ml_dtypes reaches bf16 from f64 or wide ints through f32 with two round-to-nearest steps,
    # which can create a tie the exact value never had (1 + 2**-8 + 2**-30 -> 1.0). Rounding
    # the first step to odd keeps the lost bits visible, making the second step exact.
    return _round_to_odd(f, _error_sign(x, f)).astype(to.np)


def _error_sign(x: np.ndarray, f: np.ndarray) -> np.ndarray:
    """sign(x - f), exactly, for x in f64/i32/i64 and f its f32 rounding."""
    if x.dtype != np.int64:
        wide = x.astype(F64)  # exact for f64 and i32, and f32 is exact in f64
        return np.asarray(np.greater(wide, f).astype(np.int8) - np.less(wide, f).astype(np.int8))
    # f64 cannot hold every i64, so compare as integers; f32 values >= 2**63 have no int64
    # form, but then x is certainly below f.
    over = f >= np.float32(2.0**63)
    back = np.where(over, 0, f).astype(np.int64)
    sign = np.greater(x, back).astype(np.int8) - np.less(x, back).astype(np.int8)
    return np.where(over, np.int8(-1), sign)


def _round_to_odd(f: np.ndarray, error_sign: np.ndarray) -> np.ndarray:
    even = (f.view(np.uint32) & 1) == 0
    bump = (error_sign != 0) & even & np.isfinite(f)
    toward = np.where(error_sign > 0, np.float32(np.inf), np.float32(-np.inf))
    return np.where(bump, np.nextafter(f, toward), f)


def _float_to_int(x: np.ndarray, to: DType) -> np.ndarray:
    info = np.iinfo(to.np.name)
    wide = x.astype(F64)  # exact for every float type
    # float(info.max) rounds up to 2**63 for i64, so ">=" also catches values just past the range
    over = wide >= float(info.max)
    under = wide <= float(info.min)
    inside = np.where(over | under | np.isnan(wide), 0.0, np.trunc(wide))
    out = inside.astype(to.np)
    np.copyto(out, info.max, where=over)
    np.copyto(out, info.min, where=under)
    return out


def divide(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """IEEE division for floats, NumPy's (Smith's algorithm) for complex numbers; C division
    for integers (see `int_divide`)."""
    return np.divide(x, y) if is_float(x) or x.dtype.kind == "c" else int_divide(x, y)


def int_divide(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Truncating division. x/0 is all ones (-1 signed, max unsigned); INT_MIN/-1 is INT_MIN."""
    signed = np.issubdtype(x.dtype, np.signedinteger)
    by_zero = y == 0
    by_minus_one = (y == -1) if signed else np.zeros(y.shape, bool)
    # Keep numpy away from the two divisors it cannot handle; their results are filled below.
    safe = np.where(by_zero | by_minus_one, np.ones_like(y), y)
    q = x // safe  # floors; step toward zero when the exact quotient was a negative fraction
    q += (x % safe != 0) & ((x < 0) != (safe < 0))
    q = np.where(by_minus_one, np.negative(x), q)  # -INT_MIN wraps to INT_MIN
    all_ones = -1 if signed else np.iinfo(x.dtype.name).max
    return np.where(by_zero, np.array(all_ones, x.dtype), q)


def power(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """C's float pow; integer pow with wrap-around and C-like negative exponents. (NumPy takes
    a 0-d exponent of 0.5 as sqrt, -1 as a reciprocal: a 1-element one keeps pow's values, as
    a whole array does, so that -inf ** 0.5 is inf whatever the shapes.)"""
    if not is_float(x):
        return int_power(x, y)
    shape = np.broadcast_shapes(x.shape, y.shape)
    return np.asarray(np.power(x, y.reshape(1) if y.ndim == 0 else y)).reshape(shape)


def int_power(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x**y modulo 2**bits. A negative exponent gives the truncated 1/x**-y: 0 unless |x| == 1."""
    negative = y < 0
    # Squaring in the operand type wraps at every step, which is the same as wrapping once.
    p = np.power(x, np.where(negative, np.zeros_like(y), y))
    if not np.issubdtype(x.dtype, np.signedinteger):
        return np.asarray(p)
    odd = (y & 1) == 1  # two's complement keeps the parity of negative exponents
    one, minus_one, zero = (np.array(v, x.dtype) for v in (1, -1, 0))
    reciprocal = np.where(x == 1, one, np.where(x == -1, np.where(odd, minus_one, one), zero))
    return np.asarray(np.where(negative, reciprocal, p))
