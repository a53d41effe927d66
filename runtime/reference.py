"""The numpy reference semantics of every op: the one definition of what each op computes.

`REFERENCE[op](attrs, operands, out_type)` returns a new, C-contiguous array of exactly
`out_type`'s shape and numpy dtype, never a view of an operand or of constant data. Attributes
arrive normalized (`ir.typerules.NORMALIZE`). The interpreter, constant folding and every backend
test call these rows; nothing else defines what an op does.

This module holds sources, elementwise ops and data movement; `runtime.reference_nn` holds
reductions, contractions, windows and composites; `runtime.numerics` the shared number rules
(conversion, narrow-float widening, integer division and power). Parameters have no row: their
value is an input. A fusion runs its nested body through this table.

Choices the op docs leave open:
- sign(x) for x = +-0.0 is x itself, so -0.0 keeps its sign (as in XLA); sign(NaN) is NaN.
- relu(-0.0) is +0.0.
- erf is `math.erf` per element in f64, rounded once to the result type.
- fmod is C's: the result has the dividend's sign; integer x fmod 0 is 0, as is INT_MIN fmod -1.
- iota counts in int64 and converts like `convert`: narrow ints wrap, bf16 rounds past 256.
- pad places elements `interior` apart first, then adds or, when negative, crops `low`/`high`.
- sort and argsort are stable (NumPy's kind="stable"): equal values, -0.0 and 0.0 included,
  keep their order; NaNs sort last. Descending is JAX's: NaNs first, then the values from
  largest to smallest, equal values still in their order (not the ascending order reversed).
  f16/bf16 compare as f32; sort moves the values' bits (NaN payloads and signs kept).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from ir.attrs import Attrs
from ir.diagnostics import IndexOutOfRange
from ir.graph import Function, Node
from ir.ops import CONTROL, Op
from ir.types import TensorType
from runtime.numerics import Reference, cast, complex_from_parts, divide, is_float, power, widen
from runtime.reference_nn import NN_REFERENCE
from runtime.reference_quant import QUANT_REFERENCE

# --- elementwise --------------------------------------------------------------------------


def _elementwise(fn: Callable[..., np.ndarray]) -> Reference:
    """Widen the operands (f16/bf16 compute in f32), apply `fn`, round once to the result type."""

    def run(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
        return cast(fn(*(widen(a) for a in args)), out.dtype)

    return run


def _sign(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.where(x == 0, x, np.sign(x)))  # np.sign(-0.0) is +0.0


def _relu(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.maximum(x, np.zeros((), x.dtype)))  # maximum keeps NaN


def _rsqrt(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.reciprocal(np.sqrt(x)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp(-|x|) lies in (0, 1], so neither branch can overflow for large |x|.
    e = np.exp(-np.abs(x))
    return np.asarray(np.where(x >= 0, 1 / (1 + e), e / (1 + e)))


_math_erf = np.frompyfunc(math.erf, 1, 1)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.asarray(_math_erf(x.astype(np.float64)), dtype=np.float64)


def _fmod(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if is_float(x):
        return np.asarray(np.fmod(x, y))
    # a divisor of 1 in place of 0 and -1 gives their results (0) without numpy's warning for
    # x fmod 0 or relying on its INT_MIN fmod -1
    bad = y == 0
    if np.issubdtype(y.dtype, np.signedinteger):
        bad |= y == -1
    return np.asarray(np.fmod(x, np.where(bad, np.ones_like(y), y)))


_ELEMENTWISE_FNS: dict[Op, Callable[..., np.ndarray]] = {
    Op.NEG: np.negative,  # integers wrap: -INT_MIN == INT_MIN
    Op.ABS: np.abs,  # abs(INT_MIN) == INT_MIN
    Op.EXP: np.exp,
    Op.LOG: np.log,
    Op.SQRT: np.sqrt,
    Op.RSQRT: _rsqrt,
    Op.TANH: np.tanh,
    Op.SIGMOID: _sigmoid,
    Op.RELU: _relu,
    Op.ERF: _erf,
    Op.SIN: np.sin,
    Op.COS: np.cos,
    Op.TAN: np.tan,
    Op.ASIN: np.arcsin,
    Op.ACOS: np.arccos,
    Op.ATAN: np.arctan,
    Op.SINH: np.sinh,
    Op.COSH: np.cosh,
    Op.ASINH: np.arcsinh,
    Op.ACOSH: np.arccosh,
    Op.ATANH: np.arctanh,
    Op.LOG1P: np.log1p,
    Op.EXPM1: np.expm1,
    Op.FLOOR: np.floor,
    Op.CEIL: np.ceil,
    Op.SIGN: _sign,
    Op.NOT: np.invert,  # logical on bool, bitwise on integers; likewise and/or below
    Op.REAL: np.real,
    Op.IMAG: np.imag,
    Op.COMPLEX: complex_from_parts,
    Op.ADD: np.add,
    Op.SUB: np.subtract,
    Op.MUL: np.multiply,
    Op.DIV: divide,
    Op.POW: power,
    Op.ATAN2: np.arctan2,  # atan2(y, x): the angle of the point (x, y)
    Op.HYPOT: np.hypot,
    Op.FMOD: _fmod,
    Op.MAX: np.maximum,  # maximum/minimum propagate NaN
    Op.MIN: np.minimum,
    Op.AND: np.bitwise_and,
    Op.OR: np.bitwise_or,
    Op.XOR: np.bitwise_xor,
    Op.SHIFT_LEFT: np.left_shift,
    Op.SHIFT_RIGHT: np.right_shift,
    Op.EQ: np.equal,
    Op.NE: np.not_equal,
    Op.LT: np.less,
    Op.LE: np.less_equal,
    Op.GT: np.greater,
    Op.GE: np.greater_equal,
    Op.SELECT: np.where,
}


def _convert(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    return cast(args[0], attrs["dtype"])


# --- sources ------------------------------------------------------------------------------


def _constant(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    return np.array(attrs["value"].array, copy=True)


def _iota(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    dim, shape = attrs["dim"], out.shape
    along = np.arange(shape[dim]).reshape([n if i == dim else 1 for i, n in enumerate(shape)])
    return cast(np.broadcast_to(along, shape), out.dtype)


# --- data movement ------------------------------------------------------------------------


def _broadcast_in_dim(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    x = args[0]
    placed = [1] * out.rank  # operand dim i lands on output dim dims[i]; the rest are new
    for i, d in enumerate(attrs["dims"]):
        placed[d] = x.shape[i]
    return np.broadcast_to(x.reshape(placed), out.shape).copy()


def _reshape(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    return args[0].reshape(out.shape).copy()


def _transpose(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    return np.transpose(args[0], attrs["perm"]).copy()


def _slice(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    index = tuple(map(slice, attrs["start"], attrs["limit"], attrs["stride"]))
    return args[0][index].copy()


def _reverse(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    return np.flip(args[0], axis=attrs["dims"]).copy()


def _positions(attrs: Attrs, x: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per indexed axis, the positions `idx` names, as `mode` reads out-of-range values."""
    axis, k = attrs["axis"], idx.shape[-1]
    out = []
    for i in range(k):
        n, v = x.shape[axis + i], idx[..., i]
        if v.dtype == np.uint64:  # past int64's range: reduce as unsigned before converting
            v = np.minimum(v, np.uint64(n)) if attrs["mode"] != "wrap" else v % np.uint64(max(n, 1))
        v = v.astype(np.int64)
        if attrs["mode"] == "clip":
            v = np.clip(v, 0, max(n - 1, 0))
        elif attrs["mode"] == "wrap":
            v = np.mod(v, n) if n else v
        else:
            bad = (v < -n) | (v >= n)
            if bad.any():
                shown = idx[..., i][bad].flat[0]
                raise IndexOutOfRange(
                    f"index {int(shown)} is out of bounds for axis {axis + i} with size {n}"
                )
            v = np.where(v < 0, v + n, v)
        out.append(v)
    return tuple(out)


def _gather(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    x, idx = args
    pre = (slice(None),) * attrs["axis"]
    return np.array(x[(*pre, *_positions(attrs, x, idx))])


_SCATTER_UFUNCS = {"add": np.add, "mul": np.multiply, "min": np.minimum, "max": np.maximum}


def _scatter(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    """Updates are applied in the indices' row-major order: with repeated positions the
    last `set` wins and the others accumulate, as NumPy's x[idx] = v and ufunc.at do."""
    x, idx, updates = args
    result = x.copy()
    where = (*(slice(None),) * attrs["axis"], *_positions(attrs, x, idx))
    kind = attrs["kind"]
    if kind == "set":
        result[where] = updates
    else:  # each update rounds to x's type, as a kernel storing it each time does
        _SCATTER_UFUNCS[kind].at(result, where, updates)
    return result


def sort_order(attrs: Attrs, x: np.ndarray) -> np.ndarray:
    """argsort: the positions along `axis` that sort `x`, as int64 (see the module notes)."""
    axis, key = attrs["axis"], widen(x)
    if not attrs["descending"]:
        return np.argsort(key, axis=axis, kind="stable").astype(np.int64)
    # JAX's descending: flip, sort ascending (stable), flip back and map the positions back,
    # so NaN (last ascending) comes first and equal values keep their order
    order = np.argsort(np.flip(key, axis), axis=axis, kind="stable").astype(np.int64)
    return np.asarray((x.shape[axis] - 1) - np.flip(order, axis))


def _sort(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    x = args[0]
    return np.take_along_axis(x, sort_order(attrs, x), axis=attrs["axis"])


def _argsort(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    return sort_order(attrs, args[0])


def _concatenate(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    return np.concatenate(args, axis=attrs["axis"])


def _pad(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    x, value = args
    spread_shape = [
        n + max(n - 1, 0) * it for n, it in zip(x.shape, attrs["interior"], strict=True)
    ]
    spread = np.full(spread_shape, value, x.dtype)
    spread[tuple(slice(None, None, it + 1) for it in attrs["interior"])] = x
    result = np.full(out.shape, value, x.dtype)
    src, dst = [], []
    for n, lo, hi in zip(spread_shape, attrs["low"], attrs["high"], strict=True):
        begin = max(-lo, 0)  # a negative low or high crops the spread operand
        length = max(n - max(-hi, 0) - begin, 0)
        src.append(slice(begin, begin + length))
        dst.append(slice(max(lo, 0), max(lo, 0) + length))
    result[tuple(dst)] = spread[tuple(src)]
    return result


# --- fusion -------------------------------------------------------------------------------


def _fusion(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    """A fused group means exactly what its body means: its nodes through this same table (the
    interpreter checks the fusion's result type, as it checks every node's)."""
    body = attrs["body"]
    if len(body.results) != 1:
        raise ValueError(
            f"a fusion body returns one value, @{body.name} returns {len(body.results)}"
        )
    env: dict[Node, np.ndarray] = dict(zip(body.params, args, strict=True))
    for node in body.body:
        env[node] = REFERENCE[node.op](node.attrs, [env[s] for s in node.srcs], node.type)
    value = env[body.results[0]]
    return value.copy() if any(value is a for a in args) else value  # fresh, never an operand


# --- control flow -------------------------------------------------------------------------


def run_body(fn: Function, args: list[np.ndarray]) -> list[np.ndarray]:
    """A nested function's results, through this same table. An index error is located at the
    op inside the body that raised it, as the interpreter locates one outside."""
    env: dict[Node, np.ndarray] = dict(zip(fn.params, args, strict=True))
    for node in fn.body:
        try:
            env[node] = REFERENCE[node.op](node.attrs, [env[s] for s in node.srcs], node.type)
        except IndexOutOfRange as e:
            if node.op in CONTROL:  # located already, inside the inner loop
                raise
            raise IndexOutOfRange(f"{e.message} (in {node.op.value})", node.loc) from None
    return [env[r] for r in fn.results]


def tuple_value(elements: list[np.ndarray]) -> np.ndarray:
    """A tuple as the table passes values around: a 1-D object array of arrays."""
    out = np.empty(len(elements), dtype=object)
    for i, e in enumerate(elements):
        out[i] = e
    return out


def _while(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    state = list(args)
    while bool(run_body(attrs["cond"], state)[0]):
        state = run_body(attrs["body"], state)
    return tuple_value([s.copy() if any(s is a for a in args) else s for s in state])


def _for(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    lower, upper, *state = args
    for i in range(int(lower), int(upper)):
        state = run_body(attrs["body"], [np.array(i, lower.dtype), *state])
    return tuple_value([s.copy() if any(s is a for a in args) else s for s in state])


def _cond(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    side = attrs["true_branch" if bool(args[0]) else "false_branch"]
    results = run_body(side, args[1:])
    return tuple_value([r.copy() if any(r is a for a in args) else r for r in results])


def _get(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
    value: np.ndarray = args[0][attrs["index"]]
    return value.copy()


# --- the table ----------------------------------------------------------------------------


def _row(fn: Reference) -> Reference:
    """Run a rule with float exceptions off (overflow, NaN and x/0 are defined results here)
    and hand back a C-contiguous array even where numpy returns a scalar or keeps strides."""

    @functools.wraps(fn)
    def run(attrs: Attrs, args: list[np.ndarray], out: TensorType) -> np.ndarray:
        with np.errstate(all="ignore"):
            result = np.asarray(fn(attrs, args, out))
        return result if result.flags.c_contiguous else result.copy(order="C")

    return run


_CORE: dict[Op, Reference] = {
    **{op: _elementwise(fn) for op, fn in _ELEMENTWISE_FNS.items()},
    Op.CONVERT: _convert,
    Op.CONSTANT: _constant,
    Op.IOTA: _iota,
    Op.BROADCAST_IN_DIM: _broadcast_in_dim,
    Op.RESHAPE: _reshape,
    Op.TRANSPOSE: _transpose,
    Op.SLICE: _slice,
    Op.REVERSE: _reverse,
    Op.CONCATENATE: _concatenate,
    Op.PAD: _pad,
    Op.GATHER: _gather,
    Op.SCATTER: _scatter,
    Op.SORT: _sort,
    Op.ARGSORT: _argsort,
    Op.FUSION: _fusion,
}

REFERENCE: dict[Op, Reference] = {
    op: _row(fn) for op, fn in (_CORE | NN_REFERENCE | QUANT_REFERENCE).items()
}
# A loop's value is a tuple, which _row would turn into one stacked array.
REFERENCE[Op.WHILE] = _while
REFERENCE[Op.FOR] = _for
REFERENCE[Op.COND] = _cond
REFERENCE[Op.GET] = _row(_get)
