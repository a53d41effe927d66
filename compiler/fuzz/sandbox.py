"""Running cases in a worker process, so that a segfault or a hang is a result, not the end.

One worker (`python -m compiler.fuzz.worker`) runs case after case: importing tessel and
building the GEMM library take seconds, a case milliseconds to a second. The worker reports
each stage as it starts; when it dies, the case is a `crash` at the last stage reported (with
the signal and the tail of its stderr, where faulthandler has printed the Python stack); when a
case overruns its timeout, the worker's process group is killed and the case is a `hang`.
Either way the next case gets a fresh worker. Workers are also replaced every `recycle` cases,
since compiled code and loaded libraries accumulate in a process.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

from compiler.fuzz.outcome import Outcome

STARTUP_TIMEOUT = 180.0  # importing tessel on a loaded 2-core machine
MEMORY_LIMIT = 8 << 30  # address space per worker: a huge allocation fails, not the machine


class _Timeout(Exception):
    pass


class Worker:
    """A worker process and the pipes to it; restarted on demand."""

    def __init__(
        self,
        scratch: Path,
        env: dict[str, str] | None = None,
        recycle: int = 200,
        memory_limit: int = MEMORY_LIMIT,
    ) -> None:
        self.scratch = scratch
        self.env = env or {}
        self.recycle = recycle
        self.memory_limit = memory_limit
        self.proc: subprocess.Popen[bytes] | None = None
        self.served = 0
        self.starts = 0
        self._buffer = b""
        self._stderr: BinaryIO | None = None
        self._stderr_path = scratch / "worker-stderr.txt"

    # --- lifecycle ---

    def _start(self) -> None:
        self.scratch.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "TESSEL_FUZZ_MEMORY": str(self.memory_limit)}
        env["PYTHONFAULTHANDLER"] = "1"  # a crash prints the Python stack to stderr
        self._stderr = open(self._stderr_path, "wb")  # noqa: SIM115  (lives with the process)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "compiler.fuzz.worker", str(self.scratch)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            start_new_session=True,  # its own process group: a hang is killed with its children
        )
        self.served = 0
        self.starts += 1
        self._buffer = b""
        message = self._read(time.monotonic() + STARTUP_TIMEOUT)
        if message is None or "ready" not in message:
            tail = self.stderr_tail()
            self.close()
            raise RuntimeError(f"the fuzz worker did not start:\n{tail}")

    def close(self) -> None:
        """Stop the worker (it exits when its stdin closes; killed if it does not)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                if proc.stdin:
                    proc.stdin.close()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._kill(proc)
            if proc.stdout:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group we created: worker, children
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    # --- talking to it ---

    def _read(self, deadline: float) -> dict[str, Any] | None:
        """The next message, None at end of file; raises _Timeout past the deadline."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Timeout
            ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def stderr_tail(self, since: int = 0, lines: int = 25) -> str:
        try:
            data = self._stderr_path.read_bytes()[since:]
        except OSError as e:
            return f"(no stderr: {e})"
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])

    def run(self, kind: str, case: dict[str, Any], timeout: float) -> Outcome:
        """Run one case; never raises for anything the case does."""
        if self.proc is None or self.served >= self.recycle:
            self.close()
            self._start()
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.served += 1
        offset = self._stderr_path.stat().st_size
        stage = "start"
        request = json.dumps({"kind": kind, "case": case}) + "\n"
        try:
            self.proc.stdin.write(request.encode())
            self.proc.stdin.flush()
            deadline = time.monotonic() + timeout
            while True:
                message = self._read(deadline)
                if message is None:
                    return self._crashed(stage, offset)
                if "stage" in message:
                    stage = message["stage"]
                elif "outcome" in message:
                    return Outcome.from_json(message["outcome"])
        except BrokenPipeError:
            return self._crashed(stage, offset)
        except _Timeout:
            self._kill(self.proc)
            self.close()
            return Outcome("hang", stage, f"no answer within {timeout:.0f} s", {"key": "timeout"})

    def _crashed(self, stage: str, offset: int) -> Outcome:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # closed its output but lives on: end it
            self._kill(self.proc)
            code = self.proc.wait()
        tail = self.stderr_tail(offset)
        self.close()
        how = signal.Signals(-code).name if code < 0 else f"exit status {code}"
        frame = _faulthandler_frame(tail)
        detail = f"worker died ({how}) during {stage}" + (f" in {frame}" if frame else "")
        return Outcome("crash", stage, detail, {"key": how, "where": frame, "stderr": tail})


def _faulthandler_frame(stderr: str) -> str:
    """`file.py:function` of the innermost frame of tessel's own code in faulthandler's dump
    of the crashing thread (it lists the most recent call first), else of the innermost."""
    frames: list[tuple[str, str]] = []
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("Current thread", "Thread 0x")) and not frames:
            for frame in lines[i + 1 :]:
                frame = frame.strip()
                if not frame.startswith("File "):
                    break
                path, _, rest = frame[5:].partition(", line ")
                frames.append((path.strip('"'), rest.split(" in ", 1)[-1]))
    for path, name in frames:
        parts = Path(path).parts
        if any(p in parts for p in ("ir", "passes", "runtime", "codegen", "compiler")):
            return f"{Path(path).name}:{name}"
    return f"{Path(frames[0][0]).name}:{frames[0][1]}" if frames else ""
