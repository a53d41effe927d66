"""Tensor types: a static shape and an element type. Scalars are rank-0 tensors."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ir.dtypes import DType

# The largest tensor tessel accepts, in bytes: beyond any machine's memory, and far enough below
# 2**63 that element counts and byte offsets never overflow an int64 (NumPy's, or the code's).
MAX_BYTES = 2**62


@dataclass(frozen=True, slots=True)
class TensorType:
    shape: tuple[int, ...]
    dtype: DType

    def __post_init__(self) -> None:
        if any(type(d) is not int or d < 0 for d in self.shape):  # no bools, no numpy ints
            raise ValueError(f"invalid shape {self.shape}: dimensions must be non-negative ints")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def size_problem(self) -> str | None:
        """Why no machine could hold a tensor of this type (a message), or None."""
        for d in self.shape:
            if d > MAX_BYTES:  # even an empty tensor: NumPy cannot make such a shape
                return f"dimension {d} is too large (the limit is 2**62)"
        if self.nbytes > MAX_BYTES:
            return (
                f"{self} is {format_bytes(self.nbytes)}, more than any machine's memory "
                "(the limit is 2**62 bytes)"
            )
        return None

    def with_shape(self, shape: tuple[int, ...]) -> TensorType:
        return TensorType(tuple(shape), self.dtype)

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(self.shape, dtype)

    def __str__(self) -> str:
        return f"{self.dtype.value}[{','.join(map(str, self.shape))}]"


@dataclass(frozen=True, slots=True)
class TupleType(TensorType):
    """The type of an op with several results (a loop's carried values), as XLA's tuple shape.

    Only `get` reads a tuple; it has no shape or dtype of its own (`dtype` is None, so code that
    mistakes it for a tensor fails loudly). Build one with `TupleType.of(elements)`.
    """

    elements: tuple[TensorType, ...] = ()

    @staticmethod
    def of(elements: tuple[TensorType, ...]) -> TupleType:
        return TupleType((), None, tuple(elements))  # type: ignore[arg-type]

    @property
    def size(self) -> int:
        return sum(e.size for e in self.elements)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self.elements)

    def offsets(self, alignment: int) -> tuple[tuple[int, ...], int]:
        """Where each element lives when the tuple is one buffer of `alignment`-aligned parts,
        and that buffer's size."""
        offsets, end = [], 0
        for e in self.elements:
            offsets.append(end)
            end += -(-e.nbytes // alignment) * alignment
        return tuple(offsets), end

    def size_problem(self) -> str | None:
        return next((p for e in self.elements if (p := e.size_problem()) is not None), None)

    def with_shape(self, shape: tuple[int, ...]) -> TensorType:
        raise TypeError("a tuple has no shape")

    def with_dtype(self, dtype: DType) -> TensorType:
        raise TypeError("a tuple has no dtype")

    def __str__(self) -> str:
        return "(" + ", ".join(map(str, self.elements)) + ")"


def format_bytes(n: int) -> str:
    """`n` bytes for people: 24 bytes, 1.5 KiB, 2.2 TiB; past EiB in powers of ten."""
    if n < 1024:
        return f"{n} byte" if n == 1 else f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{n:.2g} bytes"


def physical_memory() -> int | None:
    """Bytes of RAM on this machine; None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
