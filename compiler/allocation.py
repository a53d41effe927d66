"""Arrays the traced function makes with NumPy's constructors become traced arrays.

`out = np.zeros((n, m))` followed by `out[i] = f(x[i])` is how most NumPy code builds a result.
Run eagerly, np.zeros would give a NumPy array that cannot hold traced values. So while a
function is traced, NumPy's constructors (CONSTRUCTORS, as attributes of the `numpy` module)
give a traced array instead when the user's code calls them: a constant node, mutable like
any array. Until something is written into it, its value is still known, so `bool()`,
`float()` or `np.asarray` on it work as they did (tracing.Tracer's concretization).

Calls from NumPy itself, from tessel and from installed packages (site-packages) keep NumPy's
behaviour, so a library computing on concrete arrays inside the function is unaffected; so is
every other thread, since the trace is per thread. The module attributes are swapped only
while at least one trace runs. `from numpy import zeros` binds the original and is not seen.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from compiler.tracing import INTERNAL_DIRS, Tracer, broadcast, current_trace, lift
from ir.dtypes import DType

CONSTRUCTORS = ("zeros", "ones", "empty", "full", "eye", "identity", "zeros_like", "ones_like",
                "empty_like", "full_like")  # fmt: skip
_LIBRARIES = ("site-packages", "dist-packages")

_lock = threading.Lock()
_active = 0
_originals: dict[str, Callable[..., Any]] = {}


@contextlib.contextmanager
def traced_constructors() -> Iterator[None]:
    global _active
    with _lock:
        if _active == 0:
            for name in CONSTRUCTORS:
                _originals[name] = getattr(np, name)
                setattr(np, name, _traced(name, _originals[name]))
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                for name, original in _originals.items():
                    setattr(np, name, original)


def _from_user_code() -> bool:
    caller = sys._getframe(2).f_code.co_filename
    return not caller.startswith(INTERNAL_DIRS) and not any(d in caller for d in _LIBRARIES)


def _traced(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def construct(*args: Any, **kwargs: Any) -> Any:
        trace = current_trace()
        if trace is None or not _from_user_code():
            return original(*args, **kwargs)
        fill = kwargs.get("fill_value", args[1] if len(args) > 1 else None)
        if name == "full" and isinstance(fill, Tracer):  # np.full(shape, traced value)
            dtype = kwargs.get("dtype", args[2] if len(args) > 2 else None)
            value = lift(fill) if dtype is None else lift(fill, DType.from_numpy(np.dtype(dtype)))
            shape = args[0] if args else kwargs["shape"]
            made = broadcast(value, (shape,) if isinstance(shape, int) else tuple(shape))
            return Tracer(trace, made.node, False, mutable=True)
        array = original(*args, **kwargs)
        if not isinstance(array, np.ndarray):
            return array  # a *_like of a traced array: already traced
        try:
            dtype = DType.from_numpy(array.dtype)
        except ValueError:
            return array  # a dtype tessel does not trace (strings, objects): NumPy's array
        if name.startswith("empty"):
            array[...] = 0  # any value is valid; a known one keeps the IR the same each time
        return Tracer(trace, trace.constant(array, dtype).node, False, mutable=True)

    return construct
