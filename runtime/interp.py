"""The reference interpreter: runs a function node by node through `REFERENCE`.

It is the oracle every pass and backend is compared against, so it favours being obviously
right over being fast: one environment from node to value, filled in schedule order, each node
evaluated by its op's row of the reference table and checked against the node's static type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.builder import FunctionBuilder
from ir.diagnostics import IndexOutOfRange, InputError
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import CONTROL, Op
from ir.types import TensorType, TupleType
from ir.verify import describe
from runtime.inputs import bind_inputs
from runtime.reference import REFERENCE


class InterpreterError(RuntimeError):
    """The interpreter or a reference rule broke its own contract; a bug in tessel, not input."""


def _type_of(value: np.ndarray) -> str:
    try:
        return str(TensorType(tuple(value.shape), DType.from_numpy(value.dtype)))
    except ValueError:
        return f"{value.dtype}{list(value.shape)}"


def _matches(value: np.ndarray, t: TensorType) -> bool:
    if isinstance(t, TupleType):  # runtime/reference.py::tuple_value
        return (
            value.dtype == object
            and value.shape == (len(t.elements),)
            and all(_matches(v, e) for v, e in zip(value, t.elements, strict=True))
        )
    return value.shape == t.shape and value.dtype == t.dtype.np


def evaluate_node(node: Node, args: Sequence[np.ndarray]) -> np.ndarray:
    """The value of `node` given the values of its sources, as a new array of `node.type`."""
    rule = REFERENCE.get(node.op)
    if rule is None:
        raise InterpreterError(f"'{describe(node)}' has no reference rule (parameters are inputs)")
    if len(args) != len(node.srcs):
        raise InterpreterError(
            f"'{describe(node)}' has {len(node.srcs)} operands but got {len(args)} values"
        )
    for i, (value, src) in enumerate(zip(args, node.srcs, strict=True)):
        if not _matches(value, src.type):
            raise InterpreterError(
                f"'{describe(node)}': operand {i} should be {src.type}, got {_type_of(value)}"
            )
    out = rule(node.attrs, list(args), node.type)
    if not _matches(out, node.type):
        raise InterpreterError(
            f"reference rule for {node.op.value} produced {_type_of(out)}, "
            f"but '{describe(node)}' has type {node.type}"
        )
    return out


def run_function(
    fn: Function, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> list[np.ndarray]:
    """Run `fn` on arguments matched to its parameters; returns one new array per result."""
    env: dict[Node, np.ndarray] = {}
    for p, value in zip(fn.params, bind_inputs(fn, args, kwargs), strict=True):
        env[p] = value
    for node in fn.body:
        missing = [s for s in node.srcs if s not in env]
        if missing:
            raise InterpreterError(
                f"in @{fn.name}: '{describe(node)}' uses '{describe(missing[0])}' before it is "
                "computed (the schedule is invalid; run the verifier)"
            )
        try:
            env[node] = evaluate_node(node, [env[s] for s in node.srcs])
        except IndexOutOfRange as e:  # the user's mistake: located at the op, as code reports it
            if node.op in CONTROL:  # located at the op inside the loop already
                raise
            raise IndexOutOfRange(f"{e.message} (in {node.op.value})", node.loc) from None
        except Exception as e:
            e.add_note(f"while evaluating '{describe(node)}' in @{fn.name}")
            raise
    return _results(fn, env)


def _results(fn: Function, env: dict[Node, np.ndarray]) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for r in fn.results:
        if r not in env:
            raise InterpreterError(f"in @{fn.name}: result '{describe(r)}' is never computed")
        value = env[r]
        # Body values are fresh already; a returned parameter is the caller's own array, and a
        # value returned twice must not come back as two names for one buffer.
        if r.op is Op.PARAMETER or any(value is v for v in out):
            value = value.copy()
        out.append(value)
    return out


def run_module(
    module: Module,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    entry: str | None = None,
) -> list[np.ndarray]:
    """Run the module's entry function, or the function named `entry`."""
    name = entry if entry is not None else module.entry
    functions = module.by_name()
    if name not in functions:
        known = ", ".join(f"@{f}" for f in functions)
        raise InputError(f"the module has no function @{name} (it has {known})")
    return run_function(functions[name], args, kwargs)


def run_op(op: Op, *operands: np.ndarray, **attrs: Any) -> np.ndarray:
    """Build a one-op function over parameters typed like `operands` and run it.

    A convenience for tests and interactive use; the op goes through the builder, so its
    attributes are checked and normalized exactly as in a graph file.
    """
    fb = FunctionBuilder(op.value)
    params = [
        fb.param(f"x{i}", TensorType(tuple(a.shape), DType.from_numpy(a.dtype)))
        for i, a in enumerate(operands)
    ]
    node = fb.op(op, *params, **attrs)
    return run_function(fb.build([node]), operands)[0]
