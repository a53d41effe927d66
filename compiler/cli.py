"""The `tessel` command line. Each verb is an (add arguments, handler) pair in `VERBS`.

User errors (bad graph files, wrong inputs, unreadable paths) are printed as located messages and
exit with status 1; a Python traceback always means a bug in tessel.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from compiler import cmd_compile, cmd_fuzz, cmd_opt, cmd_quantize, cmd_run, cmd_tpu
from compiler.cliargs import Subparsers
from ir.diagnostics import TesselError

Verb = tuple[Callable[[Subparsers], argparse.ArgumentParser], Callable[[argparse.Namespace], int]]

VERBS: dict[str, Verb] = {
    **cmd_run.VERBS,
    **cmd_opt.VERBS,
    **cmd_compile.VERBS,
    **cmd_quantize.VERBS,
    **cmd_tpu.VERBS,
    **cmd_fuzz.VERBS,
}


def _version() -> str:
    try:
        return version("tessel")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tessel", description="tessel: a small, hackable linear-algebra compiler."
    )
    parser.add_argument("--version", action="version", version=f"tessel {_version()}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for add, handler in VERBS.values():
        add(sub).set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except TesselError as e:
        print(e.format(), file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
