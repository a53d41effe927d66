"""tessel compiler: the front doors (`jit`, `quantize`, the command line) and their driver.

`from compiler import jit, no_recompile, nn, lax, quantize` loads the tracer (or the
quantizer) only when first asked for, so the command line starts without it.

A public name is never also the name of a submodule (except `nn` and `lax`, which are the
submodules): once `compiler.X` is imported, Python sets the attribute `compiler.X` to that
module, which would shadow a function of the same name. So the quantizer lives in
`compiler/quantization.py` and `compiler.quantize` is its `quantize` function
(tests/test_public_names.py checks all of them).
"""

from __future__ import annotations

from typing import Any

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

_LAZY = {
    "jit": "compiler.jitfunc",
    "no_recompile": "compiler.jitfunc",
    "RecompileError": "compiler.jitfunc",
    "TraceError": "compiler.tracing",
    "ConcretizationError": "compiler.tracing",
    "UnsupportedError": "compiler.tracing",
    "quantize": "compiler.quantization",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in ("nn", "lax"):
        return importlib.import_module(f"compiler.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'compiler' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
