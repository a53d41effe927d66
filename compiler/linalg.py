"""Contractions on tracers: np.matmul, np.dot, np.tensordot and np.einsum as dot_general.

Each form is reduced to one `dot_general` (batch dimensions, contracting dimensions, the rest
free), with transposes and reductions around it where the NumPy form asks for another order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from compiler.tracing import (
    Tracer,
    UnsupportedError,
    elementwise,
    lift,
    normalize_axes,
    reshape,
    result_dtype,
    to_dtype,
    trace_of,
    transpose,
)
from ir.builder import broadcast_shapes
from ir.diagnostics import ShapeError
from ir.dtypes import DType
from ir.ops import Op


def _operands(a: Any, b: Any, out: DType | None = None) -> tuple[Tracer, Tracer]:
    out = out or result_dtype(a, b)
    return lift(a, out), lift(b, out)


def _boolean_as_count(
    first: int, last: int | None = 2
) -> Callable[[Callable[..., Tracer]], Callable[..., Tracer]]:
    """NumPy's boolean products are any(a and b): count the true products in int32 (tessel's
    contractions are numeric only), then test the count. args[first:last] are the operands."""

    def wrap(fn: Callable[..., Tracer]) -> Callable[..., Tracer]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Tracer:
            operands = args[first:last]
            if not operands or result_dtype(*operands) is not DType.BOOL:
                return fn(*args, **kwargs)
            ints = [lift(a, DType.I32) for a in operands]
            rest = args[len(operands) + first :]
            counts = fn(*args[:first], *ints, *rest, **kwargs)
            return elementwise(Op.NE, counts, 0, dtype=DType.I32)

        return run

    return wrap


def dot_general(
    x: Tracer, y: Tracer, contract: tuple[Sequence[int], Sequence[int]],
    batch: tuple[Sequence[int], Sequence[int]] = ((), ()),
) -> Tracer:  # fmt: skip
    """Output dimensions: batch, then x's free dimensions, then y's (in their order)."""
    for i, j in zip(*contract, strict=True):
        if x.shape[i] != y.shape[j]:
            raise x.trace.error(
                f"shapes {list(x.shape)} and {list(y.shape)} are not aligned: dimension {i} "
                f"({x.shape[i]}) != dimension {j} ({y.shape[j]})"
            )
    return x.trace.emit(
        Op.DOT_GENERAL, [x, y], x.weak and y.weak,
        lhs_batch=tuple(batch[0]), rhs_batch=tuple(batch[1]),
        lhs_contract=tuple(contract[0]), rhs_contract=tuple(contract[1]),
    )  # fmt: skip


@_boolean_as_count(0)
def matmul(a: Any, b: Any) -> Tracer:
    x, y = _operands(a, b, _matmul_dtype(a, b))
    if x.ndim == 0 or y.ndim == 0:
        raise x.trace.error("an operand is a scalar (rank 0); use * to scale")
    vec_x, vec_y = x.ndim == 1, y.ndim == 1
    if vec_x:
        x = reshape(x, (1, x.shape[0]))
    if vec_y:
        y = reshape(y, (y.shape[0], 1))
    if x.shape[-1] != y.shape[-2]:
        raise x.trace.error(
            f"the operands' inner dimensions differ: {list(lift(a).shape)} @ "
            f"{list(lift(b).shape)} ({x.shape[-1]} != {y.shape[-2]})"
        )
    try:
        batch = broadcast_shapes(x.shape[:-2], y.shape[:-2])
    except ShapeError as e:
        raise x.trace.error(f"batch dimensions: {e}") from None
    # A matrix against a stack: its batch dimensions are free dimensions of one product, not a
    # broadcast copy of the matrix for every batch entry (and likewise between two stacks).
    out = _stack_times_matrix(x, y) if y.ndim == 2 or x.ndim == 2 else _stacks(x, y, batch)
    if vec_x or vec_y:
        shape = (*batch, *([] if vec_x else [x.shape[-2]]), *([] if vec_y else [y.shape[-1]]))
        out = reshape(out, tuple(shape))
    return out


def _stack_times_matrix(x: Tracer, y: Tracer) -> Tracer:
    """x @ y where one operand is a matrix: one dot_general whose free dimensions include the
    other's batch dimensions (the result is transposed back when the stack is on the right)."""
    if y.ndim == 2:
        return dot_general(x, y, ((x.ndim - 1,), (0,)))
    out = dot_general(x, y, ((1,), (y.ndim - 2,)))  # (m, *batch, n)
    return transpose(out, (*range(1, y.ndim - 1), 0, y.ndim - 1))


def _stacks(x: Tracer, y: Tracer, batch: tuple[int, ...]) -> Tracer:
    """x @ y for two stacks. A batch dimension only one operand has (the other has 1 there, or
    nothing) is a free dimension of that operand's side of one dot_general, not a broadcast
    copy of the other: (60, 60, 1, 128) @ (128, 128)-like stacks read each operand once."""
    nb = len(batch)
    xs = (1,) * (nb + 2 - x.ndim) + x.shape[:-2]
    ys = (1,) * (nb + 2 - y.ndim) + y.shape[:-2]
    shared = [i for i in range(nb) if xs[i] == ys[i]]
    x_only = [i for i in range(nb) if xs[i] != ys[i] and ys[i] == 1]
    y_only = [i for i in range(nb) if xs[i] != ys[i] and xs[i] == 1]
    # each operand keeps its shared and own batch axes, in order, then its matrix axes
    x_axes = sorted(shared + x_only)
    y_axes = sorted(shared + y_only)
    x = reshape(x, (*(xs[i] for i in x_axes), *x.shape[-2:]))
    y = reshape(y, (*(ys[i] for i in y_axes), *y.shape[-2:]))
    lhs_batch = tuple(x_axes.index(i) for i in shared)
    rhs_batch = tuple(y_axes.index(i) for i in shared)
    out = dot_general(x, y, ((x.ndim - 1,), (y.ndim - 2,)), (lhs_batch, rhs_batch))
    # out: shared batch, x's free axes (its own batch axes, then m), y's (its own, then n)
    order = [*shared, *x_only, nb, *y_only, nb + 1]
    perm = tuple(order.index(i) for i in range(nb + 2))
    return out if perm == tuple(range(nb + 2)) else transpose(out, perm)


def _matmul_dtype(a: Any, b: Any) -> DType:
    """NumPy's matmul loop, which is not always the promoted type (bf16 @ bf16 is f32)."""
    x, y = lift(a), lift(b)
    if x.weak or y.weak:
        return result_dtype(a, b)
    return to_dtype(np.matmul(np.zeros((1, 1), x.dtype), np.zeros((1, 1), y.dtype)).dtype)


@_boolean_as_count(0)
def dot(a: Any, b: Any) -> Tracer:
    x, y = _operands(a, b)
    if x.ndim == 0 or y.ndim == 0:
        return elementwise(Op.MUL, x, y)
    j = 0 if y.ndim == 1 else y.ndim - 2
    return dot_general(x, y, ((x.ndim - 1,), (j,)))


@_boolean_as_count(0)
def tensordot(a: Any, b: Any, axes: Any = 2) -> Tracer:
    x, y = _operands(a, b)
    if isinstance(axes, int):
        xa, ya = list(range(x.ndim - axes, x.ndim)), list(range(axes))
    else:
        xa, ya = ([v] if isinstance(v, int) else list(v) for v in axes)
    if len(xa) != len(ya):
        raise x.trace.error(f"axes {xa} and {ya} pair different numbers of dimensions")
    xa = [normalize_axes(i, x.ndim, x.trace.api)[0] for i in xa]
    ya = [normalize_axes(i, y.ndim, y.trace.api)[0] for i in ya]
    return dot_general(x, y, (xa, ya))


def _parse_subscripts(spec: str, n: int, trace: Any) -> tuple[list[str], str]:
    spec = spec.replace(" ", "")
    if "." in spec:
        raise trace.error(
            "'...' (ellipsis) subscripts are not supported; name the axes", UnsupportedError
        )
    inputs, arrow, output = spec.partition("->")
    terms = inputs.split(",")
    if len(terms) != n:
        raise trace.error(f"{len(terms)} subscripts for {n} operands")
    if not arrow:
        letters = "".join(terms)
        output = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    if len(set(output)) != len(output) or not set(output) <= set("".join(terms)):
        raise trace.error(
            f"output subscripts {output!r} must be distinct and appear among the inputs"
        )
    for t in terms:
        if len(set(t)) != len(t):
            raise trace.error(
                f"repeated subscript in {t!r} (diagonals) is not supported", UnsupportedError
            )
    return terms, output


@_boolean_as_count(1, None)
def einsum(subscripts: str, *operands: Any) -> Tracer:
    trace = trace_of(*operands)
    if not isinstance(subscripts, str):
        raise trace.error("only the string form of subscripts is supported", UnsupportedError)
    terms, output = _parse_subscripts(subscripts, len(operands), trace)
    out = result_dtype(*operands)
    pending = [(lift(op, out), term) for op, term in zip(operands, terms, strict=True)]
    sizes: dict[str, int] = {}
    for x, term in pending:
        if x.ndim != len(term):
            raise trace.error(f"operand {term!r} has rank {x.ndim}")
        for c, n in zip(term, x.shape, strict=True):
            if sizes.setdefault(c, n) != n:
                raise trace.error(f"subscript {c!r} has sizes {sizes[c]} and {n}")
    x, term = pending[0]
    for i in range(1, len(pending)):
        y, other = pending[i]
        later = set(output).union(*(t for _, t in pending[i + 1 :]))
        x, term = _sum_out(x, term, set(other) | later)
        y, other = _sum_out(y, other, set(term) | later)
        batch = [c for c in term if c in other and c in later]
        contract = [c for c in term if c in other and c not in later]
        x = dot_general(
            x, y,
            ([term.index(c) for c in contract], [other.index(c) for c in contract]),
            ([term.index(c) for c in batch], [other.index(c) for c in batch]),
        )  # fmt: skip
        term = (
            "".join(batch)
            + "".join(c for c in term if c not in other)
            + "".join(c for c in other if c not in term)
        )
    x, term = _sum_out(x, term, set(output))
    return transpose(x, [term.index(c) for c in output])


def _sum_out(x: Tracer, term: str, needed: set[str]) -> tuple[Tracer, str]:
    """Sum away the subscripts nothing later needs."""
    axes = tuple(i for i, c in enumerate(term) if c not in needed)
    if not axes:
        return x, term
    r = x.trace.emit(Op.REDUCE, [x], x.weak, kind="sum", axes=axes)
    return r, "".join(c for c in term if c in needed)
