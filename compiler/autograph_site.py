"""What AutoGraph's rewrite (`compiler.autograph_rewrite`) records about each `for`, `while`
and `if` it converts, for the runtime (`compiler.autograph_runtime`) to read at trace time.

The rewrite numbers the statements of a function; its code passes the number to the
runtime, which finds the statement's `Site` in `Runtime.sites`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ir.diagnostics import Loc

__all__ = ["Site"]


@dataclass(frozen=True)
class Site:
    """One converted statement of the user's function."""

    kind: str  # for, while, if
    loc: Loc  # the bounds' or the condition's place in the user's file
    blocker: str | None  # what keeps it Python (`break` (line 12)), if anything
    params: tuple[str, ...]  # the names its nested functions take (all it reads or writes)
    outputs: tuple[str, ...]  # the names bound after it (used later, or updated in place)
    assigned: frozenset[str]  # names it rebinds
    mutated: frozenset[str]  # names whose arrays it writes in place
    exposed: frozenset[str]  # names a loop body (or condition) may read before assigning
    objects: frozenset[str] = frozenset()  # globals it calls mutating methods of (list.append)
    globals: frozenset[str] = frozenset()  # those of `params` that are globals or builtins
