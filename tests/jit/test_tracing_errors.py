"""What tracing refuses, and how it says so: the exception type, a message naming the operation,
and a location at the user's own line (the line marked `# error here` below), printed as
`file:line:col`, the source line and a caret.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from compiler import jit, no_recompile
from compiler.jitfunc import RecompileError
from compiler.tracing import ConcretizationError, TraceError, UnsupportedError
from ir.diagnostics import TesselError

MARK = "# error here"
X = np.arange(6, dtype=np.float32).reshape(2, 3)
TEMPLATE = np.zeros((3, 3), np.float32)


def marked_line(fn: Callable[..., Any]) -> int:
    lines, start = inspect.getsourcelines(fn)
    marked = [start + i for i, text in enumerate(lines) if text.rstrip().endswith(MARK)]
    assert len(marked) == 1, marked
    return marked[0]


def assert_located(err: TesselError, line: int) -> None:
    assert err.loc is not None, err
    assert err.loc.file == __file__
    assert err.loc.line == line, (err.loc, line)
    assert err.loc.source_line is not None
    assert MARK in err.loc.source_line
    text = str(err)
    assert f"{__file__}:{line}:{err.loc.col}: error: " in text
    source, caret = text.split("\n")[1:3]
    assert source.strip() == err.loc.source_line.strip()
    assert caret.strip() == "^"
    assert source[len(caret) - 1] != " "  # the caret points into the code, not at a margin


def expect(
    exc: type[TesselError], match: str, fn: Callable[..., Any], *args: Any, **options: Any
) -> TesselError:
    """Tracing `fn(*args)` raises `exc` whose message matches, located at `fn`'s marked line."""
    with pytest.raises(exc) as info:
        jit(fn, target="interp", **options)(*args)
    err = info.value
    assert re.search(match, err.message), err.message
    assert_located(err, marked_line(fn))
    return err


# --- concrete values under tracing --------------------------------------------------------


def test_if_on_a_traced_value() -> None:
    def f(x: Any) -> Any:
        if x.sum() > 0:  # error here
            return x
        return -x

    err = expect(ConcretizationError, r"bool\(\) of a traced value bool\[\]", f, X)
    assert "np.where" in err.message
    assert "static_argnames" in err.message


def test_bool_int_float_of_a_traced_value() -> None:
    def b(x: Any) -> Any:
        return x * bool(x[0, 0])  # error here

    def i(x: Any) -> Any:
        return x * int(x[0, 0])  # error here

    def fl(x: Any) -> Any:
        return x * float(x.max())  # error here

    expect(ConcretizationError, r"^bool\(\) of a traced value", b, X)
    expect(ConcretizationError, r"^int\(\) of a traced value", i, X)
    expect(ConcretizationError, r"^float\(\) of a traced value", fl, X)


def test_traced_value_as_a_size() -> None:
    def f(x: Any) -> Any:
        total = x[0]
        for _ in range(x.astype(np.int32).sum()):  # error here
            total = total + 1
        return total

    # with autograph (the default) this loop compiles as a while loop: see test_autograph.py
    err = expect(ConcretizationError, "using as an index or size", f, X, autograph=False)
    assert "x.shape" in err.message


def test_traced_value_as_an_array_size() -> None:
    def f(x: Any) -> Any:
        return np.zeros(x.astype(np.int32).sum())  # error here

    expect(ConcretizationError, "using as an index or size", f, X)


def test_traced_value_as_a_slice_bound() -> None:
    def f(x: Any) -> Any:
        n = x.astype(np.int64).sum()
        return x[:, :n]  # error here

    expect(ConcretizationError, "using as an index or size", f, X)


def test_np_array_of_a_traced_value() -> None:
    def f(x: Any) -> Any:
        return np.array(x) + 1  # error here

    def g(x: Any) -> Any:
        return x.tolist()  # error here

    expect(ConcretizationError, r"converting to a NumPy array", f, X)
    expect(ConcretizationError, r"tolist\(\) of a traced value", g, X)


# --- indexing -----------------------------------------------------------------------------


def test_boolean_mask_index() -> None:
    def f(x: Any) -> Any:
        return x[x > 2]  # error here

    err = expect(TraceError, r"^result 0 is x\[mask\].*depends on the data", f, X)
    assert "np.where" in err.message


def test_integer_array_index_out_of_range() -> None:
    idx = np.array([1, 0, 2])

    def f(x: Any) -> Any:
        return x[idx]  # error here

    def g(x: Any) -> Any:
        return x[:, [0, -4]]  # error here

    expect(TraceError, r"index 2 is out of bounds for axis 0 with size 2", f, X)
    expect(TraceError, r"index -4 is out of bounds for axis 1 with size 3", g, X)


def test_item_assignment_with_a_mask() -> None:
    def f(x: Any) -> Any:
        x[x > 1] = np.arange(6.0)  # error here
        return x

    err = expect(UnsupportedError, r"^x\[\.\.\.\] = v: x\[mask\] = v with v of shape", f, X)
    assert "np.where" in err.message


def test_writing_through_a_transpose() -> None:
    def f(x: Any) -> Any:
        t = x.T
        t[0] = 1  # error here
        return x

    expect(UnsupportedError, r"writing into the result of x\.T is not supported", f, X)


def test_reading_a_reshape_after_its_array_changed() -> None:
    def f(x: Any) -> Any:
        flat = x.reshape(-1)
        x[0] = 1
        return flat + 1  # error here

    expect(UnsupportedError, r"taken with x\.reshape .*call \.copy\(\)", f, X)


def test_in_place_casting_follows_numpy() -> None:
    def f(x: Any) -> Any:
        x += 0.5  # error here
        return x

    expect(TraceError, r"^x \+= y: cannot cast .*'same_kind'", f, np.arange(3))


def test_bad_scalar_indices() -> None:
    def out_of_bounds(x: Any) -> Any:
        return x[2]  # error here

    def too_many(x: Any) -> Any:
        return x[0, 0, 0]  # error here

    def two_ellipses(x: Any) -> Any:
        return x[..., 0, ...]  # error here

    def float_index(x: Any) -> Any:
        return x[1.0]  # error here

    def bool_index(x: Any) -> Any:
        return x[True]  # error here

    expect(TraceError, r"index 2 is out of bounds for axis 0 with size 2", out_of_bounds, X)
    expect(TraceError, r"too many indices for an array of rank 2", too_many, X)
    expect(TraceError, r"single ellipsis", two_ellipses, X)
    expect(TraceError, r"valid indices, got float", float_index, X)
    expect(UnsupportedError, r"boolean scalar", bool_index, X)


# --- NumPy functions, ufunc methods and arguments tessel does not trace -------------------


@pytest.mark.parametrize("name", ["unique", "nonzero", "lexsort", "sort_complex"])
def test_unsupported_numpy_function_is_named(name: str) -> None:
    fn = getattr(np, name)

    def f(x: Any) -> Any:
        return fn(x)  # error here

    err = expect(UnsupportedError, rf"^np\.{name} is not supported under @jit", f, X)
    assert "never falls back to eager NumPy" in err.message


def test_unsupported_ufunc_and_ufunc_method() -> None:
    def method(x: Any) -> Any:
        return np.add.reduceat(x, [0])  # error here

    def accumulate(x: Any) -> Any:
        return np.subtract.accumulate(x)  # error here

    def ufunc(x: Any) -> Any:
        return np.cbrt(x)  # error here

    expect(UnsupportedError, r"^np\.add\.reduceat is not supported under @jit", method, X)
    expect(UnsupportedError, r"^np\.subtract\.accumulate is not supported", accumulate, X)
    expect(UnsupportedError, r"^np\.cbrt is not supported under @jit", ufunc, X)


def test_out_and_other_ufunc_keywords() -> None:
    def out(x: Any) -> Any:
        return np.add(x, 1, out=TEMPLATE[0])  # error here

    def where(x: Any) -> Any:
        return np.exp(x, where=x > 0)  # error here

    def sum_out(x: Any) -> Any:
        return np.sum(x, out=x)  # error here

    expect(UnsupportedError, r"^np\.add: out= must be a traced array", out, X[0])
    expect(UnsupportedError, r"^np\.exp: where= is not supported", where, X)
    expect(UnsupportedError, r"^np\.sum: .*unexpected keyword argument 'out'", sum_out, X)


def test_unsupported_argument_values() -> None:
    def one_arg_where(x: Any) -> Any:
        return np.where(x > 1)  # error here

    def pad_mode(x: Any) -> Any:
        return np.pad(x, 1, mode="reflect")  # error here

    def fortran(x: Any) -> Any:
        return x.reshape(3, 2, order="F")  # error here

    def norm(x: Any) -> Any:
        return np.linalg.norm(x, 1)  # error here

    def ellipsis_einsum(x: Any) -> Any:
        return np.einsum("...j->j", x)  # error here

    def diagonal(x: Any) -> Any:
        return np.einsum("ii->i", x[:, :2])  # error here

    expect(UnsupportedError, r"^np\.where: np\.where with one argument", one_arg_where, X)
    expect(UnsupportedError, r"^np\.pad: mode='reflect' is not supported", pad_mode, X)
    expect(UnsupportedError, r"^x\.reshape: order='F' is not supported", fortran, X)
    expect(UnsupportedError, r"^np\.linalg\.norm: ord=1 is not supported", norm, X)
    expect(UnsupportedError, r"^np\.einsum: '\.\.\.' \(ellipsis\)", ellipsis_einsum, X)
    expect(UnsupportedError, r"^np\.einsum: repeated subscript in 'ii' \(diagonals\)", diagonal, X)


# --- shape errors name the operation ------------------------------------------------------


def test_matmul_shape_mismatch() -> None:
    w = np.ones((4, 5), np.float32)

    def op(x: Any) -> Any:
        return x @ w  # error here

    def fn(x: Any) -> Any:
        return np.matmul(x, x)  # error here

    def dot(x: Any) -> Any:
        return np.dot(x, x)  # error here

    def scalar(x: Any) -> Any:
        return x[0, 0] @ x  # error here

    expect(TraceError, r"^x @ y: the operands' inner dimensions differ: \[2, 3\] @ \[4, 5\]", op, X)
    expect(TraceError, r"^np\.matmul: the operands' inner dimensions differ", fn, X)
    expect(TraceError, r"^np\.dot: shapes \[2, 3\] and \[2, 3\] are not aligned", dot, X)
    expect(TraceError, r"^x @ y: an operand is a scalar", scalar, X)


def test_broadcasting_mismatch() -> None:
    def op(x: Any, y: Any) -> Any:
        return x + y  # error here

    def fn(x: Any, y: Any) -> Any:
        return np.maximum(x, y)  # error here

    def where(x: Any, y: Any) -> Any:
        return np.where(x > 0, x, y)  # error here

    y = np.ones((4,), np.float32)
    expect(TraceError, r"^x \+ y: .*\[2, 3\].*\[4\]", op, X, y)
    expect(TraceError, r"^np\.maximum: ", fn, X, y)
    expect(TraceError, r"^np\.where: ", where, X, y)


def test_bad_reshape() -> None:
    def method(x: Any) -> Any:
        return x.reshape(4, -1)  # error here

    def fn(x: Any) -> Any:
        return np.reshape(x, (5,))  # error here

    def two_unknown(x: Any) -> Any:
        return x.reshape(-1, -1)  # error here

    expect(
        TraceError, r"^x\.reshape: cannot reshape array of size 6 into shape \[4, -1\]", method, X
    )
    expect(TraceError, r"^np\.reshape: cannot reshape array of size 6 into shape \[5\]", fn, X)
    expect(TraceError, r"^x\.reshape: can only specify one unknown dimension", two_unknown, X)


def test_axis_out_of_range() -> None:
    def reduce(x: Any) -> Any:
        return np.sum(x, axis=2)  # error here

    def method(x: Any) -> Any:
        return x.mean(axis=-3)  # error here

    def repeated(x: Any) -> Any:
        return x.max(axis=(0, -2))  # error here

    def transpose(x: Any) -> Any:
        return x.transpose(0, 2)  # error here

    def moveaxis(x: Any) -> Any:
        return np.moveaxis(x, 0, 5)  # error here

    def concatenate(x: Any) -> Any:
        return np.concatenate([x, x], axis=2)  # error here

    def squeeze(x: Any) -> Any:
        return np.squeeze(x, axis=0)  # error here

    def argmax(x: Any) -> Any:
        return np.argmax(x, axis=3)  # error here

    expect(TraceError, r"^np\.sum: axis 2 is out of bounds for an array of rank 2", reduce, X)
    expect(TraceError, r"^x\.mean: axis -3 is out of bounds", method, X)
    expect(TraceError, r"^x\.max: repeated axis", repeated, X)
    expect(TraceError, r"^x\.transpose: axes \[0, 2\] are out of bounds", transpose, X)
    expect(TraceError, r"^np\.moveaxis: axis 5 is out of bounds", moveaxis, X)
    expect(TraceError, r"^np\.concatenate: axis 2 is out of bounds", concatenate, X)
    expect(TraceError, r"^np\.squeeze: cannot select an axis to squeeze out", squeeze, X)
    expect(TraceError, r"^np\.argmax: axis 3 is out of bounds", argmax, X)


def test_other_shape_errors() -> None:
    def concatenate(x: Any) -> Any:
        return np.concatenate([x, x[:, :2]])  # error here

    def stack(x: Any) -> Any:
        return np.stack([x, x[:1]])  # error here

    def empty_max(x: Any) -> Any:
        return x[:0].max()  # error here

    def empty_argmin(x: Any) -> Any:
        return np.argmin(x[:, :0], axis=1)  # error here

    def einsum(x: Any) -> Any:
        return np.einsum("ij,ij->i", x, x.T)  # error here

    def broadcast_to(x: Any) -> Any:
        return np.broadcast_to(x, (3, 3))  # error here

    expect(TraceError, r"^np\.concatenate: ", concatenate, X)
    expect(TraceError, r"^np\.stack: all input arrays must have the same shape", stack, X)
    expect(TraceError, r"^x\.max: zero-size array to reduction operation maximum", empty_max, X)
    expect(TraceError, r"^np\.argmin: attempt to get argmin of an empty sequence", empty_argmin, X)
    expect(TraceError, r"^np\.einsum: subscript 'i' has sizes 2 and 3", einsum, X)
    expect(TraceError, r"^np\.broadcast_to: cannot broadcast \[2, 3\] to \[3, 3\]", broadcast_to, X)


# --- dtypes -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.clongdouble, np.float128])
def test_unsupported_dtype_arguments(dtype: Any) -> None:
    def astype(x: Any) -> Any:
        return x.astype(dtype)  # error here

    def zeros_like(x: Any) -> Any:
        return np.zeros_like(x, dtype=dtype)  # error here

    name = np.dtype(dtype).name
    err = expect(TraceError, rf"^x\.astype: dtype {name} is not supported by tessel", astype, X)
    assert "supported: float64, float32, float16, bfloat16" in err.message
    expect(TraceError, rf"^np\.zeros_like: dtype {name} is not supported", zeros_like, X)


def test_unsupported_dtype_from_a_result_and_a_constant() -> None:
    table = np.arange(4, dtype=np.clongdouble)

    def constant(x: Any) -> Any:
        return x + table  # error here

    expect(TraceError, r"^x \+ y: dtype complex256 is not supported", constant, X)


def test_promotion_errors_as_numpy_raises_them() -> None:
    u8 = np.arange(4, dtype=np.uint8)

    def overflow(x: Any) -> Any:
        return x + 300  # error here

    def negative_power(x: Any) -> Any:
        return x ** (-1)  # error here

    def bool_subtract(x: Any) -> Any:
        return (x > 1) - (x > 2)  # error here

    def float_and(x: Any) -> Any:
        return x.astype(np.float32) & 1  # error here

    expect(TraceError, r"^x \+ y: Python integer 300 out of bounds for uint8", overflow, u8)
    i8 = u8.astype(np.int8)
    expect(TraceError, r"^x \*\* y: Integers to negative integer powers", negative_power, i8)
    expect(TraceError, r"^x - y: .*boolean subtract", bool_subtract, u8)
    expect(TraceError, r"^x & y: .*bitwise_and", float_and, u8)


# --- arguments of the jitted function -----------------------------------------------------


def call_line() -> int:
    """The line after the caller's current one: where the failing call is written."""
    return sys._getframe(1).f_lineno + 1


def test_str_argument_not_marked_static() -> None:
    def f(x: Any, activation: str) -> Any:
        return np.maximum(x, 0) if activation == "relu" else x

    g = jit(f, target="interp")
    line = call_line()
    with pytest.raises(TesselError) as info:
        g(X, "relu")  # error here
    assert "argument 'activation' is a str, which cannot be traced" in info.value.message
    assert "static_argnames=('activation',)" in info.value.message
    assert_located(info.value, line + 1)
    assert jit(f, target="interp", static_argnames="activation")(X, "relu").shape == (2, 3)


def test_unhashable_static_argument() -> None:
    def f(x: Any, sizes: Any) -> Any:
        return x.reshape(sizes)

    g = jit(f, target="interp", static_argnames=("sizes",))
    line = call_line()
    with pytest.raises(TesselError) as info:
        g(X, [3, 2])  # error here
    assert "static argument 'sizes' must be hashable, got list" in info.value.message
    assert "use a tuple" in info.value.message
    assert_located(info.value, line + 1)
    assert g(X, (3, 2)).shape == (3, 2)


def test_unsupported_dtype_argument() -> None:
    g = jit(lambda x: x * 2, target="interp")
    line = call_line()
    with pytest.raises(TesselError) as info:
        g(np.ones(3, np.clongdouble))  # error here
    assert "has dtype complex256, which tessel does not support" in info.value.message
    assert_located(info.value, line + 1)


def test_recompile_inside_no_recompile() -> None:
    g = jit(lambda x: x + 1, target="interp")
    g(X)
    with no_recompile():
        g(X)  # a cache hit is fine
        line = call_line()
        with pytest.raises(RecompileError) as info:
            g(X[:1])  # error here
    assert "would compile inside no_recompile()" in info.value.message
    assert "f32[2,3] -> f32[1,3]" in info.value.message
    assert_located(info.value, line + 1)


def test_errors_are_tessel_errors_with_the_user_frame_only() -> None:
    assert issubclass(ConcretizationError, TraceError)
    assert issubclass(UnsupportedError, TraceError)
    assert issubclass(TraceError, TesselError)
    assert issubclass(RecompileError, TesselError)

    def f(x: Any) -> Any:
        return np.unique(x)  # error here

    with pytest.raises(UnsupportedError) as info:
        jit(f, target="interp")(X)
    assert info.value.__traceback__ is not None
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_bad_arguments_numpy_refuses_too() -> None:
    def einsum_output(x: Any) -> Any:
        return np.einsum("ij->ik", x)  # error here

    def einsum_operands(x: Any) -> Any:
        return np.einsum("ij,jk->ik", x)  # error here

    def tensordot_axes(x: Any) -> Any:
        return np.tensordot(x, x, axes=([0, 1], [0]))  # error here

    def tensordot_range(x: Any) -> Any:
        return np.tensordot(x, x, axes=([5], [0]))  # error here

    def argmax_tuple(x: Any) -> Any:
        return x.argmax(axis=(0, 1))  # error here

    def float_axis(x: Any) -> Any:
        return x.sum(axis=0.5)  # error here

    def float_shape(x: Any) -> Any:
        return x.reshape(2.0, 3)  # error here

    def matrix_transpose_1d(x: Any) -> Any:
        return x[0].mT  # error here

    expect(TraceError, r"^np\.einsum: output subscripts 'ik' must be distinct", einsum_output, X)
    expect(TraceError, r"^np\.einsum: 2 subscripts for 1 operands", einsum_operands, X)
    expect(TraceError, r"^np\.tensordot: axes \[0, 1\] and \[0\] pair", tensordot_axes, X)
    expect(TraceError, r"^np\.tensordot: axis 5 is out of bounds", tensordot_range, X)
    expect(TraceError, r"^x\.argmax: axis must be a single integer", argmax_tuple, X)
    expect(TraceError, r"^x\.sum: axis must be an integer", float_axis, X)
    expect(TraceError, r"^x\.reshape: the shape \(2\.0, 3\) must hold integers", float_shape, X)
    expect(
        TraceError,
        r"^x\.mT: axis -2 is out of bounds for an array of rank 1",
        matrix_transpose_1d,
        X,
    )


def test_list_holding_traced_values() -> None:
    def f(x: Any) -> Any:
        return np.concatenate([x, [x[0]]])  # error here

    expect(TraceError, r"^np\.concatenate: a Python list or tuple holding traced values", f, X)


def test_storing_a_traced_number_into_a_numpy_array_is_located() -> None:
    """NumPy refuses it with a bare ValueError; tessel says what happened, at the line."""

    def householder_start(x):
        r = TEMPLATE.copy()  # NumPy's array: ndarray.copy is not traced
        norm = (x * x).sum()
        r[1, 1] = np.sqrt(norm)  # error here
        return r

    expect(TraceError, r"cannot be stored into a NumPy array.*np\.zeros", householder_start, X)


def test_the_users_own_value_errors_pass_through() -> None:
    def picky(x):
        raise ValueError("setting an array element with a sequence.")

    with pytest.raises(ValueError, match="with a sequence") as info:
        jit(picky, target="interp")(X)
    assert not isinstance(info.value, TesselError)
