"""The interface every fuzzer implements on the parent side, and the budget of a minimization.

A case is a JSON-able dict: the parent makes it (`generate`), the worker runs it (the module's
`execute`), and a failing one is shrunk (`minimize`, re-running candidates through `rerun`) and
written out (`save`) with the commands that reproduce it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from compiler.fuzz.outcome import Outcome

Case = dict[str, Any]
Rerun = Callable[[Case], Outcome]


@dataclass
class Budget:
    """How much a minimization may spend: worker runs and wall-clock seconds."""

    runs: int
    deadline: float  # time.monotonic() value

    def spend(self) -> bool:
        """Take one run; False when nothing is left."""
        if self.runs <= 0 or time.monotonic() >= self.deadline:
            return False
        self.runs -= 1
        return True


def same_failure(a: Outcome, b: Outcome) -> bool:
    """Whether `b` is still the failure `a` is: same status, stage and place (or culprit)."""
    if not b.failed or a.status != b.status or a.stage != b.stage:
        return False
    # a wrong answer's key describes the case (a damage, a culprit op): shrinking may change it
    keys = ("where", "pass") if a.status == "wrong" else ("where", "pass", "key")
    return all(a.data.get(k) == b.data.get(k) for k in keys if k in a.data)


class Fuzzer:
    kind: ClassVar[str]
    timeout: ClassVar[float] = 120.0  # seconds per case before it is a hang

    def generate(self, rng: np.random.Generator) -> Case:
        raise NotImplementedError

    def minimize(self, case: Case, outcome: Outcome, rerun: Rerun, budget: Budget) -> Case:
        """A smaller case that fails the same way (the default: the case itself)."""
        return case

    def save(self, case: Case, outcome: Outcome, folder: Path) -> list[str]:
        """Write the case's files into `folder`; return the commands that reproduce it."""
        return []
