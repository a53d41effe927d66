"""Complex numbers under @jit: the parts of a complex array, and NumPy's functions that need
more than one IR op on complex values.

The IR has complex types (c64, c128) with `real`, `imag` and `complex(re, im)`, and its
arithmetic, exp/log/sqrt, abs, equality, select, data movement, sum and dot_general take them.
Everything else NumPy defines on complex numbers (ordering, max/min, trig, ...) is refused at
the user's line by `Trace.emit`, which names complex numbers as the reason.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from compiler.tracing import (
    Tracer,
    View,
    broadcast,
    broadcast_all,
    convert,
    elementwise,
    full,
    lift,
    to_dtype,
    trace_of,
    user_location,
)
from ir.dtypes import DType
from ir.ops import Op

# the largest |n| for which z ** n is computed by repeated squaring, as NumPy's npy_cpow does
# (beyond it NumPy uses exp(n log z), which tessel does not have on complex numbers)
MAX_INTEGER_POWER = 100


def part(z: Tracer, op: Op) -> Tracer:
    """`z`'s real (Op.REAL) or imaginary (Op.IMAG) part; a real array is its own real part
    and has imaginary part 0, in its own type (np.imag(x_i32) is i32)."""
    if z.node.dtype.is_complex:
        return z.trace.emit(op, [z], z.weak)
    if op is Op.REAL:
        return z
    return full(z.trace, z.shape, 0, z.node.dtype)


def make(re: Any, im: Any, dtype: DType) -> Tracer:
    """re + i*im as `dtype` (c64 or c128), the parts broadcast together."""
    parts = broadcast_all([lift(re, dtype.real_part), lift(im, dtype.real_part)])
    return parts[0].trace.emit(Op.COMPLEX, parts)


def np_real(val: Any) -> Tracer:
    return part(lift(val), Op.REAL)


def np_imag(val: Any) -> Tracer:
    return part(lift(val), Op.IMAG)


def attribute(op: Op) -> property:
    """`z.real` / `z.imag`: NumPy's are views, so reading one after z was written sees the new
    value, and assigning (`z.imag = 0`, `z.real[mask] = 1`) writes z."""

    def read(self: Tracer) -> Tracer:
        with self.trace.operation(f"x.{op}"):
            value = part(self, op)
            if not self.mutable or not self.node.dtype.is_complex:
                return value
            view = Tracer(self.trace, value.node, self.weak, mutable=True)
            view.view = View(self, f"x.{op}", lambda base: part(base, op), _writer(op))
            return view

    def write(self: Tracer, value: Any) -> None:
        with self.trace.operation(f"x.{op} = v"):
            if not self.node.dtype.is_complex:
                if op is Op.IMAG:
                    raise self.trace.error("array does not have imaginary part to set")
                self[...] = value
                return
            new = broadcast(lift(value, self.node.dtype.real_part), self.shape)
            self.assign(_writer(op)(self, new))

    return property(read, write)


def _writer(op: Op) -> Callable[[Tracer, Tracer], Tracer]:
    """z's new value after its part `op` became `value` (the other part kept)."""

    def write(base: Tracer, value: Tracer) -> Tracer:
        keep = part(base, Op.IMAG if op is Op.REAL else Op.REAL)
        re, im = (value, keep) if op is Op.REAL else (keep, value)
        return make(re, im, base.node.dtype)

    return write


def conjugate(x: Any, dtype: Any = None) -> Tracer:
    """np.conjugate: complex(re, -im); a real array is its own conjugate."""
    t = lift(x)
    # NumPy's loop: bool's conjugate is int8, a real array is its own conjugate
    out = np.conjugate(np.zeros(1, t.dtype), **({"dtype": dtype} if dtype else {})).dtype
    t = convert(t, to_dtype(out, t.trace.api))
    if not t.node.dtype.is_complex:
        return t
    im = elementwise(Op.NEG, part(t, Op.IMAG))
    return make(part(t, Op.REAL), im, t.node.dtype)


def np_angle(z: Any, deg: bool = False) -> Tracer:
    """atan2(imag, real), in the real type NumPy's angle returns (f64 for integers)."""
    t = lift(z)
    out = to_dtype(np.angle(np.zeros(1, t.dtype)).dtype, t.trace.api)
    re, im = (convert(part(t, op), out) for op in (Op.REAL, Op.IMAG))
    angle = elementwise(Op.ATAN2, im, re)
    return elementwise(Op.MUL, angle, 180 / math.pi) if deg else angle


def np_iscomplexobj(x: Any) -> bool:
    """Known while tracing: it depends only on the dtype."""
    dtype = x.dtype if isinstance(x, Tracer) else np.asarray(x).dtype
    return dtype.kind == "c"


def absolute(x: Any) -> Tracer:
    """|z|, a real of z's part type: the IR's abs of a complex operand is its modulus."""
    t = lift(x)
    return t.trace.emit(Op.ABS, [t], t.weak)


def integer_power(x: Any, n: Any, out: DType) -> Tracer:
    """A complex `x ** n`: the IR's pow is real only, so an integer constant exponent is
    multiplications by repeated squaring (and a reciprocal for n < 0), as NumPy's npy_cpow
    does for small integers. Any other exponent is refused."""
    trace = trace_of(x, n)
    exponent = n.item() if isinstance(n, np.integer | np.floating | np.complexfloating) else n
    if isinstance(exponent, complex) and exponent.imag == 0:
        exponent = exponent.real
    if (
        isinstance(exponent, Tracer)
        or not isinstance(exponent, int | float)
        or exponent != int(exponent)
        or abs(exponent) >= MAX_INTEGER_POWER
        or isinstance(x, complex | float | int)
    ):
        raise trace.error(
            "tessel does not support complex numbers here: a complex power needs an integer "
            f"constant exponent below {MAX_INTEGER_POWER} in magnitude (x ** 3), which "
            "becomes multiplications; write z * z ... or np.exp(w * np.log(z)) otherwise"
        )
    base, k = lift(x, out), abs(int(exponent))
    result = full(base.trace, base.shape, 1, out)
    while k:
        if k & 1:
            result = elementwise(Op.MUL, result, base)
        k >>= 1
        if k:
            base = elementwise(Op.MUL, base, base)
    return elementwise(Op.DIV, 1, result, dtype=out) if exponent < 0 else result


def astype_real(t: Tracer, dtype: DType) -> Tracer:
    """complex -> real as NumPy casts it: bool is z != 0; any other type takes the real part
    (NumPy warns that the imaginary part is discarded, and so does tessel, while tracing)."""
    if dtype is DType.BOOL:
        zero = lift(0, t.node.dtype)
        return t.trace.emit(Op.NE, broadcast_all([t, zero]))
    loc = user_location()
    warnings.warn_explicit(
        "Casting complex values to real discards the imaginary part",
        np.exceptions.ComplexWarning,
        loc.file if loc else "<traced>",
        loc.line if loc else 0,
    )
    return convert(part(t, Op.REAL), dtype)


def is_finite_parts(t: Tracer, check: Any, combine: Op) -> Tracer:
    """np.isinf/np.isfinite of complex numbers: `check` on both parts, combined with or/and."""
    re, im = check(part(t, Op.REAL)), check(part(t, Op.IMAG))
    return t.trace.emit(combine, [re, im])


FUNCTIONS: dict[Callable[..., Any], Callable[..., Any]] = {
    np.real: np_real,
    np.imag: np_imag,
    np.angle: np_angle,
    np.iscomplexobj: np_iscomplexobj,
}
