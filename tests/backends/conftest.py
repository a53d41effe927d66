"""Backend-test setup: the random-graph generator lives in tests/unit (graphgen.py), the kernel
paths as CpuCaps in this folder (cpu_paths.py)."""

from __future__ import annotations

import sys
from pathlib import Path

for _folder in (Path(__file__).resolve().parent.parent / "unit", Path(__file__).resolve().parent):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))
