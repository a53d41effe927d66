"""Shape and dtype rules: one row per op, plus attribute normalization.

`infer(op, in_types, attrs)` is the single source of truth for what an op produces. Attributes
are normalized first (negative axes made positive, `same` padding resolved to explicit pairs,
derived defaults filled in), so every later stage sees one canonical form.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from ir.attrs import REQUIRED, Attrs, show_value
from ir.diagnostics import ShapeError
from ir.dtypes import COMPLEX_OF, INTEGERS, DType
from ir.ops import ARITY, BINARY, COMPARE, CONTROL, OPERAND_DTYPES, UNARY, Op, attr_specs
from ir.quant import NORMALIZE as QUANT_NORMALIZE
from ir.quant import TYPE_RULES as QUANT_TYPE_RULES
from ir.types import TensorType, TupleType

Types = Sequence[TensorType]


def _fail(msg: str, *, attr: str | None = None, operand: int | None = None) -> NoReturn:
    raise ShapeError(msg, attr=attr, operand=operand)


def _axis(axis: int, rank: int, attr: str, where: str = "") -> int:
    """`axis` in 0..rank-1 (negative counts from the end); `where` says where it came from."""
    if not -rank <= axis < rank:
        what = f"axis {axis}{where}" if where else f"{attr} {axis}"
        _fail(f"{what} is out of range for rank {rank}", attr=attr)
    return axis % rank


def _axes(axes: Sequence[int], rank: int, attr: str) -> tuple[int, ...]:
    out = tuple(_axis(a, rank, attr, f" in '{attr}'") for a in axes)
    if len(set(out)) != len(out):
        _fail(f"{attr} {list(axes)} repeat an axis", attr=attr)
    return out


def _length(name: str, value: Sequence[Any], n: int) -> None:
    if len(value) != n:
        _fail(f"'{name}' has {len(value)} entries but the operand has rank {n}", attr=name)


# --- attribute normalization ------------------------------------------------------------------


def _same_padding(size: int, window: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return (total // 2, total - total // 2)


def _positive_pair(a: dict[str, Any], name: str) -> None:
    if len(a[name]) != 2 or any(v < 1 for v in a[name]):
        _fail(f"'{name}' must be two positive ints, got {list(a[name])}", attr=name)


def _norm_window_padding(a: dict[str, Any], spatial: Sequence[int], window: Sequence[int]) -> None:
    """Resolve `same`/`valid` to explicit pairs (for a rank-4 input) and check explicit pairs."""
    pad = a["padding"]
    if pad == "valid":
        a["padding"] = ((0, 0),) * len(spatial)
    elif pad == "same":
        a["padding"] = tuple(
            _same_padding(s, w, st) for s, w, st in zip(spatial, window, a["strides"], strict=True)
        )
    elif len(pad) != 2 or any(lo < 0 or hi < 0 for lo, hi in pad):
        _fail(
            f"'padding' must be two non-negative [low, high] pairs, got {show_value(pad)}",
            attr="padding",
        )


def _n_reduce(t: Types, a: dict[str, Any]) -> None:
    a["axes"] = tuple(sorted(_axes(a["axes"], t[0].rank, "axes")))


def _n_axis(t: Types, a: dict[str, Any]) -> None:
    a["axis"] = _axis(a["axis"], t[0].rank, "axis")


def _n_broadcast(t: Types, a: dict[str, Any]) -> None:
    if a["dims"] is None:
        out_rank, in_rank = len(a["shape"]), t[0].rank
        if in_rank > out_rank:
            _fail(f"cannot broadcast rank {in_rank} to rank {out_rank}", attr="shape")
        a["dims"] = tuple(range(out_rank - in_rank, out_rank))


def _n_reshape(t: Types, a: dict[str, Any]) -> None:
    shape = list(a["shape"])
    if shape.count(-1) > 1:
        _fail(f"'shape' may contain at most one -1, got {shape}", attr="shape")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or t[0].size % known:
            _fail(f"cannot infer the -1 in shape {shape} from {t[0].size} elements", attr="shape")
        shape[shape.index(-1)] = t[0].size // known
    a["shape"] = tuple(shape)


def _n_slice(t: Types, a: dict[str, Any]) -> None:
    if a["stride"] is None:
        a["stride"] = (1,) * t[0].rank


def _n_pad(t: Types, a: dict[str, Any]) -> None:
    if a["interior"] is None:
        a["interior"] = (0,) * t[0].rank


def _n_indexed(t: Types, a: dict[str, Any]) -> None:
    a["axis"] = _axis(a["axis"], max(t[0].rank, 1), "axis")


def _n_transpose(t: Types, a: dict[str, Any]) -> None:
    a["perm"] = tuple(a["perm"])


def _n_reverse(t: Types, a: dict[str, Any]) -> None:
    a["dims"] = tuple(sorted(_axes(a["dims"], t[0].rank, "dims")))


def _n_dot(t: Types, a: dict[str, Any]) -> None:
    lhs, rhs = t
    a["lhs_batch"] = _axes(a["lhs_batch"], lhs.rank, "lhs_batch")
    a["rhs_batch"] = _axes(a["rhs_batch"], rhs.rank, "rhs_batch")
    a["lhs_contract"] = _axes(a["lhs_contract"], lhs.rank, "lhs_contract")
    a["rhs_contract"] = _axes(a["rhs_contract"], rhs.rank, "rhs_contract")
    if a["out_dtype"] is None:
        a["out_dtype"] = lhs.dtype if lhs.dtype == rhs.dtype else DType.I32


# i8 and u8 may meet in one product (asymmetric u8 activations times i8 weights, as VNNI's
# vpdpbusd computes); other operand types must agree
_MIXABLE = frozenset({DType.I8, DType.U8})


def _n_conv(t: Types, a: dict[str, Any]) -> None:
    x, w = t
    _positive_pair(a, "strides")
    _positive_pair(a, "dilation")
    if a["groups"] < 1:
        _fail(f"'groups' must be at least 1, got {a['groups']}", attr="groups")
    if x.rank == 4 and w.rank == 4:  # otherwise the type rule reports the ranks
        eff = [(k - 1) * d + 1 for k, d in zip(w.shape[:2], a["dilation"], strict=True)]
        _norm_window_padding(a, x.shape[1:3], eff)
    if a["out_dtype"] is None:
        a["out_dtype"] = x.dtype


def _n_pool(t: Types, a: dict[str, Any]) -> None:
    if a["strides"] is None:
        a["strides"] = a["window"]
    _positive_pair(a, "window")
    _positive_pair(a, "strides")
    x = t[0]
    if x.rank == 4:  # otherwise the type rule reports the rank
        _norm_window_padding(a, x.shape[1:3], a["window"])


NORMALIZE: dict[Op, Callable[[Types, dict[str, Any]], None]] = {
    **QUANT_NORMALIZE,
    Op.REDUCE: _n_reduce,
    Op.MEAN: _n_reduce,
    Op.SOFTMAX: _n_axis,
    Op.CONCATENATE: _n_axis,
    Op.BROADCAST_IN_DIM: _n_broadcast,
    Op.RESHAPE: _n_reshape,
    Op.SLICE: _n_slice,
    Op.PAD: _n_pad,
    Op.GATHER: _n_indexed,
    Op.SCATTER: _n_indexed,
    Op.SORT: _n_axis,
    Op.ARGSORT: _n_axis,
    Op.TRANSPOSE: _n_transpose,
    Op.REVERSE: _n_reverse,
    Op.DOT_GENERAL: _n_dot,
    Op.CONV2D: _n_conv,
    Op.MAX_POOL: _n_pool,
    Op.AVG_POOL: _n_pool,
}


def normalize_attrs(op: Op, in_types: Types, raw: Mapping[str, Any]) -> Attrs:
    """Check attribute names and kinds, fill defaults, and bring values to canonical form."""
    specs = attr_specs(op)
    for name in raw:
        if name not in specs:
            close = difflib.get_close_matches(name, list(specs), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            known = ", ".join(specs) or "none"
            _fail(
                f"unknown attribute '{name}'{hint} (attributes of {op.value}: {known})", attr=name
            )
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in raw and not (raw[name] is None and spec.default is None):  # None: unset
            try:
                out[name] = spec.check(raw[name])
            except ValueError as e:
                raise ShapeError(f"attribute '{name}': {e}", attr=name) from None
        elif spec.default is REQUIRED:
            _fail(f"missing required attribute '{name}': expected {spec.describe()}")
        else:
            out[name] = spec.default
    if op in NORMALIZE:
        NORMALIZE[op](in_types, out)
    return Attrs(out)


# --- type rules -------------------------------------------------------------------------------


def _same_operands(t: Types, first: int = 0) -> TensorType:
    """All of `t` must have one type; operand indices in errors start at `first`."""
    base = t[0]
    for i, other in enumerate(t[1:], start=first + 1):
        if other.dtype != base.dtype:
            _fail(f"operand dtypes differ: {base} vs {other}", operand=i)
        if other.shape != base.shape:
            _fail(f"operand shapes differ: {base} vs {other}", operand=i)
    return base


def _t_elementwise(t: Types, a: Attrs) -> TensorType:
    return _same_operands(t)


def _t_compare(t: Types, a: Attrs) -> TensorType:
    return _same_operands(t).with_dtype(DType.BOOL)


def _t_select(t: Types, a: Attrs) -> TensorType:
    pred, x, y = t
    if pred.dtype != DType.BOOL:
        _fail(f"predicate must be bool, got {pred}", operand=0)
    out = _same_operands([x, y], first=1)
    if pred.shape != out.shape:
        _fail(
            f"predicate shape {list(pred.shape)} differs from operand shape {list(out.shape)}",
            operand=0,
        )
    return out


def _t_convert(t: Types, a: Attrs) -> TensorType:
    if t[0].dtype.is_complex and not a["dtype"].is_complex:
        _fail(f"cannot convert {t[0]} to {a['dtype']}: take its real part or abs first")
    return t[0].with_dtype(a["dtype"])


def _t_part(t: Types, a: Attrs) -> TensorType:
    """real, imag, and abs, whose result is real for a complex operand."""
    return t[0].with_dtype(t[0].dtype.real_part)


def _t_complex(t: Types, a: Attrs) -> TensorType:
    return _same_operands(t).with_dtype(COMPLEX_OF[t[0].dtype])


def _t_constant(t: Types, a: Attrs) -> TensorType:
    arr = a["value"].array
    try:
        dtype = DType.from_numpy(arr.dtype)
    except ValueError as e:
        _fail(str(e), attr="value")
    return TensorType(tuple(arr.shape), dtype)


def _nonnegative_shape(shape: Sequence[int]) -> None:
    if any(d < 0 for d in shape):
        _fail(f"negative dimension in shape {list(shape)}", attr="shape")


def _t_iota(t: Types, a: Attrs) -> TensorType:
    shape, dtype = a["shape"], a["dtype"]
    if dtype == DType.BOOL:
        _fail("dtype must be numeric, got bool", attr="dtype")
    _nonnegative_shape(shape)
    _axis(a["dim"], len(shape), "dim")
    return TensorType(shape, dtype)


def _t_broadcast(t: Types, a: Attrs) -> TensorType:
    x, shape, dims = t[0], a["shape"], a["dims"]
    _nonnegative_shape(shape)
    _length("dims", dims, x.rank)
    if list(dims) != sorted(set(dims)) or any(not 0 <= d < len(shape) for d in dims):
        _fail(
            f"dims {list(dims)} must be strictly increasing and below rank {len(shape)}",
            attr="dims",
        )
    for i, d in enumerate(dims):
        if x.shape[i] not in (1, shape[d]):
            _fail(
                f"operand dimension {i} (size {x.shape[i]}) cannot broadcast to "
                f"output dimension {d} (size {shape[d]})",
                attr="shape",
            )
    return x.with_shape(shape)


def _t_reshape(t: Types, a: Attrs) -> TensorType:
    x, shape = t[0], a["shape"]
    _nonnegative_shape(shape)
    if math.prod(shape) != x.size:
        _fail(f"cannot reshape {x} ({x.size} elements) to {list(shape)}", attr="shape")
    return x.with_shape(shape)


def _t_transpose(t: Types, a: Attrs) -> TensorType:
    x, perm = t[0], a["perm"]
    if sorted(perm) != list(range(x.rank)):
        _fail(f"perm {list(perm)} is not a permutation of the {x.rank} axes of {x}", attr="perm")
    return x.with_shape(tuple(x.shape[p] for p in perm))


def _t_slice(t: Types, a: Attrs) -> TensorType:
    x = t[0]
    for name in ("start", "limit", "stride"):
        _length(name, a[name], x.rank)
    out = []
    for i, (lo, hi, st, d) in enumerate(
        zip(a["start"], a["limit"], a["stride"], x.shape, strict=True)
    ):
        if st < 1:
            _fail(f"stride {st} on axis {i} must be at least 1", attr="stride")
        if not 0 <= lo <= d:
            _fail(f"start {lo} on axis {i} is outside 0..{d}", attr="start")
        if not lo <= hi <= d:
            _fail(f"limit {hi} on axis {i} must be between start {lo} and size {d}", attr="limit")
        out.append(-(-(hi - lo) // st))
    return x.with_shape(tuple(out))


def _t_concatenate(t: Types, a: Attrs) -> TensorType:
    first, axis = t[0], a["axis"]
    for j, other in enumerate(t[1:], start=1):
        if other.dtype != first.dtype:
            _fail(f"operand {j} ({other}) has another dtype than operand 0 ({first})", operand=j)
        if other.rank != first.rank:
            _fail(f"operand {j} ({other}) has another rank than operand 0 ({first})", operand=j)
        for i, (p, q) in enumerate(zip(first.shape, other.shape, strict=True)):
            if i != axis and p != q:
                _fail(
                    f"operand {j} ({other}) differs from operand 0 ({first}) on axis {i}; "
                    f"only the concatenation axis {axis} may differ",
                    operand=j,
                )
    shape = list(first.shape)
    shape[axis] = sum(x.shape[axis] for x in t)
    return first.with_shape(tuple(shape))


def _t_pad(t: Types, a: Attrs) -> TensorType:
    x, value = t
    if value.rank != 0 or value.dtype != x.dtype:
        _fail(f"padding value must be a scalar of type {x.dtype.value}[], got {value}", operand=1)
    for name in ("low", "high", "interior"):
        _length(name, a[name], x.rank)
        if any(p < 0 for p in a[name]):
            _fail(f"'{name}' must be non-negative, got {list(a[name])}", attr=name)
    shape = tuple(
        lo + hi + d + max(d - 1, 0) * it
        for lo, hi, it, d in zip(a["low"], a["high"], a["interior"], x.shape, strict=True)
    )
    return x.with_shape(shape)


def gathered_shape(x: TensorType, idx: TensorType, axis: int) -> tuple[int, ...]:
    """The shape gather gives (and scatter's updates have): x's indexed axes replaced by the
    indices' batch shape."""
    k = idx.shape[-1]
    return x.shape[:axis] + idx.shape[:-1] + x.shape[axis + k :]


def _t_gather(t: Types, a: Attrs) -> TensorType:
    x, idx = t[0], t[1]
    if idx.dtype not in INTEGERS:
        _fail(f"indices must have an integer type, got {idx}", operand=1)
    if idx.rank == 0 or idx.shape[-1] == 0:
        _fail(
            f"indices need a last axis of length k >= 1 (which of x's axes each row picks), "
            f"got {idx}",
            operand=1,
        )
    axis, k = a["axis"], idx.shape[-1]
    if axis + k > x.rank:
        _fail(
            f"{k} indexed axes from axis {axis} do not fit an operand of rank {x.rank}", attr="axis"
        )
    empty = [axis + i for i in range(k) if x.shape[axis + i] == 0]
    if empty and 0 not in idx.shape[:-1]:
        _fail(f"cannot index axis {empty[0]} of {x}: it has size 0", operand=0)
    return x.with_shape(gathered_shape(x, idx, axis))


def _t_scatter(t: Types, a: Attrs) -> TensorType:
    x, updates = t[0], t[2]
    want = _t_gather(t[:2], a)
    if updates != want:
        _fail(f"updates must be {want} (what gather would read there), got {updates}", operand=2)
    if x.dtype == DType.BOOL and a["kind"] in ("add", "mul"):
        _fail(f"scatter kind '{a['kind']}' needs a numeric type, got {x}", attr="kind")
    if x.dtype.is_complex and a["kind"] not in ("set", "add"):
        _fail(f"scatter kind '{a['kind']}' needs a real type, got {x}", attr="kind")
    return x


def _t_reduce(t: Types, a: Attrs) -> TensorType:
    x = t[0]
    if x.dtype == DType.BOOL and a.get("kind") in ("sum", "prod"):
        _fail(f"kind {a['kind']} needs a numeric operand, got {x}", attr="kind")
    if x.dtype.is_complex and a.get("kind", "sum") != "sum":
        _fail(f"kind {a['kind']} needs a real operand, got {x}", attr="kind")
    return x.with_shape(tuple(d for i, d in enumerate(x.shape) if i not in a["axes"]))


def _check_out_dtype(operand: TensorType, out: DType) -> None:
    """Accumulating ops may widen or narrow, but stay floating-point or stay integer."""
    if operand.dtype.is_float and not out.is_float:
        _fail(
            f"out_dtype {out} must be a floating-point type, like the operands ({operand})",
            attr="out_dtype",
        )
    if operand.dtype.is_int and not out.is_int:
        _fail(
            f"out_dtype {out} must be an integer type, like the operands ({operand})",
            attr="out_dtype",
        )
    if operand.dtype.is_complex != out.is_complex:
        _fail(f"out_dtype {out} and the operands ({operand}) must both be complex or both real")


def _t_dot(t: Types, a: Attrs) -> TensorType:
    lhs, rhs = t
    if lhs.dtype != rhs.dtype and not {lhs.dtype, rhs.dtype} <= _MIXABLE:
        _fail(f"operand dtypes differ: {lhs} vs {rhs}", operand=1)
    lb, rb, lc, rc = a["lhs_batch"], a["rhs_batch"], a["lhs_contract"], a["rhs_contract"]
    if len(lb) != len(rb):
        _fail(f"lhs_batch {list(lb)} and rhs_batch {list(rb)} differ in length", attr="rhs_batch")
    if len(lc) != len(rc):
        _fail(
            f"lhs_contract {list(lc)} and rhs_contract {list(rc)} differ in length",
            attr="rhs_contract",
        )
    if set(lb) & set(lc) or set(rb) & set(rc):
        _fail("a dimension cannot be both a batch and a contracting dimension")
    for kind, ld, rd in (("batch", lb, rb), ("contracting", lc, rc)):
        for i, j in zip(ld, rd, strict=True):
            if lhs.shape[i] != rhs.shape[j]:
                _fail(
                    f"{kind} dimension sizes differ: lhs dim {i} has {lhs.shape[i]}, "
                    f"rhs dim {j} has {rhs.shape[j]} ({lhs} x {rhs})"
                )
    _check_out_dtype(lhs, a["out_dtype"])
    lfree = [d for i, d in enumerate(lhs.shape) if i not in lb and i not in lc]
    rfree = [d for i, d in enumerate(rhs.shape) if i not in rb and i not in rc]
    return TensorType(tuple([lhs.shape[i] for i in lb] + lfree + rfree), a["out_dtype"])


def _window_out(
    spatial: Sequence[int], window: Sequence[int], strides: Sequence[int], a: Attrs
) -> list[int]:
    """Output sizes of a 2-D window; `normalize_attrs` has checked strides and padding."""
    out = []
    for size, w, s, (lo, hi) in zip(spatial, window, strides, a["padding"], strict=True):
        span = size + lo + hi - w
        if span < 0:
            _fail(f"window {w} is larger than the padded input ({size + lo + hi})")
        out.append(span // s + 1)
    return out


def _t_conv(t: Types, a: Attrs) -> TensorType:
    x, w = t
    if x.rank != 4 or w.rank != 4:
        _fail(f"needs an NHWC input and an HWIO filter (both rank 4), got {x} and {w}")
    if x.dtype != w.dtype:
        _fail(f"operand dtypes differ: {x} vs {w}", operand=1)
    if w.shape[0] < 1 or w.shape[1] < 1:
        _fail(f"filter height and width must be positive, got {w}", operand=1)
    g, in_ch, out_ch = a["groups"], x.shape[3], w.shape[3]
    if in_ch != w.shape[2] * g:
        per = f" x {g} groups = {w.shape[2] * g}" if g != 1 else ""
        _fail(
            f"input has {in_ch} channels but the filter expects {w.shape[2]}{per} "
            f"(input {x}, filter {w})",
            operand=1,
        )
    if out_ch % g:
        _fail(f"filter output channels ({out_ch}) must be divisible by groups ({g})", operand=1)
    _check_out_dtype(x, a["out_dtype"])
    eff = [(k - 1) * d + 1 for k, d in zip(w.shape[:2], a["dilation"], strict=True)]
    h, wo = _window_out(x.shape[1:3], eff, a["strides"], a)
    return TensorType((x.shape[0], h, wo, out_ch), a["out_dtype"])


def _t_pool(t: Types, a: Attrs) -> TensorType:
    x = t[0]
    if x.rank != 4:
        _fail(f"needs an NHWC input (rank 4), got {x}", operand=0)
    h, w = _window_out(x.shape[1:3], a["window"], a["strides"], a)
    return x.with_shape((x.shape[0], h, w, x.shape[3]))


def _t_same(t: Types, a: Attrs) -> TensorType:
    return t[0]


def _t_argsort(t: Types, a: Attrs) -> TensorType:
    return t[0].with_dtype(DType.I64)  # positions, as NumPy's intp


def _t_fusion(t: Types, a: Attrs) -> TensorType:
    body = a["body"]
    if any(n.op in CONTROL for n in body.body):
        _fail("a fusion's body cannot hold a loop; compute the loop outside the fusion")
    want = [p.type for p in body.params]
    if list(t) != want:
        got = ", ".join(map(str, t))
        _fail(f"operands ({got}) do not match the body's parameters ({', '.join(map(str, want))})")
    if len(body.results) != 1:
        _fail(f"the body must return exactly one value, it returns {len(body.results)}")
    result: TensorType = body.results[0].type
    return result


def _signature(types: Sequence[TensorType]) -> str:
    return "(" + ", ".join(map(str, types)) + ")"


def _same(got: Sequence[TensorType], want: Sequence[TensorType], message: str, attr: str) -> None:
    """Fail with `message` (its {got} and {want} the two signatures) at `attr` unless the types
    agree: how a loop's or branch's nested functions are checked against its operands."""
    if list(got) != list(want):
        _fail(message.format(got=_signature(got), want=_signature(want)), attr=attr)


def _types(values: Sequence[Any]) -> list[TensorType]:
    """The types of a nested function's parameters or results."""
    return [v.type for v in values]


def _t_while(t: Types, a: Attrs) -> TensorType:
    for which in ("cond", "body"):
        _same(
            _types(a[which].params), t, which + " takes {got}, but the loop carries {want}", which
        )
    body = a["body"]
    _same(
        _types(body.results),
        _types(body.params),
        "body returns {got}, but must return what it takes, {want}",
        "body",
    )
    cond = _types(a["cond"].results)
    _same(
        cond, [TensorType((), DType.BOOL)], "cond must return one bool[], it returns {got}", "cond"
    )
    return TupleType.of(tuple(t))


def _t_for(t: Types, a: Attrs) -> TensorType:
    for i, which in enumerate(("lower", "upper")):
        if t[i].shape != () or t[i].dtype not in INTEGERS:
            _fail(f"the {which} bound must be an integer scalar, got {t[i]}", operand=i)
    if t[1] != t[0]:
        _fail(f"the bounds must have one type, got {t[0]} and {t[1]}", operand=1)
    carried = list(t[2:])
    if not carried:
        _fail("a loop must carry at least one value (it computes nothing else)")
    body = a["body"]
    _same(
        _types(body.params),
        [t[0], *carried],
        "body takes {got}, but must take the index and the carried values, {want}",
        "body",
    )
    _same(
        _types(body.results),
        carried,
        "body returns {got}, but must return the carried values, {want}",
        "body",
    )
    return TupleType.of(tuple(carried))


def _t_cond(t: Types, a: Attrs) -> TensorType:
    if t[0] != TensorType((), DType.BOOL):
        _fail(f"the predicate must be a bool[], got {t[0]}", operand=0)
    for side in ("true_branch", "false_branch"):
        _same(
            _types(a[side].params),
            t[1:],
            side + " takes {got}, but the operands after the predicate are {want}",
            side,
        )
    results = _types(a["true_branch"].results)
    _same(
        _types(a["false_branch"].results),
        results,
        "the branches return different types: {want} and {got}",
        "false_branch",
    )
    if not results:
        _fail("the branches must return at least one value", attr="true_branch")
    return TupleType.of(tuple(results))


def _t_get(t: Types, a: Attrs) -> TensorType:
    tup = t[0]
    assert isinstance(tup, TupleType)  # check_operands made sure
    if not 0 <= a["index"] < len(tup.elements):
        _fail(f"index {a['index']} is out of range for {tup}", attr="index")
    element: TensorType = tup.elements[a["index"]]
    return element


TYPE_RULES: dict[Op, Callable[[Types, Attrs], TensorType]] = {
    **QUANT_TYPE_RULES,
    **{op: _t_elementwise for op in UNARY | BINARY},
    **{op: _t_compare for op in COMPARE},
    Op.ABS: _t_part,
    Op.REAL: _t_part,
    Op.IMAG: _t_part,
    Op.COMPLEX: _t_complex,
    Op.SELECT: _t_select,
    Op.CONVERT: _t_convert,
    Op.CONSTANT: _t_constant,
    Op.IOTA: _t_iota,
    Op.BROADCAST_IN_DIM: _t_broadcast,
    Op.RESHAPE: _t_reshape,
    Op.TRANSPOSE: _t_transpose,
    Op.SLICE: _t_slice,
    Op.REVERSE: _t_same,
    Op.CONCATENATE: _t_concatenate,
    Op.PAD: _t_pad,
    Op.GATHER: _t_gather,
    Op.SCATTER: _t_scatter,
    Op.SORT: _t_same,
    Op.ARGSORT: _t_argsort,
    Op.REDUCE: _t_reduce,
    Op.MEAN: _t_reduce,
    Op.SOFTMAX: _t_same,
    Op.DOT_GENERAL: _t_dot,
    Op.CONV2D: _t_conv,
    Op.MAX_POOL: _t_pool,
    Op.AVG_POOL: _t_pool,
    Op.FUSION: _t_fusion,
    Op.WHILE: _t_while,
    Op.FOR: _t_for,
    Op.COND: _t_cond,
    Op.GET: _t_get,
}


def check_operands(op: Op, in_types: Types) -> None:
    arity = ARITY[op]
    if arity is None:
        if not in_types:
            _fail("needs at least one operand")
    elif len(in_types) != arity:
        _fail(f"takes {arity} operand{'s' if arity != 1 else ''}, got {len(in_types)}")
    for i, t in enumerate(in_types):
        if isinstance(t, TupleType) != (op is Op.GET):
            what = "a tuple" if op is Op.GET else "a tensor, not a tuple (read one with get)"
            _fail(f"operand must be {what}, got {t}", operand=i)
    if op is Op.GET:
        return
    rule = OPERAND_DTYPES[op]
    first = 1 if op is Op.SELECT else 0  # select's predicate is checked by its type rule
    for i, t in enumerate(in_types[first:], start=first):
        if t.dtype not in rule.allowed:
            _fail(f"needs {rule.description}, got {t}", operand=i)


def infer(op: Op, in_types: Types, raw_attrs: Mapping[str, Any]) -> tuple[TensorType, Attrs]:
    """Validate operands and attributes of `op` and return (result type, normalized attrs)."""
    if op is Op.PARAMETER:
        raise ShapeError("parameters carry a declared type; they are not inferred")
    check_operands(op, in_types)
    attrs = normalize_attrs(op, in_types, raw_attrs)
    out = TYPE_RULES[op](in_types, attrs)
    problem = out.size_problem()
    if problem is not None:
        raise ShapeError(f"the result is too large: {problem}")
    return out, attrs
