"""Reading `x[index]` and writing it back, one step at a time: a `Lens`.

A non-static index (compiler.advanced_indexing) is a few steps, each a function of the array
before it: a static slice (compiler.indexing), a transpose, a gather of the positions of
traced or array indices, new axes of length 1. `read` applies them in order; `write` gives the
array with the part `read` returns replaced, each step giving back its input's new value (a
scatter where the read was a gather), from the last step to the first. Views of traced indices
keep NumPy's aliasing through it (`tracing.View`), and `x[idx] = v`, `x[idx] += v`,
`np.add.at` and `np.put_along_axis` share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler import indexing
from compiler.tracing import Tracer, reshape, transpose
from ir.dtypes import DType
from ir.ops import Op
from ir.typerules import gathered_shape
from ir.types import TensorType


@dataclass(frozen=True)
class Basic:
    """A static index (compiler.indexing)."""

    ix: indexing.BasicIndex

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.ix.shape

    def read(self, x: Tracer) -> Tracer:
        return indexing.read(x, self.ix)

    def write(self, x: Tracer, new: Tracer) -> Tracer:
        return indexing.update(x, self.ix, new)


@dataclass(frozen=True)
class Permute:
    perm: tuple[int, ...]

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape[p] for p in self.perm)

    def read(self, x: Tracer) -> Tracer:
        return transpose(x, self.perm)

    def write(self, x: Tracer, new: Tracer) -> Tracer:
        return transpose(new, tuple(int(p) for p in np.argsort(self.perm)))


@dataclass(frozen=True)
class Reshape:
    """New axes of length 1 (None in an index with arrays)."""

    to: tuple[int, ...]

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.to

    def read(self, x: Tracer) -> Tracer:
        return reshape(x, self.to)

    def write(self, x: Tracer, new: Tracer) -> Tracer:
        return reshape(new, x.shape)


@dataclass(frozen=True, eq=False)
class Gather:
    """`gather(x, idx) {axis, mode}`; written back by `scatter`, which can also combine
    (kind "add", ...) where positions repeat, as ufunc.at does."""

    axis: int
    idx: Tracer
    mode: str

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        x = TensorType(shape, DType.F32)
        return gathered_shape(x, TensorType(self.idx.shape, DType.I64), self.axis)

    def read(self, x: Tracer) -> Tracer:
        return x.trace.emit(Op.GATHER, [x, self.idx], x.weak, axis=self.axis, mode=self.mode)

    def write(self, x: Tracer, new: Tracer, kind: str = "set") -> Tracer:
        return x.trace.emit(
            Op.SCATTER, [x, self.idx, new], x.weak, axis=self.axis, mode=self.mode, kind=kind
        )


Step = Basic | Permute | Reshape | Gather


@dataclass(frozen=True)
class Lens:
    steps: tuple[Step, ...]

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        for step in self.steps:
            shape = step.shape(shape)
        return shape

    def read(self, x: Tracer) -> Tracer:
        for step in self.steps:
            x = step.read(x)
        return x

    @property
    def combines(self) -> int | None:
        """The step whose positions may repeat, so that a scatter `kind` other than "set"
        combines each update (ufunc.at): the last gather, when only new axes follow it."""
        gathers = [n for n, step in enumerate(self.steps) if isinstance(step, Gather)]
        if not gathers or any(not isinstance(s, Reshape) for s in self.steps[gathers[-1] + 1 :]):
            return None
        return gathers[-1]

    def write(self, x: Tracer, new: Tracer, kind: str = "set") -> Tracer:
        """x with the part `read` gives replaced by `new` (combined with it by a scatter
        `kind`, which needs `combines`)."""
        inputs = [x]
        for step in self.steps[:-1]:
            inputs.append(step.read(inputs[-1]))
        combining = self.combines if kind != "set" else None
        assert kind == "set" or combining is not None
        for n in reversed(range(len(self.steps))):
            step = self.steps[n]
            if isinstance(step, Gather) and n == combining:
                new = step.write(inputs[n], new, kind)
            else:
                new = step.write(inputs[n], new)
        return new
