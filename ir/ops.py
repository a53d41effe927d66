"""The op table: every op tessel knows, its category sets, arity, operand dtypes and attributes.

Adding an op means adding a member here and one row in each per-concern table:
`ir/typerules.py::TYPE_RULES` (shape and dtype), `runtime/reference.py::REFERENCE` (numpy
semantics), and later the backend lowering tables. The graph-file mnemonic is the enum value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

import ir.dtypes as dtypes
from ir.attrs import AttrKind, AttrSpec
from ir.dtypes import DType


class Op(Enum):
    # sources
    PARAMETER = "parameter"
    CONSTANT = "constant"
    IOTA = "iota"
    # unary elementwise
    NEG = "neg"
    ABS = "abs"
    EXP = "exp"
    LOG = "log"
    SQRT = "sqrt"
    RSQRT = "rsqrt"
    TANH = "tanh"
    SIGMOID = "sigmoid"
    RELU = "relu"
    ERF = "erf"
    SIN = "sin"
    COS = "cos"
    TAN = "tan"
    ASIN = "asin"
    ACOS = "acos"
    ATAN = "atan"
    SINH = "sinh"
    COSH = "cosh"
    ASINH = "asinh"
    ACOSH = "acosh"
    ATANH = "atanh"
    LOG1P = "log1p"
    EXPM1 = "expm1"
    FLOOR = "floor"
    CEIL = "ceil"
    SIGN = "sign"
    NOT = "not"
    # complex numbers: the parts of one, and one made from its parts
    REAL = "real"
    IMAG = "imag"
    # binary elementwise
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    POW = "pow"
    ATAN2 = "atan2"
    HYPOT = "hypot"
    FMOD = "fmod"
    MAX = "max"
    MIN = "min"
    AND = "and"
    OR = "or"
    XOR = "xor"
    # bit shifts with NumPy's rules: right shifts are arithmetic on signed types and logical on
    # unsigned ones; a count outside 0..bits-1 shifts every bit out (0, or -1 for a negative x
    # shifted right)
    SHIFT_LEFT = "shift_left"
    SHIFT_RIGHT = "shift_right"
    COMPLEX = "complex"  # complex(re, im) = re + i*im
    # comparisons (result is bool)
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    # other elementwise
    SELECT = "select"
    CONVERT = "convert"
    # data movement
    BROADCAST_IN_DIM = "broadcast_in_dim"
    RESHAPE = "reshape"
    TRANSPOSE = "transpose"
    SLICE = "slice"
    REVERSE = "reverse"
    CONCATENATE = "concatenate"
    PAD = "pad"
    # indexed reads and writes: positions come from an integer operand (NumPy's x[idx])
    GATHER = "gather"
    SCATTER = "scatter"
    # sorting along one axis: the values, or the positions that sort them (stable, NaN last)
    SORT = "sort"
    ARGSORT = "argsort"
    # reductions and contractions
    REDUCE = "reduce"
    DOT_GENERAL = "dot_general"
    CONV2D = "conv2d"
    MAX_POOL = "max_pool"
    AVG_POOL = "avg_pool"
    # quantization: float <-> integer with a scale and zero point, per tensor or per channel
    QUANTIZE = "quantize"
    DEQUANTIZE = "dequantize"
    REQUANTIZE = "requantize"
    # composites: a decompose pass rewrites them into the primitives above
    SOFTMAX = "softmax"
    MEAN = "mean"
    # structured control flow: a loop's condition and body and a branch's two sides are nested
    # functions; the result is a tuple (the carried values, the taken side's results), read
    # one element at a time with `get`
    WHILE = "while"
    FOR = "for"
    COND = "cond"
    GET = "get"
    # a group of ops made by the fuse pass; its nested body is a Function (attrs["body"])
    FUSION = "fusion"

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"Op.{self.name}"


SOURCES = frozenset({Op.PARAMETER, Op.CONSTANT, Op.IOTA})
UNARY = frozenset(
    {
        Op.NEG, Op.ABS, Op.EXP, Op.LOG, Op.SQRT, Op.RSQRT, Op.TANH, Op.SIGMOID, Op.RELU,
        Op.ERF, Op.SIN, Op.COS, Op.TAN, Op.ASIN, Op.ACOS, Op.ATAN, Op.SINH, Op.COSH, Op.ASINH,
        Op.ACOSH, Op.ATANH, Op.LOG1P, Op.EXPM1, Op.FLOOR, Op.CEIL, Op.SIGN, Op.NOT, Op.REAL,
        Op.IMAG,
    }
)  # fmt: skip
BINARY = frozenset(
    {
        Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.ATAN2, Op.HYPOT, Op.FMOD, Op.MAX, Op.MIN,
        Op.AND, Op.OR, Op.XOR, Op.SHIFT_LEFT, Op.SHIFT_RIGHT, Op.COMPLEX,
    }
)  # fmt: skip
COMPARE = frozenset({Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE})
COMMUTATIVE = frozenset({Op.ADD, Op.MUL, Op.MAX, Op.MIN, Op.AND, Op.OR, Op.XOR, Op.EQ, Op.NE})
ELEMENTWISE = UNARY | BINARY | COMPARE | {Op.SELECT, Op.CONVERT}
MOVEMENT = frozenset(
    {Op.BROADCAST_IN_DIM, Op.RESHAPE, Op.TRANSPOSE, Op.SLICE, Op.REVERSE, Op.CONCATENATE, Op.PAD}
)
CONTRACTION = frozenset({Op.DOT_GENERAL, Op.CONV2D})
WINDOWED = frozenset({Op.MAX_POOL, Op.AVG_POOL})
COMPOSITE = frozenset({Op.SOFTMAX, Op.MEAN})
# Elementwise, but each element's parameters depend on its position along `axis`, so rewrites
# that treat elementwise ops alike (broadcast sinking, ...) must not touch them.
QUANTIZATION = frozenset({Op.QUANTIZE, Op.DEQUANTIZE, Op.REQUANTIZE})
INDEXED = frozenset({Op.GATHER, Op.SCATTER})
SORTING = frozenset({Op.SORT, Op.ARGSORT})
# Ops with nested functions that are part of the program (not a fusion's grouping): passes run
# inside them too, and constant folding never evaluates them (a loop may not end).
CONTROL = frozenset({Op.WHILE, Op.FOR, Op.COND})
REDUCE_KINDS = ("sum", "max", "min", "prod")
# What an index outside its axis means: an error (NumPy's x[idx]; out-of-range indices are
# reported at run time, see docs/ir.md), the nearest end, or modulo the axis length.
INDEX_MODES = ("check", "clip", "wrap")
SCATTER_KINDS = ("set", "add", "mul", "min", "max")

# Number of operands; None means variadic (at least one).
ARITY: dict[Op, int | None] = {
    **{op: 0 for op in SOURCES},
    **{op: 1 for op in UNARY},
    **{op: 2 for op in BINARY | COMPARE},
    Op.SELECT: 3,
    Op.CONVERT: 1,
    Op.BROADCAST_IN_DIM: 1,
    Op.RESHAPE: 1,
    Op.TRANSPOSE: 1,
    Op.SLICE: 1,
    Op.REVERSE: 1,
    Op.CONCATENATE: None,
    Op.PAD: 2,
    Op.GATHER: 2,
    Op.SCATTER: 3,
    Op.SORT: 1,
    Op.ARGSORT: 1,
    Op.REDUCE: 1,
    Op.DOT_GENERAL: 2,
    Op.CONV2D: 2,
    Op.MAX_POOL: 1,
    Op.AVG_POOL: 1,
    Op.SOFTMAX: 1,
    Op.MEAN: 1,
    **{op: 1 for op in QUANTIZATION},
    Op.FUSION: None,
    Op.WHILE: None,
    Op.FOR: None,
    Op.COND: None,
    Op.GET: 1,
}


@dataclass(frozen=True, slots=True)
class DTypeRule:
    """Which element types an op's (data) operands accept, spelled for error messages."""

    allowed: frozenset[DType]
    description: str


ANY = DTypeRule(dtypes.ALL, "any type")
REAL_OR_BOOL = DTypeRule(dtypes.REAL, "a real or bool type")
NUMERIC = DTypeRule(dtypes.NUMERIC, "a real numeric type")
ARITHMETIC = DTypeRule(dtypes.NUMERIC | dtypes.COMPLEX, "a numeric type")
FLOAT = DTypeRule(dtypes.FLOATS, "a floating-point type")
INEXACT = DTypeRule(dtypes.FLOATS | dtypes.COMPLEX, "a floating-point or complex type")
COMPLEX = DTypeRule(dtypes.COMPLEX, "a complex type")
PARTS = DTypeRule(frozenset(dtypes.COMPLEX_OF), "f32 or f64")
INT_OR_BOOL = DTypeRule(dtypes.INTEGERS | {DType.BOOL}, "an integer or bool type")
INTEGER = DTypeRule(dtypes.INTEGERS, "an integer type")

# the integer types quantized values take
QUANT_INTS = (DType.I8, DType.U8, DType.I16, DType.I32)

OPERAND_DTYPES: dict[Op, DTypeRule] = {
    **{op: ANY for op in SOURCES | MOVEMENT | {Op.EQ, Op.NE, Op.SELECT, Op.CONVERT, Op.FUSION}},
    **{op: REAL_OR_BOOL for op in (Op.LT, Op.LE, Op.GT, Op.GE)},  # complex numbers are unordered
    Op.REAL: COMPLEX,
    Op.IMAG: COMPLEX,
    Op.COMPLEX: PARTS,
    Op.WHILE: ANY,
    Op.FOR: ANY,  # its bounds are checked by the type rule
    Op.COND: ANY,  # so is its predicate
    Op.GET: ANY,  # its operand is a tuple: see typerules
    **{op: INEXACT for op in (Op.EXP, Op.LOG, Op.SQRT)},
    **{op: FLOAT for op in (Op.RSQRT, Op.TANH, Op.SIGMOID, Op.ERF)},
    **{op: FLOAT for op in (Op.FLOOR, Op.CEIL, Op.SOFTMAX, Op.MEAN, Op.AVG_POOL)},
    **{op: FLOAT for op in (Op.SIN, Op.COS, Op.TAN, Op.ASIN, Op.ACOS, Op.ATAN, Op.ATAN2)},
    **{op: FLOAT for op in (Op.SINH, Op.COSH, Op.ASINH, Op.ACOSH, Op.ATANH, Op.HYPOT)},
    **{op: FLOAT for op in (Op.LOG1P, Op.EXPM1)},
    **{op: ARITHMETIC for op in (Op.NEG, Op.ABS, Op.ADD, Op.SUB, Op.MUL, Op.DIV)},
    **{op: NUMERIC for op in (Op.RELU, Op.SIGN, Op.POW, Op.FMOD, Op.MAX, Op.MIN)},
    **{op: INT_OR_BOOL for op in (Op.NOT, Op.AND, Op.OR, Op.XOR)},
    **{op: INTEGER for op in (Op.SHIFT_LEFT, Op.SHIFT_RIGHT)},
    **{op: ANY for op in INDEXED},  # the indices' type is checked by the type rule
    **{op: REAL_OR_BOOL for op in SORTING},
    Op.REDUCE: ANY,  # sum/prod reject bool, max/min complex: see typerules
    Op.DOT_GENERAL: ARITHMETIC,
    Op.CONV2D: NUMERIC,
    Op.MAX_POOL: NUMERIC,
    Op.QUANTIZE: FLOAT,
    Op.DEQUANTIZE: DTypeRule(frozenset(QUANT_INTS), "i8, u8, i16 or i32"),
    Op.REQUANTIZE: DTypeRule(frozenset({DType.I32}), "i32 (an int32 accumulator)"),
}

_INTS = AttrKind.INTS
_OPT = None  # default filled in by the op's normalizer in typerules


ATTRS: dict[Op, dict[str, AttrSpec]] = {
    Op.CONSTANT: {"value": AttrSpec(AttrKind.ARRAY)},
    Op.IOTA: {
        "shape": AttrSpec(_INTS),
        "dtype": AttrSpec(AttrKind.DTYPE),
        "dim": AttrSpec(AttrKind.INT, 0),
    },
    Op.CONVERT: {"dtype": AttrSpec(AttrKind.DTYPE)},
    Op.BROADCAST_IN_DIM: {"shape": AttrSpec(_INTS), "dims": AttrSpec(_INTS, _OPT)},
    Op.RESHAPE: {"shape": AttrSpec(_INTS)},
    Op.TRANSPOSE: {"perm": AttrSpec(_INTS)},
    Op.SLICE: {
        "start": AttrSpec(_INTS),
        "limit": AttrSpec(_INTS),
        "stride": AttrSpec(_INTS, _OPT),
    },
    Op.REVERSE: {"dims": AttrSpec(_INTS)},
    Op.CONCATENATE: {"axis": AttrSpec(AttrKind.INT)},
    Op.PAD: {
        "low": AttrSpec(_INTS),
        "high": AttrSpec(_INTS),
        "interior": AttrSpec(_INTS, _OPT),
    },
    # out[pre, b, post] = x[pre, idx[b, 0], ..., idx[b, k-1], post]: the last axis of `idx`
    # (length k) indexes x's axes axis .. axis+k-1
    Op.GATHER: {
        "axis": AttrSpec(AttrKind.INT, 0),
        "mode": AttrSpec(AttrKind.ENUM, "check", choices=INDEX_MODES),
    },
    # x with updates[pre, b, post] combined into the position gather would read, b in order
    Op.SCATTER: {
        "axis": AttrSpec(AttrKind.INT, 0),
        "mode": AttrSpec(AttrKind.ENUM, "check", choices=INDEX_MODES),
        "kind": AttrSpec(AttrKind.ENUM, "set", choices=SCATTER_KINDS),
    },
    # each line along `axis` sorted ascending (NaN last), or descending (NaN first); equal
    # values keep their order: argsort is stable, and sort gives x at argsort's positions
    Op.SORT: {"axis": AttrSpec(AttrKind.INT, -1), "descending": AttrSpec(AttrKind.BOOL, False)},
    Op.ARGSORT: {
        "axis": AttrSpec(AttrKind.INT, -1),
        "descending": AttrSpec(AttrKind.BOOL, False),
    },
    Op.REDUCE: {
        "kind": AttrSpec(AttrKind.ENUM, choices=REDUCE_KINDS),
        "axes": AttrSpec(_INTS),
    },
    Op.DOT_GENERAL: {
        "lhs_batch": AttrSpec(_INTS, ()),
        "rhs_batch": AttrSpec(_INTS, ()),
        "lhs_contract": AttrSpec(_INTS),
        "rhs_contract": AttrSpec(_INTS),
        "out_dtype": AttrSpec(AttrKind.DTYPE, _OPT),
    },
    Op.CONV2D: {
        "strides": AttrSpec(_INTS, (1, 1)),
        "padding": AttrSpec(AttrKind.PADDING, "valid"),
        "dilation": AttrSpec(_INTS, (1, 1)),
        "groups": AttrSpec(AttrKind.INT, 1),
        "out_dtype": AttrSpec(AttrKind.DTYPE, _OPT),
    },
    Op.MAX_POOL: {
        "window": AttrSpec(_INTS),
        "strides": AttrSpec(_INTS, _OPT),
        "padding": AttrSpec(AttrKind.PADDING, "valid"),
    },
    Op.AVG_POOL: {
        "window": AttrSpec(_INTS),
        "strides": AttrSpec(_INTS, _OPT),
        "padding": AttrSpec(AttrKind.PADDING, "valid"),
        "count_include_pad": AttrSpec(AttrKind.BOOL, False),
    },
    Op.SOFTMAX: {"axis": AttrSpec(AttrKind.INT, -1)},
    # x -> clamp(round_half_even(x / scale) + zero_point) in dtype's range
    Op.QUANTIZE: {
        "scale": AttrSpec(AttrKind.FLOATS),
        "zero_point": AttrSpec(_INTS, (0,)),
        "axis": AttrSpec(AttrKind.INT, _OPT),  # the channel axis; none: per tensor
        "dtype": AttrSpec(AttrKind.DTYPE, DType.I8),
    },
    # q -> (q - zero_point) * scale in dtype
    Op.DEQUANTIZE: {
        "scale": AttrSpec(AttrKind.FLOATS),
        "zero_point": AttrSpec(_INTS, (0,)),
        "axis": AttrSpec(AttrKind.INT, _OPT),
        "dtype": AttrSpec(AttrKind.DTYPE, DType.F32),
    },
    # acc -> clamp(round(acc * multiplier / 2^31 / 2^shift) + zero_point, min, max), integers only
    Op.REQUANTIZE: {
        "multiplier": AttrSpec(_INTS),
        "shift": AttrSpec(_INTS),
        "zero_point": AttrSpec(AttrKind.INT, 0),
        "min": AttrSpec(AttrKind.INT, _OPT),  # default: dtype's range
        "max": AttrSpec(AttrKind.INT, _OPT),
        "axis": AttrSpec(AttrKind.INT, _OPT),
        "dtype": AttrSpec(AttrKind.DTYPE, DType.I8),
    },
    Op.MEAN: {"axes": AttrSpec(_INTS)},
    # repeat `body` while `cond` (same parameters, one bool[] result) holds; start from the operands
    Op.WHILE: {"cond": AttrSpec(AttrKind.FUNCTION), "body": AttrSpec(AttrKind.FUNCTION)},
    # for i in range(lower, upper) (the first two operands): carried = body(i, carried)
    Op.FOR: {"body": AttrSpec(AttrKind.FUNCTION)},
    # compute `true_branch` or `false_branch` (same parameters, same result types) of the
    # operands after the first, as the first (a bool[]) says
    Op.COND: {
        "true_branch": AttrSpec(AttrKind.FUNCTION),
        "false_branch": AttrSpec(AttrKind.FUNCTION),
    },
    Op.GET: {"index": AttrSpec(AttrKind.INT)},
    # device: where the backend runs it; "tpu" regions come from the tpu-place pass
    Op.FUSION: {
        "body": AttrSpec(AttrKind.FUNCTION),
        "device": AttrSpec(AttrKind.ENUM, "host", choices=("host", "tpu")),
    },
}


def attr_specs(op: Op) -> dict[str, AttrSpec]:
    return ATTRS.get(op, {})


def by_mnemonic(name: str) -> Op | None:
    try:
        return Op(name)
    except ValueError:
        return None


def fusion_kind(ops: Iterable[Op]) -> str:
    """XLA's names for what a fused group is built around: a contraction's epilogue ("output"),
    a reduction's producers ("input"), or nothing but elementwise work ("loop")."""
    kinds = set(ops)
    if kinds & CONTRACTION:
        return "output"
    return "input" if Op.REDUCE in kinds else "loop"
