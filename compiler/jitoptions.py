"""What `@jit(...)` was asked for: the options every compile of a function shares (and that the
on-disk cache keys on)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JitOptions:
    target: str = "cpu"
    pipeline: str | None = None
    verify: bool = False
    dump_dir: str | None = None
    cache: bool | None = None  # None: the on-disk cache is on when TESSEL_CACHE_DIR is set
    cpu: str = "native"
    tpu: str = "tpu-v1"  # target="tpu": the simulated chip (runtime/tpu/config.py)
    # loops and branches on traced values become loop ops (compiler/autograph.py)
    autograph: bool = True

    def environment(self) -> tuple[tuple[str, Any], ...]:
        """Settings read from the environment that change the compiled code."""
        return (("threads", os.environ.get("TESSEL_NUM_THREADS")),)
