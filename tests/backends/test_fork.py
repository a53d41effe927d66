"""Compiled code keeps working in child processes, whatever the start method (issue 16, item 13).

A pool of worker threads does not survive `fork`: the child has none of the parent's threads, and
a pool that believes it has them waits for them forever. The parent runs a large, multi-threaded
kernel first, so the child inherits a pool that has been used.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest
from forkcheck import error

TIMEOUT = 120  # seconds: a child that takes longer is hung


@pytest.fixture(autouse=True)
def _two_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSEL_NUM_THREADS", "2")


def test_a_forked_child_runs_what_its_parent_compiled() -> None:
    assert error(0) < 1e-5  # the parent compiles and runs on its pool first
    pid = os.fork()
    if pid == 0:  # the child: report by exit status only, never return into pytest
        try:
            os._exit(0 if error(1) < 1e-5 else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child hung for {TIMEOUT} s")


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_process_pools_of_every_start_method(method: str) -> None:
    assert error(0) < 1e-5
    with multiprocessing.get_context(method).Pool(1) as pool:
        errors = pool.map_async(error, [2, 3]).get(timeout=TIMEOUT)
    assert max(errors) < 1e-5
