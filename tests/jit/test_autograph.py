"""AutoGraph under @jit (compiler/autograph.py): Python loops and branches on traced values
become loop ops, everything else runs as Python as before. Each program is checked against
the same undecorated function run eagerly by NumPy, arguments it writes included."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from compiler import ConcretizationError, jit
from compiler.autograph import convert
from compiler.tracing import TraceError
from ir.ops import Op

RNG = np.random.default_rng(7)
SCALE = np.linspace(0.5, 1.5, 40)  # a global NumPy array a loop body indexes


def copies(args: tuple[Any, ...]) -> list[Any]:
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def loops(f: Any, *args: Any) -> int:
    """How many loop ops (`while` or `for`) tracing `f` on `args` makes (at any depth)."""
    text = f.lower(*copies(args)).as_text()
    return text.count(" = while(") + text.count(" = for(")


def check(fn: Callable[..., Any], *args: Any, target: str = "interp", **options: Any) -> Any:
    """`fn` jitted and `fn` run by NumPy agree, on results and on the arguments they write."""
    f = jit(fn, target=target, **options)
    ours, theirs = copies(args), copies(args)
    got, want = f(*ours), fn(*theirs)
    if want is None:
        assert got is None
    else:
        assert np.asarray(got).dtype == np.asarray(want).dtype
        tol = 1e-5 if np.asarray(want).dtype == np.float32 else 1e-10
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    for a, b in zip(ours, theirs, strict=True):
        if isinstance(a, np.ndarray):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-10)
    return f


def line_of(fn: Callable[..., Any], text: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(k for k, line in enumerate(lines) if text in line)


# --- loops that become loop ops ------------------------------------------------------------


def diagonal(a: Any) -> Any:
    t = 0.0
    for i in range(a.shape[0]):
        t += np.tanh(a[i, i])
    return t


def test_a_long_loop_over_the_diagonal_is_one_loop_op() -> None:
    a = RNG.standard_normal((2000, 2000)).astype(np.float32)
    f = check(diagonal, a, target="cpu")
    ops = f.lower(a).module.functions[0].body
    assert [n.op for n in ops].count(Op.FOR) == 1
    assert len(ops) < 12  # the loop and a few constants, not 8,000 ops
    unrolled = jit(diagonal, target="interp", autograph=False).lower(a[:20, :20])
    assert Op.FOR not in [n.op for n in unrolled.module.functions[0].body]


def test_short_static_loops_stay_unrolled() -> None:
    a = RNG.standard_normal((16, 16)).astype(np.float32)
    assert loops(check(diagonal, a), a) == 0  # 16 steps: unrolled, as without conversion
    b = RNG.standard_normal((17, 17)).astype(np.float32)
    assert loops(check(diagonal, b), b) == 1


def row_norms(X: Any) -> Any:
    total = np.zeros(X.shape[1:], X.dtype)
    for row in X:
        total += np.sqrt(row * row)
    return total


def halve_rows(X: Any) -> Any:
    for row in X:
        row /= 2  # writes X through the view
    return X.sum()


def test_iterating_over_a_long_traced_array_is_one_loop_op() -> None:
    long, short = RNG.standard_normal((40, 3)), RNG.standard_normal((16, 3))
    for target in ("interp", "cpu"):
        assert loops(check(row_norms, long, target=target), long) == 1
    assert loops(check(row_norms, short), short) == 0  # 16 rows: unrolled, as before
    unrolled = jit(row_norms, target="interp", autograph=False)
    assert loops(unrolled, long) == 0


def test_iterating_and_writing_each_element_in_place_stays_unrolled() -> None:
    X = RNG.standard_normal((20, 4))
    for target in ("interp", "cpu"):
        f = check(halve_rows, X, target=target)  # X's rows halved in the caller's array too
    assert loops(f, X) == 0


def weighted(x: Any, n: Any) -> Any:
    s = x[0] * 0
    for i in range(n):
        s = s + x[i] * i
    return s


def test_a_traced_bound_compiles_once_for_every_bound() -> None:
    x = RNG.standard_normal(50)
    f = check(weighted, x, 37)
    for n in (0, 1, 50):
        np.testing.assert_allclose(f(x, n), weighted(x, n), rtol=1e-12)
    assert f.cache_info().misses == 1
    assert loops(f, x, 3) == 1


def strided(x: Any, start: Any, stop: Any) -> Any:
    s = 0.0
    for i in range(start, stop, 3):
        s = s + x[i]
    for i in range(stop, start, -2):
        s = s * 0.5 + x[i]
    return s


def test_ranges_with_a_start_and_a_step() -> None:
    x = RNG.standard_normal(60)
    f = check(strided, x, 2, 59)
    for start, stop in ((5, 6), (7, 7), (9, 3)):
        np.testing.assert_allclose(f(x, start, stop), strided(x, start, stop), rtol=1e-12)


def relax(u: Any, f: Any) -> None:
    for _ in range(40):
        u[1:-1] = 0.5 * (u[:-2] + u[2:] - f[1:-1])


def test_a_stencil_updates_its_argument_in_place() -> None:
    u, f = np.linspace(0, 1, 30), np.full(30, 0.01)
    assert loops(check(relax, u, f), u, f) == 1


def smooth(x: Any, steps: Any) -> Any:
    y = x.copy()
    for _ in range(steps):
        y[1:-1] = (y[:-2] + y[1:-1] + y[2:]) / 3
        y += 0.1
    return y


def test_an_array_made_inside_and_updated_in_a_traced_loop() -> None:
    x = RNG.standard_normal(12).astype(np.float32)
    f = check(smooth, x, 20)
    np.testing.assert_allclose(f(x, 3), smooth(x, 3), rtol=1e-6)


def row_sums(A: Any) -> Any:
    out = np.zeros(A.shape[0])
    for i in range(A.shape[0]):
        acc = 0.0
        for j in range(A.shape[1]):
            acc = acc + A[i, j] * SCALE[j]
        out[i] = acc
    return out


def test_nested_loops_and_a_global_array_indexed_by_the_loop() -> None:
    A = RNG.standard_normal((20, 40))
    assert loops(check(row_sums, A), A) == 2  # the inner loop op is inside the outer one


def newton_sqrt(a: Any) -> Any:
    x = a
    while np.abs(x * x - a).max() > 1e-12:
        x = 0.5 * (x + a / x)
    return x


def halve(x: Any) -> Any:
    err = np.inf  # a Python value: the first test runs in Python, the next ones are traced
    y = x
    while err > 1e-3:
        y = y * 0.5
        err = np.abs(y).max()
    return y


def test_while_loops_on_traced_conditions() -> None:
    a = RNG.uniform(1, 4, 8)
    assert loops(check(newton_sqrt, a), a) == 1
    assert loops(check(halve, a), a) == 1


# --- branches --------------------------------------------------------------------------------


def signed(x: Any, k: Any) -> Any:
    if x.sum() > 0:
        y = x * 2
        sign = 1
    else:
        y = -x
        sign = -1
    if k > 2:
        y = y + 1
    elif k > 0:
        y = y * 3
    return y * sign


def test_if_else_on_traced_values_takes_either_branch() -> None:
    x = RNG.standard_normal(6).astype(np.float32)
    f = check(signed, np.abs(x), 3)
    for args in ((-np.abs(x), 3), (x, 1), (x, -1)):
        got, want = f(*args), signed(*args)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-6)
    assert f.cache_info().misses == 1


def clip_first(x: Any) -> Any:
    if x[0] > 1:
        x[0] = 1.0  # an argument written in one branch
    return x.sum()


def test_a_branch_writes_an_argument_in_place() -> None:
    check(clip_first, np.array([3.0, 2.0]))
    check(clip_first, np.array([0.5, 2.0]))


def only_one_branch(x: Any) -> Any:
    if x.sum() > 0:
        y = x * 2
    return y


def test_a_variable_assigned_in_one_branch_only_is_a_located_error() -> None:
    with pytest.raises(TraceError, match=r"'y' is used after it and assigned in one branch"):
        jit(only_one_branch, target="interp")(np.ones(3))


def mismatched(x: Any) -> Any:
    if x.sum() > 0:  # noqa: SIM108  (an if statement is the point)
        y = x
    else:
        y = x[:2]
    return y


def test_branches_that_disagree_on_a_type_name_the_variable() -> None:
    with pytest.raises(TraceError, match=r"'y' is f64\[3\] after the true branch and f64\[2\]"):
        jit(mismatched, target="interp")(np.ones(3))


def relu_if_positive(x: Any) -> Any:
    if x.sum() > 0:
        return x
    return -x


def test_a_branch_that_returns_stays_python_and_says_why() -> None:
    with pytest.raises(ConcretizationError) as info:
        jit(relu_if_positive, target="interp")(np.ones(3))
    message = info.value.message
    assert "np.where" in message
    assert "static_argnames" in message
    assert f"contains `return` (line {line_of(relu_if_positive, 'return x')})" in message
    assert info.value.loc is not None
    assert info.value.loc.line == line_of(relu_if_positive, "if x.sum()")


# --- what stays Python -----------------------------------------------------------------------


def forward_substitution(L: Any, b: Any) -> Any:
    x = np.zeros_like(b)
    for i in range(b.shape[0]):
        x[i] = (b[i] - L[i, :i] @ x[:i]) / L[i, i]  # a slice whose length is i: unrolled
    return x


def test_a_body_that_needs_a_python_index_is_unrolled() -> None:
    L = np.tril(RNG.standard_normal((20, 20))) + 20 * np.eye(20)
    b = RNG.standard_normal(20)
    assert loops(check(forward_substitution, L, b), L, b) == 0


def first_items(x: Any) -> Any:
    s = 0.0
    for i in range(30):
        if i > 20:
            break
        s = s + x[i]
    return s


def up_to(x: Any, n: Any) -> Any:
    s = 0.0
    for i in range(n):
        if i > 20:
            break
        s = s + x[i]
    return s


def test_break_runs_as_python_or_says_why_it_cannot() -> None:
    x = RNG.standard_normal(30)
    assert loops(check(first_items, x), x) == 0
    with pytest.raises(TraceError) as info:
        jit(up_to, target="interp")(x, 25)
    err = info.value
    assert "bounds of this `for` loop are traced" in err.message
    assert f"contains `break` (line {line_of(up_to, 'break')})" in err.message
    assert err.loc is not None
    assert err.loc.file == __file__
    assert err.loc.line == line_of(up_to, "for i in range(n)")


def python_values(x: Any) -> Any:
    count, items = 0, []
    for i in range(40):
        count += 2  # a Python number all along: stays one, usable as a size
        items.append(i)
    for j in range(30):
        last = x[j]
    return x[: count // 4].sum() + len(items) + last + j


def test_python_values_lists_and_names_used_after_a_loop_run_as_python() -> None:
    x = RNG.standard_normal(40)
    assert loops(check(python_values, x), x) == 0


def helper(x: Any) -> Any:
    s = x[0]
    for i in range(1, x.shape[0]):
        s = s + x[i]
    return s


def calls_helpers(x: Any) -> Any:
    return helper(x) + jit(helper)(x)


def test_only_jitted_functions_are_converted() -> None:
    x = RNG.standard_normal(30)
    # helper() as called is traced unconverted (unrolled); a jitted one inlined is converted
    assert loops(check(calls_helpers, x), x) == 1
    assert loops(jit(helper, target="interp"), x) == 1


def test_autograph_false_unrolls_as_before() -> None:
    x = RNG.standard_normal(30)
    assert loops(check(weighted, x, 30, static_argnames="n", autograph=False), x, 30) == 0
    with pytest.raises(ConcretizationError, match="using as an index or size"):
        jit(weighted, target="interp", autograph=False)(x, 30)


# --- errors and the converted function itself ------------------------------------------------


def shape_error(x: Any, n: Any) -> Any:
    s = x[0]
    for i in range(n):
        s = s + x[i] @ np.ones(3)
    return s


def test_errors_in_a_converted_body_point_at_the_users_line() -> None:
    with pytest.raises(TraceError) as info:
        jit(shape_error, target="interp")(np.ones((30, 4)), 10)
    err = info.value
    assert err.loc is not None
    assert err.loc.file == __file__
    assert err.loc.line == line_of(shape_error, "x[i] @ np.ones(3)")
    assert "inner dimensions differ" in str(err)
    assert "x[i] @ np.ones(3)" in str(err)


def changes_type(x: Any, n: Any) -> Any:
    s = x[0]
    for i in range(n):
        s = x[i : i + 2] * s
    return s


def test_a_carried_variable_that_changes_shape_is_named() -> None:
    with pytest.raises(TraceError, match=r"changes the type of 's' from f64\[\] .* to f64\[2\]"):
        jit(changes_type, target="interp")(np.ones(30), 5)


def test_conversion_is_cached_and_keeps_names_lines_and_closures() -> None:
    w = RNG.standard_normal(40)

    def closure(x: Any, scale: float = 2.0) -> Any:
        s = x[0]
        for i in range(1, 40):
            s = s * 0.5 + w[i] * x[i] * scale
        return s

    g = convert(closure)
    assert g is not closure
    assert g.__code__ is convert(closure).__code__  # converted once
    assert g.__code__.co_filename == __file__
    assert g.__name__ == "closure"
    assert g.__code__.co_firstlineno == closure.__code__.co_firstlineno
    x = RNG.standard_normal(40)
    assert loops(check(closure, x), x) == 1
    w[:] = 0  # the closure cell, not a copy: a new trace sees the new values
    np.testing.assert_allclose(jit(closure, target="interp")(x), closure(x))


def test_functions_without_source_or_control_flow_are_traced_as_they_are() -> None:
    namespace: dict[str, Any] = {}
    exec("def made(x):\n    for i in range(30):\n        x = x + i\n    return x", namespace)
    made = namespace["made"]
    assert convert(made) is made
    assert convert(diagonal) is not diagonal
    straight = jit(lambda x: x * 2, target="interp")
    assert convert(straight.fn) is straight.fn
    assert convert(np.tanh) is np.tanh
    check(made, np.zeros(2))


def test_a_source_file_edited_since_import_is_not_converted(
    tmp_path: Any, monkeypatch: Any
) -> None:
    source = "def f(x):\n    for i in range(30):\n        x = x + i\n    return x\n"
    (tmp_path / "edited_module.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    import edited_module  # type: ignore[import-not-found]

    assert convert(edited_module.f) is not edited_module.f
    (tmp_path / "edited_module.py").write_text(source.replace("x + i", "x * i + 1"))
    from compiler import autograph

    autograph._converted.pop(edited_module.f.__code__)  # forget the conversion: convert again
    assert convert(edited_module.f) is edited_module.f  # the file no longer holds this code


def raises_if_negative(x: Any) -> Any:
    if x.min() < 0:
        raise ValueError("negative input")
    return np.sqrt(x)


def test_a_traced_if_that_raises_is_not_converted_away() -> None:
    with pytest.raises(ConcretizationError, match=r"contains `raise` \(line"):
        jit(raises_if_negative, target="interp")(np.ones(3))
