"""In-place NumPy under @jit: every function here runs unchanged in eager NumPy and compiled, on
copies of the same arguments, and must give the same results and leave the arguments holding
the same values (or both must raise)."""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from compiler import jit
from compiler.tracing import TraceError, UnsupportedError
from ir.diagnostics import TesselError
from ir.parser import parse_module

TARGETS = ("interp", "cpu")


def _copy(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def _same(got: Any, expected: Any) -> None:
    if isinstance(expected, tuple | list):
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            _same(g, e)
    elif isinstance(expected, dict):
        assert got.keys() == expected.keys()
        for k in expected:
            _same(got[k], expected[k])
    elif expected is None:
        assert got is None
    else:
        e = np.asarray(expected)
        g = np.asarray(got)
        assert g.dtype == e.dtype
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)


def check(fn: Callable[..., Any], *args: Any, targets: tuple[str, ...] = TARGETS) -> None:
    """`fn` compiled for each target matches NumPy, arguments included, on two calls (the
    second one takes the cached short path)."""
    numpy_args = [_copy(a) for a in args]
    expected = fn(*numpy_args)
    for target in targets:
        compiled = jit(fn, target=target)
        for _ in range(2):
            ours = [_copy(a) for a in args]
            _same(compiled(*ours), expected)
            _same(ours, numpy_args)


def check_both_refuse(fn: Callable[..., Any], *args: Any) -> TesselError:
    with pytest.raises((ValueError, TypeError)):  # NumPy's own error (UFuncTypeError is one)
        fn(*[_copy(a) for a in args])
    with pytest.raises(TesselError) as info:
        jit(fn, target="interp")(*[_copy(a) for a in args])
    return info.value


RNG = np.random.default_rng(17)
F = RNG.standard_normal((3, 5)).astype(np.float32)
G = RNG.standard_normal((3, 5)).astype(np.float32)
I = RNG.integers(-9, 9, (3, 5)).astype(np.int32)
J = RNG.integers(1, 4, (3, 5)).astype(np.int32)  # positive: divisors and exponents
B = RNG.random((3, 5)) > 0.5
C = RNG.random((3, 5)) > 0.5

AUGMENTED = [
    (operator.iadd, F, G), (operator.isub, F, G), (operator.imul, F, G),
    (operator.itruediv, F, G), (operator.ifloordiv, I, J), (operator.imod, I, J),
    (operator.ipow, I, J), (operator.iadd, I, J), (operator.iand, B, C), (operator.ior, I, J),
    (operator.ixor, B, C), (operator.iadd, F, np.float64(1.5)), (operator.imul, F, 2),
    (operator.iadd, F, G[0]), (operator.isub, I, 3), (operator.itruediv, F, 4.0),
    (operator.imatmul, F[:, :3].copy(), G[:, :3].T.copy()),
]  # fmt: skip


@pytest.mark.parametrize(("op", "x", "y"), AUGMENTED, ids=lambda v: getattr(v, "__name__", ""))
def test_augmented_assignment_writes_the_argument(op: Any, x: Any, y: Any) -> None:
    def f(x: Any, y: Any) -> Any:
        alias = x
        op(x, y)  # what `x op= y` calls: x changes, and so does every name bound to it
        return alias

    check(f, x, y)


def test_augmented_assignment_on_a_scalar_rebinds() -> None:
    def f(x: Any, s: Any) -> Any:
        total = x.sum()  # a NumPy scalar: immutable
        before = total
        total += 1
        kept = s
        s += 1  # an np.float32 argument: rebinds s only
        return total, before, s, kept

    check(f, F, np.float32(2.5))


def test_a_rank_0_array_argument_is_written() -> None:
    def f(x: Any) -> None:
        x += 1
        x *= 3

    check(f, np.array(2.0))


SETITEM = [
    (F, 1, 7.0), (F, -1, G[0]), (F, (slice(1, 3), slice(None, None, 2)), 0.5),
    (F, (Ellipsis, 0), G[:, 1]), (F, (None, 0), G[:1]), (F, slice(None), 1.0),
    (F, Ellipsis, G), (F, slice(2, 2), 3.0), (F, (slice(None), slice(1, None, 3)), G[:, :2]),
    (F, 0, G[:1].reshape(1, 1, 5)),  # leading axes of size 1 are dropped, as NumPy does
    (I, (0, 1), 7.9),  # cast as NumPy casts: 7
    (I, (slice(None), 4), np.arange(3)), (B, (1,), True),
    (np.zeros((1, 1, 7), np.float32), (0, 0, slice(1, None, 2)), 2.0),
    (np.zeros((0, 3), np.float32), slice(None), 1.0),
]  # fmt: skip


@pytest.mark.parametrize(("x", "index", "value"), SETITEM)
def test_item_assignment(x: Any, index: Any, value: Any) -> None:
    def f(x: Any) -> Any:
        x[index] = value
        return x.sum(axis=0)

    check(f, x)


def test_item_assignment_with_traced_values_and_augmented_items() -> None:
    def f(x: Any, y: Any) -> Any:
        x[0] = y[1] * 2
        x[1:, ::2] += y[1:, :3]
        x[-1] -= x[0]
        x[:, 0] = x[:, -1]
        return x.sum()

    check(f, F, G)


def test_views_follow_their_array() -> None:
    def f(x: Any) -> Any:
        tail = x[1:]
        tail[0] = 1.0  # writes x[1]
        later = x[:, 2:]  # a sibling view
        inner = tail[1:, 1:]  # a view of a view
        inner *= 2  # writes x[2, 1:]
        x[0, 3] = -5.0  # shows in `later`
        return tail.copy(), later + 0, x[0]

    check(f, F)


def test_rows_from_iteration_are_views() -> None:
    def f(x: Any) -> None:
        for row in x:
            row *= 2
            row[0] = row[1]

    check(f, F)


def test_overlapping_update_reads_the_old_values() -> None:
    def f(x: Any) -> None:
        x[1:] += x[:-1]  # NumPy buffers the overlap: the right side is read first

    check(f, F[0])


def test_copies_are_independent() -> None:
    def f(x: Any) -> Any:
        a, b, c = x.copy(), np.copy(x), x.flatten()
        d = x.astype(np.float32)
        a += 1
        b[0] = 9.0
        c[0] = 9.0
        d *= 0
        return x, a, b, c, d

    check(f, F)


def test_read_only_views_read_correctly() -> None:
    def f(x: Any) -> Any:
        t = x.T
        row = np.expand_dims(x[0], 0)
        x[0, 0] = 42.0  # NumPy's views show the write
        return t + 0, row * 1, np.broadcast_to(x[1], (2, 5)) + 0

    check(f, F)


def test_stencil_loop() -> None:
    def relax(u: Any, f: Any) -> Any:
        for _ in range(4):
            u[1:-1, 1:-1] = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:]
                                    - f[1:-1, 1:-1])  # fmt: skip
        return u

    check(relax, RNG.standard_normal((9, 7)), RNG.standard_normal((9, 7)))


def test_out_copyto_and_fill() -> None:
    def f(x: Any, y: Any, z: Any) -> Any:
        r = np.add(x, y, out=x)
        np.multiply(y, 2, out=z)
        np.exp(z, out=z)
        np.copyto(y, x[0])  # broadcast over the rows
        w = np.zeros_like(x)
        w.fill(3)
        return r is x, w

    check(f, F, G, np.zeros_like(F))


def test_dict_arguments_are_written() -> None:
    def sgd(params: Any, grads: Any) -> None:
        for name in params:
            params[name] -= 0.1 * grads[name]

    check(sgd, {"w": F, "b": G[0]}, {"w": G, "b": F[0]})


def test_refusals_match_numpy_refusing() -> None:
    def bad_cast(x: Any) -> Any:
        x += 0.5
        return x

    def bad_shape(x: Any, y: Any) -> Any:
        x += y
        return x

    def bad_value(x: Any) -> Any:
        x[0] = np.ones(4)
        return x

    def masked_cast(x: Any, y: Any) -> Any:  # tessel fuzz --kind numpy, seed 12
        x[y > 1] -= 0.5
        return x

    def two_d_into_a_mask(x: Any, y: Any) -> Any:  # seed 11
        x[x > 1] = y[:, 3:]
        return x

    def array_into_an_element(x: Any, y: Any) -> Any:  # seed 11
        x[-1] /= y[...]
        return x

    def fill_with_an_array(x: Any) -> Any:
        x.fill(x[:1])
        return x

    check_both_refuse(bad_cast, I)
    check_both_refuse(bad_shape, F[0], F)
    check_both_refuse(bad_value, F)
    check_both_refuse(masked_cast, I, F)
    check_both_refuse(two_d_into_a_mask, F, G)
    check_both_refuse(array_into_an_element, F[0], G[0])
    check_both_refuse(fill_with_an_array, F[0])


# --- the call: writing back into the caller's arrays ----------------------------------------


def _increment(x: Any) -> Any:
    x += 1
    return x


@pytest.mark.parametrize("target", TARGETS)
def test_the_written_argument_is_returned_as_itself(target: str) -> None:
    f = jit(_increment, target=target)
    a = np.zeros(4, np.float32)
    for expected in (1, 2):  # the second call takes the short path
        assert f(a) is a
        assert np.array_equal(a, np.full(4, expected, np.float32))
    assert "writes to argument(s) 'x'" in f.explanations[0]


def test_a_strided_argument_is_written_through() -> None:
    base = np.zeros(10, np.float32)
    jit(_increment, target="cpu")(base[::2])
    assert np.array_equal(base, np.tile([1, 0], 5).astype(np.float32))


def test_read_only_and_shared_arguments_are_refused_before_running() -> None:
    f = jit(_increment, target="cpu")
    frozen = np.zeros(3, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(TesselError, match=r"writes to its argument 'x', which is read-only"):
        f(frozen)

    def add_into(x: Any, y: Any) -> None:
        x += y

    g = jit(add_into, target="cpu")
    a = np.arange(8, dtype=np.float32)
    before = a.copy()
    with pytest.raises(TesselError, match=r"shares memory with argument 'y'"):
        g(a[:4], a[2:6])
    assert np.array_equal(a, before)  # nothing ran
    g(a[::2], a[1::2])  # interleaved: no element shared
    assert np.array_equal(a[::2], before[::2] + before[1::2])


def test_arrays_made_by_numpy_constructors_are_traced() -> None:
    def qr(A: Any) -> Any:  # classical Gram-Schmidt, as written for NumPy
        m, n = A.shape
        Q = np.zeros((m, n))
        R = np.zeros((n, n))
        for k in range(n):
            v = A[:, k].copy()
            for j in range(k):
                R[j, k] = Q[:, j] @ A[:, k]
                v -= R[j, k] * Q[:, j]
            R[k, k] = np.sqrt(v @ v)
            Q[:, k] = v / R[k, k]
        return Q, R

    def still_concrete(x: Any) -> Any:
        weights = np.ones(3) / 3  # computed from: traced
        n = int(np.ones((), int))  # never written: still known
        out = np.empty_like(x)
        out[:] = x * n
        return out, np.full(2, x.sum()), weights, np.eye(3, dtype=np.float32)

    check(qr, RNG.standard_normal((6, 4)))
    check(still_concrete, F[0])


def test_a_numpy_array_the_function_copied_stays_numpy_s() -> None:
    def f(x: Any) -> Any:
        out = F.copy()  # ndarray.copy: NumPy's array
        out[0, 0] = x.sum()
        return out

    with pytest.raises(TraceError, match="cannot be stored into a NumPy array"):
        jit(f, target="interp")(F)


def test_writing_a_transpose_is_refused() -> None:
    def f(x: Any) -> Any:
        x.T[0] = 1.0
        return x

    with pytest.raises(UnsupportedError, match=r"writing into the result of x\.T"):
        jit(f, target="interp")(F)


def test_the_traced_text_says_which_results_are_written_back() -> None:
    def f(x: Any, y: Any) -> Any:
        y[0] = 1.0
        return x * 2

    text = jit(f, target="interp").lower(F, G).as_text()
    assert text.startswith("# results written back into the arguments (in place): 1: 'y'\n")
    assert len(parse_module(text).functions[0].results) == 2


@pytest.mark.parametrize(
    ("shape", "val", "wrap"),
    [((4, 4), 2.5, False), ((7, 3), 1.0, True), ((3, 5), np.arange(2.0), False),
     ((3, 3, 3), -1.0, False), ((1, 1), 9.0, False)],
)  # fmt: skip
def test_fill_diagonal(shape: tuple[int, ...], val: Any, wrap: bool) -> None:
    def f(x: Any, s: Any) -> Any:
        np.fill_diagonal(x, val, wrap=wrap)
        y = x * 2
        np.fill_diagonal(y[(slice(2),) * y.ndim], s)  # a traced scalar, through a view
        return y

    check(f, RNG.standard_normal(shape).astype(np.float32), np.float32(0.5))


def test_replaced_container_entries_reach_the_caller() -> None:
    def step(params: Any, grads: Any, state: Any) -> Any:
        for k in sorted(params):
            params[k] = params[k] - 0.1 * grads[k]  # a new array in the caller's dict
        state[0], state[1] = state[1], state[0]  # the caller's own arrays, swapped
        state[2] = 3  # a Python object
        return params["w"].sum()

    args = ({"w": F, "b": G[0]}, {"w": G, "b": F[0]}, [F[0], G[0], 0])
    check(step, *args)
    stepped = jit(step, target="interp")
    text = stepped.lower(*args).as_text()
    assert "# results stored into the container arguments: 1: params['b'], 2: params['w']" in text
    stepped(*[_copy(a) for a in args])
    assert (
        "it replaces params['b'], params['w'], state[0], state[1], state[2]"
        in (stepped.explanations[0])
    )
    state = [F[0].copy(), G[0].copy(), 0]
    first, second = state[0], state[1]
    jit(step, target="cpu")({"w": F.copy(), "b": G[0].copy()}, {"w": G, "b": F[0]}, state)
    assert state[0] is second
    assert state[1] is first
    assert state[2] == 3


def test_changing_a_container_argument_is_refused() -> None:
    def grow(params: Any) -> Any:
        params["extra"] = params["w"] * 2
        return params["w"]

    with pytest.raises(TraceError, match=r"grow\(\) changed the structure of its argument"):
        jit(grow, target="interp")({"w": F})


def test_constructors_stay_numpy_s_outside_the_users_code() -> None:
    """NumPy's own functions (np.pad makes its result with np.empty), other threads and code
    after the trace get NumPy arrays."""
    seen: list[Any] = []

    def f(x: Any) -> Any:
        padded = np.pad(G[0], 1)  # a concrete operand: NumPy computes it, with np.empty
        assert type(padded) is np.ndarray
        worker = threading.Thread(target=lambda: seen.append(np.zeros(2)))
        worker.start()
        worker.join()
        return x * padded.sum()

    check(f, F[0])
    assert all(type(a) is np.ndarray for a in seen)
    assert type(np.zeros(2)) is np.ndarray


def test_boolean_masks_store_update_and_reduce() -> None:
    def f(x: Any, y: Any, n: Any) -> Any:
        positive = x > 0
        x[positive] = 0.5
        y[y < 0] *= 2
        total = x[x > 0.2].sum() + np.sum(y[positive])
        mean = y[positive].mean()
        x[positive] = y[positive] * 3 - 1
        n[n % 2 == 0] = 2.7  # cast as NumPy casts: 2
        n[n > 3] += 1
        return total, mean, x[x < 0].any(), np.all(y[~positive] < 9), n[n < 0].mean()

    check(f, F, G, I)


def test_a_mask_over_leading_axes_selects_rows() -> None:
    def f(x: Any, keep: Any) -> Any:
        x[x[:, 0] > 0] = np.arange(5.0)  # every selected row gets the row
        x[keep] -= 1
        return x[keep].sum()

    check(f, F, np.array([True, False, True]))


def test_what_a_mask_cannot_do_is_refused() -> None:
    def returned(x: Any) -> Any:
        return x[x > 0]

    def wrong_values(x: Any) -> Any:
        x[x > 0] = np.arange(15.0)  # NumPy pairs them in order: a data-dependent count
        return x

    def other_mask(x: Any, y: Any) -> Any:
        x[x > 0] = y[y > 0]
        return x

    def sized(x: Any) -> Any:
        return len(x[x > 0])

    for fn, args in ((returned, (F,)), (wrong_values, (F,)), (other_mask, (F, G)), (sized, (F,))):
        with pytest.raises(TraceError, match=r"depends on the data|different mask|another mask"):
            jit(fn, target="interp")(*args)


def test_negative_steps_and_flips() -> None:
    def f(x: Any, y: Any) -> Any:
        before = x[::-1]  # a view: it sees the writes below
        x[::-2] = y[1::2][::-1] * 10
        mirrored = x[:, ::-1]
        mirrored[0, :2] = -1.0  # writes x[0, -2:]
        x[-1:0:-2, 3:0:-1] += 1
        return before + 0, np.flip(x, 0), np.fliplr(x), np.flipud(y), np.flip(x), x[::-3, ::-2]

    check(f, F, G)
