"""@jit's native dispatcher (compiler/native_dispatch.py, codegen/dispatch.py): cached calls
run in machine code, and everything it does not serve exactly takes the Python path with the
same results and errors."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from compiler import jit
from compiler.jitfunc import JitFunction
from ir.diagnostics import IndexOutOfRange, TesselError
from runtime import pyabi

RNG = np.random.default_rng(7)


def served_natively(f: JitFunction) -> bool:
    return type(type(f).__call__).__name__ == "builtin_function_or_method"


def scale(x: Any) -> Any:
    return 2.0 * x + 1.0


def dot_sum(a: Any, b: Any) -> Any:
    return (a * b).sum()


def gather(x: Any, idx: Any) -> Any:
    return x[idx]


def axpy(alpha: Any, x: Any, y: Any) -> Any:
    return alpha * x + y


def shift(x: Any, k: Any, flip: Any) -> Any:
    return np.where(flip, -x, x) + k


def bit_count(data: Any) -> Any:  # a loop: the program runs with the GIL released
    total = np.uint32(0)
    for i in range(data.shape[0]):
        v = data[i]
        while v:
            total += v & np.uint32(1)
            v = v >> np.uint32(1)
    return total


CASES: list[tuple[Callable[..., Any], tuple[np.ndarray, ...]]] = [
    (scale, (RNG.standard_normal(5),)),
    (scale, (RNG.standard_normal((3, 0)),)),  # size 0
    (scale, (np.array(2.5, np.float32),)),  # 0-d
    (scale, (RNG.standard_normal((4, 3)) + 1j,)),  # complex
    (dot_sum, (RNG.integers(-9, 9, (7, 3)), RNG.integers(-9, 9, (7, 3)))),
    (gather, (RNG.standard_normal(6), np.array([5, 0, -6, 2]))),
    (bit_count, (RNG.integers(0, 1 << 20, 33, dtype=np.uint32),)),
    (axpy, (0.5, RNG.standard_normal(7), RNG.standard_normal(7))),  # a Python float
    (shift, (RNG.integers(-9, 9, 5), 3, True)),  # a Python int and bool
]


def test_this_interpreters_layout_is_verified() -> None:
    # CI's CPython and NumPy: the offsets the dispatcher reads are confirmed on live objects,
    # and a wrong offset is caught by the same check
    assert pyabi.LAYOUT is not None
    assert not pyabi._matches(pyabi.Layout(descr=48))


@pytest.mark.parametrize(
    ("fn", "args"), CASES, ids=[f"{f.__name__}-{i}" for i, (f, _) in enumerate(CASES)]
)
def test_cached_calls_run_natively_and_match_numpy(
    fn: Callable[..., Any], args: tuple[np.ndarray, ...]
) -> None:
    f = jit(fn)
    want = fn(*args)
    first = f(*args)
    assert not served_natively(f)  # a first call builds no dispatcher (about 10 ms)
    np.testing.assert_allclose(f(*args), want, rtol=1e-6)  # the second call does
    assert served_natively(f)
    hits = f.cache_info().hits
    for _ in range(3):
        got = f(*args)
        assert got is not first  # a fresh result every call
        assert got.dtype == np.asarray(want).dtype
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert f.cache_info().hits == hits + 3


def test_every_call_it_does_not_serve_takes_the_python_path() -> None:
    f = jit(scale)
    x = RNG.standard_normal((4, 6))
    f(x)
    f(x)
    assert served_natively(f)

    class Sub(np.ndarray):
        pass

    others = [
        x[:, ::2],  # not contiguous
        x.astype(np.dtype(np.float64, metadata={"unit": "m"})),  # an equal dtype, not NumPy's own
        x.astype(np.float32),
        x[:3],  # another shape
        x.reshape(24),  # another rank
        x.view(Sub),  # not exactly an ndarray
        np.asfortranarray(x),
        3.0,
    ]
    readonly = x.copy()
    readonly.flags.writeable = False
    others.append(readonly)  # served: inputs are only read
    for a in others:
        np.testing.assert_allclose(f(a), scale(np.asarray(a, np.float64)), rtol=1e-6)
    np.testing.assert_allclose(f(x=x), scale(x))
    with pytest.raises(TesselError, match="other byte order"):
        f(x.astype(">f8"))
    with pytest.raises(TesselError, match="too many positional arguments"):
        f(x, x)
    np.testing.assert_allclose(f(x), scale(x))  # whichever signature is served now


def test_python_numbers_are_read_as_they_come() -> None:
    f, g = jit(axpy), jit(shift)
    x, y = RNG.standard_normal(4), RNG.standard_normal(4)
    f(1.0, x, y)
    f(1.0, x, y)
    ints = RNG.integers(-9, 9, 4)
    g(ints, 1, False)
    g(ints, 1, False)
    assert served_natively(f)
    assert served_natively(g)
    for alpha in (0.0, -0.0, 2.5, 1e300, float("inf"), float("nan")):
        np.testing.assert_array_equal(f(alpha, x, y), axpy(alpha, x, y))
    for k in (0, -1, 2**62, -(2**63)):
        for flip in (False, True):
            np.testing.assert_array_equal(g(ints, k, flip), shift(ints, k, flip))
    native_hits = g._natives[-1].hits
    with pytest.raises(OverflowError):  # out of int64, as in NumPy
        g(ints, 2**63, False)
    assert g._natives[-1].hits == native_hits  # the Python path answered it
    # not the Python numbers the signature has: a NumPy scalar, an int for a float, 1 for True
    np.testing.assert_allclose(f(np.float64(2.0), x, y), axpy(2.0, x, y))
    np.testing.assert_allclose(f(3, x, y), axpy(3, x, y))
    np.testing.assert_array_equal(g(ints, 2, 1), shift(ints, 2, 1))


def test_a_failed_check_raises_the_located_error() -> None:
    f = jit(gather)
    x = RNG.standard_normal(6)
    f(x, np.array([1, 2]))
    f(x, np.array([1, 2]))
    assert served_natively(f)
    with pytest.raises(IndexOutOfRange, match="out of bounds") as info:
        f(x, np.array([1, 6]))
    assert "return x[idx]" in str(info.value)  # the user's line
    np.testing.assert_array_equal(f(x, np.array([0, -1])), x[[0, -1]])  # and it goes on


def test_concurrent_calls_of_a_program_that_releases_the_gil() -> None:
    f = jit(bit_count)
    inputs = [RNG.integers(0, 1 << 31, 257, dtype=np.uint32) for _ in range(8)]
    f(inputs[0])
    f(inputs[0])
    assert served_natively(f)
    want = [bit_count(d) for d in inputs]
    errors: list[str] = []

    def work(k: int) -> None:
        for i in range(200):
            j = (k + i) % len(inputs)
            if f(inputs[j]) != want[j]:
                errors.append(f"thread {k}, call {i}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_cache_clear_returns_to_the_python_path() -> None:
    f = jit(scale)
    x = RNG.standard_normal(3)
    f(x)
    f(x)
    assert served_natively(f)
    f.cache_clear()
    assert type(f).__call__ is JitFunction.dispatch
    for _ in range(2):  # compiled again, and served natively again
        np.testing.assert_allclose(f(x), scale(x))
    assert served_natively(f)


def test_it_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSEL_NATIVE_DISPATCH", "0")
    f = jit(scale)
    x = RNG.standard_normal(3)
    np.testing.assert_allclose(f(x), scale(x))
    np.testing.assert_allclose(f(x), scale(x))
    assert type(f).__call__ is JitFunction.dispatch
