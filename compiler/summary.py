"""Short, human-readable summaries of output arrays, as printed by `tessel run`."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ir.dtypes import DType

SHOWN = 6  # leading values printed per output


def _fmt(value: Any) -> str:
    if isinstance(value, np.bool_ | bool):
        return "true" if value else "false"
    if isinstance(value, np.integer):
        return str(int(value))
    if isinstance(value, np.complexfloating):
        im = f"{float(value.imag):+.6g}"
        return f"{float(value.real):.6g}{im}j"
    return f"{float(value):.6g}"


def checksum(arr: np.ndarray) -> str:
    """A content hash of the exact bytes (with shape and dtype), for comparing runs bit for bit."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def summarize(name: str, arr: np.ndarray) -> str:
    dtype = DType.from_numpy(arr.dtype)
    dims = ",".join(map(str, arr.shape))
    flat = arr.reshape(-1)
    shown = ", ".join(_fmt(v) for v in flat[:SHOWN]) + (", ..." if flat.size > SHOWN else "")
    lines = [
        f"{name}: {dtype.value}[{dims}]",
        f"  values    [{shown}]  ({flat.size} element{'' if flat.size == 1 else 's'})",
    ]
    if flat.size and flat.dtype.kind == "c":  # complex numbers have no order: their magnitudes
        lines.append("  |values|  " + _stats(np.abs(flat).astype(np.float64)))
    elif flat.size:
        lines.append("  stats     " + _stats(flat.astype(np.float64)))
    lines.append(f"  checksum  {checksum(arr)}")
    return "\n".join(lines)


def _stats(wide: np.ndarray) -> str:
    finite = wide[np.isfinite(wide)]
    stats = []
    if finite.size:
        lo, hi, mean = finite.min(), finite.max(), finite.mean()
        stats.append(f"min {_fmt(lo)}  max {_fmt(hi)}  mean {_fmt(mean)}")
    n_nan, n_inf = int(np.isnan(wide).sum()), int(np.isinf(wide).sum())
    if n_nan or n_inf:
        stats.append(f"nan {n_nan}  inf {n_inf}")
    return "  ".join(stats)
