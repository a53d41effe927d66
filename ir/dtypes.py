"""Element types of tessel tensors and their NumPy counterparts."""

from __future__ import annotations

from enum import Enum

import ml_dtypes
import numpy as np
from numpy.typing import DTypeLike


class DType(Enum):
    """An element type. The value is the spelling used in graph files (`f32`, `i8`, ...)."""

    F64 = "f64"
    F32 = "f32"
    F16 = "f16"
    BF16 = "bf16"
    I64 = "i64"
    I32 = "i32"
    I16 = "i16"
    I8 = "i8"
    U64 = "u64"
    U32 = "u32"
    U16 = "u16"
    U8 = "u8"
    BOOL = "bool"
    C64 = "c64"  # complex: a pair of f32 (real, imaginary), NumPy's complex64
    C128 = "c128"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"DType.{self.name}"

    @property
    def np(self) -> np.dtype[np.generic]:
        return _TO_NUMPY[self]

    @property
    def itemsize(self) -> int:
        return int(self.np.itemsize)

    @property
    def is_float(self) -> bool:
        return self in FLOATS

    @property
    def is_int(self) -> bool:
        return self in INTEGERS

    @property
    def is_complex(self) -> bool:
        return self in COMPLEX

    @property
    def real_part(self) -> DType:
        """The type of a complex type's real and imaginary parts (a real type is its own)."""
        return _PARTS.get(self, self)

    @property
    def is_signed(self) -> bool:
        return self in FLOATS or self in SIGNED_INTEGERS

    @staticmethod
    def parse(name: str) -> DType:
        try:
            return DType(name)
        except ValueError:
            raise ValueError(
                f"unknown dtype '{name}' (expected one of {', '.join(ALL_NAMES)})"
            ) from None

    @staticmethod
    def from_numpy(dtype: DTypeLike) -> DType:
        dt = np.dtype(dtype)
        found = _FROM_NUMPY.get(dt)  # a comparison each took microseconds (bfloat16's most)
        if found is not None:
            return found
        for t, n in _TO_NUMPY.items():  # an equal dtype that hashes apart (one with metadata)
            if n == dt:
                return t
        raise ValueError(f"numpy dtype {dt} has no tessel equivalent")


_TO_NUMPY: dict[DType, np.dtype[np.generic]] = {
    DType.F64: np.dtype(np.float64),
    DType.F32: np.dtype(np.float32),
    DType.F16: np.dtype(np.float16),
    DType.BF16: np.dtype(ml_dtypes.bfloat16),
    DType.I64: np.dtype(np.int64),
    DType.I32: np.dtype(np.int32),
    DType.I16: np.dtype(np.int16),
    DType.I8: np.dtype(np.int8),
    DType.U64: np.dtype(np.uint64),
    DType.U32: np.dtype(np.uint32),
    DType.U16: np.dtype(np.uint16),
    DType.U8: np.dtype(np.uint8),
    DType.BOOL: np.dtype(np.bool_),
    DType.C64: np.dtype(np.complex64),
    DType.C128: np.dtype(np.complex128),
}
_FROM_NUMPY = {n: t for t, n in _TO_NUMPY.items()}
_PARTS = {DType.C64: DType.F32, DType.C128: DType.F64}
COMPLEX_OF = {part: whole for whole, part in _PARTS.items()}

FLOATS = frozenset({DType.F64, DType.F32, DType.F16, DType.BF16})
SIGNED_INTEGERS = frozenset({DType.I64, DType.I32, DType.I16, DType.I8})
UNSIGNED_INTEGERS = frozenset({DType.U64, DType.U32, DType.U16, DType.U8})
INTEGERS = SIGNED_INTEGERS | UNSIGNED_INTEGERS
COMPLEX = frozenset(_PARTS)
NUMERIC = FLOATS | INTEGERS  # the real numbers; complex types are listed op by op
ALL = frozenset(DType)
REAL = ALL - COMPLEX
ALL_NAMES = tuple(t.value for t in DType)
