"""`np.bincount` and `np.histogram` as compositions of traced ops: a scatter kind "add" of ones
(or of the weights) into zeros.

The number of bins must be known while tracing: `np.bincount` of a traced array takes exactly
`minlength` bins (a value at or past `minlength`, or a negative one, raises IndexOutOfRange
when the code runs, where NumPy would return a longer array or raise), and `np.histogram`
takes a concrete `bins`. Its bin indices follow NumPy's uniform-bin computation step by step
(the normalized index, the two corrections against the edges, the last edge inclusive), in
NumPy's dtypes, so counts match NumPy's exactly, values on edges included. `FUNCTIONS` joins
compiler.numpy_api's dispatch.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from compiler.numpy_composites import np_linspace
from compiler.numpy_indexing import np_take
from compiler.tracing import (
    Trace,
    Tracer,
    UnsupportedError,
    broadcast_all,
    convert,
    elementwise,
    full,
    lift,
    reshape,
    to_dtype,
    trace_of,
)
from ir.dtypes import DType
from ir.ops import Op

_e = elementwise


def _flat(x: Tracer) -> Tracer:
    return reshape(x, (x.size,))


def _select(mask: Tracer, a: Any, b: Any) -> Tracer:
    m, x, y = broadcast_all([lift(mask), lift(a), lift(b)])
    if x.node.dtype is not y.node.dtype:
        y = convert(y, x.node.dtype)
    return m.trace.emit(Op.SELECT, [m, x, y], x.weak)


def _sums(trace: Trace, where: Tracer, values: Tracer, length: int, mode: str) -> Tracer:
    """zeros(length) with values[i] added at where[i], in order (np.add.at)."""
    zeros = full(trace, (length,), 0, values.node.dtype)
    idx = reshape(convert(where, DType.I64), (where.size, 1))
    return trace.emit(Op.SCATTER, [zeros, idx, values], axis=0, mode=mode, kind="add")


def _float_weights(w: Any, x: Tracer, what: str) -> Tracer:
    weights = lift(w)
    if weights.shape != x.shape:
        raise x.trace.error(what)
    return convert(_flat(weights), DType.F64)


# --- np.bincount ----------------------------------------------------------------------------


def np_bincount(x: Any, weights: Any = None, minlength: Any = 0) -> Tracer:
    trace = trace_of(x, weights, minlength)
    if isinstance(minlength, Tracer):
        raise trace.error("minlength must be a concrete integer under @jit", UnsupportedError)
    minlength = operator.index(minlength)
    if minlength < 0:
        raise trace.error("'minlength' must not be negative")
    if isinstance(x, Tracer) and x.node.op is Op.CONSTANT:
        x = x.node.attrs["value"].array
    if not isinstance(x, Tracer):  # known while tracing: NumPy's own length and checks
        known = np.asarray(x)
        try:
            length = len(np.bincount(known, minlength=minlength))
        except (ValueError, TypeError) as e:
            raise trace.error(str(e)) from None
        return _bincount(trace, lift(known.astype(np.int64)), weights, length, "clip")
    if x.ndim != 1:
        raise trace.error(
            "object too deep for desired array" if x.ndim else
            "object of too small depth for desired array"
        )  # fmt: skip
    if not np.can_cast(x.dtype, np.intp, "safe"):
        raise trace.error(
            f"Cannot cast array data from dtype('{x.dtype}') to dtype('int64') according to "
            "the rule 'safe'"
        )
    if minlength == 0:
        raise trace.error(
            "np.bincount of a traced array needs minlength >= 1: NumPy's result has "
            "max(max(x) + 1, minlength) bins, which depends on the data; tessel makes exactly "
            "`minlength` bins (a value >= minlength raises IndexOutOfRange when the code runs)",
            UnsupportedError,
        )
    positions = convert(x, DType.I64)
    if x.dtype.kind == "i":
        # a negative value must not wrap as an index does: moved below -minlength, out of range
        # (the run-time message then names the moved value)
        negative = trace.emit(Op.LT, broadcast_all([positions, lift(0, DType.I64)]))
        shifted = trace.emit(Op.SUB, broadcast_all([positions, lift(minlength, DType.I64)]))
        positions = _select(negative, shifted, positions)
    return _bincount(trace, positions, weights, minlength, "check")


def _bincount(trace: Trace, positions: Tracer, weights: Any, length: int, mode: str) -> Tracer:
    if weights is None:
        values = full(trace, positions.shape, 1, DType.I64)
    else:
        values = _float_weights(weights, positions, "The weights and list don't have the same "
                                "length.")  # fmt: skip
    return _sums(trace, positions, values, length, mode)


# --- np.histogram ---------------------------------------------------------------------------


def _unsigned_subtract(a: Any, b: Any) -> Any:
    """NumPy's last - first for concrete edges: signed integers subtract as unsigned."""
    dt = np.result_type(a, b)
    unsigned = {np.byte: np.ubyte, np.short: np.ushort, np.intc: np.uintc, np.int_: np.uint,
                np.longlong: np.ulonglong}.get(dt.type)  # fmt: skip
    if unsigned is None:
        return np.subtract(a, b, dtype=dt)
    return np.subtract(np.asarray(a, dt), np.asarray(b, dt), casting="unsafe", dtype=unsigned)


def _outer_edges(a: Tracer, range_: Any) -> tuple[Any, Any, Any]:
    """NumPy's first and last edge and their unsigned difference: concrete from `range`
    (or (0, 1) for an empty `a`), else traced a.min() and a.max()."""
    trace = a.trace
    if range_ is not None or a.size == 0:
        if range_ is not None:
            if any(isinstance(v, Tracer) for v in range_):
                raise trace.error("range must be concrete under @jit", UnsupportedError)
            first, last = range_
            if first > last:
                raise trace.error("max must be larger than min in range parameter.")
            if not (np.isfinite(first) and np.isfinite(last)):
                raise trace.error(f"supplied range of [{first}, {last}] is not finite")
        else:
            first, last = 0, 1
        if first == last:
            first, last = first - 0.5, last + 0.5
        return first, last, _unsigned_subtract(last, first)
    lo = trace.emit(Op.REDUCE, [a], kind="min", axes=(0,))
    hi = trace.emit(Op.REDUCE, [a], kind="max", axes=(0,))
    if a.node.dtype.is_float:
        # NumPy raises on a non-finite autodetected range: a gather out of range does here
        finite = _e(Op.AND, np.isfinite(lo), np.isfinite(hi))
        both = trace.emit(Op.CONCATENATE, [reshape(lo, (1,)), reshape(hi, (1,))], axis=0)
        pick = _select(finite, np.array([0, 1], np.int64), np.array([2, 2], np.int64))
        checked = trace.emit(Op.GATHER, [both, reshape(pick, (2, 1))], axis=0, mode="check")
        lo, hi = (reshape(_slice1(checked, i), ()) for i in (0, 1))
    same = trace.emit(Op.EQ, [lo, hi])
    if a.node.dtype.is_float:  # a.min() - 0.5 keeps a's float type
        first = _select(same, _e(Op.SUB, lo, 0.5), lo)
        last = _select(same, _e(Op.ADD, hi, 0.5), hi)
        return first, last, _e(Op.SUB, last, first)
    # integers: NumPy's edges are then float64 (a.min() - 0.5, or linspace's cast), and the
    # difference is exact (signed integers subtract as unsigned of their width)
    lo64, hi64 = convert(lo, DType.F64), convert(hi, DType.F64)
    first = _select(same, _e(Op.SUB, lo64, 0.5), lo64)
    last = _select(same, _e(Op.ADD, hi64, 0.5), hi64)
    if a.node.dtype in (DType.I64, DType.U64):
        diff = convert(trace.emit(Op.SUB, [convert(hi, DType.U64), convert(lo, DType.U64)]),
                       DType.F64)  # fmt: skip
    else:
        diff = convert(trace.emit(Op.SUB, [convert(hi, DType.I64), convert(lo, DType.I64)]),
                       DType.F64)  # fmt: skip
    return first, last, _select(same, 1.0, diff)


def _slice1(x: Tracer, i: int) -> Tracer:
    return x.trace.emit(Op.SLICE, [x], x.weak, start=(i,), limit=(i + 1,), stride=(1,))


def _stand_in(v: Any) -> Any:
    return np.zeros((), v.dtype) if isinstance(v, Tracer) else v


def np_histogram(
    a: Any, bins: Any = 10, range: Any = None, density: Any = None, weights: Any = None
) -> tuple[Tracer, Tracer]:
    x = lift(a)
    trace = x.trace
    if isinstance(bins, Tracer) or isinstance(density, Tracer):
        raise trace.error(
            "bins and density must be concrete under @jit: they decide the result's layout",
            UnsupportedError,
        )
    if isinstance(bins, str):
        raise trace.error(
            f"bins={bins!r}: an estimated number of bins depends on the data; give a number "
            "or the edges",
            UnsupportedError,
        )
    if x.node.dtype is DType.BOOL:
        x = convert(x, DType.U8)  # NumPy converts (with a RuntimeWarning)
    if weights is not None and lift(weights).shape != x.shape:
        raise trace.error("weights should have the same shape as a.")
    x = _flat(x)
    ntype = DType.I64 if weights is None else lift(weights).node.dtype
    if np.ndim(bins) == 0:
        try:
            count = operator.index(bins)
        except TypeError:
            raise trace.error("`bins` must be an integer, a string, or an array") from None
        if count < 1:
            raise trace.error("`bins` must be positive, when an integer")
        edges, where = _uniform(x, count, range)
    elif np.ndim(bins) == 1:
        edges_np = np.asarray(bins)
        if np.any(edges_np[:-1] > edges_np[1:]):
            raise trace.error("`bins` must increase monotonically, when an array")
        count = len(edges_np) - 1
        edges, where = lift(edges_np), _by_edges(x, edges_np)
    else:
        raise trace.error("`bins` must be 1d, when an array")
    # dropped values go to an extra bin, cut off after the sums
    if weights is None:
        values = full(trace, x.shape, 1, DType.I64)
    else:
        values = convert(_flat(lift(weights)), DType.F64)
    sums = _sums(trace, where, values, count + 1, "clip")
    n = convert(_head(sums, count), ntype)
    if density:
        widths = _e(Op.SUB, _head(edges, count, 1), _head(edges, count))
        db = convert(widths, DType.F64)
        return _e(Op.DIV, _e(Op.DIV, n, db), np.sum(n)), edges
    return n, edges


def _head(x: Tracer, count: int, start: int = 0) -> Tracer:
    return x.trace.emit(Op.SLICE, [x], x.weak, start=(start,), limit=(start + count,), stride=(1,))


def _uniform(x: Tracer, count: int, range_: Any) -> tuple[Tracer, Tracer]:
    """NumPy's edges and each value's bin (`count` for a value outside the range)."""
    trace = x.trace
    first, last, denom = _outer_edges(x, range_)
    bin_type = np.result_type(_stand_in(first), _stand_in(last), np.zeros(1, x.dtype))
    if np.issubdtype(bin_type, np.integer):
        bin_type = np.result_type(bin_type, float)
    if isinstance(first, Tracer):
        edges = np_linspace(first, last, count + 1, endpoint=True, dtype=bin_type)
    else:
        known = np.linspace(first, last, count + 1, endpoint=True, dtype=bin_type)
        if np.any(known[:-1] >= known[1:]):
            raise trace.error(
                f"Too many bins for data range. Cannot create {count} finite-sized bins."
            )
        edges = lift(known)
    # (NumPy's comparisons, which take a Python integer out of x's range: uint8 >= -2)
    keep = _e(Op.AND, np.greater_equal(x, first), np.less_equal(x, last))
    tmp = convert(x, to_dtype(bin_type, trace.api))
    f_indices = _e(Op.MUL, _e(Op.DIV, _e(Op.SUB, tmp, first), denom), count)
    f_indices = _select(keep, f_indices, 0)
    indices = convert(f_indices, DType.I64)
    indices = _select(_e(Op.EQ, indices, count), _e(Op.SUB, indices, 1), indices)
    # the index computation may be off by one within an ulp of an edge: NumPy's corrections
    below = _e(Op.LT, tmp, np_take(edges, indices, mode="clip"))
    indices = _select(below, _e(Op.SUB, indices, 1), indices)
    above = _e(Op.GE, tmp, np_take(edges, _e(Op.ADD, indices, 1), mode="clip"))
    above = _e(Op.AND, above, _e(Op.NE, indices, count - 1))
    indices = _select(above, _e(Op.ADD, indices, 1), indices)
    return edges, _select(keep, indices, count)


def _by_edges(x: Tracer, edges: np.ndarray) -> Tracer:
    """Each value's bin among arbitrary edges, the last inclusive (`count` outside them): how
    many inner edges are <= the value."""
    count = len(edges) - 1
    column = reshape(x, (x.size, 1))
    inner = lift(edges[1:-1].reshape(1, -1))
    index = np.sum(convert(_e(Op.GE, column, inner), DType.I64), axis=1) if count > 1 else None
    keep = _e(Op.AND, np.greater_equal(x, edges[0]), np.less_equal(x, edges[-1]))
    return _select(keep, index if index is not None else lift(np.zeros(x.shape, np.int64)), count)


FUNCTIONS: dict[Callable[..., Any], Callable[..., Any]] = {
    np.bincount: np_bincount,
    np.histogram: np_histogram,
}
