"""NumPy on tracers: one table of ufuncs and one of array functions, plus the tracer's methods.

A traced function calls NumPy as usual; NumPy hands calls that involve a `Tracer` to
`__array_ufunc__` (ufuncs: np.exp, np.add, np.matmul, ...) or `__array_function__` (np.sum,
np.einsum, ...), which look the function up here. A function missing from both tables is an
error naming it: there is no silent fallback to eager NumPy. Python operators and array methods
route through the same rows, so `x + y`, `np.add(x, y)` and `x.__add__(y)` are one definition.

Result dtypes are NumPy's: each row asks NumPy what the call would return on stand-in values
(`np.sum(np.zeros(1, int8)).dtype` is int64), so promotion matches eager NumPy by construction.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from compiler import (
    decompositions,
    linalg,
    numpy_complex,
    numpy_composites,
    numpy_histogram,
    numpy_indexing,
    numpy_sort,
)
from compiler.tracing import (
    TraceError,
    Tracer,
    UnsupportedError,
    View,
    broadcast,
    broadcast_all,
    concrete_array,
    convert,
    elementwise,
    full,
    is_weak,
    lift,
    normalize_axes,
    reshape,
    result_dtype,
    strong,
    to_dtype,
    trace_of,
    transpose,
    write_into,
)
from ir.dtypes import DType
from ir.ops import Op

Handler = Callable[..., Any]
TracerFn = Callable[..., Tracer]


def _stand_in(x: Any) -> Any:
    """A value NumPy can run a ufunc on that promotes exactly like `x`."""
    if isinstance(x, Tracer):
        if x.weak:
            return {"b": False, "i": 0, "u": 0, "c": 0j}.get(x.dtype.kind, 0.0)
        return np.zeros(1, x.dtype)
    if isinstance(x, bool | int | float | complex):
        return x
    return np.zeros(1, concrete_array(x).dtype)


def _ufunc_dtype(ufunc: np.ufunc, *xs: Any, dtype: Any = None) -> DType:
    trace = trace_of(*xs)
    try:
        with np.errstate(all="ignore"):
            out = ufunc(*(_stand_in(x) for x in xs), **({"dtype": dtype} if dtype else {}))
    except (TypeError, ValueError, OverflowError, np.exceptions.DTypePromotionError) as e:
        raise trace.error(str(e)) from None  # ValueError: integers to negative integer powers
    return to_dtype(np.asarray(out).dtype, trace.api)


# --- ufuncs -------------------------------------------------------------------------------

# bool arrays: NumPy's add is `or` and multiply is `and`; tessel's arithmetic ops are numeric only
_ON_BOOL = {Op.ADD: Op.OR, Op.MUL: Op.AND, Op.MAX: Op.OR, Op.MIN: Op.AND}


def _arithmetic(op: Op, ufunc: np.ufunc) -> TracerFn:
    """Operands converted to the dtype NumPy's loop computes in, which is the result's."""

    def run(*xs: Any, dtype: Any = None) -> Tracer:
        out = _ufunc_dtype(ufunc, *xs, dtype=dtype)
        if op is Op.ABS and out is DType.BOOL:
            return lift(xs[0], out)  # |b| == b; tessel's abs is numeric only
        if op is Op.ABS and isinstance(xs[0], Tracer) and xs[0].node.dtype.is_complex:
            return numpy_complex.absolute(xs[0])  # |z| is real: not computed in z's type
        return elementwise(_ON_BOOL.get(op, op) if out is DType.BOOL else op, *xs, dtype=out)

    return run


def _compare_dtype(a: Any, b: Any) -> DType:
    try:
        common = result_dtype(a, b)
    except TraceError:
        # bf16 does not promote with f16 or i64, yet NumPy compares them in the loop its
        # arithmetic picks (f32, f64)
        return _ufunc_dtype(np.add, a, b)
    # NumPy compares integers with any Python int (`x_u8 == -1` is all False): compare in a
    # type that holds both instead of failing to convert the Python int
    for v in (a, b):
        if type(v) is int and common.is_int and not _fits(v, common):
            return DType.I64
    return common


def _fits(value: int, dtype: DType) -> bool:
    info = np.iinfo(dtype.np.type)  # type: ignore[type-var]
    return int(info.min) <= value <= int(info.max)


def _compare(op: Op) -> TracerFn:
    def run(a: Any, b: Any) -> Tracer:
        common = _compare_dtype(a, b)
        x, y = broadcast_all([lift(a, common), lift(b, common)])
        return x.trace.emit(op, [x, y], is_weak(a) and is_weak(b))

    return run


def _unary_float(op: Op, ufunc: np.ufunc) -> TracerFn:
    def run(x: Any, dtype: Any = None) -> Tracer:
        out = _ufunc_dtype(ufunc, x, dtype=dtype)
        # np.floor/np.ceil keep integers (NumPy >= 2.1), unchanged
        if not (out.is_float or out.is_complex):
            return lift(x, out)
        return elementwise(op, x, dtype=out)

    return run


def _as_bool(x: Any) -> Tracer:
    t = lift(x)
    if t.node.dtype is DType.BOOL:
        return t
    return t.trace.emit(Op.NE, broadcast_all([t, lift(0, t.node.dtype)]))


def _logical(op: Op) -> TracerFn:
    def run(*xs: Any) -> Tracer:
        operands = broadcast_all([_as_bool(x) for x in xs])
        return operands[0].trace.emit(op, operands)

    return run


def python_divmod(a: Any, b: Any) -> tuple[Tracer, Tracer]:
    return _floor_divide(a, b), _remainder(a, b)


def _logical_xor(a: Any, b: Any) -> Tracer:
    x, y = broadcast_all([_as_bool(a), _as_bool(b)])
    return x.trace.emit(Op.NE, [x, y])


def _divide(a: Any, b: Any, dtype: Any = None) -> Tracer:
    return elementwise(Op.DIV, a, b, dtype=_ufunc_dtype(np.true_divide, a, b, dtype=dtype))


_WIDER = {DType.F16: DType.F32, DType.BF16: DType.F32, DType.F32: DType.F64}


def _floor_divide(a: Any, b: Any, dtype: DType | None = None) -> Tracer:
    out = dtype or _ufunc_dtype(np.floor_divide, a, b)
    if out.is_float:
        # floor(x/y) is off by one where x/y rounds up to an integer: a wider type makes that
        # rare, and NumPy's half loops compute in f32 too
        work = _WIDER.get(out, out)
        q = elementwise(Op.FLOOR, elementwise(Op.DIV, a, b, dtype=work))
        return _weak_as(convert(q, out), a, b)
    x, y = broadcast_all([lift(a, out), lift(b, out)])
    q = x.trace.emit(Op.DIV, [x, y])  # truncates toward zero; floor steps down one on a
    inexact = np_ne(elementwise(Op.SUB, x, elementwise(Op.MUL, q, y)), 0)  # negative remainder
    signs_differ = np_ne(np_lt(x, 0), np_lt(y, 0))
    step = convert(elementwise(Op.AND, inexact, signs_differ), out)
    return _weak_as(_zero_where_divisor_is_zero(elementwise(Op.SUB, q, step), y), a, b)


def _zero_where_divisor_is_zero(result: Tracer, divisor: Tracer) -> Tracer:
    """NumPy's integer x // 0 and x % 0 are 0 (with a warning)."""
    zero = full(result.trace, result.shape, 0, result.node.dtype)
    return np_where(_compare(Op.EQ)(divisor, 0), zero, result)


def _weak_as(result: Tracer, *operands: Any) -> Tracer:
    """`result` weak exactly when every operand is (a Python int // a Python int is one)."""
    weak = all(is_weak(v) for v in operands)
    return result if result.weak == weak else Tracer(result.trace, result.node, weak)


def _remainder(a: Any, b: Any) -> Tracer:
    out = _ufunc_dtype(np.remainder, a, b)
    # NumPy's float remainder is exact (fmod); x - floor(x/y)*y is not when x/y rounds up to
    # an integer, so narrow floats compute it in a wider type and round once
    work = _WIDER.get(out, out)
    x, y = lift(a, work), lift(b, work)
    r = elementwise(Op.SUB, x, elementwise(Op.MUL, _floor_divide(x, y, work), y))
    if out.is_int:
        r = _zero_where_divisor_is_zero(r, broadcast_all([y, r])[0])
    return _weak_as(convert(r, out), a, b)


def _power(a: Any, b: Any) -> Tracer:
    out = _ufunc_dtype(np.power, a, b)
    if out.is_complex:
        return numpy_complex.integer_power(a, b, out)
    if isinstance(b, int | float) and not isinstance(b, bool) and not isinstance(a, int | float):
        x = lift(a, out)
        if b == 2:
            return elementwise(Op.MUL, x, x)
        if b == 1:
            return x
        if b == 0.5 and out.is_float:
            return elementwise(Op.SQRT, x)
    return elementwise(Op.POW, a, b, dtype=out)


def _square(x: Any) -> Tracer:
    t = lift(x, _ufunc_dtype(np.square, x))
    return elementwise(Op.MUL, t, t)


def _reciprocal(x: Any) -> Tracer:
    out = _ufunc_dtype(np.reciprocal, x)
    if out is DType.BOOL:
        return lift(x)  # NumPy's bool loop: 1/True is True, 1/False is False
    return elementwise(Op.DIV, lift(1, out), x, dtype=out)  # integers: truncated, as in C


def _log_base(base: float) -> TracerFn:
    def run(x: Any) -> Tracer:
        out = _ufunc_dtype(np.log, x)
        return elementwise(Op.DIV, elementwise(Op.LOG, x, dtype=out), math.log(base), dtype=out)

    return run


def _angle(ufunc: np.ufunc) -> TracerFn:
    """np.deg2rad, np.rad2deg: x times NumPy's own constant, in the type NumPy multiplies in
    (f32 for f16 and bf16, rounded once to the result)."""

    def run(x: Any) -> Tracer:
        out = _ufunc_dtype(ufunc, x)
        work = DType.F64 if out is DType.F64 else DType.F32
        scale = float(ufunc(np.ones((), work.np)))
        return convert(elementwise(Op.MUL, lift(x, work), scale, dtype=work), out)

    return run


def _isnan(x: Any) -> Tracer:
    t = lift(x)
    return t.trace.emit(Op.NE, [t, t])


def _isinf(x: Any) -> Tracer:
    t = lift(x)
    if t.node.dtype.is_complex:
        return numpy_complex.is_finite_parts(t, _isinf, Op.OR)
    if not t.node.dtype.is_float:
        return full(t.trace, t.shape, False, DType.BOOL)
    return _compare(Op.EQ)(elementwise(Op.ABS, t), math.inf)


def _isfinite(x: Any) -> Tracer:
    t = lift(x)
    if t.node.dtype.is_complex:
        return numpy_complex.is_finite_parts(t, _isfinite, Op.AND)
    if not t.node.dtype.is_float:
        return full(t.trace, t.shape, True, DType.BOOL)
    return _compare(Op.LT)(elementwise(Op.ABS, t), math.inf)


def _positive(x: Any) -> Tracer:
    return lift(x, _ufunc_dtype(np.positive, x))  # refuses bool, as NumPy does


np_ne = _compare(Op.NE)
np_lt = _compare(Op.LT)

UFUNCS: dict[np.ufunc, Handler] = {
    np.add: _arithmetic(Op.ADD, np.add),
    np.subtract: _arithmetic(Op.SUB, np.subtract),
    np.multiply: _arithmetic(Op.MUL, np.multiply),
    np.maximum: _arithmetic(Op.MAX, np.maximum),
    np.minimum: _arithmetic(Op.MIN, np.minimum),
    np.true_divide: _divide,
    np.floor_divide: _floor_divide,
    np.remainder: _remainder,
    np.power: _power,
    np.arctan2: _arithmetic(Op.ATAN2, np.arctan2),
    np.hypot: _arithmetic(Op.HYPOT, np.hypot),
    np.fmod: _arithmetic(Op.FMOD, np.fmod),
    np.negative: _arithmetic(Op.NEG, np.negative),
    np.positive: _positive,
    np.absolute: _arithmetic(Op.ABS, np.absolute),
    np.sign: _arithmetic(Op.SIGN, np.sign),
    np.square: _square,
    np.reciprocal: _reciprocal,
    np.exp: _unary_float(Op.EXP, np.exp),
    np.log: _unary_float(Op.LOG, np.log),
    np.log2: _log_base(2.0),
    np.log10: _log_base(10.0),
    np.sqrt: _unary_float(Op.SQRT, np.sqrt),
    np.tanh: _unary_float(Op.TANH, np.tanh),
    np.sin: _unary_float(Op.SIN, np.sin),
    np.cos: _unary_float(Op.COS, np.cos),
    np.tan: _unary_float(Op.TAN, np.tan),
    np.arcsin: _unary_float(Op.ASIN, np.arcsin),
    np.arccos: _unary_float(Op.ACOS, np.arccos),
    np.arctan: _unary_float(Op.ATAN, np.arctan),
    np.sinh: _unary_float(Op.SINH, np.sinh),
    np.cosh: _unary_float(Op.COSH, np.cosh),
    np.arcsinh: _unary_float(Op.ASINH, np.arcsinh),
    np.arccosh: _unary_float(Op.ACOSH, np.arccosh),
    np.arctanh: _unary_float(Op.ATANH, np.arctanh),
    np.log1p: _unary_float(Op.LOG1P, np.log1p),
    np.expm1: _unary_float(Op.EXPM1, np.expm1),
    np.deg2rad: _angle(np.deg2rad),
    np.radians: _angle(np.radians),
    np.rad2deg: _angle(np.rad2deg),
    np.degrees: _angle(np.degrees),
    np.floor: _unary_float(Op.FLOOR, np.floor),
    np.ceil: _unary_float(Op.CEIL, np.ceil),
    np.equal: _compare(Op.EQ),
    np.not_equal: _compare(Op.NE),
    np.less: _compare(Op.LT),
    np.less_equal: _compare(Op.LE),
    np.greater: _compare(Op.GT),
    np.greater_equal: _compare(Op.GE),
    np.logical_and: _logical(Op.AND),
    np.logical_or: _logical(Op.OR),
    np.logical_not: _logical(Op.NOT),
    np.logical_xor: _logical_xor,
    np.bitwise_and: _arithmetic(Op.AND, np.bitwise_and),
    np.bitwise_or: _arithmetic(Op.OR, np.bitwise_or),
    np.bitwise_xor: _arithmetic(Op.XOR, np.bitwise_xor),
    np.left_shift: _arithmetic(Op.SHIFT_LEFT, np.left_shift),
    np.right_shift: _arithmetic(Op.SHIFT_RIGHT, np.right_shift),
    np.invert: _arithmetic(Op.NOT, np.invert),
    np.conjugate: numpy_complex.conjugate,
    np.isnan: _isnan,
    np.isinf: _isinf,
    np.isfinite: _isfinite,
    np.matmul: linalg.matmul,
}

# ufunc.reduce(x, axis=0): the reductions NumPy spells as a ufunc method
REDUCE_METHODS: dict[np.ufunc, str] = {
    np.add: "sum",
    np.multiply: "prod",
    np.maximum: "max",
    np.minimum: "min",
    np.logical_and: "all",
    np.logical_or: "any",
}


# --- reductions ---------------------------------------------------------------------------


def _keep(x: Tracer, axes: tuple[int, ...], shape: tuple[int, ...], keepdims: bool) -> Tracer:
    if not keepdims:
        return x
    return reshape(x, tuple(1 if i in axes else n for i, n in enumerate(shape)))


def _reduce(kind: str, numpy_fn: Handler) -> TracerFn:
    """sum/prod/max/min over axes, in the dtype NumPy's reduction returns."""

    def run(a: Any, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Tracer:
        x = lift(a)
        trace = x.trace
        axes = normalize_axes(axis, x.ndim, trace.api)
        probe = np.zeros(1, x.dtype)
        out = to_dtype(numpy_fn(probe, **({"dtype": dtype} if dtype else {})).dtype, trace.api)
        if kind in ("max", "min") and any(x.shape[i] == 0 for i in axes):
            raise trace.error(
                f"zero-size array to reduction operation {kind}imum which has no identity"
            )
        x = convert(x, out)
        op_kind = {True: {"sum": "max", "prod": "min"}}.get(out is DType.BOOL, {}).get(kind, kind)
        r = trace.emit(Op.REDUCE, [x], x.weak, kind=op_kind, axes=axes) if axes else x
        return _keep(r, axes, x.shape, keepdims)

    return run


np_sum = _reduce("sum", np.sum)
np_prod = _reduce("prod", np.prod)
np_max = _reduce("max", np.max)
np_min = _reduce("min", np.min)


def _bool_reduce(kind: str) -> TracerFn:
    """all/any: min/max over booleans, which unlike np.min/np.max accept empty arrays."""

    def run(a: Any, axis: Any = None, keepdims: bool = False) -> Tracer:
        x = _as_bool(a)
        axes = normalize_axes(axis, x.ndim, x.trace.api)
        if not axes:
            return x
        if any(x.shape[i] == 0 for i in axes):  # all([]) is True, any([]) is False
            shape = tuple(n for i, n in enumerate(x.shape) if i not in axes)
            return _keep(full(x.trace, shape, kind == "min", DType.BOOL), axes, x.shape, keepdims)
        r = x.trace.emit(Op.REDUCE, [x], kind=kind, axes=axes)
        return _keep(r, axes, x.shape, keepdims)

    return run


np_all = _bool_reduce("min")
np_any = _bool_reduce("max")


def np_mean(a: Any, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Tracer:
    x = lift(a)
    axes = normalize_axes(axis, x.ndim, x.trace.api)
    out = to_dtype(np.mean(np.zeros(1, x.dtype), **({"dtype": dtype} if dtype else {})).dtype)
    x = convert(x, out)
    if out.is_complex and axes:  # the IR's mean is real only: each part of the sum / count
        count = math.prod(x.shape[i] for i in axes)
        total = np_sum(x, axes, keepdims=keepdims)
        re, im = (
            elementwise(Op.DIV, numpy_complex.part(total, op), count, dtype=out.real_part)
            for op in (Op.REAL, Op.IMAG)
        )
        return numpy_complex.make(re, im, out)
    r = x.trace.emit(Op.MEAN, [x], x.weak, axes=axes) if axes else x
    return _keep(r, axes, x.shape, keepdims)


def np_var(
    a: Any, axis: Any = None, dtype: Any = None, ddof: int = 0, keepdims: bool = False
) -> Tracer:
    x = lift(a)
    axes = normalize_axes(axis, x.ndim, x.trace.api)
    centred = elementwise(Op.SUB, x, np_mean(x, axes, dtype, keepdims=True))
    count = math.prod(x.shape[i] for i in axes)
    total = np_sum(_abs_squared(centred), axes, keepdims=keepdims)
    return elementwise(Op.DIV, total, max(count - ddof, 0))


def _abs_squared(x: Tracer) -> Tracer:
    """|x|**2, real: re**2 + im**2 for complex numbers (NumPy's var and norm use it)."""
    if not x.node.dtype.is_complex:
        return elementwise(Op.MUL, x, x)
    re, im = numpy_complex.part(x, Op.REAL), numpy_complex.part(x, Op.IMAG)
    return elementwise(Op.ADD, elementwise(Op.MUL, re, re), elementwise(Op.MUL, im, im))


def np_std(
    a: Any, axis: Any = None, dtype: Any = None, ddof: int = 0, keepdims: bool = False
) -> Tracer:
    return elementwise(Op.SQRT, np_var(a, axis, dtype, ddof, keepdims))


def _arg_reduce(kind: str) -> TracerFn:
    """The first index of the max (min); a NaN counts as the extreme, as in NumPy."""

    def run(a: Any, axis: int | None = None, keepdims: bool = False) -> Tracer:
        x = lift(a)
        if axis is None:
            r = run(reshape(x, (x.size,)), 0)
            return reshape(r, (1,) * x.ndim) if keepdims else r
        if not isinstance(axis, int | np.integer):
            raise x.trace.error(f"axis must be a single integer, got {axis!r}")
        (ax,) = normalize_axes(axis, x.ndim, x.trace.api)
        if x.shape[ax] == 0:
            raise x.trace.error(f"attempt to get arg{kind} of an empty sequence")
        best = (np_max if kind == "max" else np_min)(x, ax, keepdims=True)
        hit = _logical(Op.OR)(_compare(Op.EQ)(x, best), _isnan(x))
        index = x.trace.emit(Op.IOTA, [], shape=x.shape, dtype=DType.I64, dim=ax)
        return np_min(np_where(hit, index, x.shape[ax]), ax, keepdims=keepdims)

    return run


# --- shapes and data movement -------------------------------------------------------------


def _shape_arg(shape: Any, size: int, api: str, trace: Any) -> tuple[int, ...]:
    given = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
    if not all(isinstance(d, int | np.integer) and not isinstance(d, bool) for d in given):
        raise trace.error(f"the shape {given} must hold integers")  # a float would truncate
    dims = tuple(int(d) for d in given)
    unknown = [i for i, d in enumerate(dims) if d < 0]  # NumPy takes any negative as -1
    if len(unknown) > 1:
        raise trace.error("can only specify one unknown dimension")
    known = math.prod(d for d in dims if d >= 0)
    if unknown:
        if known == 0 or size % known:
            raise trace.error(f"cannot reshape array of size {size} into shape {list(dims)}")
        dims = tuple(size // known if d < 0 else d for d in dims)
    if math.prod(dims) != size:
        raise trace.error(f"cannot reshape array of size {size} into shape {list(dims)}")
    return dims


def np_reshape(a: Any, shape: Any = None, order: str = "C", *, newshape: Any = None) -> Tracer:
    x = lift(a)
    if order != "C":
        raise x.trace.error(f"order={order!r} is not supported; only C order", UnsupportedError)
    shape = newshape if shape is None else shape
    return reshape(x, _shape_arg(shape, x.size, x.trace.api, x.trace))


def np_transpose(a: Any, axes: Sequence[int] | None = None) -> Tracer:
    x = lift(a)
    if axes is None:
        return transpose(x, range(x.ndim - 1, -1, -1))
    if any(not -x.ndim <= int(p) < x.ndim for p in axes):  # % would wrap them silently
        raise x.trace.error(f"axes {list(axes)} are out of bounds for an array of rank {x.ndim}")
    perm = tuple(int(p) % max(x.ndim, 1) for p in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise x.trace.error(f"axes {list(axes)} do not match an array of rank {x.ndim}")
    return transpose(x, perm)


def np_swapaxes(a: Any, axis1: int, axis2: int) -> Tracer:
    x = lift(a)
    perm = list(range(x.ndim))
    i, j = (normalize_axes(ax, x.ndim, x.trace.api)[0] for ax in (axis1, axis2))
    perm[i], perm[j] = perm[j], perm[i]
    return transpose(x, perm)


def np_moveaxis(a: Any, source: Any, destination: Any) -> Tracer:
    x = lift(a)
    api = x.trace.api
    src = [normalize_axes(int(s), x.ndim, api)[0] for s in np.atleast_1d(source)]
    dst = [normalize_axes(int(d), x.ndim, api)[0] for d in np.atleast_1d(destination)]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst) or len(src) != len(dst):
        raise x.trace.error("source and destination must be distinct axes, as many of each")
    order = [i for i in range(x.ndim) if i not in src]
    for d, s in sorted(zip(dst, src, strict=True)):
        order.insert(d, s)
    return transpose(x, order)


def np_expand_dims(a: Any, axis: Any) -> Tracer:
    x = lift(a)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    rank = x.ndim + len(axes)
    new = normalize_axes(axes, rank, x.trace.api)
    it = iter(x.shape)
    return reshape(x, tuple(1 if i in new else next(it) for i in range(rank)))


def np_squeeze(a: Any, axis: Any = None) -> Tracer:
    x = lift(a)
    if axis is None:
        axes = tuple(i for i, n in enumerate(x.shape) if n == 1)
    else:
        axes = normalize_axes(axis, x.ndim, x.trace.api)
        if any(x.shape[i] != 1 for i in axes):
            raise x.trace.error(
                "cannot select an axis to squeeze out which has size not equal to one"
            )
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


def np_ravel(a: Any, order: str = "C") -> Tracer:
    x = lift(a)
    return np_reshape(x, (x.size,), order)


def np_flip(m: Any, axis: Any = None) -> Tracer:
    x = lift(m)
    axes = tuple(range(x.ndim)) if axis is None else normalize_axes(axis, x.ndim, x.trace.api)
    if not axes or x.size == 0:
        return x
    return x.trace.emit(Op.REVERSE, [x], x.weak, dims=tuple(sorted(set(axes))))


def np_fliplr(m: Any) -> Tracer:
    x = lift(m)
    if x.ndim < 2:
        raise x.trace.error("Input must be >= 2-d.")
    return np_flip(x, 1)


def np_flipud(m: Any) -> Tracer:
    x = lift(m)
    if x.ndim < 1:
        raise x.trace.error("Input must be >= 1-d.")
    return np_flip(x, 0)


def np_broadcast_to(array: Any, shape: Any) -> Tracer:
    x = lift(array)
    return broadcast(x, (shape,) if isinstance(shape, int) else tuple(shape))


def np_concatenate(arrays: Sequence[Any], axis: int | None = 0, dtype: Any = None) -> Tracer:
    if not arrays:
        raise trace_of().error("need at least one array to concatenate")
    out = to_dtype(dtype) if dtype is not None else result_dtype(*arrays)
    xs = [lift(a, out) for a in arrays]
    if axis is None:
        xs, axis = [reshape(x, (x.size,)) for x in xs], 0
    (ax,) = normalize_axes(axis, xs[0].ndim, xs[0].trace.api)
    if len(xs) == 1:
        return xs[0]
    return xs[0].trace.emit(Op.CONCATENATE, xs, all(is_weak(a) for a in arrays), axis=ax)


def np_stack(arrays: Sequence[Any], axis: int = 0, dtype: Any = None) -> Tracer:
    xs = [lift(a) for a in arrays]
    if not xs:
        raise trace_of().error("need at least one array to stack")
    if len({x.shape for x in xs}) > 1:
        raise xs[0].trace.error("all input arrays must have the same shape")
    return np_concatenate([np_expand_dims(x, axis) for x in xs], axis, dtype)


def np_hstack(tup: Sequence[Any], dtype: Any = None) -> Tracer:
    xs = [np_atleast_1d(a) for a in tup]
    return np_concatenate(xs, 0 if xs and xs[0].ndim == 1 else 1, dtype)


def np_vstack(tup: Sequence[Any], dtype: Any = None) -> Tracer:
    xs = [lift(a) for a in tup]
    xs = [reshape(x, (1, x.size)) if x.ndim < 2 else x for x in xs]
    return np_concatenate(xs, 0, dtype)


def np_atleast_1d(a: Any) -> Tracer:
    x = lift(a)
    return reshape(x, (1,)) if x.ndim == 0 else x


def np_pad(array: Any, pad_width: Any, mode: str = "constant", constant_values: Any = 0) -> Tracer:
    x = lift(array)
    if mode != "constant":
        raise x.trace.error(f"mode={mode!r} is not supported; only 'constant'", UnsupportedError)
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    if isinstance(constant_values, Tracer) or np.ndim(constant_values) == 0:
        value = lift(constant_values, x.node.dtype)
        return x.trace.emit(
            Op.PAD, [x, value], x.weak, low=tuple(int(w) for w in widths[:, 0]),
            high=tuple(int(w) for w in widths[:, 1]),
        )  # fmt: skip
    # a value per side: NumPy pads one axis after another, so a corner takes the later axis's
    values = np.broadcast_to(np.asarray(constant_values), (x.ndim, 2))
    for ax, side in ((ax, side) for ax in range(x.ndim) for side in (0, 1)):
        if widths[ax, side]:
            low, high = [0] * x.ndim, [0] * x.ndim
            (low if side == 0 else high)[ax] = int(widths[ax, side])
            value = lift(values[ax, side].item(), x.node.dtype)
            x = x.trace.emit(Op.PAD, [x, value], x.weak, low=tuple(low), high=tuple(high))
    return x


def np_where(condition: Any, x: Any = None, y: Any = None) -> Tracer:
    if x is None or y is None:
        raise trace_of(condition).error(
            "np.where with one argument returns indices, whose number depends on the data; "
            "use the three-argument form np.where(condition, x, y)",
            UnsupportedError,
        )
    out = result_dtype(x, y)
    # NumPy casts a Python int that does not fit the result unsafely (np.where(c, x_u8, -1)
    # holds 255)
    x, y = (np.array(v).astype(out.np) if type(v) is int else v for v in (x, y))
    c, a, b = broadcast_all([_as_bool(condition), lift(x, out), lift(y, out)])
    return c.trace.emit(Op.SELECT, [c, a, b], is_weak(x) and is_weak(y))


def np_clip(a: Any, a_min: Any = None, a_max: Any = None, **kwargs: Any) -> Tracer:
    a_min = kwargs.pop("min", a_min)
    a_max = kwargs.pop("max", a_max)
    if kwargs:
        raise trace_of(a).error(f"unsupported arguments {sorted(kwargs)}", UnsupportedError)
    trace = trace_of(a, a_min, a_max)
    try:
        with np.errstate(all="ignore"):
            lo, hi = (None if v is None else _stand_in(v) for v in (a_min, a_max))
            probe = np.clip(_stand_in(a), lo, hi)
    except (TypeError, ValueError, OverflowError, np.exceptions.DTypePromotionError) as e:
        raise trace.error(str(e)) from None
    out = to_dtype(np.asarray(probe).dtype, trace.api)  # bf16 clips in f32
    if out.is_int:
        # NumPy accepts a Python int bound beyond the dtype's range on its own side: it clips
        # nothing (np.clip(x_u8, -1, 300) is x)
        info = np.iinfo(out.np.type)  # type: ignore[type-var]
        if type(a_min) is int and a_min < int(info.min):
            a_min = None
        if type(a_max) is int and a_max > int(info.max):
            a_max = None
    x = lift(a, out)
    bool_ops = _ON_BOOL if out is DType.BOOL else {}
    if a_min is not None:
        x = elementwise(bool_ops.get(Op.MAX, Op.MAX), x, a_min, dtype=out)
    if a_max is not None:
        x = elementwise(bool_ops.get(Op.MIN, Op.MIN), x, a_max, dtype=out)
    return x


def _like(fill: Any) -> TracerFn:
    def run(a: Any, dtype: Any = None, shape: Any = None) -> Tracer:
        x = lift(a)
        out = to_dtype(dtype, x.trace.api) if dtype is not None else x.node.dtype
        return full(x.trace, x.shape if shape is None else tuple(shape), fill, out)

    return run


def np_full_like(a: Any, fill_value: Any, dtype: Any = None, shape: Any = None) -> Tracer:
    x = lift(a)
    out = to_dtype(dtype, x.trace.api) if dtype is not None else x.node.dtype
    value = lift(fill_value, out)
    return strong(broadcast(value, x.shape if shape is None else tuple(shape)))


def np_astype(x: Any, dtype: Any, copy: bool = True) -> Tracer:
    t = lift(x)
    out = to_dtype(dtype, t.trace.api)
    if t.node.dtype.is_complex and not out.is_complex:
        return numpy_complex.astype_real(t, out)
    return convert(t, out)


def np_copy(a: Any) -> Tracer:
    return lift(a)


def np_flatten(a: Any, order: str = "C") -> Tracer:
    return np_ravel(a, order)  # a copy, where ravel is a view when NumPy can make one


def np_fill_diagonal(a: Any, val: Any, wrap: bool = False) -> None:
    """The main diagonal (every index equal) set to `val`: a scalar, or a concrete array whose
    values NumPy cycles along the diagonal."""
    if not isinstance(a, Tracer) or not a.mutable:
        raise trace_of(a, val).error("the array must be a traced one", UnsupportedError)
    if a.ndim < 2 or (a.ndim > 2 and len(set(a.shape)) > 1):
        raise a.trace.error("the array must be 2-d, or have all dimensions equal")
    mask = np.zeros(a.shape, bool)
    np.fill_diagonal(mask, True, wrap=wrap)
    if isinstance(val, Tracer) and val.ndim:
        raise a.trace.error(
            "val must be a scalar or a concrete array (a traced array of values would need a "
            "scatter)",
            UnsupportedError,
        )
    if isinstance(val, Tracer) or np.ndim(val) == 0:
        value = broadcast(lift(val, a.node.dtype), a.shape)
    else:
        values = np.zeros(a.shape, a.dtype)
        np.fill_diagonal(values, val, wrap=wrap)
        value = lift(values, a.node.dtype)
    chosen = a.trace.emit(Op.SELECT, [lift(mask), value, Tracer(a.trace, a.node, a.weak)])
    a.assign(chosen)


def np_copyto(dst: Any, src: Any, casting: str = "same_kind", where: Any = True) -> None:
    if not isinstance(dst, Tracer) or not dst.mutable:
        raise trace_of(dst, src).error(
            "the destination must be a traced array (an argument, or an array computed from one)",
            UnsupportedError,
        )
    if casting != "same_kind" or where is not True:
        raise dst.trace.error("only casting='same_kind' and no where= are supported")
    write_into(dst, lift(src), "np.copyto")


def np_outer(a: Any, b: Any) -> Tracer:
    x, y = np_ravel(a), np_ravel(b)
    product: Tracer = UFUNCS[np.multiply](reshape(x, (x.size, 1)), reshape(y, (1, y.size)))
    return product


def np_norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Tracer:
    t = lift(x)
    if ord not in (None, 2, "fro") or (ord == 2 and (axis is None and t.ndim != 1)):
        raise t.trace.error(f"ord={ord!r} is not supported; only the 2-norm", UnsupportedError)
    if not (t.node.dtype.is_float or t.node.dtype.is_complex):
        t = convert(t, DType.F64)
    return elementwise(Op.SQRT, np_sum(_abs_squared(t), axis, keepdims=keepdims))


FUNCTIONS: dict[Callable[..., Any], Handler] = {
    np.sum: np_sum,
    np.prod: np_prod,
    np.max: np_max,
    np.amax: np_max,
    np.min: np_min,
    np.amin: np_min,
    np.mean: np_mean,
    np.var: np_var,
    np.std: np_std,
    np.all: np_all,
    np.any: np_any,
    np.argmax: _arg_reduce("max"),
    np.argmin: _arg_reduce("min"),
    np.dot: linalg.dot,
    np.einsum: linalg.einsum,
    np.tensordot: linalg.tensordot,
    np.outer: np_outer,
    np.linalg.norm: np_norm,
    np.transpose: np_transpose,
    np.reshape: np_reshape,
    np.ravel: np_ravel,
    np.squeeze: np_squeeze,
    np.expand_dims: np_expand_dims,
    np.swapaxes: np_swapaxes,
    np.moveaxis: np_moveaxis,
    np.broadcast_to: np_broadcast_to,
    np.flip: np_flip,
    np.fliplr: np_fliplr,
    np.flipud: np_flipud,
    np.concatenate: np_concatenate,
    np.stack: np_stack,
    np.hstack: np_hstack,
    np.vstack: np_vstack,
    np.atleast_1d: np_atleast_1d,
    np.pad: np_pad,
    np.where: np_where,
    np.clip: np_clip,
    np.zeros_like: _like(0),
    np.ones_like: _like(1),
    np.empty_like: _like(0),
    np.full_like: np_full_like,
    np.astype: np_astype,
    np.copy: np_copy,
    np.copyto: np_copyto,
    np.fill_diagonal: np_fill_diagonal,
    np.shape: lambda a: lift(a).shape,
    np.ndim: lambda a: lift(a).ndim,
    np.size: lambda a, axis=None: lift(a).size if axis is None else lift(a).shape[axis],
    **numpy_composites.FUNCTIONS,
    **numpy_complex.FUNCTIONS,
}


# --- dispatch -----------------------------------------------------------------------------


def api_name(fn: Any) -> str:
    module = getattr(fn, "__module__", None) or "numpy"
    name = getattr(fn, "__name__", repr(fn))
    if module.startswith("numpy"):
        module = "np.linalg" if "linalg" in module else "np"
    return f"{module}.{name}"


def call(api: str, handler: Handler, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """Run `handler` with errors named after `api`; bad arguments are the user's error."""
    trace = trace_of(*args, *kwargs.values(), *_sequence_items(args))
    with trace.operation(api):
        try:
            bound = inspect.signature(handler).bind(*args, **kwargs)
        except TypeError as e:
            raise trace.error(str(e), UnsupportedError) from None
        result = handler(*args, **kwargs)
    return _as_numpy_returns(handler, bound.arguments, (*args, *kwargs.values()), result, api)


# NumPy returns a view of the first argument from these: later writes to either one show in
# the other. The ones that return a copy instead when the memory layout requires one are
# ambiguous, so tessel refuses to read them after a write rather than guess.
_VIEWS: set[Handler] = {np_transpose, np_swapaxes, np_moveaxis, np_squeeze, np_expand_dims,
                        np_broadcast_to, np_atleast_1d, np_flip, np_fliplr,
                        np_flipud}  # fmt: skip
_VIEWS_OR_COPIES: set[Handler] = {np_reshape, np_ravel}


def _as_numpy_returns(
    handler: Handler, arguments: dict[str, Any], operands: tuple[Any, ...], result: Any, api: str
) -> Any:
    """Give `result` NumPy's aliasing: a view stays a function of the array it views, and a
    copy is a new array even where tessel's handler returned its operand as it was."""
    if isinstance(result, tuple):
        return tuple(_as_numpy_returns(handler, arguments, operands, r, api) for r in result)
    if not isinstance(result, Tracer):
        return result
    name, first = next(iter(arguments.items()), ("", None))
    is_view = handler in _VIEWS or handler in _VIEWS_OR_COPIES
    if is_view and isinstance(first, Tracer) and first.mutable:
        view = Tracer(result.trace, result.node, result.weak, mutable=True)
        read = None
        if handler in _VIEWS:
            read = lambda base: handler(**{**arguments, name: base})  # noqa: E731
        view.view = View(first, api, read, None)
        return view
    if any(result is a for a in operands):
        return Tracer(result.trace, result.node, result.weak)
    return result


def _sequence_items(args: Sequence[Any]) -> list[Any]:
    return [v for a in args if isinstance(a, list | tuple) for v in a]


def array_ufunc(self: Tracer, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
    name = f"np.{ufunc.__name__}"
    out = kwargs.pop("out", None) if method == "__call__" else None
    for unsupported in ("out", "where", "casting", "order", "subok", "signature"):
        if unsupported in kwargs:
            raise self.trace.error(
                f"{name}: {unsupported}= is not supported under @jit", UnsupportedError
            )
    if method == "__call__" and ufunc in UFUNCS:
        result = _strong(call(name, UFUNCS[ufunc], inputs, kwargs))
        if out is None:
            return result
        (target,) = out  # NumPy passes out= as a tuple; these ufuncs have one output
        with self.trace.operation(name):
            if not isinstance(target, Tracer) or not target.mutable:
                raise self.trace.error(
                    "out= must be a traced array (an argument, an array computed from one, or "
                    "one made with np.zeros/np.empty); this one is NumPy's",
                    UnsupportedError,
                )
            return write_into(target, result, name)
    if method == "reduce" and ufunc in REDUCE_METHODS:
        kwargs.setdefault("axis", 0)
        if kwargs["axis"] == 0 and inputs and lift(inputs[0]).ndim == 0:
            kwargs["axis"] = None  # NumPy reduces a rank-0 array along its 'axis 0'
        reduction = FUNCTIONS[getattr(np, REDUCE_METHODS[ufunc])]
        return _strong(call(f"{name}.reduce", reduction, inputs, kwargs))
    if method == "outer" and ufunc in UFUNCS and ufunc.nin == 2 and len(inputs) == 2:
        return _strong(call(f"{name}.outer", _outer(UFUNCS[ufunc]), inputs, kwargs))
    if method == "at" and ufunc in numpy_indexing.AT:
        return call(f"{name}.at", numpy_indexing.ufunc_at(ufunc), inputs, kwargs)
    if method == "accumulate" and ufunc in numpy_composites.ACCUMULATE:
        kwargs.setdefault("axis", 0)
        scan = numpy_composites.ACCUMULATE[ufunc]
        return _strong(call(f"{name}.accumulate", scan, inputs, kwargs))
    what = name if method == "__call__" else f"{name}.{method}"
    raise self.trace.error(f"{what} is not supported under @jit", UnsupportedError)


def _outer(handler: Handler) -> TracerFn:
    """ufunc.outer(a, b): a's axes, then b's (a given b.ndim trailing unit axes)."""

    def run(a: Any, b: Any, **kwargs: Any) -> Tracer:
        x, y = lift(a), lift(b)
        result: Tracer = handler(reshape(x, x.shape + (1,) * y.ndim), y, **kwargs)
        return result

    return run


def array_function(
    self: Tracer, func: Callable[..., Any], types: Any, args: Any, kwargs: dict[str, Any]
) -> Any:
    name = api_name(func)
    handler = (
        FUNCTIONS.get(func)
        or numpy_indexing.FUNCTIONS.get(func)
        or numpy_histogram.FUNCTIONS.get(func)
        or numpy_sort.FUNCTIONS.get(func)
        or decompositions.FUNCTIONS.get(func)
    )
    if handler is None:
        raise self.trace.error(
            f"{name} is not supported under @jit (tessel never falls back to eager NumPy "
            "on traced values; see docs/jit.md for what is supported)",
            UnsupportedError,
        )
    return _strong(call(name, handler, args, kwargs))


def _strong(result: Any) -> Any:
    """NumPy functions return NumPy arrays and scalars, which are strongly typed even when
    every operand was a Python scalar (np.exp(2.0) is an np.float64, promoting f32 to f64)."""
    if isinstance(result, tuple):
        return tuple(_strong(r) for r in result)
    return strong(result) if isinstance(result, Tracer) else result
