"""Shared test fixtures: repository paths, a CLI runner, and a private cache folder."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Tests never write into the user's ~/.cache/tessel: the cache root (the GEMM library
    and `cache=True`) is a folder of this session's, shared by its tests and the CLIs they run.
    TESSEL_CACHE_DIR stays unset, so @jit's on-disk cache is off unless a test turns it on."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root))
        patch.delenv("TESSEL_CACHE_DIR", raising=False)
        yield root


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


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many tests were skipped and why, one line per reason (CI's log shows what this host
    could not run, e.g. the AMX kernels on an AVX2 machine)."""
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    if reasons:
        terminalreporter.write_sep("-", f"{sum(reasons.values())} skipped, by reason")
        for reason, count in reasons.most_common():
            terminalreporter.write_line(f"{count:6d}  {reason}")
