"""Tensor types: a static shape and an element type. Scalars are rank-0 tensors."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ir.dtypes import DType


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

    def with_shape(self, shape: tuple[int, ...]) -> TensorType:
        return TensorType(tuple(shape), self.dtype)

    def with_dtype(self, dtype: DType) -> TensorType:
        return TensorType(self.shape, dtype)

    def __str__(self) -> str:
        return f"{self.dtype.value}[{','.join(map(str, self.shape))}]"
