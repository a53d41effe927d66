"""Node attributes: an immutable mapping, constant payloads, and the attribute kinds ops declare."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from ir.dtypes import ALL_NAMES, DType


@dataclass(frozen=True, slots=True)
class WeightRef:
    """Where a constant's data lives on disk: an `.npy` file, or one array of an `.npz`."""

    path: Path  # absolute
    key: str | None = None


class ConstData:
    """A read-only array used as a constant's value, compared and hashed by content."""

    __slots__ = ("_digest", "array", "source")

    def __init__(self, array: np.ndarray[Any, Any], source: WeightRef | None = None) -> None:
        arr = np.array(array, copy=True, order="C")
        arr.flags.writeable = False
        self.array = arr
        self.source = source
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
        self._digest = h.digest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConstData) and self._digest == other._digest

    def __hash__(self) -> int:
        return hash(self._digest)

    def __repr__(self) -> str:
        return f"ConstData({self.array.dtype}{list(self.array.shape)})"


class Attrs(Mapping[str, Any]):
    """An immutable, hashable str -> value mapping, kept in sorted key order."""

    __slots__ = ("_hash", "_items")

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._items: tuple[tuple[str, Any], ...] = tuple(sorted((items or {}).items()))
        self._hash = hash(self._items)

    def __getitem__(self, key: str) -> Any:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Attrs):
            return self._items == other._items
        return isinstance(other, Mapping) and dict(self._items) == dict(other)

    def __repr__(self) -> str:
        return "Attrs(" + ", ".join(f"{k}={v!r}" for k, v in self._items) + ")"

    def replace(self, **changes: Any) -> Attrs:
        return Attrs({**dict(self._items), **changes})


class AttrKind(Enum):
    """How an attribute's value is spelled and checked. The value reads after "expected"."""

    INT = "an int"
    BOOL = "true or false"
    FLOAT = "a number"
    DTYPE = "a dtype (" + ", ".join(ALL_NAMES) + ")"
    ENUM = "one of"  # one identifier from a fixed list (AttrSpec.choices)
    INTS = "a list of ints"
    FLOATS = "a list of numbers"
    INT_PAIRS = "a list of [low, high] pairs"
    PADDING = "same, valid, or a list of [low, high] pairs"
    ARRAY = "an array"
    FUNCTION = "a nested function body"


REQUIRED: Any = object()


@dataclass(frozen=True, slots=True)
class AttrSpec:
    kind: AttrKind
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> Any:
        """Return `value` in canonical Python form, or raise ValueError saying what was expected."""
        checker = _CHECKERS[self.kind]
        out = checker(value, self)
        if out is _BAD:
            raise ValueError(f"expected {self.describe()}, got {show_value(value)}")
        return out

    def describe(self) -> str:
        if self.kind is AttrKind.ENUM:
            return "one of " + ", ".join(self.choices)
        return str(self.kind.value)


_BAD: Any = object()


def show_value(value: Any) -> str:
    """An attribute value as a graph file spells it (strings quoted, to tell "1" from 1)."""
    if isinstance(value, tuple | list):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    return str(value)


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _ints(v: Any, spec: AttrSpec) -> Any:
    if isinstance(v, tuple | list) and all(_is_int(x) for x in v):
        return tuple(int(x) for x in v)
    return _BAD


def _floats(v: Any, spec: AttrSpec) -> Any:
    """Numbers, or one number standing for a one-element list (`scale = 0.5`)."""
    items = v if isinstance(v, tuple | list) else (v,)
    if items and all(isinstance(x, int | float | np.number) and not isinstance(x, bool)
                     for x in items):  # fmt: skip
        return tuple(float(x) for x in items)
    return _BAD


def _pairs(v: Any, spec: AttrSpec) -> Any:
    if isinstance(v, tuple | list) and all(
        isinstance(p, tuple | list) and len(p) == 2 and all(_is_int(x) for x in p) for p in v
    ):
        return tuple((int(p[0]), int(p[1])) for p in v)
    return _BAD


def _padding(v: Any, spec: AttrSpec) -> Any:
    if isinstance(v, str) and v in ("same", "valid"):
        return v
    return _pairs(v, spec)


def _dtype(v: Any, spec: AttrSpec) -> Any:
    if isinstance(v, DType):
        return v
    if isinstance(v, str) and v in {t.value for t in DType}:
        return DType(v)
    return _BAD


_CHECKERS: dict[AttrKind, Callable[[Any, AttrSpec], Any]] = {
    AttrKind.INT: lambda v, s: int(v) if _is_int(v) else _BAD,
    AttrKind.BOOL: lambda v, s: v if isinstance(v, bool) else _BAD,
    AttrKind.FLOAT: lambda v, s: (
        float(v) if isinstance(v, int | float) and not isinstance(v, bool) else _BAD
    ),
    AttrKind.DTYPE: _dtype,
    # ir.graph imports this module, so a body is recognized by shape rather than by class
    AttrKind.FUNCTION: lambda v, s: v if hasattr(v, "params") and hasattr(v, "body") else _BAD,
    AttrKind.ENUM: lambda v, s: v if isinstance(v, str) and v in s.choices else _BAD,
    AttrKind.INTS: _ints,
    AttrKind.FLOATS: _floats,
    AttrKind.INT_PAIRS: _pairs,
    AttrKind.PADDING: _padding,
    AttrKind.ARRAY: lambda v, s: v if isinstance(v, ConstData) else _BAD,
}
