"""docs/jit.md is real: its Python blocks run in order, and it names every traced function."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from compiler import numpy_api

DOC = Path(__file__).resolve().parents[2] / "docs" / "jit.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_python_blocks_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    blocks = FENCE.findall(DOC.read_text())
    assert len(blocks) >= 5
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), namespace)  # our own documentation


def test_every_supported_numpy_function_is_documented():
    text = DOC.read_text()
    names = [f"np.{u.__name__}" for u in numpy_api.UFUNCS]
    names += [f"np.{u.__name__}.reduce" for u in numpy_api.REDUCE_METHODS]
    names += [numpy_api.api_name(f) for f in numpy_api.FUNCTIONS]
    missing = sorted({n for n in names if f"`{n}`" not in text})
    assert not missing, f"docs/jit.md does not list {missing}"
    assert np.divide is np.true_divide  # documented under its common name
