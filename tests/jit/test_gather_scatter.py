"""Integer-array indexing, traced integers as indices and the functions that index (np.take,
np.put, np.take_along_axis, np.put_along_axis, ufunc.at) against eager NumPy: same dtype, shape
and values, arguments written in place included, over dtypes and awkward shapes, on the
interpreter and the CPU; out-of-range indices raise IndexOutOfRange at the user's line when the
code runs, or a located error while tracing when the index is known then."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_inplace import check as check_in_place
from test_numpy_ops import ALL, CPU_DTYPES, Ops, both, check_ops, sample

from compiler import jit, numpy_indexing
from compiler.tracing import ConcretizationError, TraceError, UnsupportedError
from ir.diagnostics import IndexOutOfRange, TesselError

SHAPE = (5, 6, 7)
IDX = np.array([4, 0, -1, 2, 2, -5], np.int32)  # repeated and negative; fits every axis
FAR = np.array([-9, 0, 9, 100, -1])  # out of range: for mode="clip" and "wrap"
ALONG = np.random.default_rng(3).integers(-7, 7, (5, 6, 2))  # np.take_along_axis(axis=2)
I, J = 3, np.int64(-2)  # a Python int and a NumPy scalar: both traced
MASK = np.array([True, False, True, False, True])


def _reads() -> Ops:
    """Every index form, with (a, idx, i, j, far, along) as arguments."""
    return {
        # integer arrays, traced (idx) and concrete (lists, NumPy arrays)
        "idx": lambda a, idx, i, j, far, t: a[idx],
        "idx-axis-1": lambda a, idx, i, j, far, t: a[:, idx],
        "idx-last": lambda a, idx, i, j, far, t: a[..., idx],
        "idx-2d": lambda a, idx, i, j, far, t: a[idx[:4].reshape(2, 2)],
        "list": lambda a, idx, i, j, far, t: a[[0, -1, 1]],
        "list-empty": lambda a, idx, i, j, far, t: a[[]],
        "lists-broadcast": lambda a, idx, i, j, far, t: a[[[0], [4]], [1, 2, 5]],
        "int-array": lambda a, idx, i, j, far, t: a[1, idx],
        "array-int": lambda a, idx, i, j, far, t: a[:, idx, 0],
        "apart": lambda a, idx, i, j, far, t: a[idx, :, idx],
        "apart-int": lambda a, idx, i, j, far, t: a[0, :, idx],
        "apart-ellipsis": lambda a, idx, i, j, far, t: a[idx, ..., [1]],
        "negative-step": lambda a, idx, i, j, far, t: a[::-2, idx],
        "sliced": lambda a, idx, i, j, far, t: a[1:4, idx, 2:],
        "mask-and-int": lambda a, idx, i, j, far, t: a[MASK, 1],
        "mask-list": lambda a, idx, i, j, far, t: a[[True, False, True, False, True]],
        "mask-2d": lambda a, idx, i, j, far, t: a[np.eye(5, 6, dtype=bool)],
        "idx-empty": lambda a, idx, i, j, far, t: a[idx[:0]],
        "none-apart": lambda a, idx, i, j, far, t: a[idx, None, [1]],
        "none-first": lambda a, idx, i, j, far, t: a[None, idx, 1],
        "none-last": lambda a, idx, i, j, far, t: a[:, idx, None],
        # traced integers: basic indexing
        "i": lambda a, idx, i, j, far, t: a[i],
        "i-j": lambda a, idx, i, j, far, t: a[i, j],
        "i-row": lambda a, idx, i, j, far, t: a[i, :],
        "j-column": lambda a, idx, i, j, far, t: a[:, j],
        "i-slice-j": lambda a, idx, i, j, far, t: a[i, 2:, j],
        "i-all-j": lambda a, idx, i, j, far, t: a[i, :, j],
        "ellipsis-i": lambda a, idx, i, j, far, t: a[..., i],
        "i-int": lambda a, idx, i, j, far, t: a[i, 1],
        "i-j-int": lambda a, idx, i, j, far, t: a[i, j, 0],
        "i-none": lambda a, idx, i, j, far, t: a[None, i, None],
        "argmax": lambda a, idx, i, j, far, t: a[np.argmax(a[:, 0, 0])],
        "idx-element": lambda a, idx, i, j, far, t: a[:, :, idx[1]],
        # slices of static length from a traced start
        "i:i+2": lambda a, idx, i, j, far, t: a[i : i + 2],
        "i-2:i+1": lambda a, idx, i, j, far, t: a[i - 2 : i + 1],
        "j-1:j+1": lambda a, idx, i, j, far, t: a[:, j - 1 : j + 1],
        "i-3:i+3:2": lambda a, idx, i, j, far, t: a[1, i - 3 : i + 3 : 2],
        "1+i:i+2": lambda a, idx, i, j, far, t: a[1 + i : i + 2],
        "i:i": lambda a, idx, i, j, far, t: a[i:i],
        # traced integers with arrays: advanced indices of shape ()
        "i-idx": lambda a, idx, i, j, far, t: a[i, idx],
        "idx-j": lambda a, idx, i, j, far, t: a[idx, :, j],
        "slice-idx": lambda a, idx, i, j, far, t: a[i - 1 : i + 1, idx],
        "traced-list": lambda a, idx, i, j, far, t: a[[i, j, 0]],
        # functions
        "take": lambda a, idx, i, j, far, t: np.take(a, idx),
        "take-axis": lambda a, idx, i, j, far, t: np.take(a, idx, axis=1),
        "take-int": lambda a, idx, i, j, far, t: np.take(a, 5),
        "take-traced-int": lambda a, idx, i, j, far, t: np.take(a, i, axis=-1),
        "take-list": lambda a, idx, i, j, far, t: np.take(a, [[0, 1]], axis=-1),
        "take-method": lambda a, idx, i, j, far, t: a.take(idx, axis=2),
        "take-clip": lambda a, idx, i, j, far, t: np.take(a, far, axis=0, mode="clip"),
        "take-wrap": lambda a, idx, i, j, far, t: np.take(a, far, axis=1, mode="wrap"),
        "take-clip-list": lambda a, idx, i, j, far, t: np.take(a, [-9, 100], mode="clip"),
        "take-wrap-list": lambda a, idx, i, j, far, t: np.take(a, [-9, 100], mode="wrap"),
        "take-along": lambda a, idx, i, j, far, t: np.take_along_axis(a, t, axis=2),
        "take-along-1": lambda a, idx, i, j, far, t: np.take_along_axis(a, t[:1], axis=-1),
        "take-along-none": lambda a, idx, i, j, far, t: np.take_along_axis(a, idx, axis=None),
        "take-along-0": lambda a, idx, i, j, far, t: np.take_along_axis(
            a, np.array([[[4], [0], [-1], [1], [2], [3]]]), axis=0
        ),
    }


def _read_args(dt: str) -> tuple[Any, ...]:
    x = sample(np.random.default_rng(ALL.index(dt)), SHAPE, dt)
    return x, IDX, I, J, FAR, ALONG


def _cpu_share(ops: Ops, dt: str, target: str, every_dtype: tuple[str, ...] = ()) -> Ops:
    """On the CPU, whose compiles cost real time, each op runs for one of CPU_DTYPES in turn
    (those named in `every_dtype`, for all of them): every op compiled once, every dtype too."""
    if target != "cpu":
        return ops
    share = CPU_DTYPES.index(dt)
    return {
        name: fn
        for n, (name, fn) in enumerate(ops.items())
        if n % len(CPU_DTYPES) == share or name in every_dtype
    }


@pytest.mark.parametrize(("dt", "target"), both(ALL))
def test_reads(dt: str, target: str) -> None:
    ops = _cpu_share(_reads(), dt, target)
    assert check_ops(ops, _read_args(dt), target) == len(ops)


def _copy_then(write: Callable[..., Any]) -> Callable[..., Any]:
    """A write on a copy of the first argument, returned: each op of a bundle starts afresh."""

    def run(a: Any, *rest: Any) -> Any:
        b = a.copy()
        result = write(b, *rest)
        return b if result is None else (b, result)

    return run


def _set(b: Any, index: Any, value: Any) -> None:
    b[index] = value


def _writes(value: np.ndarray, one: Any) -> Ops:
    """Writes through every index form, with (a, idx, i, j, v) as arguments; `value` is a
    concrete array of a's dtype, `one` a scalar of it."""
    writes: dict[str, Callable[..., Any]] = {
        "idx=": lambda b, idx, i, j, v: _set(b, idx, v[0]),
        "idx=scalar": lambda b, idx, i, j, v: _set(b, idx, one),
        "idx=row": lambda b, idx, i, j, v: _set(b, (idx, 1), v[0, 0]),
        "repeated-last-wins": lambda b, idx, i, j, v: _set(b, ([0, 0, 1], [1, 1, 2]), v[0, :3, :1]),
        "apart=": lambda b, idx, i, j, v: _set(b, (0, slice(None), idx), v[0, :, :1]),
        "list=": lambda b, idx, i, j, v: _set(b, [[3], [1]], value[:2, None]),
        "mask=": lambda b, idx, i, j, v: _set(b, (MASK, 2), v[0, 0]),
        "none=": lambda b, idx, i, j, v: _set(b, (None, idx), v[0]),
        "i=": lambda b, idx, i, j, v: _set(b, i, v[1]),
        "i,j=": lambda b, idx, i, j, v: _set(b, (i, j), one),
        "i,j,0=": lambda b, idx, i, j, v: _set(b, (i, j, 0), v[0, 0, 0]),
        "slice=": lambda b, idx, i, j, v: _set(b, slice(i - 1, i + 1), v[:2]),
        "i-idx=": lambda b, idx, i, j, v: _set(b, (i, idx), v[0, 0]),
        "idx+=": lambda b, idx, i, j, v: _iadd(b, idx, v[0]),  # a repeat is added once
        "i+=": lambda b, idx, i, j, v: _iadd(b, i, v[2]),
        "slice*=": lambda b, idx, i, j, v: _imul(b, slice(j - 2, j), v[0, 0]),
        "put": lambda b, idx, i, j, v: np.put(b, idx, v[0, 0]),
        "put-cycle": lambda b, idx, i, j, v: np.put(b, [0, 7, 9, 11, -1], v[0, 0, :2]),
        "put-clip": lambda b, idx, i, j, v: np.put(b, [-9, 1000], v[0, 0, :2], mode="clip"),
        "put-wrap": lambda b, idx, i, j, v: b.put(idx * 100, one, mode="wrap"),
        "put-along": lambda b, idx, i, j, v: np.put_along_axis(b, ALONG, v[..., :2], axis=2),
        "put-along-none": lambda b, idx, i, j, v: np.put_along_axis(b, idx, v[0, 0, :6], None),
        "add.at": lambda b, idx, i, j, v: np.add.at(b, idx, v[0]),
        "add.at-scalar": lambda b, idx, i, j, v: np.add.at(b, (idx, 0, idx), one),
        "add.at-slice": lambda b, idx, i, j, v: np.add.at(b, slice(1, 3), one),
        "add.at-i": lambda b, idx, i, j, v: np.add.at(b, i, v[0]),
        "add.at-none": lambda b, idx, i, j, v: np.add.at(b, (idx, None, 0), v[0, :1, :1]),
        "subtract.at": lambda b, idx, i, j, v: np.subtract.at(b, (slice(None), idx), v[:, :1]),
        "multiply.at": lambda b, idx, i, j, v: np.multiply.at(b, idx, v[0]),
        "minimum.at": lambda b, idx, i, j, v: np.minimum.at(b, (idx, 1, 2), v[0, 0, :6]),
        "maximum.at": lambda b, idx, i, j, v: np.maximum.at(b, [1, 1, 0], v[:3]),
    }
    return {name: _copy_then(w) for name, w in writes.items()}


def _iadd(b: Any, index: Any, v: Any) -> None:
    b[index] += v


def _imul(b: Any, index: Any, v: Any) -> None:
    b[index] *= v


@pytest.mark.parametrize(("dt", "target"), both(ALL))
def test_writes(dt: str, target: str) -> None:
    rng = np.random.default_rng(10 + ALL.index(dt))
    x, v = sample(rng, SHAPE, dt), sample(rng, SHAPE, dt)
    one = v.flat[0]
    # scatters that combine differ per dtype (a boolean add is `or`): all of them on the CPU
    ops = _cpu_share(_writes(v, one), dt, target, tuple(n for n in _writes(v, one) if ".at" in n))
    # NumPy has no boolean subtract: both refuse it
    expected = len(ops) - (dt == "bool" and "subtract.at" in ops)
    assert check_ops(ops, (x, IDX, I, J, v), target) == expected


EDGES = [(0, 3), (3, 0), (1,), (1, 1, 1), (7,)]


def _edge_ops(shape: tuple[int, ...]) -> Ops:
    """With (a, idx, i, k): i = 0 and k = -1, traced."""
    ops: Ops = {
        "empty-list": lambda a, idx, i, k: a[[]],
        "empty-idx": lambda a, idx, i, k: a[idx[:0]],
        "take-empty": lambda a, idx, i, k: np.take(a, [], axis=0),
        "i:i+1": lambda a, idx, i, k: a[i : i + 1],
        "put-empty": _copy_then(lambda b, idx, i, k: np.put(b, [], 1)),
    }
    if shape[0]:
        ops |= {
            "i": lambda a, idx, i, k: a[i],
            "k": lambda a, idx, i, k: a[k],
            "idx": lambda a, idx, i, k: a[idx],
            "list": lambda a, idx, i, k: a[[0, 0, -1]],
            "idx=": _copy_then(lambda b, idx, i, k: _set(b, idx, 1)),
            "k=": _copy_then(lambda b, idx, i, k: _set(b, k, 1)),
            "add.at": _copy_then(lambda b, idx, i, k: np.add.at(b, idx, b.dtype.type(1))),
        }
    else:  # every slice of an empty axis is empty, even one NumPy would read backwards
        ops["k:k+1"] = lambda a, idx, i, k: a[k : k + 1]
    if len(shape) > 1:
        ops |= {
            "column-list": lambda a, idx, i, k: a[:, [0, -1]] if a.shape[1] else a[:, []],
            "column": lambda a, idx, i, k: a[:, k] if a.shape[1] else a[:, :0],
            "column-slice": lambda a, idx, i, k: a[:, i : i + 1],
        }
    return ops


@pytest.mark.parametrize("shape", EDGES, ids=str)
@pytest.mark.parametrize(("dt", "target"), [*both(["f32"]), ("i8", "interp"), ("bool", "interp")])
def test_awkward_shapes(shape: tuple[int, ...], dt: str, target: str) -> None:
    x = sample(np.random.default_rng(5), shape, dt)
    ops = _edge_ops(shape)
    assert check_ops(ops, (x, np.array([0, -1, 0], np.int64), 0, -1), target) == len(ops)


# --- views, copies and the arguments written ----------------------------------------------

F = np.random.default_rng(17).standard_normal((4, 5)).astype(np.float32)
K = np.random.default_rng(18).integers(-9, 9, (4, 5)).astype(np.int16)


def test_traced_integer_indices_give_views() -> None:
    def f(x: Any, i: Any) -> Any:
        row = x[i]  # a view: NumPy's x[np.int64(1)] is one
        row[0] = 9.0  # writes x[i, 0]
        window = x[:, i : i + 2]
        window *= 2  # writes x[:, i:i + 2]
        x[i, -1] = -1.0  # shows in `row`
        return row.copy(), window + 0

    check_in_place(f, F, 1)
    check_in_place(f, F, np.int32(-3))


def test_integer_array_indices_give_copies() -> None:
    def f(x: Any, idx: Any) -> Any:
        picked = x[idx]  # a copy: writing it leaves x alone
        picked[0] = 100.0
        x[idx] += 1  # a repeated position is incremented once
        x[[0, 0]] = x[[1, 2]]  # the last write wins
        return picked

    check_in_place(f, F, np.array([3, 1, 3, -1]))


def test_functions_write_their_array_argument() -> None:
    def f(x: Any, k: Any, idx: Any, v: Any) -> None:
        np.add.at(x, idx, v)  # repeats accumulate
        np.subtract.at(x, (idx, 0), 1.0)
        np.maximum.at(k, (idx, idx), 5)
        np.put(k, idx * 3, [7, -7])
        np.put_along_axis(x, np.ones((4, 1), np.int64), 0.5, axis=1)
        k[0].put([1, 2], 9)  # through a view of a row

    check_in_place(f, F, K, np.array([0, 2, 0, -1]), F[0])


def test_a_written_argument_through_a_traced_index() -> None:
    def f(hist: Any, bins: Any, counts: Any) -> Any:
        np.add.at(hist, bins, 1)
        counts[bins] = np.arange(bins.size)
        return hist.sum()

    bins = np.array([1, 1, 4, 0, 1, 4])
    check_in_place(f, np.zeros(6, np.int64), bins, np.zeros(5, np.int32))


# --- errors ---------------------------------------------------------------------------------

MARK = "# error here"
X = np.arange(12.0).reshape(3, 4)


def _marked_line(fn: Callable[..., Any]) -> int:
    lines, start = inspect.getsourcelines(fn)
    (line,) = [start + n for n, text in enumerate(lines) if text.rstrip().endswith(MARK)]
    return line


def _located(err: TesselError, fn: Callable[..., Any]) -> None:
    assert err.loc is not None, err
    assert Path(err.loc.file) == Path(__file__), err.loc
    assert err.loc.line == _marked_line(fn), (err.loc, _marked_line(fn))


def _out_of_range() -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
    def read(x: Any, idx: Any) -> Any:
        return x[idx] * 2  # error here

    def scalar(x: Any, i: Any) -> Any:
        return x[1, i] + 1  # error here

    def window(x: Any, i: Any) -> Any:
        return x[:, i : i + 2]  # error here

    def written(x: Any, idx: Any) -> Any:
        x[idx, 0] = 5.0  # error here
        return x

    def take(x: Any, idx: Any) -> Any:
        return np.take(x, idx, axis=1)  # error here

    def add_at(x: Any, idx: Any) -> Any:
        np.add.at(x, idx, 1.0)  # error here
        return x

    far, past = np.array([0, 3]), np.array([0, -4])
    return [
        (read, (X, far)), (read, (X, past)), (scalar, (X, 4)), (scalar, (X, -5)),
        (written, (X, far)), (take, (X, np.array([4]))), (add_at, (X, far)),
        # NumPy's results would be shorter here (x[:, 3:5] has one column, x[:, -1:1] none)
        (window, (X, 3)), (window, (X, -1)),
    ]  # fmt: skip


@pytest.mark.parametrize("target", ["interp", "cpu"])
def test_a_traced_index_out_of_range_raises_at_the_users_line(target: str) -> None:
    for fn, args in _out_of_range():
        if fn.__name__ != "window":
            with pytest.raises(IndexError):  # what NumPy raises
                fn(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
        with pytest.raises(IndexOutOfRange) as info:
            jit(fn, target=target)(*[a.copy() if isinstance(a, np.ndarray) else a for a in args])
        assert isinstance(info.value, IndexError)
        assert "out of bounds" in info.value.message
        _located(info.value, fn)


def _expect(exc: type[TesselError], match: str, fn: Callable[..., Any], *args: Any) -> None:
    with pytest.raises(exc) as info:
        jit(fn, target="interp")(*args)
    assert re.search(match, info.value.message), info.value.message
    _located(info.value, fn)


def test_a_concrete_index_out_of_range_is_an_error_while_tracing() -> None:
    def listed(x: Any) -> Any:
        return x[[0, 3]]  # error here

    def array(x: Any) -> Any:
        return x[:, np.array([1, -5])]  # error here

    def take(x: Any) -> Any:
        return np.take(x, 12)  # error here

    def put(x: Any) -> Any:
        np.put(x, [-13], 1.0)  # error here

    def along(x: Any) -> Any:
        return np.take_along_axis(x, np.full((3, 1), 4), axis=1)  # error here

    def empty_axis(x: Any, i: Any) -> Any:
        return x[:, :0][0, i]  # error here

    _expect(TraceError, r"^x\[\.\.\.\]: index 3 is out of bounds for axis 0 with size 3", listed, X)
    _expect(TraceError, r"index -5 is out of bounds for axis 1 with size 4", array, X)
    _expect(TraceError, r"^np\.take: index 12 is out of bounds", take, X)
    _expect(TraceError, r"^np\.put: index -13 is out of bounds", put, X.copy())
    _expect(TraceError, r"index 4 is out of bounds for axis 1", along, X)
    _expect(TraceError, r"out of bounds for axis 1 with size 0", empty_axis, X, 0)


def test_what_is_not_supported_is_refused_with_a_reason() -> None:
    def traced_mask(x: Any) -> Any:
        return x[x[:, 0] > 2, 1]  # error here

    def unknown_length(x: Any, i: Any, j: Any) -> Any:
        return x[i:j]  # error here

    def backwards(x: Any, i: Any) -> Any:
        return x[i + 2 : i]  # error here

    def narrow_wrap(x: Any, i: Any) -> Any:  # an int8 i + 2 may wrap around: no known length
        return x[i : i + 2]  # error here

    def wider_values(x: Any, idx: Any, v: Any) -> Any:
        np.add.at(x, idx, v)  # error here
        return x

    idx = np.array([0, 1])
    _expect(UnsupportedError, r"traced boolean mask among other indices", traced_mask, X)
    _expect(ConcretizationError, r"using as an index or size.*x\[i:i \+ k\]", unknown_length,
            X, 0, 2)  # fmt: skip
    _expect(UnsupportedError, r"must not end before it starts", backwards, X, 0)
    _expect(
        ConcretizationError, r"traced bounds other than i and i \+ k", narrow_wrap, X, np.int8(1)
    )
    _expect(UnsupportedError, r"NumPy computes each result in float64 and rounds it to float32",
            wider_values, X.astype(np.float32), idx, X[0, :2])  # fmt: skip


def test_bool_arrays_still_select_with_a_traced_mask() -> None:
    """A traced mask alone stays a selection (compiler.masking); a concrete one is indices."""

    def f(x: Any) -> Any:
        x[x > 5] = 0.0
        x[X < 2] = -1.0  # a concrete mask: a scatter
        x[:, X[1] > 5] += 1.0
        return x[x < 3].sum(), x[:, X[0] > 0], x[X > 5]

    check_in_place(f, X)


# --- coverage -------------------------------------------------------------------------------


def test_the_tables_are_covered_and_documented() -> None:
    tested = {np.take, np.take_along_axis, np.put, np.put_along_axis}
    assert set(numpy_indexing.FUNCTIONS) == tested
    assert set(numpy_indexing.AT) == {np.add, np.subtract, np.multiply, np.minimum, np.maximum}
    doc = (Path(__file__).resolve().parents[2] / "docs" / "jit.md").read_text()
    names = [f"np.{f.__name__}" for f in tested] + [
        f"np.{u.__name__}.at" for u in numpy_indexing.AT
    ]
    assert not [n for n in names if f"`{n}`" not in doc]


def test_one_compile_serves_every_index_value() -> None:
    f = jit(lambda x, i, idx: (x[i], x[i : i + 2], x[idx]), target="interp")
    for i in (-3, 0, 1):
        idx = np.array([i, 0])
        for got, want in zip(f(X, i, idx), (X[i], X[i : i + 2], X[idx]), strict=True):
            np.testing.assert_array_equal(got, want)
    assert f.cache_info().misses == 1
