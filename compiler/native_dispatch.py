"""A jitted function's cached calls in machine code (codegen/dispatch.py), installed as the
function's `__call__`.

`f(x)` on a `JitFunction` goes through its class's `__call__`. When a signature of plain
positional arrays and Python numbers with one computed result, compiled for the CPU, is called
again, the function gets a class of its own whose `__call__` is a built-in function made from the
dispatcher's code: a call with exactly such arguments runs the program without any Python,
and every other call goes on to the Python path (`JitFunction.dispatch`), which behaves as
before. The signature most recently seen on the Python path is the one served natively.

Set TESSEL_NATIVE_DISPATCH=0 to keep every call on the Python path.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from codegen.dispatch import Dispatcher, DispatchSpec, Param, build_dispatcher
from codegen.jit import host_target
from runtime.pyabi import LAYOUT, builtin_function, c_api

__all__ = ["NativeCall", "native_call"]


class NativeCall:
    """A dispatcher's built-in `function`, and what it is bound to: the Python path to fall back
    on and everything the code points into, kept alive as long as the function object is."""

    def __init__(
        self, name: str, fallback: Callable[..., Any], dispatcher: Dispatcher,
        keep: tuple[Any, ...],
    ) -> None:  # fmt: skip
        self.fallback = fallback
        self.dispatcher = dispatcher
        self.keep = keep
        self.function = builtin_function(name, dispatcher.function, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fallback(*args, **kwargs)

    @property
    def hits(self) -> int:
        """Calls the machine code ran itself."""
        return int(ctypes.c_int64.from_address(self.dispatcher.hits).value)


def enabled() -> bool:
    return LAYOUT is not None and os.environ.get("TESSEL_NATIVE_DISPATCH", "1") != "0"


def native_call(
    name: str, program: Any, args: Sequence[Any], fallback: Callable[..., Any]
) -> NativeCall | None:
    """A built-in function that runs `program` on arguments like `args` and calls `fallback`
    with anything else; None where the program or this interpreter cannot have one.

    Like means: exactly an ndarray with the same shape and NumPy's own object for the same
    dtype, C-contiguous and aligned; or a Python float, int or bool where `args` has one.
    """
    parts = getattr(program, "dispatch_parts", lambda: None)()
    if parts is None or LAYOUT is None:
        return None
    params = [_param(a) for a in args]
    if None in params:
        return None
    empty_args = (parts.shape, parts.scalar_type)
    types = {"ndarray": np.ndarray, "float": float, "int": int, "True": True, "False": False}
    spec = DispatchSpec(
        name="tessel",
        params=tuple(p for p in params if p is not None),
        program=parts.program,
        arena=parts.arena.ctypes.data,
        releases_gil=parts.releases_gil,
        types={k: id(v) for k, v in types.items()},
        empty=id(np.empty),
        empty_args=id(empty_args),
    )
    dispatcher = build_dispatcher(spec, LAYOUT, c_api(), host_target())
    keep = (program, parts.arena, empty_args, np.empty)
    return NativeCall(name, fallback, dispatcher, keep)


_NUMBERS = {float: "float", int: "int", bool: "bool"}


def _param(a: Any) -> Param | None:
    if type(a) in _NUMBERS:
        return Param(_NUMBERS[type(a)])
    if type(a) is not np.ndarray:
        return None
    canonical = np.dtype(a.dtype.char)  # the dtype object NumPy gives its arrays
    return Param("array", id(canonical), tuple(a.shape)) if canonical == a.dtype else None
