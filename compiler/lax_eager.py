"""`tessel.lax` outside @jit: each function run eagerly on NumPy values, with the checks its
traced form makes (carried values keep their shape and dtype), on copies of the initial values
so that a body writing into its carry leaves the caller's arrays alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from compiler import pytree
from compiler.control_flow import check_tree, conform_eager, pair, predicate_error, spec_of

Tree = Any


def fori_loop(
    lower: Any,
    upper: Any,
    body_fun: Callable[[Any, Tree], Tree],
    leaves: list[Any],
    tree: pytree.TreeDef,
    paths: list[str],
    dtype: np.dtype[Any],
    weak: bool,
) -> Tree:
    specs = [spec_of(v) for v in leaves]
    val = pytree.unflatten(tree, [np.array(v) for v in leaves])  # the loop's own copies
    for i in range(int(lower), int(upper)):
        new = body_fun(i if weak else dtype.type(i), val)  # a weak index: a Python int
        val = result("fori_loop", "body_fun's result", new, tree, specs, paths)
    return val


def while_loop(
    cond_fun: Callable[[Tree], Any],
    body_fun: Callable[[Tree], Tree],
    leaves: list[Any],
    tree: pytree.TreeDef,
    paths: list[str],
) -> Tree:
    api = "while_loop"
    specs = [spec_of(v) for v in leaves]
    val = pytree.unflatten(tree, [np.array(v) for v in leaves])
    while predicate(api, cond_fun(val)):
        val = result(api, "body_fun's result", body_fun(val), tree, specs, paths)
    return val


def result(
    api: str,
    what: str,
    new: Tree,
    tree: pytree.TreeDef,
    specs: list[tuple[tuple[int, ...], np.dtype[Any]]],
    paths: list[str],
    of: str = "init_val",
) -> Tree:
    leaves, t = pytree.flatten(new)
    check_tree(api, what, t, tree, of)
    return pytree.unflatten(tree, conform_eager(api, what, leaves, specs, paths, of))


def predicate(api: str, r: Any) -> bool:
    arr = np.asarray(r)
    if arr.shape != () or arr.dtype != np.bool_:
        raise predicate_error(api, arr)
    return bool(arr)


def scan(
    f: Callable[[Tree, Tree], tuple[Tree, Tree]],
    leaves: list[Any],
    tree: pytree.TreeDef,
    paths: list[str],
    xs_leaves: list[Any],
    xs_tree: pytree.TreeDef,
    n: int,
    order: range,
) -> tuple[Tree, Tree]:
    api = "scan"
    specs = [spec_of(v) for v in leaves]
    carry = pytree.unflatten(tree, [np.array(v) for v in leaves])
    xs_arrays = [np.asarray(x) for x in xs_leaves]
    rows: dict[int, list[np.ndarray]] = {}
    y_tree: pytree.TreeDef | None = None
    y_specs: list[tuple[tuple[int, ...], np.dtype[Any]]] = []
    for k in order:
        carry, y = pair(api, f(carry, pytree.unflatten(xs_tree, [a[k] for a in xs_arrays])))
        carry = result(api, "f's carry", carry, tree, specs, paths, "init")
        y_leaves, t = pytree.flatten(y)
        if y_tree is None:
            y_tree, y_specs = t, [spec_of(v) for v in y_leaves]
        check_tree(api, "f's output y", t, y_tree, "the first iteration's y")
        y_paths = pytree.leaf_paths(y_tree, "")
        rows[k] = conform_eager(
            api, "f's output y", y_leaves, y_specs, y_paths, "the first iteration's y"
        )
    if y_tree is None:  # no iteration: f runs once on zeros, for the types of the ys only
        probe = pytree.unflatten(tree, [np.array(v) for v in leaves])
        x = pytree.unflatten(xs_tree, [np.zeros(a.shape[1:], a.dtype) for a in xs_arrays])
        with np.errstate(all="ignore"):
            _, y = pair(api, f(probe, x))
        y_leaves, y_tree = pytree.flatten(y)
        y_specs = [spec_of(v) for v in y_leaves]
    stacked = [
        np.stack([rows[k][j] for k in range(n)]) if n else np.zeros((0, *shape), dtype)
        for j, (shape, dtype) in enumerate(y_specs)
    ]
    return carry, pytree.unflatten(y_tree, stacked)
