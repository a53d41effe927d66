"""The ndarray surface of `Tracer`: operators, methods, indexing and NumPy's dispatch hooks.

Everything here forwards to the rows of `compiler.numpy_api`, so `x + 1`, `np.add(x, 1)` and
`x.sum()`/`np.sum(x)` are one definition each. Importing this module installs the methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from compiler import numpy_api as api
from compiler.tracing import Tracer, UnsupportedError, convert, is_weak, reshape
from ir.dtypes import DType
from ir.ops import Op

# --- operators ----------------------------------------------------------------------------


def _binary(
    ufunc: np.ufunc | Callable[..., Any], symbol: str
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    handler = api.UFUNCS[ufunc] if isinstance(ufunc, np.ufunc) else ufunc

    def forward(self: Tracer, other: Any) -> Any:
        return api.call(f"x {symbol} y", handler, _python_operands(symbol, self, other), {})

    def reverse(self: Tracer, other: Any) -> Any:
        return api.call(f"x {symbol} y", handler, _python_operands(symbol, other, self), {})

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
    # operators without a NumPy row yet (np.bitwise_xor and np.divmod stay refused)
    "xor": (api.bitwise_xor, "^"),
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
    "flatten": api.np_ravel,
    "squeeze": api.np_squeeze,
    "swapaxes": api.np_swapaxes,
    "clip": api.np_clip,
    "dot": api.FUNCTIONS[np.dot],
    "copy": api.np_copy,
}


# --- indexing -----------------------------------------------------------------------------


def getitem(self: Tracer, index: Any) -> Tracer:
    with self.trace.operation("x[...]"):
        return _getitem(self, index)


def _check_index_item(x: Tracer, item: Any) -> None:
    """Only basic indexing: static integers, slices, None and Ellipsis."""
    if isinstance(item, Tracer | np.ndarray | list):
        raise x.trace.error(
            "indexing with an array (a boolean mask or integer indices) is not supported: "
            "the result's shape would depend on the data; use np.where(mask, x, 0) or "
            "slices with static bounds",
            UnsupportedError,
        )
    if isinstance(item, bool | np.bool_):
        raise x.trace.error(
            "indexing with a boolean scalar (a rank-0 mask) is not supported; use None to "
            "add an axis",
            UnsupportedError,
        )
    if not (
        item is None or item is Ellipsis or isinstance(item, slice | int | np.integer)
    ):  # a float would otherwise truncate silently
        raise x.trace.error(
            "only integers, slices (`:`), ellipsis (`...`) and None (`np.newaxis`) are "
            f"valid indices, got {type(item).__name__}"
        )


def _getitem(x: Tracer, index: Any) -> Tracer:
    items = index if isinstance(index, tuple) else (index,)
    for item in items:
        _check_index_item(x, item)
    if sum(item is Ellipsis for item in items) > 1:
        raise x.trace.error("an index can only have a single ellipsis ('...')")
    used = sum(1 for item in items if item is not None and item is not Ellipsis)
    if used > x.ndim:
        raise x.trace.error(f"too many indices for an array of rank {x.ndim}")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = items[:at] + (slice(None),) * (x.ndim - used) + items[at + 1 :]
    else:
        items = items + (slice(None),) * (x.ndim - used)
    start, limit, stride, out_shape = [], [], [], []
    dim = 0
    for item in items:
        if item is None:
            out_shape.append(1)
            continue
        n = x.shape[dim]
        if isinstance(item, slice):
            lo, hi, step = item.indices(n)
            if step < 0:
                raise x.trace.error(
                    "slices with a negative step are not supported", UnsupportedError
                )
            count = max(0, -(-(hi - lo) // step))
            start.append(lo)
            limit.append(lo + max(count - 1, 0) * step + 1 if count else lo)
            stride.append(step)
            out_shape.append(count)
        else:
            i = int(item)
            if not -n <= i < n:
                raise x.trace.error(f"index {i} is out of bounds for axis {dim} with size {n}")
            i %= n
            start.append(i)
            limit.append(i + 1)
            stride.append(1)
        dim += 1
    sliced = x
    if (tuple(start), tuple(limit)) != ((0,) * x.ndim, x.shape) or any(s != 1 for s in stride):
        sliced = x.trace.emit(
            Op.SLICE, [x], x.weak, start=tuple(start), limit=tuple(limit), stride=tuple(stride)
        )
    return reshape(sliced, tuple(out_shape))


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
    for name, handler in _METHODS.items():
        setattr(Tracer, name, _method(name, handler))
    extra: dict[str, Any] = {
        "reshape": _shape_method("reshape", api.np_reshape),
        "transpose": _shape_method("transpose", api.np_transpose),
        "T": property(lambda self: api.call("x.T", api.np_transpose, (self,), {})),
        "mT": property(lambda self: api.call("x.mT", api.np_swapaxes, (self, -1, -2), {})),
        "__getitem__": getitem,
        "__array_ufunc__": api.array_ufunc,
        "__array_function__": api.array_function,
    }
    for name, value in extra.items():
        setattr(Tracer, name, value)


_install()
