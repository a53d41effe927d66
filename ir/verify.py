"""The IR verifier: SSA order, acyclicity, types and attributes agree with the op table.

Run after every pass in tests (and with --verify-each), so a pass that leaves invalid IR fails
at that pass. Errors name the function, the node and what is wrong.
"""

from __future__ import annotations

import re
from typing import NoReturn

import networkx as nx

from ir.attrs import show_value
from ir.diagnostics import ShapeError, VerifyError
from ir.graph import Function, Module, Node
from ir.ops import Op
from ir.typerules import infer
from ir.types import TupleType

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def describe(node: Node) -> str:
    name = f"%{node.name} = " if node.name else ""
    return f"{name}{node.op.value} : {node.type}"


def _fail(fn: Function, node: Node | None, msg: str) -> NoReturn:
    where = f"in @{fn.name}" + (f", at '{describe(node)}'" if node is not None else "")
    raise VerifyError(f"{where}: {msg}", node.loc if node is not None else fn.loc)


def verify_function(fn: Function) -> None:
    if not fn.results:
        _fail(fn, None, "a function must return at least one value")
    defined = _check_params(fn)
    _check_acyclic(fn)
    body = set(fn.body)
    for node in fn.body:
        if node.op is Op.PARAMETER:
            _fail(fn, node, "parameters belong in the parameter list, not the body")
        if node in defined:
            _fail(fn, node, "the node appears twice in the schedule")
        for i, s in enumerate(node.srcs):
            if s not in defined:
                where = "is used before its definition" if s in body else "is not defined here"
                _fail(fn, node, f"operand {i} ('{describe(s)}') {where}")
        _check_type(fn, node)
        for value in node.attrs.values():
            if isinstance(value, Function):  # a nested body: its own scope, checked alike
                verify_function(value)
        defined.add(node)
    for r in fn.results:
        if r not in defined:
            _fail(fn, None, f"result '{describe(r)}' is not defined in the function")
        if isinstance(r.type, TupleType):
            _fail(fn, r, "a function returns tensors; read each element with get")


def _check_params(fn: Function) -> set[Node]:
    names: set[str] = set()
    for p in fn.params:
        if p.op is not Op.PARAMETER or p.srcs:
            _fail(fn, p, "parameter list holds a node that is not a parameter")
        if not p.name or not IDENT.fullmatch(p.name) or p.name in names:
            _fail(fn, p, f"parameter name {p.name!r} is missing, invalid or repeated")
        problem = p.type.size_problem()
        if problem is not None:
            _fail(fn, p, problem)
        names.add(p.name)
    return set(fn.params)


def _check_acyclic(fn: Function) -> None:
    """A cycle would also break schedule order; report it as what it is."""
    graph = fn.dependency_graph()  # edges run from operand to user
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    users = [v for _, v in reversed(cycle)]
    chain = " uses ".join(f"'{describe(n)}'" for n in [*users, users[0]])
    _fail(fn, users[0], f"operand cycle: {chain}")


def _check_type(fn: Function, node: Node) -> None:
    try:
        expected, attrs = infer(node.op, [s.type for s in node.srcs], node.attrs)
    except ShapeError as e:
        _fail(fn, node, str(e))
    if expected != node.type:
        _fail(fn, node, f"type is {node.type} but the {node.op.value} rule gives {expected}")
    for key, value in attrs.items():
        if key not in node.attrs:
            _fail(fn, node, f"attribute '{key}' is missing (canonical value {show_value(value)})")
        if node.attrs[key] != value:
            _fail(
                fn,
                node,
                f"attribute '{key}' is {show_value(node.attrs[key])}, "
                f"not in canonical form {show_value(value)}",
            )


def verify_module(module: Module) -> None:
    seen: set[str] = set()
    for fn in module.functions:
        if fn.name in seen:
            raise VerifyError(f"function @{fn.name} is defined twice", fn.loc)
        seen.add(fn.name)
        verify_function(fn)
    if module.entry not in seen:
        raise VerifyError(f"entry function @{module.entry} does not exist")
