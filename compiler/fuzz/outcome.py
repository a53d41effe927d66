"""What running one case gave: its status, the stage it reached, and a one-line reason.

Statuses that are failures:

- `wrong`: an answer that is not the reference's (or an error where an answer was due);
- `crash`: the worker process died (a signal such as SIGSEGV, or an abort);
- `traceback`: an exception other than a located `TesselError` escaped;
- `hang`: the case did not finish within its timeout.

and those that are not: `ok`, and `rejected` (a clean `TesselError` where the input deserved
one, such as a damaged file).
"""

from __future__ import annotations

import re
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any

FAILURES = ("wrong", "crash", "traceback", "hang")
STATUSES = ("ok", "rejected", *FAILURES)
_PROJECT = ("ir", "passes", "runtime", "codegen", "compiler")


@dataclass
class Outcome:
    status: str
    stage: str = ""
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # e.g. the output or pass at fault
    unstable: int = 0  # elements not compared: rounding alone could change them

    @property
    def failed(self) -> bool:
        return self.status in FAILURES

    def reason(self) -> str:
        """One line: status, stage and the first line of the detail."""
        first = self.detail.strip().splitlines()[0] if self.detail.strip() else ""
        return f"{self.status} at {self.stage or 'start'}: {first}"[:400]

    def signature(self) -> str:
        """What two outcomes of one defect share: numbers, sizes and paths are left out."""
        where = self.data.get("where", "")
        text = str(self.data.get("key") or self.data.get("culprit") or "")
        if not text and self.detail.strip():
            text = self.detail.strip().splitlines()[0]
        text = re.sub(r"/\S+", "PATH", text)
        text = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "N", text)[:120]
        return f"{self.status}|{self.stage}|{where}|{text}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> Outcome:
        return Outcome(**data)


def _innermost_project_frame(exc: BaseException) -> str:
    """`file.py:function` of the deepest frame in tessel's own packages (the likely culprit)."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        parts = frame.filename.replace("\\", "/").split("/")
        if len(parts) >= 2 and parts[-2] in (*_PROJECT, "tpu", "fuzz"):
            return f"{parts[-2]}/{parts[-1]}:{frame.name}"
    return f"{frames[-1].name}" if frames else ""


def from_exception(stage: str, exc: BaseException, data: dict[str, Any] | None = None) -> Outcome:
    """A `traceback` outcome: the exception's type, message and where it was raised."""
    where = _innermost_project_frame(exc)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    tb = "".join(traceback.format_exception(exc)[-12:])
    extra = {"where": where, "key": type(exc).__name__, "traceback": tb, **(data or {})}
    return Outcome("traceback", stage, f"{type(exc).__name__}: {message} (in {where})", extra)
