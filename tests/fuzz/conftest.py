"""Fuzz-test setup: one worker process for the module's tests (starting one imports tessel,
which takes seconds), using the session's private cache folder (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from compiler.fuzz.sandbox import Worker


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    scratch: Path = tmp_path_factory.mktemp("fuzz-worker")
    w = Worker(scratch, {"TESSEL_CACHE_DIR": ""})  # @jit's disk cache off, as in every test
    yield w
    w.close()
