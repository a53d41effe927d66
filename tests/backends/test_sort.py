"""sort and argsort on the CPU (codegen/sort.py) against the interpreter and against NumPy.

The reference rows define the result (stable, NaN last; descending: NaN first, equal values
still in order), so the CPU must match them bit for bit: positions exactly, and values with
the signs of their zeros and the payloads of their NaNs. NumPy's stable sort checks the
reference itself. Shapes: empty, one element, odd, past a vector width, a thousand and more,
any axis; every CPU level this host can run.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from codegen.cpu_caps import host_levels
from codegen.executable import CpuExecutable
from codegen.jit import host_target
from ir.builder import FunctionBuilder
from ir.dtypes import DType
from ir.graph import Function, Module
from ir.ops import Op
from ir.parser import parse_module
from ir.printer import print_module
from ir.types import TensorType
from runtime.interp import run_function

DTYPES = [DType.F64, DType.F32, DType.F16, DType.BF16, DType.I64, DType.I32, DType.I16,
          DType.I8, DType.U64, DType.U32, DType.U16, DType.U8, DType.BOOL]  # fmt: skip
SHAPES = [((0,), 0), ((1,), 0), ((7,), 0), ((33,), -1), ((3, 5), 0), ((4, 0), 0),
          ((2, 9, 3), 1), ((2, 3, 2), -1)]  # fmt: skip


def values(shape: tuple[int, ...], dtype: DType, seed: int) -> np.ndarray:
    """Few distinct values (many ties) with, for floats, NaNs of both signs, ±0 and ±inf."""
    rng = np.random.default_rng(seed)
    if dtype is DType.BOOL:
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.is_int:
        info = np.iinfo(dtype.np)
        pool = np.array([info.min, info.max, 0, 1, 2, 3, info.max - 1], dtype.np)
        return rng.choice(pool, shape)
    pool = np.array([0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 1.0, -1.0, 2.5, -3.0, 0.5])
    chosen = rng.choice(pool, shape)
    noisy = rng.random(shape) < 0.3  # (adding 0.0 elsewhere would turn -0.0 into 0.0)
    return np.where(noisy, chosen + rng.standard_normal(shape), chosen).astype(dtype.np)


def graph(shape: tuple[int, ...], dtype: DType, axis: int, descending: bool) -> Function:
    fb = FunctionBuilder("main")
    x = fb.param("x", TensorType(shape, dtype))
    return fb.build(
        [
            fb.op(Op.SORT, x, axis=axis, descending=descending),
            fb.op(Op.ARGSORT, x, axis=axis, descending=descending),
        ]
    )


def numpy_stable(x: np.ndarray, axis: int, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """What the ops mean, in NumPy alone: the stable order of the keys (f16/bf16 as f32);
    descending is JAX's, the reverse of the stable ascending order of the reversed line."""
    key = x.astype(np.float32) if x.dtype in (np.float16, ml_dtypes.bfloat16) else x
    if descending:
        flipped = np.argsort(np.flip(key, axis), axis=axis, kind="stable")
        order = x.shape[axis] - 1 - np.flip(flipped, axis)
    else:
        order = np.argsort(key, axis=axis, kind="stable")
    return np.take_along_axis(x, order, axis), order


def same_bits(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    assert got.tobytes() == expected.tobytes(), f"\n{got}\n!=\n{expected}"


def run_cases(
    dtype: DType, cases: list[tuple[tuple[int, ...], int, bool]], cpu: str = "native"
) -> None:
    """One program sorting and argsorting an operand per case (shape, axis, descending): the
    CPU's results against the interpreter's, and those against NumPy's stable sort."""
    fb = FunctionBuilder("main")
    params, results = [], []
    for i, (shape, axis, descending) in enumerate(cases):
        x = fb.param(f"x{i}", TensorType(shape, dtype))
        params.append(values(shape, dtype, i))
        results += [fb.op(op, x, axis=axis, descending=descending) for op in (Op.SORT, Op.ARGSORT)]
    fn = fb.build(results)
    exe = CpuExecutable(Module((fn,), "main"), threads=1, target=host_target(cpu))
    got, expected = exe(*params), run_function(fn, params)
    for i, (x, (_, axis, descending)) in enumerate(zip(params, cases, strict=True)):
        pair = slice(2 * i, 2 * i + 2)
        for g, e, n in zip(
            got[pair], expected[pair], numpy_stable(x, axis, descending), strict=True
        ):
            same_bits(e, n.astype(e.dtype))  # the reference is NumPy's stable sort
            same_bits(g, e)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cpu_matches_interpreter_and_numpy(dtype: DType) -> None:
    """Every shape and axis, ascending and descending."""
    run_cases(dtype, [(shape, axis, d) for shape, axis in SHAPES for d in (False, True)])


@pytest.mark.parametrize("cpu", host_levels())
def test_every_cpu_level(cpu: str) -> None:
    """Rows past every vector width, along the last and a middle axis, f32 and bf16."""
    for dtype in (DType.F32, DType.BF16):
        run_cases(dtype, [((3, 1031), 1, False), ((5, 67, 3), 1, True), ((0, 2), 0, True)], cpu)


def test_threads_split_rows() -> None:
    """Many rows over several threads: each row is sorted on its own, wherever it runs."""
    fn = graph((64, 300), DType.F32, -1, False)
    x = values((64, 300), DType.F32, 3)
    got = CpuExecutable(Module((fn,), "main"), threads=4)(x)
    for g, e in zip(got, run_function(fn, [x]), strict=True):
        same_bits(g, e)


def test_large_random_row_against_numpy() -> None:
    """100,003 distinct floats and integers with many ties: NumPy's stable sort exactly."""
    rng = np.random.default_rng(5)
    for x in (rng.standard_normal(100_003).astype(np.float32), rng.integers(-50, 50, 100_003)):
        dtype = DType.from_numpy(x.dtype)
        got = CpuExecutable(Module((graph(x.shape, dtype, 0, False),), "main"), threads=1)(x)
        same_bits(got[0], np.sort(x, kind="stable"))
        same_bits(got[1], np.argsort(x, kind="stable").astype(np.int64))


def test_zeros_and_nans_keep_their_order() -> None:
    """-0.0 and 0.0 are equal keys, as are NaNs of any sign: both keep the operand's order,
    after the negatives (ascending) and at the end (NaNs), or first (NaNs, descending)."""
    neg_nan = np.copysign(np.float32(np.nan), np.float32(-1))
    x = np.array([0.0, np.nan, -0.0, -1.0, neg_nan, -0.0, 2.0, 0.0], np.float32)
    for descending in (False, True):
        fn = graph(x.shape, DType.F32, 0, descending)
        got = CpuExecutable(Module((fn,), "main"), threads=1)(x)
        sorted_, order = numpy_stable(x, 0, descending)
        same_bits(got[0], sorted_)
        same_bits(got[1], order.astype(np.int64))
    # descending: nan, -nan, 2, then 0.0, -0.0, -0.0, 0.0 as in x, then -1
    assert list(np.signbit(got[0])) == [False, True, False, False, True, True, False, True]


def test_text_form_round_trips_and_sort_inside_a_fusion_compiles() -> None:
    """Defaults are printed canonically; a sort in a fusion body (which `fuse` never makes)
    takes the emitter's slow form and still matches."""
    text = """func @main(%x: f32[3,5]) -> (f32[3,5], i64[3,5], f32[3,5]) {
  %s = sort(%x) {axis = -1} : f32[3,5]
  %i = argsort(%x) {axis = 0, descending = true} : i64[3,5]
  %f = fusion(%x) {body = func @fusion(%a: f32[3,5]) -> f32[3,5] {
    %n = neg(%a) : f32[3,5]
    %t = sort(%n) {axis = 0, descending = true} : f32[3,5]
    return %t
  }} : f32[3,5]
  return %s, %i, %f
}
"""
    module = parse_module(text)
    printed = print_module(module)
    assert "%s = sort(%x) : f32[3,5]" in printed  # axis = -1 (the last) is the default
    assert print_module(parse_module(printed)) == printed
    x = values((3, 5), DType.F32, 11)
    for g, e in zip(
        CpuExecutable(module, threads=1)(x), run_function(module.entry_function, [x]), strict=True
    ):
        same_bits(g, e)


def test_type_rule_errors() -> None:
    fb = FunctionBuilder("main")
    x = fb.param("x", TensorType((), DType.F32))
    with pytest.raises(Exception, match="out of range for rank 0"):
        fb.op(Op.SORT, x)
    y = fb.param("y", TensorType((2, 3), DType.I8))
    assert fb.op(Op.ARGSORT, y, axis=-2).type == TensorType((2, 3), DType.I64)
    with pytest.raises(Exception, match="axis 2 is out of range"):
        fb.op(Op.ARGSORT, y, axis=2)
