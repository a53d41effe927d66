"""The state a converted statement works on, shared by its loops (`autograph_loops`) and
branches (`autograph_branches`).

A statement's variables are read from the caller's frame (`Site.params` names them). Those
it carries must be arrays or numbers; an array it updates in place keeps its identity (the
caller's array object holds the new value after it, as in NumPy), so it must not alias
another array the statement reads.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numpy as np

from compiler.autograph_errors import CannotConvert
from compiler.autograph_site import Site
from compiler.control_flow import as_bool
from compiler.tracing import Trace, TraceError, Tracer, current_trace, user_location
from ir.graph import Node
from ir.ops import Op

__all__ = [
    "Undefined",
    "carriable",
    "closures",
    "frame_values",
    "is_weak",
    "no_aliases",
    "standing_for",
    "state",
    "sync",
    "traced",
    "truth",
    "weakly_typed",
    "with_numpy_lifted",
]


class Undefined:
    """The value of a variable with no value yet where a converted statement starts: any use
    of it is Python's error for an unbound name."""

    def __init__(self, name: str, is_global: bool = False) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_global", is_global)

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        name = object.__getattribute__(self, "_name")
        if object.__getattribute__(self, "_global"):
            raise NameError(f"name '{name}' is not defined")
        raise UnboundLocalError(
            f"cannot access local variable '{name}' where it is not associated with a value"
        )

    __getattr__ = __call__ = __bool__ = __getitem__ = __iter__ = __len__ = __array__ = _fail

    def __repr__(self) -> str:
        return f"<undefined {object.__getattribute__(self, '_name')}>"


def traced(value: Any) -> bool:
    """Whether `value` is only known when the compiled code runs (a constant made by np.zeros
    and not written yet is still known, as `bool()` of it is)."""
    return isinstance(value, Tracer) and value.node.op is not Op.CONSTANT


def is_weak(value: Any) -> bool:
    """A Python number, or a value traced from Python numbers only."""
    return isinstance(value, bool | int | float) or (isinstance(value, Tracer) and value.weak)


def weakly_typed(value: Tracer) -> Tracer:
    return Tracer(value.trace, value.node, True)


def standing_for(trace: Trace, node: Node, value: Any) -> Tracer:
    """A tracer of `node` in `trace` (a body's parameter) that behaves as `value` does: weakly
    typed if it is a Python number, an array written in place if it is one."""
    return Tracer(trace, node, is_weak(value), isinstance(value, Tracer) and value.mutable)


def frame_values(site: Site, frame: types.FrameType) -> dict[str, Any]:
    """The values of the statement's variables in the user's frame (`Undefined` where there
    is none)."""
    env, names = frame.f_locals, frame.f_globals
    out = {}
    for n in site.params:
        if n in site.globals:
            value = names.get(n, frame.f_builtins.get(n, Undefined(n, True)))
        else:
            value = env.get(n, Undefined(n))
        out[n] = value
    return out


def state(site: Site, frame: types.FrameType) -> dict[str, Any]:
    """`frame_values`, after checking that the globals the statement changes in place
    (`results.append(x)`) are not Python objects, which a body traced once would change
    once."""
    for n in site.objects:
        value = frame.f_globals.get(n)
        if not isinstance(value, types.ModuleType | type | np.ndarray) and not callable(value):
            raise CannotConvert(f"it changes the {type(value).__name__} '{n}' in place")
    return frame_values(site, frame)


def carriable(name: str, value: Any) -> None:
    """Only arrays and numbers can be a loop op's or a cond's values."""
    if isinstance(value, Tracer | bool | int | float | np.generic | np.ndarray):
        return
    raise CannotConvert(
        f"'{name}' holds a {type(value).__name__}: only arrays and numbers can be carried "
        "through a compiled loop or branch"
    )


def no_aliases(name: str, values: dict[str, Any]) -> None:
    """An array written in place must not be a view of, or viewed by, another array the
    body uses: the body would see one change and not the other."""

    def bases(t: Any) -> list[Any]:
        out = []
        while isinstance(t, Tracer) and t.view is not None:
            t = t.view.base
            out.append(t)
        return out

    v = values[name]
    for other, w in values.items():
        if other == name or not isinstance(w, Tracer):
            continue
        if any(b is v for b in bases(w)) or any(b is w for b in bases(v)):
            raise CannotConvert(f"'{other}' and '{name}' are views of one array")


def sync(values: dict[str, Any]) -> None:
    """Bring views up to date here, not inside a body (where that would emit into it)."""
    for v in values.values():
        if isinstance(v, Tracer):
            v.node  # noqa: B018


def closures(values: dict[str, Any], lift: bool) -> dict[str, Any]:
    """The values a body sees; with `lift`, NumPy arrays as constants of the body being
    traced, so that a traced index can select from them (`w[i]`)."""
    env = dict(values)
    if lift:
        trace = current_trace()
        assert trace is not None
        for n, v in values.items():
            if type(v) is np.ndarray:
                env[n] = trace.constant(v)
    return env


def with_numpy_lifted(values: dict[str, Any], attempt: Callable[[bool], Any]) -> Any:
    """`attempt(lift=False)`, and if that fails and NumPy arrays are about, `attempt(True)`
    (the first error if both fail)."""
    try:
        return attempt(False)
    except Exception as first:
        if not any(type(v) is np.ndarray for v in values.values()):
            raise
        try:
            return attempt(True)
        except Exception:
            raise first from None


def truth(value: Any) -> Any:
    """A condition's truth value: a bool[] tracer, or Python's for a Python value."""
    if not isinstance(value, Tracer):
        return bool(value)
    if value.size != 1:
        raise TraceError(
            "the truth value of an array with more than one element is ambiguous "
            f"(a traced {value.aval}); use a.any() or a.all()",
            user_location(),
        )
    return as_bool("cond", np.reshape(value, ()), "pred")  # np.reshape: the Tracer's own
