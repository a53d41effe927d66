"""Tracing Python into graph IR: abstract values (`Tracer`), type promotion and located errors.

Under `@jit`, the user's function runs once per signature on `Tracer`s that carry only a shape
and a dtype. Every operation on a tracer appends a node to the trace's `FunctionBuilder`;
NumPy's own functions reach the same code through `__array_ufunc__`/`__array_function__`
(`compiler.numpy_api`). Nodes are located at the user's source line, so a shape error in the
traced function points at the user's code, not at tessel's.

Promotion is NumPy's (NEP 50, numpy >= 2): NumPy itself is asked for the result dtype, with
Python scalars and values traced from Python scalars being weakly typed (`x_f32 * 2.0` stays f32,
`x_f32 * 1j` is complex64).
"""

from __future__ import annotations

import contextlib
import functools
import linecache
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from ir.builder import FunctionBuilder, broadcast_shapes, make_node
from ir.diagnostics import GraphTypeError, Loc, ShapeError, TesselError
from ir.dtypes import DType
from ir.graph import Node
from ir.ops import OPERAND_DTYPES, Op
from ir.types import TensorType

Scalar = bool | int | float | complex


class TraceError(TesselError):
    """A traced function did something tessel cannot compile; located at the user's line."""


class ConcretizationError(TraceError):
    """A traced value was used where Python needs a concrete value (`if x:`, `int(x)`)."""


class UnsupportedError(TraceError):
    """A NumPy function, method or argument that tessel does not trace."""


# --- where the user is --------------------------------------------------------------------

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTERNAL_DIRS = (
    *(
        os.path.join(_ROOT, pkg) + os.sep
        for pkg in ("compiler", "ir", "passes", "runtime", "tessel")
    ),
    os.path.dirname(os.path.abspath(np.__file__)) + os.sep,
)


@functools.cache
def _positions(code: Any) -> list[tuple[int | None, int | None, int | None, int | None]]:
    return list(code.co_positions())


def user_location(frame: FrameType | None = None) -> Loc | None:
    """The innermost frame outside tessel and NumPy: the user's line, with its column."""
    f: FrameType | None = frame or sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(INTERNAL_DIRS):
        f = f.f_back
    if f is None:
        return None
    filename, line, col = f.f_code.co_filename, f.f_lineno, 1
    positions = _positions(f.f_code)
    if 0 <= f.f_lasti // 2 < len(positions):
        start_line, _, start_col, _ = positions[f.f_lasti // 2]
        if start_line == line and start_col is not None:
            col = start_col + 1
    text = linecache.getline(filename, line) or None
    return Loc(filename, line, col, text)


# --- traces -------------------------------------------------------------------------------

_current = threading.local()


def current_trace() -> Trace | None:
    return getattr(_current, "trace", None)


class Trace:
    """One run of a function on tracers: the builder it fills and the constants it captured."""

    # A loop or branch body traced inside this run (compiler.control_flow.NestedTrace) has the
    # trace it is nested in as its parent, and takes in the values of that trace it uses.
    parent: Trace | None = None

    def __init__(self, name: str) -> None:
        self.builder = FunctionBuilder(name)
        self._constants: dict[int, tuple[Any, Tracer]] = {}  # id(array) -> (array, tracer)
        self.api = ""  # the user-facing operation being traced, for error messages

    @contextlib.contextmanager
    def active(self) -> Iterator[Trace]:
        outer = current_trace()
        _current.trace = self
        try:
            yield self
        finally:
            _current.trace = outer

    @contextlib.contextmanager
    def operation(self, api: str) -> Iterator[None]:
        """Name errors raised inside after `api` (np.matmul, x.reshape, x[...])."""
        outer, self.api = self.api, api
        try:
            yield
        finally:
            self.api = outer

    def param(self, name: str, dtype: DType, shape: tuple[int, ...], weak: bool = False) -> Tracer:
        node = self.builder.param(name, TensorType(shape, dtype))
        return Tracer(self, node, weak)

    def within(self, other: Trace) -> bool:
        """Whether this trace is a body nested (at any depth) in `other`."""
        t = self.parent
        while t is not None and t is not other:
            t = t.parent
        return t is other

    def node_of(self, x: Tracer) -> Node | None:
        """`x`'s value as a node of this trace; None for a value of another trace."""
        return x.node if x.trace is self else None

    def emit(self, op: Op, srcs: Sequence[Tracer], weak: bool = False, **attrs: Any) -> Tracer:
        current = current_trace()
        if current is not self and current is not None and current.within(self):
            with current.operation(current.api or self.api):  # a body using an outer value
                return current.emit(op, srcs, weak, **attrs)
        loc = user_location()
        nodes = [n for n in map(self.node_of, srcs) if n is not None]
        if current is not self or len(nodes) != len(srcs):
            raise TraceError(
                "a traced value was used outside the call that traced it (kept in a global, "
                "an attribute or a closure from an earlier call?); return it instead, or pass "
                "it in as an argument",
                loc,
            )
        try:
            node = make_node(op, nodes, attrs, loc=loc)
        except GraphTypeError as e:
            message = _complex_refusal(op, nodes, attrs) or e.message
            raise TraceError(f"{self.api}: {message}" if self.api else message, loc) from None
        return Tracer(self, self.builder.add(node), weak)

    def constant(self, value: Any, dtype: DType | None = None, weak: bool = False) -> Tracer:
        """A captured NumPy array (once per array object) or a scalar, as a constant node."""
        current = current_trace()
        if current is not self and current is not None and current.within(self):
            return current.constant(value, dtype, weak)  # made inside a loop or branch body
        if isinstance(value, np.ndarray) and dtype is None:
            seen = self._constants.get(id(value))
            if seen is not None and seen[0] is value:
                return seen[1]
        arr = np.asarray(value, dtype=dtype.np if dtype else None)
        tessel_dtype = dtype or to_dtype(arr.dtype, self.api)
        loc = user_location()
        node = make_node(
            Op.CONSTANT, (), {"value": _const_data(arr.astype(tessel_dtype.np))}, loc=loc
        )
        tracer = Tracer(self, self.builder.add(node), weak)
        if isinstance(value, np.ndarray) and dtype is None:
            self._constants[id(value)] = (value, tracer)  # keeps the array alive: ids stay unique
        return tracer

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        """`x.trace()` on a traced array lands here: a Tracer's `trace` attribute is its Trace,
        so ndarray's method of that name is spelled np.trace(x)."""
        raise self.error("x.trace() is spelled np.trace(x) under @jit", UnsupportedError)

    def error(self, message: str, cls: type[TraceError] = TraceError) -> TraceError:
        return cls(f"{self.api}: {message}" if self.api else message, user_location())


# the reduce kinds ir.typerules accepts on complex operands (reduce's operand rule is ANY)
_COMPLEX_REDUCTIONS = frozenset({"sum"})


def _complex_refusal(op: Op, operands: Sequence[Node], attrs: dict[str, Any]) -> str | None:
    """Why `op` failed when the reason is a complex operand: NumPy defines most functions on
    complex numbers, so the user needs to hear that it is tessel that does not."""
    complex_types = [n.type for n in operands if n.dtype.is_complex]
    if not complex_types:
        return None
    rule = OPERAND_DTYPES.get(op)
    if op is Op.REDUCE:
        if attrs.get("kind") in _COMPLEX_REDUCTIONS:
            return None
    elif rule is not None and complex_types[0].dtype in rule.allowed:
        return None
    if op is Op.REDUCE:
        what = f"a {attrs.get('kind')} reduction of complex numbers is not supported"
    else:
        what = f"{op} takes {rule.description if rule else 'no complex type'}"
    return (
        f"tessel does not support complex numbers here ({what}, got {complex_types[0]}); "
        "compute on the real and imaginary parts (z.real, z.imag) or on np.abs(z)"
    )


def _const_data(arr: np.ndarray) -> Any:
    from ir.attrs import ConstData

    return ConstData(arr if arr.flags.c_contiguous else arr.copy(order="C"))


def to_dtype(dt: Any, api: str = "") -> DType:
    try:
        return DType.from_numpy(dt)
    except (ValueError, TypeError):
        prefix = f"{api}: " if api else ""
        supported = ", ".join(str(t.np) for t in DType)
        raise TraceError(
            f"{prefix}dtype {np.dtype(dt)} is not supported by tessel (supported: {supported})",
            user_location(),
        ) from None


def trace_of(*values: Any) -> Trace:
    for v in values:
        if isinstance(v, Tracer):
            return v.trace
    trace = current_trace()
    assert trace is not None, "no trace is active"
    return trace


# --- abstract values ----------------------------------------------------------------------


def _concretization(method: str, what: str, hint: str) -> Callable[..., Any]:
    def refuse(self: Tracer, *args: Any, **kwargs: Any) -> Any:  # np.array passes copy=
        node = self.node
        if node.op is Op.CONSTANT:  # never written since np.zeros & co. made it: still known
            return getattr(np.array(node.attrs["value"].array), method)(*args, **kwargs)
        raise ConcretizationError(
            f"{what} of a traced value {self.aval}: under @jit the value is only known when the "
            f"compiled code runs, not while Python traces the function. {hint}",
            user_location(),
        )

    return refuse


_CONTROL_FLOW_HINT = (
    "Use np.where(condition, a, b) to choose between values, or pass the argument as static "
    "(@jit(static_argnames=...)) if it is a configuration value that changes rarely."
)


class View:
    """How a tracer that NumPy would return as a view relates to the array it views (`base`).

    NumPy's views share memory with their base, so a write through either one shows in the
    other. A traced array is a value, so a view is kept as a function of its base instead:
    `read` recomputes it after the base was written, and `write` gives the base's new value
    after the view was. `read` is None where NumPy may return a copy or a view (reshape), and
    `write` is None where tessel cannot write through (yet); both are refused, never guessed.
    """

    def __init__(
        self,
        base: Tracer,
        what: str,
        read: Callable[[Tracer], Tracer] | None,
        write: Callable[[Tracer, Tracer], Tracer] | None,
        key: Any = None,
    ) -> None:
        self.base = base
        self.key = key  # what selects the view (an index), to recognize it when stored back
        self.what = what
        self.read = read
        self.write = write
        self.synced = base.version  # the base's version this view's value reflects

    def sync(self, view: Tracer) -> None:
        base = self.base
        current = base.node  # brings the base up to date first, if it is a view too
        if base.version == self.synced:
            return
        if self.read is None:
            raise view.trace.error(
                f"this array was taken with {self.what} and the array it came from was "
                "modified afterwards; NumPy returns a copy or a view there depending on "
                "memory layout, so tessel cannot tell which value you mean: call .copy() on "
                "it, or take it after the update",
                UnsupportedError,
            )
        with base.trace.active():  # in the base's trace, also when read from a loop body
            view._node = self.read(Tracer(base.trace, current, base.weak)).node
        view.version += 1
        self.synced = base.version

    def write_through(self, view: Tracer, value: Tracer) -> None:
        if self.write is None:
            raise view.trace.error(
                f"writing into the result of {self.what} is not supported under @jit (in "
                "NumPy it writes through to the array it was taken from); write into that "
                "array with an index instead, or into a .copy()",
                UnsupportedError,
            )
        base = self.base
        base.assign(self.write(Tracer(base.trace, base.node, base.weak), value))
        self.synced = base.version


class Tracer:
    """An array under tracing: its node in the trace, whether it is weakly typed, and what
    in-place updates need: whether NumPy's value here is mutable (an array, not a scalar),
    how many times it was written, and the array it views, if any."""

    __slots__ = ("_node", "mutable", "offset", "trace", "version", "view", "weak")
    __array_priority__ = 1000  # win NumPy's binary-operator dispatch over ndarray

    def __init__(
        self, trace: Trace, node: Node, weak: bool = False, mutable: bool | None = None
    ) -> None:
        self.trace = trace
        self._node = node
        self.weak = weak
        # NumPy gives a scalar, which is immutable (x += 1 rebinds x), where a result has rank
        # 0; arrays of rank 0 come only from arguments and views.
        self.mutable = bool(node.shape) if mutable is None else mutable
        self.version = 0  # counts writes, so that views can tell when they are stale
        self.view: View | None = None
        # (this value's node, base, k) when this integer scalar is `base + k` with k a Python
        # int, so that x[i:i + k] has a length known while tracing (compiler.advanced_indexing)
        self.offset: tuple[Node, Node, int] | None = None

    @property
    def node(self) -> Node:
        """The current value (after every in-place update so far)."""
        if self.view is not None:
            self.view.sync(self)
        return self._node

    def assign(self, value: Tracer) -> None:
        """Overwrite this array with `value` (same shape and dtype), as NumPy's in-place
        operations do: through a view, the array it views is written too."""
        current = current_trace()
        if current is not None and current is not self.trace:
            raise current.error(
                "this array belongs to the function around the tessel.lax loop or branch "
                "being traced, and a body cannot write into it (the write would happen once, "
                "while tracing, not when the body runs); return the new value from the body"
            )
        if self.view is not None:
            self.view.sync(self)
            self.view.write_through(self, value)
        self._node = value.node
        self.version += 1

    # --- static facts ---
    @property
    def shape(self) -> tuple[int, ...]:
        return self.node.shape

    @property
    def ndim(self) -> int:
        return len(self.node.shape)

    @property
    def size(self) -> int:
        return self.node.type.size

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.node.dtype.np

    @property
    def aval(self) -> str:
        return str(self.node.type) + (" (weak)" if self.weak else "")

    def __repr__(self) -> str:
        return f"Tracer({self.aval})"

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of unsized object (a rank-0 traced array)")
        return self.shape[0]

    def __iter__(self) -> Iterator[Tracer]:
        if not self.shape:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.shape[0]))  # the length is static: unroll

    __bool__ = _concretization("__bool__", "bool()", _CONTROL_FLOW_HINT)
    __int__ = _concretization("__int__", "int()", _CONTROL_FLOW_HINT)
    __float__ = _concretization("__float__", "float()", _CONTROL_FLOW_HINT)
    __complex__ = _concretization("__complex__", "complex()", _CONTROL_FLOW_HINT)
    __index__ = _concretization(
        "__index__",
        "using as an index or size",
        "Shapes and indices must be static: derive them from x.shape, or pass the value as a "
        "static argument (@jit(static_argnames=...)).",
    )
    __array__ = _concretization(
        "__array__",
        "converting to a NumPy array (np.array/np.asarray)",
        "Traced values cannot become NumPy arrays; use np.stack or np.concatenate to combine "
        "them, and keep the computation inside NumPy functions tessel traces.",
    )
    tolist = _concretization("tolist", "tolist()", _CONTROL_FLOW_HINT)
    item = _concretization("item", "item()", _CONTROL_FLOW_HINT)

    def __hash__(self) -> int:
        raise TypeError("traced arrays are unhashable (they compare elementwise)")

    # Everything NumPy-like (operators, methods, __array_ufunc__/__array_function__) is attached
    # by compiler.tracer_methods, next to the tables it shares with NumPy's dispatch.
    if TYPE_CHECKING:

        def __getitem__(self, index: Any) -> Tracer: ...

        def __setitem__(self, index: Any, value: Any) -> None: ...


# --- promotion ----------------------------------------------------------------------------

_KIND_SCALARS: dict[str, Scalar] = {"b": False, "i": 0, "u": 0, "f": 0.0, "c": 0j}


def _promotion_stand_in(x: Any) -> Any:
    """What NumPy's result_type should see: dtypes for strong values, Python scalars for weak."""
    if isinstance(x, Tracer):
        return _KIND_SCALARS.get(x.dtype.kind, 0.0) if x.weak else x.dtype
    if isinstance(x, Scalar):
        return x
    return concrete_array(x).dtype


def concrete_array(x: Any) -> np.ndarray:
    """A non-tracer operand as NumPy sees it (a list becomes an array)."""
    if _holds_tracer(x):
        raise trace_of().error(
            "a Python list or tuple holding traced values; combine them with np.stack"
        )
    return np.asarray(x)


def is_weak(x: Any) -> bool:
    return (isinstance(x, Tracer) and x.weak) or isinstance(x, Scalar)


def result_dtype(*xs: Any) -> DType:
    trace = trace_of(*xs)
    stand_ins = [_promotion_stand_in(x) for x in xs]
    if all(isinstance(s, Scalar) for s in stand_ins):
        dt = np.asarray(stand_ins[0]).dtype if len(xs) == 1 else np.result_type(*stand_ins)
    else:
        try:
            dt = np.result_type(*stand_ins)
        except (TypeError, OverflowError) as e:
            raise trace.error(str(e)) from None
    return to_dtype(dt, trace.api)


def lift(x: Any, dtype: DType | None = None) -> Tracer:
    """Any operand as a tracer: tracers as they are (converted if `dtype` differs), concrete
    arrays and NumPy scalars as strong constants, Python scalars as weak constants."""
    if isinstance(x, Tracer):
        return x if dtype is None or x.node.dtype is dtype else convert(x, dtype)
    trace = trace_of(x)
    if isinstance(x, Scalar):
        if dtype is None:
            dtype = result_dtype(x)
        try:
            return trace.constant(np.array(x, dtype=dtype.np), dtype, weak=True)
        except OverflowError as e:
            raise trace.error(str(e)) from None
    c = trace.constant(concrete_array(x))  # NumPy makes a list a (strongly typed) array
    return c if dtype is None or c.node.dtype is dtype else convert(c, dtype)


def strong(x: Tracer) -> Tracer:
    """`x` typed strongly, as a NumPy array is."""
    return Tracer(x.trace, x.node, False) if x.weak else x


def _holds_tracer(x: Any) -> bool:
    return isinstance(x, Tracer) or (
        isinstance(x, list | tuple) and any(_holds_tracer(v) for v in x)
    )


def convert(x: Tracer, dtype: DType) -> Tracer:
    if x.node.dtype is dtype:
        return x
    return x.trace.emit(Op.CONVERT, [x], x.weak, dtype=dtype)


def broadcast(x: Tracer, shape: tuple[int, ...]) -> Tracer:
    if x.shape == tuple(shape):
        return x
    try:
        broadcast_shapes(x.shape, shape)
        if len(x.shape) > len(shape):
            raise ShapeError("")
    except ShapeError:
        raise x.trace.error(f"cannot broadcast {list(x.shape)} to {list(shape)}") from None
    return x.trace.emit(Op.BROADCAST_IN_DIM, [x], x.weak, shape=tuple(shape))


def write_into(target: Tracer, value: Tracer, what: str) -> Tracer:
    """Store `value`, the result of `what`, into `target` as NumPy's in-place operators and
    `out=` do: it must broadcast to the target's shape and cast to its dtype within the kind
    (float to int is refused, f64 to f32 allowed)."""
    if not np.can_cast(value.dtype, target.dtype, "same_kind"):
        raise target.trace.error(
            f"cannot cast the output of {what} from {value.dtype!r} to {target.dtype!r} with "
            "casting rule 'same_kind' (as NumPy)"
        )
    try:
        fits = broadcast_shapes(value.shape, target.shape) == target.shape
    except ShapeError:
        fits = False
    if not fits:
        raise target.trace.error(
            f"non-broadcastable output operand with shape {target.shape} doesn't match the "
            f"broadcast shape {value.shape}"
        )
    target.assign(broadcast(convert(value, target.node.dtype), target.shape))
    return target


def broadcast_all(xs: Sequence[Tracer]) -> list[Tracer]:
    trace = trace_of(*xs)
    try:
        shape = broadcast_shapes(*(x.shape for x in xs))
    except ShapeError as e:
        raise trace.error(str(e)) from None
    return [broadcast(x, shape) for x in xs]


def elementwise(op: Op, *xs: Any, dtype: DType | None = None) -> Tracer:
    """`op` over operands promoted to a common dtype (or `dtype`) and broadcast together."""
    target = dtype or result_dtype(*xs)
    weak = all(is_weak(x) for x in xs)
    operands = broadcast_all([lift(x, target) for x in xs])
    trace = trace_of(*xs)
    return trace.emit(op, operands, weak)


def reshape(x: Tracer, shape: tuple[int, ...]) -> Tracer:
    if x.shape == tuple(shape):
        return x
    return x.trace.emit(Op.RESHAPE, [x], x.weak, shape=tuple(shape))


def transpose(x: Tracer, perm: Sequence[int]) -> Tracer:
    perm = tuple(perm)
    if perm == tuple(range(x.ndim)):
        return x
    return x.trace.emit(Op.TRANSPOSE, [x], x.weak, perm=perm)


def full(trace: Trace, shape: tuple[int, ...], value: Any, dtype: DType) -> Tracer:
    return broadcast(trace.constant(np.array(value, dtype=dtype.np), dtype), shape)


def normalize_axes(axis: Any, ndim: int, api: str) -> tuple[int, ...]:
    """NumPy's axis argument (None, an int, or a sequence) as sorted non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, Tracer):
        axis.__index__()
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(np.atleast_1d(axis))
    out = []
    for a in axes:
        if isinstance(a, bool | np.bool_) or not isinstance(a, int | np.integer):
            raise TraceError(f"{api}: axis must be an integer, got {a!r}", user_location())
        if not -ndim <= a < ndim:
            raise TraceError(
                f"{api}: axis {a} is out of bounds for an array of rank {ndim}", user_location()
            )
        out.append(int(a) % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise TraceError(f"{api}: repeated axis in {axis}", user_location())
    return tuple(sorted(out))
