"""Cases that misbehave on purpose, to check the harness itself: a segfault, an abort, a hang,
an escaping exception and a clean error must each come back as their outcome
(`tessel fuzz` never runs these; tests/fuzz does).
"""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any

from compiler.fuzz.outcome import Outcome
from ir.diagnostics import TesselError


def execute(case: dict[str, Any], ctx: Any) -> Outcome:
    ctx.progress(case["do"])
    if case["do"] == "segfault":
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    elif case["do"] == "abort":
        os.abort()
    elif case["do"] == "hang":
        time.sleep(3600)
    elif case["do"] == "raise":
        raise ValueError("a bug")
    elif case["do"] == "tessel-error":
        raise TesselError("a clean error")
    return Outcome("ok", case["do"])
