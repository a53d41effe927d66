"""docs/jit.md names every traced function. (Its Python blocks run in tests/test_doc_blocks.py,
with every other document's.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compiler import numpy_api

DOC = Path(__file__).resolve().parents[2] / "docs" / "jit.md"


def test_every_supported_numpy_function_is_documented():
    text = DOC.read_text()
    names = [f"np.{u.__name__}" for u in numpy_api.UFUNCS]
    names += [f"np.{u.__name__}.reduce" for u in numpy_api.REDUCE_METHODS]
    names += [numpy_api.api_name(f) for f in numpy_api.FUNCTIONS]
    missing = sorted({n for n in names if f"`{n}`" not in text})
    assert not missing, f"docs/jit.md does not list {missing}"
    assert np.divide is np.true_divide  # documented under its common name
