"""Parses graph files into a Module. Every error is located: `file:line:col`, the line, a caret."""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterator
from contextlib import ExitStack
from functools import cache
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ir.attrs import WeightRef
from ir.builder import FunctionBuilder, constant, matmul_attrs
from ir.diagnostics import GraphSyntaxError, GraphTypeError, Loc, TesselError
from ir.dtypes import ALL_NAMES, DType
from ir.graph import Function, Module, Node
from ir.ops import Op, by_mnemonic
from ir.types import TensorType

SUGAR = {"matmul": Op.DOT_GENERAL}  # spellings that build another op
_NUMBER_WORDS = {"inf": math.inf, "nan": math.nan, "true": True, "false": False}


@cache
def _lark() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text()
    return Lark(grammar, start="module", parser="lalr", propagate_positions=True)


_TERMINAL_NAMES = {
    "VALUE": "a value name like %x",
    "FUNC_NAME": "a function name like @main",
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": 'a "string"',
    "RETURN": "'return'",
    "ENTRY": "'entry'",
    "$END": "end of file",
}


def _terminal(name: str) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    try:
        term = _lark().get_terminal(name)
        return f"'{term.pattern.value}'"
    except KeyError:
        return name


def _syntax_message(err: UnexpectedInput) -> str:
    if isinstance(err, UnexpectedCharacters):
        return f"unexpected character {err.char!r}"
    expected = sorted({_terminal(t) for t in getattr(err, "expected", ()) or ()})
    got = "end of file"
    if isinstance(err, UnexpectedToken) and err.token.type != "$END":
        got = repr(str(err.token))
    msg = f"unexpected {got}"
    if got == "end of file" and "'}'" in expected:
        return msg + ": unterminated block (missing '}')"
    if expected:
        shown = expected if len(expected) <= 6 else [*expected[:6], "..."]
        msg += "; expected " + " or ".join(shown)
    return msg


class _FileParser:
    def __init__(self, text: str, filename: str, base_dir: Path) -> None:
        self.text = text
        self.lines = text.splitlines()
        self.filename = filename
        self.base_dir = base_dir
        self.stack = ExitStack()
        self.npz: dict[Path, Any] = {}

    # -- locations and errors --

    def loc(self, line: int, col: int) -> Loc:
        src = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return Loc(self.filename, line, col, src)

    def at(self, item: Token | Tree[Any]) -> Loc:
        if isinstance(item, Token):
            return self.loc(item.line or 1, item.column or 1)
        return self.loc(item.meta.line, item.meta.column)

    def error(self, item: Token | Tree[Any], msg: str, cls: type[TesselError] = GraphTypeError) -> TesselError:
        return cls(msg, self.at(item))

    # -- module and functions --

    def parse(self) -> Module:
        try:
            tree = _lark().parse(self.text)
        except UnexpectedInput as e:
            line, col = e.line, e.column
            if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
                line = max(len(self.lines), 1)
                col = len(self.lines[-1]) + 1 if self.lines else 1
            raise GraphSyntaxError(_syntax_message(e), self.loc(line, col)) from None
        with self.stack:
            return self.module(tree)

    def module(self, tree: Tree[Any]) -> Module:
        funcs: list[Function] = []
        seen: dict[str, int] = {}
        entries: list[tuple[str, Token]] = []
        for f in tree.children:
            entry_tok, name_tok = f.children[0], f.children[1]
            name = str(name_tok)[1:]
            if name in seen:
                raise self.error(name_tok, f"function @{name} is already defined at line {seen[name]}")
            seen[name] = name_tok.line or 0
            if entry_tok is not None:
                entries.append((name, entry_tok))
            funcs.append(self.function(f, name))
        if not funcs:
            raise GraphSyntaxError("the file defines no function", self.loc(1, 1))
        if len(entries) > 1:
            raise self.error(entries[1][1], f"several entry functions (@{entries[0][0]} is one)")
        if entries:
            entry = entries[0][0]
        elif "main" in seen:
            entry = "main"
        elif len(funcs) == 1:
            entry = funcs[0].name
        else:
            raise GraphSyntaxError(
                "no entry function: mark one with 'entry func @name' or name it @main",
                self.at(tree.children[0]),
            )
        return Module(tuple(funcs), entry)

    def function(self, tree: Tree[Any], name: str) -> Function:
        _, name_tok, *rest = tree.children
        ret = rest[-1]
        stmts = [c for c in rest if isinstance(c, Tree) and c.data in ("op_stmt", "literal_stmt")]
        params = [c for c in rest if isinstance(c, Tree) and c.data == "param"]
        declared = next((c for c in rest if isinstance(c, Tree) and c.data == "result_types"), None)
        self._check_order(stmts, params)
        fb = FunctionBuilder(name, self.at(name_tok))
        env: dict[str, Node] = {}
        where: dict[str, int] = {}
        for p in params:
            tok, type_tree = p.children
            self._define(tok, where)
            env[str(tok)] = fb.param(str(tok)[1:], self.type(type_tree), self.at(tok))
        for s in stmts:
            self._define(s.children[0], where)
            env[str(s.children[0])] = self.statement(s, fb, env)
        results = [self._use(tok, env) for tok in ret.children[1:]]
        fn = fb.build(results)
        if declared is not None:
            types = [self.type(t) for t in declared.children if t is not None]
            got = [r.type for r in results]
            if types != got:
                raise self.error(
                    declared,
                    f"@{name} declares results ({', '.join(map(str, types))}) but returns "
                    f"({', '.join(map(str, got))})",
                )
        return fn

    def _check_order(self, stmts: list[Tree[Any]], params: list[Tree[Any]]) -> None:
        """Reject uses before definition, naming a cycle when there is one."""
        defined_at = {str(s.children[0]): i for i, s in enumerate(stmts)}
        deps = nx.DiGraph()
        forward = False
        for i, s in enumerate(stmts):
            for tok in self._operand_tokens(s):
                if str(tok) in defined_at:
                    deps.add_edge(str(s.children[0]), str(tok))
                    forward |= defined_at[str(tok)] >= i
        if not forward:
            return
        try:
            cycle = nx.find_cycle(deps)
        except nx.NetworkXNoCycle:
            cycle = None
        for i, s in enumerate(stmts):
            for tok in self._operand_tokens(s):
                if defined_at.get(str(tok), -1) < i:
                    continue
                if cycle is not None:
                    names = [u for u, _ in cycle] + [cycle[0][0]]
                    raise self.error(tok, "cycle: " + " uses ".join(names))
                line = stmts[defined_at[str(tok)]].children[0].line
                raise self.error(tok, f"{tok} is used before its definition (at line {line})")

    @staticmethod
    def _operand_tokens(stmt: Tree[Any]) -> Iterator[Token]:
        if stmt.data == "op_stmt":
            yield from (t for t in stmt.children[2:] if isinstance(t, Token) and t.type == "VALUE")

    def _define(self, tok: Token, where: dict[str, int]) -> None:
        name = str(tok)
        if name in where:
            raise self.error(tok, f"redefinition of {name} (first defined at line {where[name]})")
        where[name] = tok.line or 0

    def _use(self, tok: Token, env: dict[str, Node]) -> Node:
        if str(tok) not in env:
            close = difflib.get_close_matches(str(tok), list(env), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise self.error(tok, f"use of undefined value {tok}{hint}")
        return env[str(tok)]

    # -- statements --

    def statement(self, s: Tree[Any], fb: FunctionBuilder, env: dict[str, Node]) -> Node:
        value_tok, op_tok = s.children[0], s.children[1]
        name = str(value_tok)[1:]
        loc = self.at(op_tok)
        declared = s.children[-1]
        if s.data == "literal_stmt":
            if str(op_tok) != "constant":
                raise self.error(op_tok, f"only 'constant' takes a literal value, not '{op_tok}'")
            if declared is None:
                raise self.error(s.children[2], "a constant needs its type, e.g. ': f32[2,3]'")
            node = fb.add(self.constant(s.children[2], self.type(declared), name, loc))
        else:
            op = self._op(op_tok)
            operands = [self._use(t, env) for t in self._operand_tokens(s)]
            attr_tree = next((c for c in s.children[2:] if isinstance(c, Tree) and c.data == "attr_dict"), None)
            attrs = self.attrs(attr_tree)
            if str(op_tok) in SUGAR:
                if len(operands) != 2:
                    raise self.error(op_tok, f"matmul takes 2 operands, got {len(operands)}")
                try:
                    attrs.update(matmul_attrs(operands[0].type, operands[1].type))
                except ValueError as e:
                    raise self.error(op_tok, f"matmul: {e}") from None
            node = fb.op(op, *operands, name=name, loc=loc, implicit_broadcast=True, **attrs)
        if declared is not None and isinstance(declared, Tree) and declared.data == "type":
            want = self.type(declared)
            if want != node.type:
                raise self.error(
                    declared,
                    f"declared type {want} does not match the type {node.type} that "
                    f"{node.op.value} produces",
                )
        return node

    def _op(self, tok: Token) -> Op:
        name = str(tok)
        if name in SUGAR:
            return SUGAR[name]
        op = by_mnemonic(name)
        if op is None or op is Op.PARAMETER:
            known = [o.value for o in Op if o is not Op.PARAMETER] + list(SUGAR)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise self.error(tok, f"unknown op '{name}'{hint}")
        if op is Op.CONSTANT:
            raise self.error(tok, "constant takes a literal value, e.g. '%c = constant 1.0 : f32[]'")
        return op

    def attrs(self, tree: Tree[Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for attr in tree.children if tree is not None else ():
            if attr is None:
                continue
            key_tok, value = attr.children
            if str(key_tok) in out:
                raise self.error(key_tok, f"attribute '{key_tok}' is given twice")
            out[str(key_tok)] = self.attr_value(value)
        return out

    def attr_value(self, v: Token | Tree[Any]) -> Any:
        if isinstance(v, Tree):
            return tuple(self.attr_value(c) for c in v.children if c is not None)
        if v.type == "INT":
            return int(v)
        if v.type == "FLOAT":
            return float(v)
        if v.type == "STRING":
            return str(v)[1:-1]
        return {"true": True, "false": False}.get(str(v), str(v))

    def type(self, tree: Tree[Any]) -> TensorType:
        dtype_tok, *dims = tree.children
        try:
            dtype = DType.parse(str(dtype_tok))
        except ValueError:
            close = difflib.get_close_matches(str(dtype_tok), ALL_NAMES, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f" (dtypes: {', '.join(ALL_NAMES)})"
            raise self.error(dtype_tok, f"unknown dtype '{dtype_tok}'{hint}") from None
        shape = tuple(int(d) for d in dims if d is not None)
        for d in dims:
            if d is not None and int(d) < 0:
                raise self.error(d, f"dimension {d} is negative")
        return TensorType(shape, dtype)

    # -- constants --

    def constant(self, lit: Tree[Any], t: TensorType, name: str, loc: Loc) -> Node:
        if lit.data == "weight_ref":
            arr, ref = self.load_weights(lit)
            if arr.shape != t.shape or arr.dtype != t.dtype.np:
                got = f"{DType.from_numpy(arr.dtype).value if _known(arr.dtype) else arr.dtype}{list(arr.shape)}"
                raise self.error(lit, f"weights {_ref_text(lit)} hold {got}, but the declared type is {t}")
            return constant(arr, source=ref, name=name, loc=loc)
        return constant(self.literal_array(lit, t), name=name, loc=loc)

    def literal_array(self, lit: Tree[Any], t: TensorType) -> np.ndarray[Any, Any]:
        values = self.literal_values(lit, t.dtype)
        if isinstance(values, list) and not values:
            if t.size != 0:
                raise self.error(lit, f"empty literal for {t}, which has {t.size} elements")
            return np.zeros(t.shape, t.dtype.np)
        arr = np.array(values, dtype=object)
        if arr.shape == ():
            return np.full(t.shape, self._cast(values, t.dtype, lit), dtype=t.dtype.np)
        if arr.shape != t.shape:
            raise self.error(lit, f"literal has shape {list(arr.shape)} but the type is {t}")
        flat = [self._cast(v, t.dtype, lit) for v in arr.reshape(-1)]
        return np.array(flat, dtype=t.dtype.np).reshape(t.shape)

    def literal_values(self, lit: Tree[Any], dtype: DType) -> Any:
        if lit.data == "literal_list":
            return [self.literal_values(c, dtype) for c in lit.children if c is not None]
        if lit.data == "weight_ref":
            raise self.error(lit, "a weights reference cannot appear inside a list")
        toks = lit.children
        tok = toks[-1]
        if tok.type == "INT":
            return int(tok)
        if tok.type == "FLOAT":
            return float(tok)
        word = str(tok)
        if word not in _NUMBER_WORDS or (len(toks) == 2 and word in ("true", "false")):
            raise self.error(tok, f"'{word}' is not a number (numbers, true, false, inf, nan)")
        v = _NUMBER_WORDS[word]
        return -v if len(toks) == 2 else v

    def _cast(self, v: Any, dtype: DType, at: Tree[Any]) -> Any:
        if dtype == DType.BOOL:
            if not isinstance(v, bool):
                raise self.error(at, f"bool constants take true or false, got {v}")
            return v
        if isinstance(v, bool):
            raise self.error(at, f"{dtype.value} constants take numbers, got {str(v).lower()}")
        if dtype.is_int:
            if not isinstance(v, int):
                raise self.error(at, f"{dtype.value} constants take integers, got {v}")
            info = np.iinfo(dtype.np)
            if not info.min <= v <= info.max:
                raise self.error(at, f"{v} does not fit in {dtype.value} ({info.min}..{info.max})")
        return v

    def load_weights(self, lit: Tree[Any]) -> tuple[np.ndarray[Any, Any], WeightRef]:
        file_tok, key_tok = lit.children
        rel = str(file_tok)[1:-1]
        path = (self.base_dir / rel).absolute()
        if not path.is_file():
            raise self.error(file_tok, f"weights file '{rel}' not found (looked for {path})")
        try:
            if path.suffix == ".npy":
                if key_tok is not None:
                    raise self.error(key_tok, f"'{rel}' is an .npy file and holds a single array; drop the key")
                return np.load(path, allow_pickle=False), WeightRef(path)
            if path.suffix != ".npz":
                raise self.error(file_tok, f"weights file '{rel}' must be .npy or .npz")
            if key_tok is None:
                raise self.error(file_tok, f"'{rel}' is an .npz archive: name the array, e.g. \"{rel}\"[\"w\"]")
            if path not in self.npz:
                self.npz[path] = self.stack.enter_context(np.load(path, allow_pickle=False))
            key = str(key_tok)[1:-1]
            archive = self.npz[path]
            if key not in archive.files:
                raise self.error(key_tok, f"'{rel}' has no array '{key}' (it has: {', '.join(archive.files)})")
            return archive[key], WeightRef(path, key)
        except (OSError, ValueError) as e:
            raise self.error(file_tok, f"cannot read weights file '{rel}': {e}") from None


def _known(dt: np.dtype[Any]) -> bool:
    try:
        DType.from_numpy(dt)
        return True
    except ValueError:
        return False


def _ref_text(lit: Tree[Any]) -> str:
    return "".join(str(c) if i == 0 else f"[{c}]" for i, c in enumerate(lit.children) if c is not None)


def parse_module(text: str, filename: str = "<string>", base_dir: str | os.PathLike[str] | None = None) -> Module:
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return _FileParser(text, filename, base).parse()


def parse_file(path: str | os.PathLike[str]) -> Module:
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise TesselError(f"cannot read {p}: {e}") from None
    return parse_module(text, str(path), p.parent)
