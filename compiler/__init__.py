"""tessel compiler: the front doors (`jit`, the command line) and the driver behind them.

`from compiler import jit, no_recompile, nn` loads the tracer only when first asked for, so the
command line starts without it.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "jit": "compiler.jitfunc",
    "no_recompile": "compiler.jitfunc",
    "RecompileError": "compiler.jitfunc",
    "TraceError": "compiler.tracing",
    "ConcretizationError": "compiler.tracing",
    "UnsupportedError": "compiler.tracing",
    "quantize": "compiler.quantize",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "nn":
        return importlib.import_module("compiler.nn")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'compiler' has no attribute {name!r}")
