"""Checking arguments against a function's signature before anything runs.

Every executor (the interpreter now, native code later) goes through `bind_inputs`, so a wrong
array is rejected with a message naming the parameter, never passed on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.diagnostics import InputError
from ir.dtypes import DType
from ir.graph import Function
from ir.types import TensorType, format_bytes, physical_memory


def _dtype_name(dt: np.dtype[Any]) -> str:
    try:
        return DType.from_numpy(dt).value
    except ValueError:
        return str(dt)


def check_array(name: str, value: Any, want: TensorType) -> np.ndarray[Any, Any]:
    """Return `value` as a C-contiguous array of exactly type `want`, or raise InputError."""
    if not isinstance(value, np.ndarray | np.generic):
        if isinstance(value, int | float | bool) and want.rank == 0:
            value = np.asarray(value, dtype=want.dtype.np)
        else:
            raise InputError(
                f"argument '{name}' must be a numpy array of type {want}, "
                f"got {type(value).__name__}"
            )
    arr = np.asarray(value)
    if arr.dtype != want.dtype.np:
        raise InputError(
            f"argument '{name}' has dtype {_dtype_name(arr.dtype)}, expected {want.dtype.value} "
            f"(convert it with .astype(...))"
        )
    if arr.shape != want.shape:
        raise InputError(
            f"argument '{name}' has shape {list(arr.shape)}, expected {list(want.shape)}"
        )
    # not np.ascontiguousarray: it turns a rank-0 array into shape [1]
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def bind_inputs(
    fn: Function, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> list[np.ndarray[Any, Any]]:
    """Match positional and keyword arguments to `fn`'s parameters and check each one."""
    kwargs = dict(kwargs or {})
    names = fn.param_names
    if len(args) > len(names):
        raise InputError(f"@{fn.name} takes {len(names)} arguments, got {len(args)}")
    given: dict[str, Any] = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in names:
            raise InputError(
                f"@{fn.name} has no parameter '{key}' (parameters: {', '.join(names)})"
            )
        if key in given:
            raise InputError(f"argument '{key}' is given twice")
        given[key] = value
    missing = [n for n in names if n not in given]
    if missing:
        raise InputError(f"@{fn.name} is missing argument(s): {', '.join(missing)}")
    return [check_array(n, given[n], p.type) for n, p in zip(names, fn.params, strict=False)]


def random_inputs(fn: Function, seed: int = 0) -> list[np.ndarray[Any, Any]]:
    """Deterministic inputs of the right types: normal floats, small ints, fair bools.

    A parameter too large for this machine's memory is an InputError naming it, not an
    allocation failure (or the kernel's out-of-memory killer) halfway through."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"the seed for random inputs must be a non-negative integer, got {seed}")
    rng = np.random.default_rng(seed)
    out = []
    memory = physical_memory()
    for p in fn.params:
        t = p.type
        need = t.size * (8 + t.dtype.itemsize)  # numpy draws 8-byte values, then converts
        if memory is not None and need > memory:
            raise _too_large(p.name, t, memory)
        try:
            out.append(_random_array(rng, t))
        except (MemoryError, ValueError):  # ValueError: "array is too big"
            raise _too_large(p.name, t, memory) from None
    return out


def _random_array(rng: np.random.Generator, t: TensorType) -> np.ndarray[Any, Any]:
    if t.dtype.is_float:
        return rng.standard_normal(t.shape).astype(t.dtype.np)
    if t.dtype.is_complex:
        parts = rng.standard_normal((2, *t.shape))
        return np.asarray(parts[0] + 1j * parts[1], t.dtype.np)
    if t.dtype == DType.BOOL:
        return rng.integers(0, 2, t.shape).astype(bool)
    lo = 0 if not t.dtype.is_signed else -8
    return rng.integers(lo, 8, t.shape).astype(t.dtype.np)


def _too_large(name: str | None, t: TensorType, memory: int | None) -> InputError:
    has = f" (this machine has {format_bytes(memory)} of memory)" if memory else ""
    return InputError(
        f"parameter %{name}: {t} is {format_bytes(t.nbytes)}, too large to make random "
        f"values for{has}"
    )
