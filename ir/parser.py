"""Parses graph files into a Module. Every error is located: `file:line:col`, the line, a caret."""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Iterator
from contextlib import ExitStack
from functools import cache
from pathlib import Path
from typing import Any

import ml_dtypes
import networkx as nx
import numpy as np
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ir.arrayfiles import ArrayFileError, NpzArchive, read_npy
from ir.attrs import WeightRef
from ir.builder import FunctionBuilder, constant, make_node, matmul_attrs
from ir.diagnostics import GraphSyntaxError, GraphTypeError, Loc, TesselError
from ir.dtypes import ALL_NAMES, DType
from ir.filekinds import HEAD_BYTES, sniff_bytes
from ir.graph import Function, Module, Node
from ir.ops import ELEMENTWISE, Op, attr_specs, by_mnemonic
from ir.types import MAX_BYTES, TensorType, TupleType, format_bytes, physical_memory

SUGAR = {"matmul": Op.DOT_GENERAL}  # spellings that build another op
_NUMBER_WORDS = {"inf": math.inf, "nan": math.nan, "true": True, "false": False}
_PARAM_NAME = re.compile(r"%[A-Za-z_][A-Za-z0-9_.]*")  # parameters are passed by name


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
    raw_expected = set(getattr(err, "expected", ()) or ())
    expected = sorted({_terminal(t) for t in raw_expected})
    token = err.token if isinstance(err, UnexpectedToken) else None
    if token is None or token.type == "$END":
        if "RBRACE" in raw_expected:
            return "unexpected end of file: unterminated block (missing '}')"
        got = "end of file"
    else:
        got = repr(str(token))
        if token.type == "RBRACE" and "RETURN" in raw_expected:
            return "missing 'return': a function body ends with 'return %value'"
        if token.type in ("FUNC", "ENTRY") and "RBRACE" in raw_expected:
            return f"unexpected {got}: the previous function is missing its closing '}}'"
    msg = f"unexpected {got}"
    if expected:
        shown = expected if len(expected) <= 6 else [*expected[:6], "..."]
        msg += "; expected " + " or ".join(shown)
    return msg


def _tok(item: Any) -> Token:
    assert isinstance(item, Token), item
    return item


def _tree(item: Any) -> Tree[Any]:
    assert isinstance(item, Tree), item
    return item


class _FileParser:
    def __init__(self, text: str, filename: str, base_dir: Path) -> None:
        self.text = text
        # as the lexer counts lines (str.splitlines also splits at \f, \x1c, \x85, \u2028, ...);
        # a final newline ends the last line rather than starting an empty one
        self.lines = text.removesuffix("\n").split("\n") if text else []
        self.filename = filename
        self.base_dir = base_dir
        self.stack = ExitStack()
        self.npz: dict[Path, NpzArchive] = {}

    # -- locations and errors --

    def loc(self, line: int, col: int) -> Loc:
        src = self.lines[line - 1] if 0 < line <= len(self.lines) else None
        return Loc(self.filename, line, col, src)

    def at(self, item: Token | Tree[Any]) -> Loc:
        if isinstance(item, Token):
            return self.loc(item.line or 1, item.column or 1)
        return self.loc(item.meta.line, item.meta.column)

    def error(
        self, item: Token | Tree[Any], msg: str, cls: type[TesselError] = GraphTypeError
    ) -> TesselError:
        return cls(msg, self.at(item))

    # -- module and functions --

    def parse(self) -> Module:
        try:
            tree = _lark().parse(self.text)
        except UnexpectedInput as e:
            line, col = e.line, e.column
            if isinstance(e, UnexpectedEOF) or (
                isinstance(e, UnexpectedToken) and e.token.type == "$END"
            ):
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
            entry_tok, name_tok = f.children[0], _tok(f.children[1])
            name = str(name_tok)[1:]
            if name in seen:
                raise self.error(
                    name_tok, f"function @{name} is already defined at line {seen[name]}"
                )
            seen[name] = name_tok.line or 0
            if entry_tok is not None:
                if entries:
                    first, first_tok = entries[0]
                    raise self.error(
                        entry_tok,
                        f"@{name} is marked entry, but so is @{first} (line {first_tok.line}); "
                        "a module has one entry function",
                    )
                entries.append((name, _tok(entry_tok)))
            funcs.append(self.function(f, name))
        if not funcs:
            raise GraphSyntaxError("the file defines no function", self.loc(1, 1))
        if entries:
            entry = entries[0][0]
        elif "main" in seen:
            entry = "main"
        elif len(funcs) == 1:
            entry = funcs[0].name
        else:
            names = ", ".join(f"@{n}" for n in seen)
            raise GraphSyntaxError(
                f"no entry function among {names}: mark one with 'entry func @name' "
                "or name it @main",
                self.at(tree.children[0]),
            )
        return Module(tuple(funcs), entry)

    def function(self, tree: Tree[Any], name: str) -> Function:
        _, name_tok, *rest = tree.children
        ret = rest[-1]
        stmts = [c for c in rest if isinstance(c, Tree) and c.data in ("op_stmt", "literal_stmt")]
        params = [c for c in rest if isinstance(c, Tree) and c.data == "param"]
        declared = next((c for c in rest if isinstance(c, Tree) and c.data == "result_types"), None)
        where: dict[str, int] = {}
        for p in params:
            tok = _tok(p.children[0])
            if not _PARAM_NAME.fullmatch(str(tok)):
                raise self.error(
                    tok,
                    f"parameter name {tok} must start with a letter or '_' "
                    "(arguments are passed by name)",
                )
            self._define(tok, where)
        for s in stmts:
            self._define(_tok(s.children[0]), where)
        self._check_order(stmts)
        fb = FunctionBuilder(name, self.at(_tok(name_tok)))
        env: dict[str, Node] = {}
        for p in params:
            tok, type_tree = _tok(p.children[0]), _tree(p.children[1])
            env[str(tok)] = fb.param(str(tok)[1:], self.type(type_tree), self.at(tok))
        for s in stmts:
            env[str(s.children[0])] = self.statement(s, fb, env)
        results = [self._use(_tok(tok), env) for tok in ret.children[1:]]
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

    def _check_order(self, stmts: list[Tree[Any]]) -> None:
        """Reject uses before definition, naming a cycle when there is one."""
        defined_at = {str(s.children[0]): i for i, s in enumerate(stmts)}
        deps: nx.DiGraph = nx.DiGraph()  # user -> used
        first_forward: Token | None = None
        for i, s in enumerate(stmts):
            for tok in self._operand_tokens(s):
                j = defined_at.get(str(tok))
                if j is not None:
                    deps.add_edge(str(s.children[0]), str(tok))
                    if j >= i and first_forward is None:
                        first_forward = tok
        if first_forward is None:
            return
        try:
            cycle = [u for u, _ in nx.find_cycle(deps)]
        except nx.NetworkXNoCycle:
            line = _tok(stmts[defined_at[str(first_forward)]].children[0]).line
            raise self.error(
                first_forward, f"{first_forward} is used before its definition (at line {line})"
            ) from None
        # Start the cycle at its earliest statement, whose use of the next value is a forward one.
        k = min(range(len(cycle)), key=lambda n: defined_at[cycle[n]])
        cycle = cycle[k:] + cycle[:k]
        user = stmts[defined_at[cycle[0]]]
        nxt = cycle[1] if len(cycle) > 1 else cycle[0]
        tok = next(t for t in self._operand_tokens(user) if str(t) == nxt)
        raise self.error(tok, "cycle: " + " uses ".join([*cycle, cycle[0]]))

    @staticmethod
    def _operands(stmt: Tree[Any]) -> list[Token | Tree[Any]]:
        """An op statement's operands in order: value names and literal numbers."""
        if stmt.data != "op_stmt":
            return []
        return [c for c in stmt.children[2:-2] if c is not None]  # the last two: attrs, type

    def _operand_tokens(self, stmt: Tree[Any]) -> Iterator[Token]:
        yield from (t for t in self._operands(stmt) if isinstance(t, Token))

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
        value_tok, op_tok = _tok(s.children[0]), _tok(s.children[1])
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
            node = fb.add(self.op_statement(s, fb, env, name, loc))
        if declared is not None:
            want = self.type(declared)
            if want != node.type:
                raise self.error(
                    declared,
                    f"declared type {want} does not match the type {node.type} that "
                    f"{node.op.value} produces",
                )
        return node

    def op_statement(
        self, s: Tree[Any], fb: FunctionBuilder, env: dict[str, Node], name: str, loc: Loc
    ) -> Node:
        op_tok = _tok(s.children[1])
        op = self._op(op_tok)
        items = self._operands(s)
        values = {i: self._use(t, env) for i, t in enumerate(items) if isinstance(t, Token)}
        for i, item in enumerate(items):
            if isinstance(item, Tree):
                dtype = self._literal_dtype(op_tok, op, i, values, item)
                c = constant(np.array(self.element(item, dtype), dtype.np), loc=self.at(item))
                values[i] = fb.add(c)
        operands = tuple(values[i] for i in range(len(items)))
        attr_tree = next(
            (c for c in s.children[2:] if isinstance(c, Tree) and c.data == "attr_dict"), None
        )
        attrs, attr_locs = self.attrs(attr_tree, op)
        if str(op_tok) in SUGAR:
            if len(operands) != 2:
                raise self.error(op_tok, f"matmul: takes 2 operands, got {len(operands)}")
            extra = sorted(set(attrs) - {"out_dtype"})
            if extra:
                name = extra[0]
                if name in attr_specs(Op.DOT_GENERAL):
                    msg = f"matmul: sets its own dimension numbers; use dot_general to give {name}"
                else:
                    msg = f"matmul: unknown attribute '{name}' (matmul takes only out_dtype)"
                raise GraphTypeError(msg, attr_locs[name])
            try:
                attrs.update(matmul_attrs(operands[0].type, operands[1].type))
            except ValueError as e:
                raise self.error(op_tok, f"matmul: {e}") from None
        if op in ELEMENTWISE and len(operands) > 1:
            operands = fb.broadcast_operands(op, operands, loc)
        src_locs = [self.at(t) for t in items]
        return make_node(
            op, operands, attrs, name=name, loc=loc, attr_locs=attr_locs, src_locs=src_locs
        )

    def _literal_dtype(
        self, op_tok: Token, op: Op, i: int, values: dict[int, Node], item: Tree[Any]
    ) -> DType:
        """A literal operand takes the dtype of the op's value operands (select's: bool first)."""
        if op is Op.SELECT and i == 0:
            return DType.BOOL
        typing = [v for j, v in sorted(values.items()) if not (op is Op.SELECT and j == 0)]
        if not typing:
            raise self.error(
                item, f"{op_tok}: cannot tell the type of this literal; make an operand a value"
            )
        return typing[0].dtype

    def _op(self, tok: Token) -> Op:
        name = str(tok)
        if name in SUGAR:
            return SUGAR[name]
        op = by_mnemonic(name)
        if op is Op.PARAMETER:
            raise self.error(tok, "parameters are declared in the function signature, not as ops")
        if op is None:
            known = [o.value for o in Op if o is not Op.PARAMETER] + list(SUGAR)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise self.error(tok, f"unknown op '{name}'{hint}")
        if op is Op.CONSTANT:
            raise self.error(
                tok, "constant takes a literal value, e.g. '%c = constant 1.0 : f32[]'"
            )
        return op

    def attrs(self, tree: Tree[Any] | None, op: Op) -> tuple[dict[str, Any], dict[str, Loc]]:
        """Attribute values by name, and where to point when one is wrong: the value, or the
        name if the op has no such attribute."""
        out: dict[str, Any] = {}
        locs: dict[str, Loc] = {}
        specs = attr_specs(op)
        for attr in tree.children if tree is not None else ():
            if attr is None:
                continue
            key_tok, value = _tok(attr.children[0]), attr.children[1]
            key = str(key_tok)
            if key in out:
                raise self.error(key_tok, f"attribute '{key}' is given twice")
            out[key] = self.attr_value(value)
            locs[key] = self.at(value if key in specs else key_tok)
        return out, locs

    def attr_value(self, v: Token | Tree[Any]) -> Any:
        if isinstance(v, Tree) and v.data == "func":  # a nested body, in its own scope
            if v.children[0] is not None:
                raise self.error(v.children[0], "a nested function cannot be marked entry")
            return self.function(v, str(v.children[1])[1:])
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
        if tree.data == "tuple_type":
            return TupleType.of(tuple(self.type(t) for t in tree.children))
        dtype_tok, *dims = tree.children
        try:
            dtype = DType.parse(str(dtype_tok))
        except ValueError:
            close = difflib.get_close_matches(str(dtype_tok), ALL_NAMES, n=1)
            hint = (
                f"; did you mean '{close[0]}'?" if close else f" (dtypes: {', '.join(ALL_NAMES)})"
            )
            raise self.error(dtype_tok, f"unknown dtype '{dtype_tok}'{hint}") from None
        shape = []
        for d in dims:
            if d is None:
                continue
            d = _tok(d)
            if int(d) < 0:
                raise self.error(d, f"dimension {d} is negative")
            if int(d) > MAX_BYTES:
                raise self.error(d, f"dimension {d} is too large (the limit is 2**62)")
            shape.append(int(d))
        t = TensorType(tuple(shape), dtype)
        problem = t.size_problem()
        if problem is not None:
            raise self.error(tree, problem)
        return t

    # -- constants --

    def constant(self, lit: Tree[Any], t: TensorType, name: str, loc: Loc) -> Node:
        try:
            return self._constant(lit, t, name, loc)
        except MemoryError:  # the array, or its copy in the node (fuzz --kind parser, seed 20)
            memory = physical_memory()
            if memory is not None and t.nbytes > memory:
                limit = f"more than this machine's memory ({format_bytes(memory)})"
            else:
                limit = "more than this process could allocate"
            raise self.error(
                lit, f"a constant of {t} is {format_bytes(t.nbytes)}, {limit}"
            ) from None

    def _constant(self, lit: Tree[Any], t: TensorType, name: str, loc: Loc) -> Node:
        if lit.data == "weight_ref":
            arr, ref = self.load_weights(lit)
            if t.dtype == DType.BF16 and arr.dtype.kind == "V" and arr.dtype.itemsize == 2:
                arr = arr.view(DType.BF16.np)  # .npy stores bfloat16 as raw 2-byte records
            if arr.shape != t.shape or arr.dtype != t.dtype.np:
                got = f"{_dtype_name(arr.dtype)}{list(arr.shape)}"
                raise self.error(
                    lit, f"weights {_ref_text(lit)} hold {got}, but the declared type is {t}"
                )
            return constant(arr, source=ref, name=name, loc=loc)
        return constant(self.literal_array(lit, t), name=name, loc=loc)

    def literal_array(self, lit: Tree[Any], t: TensorType) -> np.ndarray[Any, Any]:
        if lit.data != "literal_list":  # one number, repeated to fill the type
            value = self.element(lit, t.dtype)
            memory = physical_memory()
            if memory is not None and t.nbytes > memory:
                raise MemoryError  # np.full would be killed filling it, not refused
            return np.full(t.shape, value, dtype=t.dtype.np)
        if not any(c is not None for c in lit.children) and t.size == 0:
            return np.zeros(t.shape, t.dtype.np)  # "[]" spells any empty tensor
        too_deep = _nested_deeper_than(lit, t.rank)
        if too_deep is not None:  # before the recursive walks: a file may nest thousands deep
            raise self.error(too_deep, f"literal is nested deeper than the rank of its type {t}")
        shape = self.literal_shape(lit)
        if shape != t.shape:
            raise self.error(lit, f"literal has shape {list(shape)} but the declared type is {t}")
        flat = [self.element(leaf, t.dtype) for leaf in _leaves(lit)]
        return np.array(flat, dtype=t.dtype.np).reshape(t.shape)

    def literal_shape(self, lit: Tree[Any]) -> tuple[int, ...]:
        if lit.data != "literal_list":
            return ()
        items = [c for c in lit.children if c is not None]
        shapes = [self.literal_shape(c) for c in items]
        for item, shape in zip(items, shapes, strict=True):
            if shape != shapes[0]:
                raise self.error(
                    item,
                    f"ragged literal: this entry is {_entry_kind(shape)} but the first entry "
                    f"of its list is {_entry_kind(shapes[0])}",
                )
        return (len(items), *(shapes[0] if shapes else ()))

    def element(self, leaf: Tree[Any], dtype: DType) -> Any:
        """One literal number, checked against the element type."""
        if leaf.data == "weight_ref":
            raise self.error(leaf, "a weights reference cannot appear inside a list")
        toks = leaf.children
        tok = _tok(toks[-1])
        text = "".join(str(t) for t in toks)
        v: Any
        if tok.type == "INT":
            v = int(tok)
        elif tok.type == "FLOAT":
            v = float(tok)
        elif tok.type == "COMPLEX":
            if not dtype.is_complex:
                raise self.error(leaf, f"{dtype} constants take real numbers, got {text}")
            v = _complex(str(tok))
        elif str(tok) in _NUMBER_WORDS and (len(toks) == 1 or str(tok) in ("inf", "nan")):
            v = _NUMBER_WORDS[str(tok)]
            v = -v if len(toks) == 2 else v
        else:
            raise self.error(
                leaf, f"'{text}' is not a number (expected a number, inf, nan, true or false)"
            )
        self.check_fits(leaf, v, text, tok.type == "NAME", dtype)
        return v

    def check_fits(self, leaf: Tree[Any], v: Any, text: str, word: bool, dtype: DType) -> None:
        """That `v` (spelled `text`; `word`: inf/nan/true/false) is a value of `dtype`."""
        if dtype == DType.BOOL:
            if not isinstance(v, bool):
                raise self.error(leaf, f"bool constants take true or false, got {text}")
        elif isinstance(v, bool):
            raise self.error(leaf, f"{dtype} constants take numbers, got {text}")
        elif dtype.is_int:
            if not isinstance(v, int):
                raise self.error(leaf, f"{dtype} constants take integers, got {text}")
            info = np.iinfo(dtype.np.type)  # type: ignore[type-var]
            if not info.min <= v <= info.max:
                raise self.error(leaf, f"{text} does not fit in {dtype} ({info.min}..{info.max})")
        elif isinstance(v, complex):
            parts = zip((v.real, v.imag), _complex_parts(v, dtype), strict=True)
            if any(math.isfinite(p) and not math.isfinite(q) for p, q in parts):
                raise self.error(leaf, f"{text} does not fit in {dtype}")
        elif not word and not math.isfinite(_to_float(v, dtype.real_part)):
            top = float(ml_dtypes.finfo(dtype.real_part.np).max)  # type: ignore[no-untyped-call]
            raise self.error(leaf, f"{text} does not fit in {dtype} (largest finite value {top:g})")

    def load_weights(self, lit: Tree[Any]) -> tuple[np.ndarray[Any, Any], WeightRef]:
        file_tok, key_tok = _tok(lit.children[0]), lit.children[1]
        rel = str(file_tok)[1:-1]
        path = (self.base_dir / rel).absolute()
        if not path.is_file():
            raise self.error(file_tok, f"weights file '{rel}' not found (looked for {path})")
        if path.suffix not in (".npy", ".npz"):
            raise self.error(file_tok, f"weights file '{rel}' must be .npy or .npz")
        if path.suffix == ".npy" and key_tok is not None:
            raise self.error(
                key_tok, f"'{rel}' is an .npy file and holds a single array; drop the key"
            )
        if path.suffix == ".npz" and key_tok is None:
            raise self.error(
                file_tok, f'\'{rel}\' is an .npz archive: name the array, e.g. "{rel}"["w"]'
            )
        try:
            if key_tok is None:
                return read_npy(path), WeightRef(path)
            if path not in self.npz:
                self.npz[path] = self.stack.enter_context(NpzArchive(path))
            key = str(key_tok)[1:-1]
            archive = self.npz[path]
            if key not in archive.files:
                raise self.error(
                    key_tok, f"'{rel}' has no array '{key}' (it has: {', '.join(archive.files)})"
                )
            return archive.read(key), WeightRef(path, key)
        except ArrayFileError as e:
            raise self.error(file_tok, f"cannot read weights file '{rel}': {e}") from None


def _nested_deeper_than(lit: Tree[Any], rank: int) -> Tree[Any] | None:
    """The first list more than `rank` lists deep in `lit` (None if there is none)."""
    stack = [(lit, 0)]
    while stack:
        node, depth = stack.pop()
        if node is None or node.data != "literal_list":
            continue
        if depth > rank:
            return node
        stack.extend((c, depth + 1) for c in node.children)
    return None


def _leaves(lit: Tree[Any]) -> Iterator[Tree[Any]]:
    if lit.data != "literal_list":
        yield lit
        return
    for c in lit.children:
        if c is not None:
            yield from _leaves(c)


def _entry_kind(shape: tuple[int, ...]) -> str:
    return f"a list of shape {list(shape)}" if shape else "a number"


def _complex(text: str) -> complex:
    """`re±imj` as a complex number, each part read as a float (keeping -0.0 and NaN's sign)."""
    split = max(i for i, c in enumerate(text) if c in "+-" and i > 0 and text[i - 1] not in "eE")
    return complex(float(text[:split]), float(text[split:-1]))


def _complex_parts(v: complex, dtype: DType) -> tuple[float, float]:
    part = dtype.real_part.np.type
    with np.errstate(over="ignore"):
        return float(part(v.real)), float(part(v.imag))


def _to_float(v: float, dtype: DType) -> float:
    """`v` rounded to `dtype` (inf when it is too large for it)."""
    try:
        with np.errstate(over="ignore"):
            return float(np.asarray(v, dtype=np.float64).astype(dtype.np))
    except OverflowError:  # an int beyond float64
        return math.inf


def _dtype_name(dt: np.dtype[Any]) -> str:
    try:
        return DType.from_numpy(dt).value
    except ValueError:
        return str(dt)


def _ref_text(lit: Tree[Any]) -> str:
    parts = [c for c in lit.children if c is not None]
    return str(parts[0]) + "".join(f"[{c}]" for c in parts[1:])


def parse_module(
    text: str, filename: str = "<string>", base_dir: str | os.PathLike[str] | None = None
) -> Module:
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return _FileParser(text, filename, base).parse()


def parse_file(path: str | os.PathLike[str]) -> Module:
    """The graph file at `path`. Handed another kind of file (an ONNX model, an .npz, a compiled
    library), it says what the file seems to be and which command takes it."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise TesselError(f"cannot read {p}: {e}") from None
    kind = sniff_bytes(data[:HEAD_BYTES], p.suffix)
    if kind.id not in ("text", "empty"):
        raise TesselError(
            f"{p} is not a graph file: it looks like {kind.description}",
            notes=(kind.hint,) if kind.hint else (),
        )
    try:
        text = data.decode()
    except UnicodeDecodeError as e:  # a text file, but with a stray byte further on
        raise _encoding_error(str(path), data, e) from None
    return parse_module(text, str(path), p.parent)


def _encoding_error(filename: str, data: bytes, e: UnicodeDecodeError) -> GraphSyntaxError:
    start = data.rfind(b"\n", 0, e.start) + 1
    end = data.find(b"\n", e.start)
    line_bytes = data[start : end if end >= 0 else len(data)]
    line = data.count(b"\n", 0, e.start) + 1
    col = len(data[start : e.start].decode(errors="replace")) + 1
    source = line_bytes.decode(errors="replace")
    return GraphSyntaxError(
        f"byte 0x{data[e.start]:02x} is not UTF-8 text (graph files are UTF-8)",
        Loc(filename, line, col, source),
    )
