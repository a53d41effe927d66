"""The CPU backend against the reference interpreter: every op x dtype, awkward shapes.

Graphs come from the same generator as the round-trip tests (every op, every dtype it accepts,
scalars, size-0 and size-1 dimensions, nan/inf/-0.0 constants). Integers and data movement must
match exactly; floats within a tolerance that covers libm differences and summation order.

Each op x dtype runs at every capability level this host can execute (generic, x86-64-v2, -v3,
-v4, and the host itself), so a smaller machine's code paths are tested on a bigger one; the
lower levels take one graph per case, the host three.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from graphgen import OP_DTYPES, functions
from hypothesis import HealthCheck, given, settings

from codegen.cpu_caps import host_levels
from codegen.executable import CpuExecutable
from codegen.jit import host_target
from compiler.targets import default_pipeline
from ir.builder import FunctionBuilder
from ir.dtypes import DType
from ir.graph import Function, Module
from ir.ops import Op
from ir.types import TensorType
from passes import PassManager, parse_pipeline
from runtime.inputs import random_inputs
from runtime.interp import run_function

# relative tolerance per result dtype (1-2 ulp of the type, loose enough for reassociation)
RTOL = {DType.F64: 1e-9, DType.F32: 2e-5, DType.F16: 2e-3, DType.BF16: 1.6e-2}
ACCUMULATING = {Op.REDUCE, Op.MEAN, Op.DOT_GENERAL, Op.CONV2D, Op.SOFTMAX, Op.AVG_POOL}


def assert_matches(
    expected: np.ndarray, got: np.ndarray, accumulating: bool, f64_sums: bool = False
) -> None:
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    if expected.dtype.kind in "biu":
        np.testing.assert_array_equal(got, expected)
        return
    if expected.dtype.kind == "c":  # each part as a real number of the part's type
        for part in (np.real, np.imag):
            assert_matches(part(expected).copy(), part(got), accumulating, f64_sums)
        return
    dtype = DType.from_numpy(expected.dtype)
    e, g = expected.astype(np.float64), got.astype(np.float64)
    if accumulating and f64_sums:  # f64 sums have no fixed order (runtime/reference_nn.py):
        near = (
            float(np.finfo(expected.dtype).max) / 4
        )  # near the range's end, an order can overflow
        # (to inf, or to NaN after inf - inf) where another does not
        big_e, big_g = ~(np.abs(e) <= near), ~(np.abs(g) <= near)  # NaN counts as big
        edge = (~np.isfinite(e) & big_g) | (~np.isfinite(g) & big_e)
        e, g = np.where(edge, 0, e), np.where(edge, 0, g)
    rtol = RTOL[dtype] * (50 if accumulating else 1)
    atol = (
        rtol * float(np.nanmax(np.abs(np.where(np.isfinite(e), e, 0)), initial=0.0))
        if accumulating
        else 0
    )
    np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, equal_nan=True)


def check(fn: Function, seed: int = 0, cpu: str = "native") -> None:
    accumulating = any(n.op in ACCUMULATING for n in fn.body)
    f64_sums = any(n.dtype in (DType.F64, DType.C128) for n in fn.nodes())
    args = random_inputs(fn, seed)
    expected = run_function(fn, args)
    got = CpuExecutable(Module((fn,), fn.name), threads=1, target=host_target(cpu))(*args)
    for e, g in zip(expected, got, strict=True):
        assert_matches(e, g, accumulating, f64_sums)


# Complex values reach the kernels as real ones (expand-complex, a target-independent pass), so
# they run at the host's level only: the lower levels' real kernels are tested on their own.
CASES = [
    pytest.param(o, d, cpu, id=f"{o.value}-{d.value}-{cpu}")
    for cpu in host_levels()
    for o, d in OP_DTYPES
    if cpu == "native" or not d.is_complex
]


@pytest.mark.parametrize(("op", "dtype", "cpu"), CASES)
def test_op_dtype(op, dtype, cpu):
    @settings(
        max_examples=3 if cpu == "native" else 1,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(functions(op=op, dtype=dtype))
    def run(fn: Function) -> None:
        check(fn, cpu=cpu)

    run()


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(functions())
def test_random_graphs(fn):
    check(fn)


REVERSES = [
    ((), ()),
    ((0,), (0,)),
    ((1,), (0,)),
    ((7,), (0,)),
    ((7,), ()),
    ((3, 5), (1,)),
    ((3, 5), (0, 1)),
    ((2, 0, 3), (0, 2)),
    ((3, 1, 33), (0, 1, 2)),
    ((5, 4, 3), (0, 2)),
]
REVERSE_DTYPES = [DType.F64, DType.F32, DType.BF16, DType.I64, DType.I8, DType.U8, DType.BOOL]


@pytest.mark.parametrize("dtype", REVERSE_DTYPES, ids=str)
@pytest.mark.parametrize(("shape", "dims"), REVERSES, ids=str)
def test_reverse_alone_and_fused(shape: tuple[int, ...], dims: tuple[int, ...], dtype: DType):
    """reverse as its own kernel, then (after the cpu pipeline) as index arithmetic inside the
    loop fusion of a comparison that also reads the operand at the unreversed index."""
    fb = FunctionBuilder("main")
    x = fb.param("x", TensorType(shape, dtype))
    flipped = fb.op(Op.REVERSE, x, dims=dims)
    fn = fb.build([flipped, fb.op(Op.EQ, flipped, x)])
    check(fn)
    module = PassManager(parse_pipeline(default_pipeline("cpu"))).run(Module((fn,), "main"))
    if dims and 0 not in shape:
        fused = module.entry_function.body[-1]
        assert fused.op is Op.FUSION
        assert Op.REVERSE in {n.op for n in fused.attrs["body"].body}
    args = random_inputs(fn, seed=1)
    for e, g in zip(run_function(fn, args), CpuExecutable(module, threads=1)(*args), strict=True):
        assert_matches(e, g, accumulating=False)


# the ops lowered to calls of the C math library (codegen/scalar.py)
LIBM_UNARY = [Op.SIN, Op.COS, Op.TAN, Op.ASIN, Op.ACOS, Op.ATAN, Op.SINH, Op.COSH, Op.ASINH,
              Op.ACOSH, Op.ATANH, Op.LOG1P, Op.EXPM1]  # fmt: skip
LIBM_BINARY = [Op.ATAN2, Op.HYPOT, Op.FMOD]


def _float_specials(dtype: DType) -> np.ndarray:
    """Zeros, infinities, NaN, the range ends, ±1 and their neighbours (domain edges), and
    ordinary values."""
    info = ml_dtypes.finfo(dtype.np)  # type: ignore[no-untyped-call]  # numpy's lacks bf16
    raw = [0.0, -0.0, np.inf, -np.inf, np.nan, float(info.max), -float(info.max), 0.5, -0.75]
    raw += [float(info.smallest_subnormal), 3.0, -7.25, 100.0, 1e-3, 1.0, -1.0]
    one = np.array([1.0, -1.0], dtype.np)
    near = [np.nextafter(one, np.array(s, dtype.np)) for s in (0, 2, -2)]
    return np.concatenate([np.array(raw).astype(dtype.np), *near])


def _signs_of_zeros(a: np.ndarray) -> np.ndarray:
    return np.where(a == 0, np.signbit(a), False)


@pytest.mark.parametrize("cpu", host_levels())
@pytest.mark.parametrize("dtype", [DType.F64, DType.F32, DType.F16, DType.BF16], ids=str)
def test_libm_functions_at_special_values(dtype: DType, cpu: str) -> None:
    """Every pair of special values through each C math library op: the values within the
    per-dtype tolerance, NaN where the interpreter has NaN, zeros with its signs."""
    x = _float_specials(dtype)
    y, x = np.repeat(x, x.size), np.tile(x, x.size)
    fb = FunctionBuilder("main")
    px, py = (fb.param(n, TensorType(x.shape, dtype)) for n in ("x", "y"))
    ops = [*LIBM_UNARY, *LIBM_BINARY]
    fn = fb.build([fb.op(op, px) if op in LIBM_UNARY else fb.op(op, py, px) for op in ops])
    expected = run_function(fn, [x, y])
    got = CpuExecutable(Module((fn,), fn.name), threads=1, target=host_target(cpu))(x, y)
    for op, e, g in zip(ops, expected, got, strict=True):
        assert_matches(e, g, accumulating=False)
        np.testing.assert_array_equal(_signs_of_zeros(g), _signs_of_zeros(e), err_msg=op.value)


@pytest.mark.parametrize("cpu", host_levels())
@pytest.mark.parametrize("dtype", [DType.I64, DType.I32, DType.I16, DType.I8, DType.U8], ids=str)
def test_int_fmod_edges(dtype: DType, cpu: str) -> None:
    """x fmod 0 is 0 and INT_MIN fmod -1 is 0 (srem traps there on x86 unguarded)."""
    info = np.iinfo(dtype.np)
    raw = {int(info.min), int(info.min) + 1, -7, -3, -1, 0, 1, 3, 7, int(info.max)}
    v = np.array(sorted(r for r in raw if info.min <= r <= info.max), dtype.np)
    x, y = np.repeat(v, v.size), np.tile(v, v.size)
    fb = FunctionBuilder("main")
    px, py = (fb.param(n, TensorType(x.shape, dtype)) for n in ("x", "y"))
    fn = fb.build([fb.op(Op.FMOD, px, py)])
    expected = run_function(fn, [x, y])[0]
    got = CpuExecutable(Module((fn,), fn.name), threads=1, target=host_target(cpu))(x, y)[0]
    np.testing.assert_array_equal(got, expected)
    assert not got[y == 0].any()
