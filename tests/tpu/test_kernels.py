"""GEMMs and convolutions compiled to instruction streams give the reference's integers exactly,
on every array shape, and their timing behaves as the models promise."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from codegen.tpu.kernels import Epilogue
from codegen.tpu.stream import TilingError
from ir.dtypes import DType
from ir.ops import Op
from runtime.interp import run_op
from runtime.tpu.config import preset
from runtime.tpu.isa import Func
from tests.tpu.helpers import (
    chain_program,
    conv_program,
    gemm_program,
    reference_requantize,
    run_gemm,
)

ARRAYS = [
    "tiny-4x4",
    "tiny-8x8",
    "tiny-8x8:rows=8,cols=4",
    "tiny-4x4:rows=4,cols=8",
    "tiny-4x4:rows=1,cols=5",
    "tiny-4x4:rows=3,cols=1",
]
SHAPES = [
    (1, 1, 1),
    (1, 7, 1),
    (5, 3, 4),
    (7, 13, 11),
    (2, 17, 9),
    (31, 8, 8),
    (13, 1, 29),
    (64, 5, 3),
    (3, 64, 2),
]


def _ints(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-128, 128, shape).astype(np.int8)


def _dot(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return run_op(Op.DOT_GENERAL, x, w, lhs_contract=(1,), rhs_contract=(0,), out_dtype=DType.I32)


@pytest.mark.parametrize("array", ARRAYS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_int8_gemm_int32_out_equals_reference(array: str, shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(hash((array, shape)) % 2**32)
    m, k, n = shape
    x, w = _ints(rng, (m, k)), _ints(rng, (k, n))
    out, _ = run_gemm(preset(array), x, w, Epilogue(wide=True))
    np.testing.assert_array_equal(out, _dot(x, w))


@pytest.mark.parametrize("array", ARRAYS[:4])
@pytest.mark.parametrize("relu", [False, True])
def test_int8_gemm_requantized_equals_reference(array: str, relu: bool) -> None:
    rng = np.random.default_rng(7)
    for m, k, n in SHAPES:
        x, w = _ints(rng, (m, k)), _ints(rng, (k, n))
        e = Epilogue(
            bias=rng.integers(-5000, 5000, n).astype(np.int32),
            multiplier=rng.integers(1 << 29, (1 << 31) - 1, n).astype(np.int32),
            shift=rng.integers(-2, 12, n).astype(np.int32),
            func=Func.RELU if relu else Func.IDENTITY,
            zero_point=int(rng.integers(-5, 5)),
            lo=-120,
            hi=125,
        )
        out, _ = run_gemm(preset(array), x, w, e)
        np.testing.assert_array_equal(out, reference_requantize(_dot(x, w), e))


@pytest.mark.slow  # a separate CI step runs the slow tier
def test_many_random_gemms_every_array() -> None:
    """Thousands of random sizes, including larger than the array in every dimension."""
    rng = np.random.default_rng(2024)
    for trial in range(2400):
        array = ARRAYS[trial % len(ARRAYS)]
        m, k, n = (int(v) for v in rng.integers(1, 24 if trial % 4 else 70, 3))
        x, w = _ints(rng, (m, k)), _ints(rng, (k, n))
        out, _ = run_gemm(preset(array), x, w, Epilogue(wide=True))
        np.testing.assert_array_equal(out, _dot(x, w), err_msg=f"{array} {m}x{k}x{n}")


CONVS = [
    ((1, 5, 5, 3), (3, 3, 3, 4), {}),
    ((2, 7, 6, 5), (3, 3, 5, 6), {"padding": ((1, 1), (1, 1))}),
    ((1, 9, 9, 4), (3, 3, 4, 5), {"strides": (2, 2), "padding": ((1, 0), (2, 1))}),
    ((1, 8, 8, 2), (3, 2, 2, 3), {"dilation": (2, 1), "padding": ((2, 2), (0, 1))}),
    ((1, 6, 6, 8), (3, 3, 2, 8), {"groups": 4, "padding": ((1, 1), (1, 1))}),
    ((1, 5, 5, 4), (3, 3, 1, 4), {"groups": 4}),  # depthwise
    ((3, 4, 4, 9), (1, 1, 9, 11), {}),
    ((1, 1, 1, 1), (1, 1, 1, 1), {}),
    ((1, 3, 3, 2), (3, 3, 2, 2), {"padding": ((4, 4), (3, 3))}),  # windows wholly in padding
    ((1, 13, 11, 7), (5, 3, 7, 9), {"strides": (3, 2), "padding": ((2, 2), (1, 1))}),
]


@pytest.mark.parametrize("array", ARRAYS)
@pytest.mark.parametrize("case", range(len(CONVS)))
def test_int8_conv_equals_reference(array: str, case: int) -> None:
    x_shape, w_shape, attrs = CONVS[case]
    rng = np.random.default_rng(case)
    x, w = _ints(rng, x_shape), _ints(rng, w_shape)
    program = conv_program(preset(array), x_shape, w, attrs, Epilogue(wide=True))
    (out,), result = program.run([x])
    assert not result.problems
    expected = run_op(Op.CONV2D, x, w, out_dtype=DType.I32, **attrs)
    np.testing.assert_array_equal(out, expected)


def test_conv_splits_output_rows_when_the_accumulators_are_small() -> None:
    c = preset("tiny-4x4:accumulator_rows=64")
    rng = np.random.default_rng(3)
    x, w = _ints(rng, (1, 20, 9, 3)), _ints(rng, (3, 3, 3, 5))
    attrs = {"padding": ((1, 1), (1, 1))}
    program = conv_program(c, x.shape, w, attrs, Epilogue(wide=True))
    (out,), _ = program.run([x])
    np.testing.assert_array_equal(out, run_op(Op.CONV2D, x, w, out_dtype=DType.I32, **attrs))


def test_bf16_gemm_matches_the_documented_accumulation_order() -> None:
    """f32 partial sums flow down each tile's rows in order; tiles add into the accumulator."""
    import ml_dtypes

    c = preset("tiny-4x4:multiplier=bf16")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((9, 10)).astype(ml_dtypes.bfloat16)
    w = rng.standard_normal((10, 6)).astype(ml_dtypes.bfloat16)
    out, _ = run_gemm(c, x, w, Epilogue(wide=True))
    expected = np.zeros((9, 6), np.float32)
    for k0 in range(0, 10, c.rows):  # an independent scalar emulation of the order
        tile = np.zeros((9, 6), np.float32)
        for k in range(k0, min(k0 + c.rows, 10)):
            for i in range(9):
                for j in range(6):
                    tile[i, j] = np.float32(tile[i, j] + np.float32(x[i, k]) * np.float32(w[k, j]))
        expected = tile if k0 == 0 else (expected + tile).astype(np.float32)
    np.testing.assert_array_equal(out, expected)
    rounded, _ = run_gemm(c, x, w, Epilogue())
    np.testing.assert_array_equal(rounded, expected.astype(ml_dtypes.bfloat16))


def test_a_gemm_too_deep_for_the_unified_buffer_is_refused_clearly() -> None:
    c = preset("tiny-4x4:unified_buffer_bytes=256")
    with pytest.raises(TilingError, match="unified buffer rows"):
        gemm_program(c, (4, 400), np.zeros((400, 4), np.int8), Epilogue(wide=True))


def test_native_timing_is_never_slower_than_the_serialized_model_with_free_memory() -> None:
    c = preset("tiny-8x8:weight_bandwidth=inf,host_bandwidth=inf")
    rng = np.random.default_rng(11)
    for m, k, n in [(1, 1, 1), (9, 17, 5), (64, 64, 64), (100, 3, 20)]:
        x, w = _ints(rng, (m, k)), _ints(rng, (k, n))
        program = gemm_program(c, (m, k), w, Epilogue())
        _, native = program.run([x], "native")
        _, compat = program.run([x], "compat")
        # the serialized model counts the array alone, from cycle 0 (hence the one)
        assert native.stats.matrix_cycles <= compat.stats.cycles + 1


def test_512_cube_on_128x128_keeps_the_array_busy() -> None:
    """The serialized model's 57% vs at least 90% with double-buffered weights (memory free)."""
    c = preset("tpu-v2-core:multiplier=int8,weight_bandwidth=inf,host_bandwidth=inf")
    rng = np.random.default_rng(0)
    x, w = _ints(rng, (512, 512)), _ints(rng, (512, 512))
    program = gemm_program(c, (512, 512), w, Epilogue())
    _, native = program.run([x], "native")
    _, compat = program.run([x], "compat")
    assert native.stats.utilization >= 0.90
    assert 0.56 <= compat.stats.utilization <= 0.58
    assert compat.stats.cycles == 16 * (2 * 128 + 128 + 512 - 2) - 1
    assert len(program.instructions) < 64  # repeat fields: a few instructions per weight tile


def _requant_layer(rng: np.random.Generator, k: int, n: int, relu: bool = True):
    w = _ints(rng, (k, n))
    e = Epilogue(
        bias=rng.integers(-2000, 2000, n).astype(np.int32),
        multiplier=rng.integers(1 << 29, (1 << 31) - 1, n).astype(np.int32),
        shift=rng.integers(4, 10, n).astype(np.int32),
        func=Func.RELU if relu else Func.IDENTITY,
    )
    return w, e


@pytest.mark.parametrize("array", ["tiny-4x4", "tiny-8x8", "tiny-4x4:accumulator_rows=8"])
def test_chained_layers_keep_activations_on_chip_and_stay_exact(array: str) -> None:
    rng = np.random.default_rng(9)
    for trial in range(25):
        m = int(rng.integers(1, 30))
        widths = [int(v) for v in rng.integers(1, 20, int(rng.integers(2, 5)))]
        layers = [_requant_layer(rng, k, n) for k, n in itertools.pairwise(widths)]
        if trial % 2:  # the last layer may write int32
            w, e = layers[-1]
            layers[-1] = (w, Epilogue(bias=e.bias, wide=True))
        program = chain_program(preset(array), m, layers)
        x = _ints(rng, (m, widths[0]))
        (out,), result = program.run([x])
        assert not result.problems
        want = x
        for w, e in layers:
            acc = _dot(want, w)
            want = reference_requantize(acc, e) if not e.wide else acc + e.bias
        np.testing.assert_array_equal(out, want, err_msg=f"{array} {m} {widths}")
        loads = sum(1 for i in program.instructions if i.mnemonic == "rhm")
        stores = sum(1 for i in program.instructions if i.mnemonic == "whm")
        chunks = -(-m // (preset(array).accumulator_rows // 2))
        assert loads == chunks * -(-widths[0] // preset(array).rows)  # only the first layer's
        assert stores == chunks * -(-widths[-1] // preset(array).cols)  # only the last layer's


def test_a_large_gemm_is_within_5_percent_of_the_analytic_bound() -> None:
    """max(array cycles, each byte over its link once) on a chip whose links keep up."""
    c = preset("tpu-v2-core:multiplier=int8")
    n = 2048
    rng = np.random.default_rng(1)
    x, w = _ints(rng, (n, n)), _ints(rng, (n, n))
    program = gemm_program(c, (n, n), w, Epilogue())
    (out,), result = program.run([x])
    bound = max(
        n * (n // c.rows) * (n // c.cols),
        n * n / c.weight_bytes_per_cycle,
        n * n / c.host_bytes_per_cycle,
    )
    assert result.stats.cycles <= 1.05 * bound
    exact = x.astype(np.float64) @ w.astype(np.float64)  # exact; NumPy's int matmul is slow
    np.testing.assert_array_equal(out, np.clip(exact, -128, 127).astype(np.int8))


@pytest.mark.slow  # a separate CI step runs the slow tier
def test_many_random_convolutions_every_array() -> None:
    rng = np.random.default_rng(77)
    ran = 0
    for trial in range(960):
        array = ARRAYS[trial % len(ARRAYS)]
        groups = int(rng.choice([1, 1, 2, 3]))
        cin, cout = groups * int(rng.integers(1, 6)), groups * int(rng.integers(1, 6))
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        h, w_ = int(rng.integers(kh, 9)), int(rng.integers(kw, 9))
        attrs = {
            "strides": tuple(int(v) for v in rng.integers(1, 3, 2)),
            "dilation": tuple(int(v) for v in rng.integers(1, 3, 2)),
            "padding": tuple((int(a), int(b)) for a, b in rng.integers(0, 3, (2, 2))),
            "groups": groups,
        }
        x = _ints(rng, (int(rng.integers(1, 3)), h + 2, w_ + 2, cin))
        w = _ints(rng, (kh, kw, cin // groups, cout))
        try:
            expected = run_op(Op.CONV2D, x, w, out_dtype=DType.I32, **attrs)
        except Exception:
            continue
        program = conv_program(preset(array), x.shape, w, attrs, Epilogue(wide=True))
        (out,), result = program.run([x])
        assert not result.problems
        np.testing.assert_array_equal(out, expected, err_msg=f"{array} {x.shape} {w.shape} {attrs}")
        ran += 1
    assert ran > 900  # the few skipped are windows larger than their padded input
