"""A converted `if` on a traced condition as `lax.cond`.

Each branch is a function of the variables' values before the `if`, returning those used
after it (`Site.outputs`). An array that both branches keep (and maybe write) stays the
caller's own object with the new value; a Python number both branches give stays weakly
typed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compiler import lax
from compiler.autograph_errors import CannotConvert, named
from compiler.autograph_site import Site
from compiler.autograph_state import (
    Undefined,
    carriable,
    closures,
    is_weak,
    no_aliases,
    standing_for,
    sync,
    truth,
    weakly_typed,
    with_numpy_lifted,
)
from compiler.tracing import Tracer, current_trace
from ir.diagnostics import TesselError

__all__ = ["cond"]

Branch = Callable[..., tuple[Any, ...]]


def cond(
    site: Site, values: dict[str, Any], pred: Any, true_fn: Branch, false_fn: Branch
) -> tuple[Any, ...]:
    """An `if` on a traced predicate as lax.cond: the values of `site.outputs` after it."""
    sync(values)
    mutated = [n for n in site.params if n in site.mutated and not isinstance(values[n], Undefined)]
    for n in mutated:
        if not isinstance(values[n], Tracer):
            carriable(n, values[n])
            raise CannotConvert(f"'{n}', written in place, is a {type(values[n]).__name__}")
        no_aliases(n, values)
    if not site.outputs:
        raise CannotConvert(
            "it assigns no variable that is used after it, so the compiled code would not "
            "need it: what else it does (print, a call) would happen once, while tracing"
        )
    go = truth(pred)
    return tuple(
        with_numpy_lifted(
            values, lambda lift: _cond_once(site, values, mutated, go, (true_fn, false_fn), lift)
        )
    )


def _cond_once(
    site: Site,
    values: dict[str, Any],
    mutated: list[str],
    pred: Any,
    branches: tuple[Branch, Branch],
    lift: bool,
) -> tuple[Any, ...]:
    same: dict[str, list[bool]] = {n: [] for n in mutated}  # per branch: kept the array
    weak: dict[str, list[bool]] = {n: [] for n in site.outputs}  # per branch: a Python number

    def branch(fn: Branch, which: str) -> Callable[[], tuple[Any, ...]]:
        def run() -> tuple[Any, ...]:
            env = closures(values, lift)
            nested = current_trace()
            assert nested is not None
            for n in mutated:  # the branch's own copy of the array, which it may write
                v = values[n]
                env[n] = standing_for(nested, nested.node_of(v), v)  # type: ignore[arg-type]
            outs = dict(zip(site.outputs, fn(*[env[n] for n in site.params]), strict=True))
            for n in site.outputs:
                if isinstance(outs[n], Undefined):
                    raise CannotConvert(
                        f"'{n}' is used after it and assigned in one branch only, with no value "
                        f"before the `if` (the {which} branch leaves it undefined): assign it in "
                        "both branches, or before the `if`"
                    )
                weak[n].append(is_weak(outs[n]))
            for n in mutated:
                same[n].append(outs.get(n) is env[n])
            return tuple(outs[n] for n in site.outputs)

        return run

    try:
        result = lax.cond(pred, branch(branches[0], "true"), branch(branches[1], "false"))
    except TesselError as e:
        raise named(e, list(site.outputs)) from None
    return _bind(site, values, result, same, weak)


def _bind(
    site: Site,
    values: dict[str, Any],
    result: Any,
    same: dict[str, list[bool]],
    weak: dict[str, list[bool]],
) -> tuple[Any, ...]:
    """The values after a cond: an array both branches kept (and maybe wrote) is the caller's
    own object with the new value, a Python number both branches gave stays weakly typed."""
    final = dict(zip(site.outputs, result, strict=True))
    for n, kept in same.items():
        if any(kept) and not all(kept) and values[n].mutable:
            raise CannotConvert(f"'{n}' is written in place in one branch and rebound in the other")
    for n, kept in same.items():
        if all(kept):
            values[n].assign(final[n])  # updated in place: the same array object
            final[n] = values[n]
    for n in site.outputs:
        if all(weak[n]) and isinstance(final[n], Tracer) and final[n] is not values.get(n):
            final[n] = weakly_typed(final[n])
    return tuple(final[n] for n in site.outputs)
