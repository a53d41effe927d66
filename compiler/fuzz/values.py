"""Array values for constants and inputs: ordinary numbers, and the ones that break code.

Floats include nan, -nan, +-inf, -0.0, the largest finite value and the smallest subnormal of
their type; integers the ends of their range (where negation and division wrap). A complex
number's real and imaginary parts are drawn apart, as values of its part type (f32, f64), so
either part (or both) can be special. How often the
special values appear is a parameter: a case without them checks plain arithmetic, a case
with them the edges of the number rules in runtime/numerics.py.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from ir.dtypes import DType
from ir.graph import Function


def special_floats(dtype: DType) -> list[float]:
    finfo = ml_dtypes.finfo(dtype.np)  # type: ignore[no-untyped-call]
    return [
        0.0,
        -0.0,
        1.0,
        -1.5,
        np.inf,
        -np.inf,
        np.nan,
        float(finfo.max),
        -float(finfo.max),
        float(finfo.smallest_subnormal),
        0.5,
        2.0,
    ]


def special_ints(dtype: DType) -> list[int]:
    info = np.iinfo(dtype.np.name)
    return [0, 1, -1 if dtype.is_signed else 2, int(info.min), int(info.max), 2, 7]


def array(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: DType, specials: float = 0.0
) -> np.ndarray[Any, Any]:
    """Random values of `dtype`; each element is a special value with probability `specials`."""
    if dtype is DType.BOOL:
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.is_complex:
        re = array(rng, shape, dtype.real_part, specials)
        im = array(rng, shape, dtype.real_part, specials)
        whole = np.empty(shape, dtype.np)
        whole.real, whole.imag = re, im  # not re + 1j * im: inf * 1j has a nan real part
        return whole
    if dtype.is_float:
        # mostly normal values; a third small integers, which keep sums and products exact
        values: np.ndarray[Any, Any] = rng.standard_normal(shape)
        ints = rng.random(shape) < 0.3
        values = np.where(ints, rng.integers(-4, 5, shape), values)
        pool = np.array(special_floats(dtype), dtype=np.float64)
    else:
        lo = 0 if not dtype.is_signed else -8
        values = rng.integers(lo, 9, shape)
        # u64's maximum is past int64: the pool holds Python ints in an object array
        pool = np.array(special_ints(dtype), dtype=object if dtype is DType.U64 else np.int64)
    if specials > 0 and values.size:
        pick = rng.random(shape) < specials
        values = np.where(pick, pool[rng.integers(0, len(pool), shape)], values)
    with np.errstate(all="ignore"):  # finfo.max of f64 in a bf16 array is inf: intended
        out = np.asarray(values).astype(dtype.np)
    return out.copy(order="C")  # not np.ascontiguousarray: it makes a scalar shape [1]


def inputs(fn: Function, seed: int, specials: float = 0.0) -> list[np.ndarray[Any, Any]]:
    """Deterministic arguments for `fn`: the same seed gives the same arrays in any process."""
    rng = np.random.default_rng(seed)
    return [array(rng, p.type.shape, p.type.dtype, specials) for p in fn.params]
