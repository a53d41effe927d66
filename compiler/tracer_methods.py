"""The ndarray surface of `Tracer`: operators, methods, indexing and NumPy's dispatch hooks.

Everything here forwards to the rows of `compiler.numpy_api`, so `x + 1`, `np.add(x, 1)` and
`x.sum()`/`np.sum(x)` are one definition each. Importing this module installs the methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from compiler import (
    advanced_indexing,
    indexing,
    masking,
    numpy_complex,
    numpy_indexing,
    numpy_sort,
)
from compiler import numpy_api as api
from compiler.tracing import Tracer, convert, is_weak, write_into
from ir.dtypes import DType
from ir.ops import Op

# --- operators ----------------------------------------------------------------------------


def _binary(
    ufunc: np.ufunc | Callable[..., Any], symbol: str
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    handler = api.UFUNCS[ufunc] if isinstance(ufunc, np.ufunc) else ufunc

    def forward(self: Tracer, other: Any) -> Any:
        result = api.call(f"x {symbol} y", handler, _python_operands(symbol, self, other), {})
        if symbol in ("+", "-"):  # i + 3, i - 3: for x[i:i + 3]
            advanced_indexing.record_offset(result, self, other, 1 if symbol == "+" else -1)
        return result

    def reverse(self: Tracer, other: Any) -> Any:
        result = api.call(f"x {symbol} y", handler, _python_operands(symbol, other, self), {})
        if symbol == "+":
            advanced_indexing.record_offset(result, self, other, 1)
        return result

    return forward, reverse


_OPERATORS: dict[str, tuple[np.ufunc | Callable[..., Any], str]] = {
    "add": (np.add, "+"),
    "sub": (np.subtract, "-"),
    "mul": (np.multiply, "*"),
    "truediv": (np.true_divide, "/"),
    "floordiv": (np.floor_divide, "//"),
    "mod": (np.remainder, "%"),
    "pow": (np.power, "**"),
    "matmul": (np.matmul, "@"),
    "and": (np.bitwise_and, "&"),
    "or": (np.bitwise_or, "|"),
    "xor": (np.bitwise_xor, "^"),
    "lshift": (np.left_shift, "<<"),
    "rshift": (np.right_shift, ">>"),
    # an operator without a NumPy row (np.divmod stays refused)
    "divmod": (api.python_divmod, "divmod(x, y)"),
}
_COMPARISONS = {
    "eq": (np.equal, "=="),
    "ne": (np.not_equal, "!="),
    "lt": (np.less, "<"),
    "le": (np.less_equal, "<="),
    "gt": (np.greater, ">"),
    "ge": (np.greater_equal, ">="),
}
_UNARY = {"neg": (np.negative, "-x"), "pos": (np.positive, "+x"), "abs": (np.absolute, "abs(x)"),
          "invert": (np.invert, "~x")}  # fmt: skip


def _python_operands(symbol: str, *operands: Any) -> tuple[Any, ...]:
    """Operators on values that are Python scalars follow Python, where a bool is an int in
    arithmetic (True + True == 2, -True == -1) but NumPy's bool arithmetic is logical."""
    if symbol in ("&", "|", "^") or not all(is_weak(v) for v in operands):
        return operands
    return tuple(
        int(v) if isinstance(v, bool)
        else convert(v, DType.I64) if isinstance(v, Tracer) and v.node.dtype is DType.BOOL
        else v
        for v in operands
    )  # fmt: skip


def _unary(ufunc: np.ufunc, what: str) -> Callable[..., Any]:
    def run(self: Tracer) -> Any:
        return api.call(what, api.UFUNCS[ufunc], _python_operands(what, self), {})

    return run


def _power(self: Tracer, other: Any) -> Any:
    """`x ** 2` is np.square(x), as ndarray's fast path makes it: bool ** 2 is int8 where
    np.power(bool, 2) is int64."""
    if type(other) is int and other == 2 and self.ndim:  # a NumPy scalar has no fast path
        return api.call("x ** y", api.UFUNCS[np.square], (self,), {})
    return api.call("x ** y", api.UFUNCS[np.power], _python_operands("**", self, other), {})


# --- methods ------------------------------------------------------------------------------


def _method(name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    def run(self: Tracer, *args: Any, **kwargs: Any) -> Any:
        return api.call(f"x.{name}", handler, (self, *args), kwargs)

    run.__name__ = name
    return run


def _shape_method(name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    """x.reshape(2, 3) and x.transpose(1, 0) also take their tuple unpacked."""

    def run(self: Tracer, *shape: Any, **kwargs: Any) -> Any:
        arg = shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape
        args = (self, arg) if shape else (self,)
        return api.call(f"x.{name}", handler, args, kwargs)

    return run


_METHODS: dict[str, Callable[..., Any]] = {
    "sum": api.np_sum,
    "prod": api.np_prod,
    "max": api.np_max,
    "min": api.np_min,
    "mean": api.np_mean,
    "var": api.np_var,
    "std": api.np_std,
    "all": api.np_all,
    "any": api.np_any,
    "argmax": api.FUNCTIONS[np.argmax],
    "argmin": api.FUNCTIONS[np.argmin],
    "astype": api.np_astype,
    "ravel": api.np_ravel,
    "flatten": api.np_flatten,
    "squeeze": api.np_squeeze,
    "swapaxes": api.np_swapaxes,
    "clip": api.np_clip,
    "dot": api.FUNCTIONS[np.dot],
    "copy": api.np_copy,
    "conj": numpy_complex.conjugate,
    "conjugate": numpy_complex.conjugate,
    # (not "trace": a Tracer's `trace` is its Trace; x.trace() is spelled np.trace(x))
    **{name: api.FUNCTIONS[getattr(np, name)] for name in ("cumsum", "cumprod", "diagonal")},
    "repeat": api.FUNCTIONS[np.repeat],
    "take": numpy_indexing.np_take,
    "put": numpy_indexing.np_put,
    "argsort": numpy_sort.np_argsort,
    "sort": numpy_sort.sort_in_place,  # in place: x's value becomes the sorted one
}


# --- in-place operators -------------------------------------------------------------------


def _inplace(name: str, symbol: str) -> Callable[..., Any]:
    """`x op= y`: on an array, NumPy computes `x op y` and writes it into x (so every view
    of x and every name bound to it sees the result); on a scalar it only rebinds the name."""

    def run(self: Tracer, other: Any) -> Any:
        result = getattr(Tracer, f"__{name}__")(self, other)
        if not self.mutable or result is NotImplemented:
            return result
        with self.trace.operation(f"x {symbol}= y"):
            return write_into(self, result, f"x {symbol}= y")

    return run


def _fill(self: Tracer, value: Any) -> None:
    if np.ndim(value) if not isinstance(value, Tracer) else value.ndim:
        raise self.trace.error(
            "x.fill: the value must be a scalar (NumPy: 'setting an array element with a sequence')"
        )
    indexing.setitem(self, Ellipsis, value)


# --- indexing -----------------------------------------------------------------------------


def _traced_mask(index: Any) -> bool:
    """x[mask] with a traced mask selects a number of elements known only when the code runs
    (compiler.masking); a mask known while tracing (NumPy's, or np.eye's not written since)
    is its np.nonzero() positions (compiler.advanced_indexing)."""
    return isinstance(index, Tracer) and index.node.op is not Op.CONSTANT and masking.is_mask(index)


def _getitem(self: Tracer, index: Any) -> Any:
    if _traced_mask(index):  # a selection without a shape of its own
        with self.trace.operation("x[...]"):
            return masking.getitem(self, index)
    return advanced_indexing.getitem(self, index)


def _setitem(self: Tracer, index: Any, value: Any) -> None:
    if _traced_mask(index):
        with self.trace.operation("x[...] = v"):
            indexing.check_writable(self)
            return masking.setitem(self, index, value)
    return advanced_indexing.setitem(self, index, value)


# --- installation -------------------------------------------------------------------------


def _install() -> None:
    for name, (ufunc, symbol) in _OPERATORS.items():
        forward, reverse = _binary(ufunc, symbol)
        setattr(Tracer, f"__{name}__", _power if name == "pow" else forward)
        setattr(Tracer, f"__r{name}__", reverse)
    for name, (ufunc, symbol) in _COMPARISONS.items():
        setattr(Tracer, f"__{name}__", _binary(ufunc, symbol)[0])
    for name, (ufunc, what) in _UNARY.items():
        setattr(Tracer, f"__{name}__", _unary(ufunc, what))
    for name, (_, symbol) in {**_OPERATORS, "matmul": (np.matmul, "@")}.items():
        if name != "divmod":
            setattr(Tracer, f"__i{name}__", _inplace(name, symbol))
    for name, handler in _METHODS.items():
        setattr(Tracer, name, _method(name, handler))
    extra: dict[str, Any] = {
        "reshape": _shape_method("reshape", api.np_reshape),
        "transpose": _shape_method("transpose", api.np_transpose),
        "T": property(lambda self: api.call("x.T", api.np_transpose, (self,), {})),
        "mT": property(lambda self: api.call("x.mT", api.np_swapaxes, (self, -1, -2), {})),
        "real": numpy_complex.attribute(Op.REAL),
        "imag": numpy_complex.attribute(Op.IMAG),
        "__getitem__": _getitem,
        "__setitem__": _setitem,
        "fill": _fill,
        "__array_ufunc__": api.array_ufunc,
        "__array_function__": api.array_function,
    }
    for name, value in extra.items():
        setattr(Tracer, name, value)


_install()
