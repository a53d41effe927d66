"""AutoGraph's rewrite of one function's syntax tree: each `for ... in range(...)`, `while`
and `if` becomes code that asks the runtime (`ag__`, a `compiler.autograph_runtime.Runtime`)
at trace time whether to run it as Python or as a loop op or a cond. A statement converted
`k`-th (`Site` number k) becomes:

    def ag__body_k(i, a, b): ...; return (a, b)        # for i in range(n): ...
    ag__k = ag__.for_(k, range, (n,), ag__body_k)       # for i in xs: ag__.for_in(k, xs, ...)
    if ag__k.python:
        for i in ag__k.iterable: ...                    # the original body, as Python
    else:
        (a, b) = ag__k.values

    def ag__cond_k(a, b): return test                   # while test: ...
    def ag__body_k(a, b): ...; return (a, b)
    ag__k = ag__.while_(k, ag__cond_k, ag__body_k)
    while ag__k.test(test): ...                         # Python until the test is traced
    if ag__k.converted:
        (a, b) = ag__k.values

    ag__pk = test                                       # if test: ... else: ...
    def ag__true_k(a, b): ...; return (a,)
    def ag__false_k(a, b): ...; return (a,)
    (a,) = ag__.if_(k, ag__pk, ag__true_k, ag__false_k)

A `for` over anything but `range(...)` runs as Python unless what it iterates over is a long
traced array. A statement that cannot be converted (`Site.blocker`) stays as written, its
condition or range checked by `ag__.check` or `ag__.range_` so that a traced one says why.
The new nodes take the location of the statement they replace, so tracebacks point at the
user's lines.
"""

from __future__ import annotations

import ast
import copy
import sys
import types
from collections.abc import Iterable
from typing import Any, TypeGuard

from compiler.autograph_analysis import SCOPES, FunctionFacts, walk
from compiler.autograph_site import Site

__all__ = ["Converter", "function_def", "locate"]


def _name(id: str, store: bool = False) -> ast.Name:
    return ast.Name(id, ast.Store() if store else ast.Load())


def _call(method: str, *args: ast.expr) -> ast.Call:
    """`ag__.method(*args)`."""
    return ast.Call(ast.Attribute(_name("ag__"), method, ast.Load()), list(args), [])


def _attribute(value: str, attr: str) -> ast.Attribute:
    return ast.Attribute(_name(value), attr, ast.Load())


def _tuple(names: Iterable[str], store: bool = False) -> ast.Tuple:
    return ast.Tuple([_name(n, store) for n in names], ast.Store() if store else ast.Load())


def function_def(
    name: str, params: list[str], body: list[ast.stmt], result: ast.expr
) -> ast.FunctionDef:
    """`def name(*params): *body; return result`."""
    extra: dict[str, Any] = {"type_params": []} if sys.version_info >= (3, 12) else {}
    args = ast.arguments(
        posonlyargs=[],
        args=[ast.arg(n) for n in params],
        vararg=None,
        kwonlyargs=[],
        kw_defaults=[],
        kwarg=None,
        defaults=[],
    )
    return ast.FunctionDef(
        name=name,
        args=args,
        body=[*body, ast.Return(result)],
        decorator_list=[],
        returns=None,
        type_comment=None,
        **extra,
    )


def locate(node: ast.AST, like: ast.AST) -> ast.AST:
    """Give `node` and everything under it without a location the location of `like`."""
    for n in ast.walk(node):
        if "lineno" in n._attributes and not hasattr(n, "lineno"):
            n.lineno, n.col_offset = like.lineno, like.col_offset  # type: ignore[attr-defined]
            n.end_lineno = getattr(like, "end_lineno", like.lineno)  # type: ignore[attr-defined]
            n.end_col_offset = getattr(like, "end_col_offset", like.col_offset)  # type: ignore[attr-defined]
    return node


def _located(stmts: list[ast.stmt], like: ast.stmt) -> list[ast.stmt]:
    for s in stmts:
        locate(s, like)
    return stmts


def _unpack(result: str, names: tuple[str, ...]) -> list[ast.stmt]:
    """`(a, b) = result.values`, binding a converted statement's outputs."""
    if not names:
        return [ast.Pass()]
    return [ast.Assign([_tuple(names, store=True)], _attribute(result, "values"))]


def _checked(
    k: int, node: ast.While | ast.If, body: list[ast.stmt], orelse: list[ast.stmt]
) -> list[ast.stmt]:
    """A `while` or `if` that stays Python, its condition checked by `ag__.check`, which
    says why it is not converted when the condition is traced."""
    checked = _call("check", ast.Constant(k), node.test)
    return _located([type(node)(checked, body, orelse)], node)


def _is_range(it: ast.expr) -> TypeGuard[ast.Call]:
    """`range(...)` with one to three positional arguments."""
    return (
        isinstance(it, ast.Call)
        and isinstance(it.func, ast.Name)
        and it.func.id == "range"
        and 1 <= len(it.args) <= 3
        and not it.keywords
        and not any(isinstance(a, ast.Starred) for a in it.args)
    )


class Converter:
    """Rewrites one function's statements, recording a `Site` per converted statement."""

    def __init__(self, func: ast.FunctionDef, code: types.CodeType) -> None:
        self.facts = FunctionFacts(func, code.co_filename, code.co_freevars)
        self.sites: list[Site] = []

    def statements(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in stmts:
            if isinstance(stmt, ast.For):
                out += self.for_(stmt)
            elif isinstance(stmt, ast.While):
                out += self.while_(stmt)
            elif isinstance(stmt, ast.If):
                out += self.if_(stmt)
            else:
                out.append(self.children(stmt))
        return out

    def children(self, stmt: ast.stmt) -> ast.stmt:
        """`stmt` with the statement lists inside it (with, try) converted."""
        if isinstance(stmt, SCOPES):
            return stmt  # only the jitted function itself is converted
        for name in ("body", "orelse", "finalbody"):
            block = getattr(stmt, name, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
                setattr(stmt, name, self.statements(block))
        for handler in getattr(stmt, "handlers", []):
            handler.body = self.statements(handler.body)
        return stmt

    def _begin(
        self,
        kind: str,
        node: ast.For | ast.While | ast.If,
        at: ast.expr,
        target: str | None = None,
    ) -> tuple[int, Site, list[ast.stmt], list[ast.stmt]]:
        """The statement's number and `Site` (judged on the statement as written), and its
        body and `else:` with the statements inside them converted."""
        blocks = [node.body, node.orelse] if kind == "if" else [node.body]
        site = self.facts.site(kind, node, at, blocks, target)
        self.sites.append(site)
        return len(self.sites) - 1, site, self.statements(node.body), self.statements(node.orelse)

    def for_(self, node: ast.For) -> list[ast.stmt]:
        """`for i in range(...)`, and `for x in array` (a long traced array's elements)."""
        it = node.iter
        if not isinstance(node.target, ast.Name):
            return [self.children(node)]
        target = node.target.id
        k, site, body, orelse = self._begin("for", node, it, target)
        over_range = _is_range(it)
        args = ast.Tuple(list(it.args), ast.Load()) if _is_range(it) else it
        if site.blocker is not None:
            checked = _call("range_", ast.Constant(k), _name("range"), args) if over_range else it
            return _located([ast.For(_name(target, True), checked, body, orelse, None)], node)
        result = f"ag__{k}"
        fn = function_def(f"ag__body_{k}", [target, *site.params], body, _tuple(site.params))
        if over_range:
            call = _call("for_", ast.Constant(k), _name("range"), args, _name(fn.name))
        else:
            call = _call("for_in", ast.Constant(k), args, _name(fn.name))
        iterable = _attribute(result, "iterable")
        python = ast.For(_name(target, True), iterable, copy.deepcopy(body), [], None)
        return _located(
            [
                fn,
                ast.Assign([_name(result, True)], call),
                ast.If(_attribute(result, "python"), [python], _unpack(result, site.outputs)),
            ],
            node,
        )

    def while_(self, node: ast.While) -> list[ast.stmt]:
        k, site, body, orelse = self._begin("while", node, node.test)
        if site.blocker is not None:
            return _checked(k, node, body, orelse)
        result = f"ag__{k}"
        params = list(site.params)
        cond = function_def(f"ag__cond_{k}", params, [], copy.deepcopy(node.test))
        fn = function_def(f"ag__body_{k}", params, body, _tuple(site.params))
        call = _call("while_", ast.Constant(k), _name(cond.name), _name(fn.name))
        test = ast.Call(_attribute(result, "test"), [node.test], [])
        return _located(
            [
                cond,
                fn,
                ast.Assign([_name(result, True)], call),
                ast.While(test, copy.deepcopy(body), []),
                ast.If(_attribute(result, "converted"), _unpack(result, site.outputs), []),
            ],
            node,
        )

    def if_(self, node: ast.If) -> list[ast.stmt]:
        k, site, body, orelse = self._begin("if", node, node.test)
        if site.blocker is not None:
            return _checked(k, node, body, orelse)
        pred = f"ag__p{k}"
        test = ast.Assign([_name(pred, True)], node.test)
        params = list(site.params)
        true = function_def(f"ag__true_{k}", params, body, _tuple(site.outputs))
        false = function_def(f"ag__false_{k}", params, orelse, _tuple(site.outputs))
        call = _call("if_", ast.Constant(k), _name(pred), _name(true.name), _name(false.name))
        if site.outputs:
            bind: ast.stmt = ast.Assign([_tuple(site.outputs, store=True)], call)
        else:
            bind = ast.Expr(call)
        if not any(isinstance(n, SCOPES) for n in walk(node.body + node.orelse, ())):
            return _located([test, true, false, bind], node)  # a Python value picks a branch
        # a closure made in a branch sees the function's variables: Python runs it as it is
        python = ast.If(_name(pred), copy.deepcopy(body), copy.deepcopy(orelse))
        concrete = ast.UnaryOp(ast.Not(), _call("traced", _name(pred)))
        return _located([test, ast.If(concrete, [python], [true, false, bind])], node)
