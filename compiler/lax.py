"""`tessel.lax`: JAX's structured control flow (`fori_loop`, `while_loop`, `cond`, `scan`,
`select`) for @jit functions.

Under @jit, each function the user passes is traced once, on fresh tracers for the carried
values, into the nested functions of one `while` op (compiler.control_flow): the loop is not
unrolled, so a long loop compiles as fast as a short one. Outside @jit, on NumPy values, each
runs eagerly in Python with the same checks, as JAX's do.

Carried values keep their shape and dtype: a Python scalar in an initial value becomes a 0-d
array of NumPy's default dtype for it (`0.0` is float64, `1` is int64, `True` is bool), what
JAX's weakly typed scalars turn into here; a Python scalar (or a value traced from Python
scalars only) that a body returns is cast to the carried dtype when NumPy would keep that dtype
(`acc + 1` on an int32 carry). The loop index of `fori_loop` with Python int bounds is a weakly
typed int32 (int64 when a bound does not fit), like the Python int it is eagerly; with array
bounds, the bounds' promoted integer dtype.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from compiler import lax_eager as eager
from compiler import pytree
from compiler.control_flow import (
    NestedTrace,
    as_bool,
    branch,
    carried_tracer,
    check_tree,
    conform_traced,
    counted_loop,
    describe,
    inline,
    loop,
    node_in,
    pair,
    predicate_error,
    spec_of,
    speculatable,
    weakly_fits,
)
from compiler.tracing import (
    Scalar,
    TraceError,
    Tracer,
    broadcast_all,
    convert,
    current_trace,
    full,
    lift,
    user_location,
)
from ir.dtypes import DType
from ir.ops import Op
from ir.types import TensorType

__all__ = ["cond", "fori_loop", "scan", "select", "while_loop"]

Tree = Any


def fori_loop(
    lower: Any, upper: Any, body_fun: Callable[[Any, Tree], Tree], init_val: Tree
) -> Tree:
    """`for i in range(lower, upper): val = body_fun(i, val)`; returns the final `val`."""
    api = "fori_loop"
    dtype, weak = _index_type(api, lower, upper)
    leaves, tree = pytree.flatten(init_val)
    paths = pytree.leaf_paths(tree, "")
    if current_trace() is None:
        return eager.fori_loop(lower, upper, body_fun, leaves, tree, paths, dtype, weak)
    index = DType.from_numpy(dtype)
    init = [carried_tracer(v) for v in leaves]
    types = [t.node.type for t in init]
    bounds = (_index_value(lower, index), _index_value(upper, index))

    def body(p: list[Tracer]) -> list[Tracer]:
        new = body_fun(p[0], pytree.unflatten(tree, p[1:]))
        return _traced_result(api, "body_fun's result", new, tree, types, paths)

    names = ["i", *_names("val", paths)]
    weak_index = [weak] + [False] * len(init)
    return pytree.unflatten(tree, counted_loop(api, bounds, init, body, names, weak_index))


def while_loop(
    cond_fun: Callable[[Tree], Any], body_fun: Callable[[Tree], Tree], init_val: Tree
) -> Tree:
    """`while cond_fun(val): val = body_fun(val)`; returns the final `val`."""
    api = "while_loop"
    leaves, tree = pytree.flatten(init_val)
    paths = pytree.leaf_paths(tree, "")
    if current_trace() is None:
        return eager.while_loop(cond_fun, body_fun, leaves, tree, paths)
    init = [carried_tracer(v) for v in leaves]
    types = [t.node.type for t in init]

    def cond(p: list[Tracer]) -> Tracer:
        return _traced_predicate(api, cond_fun(pytree.unflatten(tree, p)))

    def body(p: list[Tracer]) -> list[Tracer]:
        new = body_fun(pytree.unflatten(tree, p))
        return _traced_result(api, "body_fun's result", new, tree, types, paths)

    return pytree.unflatten(tree, loop(api, init, cond, body, _names("val", paths)))


def cond(
    pred: Any, true_fun: Callable[..., Tree], false_fun: Callable[..., Tree], *operands: Any
) -> Tree:
    """`true_fun(*operands) if pred else false_fun(*operands)`: only the taken branch runs.

    `pred` is a scalar bool or number (nonzero is true). Under @jit both branches are traced
    and must return the same structure and types."""
    api = "cond"
    if current_trace() is None:
        p = np.asarray(pred)
        if p.shape != () or p.dtype.kind not in "biuf":
            raise TraceError(
                f"{api}: pred must be a scalar bool or number, got {describe(spec_of(p))}",
                user_location(),
            )
        return (true_fun if p else false_fun)(*operands)
    go = as_bool(api, pred, "pred")
    outer = current_trace()
    assert outer is not None
    branches = []
    for name, fn in (("true_fun", true_fun), ("false_fun", false_fun)):
        nested = NestedTrace(name, outer)
        with nested.active():
            leaves, tree = pytree.flatten(fn(*operands))
            vals = [_as_tracer(v) for v in leaves]
        branches.append((nested, tree, vals))
    (tt, t_tree, t_vals), (ft, f_tree, f_vals) = branches
    if t_tree != f_tree:
        raise TraceError(
            f"{api}: true_fun and false_fun must return the same structure: {t_tree} from "
            f"true_fun, {f_tree} from false_fun",
            user_location(),
        )
    for k, path in enumerate(pytree.leaf_paths(t_tree, "")):
        a, b = t_vals[k], f_vals[k]
        if a.shape == b.shape and a.dtype == b.dtype:
            continue
        if a.shape == b.shape and weakly_fits(a, b.dtype):
            with tt.active():
                t_vals[k] = convert(a, b.node.dtype)
        elif a.shape == b.shape and weakly_fits(b, a.dtype):
            with ft.active():
                f_vals[k] = convert(b, a.node.dtype)
        else:
            where = f" at {path}" if path else ""
            raise TraceError(
                f"{api}: true_fun and false_fun must return the same types, but true_fun "
                f"returns {describe(spec_of(a))}{where} and false_fun {describe(spec_of(b))}",
                user_location(),
            )
    t_nodes = [node_in(tt, v, api) for v in t_vals]
    f_nodes = [node_in(ft, v, api) for v in f_vals]
    if speculatable(tt) and speculatable(ft):
        with outer.operation(api):
            chosen = [
                outer.emit(Op.SELECT, broadcast_all([go, a, b]))
                for a, b in zip(inline(tt, t_nodes), inline(ft, f_nodes), strict=True)
            ]
        return pytree.unflatten(t_tree, chosen)
    return pytree.unflatten(t_tree, branch(api, go, [(tt, t_nodes), (ft, f_nodes)]))


def scan(
    f: Callable[[Tree, Tree], tuple[Tree, Tree]],
    init: Tree,
    xs: Tree = None,
    length: int | None = None,
    reverse: bool = False,
) -> tuple[Tree, Tree]:
    """`carry, y = f(carry, x)` for each `x` of `xs` along axis 0 (from the end if `reverse`);
    returns the final carry and the `y`s stacked along a new axis 0 (in `xs`'s order)."""
    api = "scan"
    xs_leaves, xs_tree = pytree.flatten(xs)
    n = _scan_length(api, xs_leaves, length)
    leaves, tree = pytree.flatten(init)
    paths = pytree.leaf_paths(tree, "")
    order = range(n - 1, -1, -1) if reverse else range(n)
    if current_trace() is None:
        return eager.scan(f, leaves, tree, paths, xs_leaves, xs_tree, n, order)
    outer = current_trace()
    assert outer is not None
    xs_t = [_as_tracer(x if isinstance(x, Tracer) else np.asarray(x)) for x in xs_leaves]
    init_t = [carried_tracer(v) for v in leaves]
    types = [t.node.type for t in init_t]
    index = DType.I32 if n < 2**31 else DType.I64
    i_type = TensorType((), index)

    # The types of the ys, to preallocate their stack: f traced once on its own first.
    probe = NestedTrace("probe", outer)
    with probe.active():
        i = Tracer(probe, probe.new_param("i", i_type))
        carry = [Tracer(probe, probe.new_param(f"c{k}", t)) for k, t in enumerate(types)]
        x = pytree.unflatten(xs_tree, _slices(xs_t, i, n))
        _, y = pair(api, f(pytree.unflatten(tree, carry), x))
        y_leaves, y_tree = pytree.flatten(y)
        y_types = [TensorType(v.shape, v.node.dtype) for v in map(_as_tracer, y_leaves)]
    y_paths = pytree.leaf_paths(y_tree, "")
    count = len(types)

    def body(p: list[Tracer]) -> list[Tracer]:
        i, stacks = p[0], p[1 + count :]
        at = i
        if reverse:
            last = i.trace.constant(np.array(n - 1), index)
            at = i.trace.emit(Op.SUB, [last, i])
        x = pytree.unflatten(xs_tree, _slices(xs_t, at, n))
        new, y = pair(api, f(pytree.unflatten(tree, p[1 : 1 + count]), x))
        vals = _traced_result(api, "f's carry", new, tree, types, paths, "init")
        leaves, t = pytree.flatten(y)
        check_tree(api, "f's output y", t, y_tree, "the first trace's y")
        for stack, v in zip(
            stacks,
            conform_traced(api, "f's output y", leaves, y_types, y_paths, "the first trace's y"),
            strict=True,
        ):
            if n:  # with no iterations, the stacks stay empty (and at would be out of range)
                stack[at] = v
        return [*vals, *stacks]

    bounds = (outer.constant(np.array(0), index), outer.constant(np.array(n), index))
    stacks = [full(outer, (n, *t.shape), 0, t.dtype) for t in y_types]
    names = ["i", *_names("carry", paths), *_names("ys", y_paths)]
    out = counted_loop(api, bounds, [*init_t, *stacks], body, names)
    return pytree.unflatten(tree, out[:count]), pytree.unflatten(y_tree, out[count:])


def select(pred: Any, on_true: Any, on_false: Any) -> Any:
    """Elementwise `on_true` where `pred` holds, else `on_false`: NumPy's `np.where`."""
    return np.where(pred, on_true, on_false)


# --- helpers ------------------------------------------------------------------------------


def _index_type(api: str, lower: Any, upper: Any) -> tuple[np.dtype[Any], bool]:
    """The loop index's dtype, and whether it is weakly typed (both bounds Python ints)."""
    stand_ins: list[Any] = []
    for name, b in (("lower", lower), ("upper", upper)):
        if isinstance(b, int) and not isinstance(b, bool):
            stand_ins.append(b)
            continue
        shape, dtype = spec_of(b)
        if shape != () or dtype.kind not in "iu":
            raise TraceError(
                f"{api}: {name} must be an integer scalar, got {describe((shape, dtype))}",
                user_location(),
            )
        stand_ins.append(0 if isinstance(b, Tracer) and b.weak else dtype)
    if all(isinstance(b, int) and not isinstance(b, bool) for b in (lower, upper)):
        fits = all(-(2**31) <= b < 2**31 for b in (lower, upper))
        return np.dtype(np.int32 if fits else np.int64), True
    try:
        dtype = np.result_type(*stand_ins)
    except (TypeError, OverflowError) as e:
        raise TraceError(f"{api}: lower and upper: {e}", user_location()) from None
    return dtype, all(isinstance(s, int) for s in stand_ins)


def _index_value(bound: Any, index: DType) -> Tracer:
    if isinstance(bound, Tracer):
        return convert(bound, index)
    return lift(np.asarray(bound).astype(index.np))


def _names(prefix: str, paths: Sequence[str]) -> list[str]:
    return [re.sub(r"\W+", "_", prefix + p).strip("_") for p in paths]


def _slices(xs: list[Tracer], at: Tracer, n: int) -> list[Tracer]:
    """Each of `xs` at index `at` of axis 0; zeros of that type when there is no index (a
    loop of no iterations still traces its body)."""
    if n == 0:
        return [full(at.trace, x.shape[1:], 0, x.node.dtype) for x in xs]
    return [x[at] for x in xs]


def _as_tracer(v: Any) -> Tracer:
    """A value a traced function returned, as a tracer (Python scalars stay weakly typed)."""
    if isinstance(v, Tracer):
        return v
    return lift(v if isinstance(v, Scalar) else np.asarray(v))


def _traced_result(
    api: str,
    what: str,
    new: Tree,
    tree: pytree.TreeDef,
    types: list[TensorType],
    paths: list[str],
    of: str = "init_val",
) -> list[Tracer]:
    leaves, t = pytree.flatten(new)
    check_tree(api, what, t, tree, of)
    return conform_traced(api, what, leaves, types, paths, of)


def _traced_predicate(api: str, r: Any) -> Tracer:
    x = _as_tracer(r)
    if x.shape != () or x.node.dtype is not DType.BOOL:
        raise predicate_error(api, x)
    return x


def _scan_length(api: str, xs_leaves: list[Any], length: int | None) -> int:
    lengths = set()
    for x in xs_leaves:
        shape = spec_of(x)[0]
        if not shape:
            raise TraceError(
                f"{api}: each leaf of xs needs an axis 0 to scan over", user_location()
            )
        lengths.add(shape[0])
    if length is not None:
        lengths.add(int(length))
    if len(lengths) != 1:
        what = sorted(lengths)
        raise TraceError(
            f"{api}: "
            + (
                "xs is empty and no length was given"
                if not what
                else f"the leaves of xs and length disagree on the length: {what}"
            ),
            user_location(),
        )
    return lengths.pop()
