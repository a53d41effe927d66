"""What AutoGraph needs to know about a statement's names: which it reads, which it rebinds,
which arrays it writes in place, and whether anything in it keeps it Python (a `break`, an
attribute store). `FunctionFacts.site` sums these up as the `Site` of a `for`, `while` or
`if` about to be converted.

Everything here reads the function's syntax tree (Python's `ast`) without changing it, and
never descends into nested functions, lambdas or classes: only the jitted function itself is
converted.
"""

from __future__ import annotations

import ast
import linecache
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from compiler.autograph_site import Site
from ir.diagnostics import Loc

__all__ = [
    "SCOPES",
    "Effects",
    "FunctionFacts",
    "all_args",
    "effects",
    "parameters",
    "target_names",
    "walk",
]

SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_LOOPS = (ast.For, ast.While, ast.AsyncFor)
# calls that change an object in place: `x.fill(0)`, `items.append(v)`, `np.copyto(x, y)`
_MUTATING_METHODS = frozenset(
    {"fill", "put", "sort", "resize", "itemset", "partition", "setfield"}  # ndarray's
    | {"append", "extend", "insert", "pop", "remove", "clear"}  # list's, and
    | {"update", "setdefault", "add", "discard", "popitem"}  # dict's and set's
)
_MUTATING_FUNCTIONS = frozenset(
    ["copyto", "put", "put_along_axis", "fill_diagonal", "place", "putmask", "at"]
)
# names whose calls see the frame they are called from, which a nested function changes
_FRAME_NAMES = frozenset({"super", "locals", "vars", "eval", "exec", "dir"})
# statements a nested function cannot hold for the function around it, as the user wrote them
_UNSUPPORTED = {
    ast.Return: "return",
    ast.Raise: "raise",
    ast.Global: "global",
    ast.Nonlocal: "nonlocal",
    ast.Delete: "del",
    ast.Yield: "yield",
    ast.YieldFrom: "yield from",
    ast.Await: "await",
    ast.NamedExpr: ":=",
    ast.Match: "match",
    ast.AsyncFor: "async for",
    ast.AsyncWith: "async with",
    ast.Break: "break",  # unless it belongs to a loop inside the statement
    ast.Continue: "continue",
}


def walk(nodes: Iterable[ast.AST], skip: type | tuple[type, ...] = SCOPES) -> Iterator[ast.AST]:
    """Every node under `nodes`, not descending into nested scopes (or `skip`)."""
    stack = list(nodes)[::-1]
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, skip):
            stack.extend(reversed(list(ast.iter_child_nodes(node))))


def target_names(target: ast.AST) -> Iterator[str]:
    """The names an assignment target binds: `x`, `a, (b, *c)`."""
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for t in target.elts:
            yield from target_names(t)
    elif isinstance(target, ast.Starred):
        yield from target_names(target.value)


def all_args(args: ast.arguments) -> list[ast.arg]:
    extra = [a for a in (args.vararg, args.kwarg) if a is not None]
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *extra]


def parameters(args: ast.arguments) -> list[str]:
    """Positional, keyword-only, *args, **kwargs: the order of a code object's variables."""
    return [a.arg for a in all_args(args)]


def _root(node: ast.AST) -> ast.AST:
    """The variable under `x[i].attr`, `*x`."""
    while isinstance(node, ast.Subscript | ast.Attribute | ast.Starred):
        node = node.value
    return node


@dataclass
class Effects:
    """What a list of statements does to names, without entering nested scopes."""

    assigned: set[str] = field(default_factory=set)  # rebound: x = ..., x += ..., for x in
    mutated: set[str] = field(default_factory=set)  # changed in place: x[i] = v, x.fill(0)
    blocker: str | None = None  # the first statement that prevents conversion

    def block(self, what: str, node: ast.AST) -> None:
        if self.blocker is None:
            self.blocker = f"`{what}` (line {getattr(node, 'lineno', '?')})"


def effects(stmts: list[ast.stmt]) -> Effects:
    out = Effects()
    for node in walk(stmts):
        statement = _UNSUPPORTED.get(type(node))
        inner = isinstance(node, ast.Break | ast.Continue) and _inside_inner_loop(stmts, node)
        if statement is not None and not inner:
            out.block(statement, node)
        if isinstance(node, ast.Call):
            _mutating_call(node, out.mutated)
        for t in _binds(node, out.assigned):
            out.assigned.update(target_names(t))
            for part in walk([t]):
                if not isinstance(part, ast.Attribute | ast.Subscript) or not isinstance(
                    part.ctx, ast.Store
                ):
                    continue
                root = _root(part)
                if isinstance(part, ast.Subscript) and isinstance(root, ast.Name):
                    out.mutated.add(root.id)
                else:  # an attribute store, or an item store into no variable
                    out.block(f"{ast.unparse(part)} = ...", part)
    return out


def _binds(node: ast.AST, names: set[str]) -> list[ast.AST]:
    """The assignment targets of `node`; names it binds otherwise (import, def) go to `names`."""
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, ast.AugAssign | ast.AnnAssign | ast.For):
        return [node.target]
    if isinstance(node, ast.withitem) and node.optional_vars is not None:
        return [node.optional_vars]
    if isinstance(node, ast.ExceptHandler) and node.name:
        names.add(node.name)
    elif isinstance(node, ast.Import | ast.ImportFrom):
        names.update((a.asname or a.name).split(".")[0] for a in node.names)
    elif isinstance(node, ast.FunctionDef | ast.ClassDef):
        names.add(node.name)
    return []


def _inside_inner_loop(stmts: list[ast.stmt], target: ast.AST) -> bool:
    """Whether `target` (a break or continue) belongs to a loop nested in `stmts`."""
    for node in walk(stmts):
        if isinstance(node, _LOOPS) and any(n is target for n in walk(node.body)):
            return True
    return False


def _mutating_call(call: ast.Call, mutated: set[str]) -> None:
    func = call.func
    if isinstance(func, ast.Attribute):
        root = _root(func.value)  # self.items.append(v) changes self
        if func.attr in _MUTATING_METHODS and isinstance(root, ast.Name):
            mutated.add(root.id)
        if func.attr in _MUTATING_FUNCTIONS and call.args:
            root = _root(call.args[0])
            if isinstance(root, ast.Name):
                mutated.add(root.id)
    for kw in call.keywords:
        if kw.arg == "out":
            values = kw.value.elts if isinstance(kw.value, ast.Tuple) else [kw.value]
            mutated.update(n.id for v in values if isinstance(n := _root(v), ast.Name))


def _bound_in(scope: ast.AST) -> set[str]:
    """Names a lambda, function or comprehension binds for its own body."""
    if isinstance(scope, ast.Lambda | ast.FunctionDef | ast.AsyncFunctionDef):
        return set(parameters(scope.args))
    if isinstance(scope, _COMPREHENSIONS):
        return {n for g in scope.generators for n in target_names(g.target)}
    return set()


def _loads(nodes: Iterable[ast.AST], hidden: frozenset[str] = frozenset()) -> Counter[str]:
    """Names read under `nodes` (closures included), less those an inner scope rebinds."""
    out: Counter[str] = Counter()
    for node in nodes:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load | ast.Del):
            if node.id not in hidden:
                out[node.id] += 1
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] += 1
        inner = hidden | _bound_in(node) if isinstance(node, SCOPES + _COMPREHENSIONS) else hidden
        out += _loads(ast.iter_child_nodes(node), frozenset(inner))
    return out


def _mentions(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(node))


def _defined_first(stmts: list[ast.stmt], name: str) -> bool:
    """Whether the first statement of `stmts` that mentions `name` assigns it without reading
    it (so a loop body does not need the value from before the iteration)."""
    for stmt in stmts:
        if not _mentions(stmt, name):
            continue
        if isinstance(stmt, ast.Assign):
            simple = all(isinstance(t, ast.Name | ast.Tuple | ast.List) for t in stmt.targets)
            names = {n for t in stmt.targets for n in target_names(t)}
            reads = any(_mentions(t, name) for t in stmt.targets if not isinstance(t, ast.Name))
            return simple and name in names and not reads and not _mentions(stmt.value, name)
        if isinstance(stmt, ast.For) and isinstance(stmt.target, ast.Name):
            return stmt.target.id == name and not _mentions(stmt.iter, name)
        if isinstance(stmt, ast.If) and stmt.orelse and not _mentions(stmt.test, name):
            return _defined_first(stmt.body, name) and _defined_first(stmt.orelse, name)
        return False
    return False


class FunctionFacts:
    """The jitted function's variables, to judge each statement in it against."""

    def __init__(self, func: ast.FunctionDef, file: str, freevars: Iterable[str]) -> None:
        self.func = func
        self.file = file
        self.declared = {
            n for node in walk(func.body) if isinstance(node, ast.Global | ast.Nonlocal)
            for n in node.names
        }  # fmt: skip
        own = set(parameters(func.args)) | effects(func.body).assigned | set(freevars)
        self.locals = own - self.declared - {"ag__"}

    def site(
        self,
        kind: str,
        node: ast.For | ast.While | ast.If,
        at: ast.expr,
        blocks: list[list[ast.stmt]],
        target: str | None = None,
    ) -> Site:
        """The `Site` of `node`, whose bounds or condition is `at`, whose statement lists
        are `blocks` (a loop's body; an if's body and else), binding `target` (a loop
        variable) each iteration."""
        effect = effects([s for block in blocks for s in block])
        assigned = (effect.assigned & self.locals) - {target}
        mutated = effect.mutated & self.locals
        inside = set(_loads([node])) | assigned | mutated
        reasons = [effect.blocker]
        reasons += [
            f"assigning '{name}', declared global or nonlocal"
            for name in sorted((effect.assigned | effect.mutated) & self.declared)
        ]
        if kind != "if" and node.orelse:
            reasons.append(f"the loop's `else:` (line {node.orelse[0].lineno})")
        reasons += [
            f"`{name}()` (line {node.lineno}), which needs the function's own frame"
            for name in sorted(inside & _FRAME_NAMES)
        ]
        if target is not None and self.read_outside(node, target):
            reasons.append(f"the loop variable '{target}' being used after the loop")
        names = inside - {target, "ag__", "__class__"} - _FRAME_NAMES
        later = {n for n in assigned if self.read_outside(node, n)}
        exposed = {n for n in assigned if not all(_defined_first(b, n) for b in blocks)}
        if isinstance(node, ast.While):
            exposed |= set(_loads([node.test])) & assigned
        line = linecache.getline(self.file, at.lineno) or None
        return Site(
            kind=kind,
            loc=Loc(self.file, at.lineno, at.col_offset + 1, line),
            blocker=next((r for r in reasons if r is not None), None),
            params=tuple(sorted(names)),
            outputs=tuple(sorted(later | mutated)),
            assigned=frozenset(assigned),
            mutated=frozenset(mutated),
            exposed=frozenset(exposed),
            objects=frozenset(effect.mutated - self.locals - {"ag__"}),
            globals=frozenset(names - self.locals),
        )

    def read_outside(self, node: ast.AST, name: str) -> bool:
        """Whether the function may read `name` outside `node`, other than in a loop that
        assigns it before reading it."""

        def visit(nodes: Iterable[ast.AST]) -> bool:
            for n in nodes:
                if n is node:
                    continue
                if any(m is node for m in ast.walk(n)):  # around `node`: look inside
                    if visit(ast.iter_child_nodes(n)):
                        return True
                    continue
                if isinstance(n, ast.For | ast.While):
                    bound = isinstance(n, ast.For) and name in target_names(n.target)
                    if bound or _defined_first(n.body, name):
                        head = n.iter if isinstance(n, ast.For) else n.test
                        if _loads([head, *n.orelse])[name]:
                            return True
                        continue
                if _loads([n])[name]:
                    return True
            return False

        return visit(self.func.body)
