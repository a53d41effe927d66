"""tessel runtime: the reference interpreter, input checking, and running compiled code.

`runtime.load(path)` opens a library built by `tessel compile` (NumPy and ctypes only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load(path: str | Path, threads: int | None = None) -> Any:
    """A compiled library (libNAME.so or NAME.json) as a callable; see runtime/aot.py."""
    from runtime.aot import load as load_library

    return load_library(path, threads)
