"""Shared test fixtures: repository paths and a CLI runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def samples_dir() -> Path:
    return SAMPLES


def run_tessel(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh interpreter, the way a user does."""
    return subprocess.run(
        [sys.executable, "-m", "compiler", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def tessel():
    """The CLI as a subprocess: `tessel("run", "x.graph")` returns the CompletedProcess."""
    return run_tessel
