"""AutoGraph for `@jit`: Python loops and branches on traced values become loop ops.

Tracing runs Python control flow as Python: `for i in range(n)` unrolls into n copies of its
body, and an `if` on a traced value cannot be decided. `convert(fn)` rewrites the source of
the jitted function (Python's `ast`), once per function, so that each `for ... in range(...)`,
`while` and `if` asks at trace time what its bounds or condition are
(`compiler.autograph_runtime`):

- a `for` over a static range of at most `MAX_UNROLL` steps, a `while` or an `if` whose
  condition is a Python value, and any loop whose body cannot take a traced index (`range(i)`,
  `x[:i]`), run as Python, exactly as without conversion;
- otherwise the statement becomes `lax.fori_loop`, `lax.while_loop` or `lax.cond` over the
  variables it assigns (names, and arrays it updates in place), with its body turned into a
  nested function of those variables.

The converted function keeps the user's file name and line numbers, globals and closure
cells. Statements that cannot be converted (`break`, `continue`, `return`, `yield`,
`global`/`nonlocal`, attribute stores) stay Python, and say so when their condition is traced.
Only the jitted function itself is converted, not the functions it calls.

The modules, from the top: this one finds the function's source, checks that it is the
source of the code being run, and caches the result; `autograph_rewrite` rewrites the
statements, judging each with `autograph_analysis`; the runtime (`autograph_runtime`, with
`autograph_loops` and `autograph_branches` over `autograph_state`) runs them.
"""

from __future__ import annotations

import ast
import copy
import inspect
import textwrap
import threading
import types
from collections.abc import Callable
from typing import Any

from compiler.autograph_analysis import all_args, parameters, walk
from compiler.autograph_rewrite import Converter, function_def, locate
from compiler.autograph_runtime import MAX_UNROLL, Runtime

__all__ = ["MAX_UNROLL", "convert"]

_lock = threading.Lock()
# each function's code -> its converted code and runtime, or None: run it as it is
_converted: dict[types.CodeType, tuple[types.CodeType, Runtime] | None] = {}


def convert(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with its control flow converted, or `fn` itself when there is nothing to convert
    or its source is not available (a builtin, a lambda, code typed into a REPL)."""
    if not isinstance(fn, types.FunctionType):
        return fn
    code = fn.__code__
    with _lock:
        if code not in _converted:
            try:
                _converted[code] = _convert_code(code)
            except (OSError, TypeError, SyntaxError, ValueError):
                _converted[code] = None  # source missing or not matching the code: as it is
        done = _converted[code]
    if done is None:
        return fn
    new_code, runtime = done
    cells = dict(zip(code.co_freevars, fn.__closure__ or (), strict=True))
    cells["ag__"] = types.CellType(runtime)
    closure = tuple(cells[name] for name in new_code.co_freevars)
    new = types.FunctionType(new_code, fn.__globals__, fn.__name__, fn.__defaults__, closure)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__qualname__ = fn.__qualname__
    new.__module__ = fn.__module__
    return new


def _convert_code(code: types.CodeType) -> tuple[types.CodeType, Runtime] | None:
    if code.co_name == "<lambda>" or code.co_flags & (
        inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
    ):
        return None
    func = _source_tree(code)
    if func is None or not any(
        isinstance(n, ast.For | ast.While | ast.If) for n in walk(func.body)
    ):
        return None
    func.decorator_list = []
    func.returns = None
    for a in all_args(func.args):
        a.annotation = None
    func.args.defaults = []  # the original function's defaults are set on the new one
    func.args.kw_defaults = [None] * len(func.args.kwonlyargs)
    if _fingerprint(_compiled(copy.deepcopy(func), code)) != _fingerprint(code):
        return None  # not the source of this code (the file was edited since it was loaded)
    converter = Converter(func, code)
    func.body = converter.statements(func.body)
    if not converter.sites:
        return None
    runtime = Runtime(tuple(converter.sites), ast.unparse(func))
    return _compiled(func, code, runtime), runtime


def _source_tree(code: types.CodeType) -> ast.FunctionDef | None:
    """The syntax tree of `code`'s function, at its place in its file; None when the source
    found is not that function's (the file changed since import) or uses private names,
    which the class around it would mangle."""
    lines, first = inspect.getsourcelines(code)
    dedented = textwrap.dedent("".join(lines))
    indent = len(lines[0]) - len(dedented.splitlines(keepends=True)[0])
    tree = ast.parse(dedented)
    func = tree.body[0] if tree.body else None
    if not isinstance(func, ast.FunctionDef) or func.name != code.co_name:
        return None
    ast.increment_lineno(tree, first - 1)
    for node in ast.walk(tree):
        for attr in ("col_offset", "end_col_offset"):
            if getattr(node, attr, None) is not None:
                setattr(node, attr, getattr(node, attr) + indent)
    if parameters(func.args) != _code_parameters(code) or _mangled(func):
        return None
    return func


def _code_parameters(code: types.CodeType) -> list[str]:
    """The parameters in `parameters`' order: positional, keyword-only, *args, **kwargs."""
    count = code.co_argcount + code.co_kwonlyargcount
    count += bool(code.co_flags & inspect.CO_VARARGS) + bool(code.co_flags & inspect.CO_VARKEYWORDS)
    return list(code.co_varnames[:count])


def _mangled(func: ast.FunctionDef) -> bool:
    def private(name: str) -> bool:
        return name.startswith("__") and not name.endswith("__")

    return any(
        (isinstance(n, ast.Name) and private(n.id))
        or (isinstance(n, ast.Attribute) and private(n.attr))
        for n in ast.walk(func)
    )


def _fingerprint(code: types.CodeType) -> tuple[Any, ...]:
    """What the same source compiles to whatever the module around it: names, constants and
    lines (not the bytecode, which depends on the module's imports)."""
    consts = tuple(
        _fingerprint(c) if isinstance(c, types.CodeType) else (type(c).__name__, repr(c))
        for c in code.co_consts
    )
    lines = sorted({n for _, _, n in code.co_lines() if n is not None} - {code.co_firstlineno})
    names = (code.co_varnames, code.co_freevars, code.co_cellvars, sorted(set(code.co_names)))
    return (*names, consts, tuple(lines))


def _compiled(func: ast.FunctionDef, code: types.CodeType, runtime: Any = None) -> types.CodeType:
    """The code of `func` compiled where the original was: inside a function whose variables
    are the original's closure variables (and `ag__`, the runtime)."""
    factory = function_def(
        "ag__factory", ["ag__", *code.co_freevars], [func], ast.Name(func.name, ast.Load())
    )
    locate(factory, func)
    module = ast.Module(body=[factory], type_ignores=[])
    namespace: dict[str, Any] = {}
    exec(compile(module, code.co_filename, "exec", dont_inherit=True), namespace)
    made = namespace["ag__factory"](runtime, *([None] * len(code.co_freevars)))
    new: types.CodeType = made.__code__
    return new
