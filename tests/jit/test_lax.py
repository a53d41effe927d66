"""`tessel.lax` (fori_loop, while_loop, cond, scan, select) under @jit, against the same
functions run eagerly on NumPy values (the oracle), plus the shape of the traced IR (one
`while` op, not an unrolled chain) and the errors."""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import numpy as np
import pytest

import compiler
import tessel
from compiler import jit, lax, pytree
from compiler.tracing import TraceError, Tracer
from ir.diagnostics import IndexOutOfRange
from ir.graph import Function
from ir.ops import Op

TARGETS = ["cpu", "interp"]


def assert_same(got: Any, want: Any) -> None:
    g_leaves, g_tree = pytree.flatten(got)
    w_leaves, w_tree = pytree.flatten(want)
    assert g_tree == w_tree
    for g, w in zip(g_leaves, w_leaves, strict=True):
        g, w = np.asarray(g), np.asarray(w)
        assert (g.shape, g.dtype) == (w.shape, w.dtype)
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=1e-6 if w.dtype == np.float32 else 1e-12)
        else:
            np.testing.assert_array_equal(g, w)


def check(fn: Any, *args: Any, target: str = "cpu", **options: Any) -> Any:
    """Run `fn` compiled and eagerly (on copies of the arguments); the results must agree."""
    got = jit(fn, target=target, **options)(*copy.deepcopy(args))
    want = fn(*copy.deepcopy(args))
    assert_same(got, want)
    return got


def all_ops(fn: Function) -> list[Op]:
    return [n.op for n in fn.walk()]


def entry(f: Any, *args: Any) -> Function:
    return jit(f).lower(*args).module.entry_function


# --- fori_loop ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_fori_loop_static_bounds(target, dtype):
    def f(x):
        return lax.fori_loop(0, 7, lambda i, c: c * 2 - x + i, x)

    check(f, np.arange(5).astype(dtype), target=target)


@pytest.mark.parametrize("target", TARGETS)
def test_fori_loop_traced_bounds(target):
    def f(x, lo, hi):
        return lax.fori_loop(lo, hi, lambda i, c: c + x * i, np.zeros_like(x))

    x = np.linspace(0, 1, 3, dtype=np.float32)
    g = jit(f, target=target)
    for lo, hi in [(2, 9), (0, 1), (5, 5), (7, 3), (-3, 2)]:  # the last three: zero trips
        assert_same(g(x, lo, hi), f(x, lo, hi))
    assert g.cache_info().misses == 1  # the bounds are values, not part of the signature
    i32 = np.int32
    assert_same(g(x.astype(np.float64), i32(1), i32(4)), f(x.astype(np.float64), i32(1), i32(4)))


def test_fori_loop_index_type():
    seen = []

    def f(x, n):
        def body(i, c):
            seen.append((i.dtype, i.weak) if isinstance(i, Tracer) else type(i))
            return c + i

        return lax.fori_loop(0, n, body, x), lax.fori_loop(0, 5, body, x)

    x = np.zeros(2, np.float32)
    check(f, x, 4)  # c + i keeps f32: the index is weakly typed, as the Python int it is eagerly
    assert seen[:2] == [(np.int64, True), (np.int32, True)]  # a traced Python int; static ones
    assert set(seen[2:]) == {int}
    raises_at_lax_call(  # a strong int32 index: f32 + i32 is f64 (NumPy's rule), eagerly too
        f, x, np.int32(4), match=r"body_fun's result is f64\[2\], but init_val is f32\[2\]"
    )


def test_fori_loop_zero_trips_and_awkward_shapes():
    for shape in [(0,), (1,), (3, 5), (0, 4), ()]:
        x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
        check(lambda x: lax.fori_loop(0, 3, lambda i, c: c * 0.5 + 1, x), x)
        check(lambda x: lax.fori_loop(3, 0, lambda i, c: c * 0.5 + 1, x), x)


class State(NamedTuple):
    total: Any
    flags: Any


@pytest.mark.parametrize("target", TARGETS)
def test_fori_loop_pytree_carry(target):
    def f(x, m):
        def body(i, carry):
            state, extra = carry["state"], carry["extra"]
            flags = state.flags ^ (x > i)
            return {"state": State(state.total + x * i, flags), "extra": [extra[0] + 1, m @ m]}

        init = {"state": State(np.zeros(3), np.zeros(3, bool)), "extra": [0, m]}
        return lax.fori_loop(0, 4, body, init)

    out = check(f, np.array([0.5, 2.0, 3.0]), np.eye(2, dtype=np.float32) * 0.5, target=target)
    assert out["extra"][0].dtype == np.int64  # a Python int in init_val: NumPy's default


def test_fori_loop_python_scalar_init_is_numpys_default_dtype():
    out = check(
        lambda x: lax.fori_loop(0, 3, lambda i, c: (c[0] + x, c[1] + 1, c[2]), (0.0, 0, True)), 1.5
    )
    assert [o.dtype for o in out] == [np.float64, np.int64, np.bool_]


@pytest.mark.parametrize("target", TARGETS)
def test_fori_loop_closures_over_outer_tracers_and_constants(target):
    weights = np.linspace(-1, 1, 4)

    def f(x, scale):
        shift = x.mean()  # computed in the outer function, used in the body

        def body(i, c):
            return c * scale + (weights @ c) * x - shift + weights * i

        return lax.fori_loop(1, 4, body, np.ones(4))

    check(f, np.arange(4.0), 0.5, target=target)
    (loop,) = [n for n in entry(f, np.arange(4.0), 0.5).body if n.op is Op.FOR]
    body = loop.attrs["body"]
    constants = [n for n in body.body if n.op is Op.CONSTANT]
    assert any(n.shape == (4,) for n in constants)  # weights: a constant inside the body
    assert len(loop.srcs) == 6  # the bounds, the carry, and x, shift, scale taken in from outside


def test_bodies_use_the_tracer_features():
    def f(x):
        v = x[1:]
        x[0] = 5  # v, a view of x, is stale until read again: it is read in the bodies
        x[2] = 7

        def body(i, c):
            t = np.zeros(3)  # an array made in the body, written at a traced index
            t[i % 3] = x[i : i + 3].sum() + v[i % 3]
            return c + t + x[x > i].sum()

        s = lax.fori_loop(0, x.shape[0] - 2, body, np.zeros(3))
        inner = lax.cond(
            x[0] > 0, lambda: lax.while_loop(lambda c: c < 100, lambda c: c * 2, x[1]), lambda: 0.0
        )
        scanned = lax.fori_loop(
            0, 2, lambda i, c: lax.scan(lambda a, y: (a + y * i, a), c, v)[0], 0.0
        )
        return s, inner, scanned, v * 2, x

    check(f, np.arange(6.0))


def test_closure_tracer_used_only_by_the_condition():
    def f(x, n):
        return lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * 2.0), (0, x))

    check(f, np.float32(1.5), 6)
    text = jit(f).lower(np.float32(1.5), 6).as_text()
    assert text.count("while(") == 1


@pytest.mark.parametrize("target", TARGETS)
def test_nested_fori_loops(target):
    def f(a):
        def row(i, acc):  # sum of the lower triangle, row by row; a from two levels out
            return lax.fori_loop(0, i + 1, lambda j, s: s + a[i, j], acc)

        return lax.fori_loop(0, a.shape[0], row, np.zeros((), a.dtype))

    a = np.arange(20.0).reshape(4, 5)
    check(f, a, target=target)
    ops = all_ops(entry(f, a))
    assert ops.count(Op.FOR) == 2


@pytest.mark.parametrize("target", TARGETS)
def test_body_indexes_with_the_loop_counter(target):
    def f(a):
        return lax.fori_loop(0, min(a.shape), lambda i, acc: acc + np.tanh(a[i, i]), 0.0)

    check(f, np.random.default_rng(1).standard_normal((5, 3)), target=target)


def test_body_writes_into_its_own_carry():
    def f(x):
        def body(i, c):
            c[i] = c[i - 1] * 2 + i
            return c

        return lax.fori_loop(1, x.shape[0], body, x), x  # x itself is unchanged

    check(f, np.ones(6, np.int32))


def test_large_loop_traces_to_a_constant_number_of_ops():
    a = np.random.default_rng(0).standard_normal((2000, 2000))

    def f(a, n):
        return lax.fori_loop(0, n, lambda i, acc: acc + np.tanh(a[i, i]), 0.0)

    def trace_size(a):
        return len(all_ops(entry(f, a, a.shape[0])))

    ops = all_ops(entry(f, a, 2000))
    assert ops.count(Op.FOR) == 1
    assert ops.count(Op.TANH) == 1
    assert trace_size(a) == trace_size(a[:10, :10]) < 40
    g = jit(f)
    assert_same(g(a, 2000), f(a, 2000))
    assert "for(" in g.compile(a, 2000).as_text()  # still a loop after the pipeline


# --- while_loop ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_while_loop_newton_iteration(target, dtype):
    def sqrt(a):
        def body(c):
            x, _, steps = c
            new = (x + a / x) / 2
            return new, np.max(np.abs(new - x)), steps + 1

        def cond(c):
            return (c[1] > 1e-6) & (c[2] < 50)

        return lax.while_loop(cond, body, (a, np.array(np.inf, a.dtype), 0))

    x, _, steps = check(sqrt, np.array([2.0, 9.0, 1e4, 0.25], dtype), target=target)
    np.testing.assert_allclose(x, np.sqrt([2.0, 9.0, 1e4, 0.25]), rtol=1e-5)
    assert 3 < steps < 50


@pytest.mark.parametrize("target", TARGETS)
def test_while_loop_collatz_trip_count(target):
    def collatz(n):
        def body(c):
            m, count = c
            return np.where(m % 2 == 0, m // 2, 3 * m + 1), count + 1

        return lax.while_loop(lambda c: c[0] > 1, body, (n, np.int32(0)))

    g = jit(collatz, target=target)
    for n in [1, 6, 27, 97]:
        assert_same(g(np.int64(n)), collatz(np.int64(n)))
        assert_same(g(np.int32(n)), collatz(np.int32(n)))
    assert int(g(np.int64(27))[1]) == 111


def test_while_loop_bool_and_size_zero_carry():
    def f(x, e):
        return lax.while_loop(
            lambda c: c[1], lambda c: (c[0] * 2, c[0] < 100, c[2] + 1), (x, True, e)
        )

    check(f, np.int32(3), np.zeros((0, 2), np.float32))


# --- cond ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_cond_takes_each_branch(target):
    def f(x, k):
        return lax.cond(x.sum() > k, lambda a, b: (a * 2, b - 1), lambda a, b: (a - 1, b * 3), x, k)

    g = jit(f, target=target)
    x = np.array([1.0, 2.0, 3.5], np.float32)
    for k in [0, 10]:
        assert_same(g(x, k), f(x, k))


@pytest.mark.parametrize("target", TARGETS)
def test_cond_untaken_branch_may_index_out_of_range(target):
    def f(x, k):
        return lax.cond(k < x.shape[0], lambda v: v[k] * 2, lambda v: v.sum(), x)

    g = jit(f, target=target)
    x = np.arange(1.0, 5.0)
    for k in [0, 3, 4, 100]:  # 4 and 100: only the false branch runs
        assert_same(g(x, k), f(x, k))
    with pytest.raises(IndexOutOfRange):  # the taken branch still checks its indices
        jit(lambda x, k: lax.cond(k >= 0, lambda: x[k], lambda: x[0]), target=target)(x, 7)


def test_cond_numeric_and_static_predicates_and_pytrees():
    def f(x, p):
        out = lax.cond(p, lambda: {"a": x + 1, "b": x > 0}, lambda: {"a": x * 0, "b": x < 0})
        static = lax.cond(0, lambda: x, lambda: -x)
        return out, static

    for p in [0, 3, -1]:
        check(f, np.array([-1, 0, 2], np.int32), p)
    check(f, np.array([-1.0, 2.5]), np.float32(0.5))


def test_cond_unifies_weak_scalars_with_the_other_branch():
    def f(x, p):
        return lax.cond(p > 0, lambda: x.sum(), lambda: 0.0)

    out = jit(f)(np.ones(3, np.float32), 1)
    assert out.dtype == np.float32
    assert out == 3


def test_cond_inside_a_loop():
    def f(x):
        def body(i, c):
            return lax.cond(i % 2 == 0, lambda: c + x[i], lambda: c - x[i] / 2)

        return lax.fori_loop(0, x.shape[0], body, np.float32(0))

    check(f, np.arange(7, dtype=np.float32))


# --- scan ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("reverse", [False, True])
def test_scan_cumulative_sum(target, reverse):
    def f(xs):
        return lax.scan(lambda c, x: (c + x, c + x), np.zeros_like(xs[0]), xs, reverse=reverse)

    check(f, np.arange(15, dtype=np.float32).reshape(5, 3), target=target)
    check(f, np.arange(7, dtype=np.int32), target=target)


def test_scan_pytrees_length_and_awkward_shapes():
    def f(xs, w):
        def step(c, x):
            h = np.tanh(c["h"] @ w + x["u"])
            return {"h": h, "n": c["n"] + 1}, (h.sum(), x["flag"] & (h[0] > 0))

        init = {"h": np.zeros(w.shape[0]), "n": 0}
        return lax.scan(step, init, xs)

    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 3))
    for n in [0, 1, 5]:
        xs = {"u": rng.standard_normal((n, 3)), "flag": np.arange(n) % 2 == 0}
        check(f, xs, w)

    def counter(x):
        return lax.scan(lambda c, _: (c * 2, c), x, None, length=4, reverse=True)

    check(counter, np.float32(1.5))


def test_scan_is_one_loop():
    def f(xs):
        return lax.scan(lambda c, x: (c + x, c * x), 0.0, xs)

    ops = all_ops(entry(f, np.ones(1000)))
    assert ops.count(Op.FOR) == 1
    assert len(ops) < 40


# --- select -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_])
def test_select(dtype):
    def f(p, a, b):
        return lax.select(p, a, b), lax.select(p[0], a, 1)

    rng = np.random.default_rng(3)
    a, b = (rng.integers(0, 2, (2, 3)).astype(dtype) for _ in range(2))
    check(f, rng.integers(0, 2, 3).astype(bool), a, b, target="interp")


# --- errors -------------------------------------------------------------------------------


def raises_at_lax_call(fn: Any, *args: Any, match: str) -> TraceError:
    """Under @jit and eagerly: the same error, located at the user's line calling lax."""
    for run in (jit(fn, target="interp"), fn):
        with pytest.raises(TraceError, match=match) as info:
            run(*args)
        assert info.value.loc is not None
        assert info.value.loc.file == __file__
        assert "lax." in (info.value.loc.source_line or "")
    return info.value


def test_error_carry_changes_dtype_or_shape():
    x = np.zeros(3, np.int32)
    raises_at_lax_call(
        lambda x: lax.fori_loop(0, 3, lambda i, c: c * 1.5, x),
        x,
        match=r"fori_loop: body_fun's result is f64\[3\], but init_val is i32\[3\]: a carried "
        "value must keep its shape and dtype",
    )
    raises_at_lax_call(
        lambda x: lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1][:2]), (0, x)),
        x,
        match=r"while_loop: body_fun's result is i32\[2\] at \[1\], but init_val\[1\] is i32\[3\]",
    )


def test_error_carry_changes_structure():
    raises_at_lax_call(
        lambda x: lax.fori_loop(0, 3, lambda i, c: [c[0], c[1]], (x, x)),
        np.zeros(2),
        match=r"body_fun's result must have the structure of init_val: it is \[\*, \*\], "
        r"init_val is \(\*, \*\)",
    )


def test_error_branches_differ():
    def types(x):
        return lax.cond(x.sum() > 0, lambda: x, lambda: x.astype(np.float64))

    with pytest.raises(TraceError, match=r"true_fun returns f32\[3\] and false_fun f64\[3\]"):
        jit(types)(np.zeros(3, np.float32))

    def structure(x):
        return lax.cond(x.sum() > 0, lambda: (x, x), lambda: x)

    with pytest.raises(TraceError, match=r"same structure: \(\*, \*\) from true_fun, \* from"):
        jit(structure)(np.zeros(3))


def test_error_predicates():
    raises_at_lax_call(
        lambda x: lax.cond(x > 0, lambda: x, lambda: -x),
        np.ones(3),
        match=r"cond: pred must be a scalar",
    )
    raises_at_lax_call(
        lambda x: lax.while_loop(lambda c: c, lambda c: c - 1, x),
        np.int32(3),
        match=r"while_loop: cond_fun must return a boolean scalar, got i32\[\]",
    )
    raises_at_lax_call(
        lambda x: lax.fori_loop(0, 2.5, lambda i, c: c, x),
        np.int32(3),
        match=r"fori_loop: upper must be an integer scalar, got f64\[\]",
    )


def test_error_scan_arguments():
    raises_at_lax_call(
        lambda xs: lax.scan(lambda c, x: c + x, 0.0, xs),
        np.ones(3),
        match=r"scan: f must return a pair \(carry, y\)",
    )
    raises_at_lax_call(
        lambda xs: lax.scan(lambda c, x: (c, x), 0.0, (xs, xs[:2])),
        np.ones(3),
        match=r"the leaves of xs and length disagree on the length: \[2, 3\]",
    )


def test_error_body_writes_into_an_outer_array():
    def f(x):
        def body(i, c):
            x[i] = c
            return c + 1

        return lax.fori_loop(0, 2, body, 0.0)

    with pytest.raises(TraceError, match="a body cannot write into it") as info:
        jit(f)(np.zeros(3))
    assert "x[i] = c" in (info.value.loc.source_line or "")


def test_eager_loops_leave_their_inputs_alone():
    x = np.zeros(4)

    def body(i, c):
        c[i] = i
        return c

    out = lax.fori_loop(0, 4, body, x)
    assert out.tolist() == [0, 1, 2, 3]
    assert x.tolist() == [0, 0, 0, 0]


def test_exported_names():
    assert tessel.lax is compiler.lax is lax
    assert {"fori_loop", "while_loop", "cond", "scan", "select"} <= set(lax.__all__)
