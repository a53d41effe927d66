"""Tracing loop and branch bodies into nested functions of a `while`, `for` or `cond` op (for
`tessel.lax` and AutoGraph).

A body is traced in a `NestedTrace`: its own `FunctionBuilder`, whose parameters are the
loop's carried values. A value of an enclosing trace that the body uses (a closure over a
traced array, or a loop bound) is taken in as one more parameter, a *capture*: the loop
carries it too, and the body returns it unchanged (JAX's closure conversion). NumPy arrays a
body uses become constants inside it, as in any traced function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from compiler import pytree
from compiler.tracing import (
    Scalar,
    Trace,
    TraceError,
    Tracer,
    convert,
    current_trace,
    lift,
    user_location,
)
from ir.dtypes import DType
from ir.graph import Function, Node
from ir.ops import ELEMENTWISE, MOVEMENT, Op
from ir.types import TensorType

_KIND_SCALARS: dict[str, Scalar] = {"b": False, "i": 0, "u": 0, "f": 0.0, "c": 0j}


class NestedTrace(Trace):
    """A loop or branch body traced inside `parent`; takes in the parent's values it uses.

    What belongs to the body is decided by node (`owned`), not by the tracer holding it: the
    indexing code wraps results in tracers of the array's trace, which may be the parent's.
    """

    def __init__(self, name: str, parent: Trace) -> None:
        super().__init__(name)
        self.parent = parent
        self.api = parent.api
        self.owned: set[Node] = set()
        self.captured: dict[Node, Node] = {}  # the parent's node -> this body's parameter

    def new_param(self, name: str, type: TensorType) -> Node:
        node = self.builder.param(name, type)
        self.owned.add(node)
        return node

    def emit(self, op: Op, srcs: Sequence[Tracer], weak: bool = False, **attrs: Any) -> Tracer:
        out = super().emit(op, srcs, weak, **attrs)
        self.owned.add(out.node)
        return out

    def constant(self, value: Any, dtype: DType | None = None, weak: bool = False) -> Tracer:
        out = super().constant(value, dtype, weak)
        self.owned.add(out.node)
        return out

    def node_of(self, x: Tracer) -> Node | None:
        node = x.node
        if node in self.owned:
            return node
        assert self.parent is not None
        outer = self.parent.node_of(x)  # taken in by the parent first, if from further out
        if outer is None:
            return None
        param = self.captured.get(outer)
        if param is None:
            param = self.new_param(f"captured_{len(self.captured)}", outer.type)
            self.captured[outer] = param
        return param

    def build(
        self, carried: int, results: Sequence[Node], captures: Sequence[Node], body: bool
    ) -> Function:
        """The function of the first `carried` parameters and then `captures` (the parent's
        nodes, in the loop's order), returning `results` and, for a loop body, the captures
        unchanged."""
        params = list(self.builder.params[:carried])
        extra: list[Node] = []
        for outer in captures:
            node = self.captured.get(outer)
            if node is None:  # taken in by the loop's other function only
                node = self.new_param(f"captured_{len(params) + len(extra)}", outer.type)
            extra.append(node)
        self.builder.params = params + extra
        return self.builder.build([*results, *(extra if body else [])])


def loop(
    api: str,
    init: Sequence[Tracer],
    cond: Callable[[list[Tracer]], Any],
    body: Callable[[list[Tracer]], list[Any]],
    names: Sequence[str],
    weak: Sequence[bool] = (),
) -> list[Tracer]:
    """Emit `while` over the carried values `init` (tracers of the current trace) and return
    their final values. `cond(params)` returns the condition and `body(params)` the new
    values (tracers, already of the carried types), each given fresh parameter tracers."""
    outer = current_trace()
    assert outer is not None
    types = [t.node.type for t in init]
    traced = [
        _nested(api, outer, "cond", lambda p: [cond(p)], names, types, weak),
        _nested(api, outer, "body", body, names, types, weak),
    ]
    captures = list(dict.fromkeys(n for nested, _ in traced for n in nested.captured))
    (c, c_nodes), (b, b_nodes) = traced
    operands = [*init, *(Tracer(outer, n) for n in captures)]
    with outer.operation(api):
        w = outer.emit(
            Op.WHILE,
            operands,
            cond=c.build(len(init), c_nodes, captures, body=False),
            body=b.build(len(init), b_nodes, captures, body=True),
        )
        return [outer.emit(Op.GET, [w], index=k) for k in range(len(init))]


def counted_loop(
    api: str,
    bounds: tuple[Tracer, Tracer],
    init: Sequence[Tracer],
    body: Callable[[list[Tracer]], list[Any]],
    names: Sequence[str],
    weak: Sequence[bool] = (),
) -> list[Tracer]:
    """Emit `for` from `bounds[0]` up to `bounds[1]` (integer scalars of one type) over the
    carried values `init`, and return their final values. `body(params)` is given the index
    and the carried values as parameter tracers and returns the new carried values."""
    outer = current_trace()
    assert outer is not None
    types = [bounds[0].node.type, *(t.node.type for t in init)]
    nested, nodes = _nested(api, outer, "body", body, names, types, weak)
    captures = list(nested.captured)
    if not nodes and not captures:
        return []  # nothing carried: nothing computed
    with outer.operation(api):
        w = outer.emit(
            Op.FOR,
            [*bounds, *init, *(Tracer(outer, n) for n in captures)],
            body=nested.build(len(types), nodes, captures, body=True),
        )
        return [outer.emit(Op.GET, [w], index=k) for k in range(len(init))]


def _nested(
    api: str,
    outer: Trace,
    which: str,
    fn: Callable[[list[Tracer]], list[Any]],
    names: Sequence[str],
    types: Sequence[TensorType],
    weak: Sequence[bool],
) -> tuple[NestedTrace, list[Node]]:
    """`fn` traced as a nested function of parameters `names` of `types`; its result nodes."""
    nested = NestedTrace(which, outer)
    weak = list(weak) or [False] * len(types)
    params = [
        Tracer(nested, nested.new_param(n, t), w)
        for n, t, w in zip(names, types, weak, strict=True)
    ]
    with nested.active():
        return nested, [node_in(nested, v, api) for v in fn(params)]


def node_in(trace: NestedTrace, value: Any, api: str) -> Node:
    node = trace.node_of(value) if isinstance(value, Tracer) else lift(value).node
    if node is None:
        raise TraceError(
            f"{api}: a traced value from another call was used inside the body (kept in a "
            "global or an attribute?); pass it in instead",
            user_location(),
        )
    return node


# --- carried types ------------------------------------------------------------------------


def spec_of(x: Any) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """A carried value's type: a tracer's, or NumPy's for a concrete value (a Python scalar
    is a 0-d array of NumPy's default dtype for it)."""
    if isinstance(x, Tracer):
        return x.shape, x.dtype
    arr = np.asarray(x)
    return arr.shape, arr.dtype


def describe(spec: tuple[tuple[int, ...], np.dtype[Any]]) -> str:
    shape, dtype = spec
    try:
        name = DType.from_numpy(dtype).value
    except ValueError:
        name = str(dtype)
    return f"{name}[{','.join(map(str, shape))}]"


def weakly_fits(value: Any, dtype: np.dtype[Any]) -> bool:
    """A Python scalar (or a value traced from one) that NumPy would keep in `dtype`."""
    if isinstance(value, Scalar):
        stand_in = value
    elif isinstance(value, Tracer) and value.weak:
        stand_in = _KIND_SCALARS.get(value.dtype.kind, 0.0)
    else:
        return False
    try:
        return bool(np.result_type(dtype, stand_in) == dtype)
    except (TypeError, OverflowError):
        return False


def check_tree(api: str, what: str, tree: pytree.TreeDef, want: pytree.TreeDef, of: str) -> None:
    if tree != want:
        raise TraceError(
            f"{api}: {what} must have the structure of {of}: it is {tree}, {of} is {want}",
            user_location(),
        )


def mismatch(api: str, what: str, path: str, got: str, want: str, of: str) -> TraceError:
    """`path` is where the value sits in the tree, relative to its root (`[0]`, or empty)."""
    where = f" at {path}" if path else ""
    return TraceError(
        f"{api}: {what} is {got}{where}, but {of}{path} is {want}: a carried value must keep "
        "its shape and dtype (convert it with .astype, or start from a value of the type the "
        "body computes)",
        user_location(),
    )


def conform_traced(
    api: str, what: str, values: list[Any], types: list[TensorType], paths: list[str], of: str
) -> list[Tracer]:
    """Body results as tracers of the carried types, or an error naming the first that differs."""
    out = []
    for v, t, path in zip(values, types, paths, strict=True):
        x = v if isinstance(v, Tracer) else None
        if x is None:
            if not isinstance(v, Scalar):
                v = np.asarray(v)
            x = lift(v)
        if x.shape != t.shape or x.node.dtype is not t.dtype:
            if x.shape != t.shape or not weakly_fits(v, t.dtype.np):
                raise mismatch(api, what, path, describe(spec_of(x)), str(t), of)
            x = convert(x, t.dtype)
        out.append(x)
    return out


def conform_eager(
    api: str,
    what: str,
    values: list[Any],
    specs: list[tuple[tuple[int, ...], np.dtype[Any]]],
    paths: list[str],
    of: str,
) -> list[np.ndarray]:
    """The same check on NumPy values: each as an array of the carried type."""
    out = []
    for v, (shape, dtype), path in zip(values, specs, paths, strict=True):
        arr = np.asarray(v)
        if arr.shape != shape or arr.dtype != dtype:
            if arr.shape != shape or not weakly_fits(v, dtype):
                raise mismatch(
                    api, what, path, describe(spec_of(arr)), describe((shape, dtype)), of
                )
            arr = arr.astype(dtype)
        out.append(arr)
    return out


def as_bool(api: str, pred: Any, what: str) -> Tracer:
    """A scalar predicate as a bool[] tracer (nonzero is true)."""
    x = lift(pred if isinstance(pred, Tracer) else np.asarray(pred))
    if x.shape != ():
        raise TraceError(f"{api}: {what} must be a scalar, got {x.aval}", user_location())
    if x.node.dtype is DType.BOOL:
        return x
    zero = x.trace.constant(np.zeros((), x.dtype), x.node.dtype)
    return x.trace.emit(Op.NE, [x, zero])


def carried_tracer(value: Any) -> Tracer:
    """An initial carried value: a tracer made strong (as NumPy's array of it would be), a
    concrete one as a constant (Python scalars as 0-d arrays of NumPy's default dtype)."""
    if isinstance(value, Tracer):
        return value if not value.weak else Tracer(value.trace, value.node, False)
    return lift(np.asarray(value))


def dtype_of(x: Any) -> DType:
    return DType.from_numpy(spec_of(x)[1])


def branch(
    api: str, go: Tracer, sides: Sequence[tuple[NestedTrace, Sequence[Node]]]
) -> list[Tracer]:
    """A `cond` on `go` between two traced sides (each returning its nodes, of the same
    types): the values of the true side if `go` holds, of the false side otherwise."""
    outer = current_trace()
    assert outer is not None
    captures = list(dict.fromkeys(n for side, _ in sides for n in side.captured))
    (t, t_nodes), (f, f_nodes) = sides
    if not t_nodes:
        return []
    with outer.operation(api):
        c = outer.emit(
            Op.COND,
            [go, *(Tracer(outer, n) for n in captures)],
            true_branch=t.build(0, t_nodes, captures, body=False),
            false_branch=f.build(0, f_nodes, captures, body=False),
        )
        return [outer.emit(Op.GET, [c], index=k) for k in range(len(t_nodes))]


# A branch made only of these ops cannot fail and costs about what a select does, so `cond`
# computes both branches and selects (XLA's conditional-to-select) instead of looping once
# over the taken one: a `while` per branch costs a kernel launch each time it runs.
_SPECULATABLE = (ELEMENTWISE | MOVEMENT | {Op.CONSTANT, Op.IOTA}) - {Op.CONCATENATE, Op.PAD}
SPECULATE_MAX_NODES = 16
SPECULATE_MAX_ELEMENTS = 64


def speculatable(branch: NestedTrace) -> bool:
    """Whether computing `branch` when it is not taken is safe and cheap."""
    body = branch.builder.body
    return len(body) <= SPECULATE_MAX_NODES and all(
        n.op in _SPECULATABLE and n.type.size <= SPECULATE_MAX_ELEMENTS for n in body
    )


def inline(branch: NestedTrace, results: Sequence[Node]) -> list[Tracer]:
    """`branch`'s nodes computed in the current trace (the parent's values in place of the
    branch's parameters); the values of `results`."""
    outer = current_trace()
    assert outer is not None
    mapping = {param: outer_node for outer_node, param in branch.captured.items()}
    for node in branch.builder.body:
        srcs = [Tracer(outer, mapping[s]) for s in node.srcs]
        mapping[node] = outer.emit(node.op, srcs, **dict(node.attrs.items())).node
    return [Tracer(outer, mapping.get(r, r)) for r in results]  # or a value from outside


def pair(api: str, out: Any) -> tuple[Any, Any]:
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise TraceError(
            f"{api}: f must return a pair (carry, y), got {type(out).__name__}", user_location()
        )
    return out[0], out[1]


def predicate_error(api: str, value: Any) -> TraceError:
    return TraceError(
        f"{api}: cond_fun must return a boolean scalar, got {describe(spec_of(value))}",
        user_location(),
    )
