"""Complex numbers under @jit, against eager NumPy: complex64 and complex128 arguments and
results, NumPy's promotion with Python `complex` scalars, every supported function and
operator on awkward shapes, in-place writes, special values, and the located errors for what
tessel refuses on complex numbers. Each case bundles many operations into one compile.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from compiler import jit
from compiler.tracing import TraceError

TARGETS = ("interp", "cpu")
CDTYPES = (np.complex64, np.complex128)
SHAPES = [(0,), (1,), (7,), (3, 5)]
CPU_SHAPES = [(0,), (3, 5)]
Ops = dict[str, Callable[..., Any]]


def sample(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    parts = rng.standard_normal((2, *shape)) * 2
    return (parts[0] + 1j * parts[1]).astype(dtype)


def rtol(dtype: np.dtype[Any]) -> float:
    return 2e-5 if dtype in (np.complex64, np.float32) else 1e-12


def assert_same(got: Any, want: Any, what: str) -> None:
    want = np.asarray(want)
    assert isinstance(got, np.ndarray), (what, type(got))
    assert (got.dtype, got.shape) == (want.dtype, want.shape), (what, got.dtype, want.dtype)
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    if want.dtype.kind == "c":  # part by part: an infinite or NaN part must be in its place
        assert_same(got.real, want.real, f"{what} (real part)")
        assert_same(got.imag, want.imag, f"{what} (imaginary part)")
        return
    tol = rtol(want.dtype)
    finite = np.isfinite(want)
    scale = max(1.0, float(np.max(np.abs(want[finite]), initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, equal_nan=True, err_msg=what)


def eager(fn: Callable[..., Any], *args: Any) -> Any:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of an empty array
        return fn(*args)


def check(ops: Ops, args: tuple[Any, ...], target: str) -> None:
    """All of `ops` in one compiled function, each result compared with eager NumPy's."""
    names = list(ops)
    wants = [eager(ops[n], *[a.copy() for a in args]) for n in names]

    def bundle(*xs: Any) -> tuple[Any, ...]:
        return tuple(ops[n](*xs) for n in names)

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        got = jit(bundle, target=target)(*args)
    for n, g, w in zip(names, got, wants, strict=True):
        assert_same(g, w, n)


# --- one complex array --------------------------------------------------------------------


def _filled(empty: Any, z: Any) -> Any:
    empty[...] = z
    return empty


UNARY: Ops = {
    "z.real": lambda z: z.real,
    "z.imag": lambda z: z.imag,
    "np.real": np.real,
    "np.imag": np.imag,
    "np.conj": np.conj,
    "np.conjugate": np.conjugate,
    "z.conj()": lambda z: z.conj(),
    "np.abs": np.abs,
    "abs": abs,
    "np.angle": np.angle,
    "np.angle(deg)": lambda z: np.angle(z, deg=True),
    "np.exp": np.exp,
    "np.log": lambda z: np.log(z + 0.5),
    "np.sqrt": np.sqrt,
    "np.log10": lambda z: np.log10(z + 0.5),
    "np.reciprocal": lambda z: np.reciprocal(z + 3),
    "np.cumsum": np.cumsum,
    "np.std": np.std,
    "np.square": np.square,
    "z * z": lambda z: z * z,
    "z ** 2": lambda z: z**2,
    "z ** 3": lambda z: z**3,
    "z ** 1": lambda z: z**1,
    "z ** 0": lambda z: z**0,
    "z ** -2": lambda z: z ** (-2),
    "np.power(z, 5)": lambda z: np.power(z, 5),
    "-z": lambda z: -z,
    "z * 1j": lambda z: z * 1j,
    "z + 1.5": lambda z: z + 1.5,
    "(2 - 1j) / z": lambda z: (2 - 1j) / z,
    "z == conj": lambda z: z == z.conj(),
    "z != 0": lambda z: z != 0,
    "np.isnan": np.isnan,
    "np.isinf": np.isinf,
    "np.isfinite": np.isfinite,
    "np.where": lambda z: np.where(z.real > 0, z, 2),
    "np.zeros_like": np.zeros_like,
    "np.ones_like": np.ones_like,
    "np.zeros(complex)": lambda z: np.zeros(z.shape, complex) + z,
    "np.full": lambda z: np.full(z.shape, 1 - 2j) * z,
    "np.empty(c64)": lambda z: _filled(np.empty(z.shape, dtype=np.complex64), z),
    "astype(c64)": lambda z: z.astype(np.complex64),
    "astype(c128)": lambda z: z.astype(np.complex128),
    "astype(f32)": lambda z: z.astype(np.float32),
    "astype(i32)": lambda z: (z * 3).astype(np.int32),
    "astype(bool)": lambda z: z.astype(bool),
    "real.astype(c64)": lambda z: z.real.astype(np.complex64),
    "iscomplexobj": lambda z: z * np.iscomplexobj(z),
    "iscomplexobj(real)": lambda z: z * np.iscomplexobj(z.real),
    "z[::-1]": lambda z: z[::-1],
    "np.pad": lambda z: np.pad(z, 1),
    "concatenate": lambda z: np.concatenate([z, z.real], axis=0),
    "z.reshape(-1)": lambda z: z.reshape(-1),
    "z.T": lambda z: z.T,
    "np.var": np.var,
    "np.linalg.norm": lambda z: np.linalg.norm(z.reshape(-1)),
}
RANK0: Ops = {
    "z.sum()": lambda z: z.sum(),
    "z.mean()": lambda z: z.mean(),
    "np.sum(axis=0)": lambda z: np.sum(z, axis=0),
    "z.mean(axis=0)": lambda z: z.mean(axis=0),
    "z.sum() * 2": lambda z: z.sum() * 2,
    "z[mask].sum()": lambda z: z[z.real > 0].sum(),
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", CDTYPES, ids=lambda d: np.dtype(d).name)
def test_functions_and_operators(dtype: Any, target: str) -> None:
    rng = np.random.default_rng(1)
    for shape in SHAPES if target == "interp" else CPU_SHAPES:  # CPU compiles cost seconds
        check(UNARY, (sample(rng, shape, dtype),), target)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", CDTYPES, ids=lambda d: np.dtype(d).name)
def test_reductions(dtype: Any, target: str) -> None:
    rng = np.random.default_rng(2)
    for shape in SHAPES:
        check(RANK0, (sample(rng, shape, dtype),), target)


BINARY: Ops = {
    "+": lambda z, w: z + w,
    "-": lambda z, w: z - w,
    "*": lambda z, w: z * w,
    "/": lambda z, w: z / (w + 3),
    "==": lambda z, w: z == w,
    "!=": lambda z, w: z != w,
    "where": lambda z, w: np.where(z.real > w.real, z, w),
    "np.multiply": np.multiply,
    "z * w.real": lambda z, w: z * w.real,
    "z.imag + w": lambda z, w: z.imag + w,
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", CDTYPES, ids=lambda d: np.dtype(d).name)
def test_binary_broadcasting(dtype: Any, target: str) -> None:
    rng = np.random.default_rng(3)
    for sz, sw in [((7,), (7,)), ((3, 1), (1, 4)), ((0, 2), (1, 2)), ((1,), (5,))]:
        check(BINARY, (sample(rng, sz, dtype), sample(rng, sw, dtype)), target)


# --- promotion ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_promotion_follows_numpy(target: str) -> None:
    rng = np.random.default_rng(4)
    f32 = rng.standard_normal(5).astype(np.float32)
    f64 = f32.astype(np.float64)
    i32 = np.arange(5, dtype=np.int32)
    c64, c128 = sample(rng, (5,), np.complex64), sample(rng, (5,), np.complex128)
    ops: Ops = {
        "f32 * 1j": lambda a, b, i, z, w: a * 1j,
        "f64 + 1j": lambda a, b, i, z, w: b + 1j,
        "int * 1j": lambda a, b, i, z, w: i * 1j,
        "f32 + c128": lambda a, b, i, z, w: a + w,
        "f64 + c64": lambda a, b, i, z, w: b + z,
        "c64 + c128": lambda a, b, i, z, w: z + w,
        "c64 * 2.5": lambda a, b, i, z, w: z * 2.5,
        "c64 * (2 + 1j)": lambda a, b, i, z, w: z * (2 + 1j),
        "c64 + np.complex128": lambda a, b, i, z, w: z + np.complex128(1j),
        "i32 * c64": lambda a, b, i, z, w: i * z,
        "np.where(c, c64, 2)": lambda a, b, i, z, w: np.where(a > 0, z, 2),
    }
    check(ops, (f32, f64, i32, c64, c128), target)


@pytest.mark.parametrize("target", TARGETS)
def test_python_complex_arguments_and_results(target: str) -> None:
    f = jit(lambda x, s: (x * s, 2j), target=target)
    x = np.ones(3, np.float32)
    product, constant = f(x, 1 + 2j)
    assert product.dtype == np.complex64  # a Python complex is weak, as NumPy's
    np.testing.assert_array_equal(product, x * (1 + 2j))
    assert constant == 2j
    f(x, 3 - 1j)
    assert f.cache_info().misses == 1  # a new complex value does not recompile


# --- contractions -------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", CDTYPES, ids=lambda d: np.dtype(d).name)
def test_matmul_and_dot(dtype: Any, target: str) -> None:
    rng = np.random.default_rng(5)
    pairs = [((3, 4), (4, 2)), ((0, 3), (3, 2)), ((1, 1), (1, 1)), ((2, 3, 4), (4, 5))]
    pairs.append(((5,), (5,)))
    ops: Ops = {
        "a @ b": lambda a, b: a @ b,
        "np.dot": np.dot,
        "a @ b.real": lambda a, b: a @ b.real,
        "einsum": lambda a, b: np.einsum("ij,jk->ik", a, b) if a.ndim == b.ndim == 2 else a @ b,
    }
    for sa, sb in pairs if target == "interp" else pairs[1:4]:
        check(ops, (sample(rng, sa, dtype), sample(rng, sb, dtype)), target)


# --- in place -----------------------------------------------------------------------------


def _writes(z: Any, c: Any) -> Any:
    z[z.real > 0] = 1j
    z += c
    z[0] *= 2
    return z.sum(axis=0)


def _parts_assigned(z: Any, c: Any) -> Any:
    r = z.real  # a view: sees the writes below
    z.imag = c.real
    z.real[z.real < 0] = 0.5
    z[-1] = c[0]
    return r * 1


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", CDTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("fn", [_writes, _parts_assigned])
def test_in_place_writes(fn: Callable[..., Any], dtype: Any, target: str) -> None:
    rng = np.random.default_rng(6)
    z, c = sample(rng, (4, 3), dtype), sample(rng, (3,), dtype)
    want_z = z.copy()
    want = fn(want_z, c)
    got = jit(fn, target=target)(z, c)
    assert_same(got, want, fn.__name__)
    assert_same(z, want_z, f"{fn.__name__}: the argument written")


def test_astype_real_warns_as_numpy() -> None:
    z = np.array([1 + 2j, -3 - 4j], np.complex64)
    f = jit(lambda z: z.astype(np.float32), target="interp")
    with pytest.warns(np.exceptions.ComplexWarning, match="discards the imaginary part"):
        got = f(z)
    np.testing.assert_array_equal(got, [1, -3])


# --- special values -----------------------------------------------------------------------

INF, NAN = np.inf, np.nan
SPECIAL = [complex(r, i) for r in (0.0, -0.0, 1.5, -INF, INF, NAN) for i in (0.0, -2.0, INF, NAN)]
SPECIAL_OPS: Ops = {
    "+": lambda z: z + z[::-1],
    "*": lambda z: z * (1.5 - 0.5j),
    "/": lambda z: z / (2 + 1j),
    "abs": np.abs,
    "conj": np.conj,
    "real": np.real,
    "imag": np.imag,
    "isnan": np.isnan,
    "isinf": np.isinf,
    "isfinite": np.isfinite,
    "==": lambda z: z == z,
    "square": np.square,
}
# exp, log and sqrt: NumPy follows C99 Annex G for infinite and NaN parts; the interpreter runs
# NumPy's own loops, the CPU backend real formulas (expand-complex) with the special cases
SPECIAL_LIBM: Ops = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "angle": np.angle}
# e^89.5 overflows float32 and e^710 float64, but times cos b or sin b they may not
OVERFLOWING_EXP = [complex(r, i) for r in (89.5, 710.0) for i in (0.0, -0.0, 1.0, -2.0, 1e-30, INF)]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dtype", CDTYPES, ids=lambda d: np.dtype(d).name)
def test_special_values(dtype: Any, target: str) -> None:
    z = np.array(SPECIAL, dtype)
    check(SPECIAL_OPS | SPECIAL_LIBM, (z,), target)
    check({"exp": np.exp}, (np.array(OVERFLOWING_EXP, dtype),), target)


@pytest.mark.parametrize("dtype", CDTYPES, ids=lambda d: np.dtype(d).name)
def test_libm_on_finite_values_on_cpu(dtype: Any) -> None:
    finite = [z for z in SPECIAL if np.isfinite(z)] + [1e-30 + 1e30j, -1e3 + 0.5j, 40 - 700j]
    check(SPECIAL_LIBM, (np.array(finite, dtype),), "cpu")


# --- what tessel refuses on complex numbers -----------------------------------------------


def _refused_maximum(z: Any) -> Any:
    return np.maximum(z, 1)  # error here


def _refused_less(z: Any) -> Any:
    return z < 1  # error here


def _refused_sort(z: Any) -> Any:
    return np.sort(z)  # error here


def _refused_sin(z: Any) -> Any:
    return np.sin(z)  # error here


def _refused_max(z: Any) -> Any:
    return z.max()  # error here


def _refused_prod(z: Any) -> Any:
    return np.prod(z)  # error here


def _refused_argmax(z: Any) -> Any:
    return np.argmax(z)  # error here


def _refused_sign(z: Any) -> Any:
    return np.sign(z)  # error here


def _refused_pow_fraction(z: Any) -> Any:
    return z**0.5  # error here


def _refused_pow_traced(z: Any) -> Any:
    return z**z  # error here


def _refused_expm1(z: Any) -> Any:
    return np.expm1(z)  # error here


def _refused_clip(z: Any) -> Any:
    return np.clip(z, 0, 1)  # error here


@pytest.mark.parametrize(
    "fn",
    [_refused_maximum, _refused_less, _refused_sort, _refused_sin, _refused_max,
     _refused_prod, _refused_argmax, _refused_sign, _refused_pow_fraction,
     _refused_pow_traced, _refused_expm1, _refused_clip],
    ids=lambda f: f.__name__.removeprefix("_refused_"),
)  # fmt: skip
def test_unsupported_operations_name_complex_numbers(fn: Callable[..., Any]) -> None:
    with pytest.raises(TraceError) as info:
        jit(fn, target="interp")(np.array([1 + 2j, 3 - 1j]))
    err = info.value
    assert "tessel does not support complex numbers here" in err.message, err.message
    lines, start = inspect.getsourcelines(fn)
    marked = next(start + i for i, text in enumerate(lines) if "# error here" in text)
    assert err.loc is not None
    assert (err.loc.file, err.loc.line) == (__file__, marked)


def test_concretizing_a_complex_value_is_located() -> None:
    def f(z: Any) -> Any:
        return complex(z[0])

    with pytest.raises(TraceError, match="complex\\(\\) of a traced value"):
        jit(f, target="interp")(np.array([1 + 2j]))
