"""Converted `for` and `while` loops as `lax.fori_loop` and `lax.while_loop`.

A loop carries the variables it assigns that a later iteration or the code after it reads,
and the arrays it updates in place; the rest of what its body reads is a closure. A Python
number it carries takes the dtype the body gives it, as NumPy's promotion does in the first
iteration, and stays weakly typed if the body keeps it so (a counter).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from compiler import lax
from compiler.autograph_errors import CannotConvert, located, named
from compiler.autograph_site import Site
from compiler.autograph_state import (
    Undefined,
    carriable,
    closures,
    is_weak,
    no_aliases,
    standing_for,
    state,
    sync,
    traced,
    truth,
    weakly_typed,
    with_numpy_lifted,
)
from compiler.control_flow import NestedTrace, spec_of
from compiler.tracing import TraceError, Tracer, convert, current_trace, strong, user_location
from ir.diagnostics import TesselError
from ir.dtypes import DType

__all__ = ["WhileLoop", "bounds", "fori", "loop", "python_valued"]


def bounds(site: Site, args: tuple[Any, ...]) -> tuple[Any, Any, int]:
    """`range(*args)`'s start, stop and step, the step a Python int."""
    start, stop, step = (0, args[0], 1) if len(args) == 1 else (*args, 1)[:3]
    for a in (start, stop, step):
        if isinstance(a, Tracer) and (a.shape != () or a.dtype.kind not in "iu"):
            raise TraceError(
                f"range() needs integers, got a traced {a.aval}", user_location() or site.loc
            )
    if traced(step):
        raise CannotConvert("its step is traced (its sign must be known): make it static")
    step = int(step)
    if step == 0:
        raise ValueError("range() arg 3 must not be zero")
    return start, stop, step


def _carried(site: Site, values: dict[str, Any]) -> list[str]:
    """The names a loop carries: assigned and needed by a later iteration or after the loop,
    or updated in place."""
    names = []
    for n in site.params:
        if n not in site.assigned and n not in site.mutated:
            continue
        needed = n in site.exposed or n in site.outputs or n in site.mutated
        v = values[n]
        if isinstance(v, Undefined):
            if n in site.outputs:
                raise CannotConvert(
                    f"'{n}' is assigned in the loop and used after it, and has no value before "
                    "the loop: give it one before the loop"
                )
            if needed:
                raise CannotConvert(
                    f"'{n}' may be read in the loop before it is assigned, and has no value "
                    "before the loop: give it one before the loop"
                )
            continue
        if not needed:
            continue
        carriable(n, v)
        if n in site.mutated and not isinstance(v, Tracer):
            raise CannotConvert(f"'{n}', written in place, is a {type(v).__name__}, not traced")
        names.append(n)
    for n in names:
        if n in site.mutated:
            no_aliases(n, values)
    return names


def python_valued(site: Site, values: dict[str, Any], body: Callable[..., Any], i: Any) -> bool:
    """A loop whose carried values are all Python's and whose body, run once aside (in a trace
    of its own, so that nothing reaches the function's graph), keeps them so: it computes
    Python values (sizes, counters), so it runs as Python, as without conversion."""
    carried = _carried(site, values)
    if any(isinstance(values[n], Tracer) for n in carried):
        return False
    outer = current_trace()
    assert outer is not None
    try:
        with NestedTrace("probe", outer).active():
            outs = body(i, *[values[n] for n in site.params])
    except Exception:
        return False
    made = dict(zip(site.params, outs, strict=True))
    return not any(isinstance(made[n], Tracer) for n in carried)


class _Body:
    """The user's body function as a loop op's body: carried values in, carried values out,
    remembering what it did to each (kept the array it was given: an update in place).
    `lift`: NumPy arrays it reads become constants of the body (`closures`)."""

    def __init__(
        self,
        site: Site,
        values: dict[str, Any],
        carried: list[str],
        init: tuple[Any, ...],
        lift: bool,
    ) -> None:
        self.site, self.values, self.carried, self.init = site, values, carried, init
        self.lift = lift
        self.same: dict[str, bool] = {}
        self.made: dict[str, Any] = {}

    def args(self, carry: tuple[Any, ...]) -> list[Any]:
        env = closures(self.values, self.lift)
        for n, c, v0 in zip(self.carried, carry, self.init, strict=True):
            env[n] = standing_for(c.trace, c.node, v0)
        return [env[n] for n in self.site.params]

    def results(self, args: list[Any], outs: tuple[Any, ...]) -> tuple[Any, ...]:
        given = dict(zip(self.site.params, args, strict=True))
        made = dict(zip(self.site.params, outs, strict=True))
        for n in self.carried:
            self.same[n] = made[n] is given[n]
            self.made[n] = made[n]
        return tuple(made[n] for n in self.carried)


# runs a loop op whose body is the `_Body` given, returning the final carried values
Run = Callable[[_Body], Any]


def loop(site: Site, values: dict[str, Any], run: Run) -> tuple[Any, ...]:
    """Run a loop op (`run(body)`) over the carried names; the values of `site.outputs` after
    it."""
    sync(values)
    carried = _carried(site, values)
    return tuple(
        with_numpy_lifted(values, lambda lift: _loop_once(site, values, carried, run, lift))
    )


def _loop_once(
    site: Site, values: dict[str, Any], carried: list[str], run: Run, lift: bool
) -> tuple[Any, ...]:
    init = tuple(values[n] for n in carried)
    body = _Body(site, values, carried, init, lift)
    try:
        try:
            result = run(body)
        except TesselError:
            promoted = _promote(body)
            if promoted is None:
                raise
            body = _Body(site, values, carried, promoted, lift)  # from the dtypes it made
            result = run(body)
    except TesselError as e:
        raise named(e, carried) from None
    in_place = [
        body.same.get(n) and isinstance(v, Tracer) and v.mutable
        for n, v in zip(carried, body.init, strict=True)
    ]
    for n, keep in zip(carried, in_place, strict=True):
        if n in site.mutated and not keep:
            raise CannotConvert(f"'{n}' is both written in place and rebound in the body")
    final = dict(values)
    for n, v0, v1, keep in zip(carried, body.init, result, in_place, strict=True):
        if keep:
            v0.assign(v1)  # updated in place: the same array object holds the new value
            v1 = v0
        elif is_weak(v0) and getattr(body.made.get(n), "weak", False):
            v1 = weakly_typed(v1)  # a Python number stays weakly typed
        final[n] = v1
    return tuple(final[n] for n in site.outputs)


def _promote(body: _Body) -> tuple[Any, ...] | None:
    """The initial values, each weakly typed one (a Python number) that the body turned into
    another dtype given that dtype, as NumPy's promotion does in the first iteration; None if
    there is none."""
    out, changed = [], False
    for n, v in zip(body.carried, body.init, strict=True):
        new = body.made.get(n)
        if is_weak(v) and isinstance(new, Tracer) and not new.weak and new.dtype != spec_of(v)[1]:
            if isinstance(v, Tracer):
                v = convert(strong(v), DType.from_numpy(new.dtype))
            else:
                v = np.asarray(v, new.dtype)
            changed = True
        out.append(v)
    return tuple(out) if changed else None


def fori(start: Any, stop: Any, step: int, fn: Callable[..., Any]) -> Run:
    """`for i in range(start, stop, step)` over the user's body function `fn`."""

    def run(body: _Body) -> Any:
        lower, upper = start, stop
        if step != 1:  # iteration k of range(start, stop, step) is start + k * step
            steps = -((start - stop) // step) if step > 0 else -((stop - start) // -step)
            lower, upper = 0, steps  # steps: ceil((stop - start) / step)

        def fori_body(i: Any, carry: tuple[Any, ...]) -> tuple[Any, ...]:
            args = body.args(carry)
            return body.results(args, fn(i if step == 1 else start + i * step, *args))

        return lax.fori_loop(lower, upper, fori_body, body.init)

    return run


def _while(cond: Callable[..., Any], fn: Callable[..., Any]) -> Run:
    def run(body: _Body) -> Any:
        def while_body(carry: tuple[Any, ...]) -> tuple[Any, ...]:
            args = body.args(carry)
            return body.results(args, fn(*args))

        return lax.while_loop(lambda c: truth(cond(*body.args(c))), while_body, body.init)

    return run


class WhileLoop:
    """A converted `while`: Python tests its condition, until the condition is traced; then the
    rest of the loop (from the variables' values at that point) becomes lax.while_loop."""

    def __init__(self, site: Site, cond: Callable[..., Any], body: Callable[..., Any]) -> None:
        self.site, self.cond, self.body = site, cond, body
        self.converted = False  # whether `values` are the loop op's results
        self.values: tuple[Any, ...] = ()

    def test(self, value: Any) -> Any:
        """The condition Python's `while` tests: as it is, or False once the loop op ran."""
        if not traced(value):
            return value
        site, frame = self.site, sys._getframe(1)
        try:
            self.values = loop(site, state(site, frame), _while(self.cond, self.body))
        except Exception as e:
            raise located(site, e) from None
        self.converted = True
        return False
