"""What native code needs to read Python objects directly: CPython's and NumPy's struct
layouts, checked on live objects, and a way to make a machine-code function callable.

`@jit`'s native dispatcher (codegen/dispatch.py) reads a call's argument tuple and each
array's header in place of Python code. Every offset it uses is confirmed here on real objects
at import; on a build where one differs (free-threaded, debug, 32-bit, a future NumPy),
`LAYOUT` is None and the dispatcher is never built, rather than guessed at.
"""

from __future__ import annotations

import ctypes
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BEHAVED", "LAYOUT", "Layout", "builtin_function", "c_api"]

NPY_C_CONTIGUOUS = 0x0001
NPY_ALIGNED = 0x0100
BEHAVED = NPY_C_CONTIGUOUS | NPY_ALIGNED  # what compiled code assumes of an array's layout


@dataclass(frozen=True)
class Layout:
    """Byte offsets into a PyObject (`ob_type`), a PyTupleObject (`tuple_size`,
    `tuple_items`), a PyFloatObject (`float_value`) and a PyArrayObject (the rest)."""

    ob_type: int = 8
    tuple_size: int = 16
    tuple_items: int = 24
    data: int = 16
    nd: int = 24
    dimensions: int = 32
    descr: int = 56
    flags: int = 64
    float_value: int = 16  # a PyFloatObject's double


def _read(address: int, ctype: Any) -> Any:
    return ctype.from_address(address).value


def _matches(layout: Layout) -> bool:
    base = np.arange(24, dtype=np.float64)
    arrays: list[np.ndarray] = [
        base, base.reshape(4, 6)[1:, 2:], np.zeros(0, np.int8), np.array(1j), base[::2]
    ]  # fmt: skip
    for a in arrays:
        at = id(a)
        dims = _read(at + layout.dimensions, ctypes.c_void_p)
        if (
            _read(at + layout.ob_type, ctypes.c_void_p) != id(np.ndarray)
            or _read(at + layout.data, ctypes.c_void_p) != a.ctypes.data
            or _read(at + layout.nd, ctypes.c_int) != a.ndim
            or (a.ndim and tuple((ctypes.c_ssize_t * a.ndim).from_address(dims)) != a.shape)
            or _read(at + layout.descr, ctypes.c_void_p) != id(a.dtype)
            or _read(at + layout.flags, ctypes.c_int) != a.flags.num
        ):
            return False
    if any(_read(id(x) + layout.float_value, ctypes.c_double) != x for x in (1.5, -0.25, 1e300)):
        return False
    pair = (arrays[0], arrays[1])
    return bool(
        _read(id(pair) + layout.tuple_size, ctypes.c_ssize_t) == 2
        and _read(id(pair) + layout.tuple_items, ctypes.c_void_p) == id(arrays[0])
        and _read(id(pair) + layout.tuple_items + 8, ctypes.c_void_p) == id(arrays[1])
    )


def _verified() -> Layout | None:
    if ctypes.sizeof(ctypes.c_void_p) != 8 or sysconfig.get_config_var("Py_GIL_DISABLED"):
        return None
    layout = Layout()
    try:
        return layout if _matches(layout) else None
    except (ValueError, OverflowError):  # an unreadable field: not this layout
        return None


LAYOUT: Layout | None = _verified()

# The C API functions the dispatcher calls, all in CPython's stable ABI.
_C_API = (
    "PyObject_Call",
    "Py_DecRef",
    "PyEval_SaveThread",
    "PyEval_RestoreThread",
    "PyLong_AsLongLong",
    "PyErr_Occurred",
    "PyErr_Clear",
)


def c_api() -> dict[str, int]:
    """Each C API function's address in this process."""
    return {
        n: ctypes.cast(getattr(ctypes.pythonapi, n), ctypes.c_void_p).value or 0 for n in _C_API
    }


class _MethodDef(ctypes.Structure):
    _fields_ = [
        ("ml_name", ctypes.c_char_p),
        ("ml_meth", ctypes.c_void_p),
        ("ml_flags", ctypes.c_int),
        ("ml_doc", ctypes.c_char_p),
    ]


METH_VARARGS = 0x0001
METH_KEYWORDS = 0x0002
_new_function = ctypes.pythonapi.PyCFunction_NewEx
_new_function.restype = ctypes.py_object
_new_function.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.c_void_p]
_DEFINITIONS: list[_MethodDef] = []  # a function object points into its definition: never freed


def builtin_function(name: str, address: int, self: object) -> Callable[..., Any]:
    """A built-in function object that calls the machine code at `address` as
    `PyObject *f(PyObject *self, PyObject *args, PyObject *kwargs)` with `self` bound.

    `self` must keep alive whatever the code uses (its engine, its memory): the function
    object holds `self` for as long as it exists.
    """
    definition = _MethodDef(name.encode(), address, METH_VARARGS | METH_KEYWORDS, None)
    _DEFINITIONS.append(definition)
    fn: Callable[..., Any] = _new_function(ctypes.addressof(definition), self, None)
    return fn
