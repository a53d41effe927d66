"""`tessel fuzz`: run the fuzzers (compiler/fuzz/, docs/fuzzing.md) for a while.

    tessel fuzz --minutes 30 --out fuzz-out/            # every fuzzer, half an hour
    tessel fuzz --kind parser --cases 2000 --seed 7      # one fuzzer, a fixed number of cases
    tessel fuzz --replay fuzz-out/graphs-001             # run a saved case again

Exit status: 0 when no case failed, 2 when some did (like `tessel bisect`), 1 on bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from compiler.cliargs import Subparsers
from ir.diagnostics import TesselError

KIND_CHOICES = ("graphs", "pipelines", "parser", "inputs", "cache", "all")


def _kinds(text: str) -> list[str]:
    from compiler.fuzz import KINDS

    names = [k.strip() for k in text.split(",") if k.strip()]
    if "all" in names:
        return list(KINDS)
    unknown = [k for k in names if k not in KINDS]
    if unknown or not names:
        raise TesselError(
            f"--kind: unknown fuzzer {', '.join(unknown) or repr(text)}; choose from "
            f"{', '.join(KIND_CHOICES)} (or several, separated by commas)"
        )
    return names


def cmd_fuzz(args: argparse.Namespace) -> int:
    from compiler.fuzz.campaign import Campaign, Limits, replay

    if args.replay:
        outcome = replay(Path(args.replay))
        print(outcome.reason())
        if outcome.detail and "\n" in outcome.detail.strip():
            print(outcome.detail)
        return 2 if outcome.failed else 0
    if args.minutes is not None and args.minutes <= 0:
        raise TesselError(f"--minutes must be positive, got {args.minutes}")
    if args.cases is not None and args.cases < 1:
        raise TesselError(f"--cases must be at least 1, got {args.cases}")
    minutes = args.minutes if args.minutes is not None or args.cases is not None else 5.0
    limits = Limits(minutes=minutes, cases=args.cases)
    out = Path(args.out) if args.out else None

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    kinds = _kinds(args.kind)
    budget = f"{minutes:g} minute(s)" if minutes is not None else f"{args.cases} case(s) each"
    log(f"fuzzing {', '.join(kinds)} for {budget}, seed {args.seed}")
    campaign = Campaign(kinds, args.seed, limits, out, log, minimize=not args.no_minimize)
    campaign.run()
    print(campaign.report())
    if out is not None:
        print(f"\nminimized cases and summary.txt in {out}/")
    return 2 if campaign.unique_findings() else 0


def _add_fuzz(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "fuzz", help="run the fuzzers: random graphs, pipelines, parser, bad inputs, caches"
    )
    p.add_argument(
        "--minutes",
        type=float,
        metavar="N",
        help="time for the whole campaign (default 5 without --cases)",
    )
    p.add_argument(
        "--cases", type=int, metavar="N", help="cases per fuzzer (instead of, or besides, a time)"
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="campaign seed (default 0)")
    p.add_argument(
        "--kind",
        default="all",
        metavar="KIND",
        help="graphs, pipelines, parser, inputs, cache or all (default); several: a,b",
    )
    p.add_argument("--out", metavar="DIR", help="write each minimized failing case here")
    p.add_argument("--no-minimize", action="store_true", help="save failing cases as found")
    p.add_argument("--replay", metavar="CASE_DIR", help="run a saved case (its case.json) again")
    return p


VERBS = {"fuzz": (_add_fuzz, cmd_fuzz)}
