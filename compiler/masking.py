"""Boolean-mask indexing under tracing: `x[mask] = v`, `x[mask] += v`, `x[mask].sum()`.

NumPy's `x[mask]` is a 1-d array of the selected elements, whose length depends on the data, so
it has no static shape. What programs do with it mostly does not need one: store into it,
update it in place, reduce it, or copy it into another array under the same mask. tessel keeps
the whole array and the mask (a `Selection`) and turns each of those into a `select` or a
masked reduction. Anything that would need the selected elements as an array of their own is
refused with an error that suggests the masked form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np

from compiler import numpy_api as api
from compiler.tracing import (
    Tracer,
    UnsupportedError,
    broadcast,
    lift,
    user_location,
    write_into,
)
from ir.diagnostics import Loc
from ir.dtypes import DType
from ir.graph import Node
from ir.ops import Op

_SHAPELESS = (
    "its length depends on the data, so it has no static shape under @jit; write it as a "
    "masked computation on the whole array instead, e.g. np.where(mask, x, 0)"
)


def same_mask(a: Node, b: Node) -> bool:
    """Whether two masks are the same computation (`b > 0` written twice), so that the
    elements they select pair up."""
    if a is b:
        return True
    return (
        a.op is b.op
        and a.op is not Op.PARAMETER
        and a.type == b.type
        and a.attrs == b.attrs
        and len(a.srcs) == len(b.srcs)
        and all(same_mask(x, y) for x, y in zip(a.srcs, b.srcs, strict=True))
    )


def _pair(x: Tracer, mask: Node, other: Selection) -> None:
    """Elements selected by two masks pair up by position only when the masks are equal."""
    if not same_mask(mask, other.key):
        raise x.trace.error(
            "x[mask] with a selection made with another mask: NumPy pairs their elements by "
            "position, which depends on the data; use np.where on whole arrays",
            UnsupportedError,
        )


def is_mask(index: Any) -> bool:
    if isinstance(index, Tracer):
        return index.node.dtype is DType.BOOL and index.ndim > 0
    return isinstance(index, np.ndarray) and index.dtype == np.bool_ and index.ndim > 0


def _full_mask(x: Tracer, index: Any) -> Tracer:
    mask = lift(index)
    if mask.shape != x.shape[: mask.ndim]:
        raise x.trace.error(
            f"boolean index of shape {mask.shape} does not match the array's leading "
            f"dimensions {x.shape[: mask.ndim]}"
        )
    if mask.shape == x.shape:
        return mask
    dims = tuple(range(mask.ndim))
    return x.trace.emit(Op.BROADCAST_IN_DIM, [mask], shape=x.shape, dims=dims)


class Selection:
    """`x[mask]`: the array it selects from (its values now), and the mask at x's shape."""

    def __init__(self, values: Tracer, mask: Tracer, key: Any, loc: Loc | None = None) -> None:
        self.values = values
        self.mask = mask
        self.key = key  # the mask's node: x[mask] = x[mask] * 2 needs the same mask
        self.loc = loc or user_location()  # where the user wrote x[mask], for late errors

    @property
    def trace(self) -> Any:
        return self.values.trace

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise self.trace.error(f"x[mask] selects elements: {_SHAPELESS}", UnsupportedError)

    __array__ = __len__ = __iter__ = __array_ufunc__ = _refuse
    shape = property(_refuse)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        method = {np.sum: "sum", np.mean: "mean", np.any: "any", np.all: "all"}.get(func)
        if method is None or not args or args[0] is not self:
            self._refuse()
        return getattr(self, method)(*args[1:], **kwargs)

    # --- reductions: every selected element, none of the others ---
    def sum(self, axis: Any = None, dtype: Any = None, out: Any = None) -> Tracer:
        self._whole(axis, out)
        return api.np_sum(self._where(0), dtype=dtype)

    def mean(self, axis: Any = None, dtype: Any = None, out: Any = None) -> Tracer:
        """As NumPy: in the array's float type (f64 for integers); nan when none is selected."""
        self._whole(axis, out)
        if dtype is None:
            dtype = self.values.dtype if self.values.node.dtype.is_float else np.float64
        total = api.np_sum(self._where(0), dtype=dtype)
        result: Tracer = api.UFUNCS[np.true_divide](total, api.np_sum(self.mask, dtype=dtype))
        return result

    def any(self, axis: Any = None, out: Any = None) -> Tracer:
        self._whole(axis, out)
        return api.np_any(self._where(False))

    def all(self, axis: Any = None, out: Any = None) -> Tracer:
        self._whole(axis, out)
        return api.np_all(self._where(True))

    def __neg__(self) -> Selection:
        return Selection(api.UFUNCS[np.negative](self.values), self.mask, self.key, self.loc)

    def _whole(self, axis: Any, out: Any) -> None:
        if axis is not None or out is not None:
            raise self.trace.error(
                "a reduction of x[mask] takes no axis or out= (the selection is 1-d)",
                UnsupportedError,
            )

    def _where(self, other: Any) -> Tracer:
        return api.np_where(self.mask, self.values, other)

    # --- arithmetic, elementwise on the selected elements ---
    def _combine(self, op: Callable[[Any, Any], Any], other: Any) -> Selection:
        if isinstance(other, Selection):
            _pair(self.values, self.key, other)
            other = other.values
        elif lift(other).ndim:
            raise self.trace.error(
                "combining x[mask] with an array: NumPy pairs its elements with the selected "
                f"ones in order, and {_SHAPELESS}",
                UnsupportedError,
            )
        return Selection(op(self.values, other), self.mask, self.key, self.loc)


def _arith(op: Callable[[Any, Any], Any], reverse: bool = False) -> Callable[..., Selection]:
    def run(self: Selection, other: Any) -> Selection:
        return self._combine((lambda a, b: op(b, a)) if reverse else op, other)

    return run


def _inplace(op: Callable[[Any, Any], Any]) -> Callable[..., Selection]:
    """`x[mask] op= v`: NumPy updates the selected elements in place, in their own dtype."""

    def run(self: Selection, other: Any) -> Selection:
        result = self._combine(op, other)
        old, new = self.values.dtype, result.values.dtype
        if not np.can_cast(new, old, "same_kind"):
            raise self.trace.error(
                f"cannot cast the output of x[mask] {op.__name__} v from {new!r} to {old!r} "
                "with casting rule 'same_kind' (as NumPy)"
            )
        values = api.np_astype(result.values, old)
        return Selection(values, self.mask, self.key, self.loc)

    return run


_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "truediv": np.true_divide,
    "floordiv": np.floor_divide,
    "mod": np.remainder,
    "pow": np.power,
    "and": np.bitwise_and,
    "or": np.bitwise_or,
}
_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "eq": np.equal,
    "ne": np.not_equal,
}
for _name, _op in _ARITHMETIC.items():
    setattr(Selection, f"__{_name}__", _arith(_op))
    setattr(Selection, f"__i{_name}__", _inplace(_op))
    setattr(Selection, f"__r{_name}__", _arith(_op, reverse=True))
for _name, _op in _COMPARISONS.items():  # `9 > s` is s.__lt__(9): no reversed forms needed
    setattr(Selection, f"__{_name}__", _arith(_op))


def getitem(x: Tracer, index: Any) -> Selection:
    mask = lift(index)
    return Selection(Tracer(x.trace, x.node, x.weak), _full_mask(x, mask), mask.node)


def setitem(x: Tracer, index: Any, value: Any) -> None:
    """`x[mask] = v`: v a scalar, an array that broadcasts to one selected element (a row,
    when the mask covers the leading axes), or `y[mask]` with the same mask."""
    mask = lift(index)
    full = _full_mask(x, mask)
    if isinstance(value, Selection):
        _pair(x, mask.node, value)
        v = value.values
    else:
        v = lift(value)
        element = x.shape[mask.ndim :]
        if not element and v.ndim > 1:
            raise x.trace.error(
                "NumPy boolean array indexing assignment requires a 0 or 1-dimensional input, "
                f"input has {v.ndim} dimensions"
            )
        shape = v.shape
        while len(shape) > len(element) and shape[0] == 1:
            shape = shape[1:]
        fits = len(shape) <= len(element) and all(
            a in (1, b) for a, b in zip(shape[::-1], element[::-1], strict=False)
        )
        if not fits:
            raise x.trace.error(
                f"x[mask] = v with v of shape {v.shape}: NumPy assigns its elements to the "
                f"selected ones in order, and {_SHAPELESS}",
                UnsupportedError,
            )
        v = broadcast(api.np_reshape(v, shape), x.shape) if v.shape != x.shape else v
    new = api.np_where(full, api.np_astype(v, x.dtype), Tracer(x.trace, x.node, x.weak))
    write_into(x, broadcast(new, x.shape), "x[mask] = v")
