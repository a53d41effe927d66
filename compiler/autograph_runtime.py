"""What code converted by `compiler.autograph` calls at trace time: each converted `for`,
`while` and `if` asks here whether its bounds or condition are traced, and either runs as
Python or becomes `lax.fori_loop`, `lax.while_loop` or `lax.cond` over its variables
(`compiler.autograph_loops`, `compiler.autograph_branches`).

A statement's variables are read from the caller's frame (`Site.params` names them). A loop
carries those it assigns that are needed across iterations or after it (and arrays it updates
in place); the rest of what its body reads is a closure. An array updated in place keeps its
identity: after the loop the caller's array object holds the final value (so an argument the
loop writes is written back, and views of it see the change), as in NumPy.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compiler.autograph_branches import cond
from compiler.autograph_errors import REWRITE, CannotConvert, located
from compiler.autograph_loops import WhileLoop, bounds, fori, loop, python_valued
from compiler.autograph_site import Site
from compiler.autograph_state import frame_values, state, traced
from compiler.tracing import ConcretizationError, TraceError, Tracer, current_trace

__all__ = ["MAX_UNROLL", "ForLoop", "Runtime"]

log = logging.getLogger("tessel.jit")

MAX_UNROLL = 16
"""A `for` loop over a static range of at most this many steps is unrolled (run as Python);
a longer one becomes `lax.fori_loop`. Change it with `compiler.autograph_runtime.MAX_UNROLL`."""

_LOOP_OP = {"if": "lax.cond", "while": "lax.while_loop"}


@dataclass
class ForLoop:
    """What a converted `for` does: run `iterable` as Python, or bind `values`."""

    iterable: Any = None
    values: tuple[Any, ...] = ()

    @property
    def python(self) -> bool:
        return self.iterable is not None


class Runtime:
    """The statements of one converted function, and the calls its code makes (as `ag__`)."""

    def __init__(self, sites: tuple[Site, ...], source: str = "") -> None:
        self.sites = sites
        self.source = source  # the converted function, for reading (its lines are not the file's)

    traced = staticmethod(traced)

    # --- statements that stay Python ---
    def check(self, k: int, value: Any) -> Any:
        """The condition of an `if`/`while` that cannot be converted: as it is, or an error
        naming what prevents conversion when it is traced."""
        if not traced(value):
            return value
        site = self.sites[k]
        try:
            bool(value)
        except ConcretizationError as e:
            raise ConcretizationError(
                f"{e.message} (This `{site.kind}` on a traced value would become "
                f"{_LOOP_OP[site.kind]}, but it contains {site.blocker}; {REWRITE[site.kind]}.)",
                site.loc,
            ) from None
        return value

    def range_(self, k: int, range_fn: Any, args: tuple[Any, ...]) -> Any:
        """The range of a `for` loop that cannot be converted."""
        site = self.sites[k]
        if range_fn is range and any(traced(a) for a in args):
            raise TraceError(
                f"the bounds of this `for` loop are traced, so it would become lax.fori_loop, "
                f"but it contains {site.blocker}; {REWRITE['for']}",
                site.loc,
            )
        return range_fn(*args)

    # --- statements that may be converted ---
    def for_(
        self, k: int, range_fn: Any, args: tuple[Any, ...], body: Callable[..., Any]
    ) -> ForLoop:
        """A `for` over `range_fn(*args)` (the name `range` may be rebound): Python's loop
        over a static range of at most MAX_UNROLL steps, or whose body computes Python
        values; otherwise lax.fori_loop."""
        site = self.sites[k]
        frame = sys._getframe(1)
        if range_fn is not range or current_trace() is None:
            return ForLoop(iterable=range_fn(*args))
        dynamic = any(traced(a) for a in args)
        steps = None if dynamic else range(*args)
        if steps is not None and len(steps) <= MAX_UNROLL:
            return ForLoop(iterable=steps)
        try:
            start, stop, step = bounds(site, args)
            values = state(site, frame)
            if steps is not None and python_valued(site, values, body, start):
                return ForLoop(iterable=steps)
            return ForLoop(values=loop(site, values, fori(start, stop, step, body)))
        except Exception as e:
            if steps is None:
                raise located(site, e) from None
            log.debug("%s: the loop runs as Python (%s)", site.loc, e)
            return ForLoop(iterable=steps)

    def for_in(self, k: int, iterable: Any, body: Callable[..., Any]) -> ForLoop:
        """A `for x in iterable`: lax.fori_loop over the elements of a traced array longer
        than MAX_UNROLL (`iterable[i]` each step) whose element the body does not write in
        place; Python's loop over anything else."""
        site = self.sites[k]
        frame = sys._getframe(1)
        if (
            not isinstance(iterable, Tracer)
            or iterable.ndim == 0
            or len(iterable) <= MAX_UNROLL
            or site.mutated - set(site.params)  # the body writes its element in place
        ):
            return ForLoop(iterable=iterable)
        try:
            values = state(site, frame)
            if any(n in site.mutated for n in site.params if values.get(n) is iterable):
                raise CannotConvert("the loop writes the array it iterates over")

            def element_body(i: Any, *args: Any) -> Any:
                return body(iterable[i], *args)

            return ForLoop(values=loop(site, values, fori(0, len(iterable), 1, element_body)))
        except Exception as e:
            log.debug("%s: the loop runs as Python (%s)", site.loc, e)
            return ForLoop(iterable=iterable)

    def while_(self, k: int, cond: Callable[..., Any], body: Callable[..., Any]) -> WhileLoop:
        return WhileLoop(self.sites[k], cond, body)

    def if_(
        self, k: int, pred: Any, true_fn: Callable[..., Any], false_fn: Callable[..., Any]
    ) -> tuple[Any, ...]:
        """An `if`: the branch a Python value picks, or lax.cond on a traced one; the values
        of `outputs` after it."""
        site = self.sites[k]
        frame = sys._getframe(1)
        if not traced(pred):
            values = frame_values(site, frame)
            return tuple((true_fn if pred else false_fn)(*[values[n] for n in site.params]))
        try:
            return cond(site, state(site, frame), pred, true_fn, false_fn)
        except Exception as e:
            raise located(site, e) from None
