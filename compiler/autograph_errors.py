"""The errors of AutoGraph's runtime, as the user should see them: about the statement at
their line and their variables, not about the `tessel.lax` call it became."""

from __future__ import annotations

import re

from compiler.autograph_site import Site
from compiler.tracing import TraceError
from ir.diagnostics import TesselError

__all__ = ["REWRITE", "CannotConvert", "located", "named"]


class CannotConvert(Exception):
    """This statement cannot become a loop op or a cond (the message says why)."""


# what to change in a statement that must be converted and cannot be, by kind
REWRITE = {
    "if": "assign the results in both branches and return after the `if`, or use "
    "np.where(condition, a, b), or pass the argument as static (@jit(static_argnames=...))",
    "while": "move that statement out of the loop (a flag in the condition instead of "
    "`break`), or make the condition a Python value",
    "for": "use a `while` loop whose condition says when to stop instead of `break`, or make "
    "the bounds static (@jit(static_argnames=...))",
}
_WHAT = {"for": "loop", "while": "loop", "if": "`if`"}
_LAX = {"for": "lax.fori_loop", "while": "lax.while_loop", "if": "lax.cond"}


def located(site: Site, e: Exception) -> Exception:
    """An error met while converting the statement at `site`, as the user should see it."""
    if isinstance(e, CannotConvert):
        return TraceError(
            f"this {_WHAT[site.kind]} on a traced value must become {_LAX[site.kind]}, but {e}",
            site.loc,
        )
    if isinstance(e, TesselError) and "belongs to the function around" in e.message:
        return TraceError(
            f"{e.message}. (The {site.kind} statement at line {site.loc.line} is compiled as a "
            "tessel.lax loop or branch: write into its arrays by their own names, `x[i] = v`, "
            "not through another name or a view, so that it can carry them.)",
            e.loc,
        )
    return e


# lax's errors about the k-th carried value or branch result, and what to say instead
_RENAMED = [
    (
        re.compile(
            r"^\w+: body_fun's result is (?P<after>\S+) at \[(?P<k>\d+)\], "
            r"but init_val\[\d+\] is (?P<before>\S+):"
        ),
        "the loop changes the type of '{name}' from {before} (before the loop) to {after} "
        "(after its body): a variable that a compiled loop carries must keep its shape and "
        "dtype (convert it with .astype, or give it a value of the type the body computes "
        "before the loop)",
    ),
    (
        re.compile(
            r"^cond: true_fun and false_fun must return the same types, but true_fun returns "
            r"(?P<true>\S+) at \[(?P<k>\d+)\] and false_fun (?P<false>\S+)$"
        ),
        "'{name}' is {true} after the true branch and {false} after the false branch: a "
        "variable assigned by an `if` on a traced value must have one shape and dtype "
        "whichever branch runs (convert it with .astype, or use np.where)",
    ),
]


def named(e: TesselError, names: list[str]) -> TesselError:
    """lax's error about the k-th carried value or branch result, about the user's variable
    `names[k]`."""
    for pattern, message in _RENAMED:
        m = pattern.match(e.message)
        if m is not None:
            return TraceError(message.format(name=names[int(m["k"])], **m.groupdict()), e.loc)
    return e
