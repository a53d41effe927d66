"""A fuzzing campaign: cases of one or more kinds, a budget, minimized failures on disk.

The budget is wall-clock time (`tessel fuzz --minutes`, shared equally by the kinds: the next
case always goes to the kind that has used the least time) or a number of cases per kind (the
bounded runs in the test suite). Case `i` of a kind is generated from (seed, kind, i) alone.

Failures are grouped by signature (compiler/fuzz/outcome.py: status, stage, place, exception
or culprit, without numbers and paths). The first case of each signature is minimized, run
once more, and written to `OUT/<kind>-<n>/`: the case's files, `reason.txt` (one line),
`repro.txt` (commands that show it) and `case.json` (for `tessel fuzz --replay`). Later cases
with a known signature are only counted.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.fuzz import KINDS
from compiler.fuzz.draw import case_rng
from compiler.fuzz.kind import Budget, Case, Fuzzer, same_failure
from compiler.fuzz.outcome import STATUSES, Outcome
from compiler.fuzz.sandbox import Worker

STATUS_EVERY = 60.0  # seconds between progress lines of a long campaign


def make_fuzzer(kind: str, seed: int) -> Fuzzer:
    """The parent side of fuzzer `kind` (imported on demand: each pulls in what it needs)."""
    if kind == "graphs":
        from compiler.fuzz.graphs import GraphsFuzzer

        return GraphsFuzzer()
    if kind == "pipelines":
        from compiler.fuzz.pipelines import PipelinesFuzzer

        return PipelinesFuzzer()
    if kind == "parser":
        from compiler.fuzz.parser_mutator import ParserFuzzer

        return ParserFuzzer(seed)
    if kind == "inputs":
        from compiler.fuzz.inputs import InputsFuzzer

        return InputsFuzzer()
    if kind == "cache":
        from compiler.fuzz.cache import CacheFuzzer

        return CacheFuzzer()
    if kind == "numpy":
        from compiler.fuzz.numpy_programs import NumpyProgramsFuzzer

        return NumpyProgramsFuzzer()
    raise ValueError(f"unknown fuzzer kind {kind!r} (kinds: {', '.join(KINDS)})")


@dataclass
class Finding:
    """One distinct failure: its minimized case and how often its signature came up."""

    kind: str
    signature: str
    outcome: Outcome
    case: Case
    index: int  # the case number that first showed it
    count: int = 1
    folder: Path | None = None
    reproduced: bool = True


@dataclass
class KindStats:
    cases: int = 0
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    unstable: int = 0  # elements the oracle left uncompared


@dataclass
class Limits:
    minutes: float | None = None  # the whole campaign's time
    cases: int | None = None  # per kind
    minimize_runs: int = 80  # worker runs per minimization
    minimize_seconds: float = 90.0


class Campaign:
    def __init__(
        self,
        kinds: Sequence[str],
        seed: int,
        limits: Limits,
        out: Path | None = None,
        log: Callable[[str], None] = print,
        worker: Worker | None = None,
        minimize: bool = True,
    ) -> None:
        if limits.minutes is None and limits.cases is None:
            raise ValueError("a campaign needs a time limit or a number of cases")
        self.kinds = list(kinds)
        self.seed = seed
        self.limits = limits
        self.out = out
        self.log = log
        self.minimize = minimize
        self.stats = {k: KindStats() for k in self.kinds}
        self.findings: dict[str, Finding] = {}
        self._scratch = Path(tempfile.mkdtemp(prefix="tessel-fuzz-"))
        self._own_worker = worker is None
        self.worker = worker or private_worker(self._scratch)
        self._fuzzers = {k: make_fuzzer(k, seed) for k in self.kinds}
        self._saved = Counter[str]()

    # --- running ---

    def run(self) -> dict[str, KindStats]:
        start = time.monotonic()
        deadline = start + 60 * self.limits.minutes if self.limits.minutes is not None else None
        last_status = start
        try:
            while True:
                kind = self._next_kind(deadline)
                if kind is None:
                    break
                self._one_case(kind, deadline)
                if time.monotonic() - last_status > STATUS_EVERY:
                    last_status = time.monotonic()
                    self.log(self.status_line(last_status - start))
        finally:
            if self._own_worker:
                self.worker.close()
            shutil.rmtree(self._scratch, ignore_errors=True)
            if self.out is not None:
                self.write_summary()
        return self.stats

    def _next_kind(self, deadline: float | None) -> str | None:
        if deadline is not None and time.monotonic() >= deadline:
            return None
        open_kinds = [
            k
            for k in self.kinds
            if self.limits.cases is None or self.stats[k].cases < self.limits.cases
        ]
        if not open_kinds:
            return None
        return min(open_kinds, key=lambda k: self.stats[k].seconds)

    def _one_case(self, kind: str, deadline: float | None) -> None:
        fuzzer = self._fuzzers[kind]
        stats = self.stats[kind]
        index = stats.cases
        began = time.monotonic()
        case = fuzzer.generate(case_rng(self.seed, kind, index))
        outcome = self.worker.run(kind, case, fuzzer.timeout)
        stats.cases += 1
        stats.statuses[outcome.status] += 1
        stats.unstable += outcome.unstable
        if outcome.failed:
            self._record(kind, index, case, outcome, deadline)
        stats.seconds += time.monotonic() - began

    def _record(
        self, kind: str, index: int, case: Case, outcome: Outcome, deadline: float | None
    ) -> None:
        signature = f"{kind}|{outcome.signature()}"
        if signature in self.findings:
            self.findings[signature].count += 1
            return
        finding = self._minimized(kind, index, case, outcome, deadline)
        final = f"{kind}|{finding.outcome.signature()}"
        known = self.findings.get(final)
        if known is not None:  # minimized into a failure seen before
            known.count += 1
            self.findings[signature] = known
            return
        finding.signature = final
        self.findings[signature] = self.findings[final] = finding
        if self.out is not None:
            self._save(finding)
        where = f" -> {finding.folder}" if finding.folder else ""
        self.log(f"{kind} case {index}: {finding.outcome.reason()}{where}")

    def _minimized(
        self, kind: str, index: int, case: Case, outcome: Outcome, deadline: float | None
    ) -> Finding:
        fuzzer = self._fuzzers[kind]
        timeout = fuzzer.timeout

        def rerun(candidate: Case) -> Outcome:
            return self.worker.run(kind, candidate, timeout)

        again = rerun(case)
        if not same_failure(outcome, again):  # flaky: keep it as it first came
            return Finding(kind, "", outcome, case, index, reproduced=False)
        if not self.minimize:
            return Finding(kind, "", outcome, case, index)
        now = time.monotonic()
        seconds = self.limits.minimize_seconds
        if deadline is not None:  # near the end, still a short minimization
            seconds = min(seconds, max(deadline - now, 15.0))
        budget = Budget(self.limits.minimize_runs, now + seconds)
        small = fuzzer.minimize(case, outcome, rerun, budget)
        if small is case:
            return Finding(kind, "", outcome, case, index)
        final = rerun(small)
        if not same_failure(outcome, final):
            return Finding(kind, "", outcome, case, index)
        return Finding(kind, "", final, small, index)

    # --- reports ---

    def _save(self, finding: Finding) -> None:
        assert self.out is not None
        while True:  # the next free number: an earlier campaign's cases stay as they are
            self._saved[finding.kind] += 1
            folder = self.out / f"{finding.kind}-{self._saved[finding.kind]:03d}"
            if not folder.exists():
                break
        folder.mkdir(parents=True)
        fuzzer = self._fuzzers[finding.kind]
        try:
            commands = fuzzer.save(finding.case, finding.outcome, folder)
        except Exception as e:  # the case stays replayable from case.json
            commands = [f"# could not write the case's files: {type(e).__name__}: {e}"]
        reason = finding.outcome.reason().replace("\n", " ")
        if not finding.reproduced:
            reason += " (did not happen again on a second run)"
        (folder / "reason.txt").write_text(reason + "\n")
        commands.append(f"tessel fuzz --replay {folder}")
        (folder / "repro.txt").write_text("\n".join(commands) + "\n")
        record = {
            "kind": finding.kind,
            "seed": self.seed,
            "index": finding.index,
            "case": finding.case,
            "outcome": finding.outcome.to_json(),
        }
        (folder / "case.json").write_text(json.dumps(record, indent=1) + "\n")
        finding.folder = folder

    def unique_findings(self) -> list[Finding]:
        seen: dict[int, Finding] = {}
        for f in self.findings.values():
            seen.setdefault(id(f), f)
        return sorted(seen.values(), key=lambda f: (self.kinds.index(f.kind), f.index))

    def status_line(self, elapsed: float) -> str:
        counts = ", ".join(f"{k} {self.stats[k].cases}" for k in self.kinds)
        return (
            f"[{elapsed / 60:.1f} min] cases: {counts}; "
            f"{len(self.unique_findings())} distinct failure(s)"
        )

    def report(self) -> str:
        """Counts per kind (cases, statuses) and one line per distinct failure."""
        columns = [s for s in STATUSES]
        head = f"{'kind':<10} {'cases':>6} " + " ".join(f"{c:>9}" for c in columns) + "   time"
        lines = [head]
        for kind in self.kinds:
            st = self.stats[kind]
            counts = " ".join(f"{st.statuses[c]:>9}" for c in columns)
            lines.append(f"{kind:<10} {st.cases:>6} {counts} {st.seconds:>6.0f}s")
        findings = self.unique_findings()
        lines.append(f"\n{len(findings)} distinct failure(s)")
        for f in findings:
            where = f"  [{f.folder}]" if f.folder else ""
            lines.append(f"  {f.kind} case {f.index} (x{f.count}): {f.outcome.reason()}{where}")
        return "\n".join(lines)

    def write_summary(self) -> None:
        assert self.out is not None
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "summary.txt").write_text(self.report() + "\n")


def private_worker(scratch: Path) -> Worker:
    """A worker whose caches are the campaign's own: a damaged cache of the user's does not
    show up as a failure here, and the campaign leaves the user's caches alone."""
    env: dict[str, Any] = {"XDG_CACHE_HOME": str(scratch / "xdg"), "TESSEL_CACHE_DIR": ""}
    return Worker(scratch / "worker", env)


def replay(folder: Path, worker: Worker | None = None) -> Outcome:
    """Run a saved case (its case.json) again."""
    record = json.loads((folder / "case.json").read_text())
    scratch = Path(tempfile.mkdtemp(prefix="tessel-replay-"))
    own = worker is None
    worker = worker or private_worker(scratch)
    try:
        kind = record["kind"]
        timeout = make_fuzzer(kind, int(record.get("seed", 0))).timeout if kind in KINDS else 30
        return worker.run(kind, record["case"], timeout)
    finally:
        if own:
            worker.close()
        shutil.rmtree(scratch, ignore_errors=True)
