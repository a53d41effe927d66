"""`import tessel`: the user-facing names in one place (`tessel.jit`, `tessel.lax`, ...).

The implementation lives in the `compiler` package; this module only re-exports it.
"""

from __future__ import annotations

from compiler import lax, nn
from compiler.jitfunc import RecompileError, jit, no_recompile
from compiler.quantization import quantize
from compiler.tracing import ConcretizationError, TraceError, UnsupportedError

__all__ = [
    "ConcretizationError",
    "RecompileError",
    "TraceError",
    "UnsupportedError",
    "jit",
    "lax",
    "nn",
    "no_recompile",
    "quantize",
]
