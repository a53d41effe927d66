"""The code style and type checks are part of the suite, so CI enforces them."""

from __future__ import annotations

import subprocess
import sys

import pytest

PACKAGES = ["compiler", "ir", "passes", "codegen", "runtime", "tests", "samples", "benchmarks"]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", *PACKAGES],
        ["ruff", "format", "--check", *PACKAGES],
        ["mypy", "ir", "passes", "compiler", "runtime", "codegen"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_clean(repo_root, command):
    proc = subprocess.run(
        [sys.executable, "-m", *command], cwd=repo_root, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
