"""@jit-test setup: test_numpy_ops.py's helpers (sampling, comparing with eager NumPy) serve
the other files in this folder too."""

from __future__ import annotations

import sys
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
