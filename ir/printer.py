"""Prints IR as a graph file: the canonical form that the parser reads back unchanged.

Deterministic: values keep their name hints where those are valid and unique, and are numbered
`%0, %1, ...` in order of appearance otherwise; attributes equal to their defaults are left out.
Large constants are written by reference to a weights file rather than inline.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ir.attrs import ConstData, WeightRef
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op, attr_specs
from ir.typerules import normalize_attrs
from ir.types import TensorType

INLINE_LIMIT = 16  # constants with more elements go to a weights file when one is given
_HINT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


class WeightSink:
    """Collects large constants while printing and saves them to one `.npz` (atomically)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self.arrays: dict[str, np.ndarray[Any, Any]] = {}

    def add(self, data: ConstData, hint: str | None) -> WeightRef:
        for key, arr in self.arrays.items():
            if arr is data.array:
                return WeightRef(self.path, key)
        key = hint if hint and _HINT.fullmatch(hint) else f"const{len(self.arrays)}"
        base, n = key, 1
        while key in self.arrays:
            key, n = f"{base}.{n}", n + 1
        self.arrays[key] = data.array
        return WeightRef(self.path, key)

    def save(self) -> None:
        """Write the archive as np.savez does (keys may be any name, even 'file')."""
        if not self.arrays:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                for key, arr in self.arrays.items():
                    with zf.open(key + ".npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, arr, allow_pickle=False)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def format_type(t: TensorType) -> str:
    return str(t)


def format_scalar(value: Any, dtype: DType) -> str:
    if dtype.is_complex:  # re±imj, each part as its real type prints it
        re = format_scalar(value.real, dtype.real_part)
        im = format_scalar(value.imag, dtype.real_part)
        return f"{re}{'' if im.startswith('-') else '+'}{im}j"
    if dtype == DType.BOOL:
        return "true" if bool(value) else "false"
    if dtype.is_int:
        return str(int(value))
    v = float(value)
    if np.isnan(v):
        return "-nan" if np.signbit(v) else "nan"
    if np.isinf(v):
        return "inf" if v > 0 else "-inf"
    if dtype in (DType.F32, DType.F64, DType.F16):
        text = str(dtype.np.type(value))
    else:  # bf16: shortest decimal that reads back to the same value
        target = dtype.np.type(value)
        text = next(t for p in range(1, 18) if dtype.np.type(float(t := f"{v:.{p}g}")) == target)
    if not any(c in text for c in ".eEn"):
        text += ".0"
    return text


def format_literal(arr: np.ndarray[Any, Any], dtype: DType) -> str:
    if arr.size == 0:
        return "[]"
    if is_splat(arr):
        return format_scalar(arr.reshape(-1)[0], dtype)

    def rec(a: np.ndarray[Any, Any]) -> str:
        if a.ndim == 1:
            return "[" + ", ".join(format_scalar(x, dtype) for x in a) + "]"
        return "[" + ", ".join(rec(x) for x in a) + "]"

    return rec(arr)


def is_splat(arr: np.ndarray[Any, Any]) -> bool:
    """Every element is the same value, bit for bit in sign: -0.0 and 0.0 differ, NaNs agree."""
    flat = arr.reshape(-1)
    if flat.size == 0:
        return False
    if flat.dtype.kind == "c":
        return is_splat(flat.real.copy()) and is_splat(flat.imag.copy())
    if flat.dtype.kind not in "fV" and flat.dtype != DType.BF16.np:
        return bool((flat == flat[0]).all())
    f = flat.astype(np.float64)
    same = (f == f[0]) | (np.isnan(f) & np.isnan(f[0]))
    return bool(same.all() and (np.signbit(f) == np.signbit(f[0])).all())


def format_attr_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(format_attr_value(v) for v in value) + "]"
    if isinstance(value, DType):
        return value.value
    if isinstance(value, float):
        return repr(value)
    return str(value)


def printed_attrs(node: Node) -> list[tuple[str, Any]]:
    """The attributes worth printing: those that differ from what the defaults would give."""
    specs = attr_specs(node.op)
    in_types = [s.type for s in node.srcs]
    shown = []
    for name in specs:
        if name not in node.attrs or (node.op is Op.CONSTANT and name == "value"):
            continue
        without = {k: v for k, v in node.attrs.items() if k != name}
        try:
            if normalize_attrs(node.op, in_types, without) == node.attrs:
                continue
        except ValueError:
            pass
        shown.append((name, node.attrs[name]))
    return shown


class Namer:
    def __init__(self) -> None:
        self.names: dict[Node, str] = {}
        self.used: set[str] = set()
        self.counter = 0

    def define(self, node: Node) -> str:
        hint = node.name
        if hint and _HINT.fullmatch(hint):
            name, n = hint, 1
            while name in self.used:
                name, n = f"{hint}.{n}", n + 1
        else:
            while str(self.counter) in self.used:
                self.counter += 1
            name = str(self.counter)
            self.counter += 1
        self.used.add(name)
        self.names[node] = name
        return name

    def __getitem__(self, node: Node) -> str:
        return "%" + self.names[node]


class Printer:
    def __init__(
        self,
        base_dir: str | os.PathLike[str] | None = None,
        weights: WeightSink | None = None,
        inline_limit: int = INLINE_LIMIT,
    ) -> None:
        self.base_dir = Path(base_dir).absolute() if base_dir is not None else Path.cwd()
        self.weights = weights
        self.inline_limit = inline_limit

    def module(self, module: Module) -> str:
        many = len(module.functions) > 1
        parts = [self.function(f, entry=many and f.name == module.entry) for f in module.functions]
        return "\n".join(parts)

    def function(self, fn: Function, entry: bool = False) -> str:
        return "\n".join(self._function_lines(fn, entry)) + "\n"

    def _function_lines(self, fn: Function, entry: bool, indent: str = "") -> Iterator[str]:
        namer = Namer()  # every function, nested ones included, is its own scope
        params = ", ".join(f"%{namer.define(p)}: {format_type(p.type)}" for p in fn.params)
        results = [format_type(r.type) for r in fn.results]
        ret = results[0] if len(results) == 1 else "(" + ", ".join(results) + ")"
        yield f"{indent}{'entry ' if entry else ''}func @{fn.name}({params}) -> {ret} {{"
        for node in fn.body:
            yield f"{indent}  " + self.statement(node, namer, indent + "  ")
        yield f"{indent}  return " + ", ".join(namer[r] for r in fn.results)
        yield f"{indent}}}"

    def statement(self, node: Node, namer: Namer, indent: str = "  ") -> str:
        if node.op is Op.CONSTANT:
            rhs = f"constant {self.constant_value(node)}"
        else:
            operands = ", ".join(namer[s] for s in node.srcs)
            rhs = f"{node.op.value}({operands})"
            attrs = printed_attrs(node)
            if attrs:
                shown = (f"{k} = {self.attr_value(v, indent)}" for k, v in attrs)
                rhs += " {" + ", ".join(shown) + "}"
        return f"%{namer.define(node)} = {rhs} : {format_type(node.type)}"

    def attr_value(self, value: Any, indent: str) -> str:
        """A fusion's body prints as a function whose lines nest under the statement's."""
        if isinstance(value, Function):
            first, *rest = self._function_lines(value, entry=False, indent=indent)
            return "\n".join([first.lstrip(), *rest])
        return format_attr_value(value)

    def constant_value(self, node: Node) -> str:
        data: ConstData = node.attrs["value"]
        ref = data.source
        big = data.array.size > self.inline_limit and not is_splat(data.array)
        if ref is None and big and self.weights is not None:
            ref = self.weights.add(data, node.name)
        if ref is None or not big:
            return format_literal(data.array, node.dtype)
        path = Path(os.path.relpath(ref.path, self.base_dir)).as_posix()
        return f'"{path}"' + (f'["{ref.key}"]' if ref.key is not None else "")


def print_module(module: Module, **kw: Any) -> str:
    return Printer(**kw).module(module)


def print_function(fn: Function, **kw: Any) -> str:
    return Printer(**kw).function(fn)
