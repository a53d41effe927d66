"""The simulator's protocol checks and the activation unit's exact semantics."""

from __future__ import annotations

import numpy as np
import pytest

from ir.dtypes import DType
from ir.ops import Op
from runtime.interp import run_op
from runtime.tpu.asm import assemble
from runtime.tpu.config import PRESETS, preset
from runtime.tpu.machine import PARAM_BYTES, TpuError
from runtime.tpu.sim import Simulator
from runtime.tpu.timing import CATEGORIES

C4 = preset("tiny-4x4")


def _run(
    text: str,
    host: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    config=C4,
    mode: str = "native",
):
    host = np.zeros(4096, np.uint8) if host is None else host
    weights = np.zeros(4096, np.uint8) if weights is None else weights
    return Simulator(config, mode).run(assemble(text), host, weights)


def test_a_pop_that_is_never_satisfied_is_a_deadlock_naming_each_queue() -> None:
    with pytest.raises(TpuError, match="deadlock") as info:
        _run(
            "rw weight_addr=0\nmmc ub_addr=0 acc_addr=0 rows=1 switch=1 pop_prev\n"
            "whm host_addr=0 ub_addr=0 elems=1 pop_prev\nhalt\n"
        )
    message = str(info.value)
    assert "compute queue waits at instruction 1" in message
    assert "store queue waits at instruction 2" in message


def test_a_missing_weight_read_is_a_deadlock() -> None:
    with pytest.raises(TpuError, match="weight tile"):
        _run("mmc ub_addr=0 acc_addr=0 rows=1 switch=1\nhalt\n")


def test_tokens_left_at_halt_and_unused_tiles_are_reported() -> None:
    result = _run("rhm host_addr=0 ub_addr=0 elems=1 push_next\nrw weight_addr=0 tiles=2\nhalt\n")
    assert result.problems == [
        "1 token(s) from the load queue to the compute queue were never popped",
        "2 weight tile(s) were read but never used",
    ]


def test_an_unsynchronized_read_of_loaded_data_is_a_race() -> None:
    with pytest.raises(
        TpuError, match=r"race at instruction 2.*written by instruction 1 of the load"
    ):
        _run(
            "rhm host_addr=0 ub_addr=0 elems=1\nrw weight_addr=0\n"
            "mmc ub_addr=0 acc_addr=0 rows=1 switch=1\nhalt\n"
        )


def test_overwriting_rows_the_store_has_not_read_is_a_race() -> None:
    text = """
    rw weight_addr=0
    rhm host_addr=0 ub_addr=0 elems=4 push_next
    mmc ub_addr=0 acc_addr=0 rows=1 switch=1 pop_prev
    act acc_addr=0 ub_addr=8 rows=1 push_next
    whm host_addr=64 ub_addr=8 elems=4 pop_prev
    act acc_addr=0 ub_addr=8 rows=1
    halt
    """
    # whichever of the two runs first, the other is caught
    with pytest.raises(TpuError, match=r"race at instruction .* unified buffer row 8"):
        _run(text)


@pytest.mark.parametrize(
    ("text", "row"),
    [
        # the multiply reads what the load writes: read after write, or write after read
        ("rw weight_addr=0\nrhm host_addr=0 ub_addr=3 elems=4\n"
         "mmc ub_addr=3 acc_addr=0 rows=1 switch=1\nhalt\n", 3),
        # the activation and a load write the same row: write after write
        ("rw weight_addr=0\nrhm host_addr=0 ub_addr=0 elems=4 push_next\n"
         "mmc ub_addr=0 acc_addr=0 rows=1 switch=1 pop_prev\n"
         "act acc_addr=0 ub_addr=5 rows=1\nrhm host_addr=0 ub_addr=5 elems=4\nhalt\n", 5),
    ],
)  # fmt: skip
def test_every_kind_of_unordered_access_is_a_race(text: str, row: int) -> None:
    with pytest.raises(TpuError, match=rf"race at instruction .* unified buffer row {row}, "):
        _run(text)


def test_sync_orders_everything_without_tokens() -> None:
    host = np.zeros(256, np.uint8)
    host[:4] = [1, 2, 3, 4]
    weights = np.eye(4, dtype=np.int8).view(np.uint8).ravel().copy()
    text = """
    rw weight_addr=0
    rhm host_addr=0 ub_addr=0 elems=4
    sync
    mmc ub_addr=0 acc_addr=0 rows=1 switch=1
    act acc_addr=0 ub_addr=8 rows=1
    sync
    whm host_addr=64 ub_addr=8 elems=4
    halt
    """
    result = _run(text, host, np.resize(weights, 4096))
    assert list(host[64:68]) == [1, 2, 3, 4]
    assert sum(result.stats.breakdown[k] for k in CATEGORIES) == result.stats.cycles


def test_loads_pad_with_the_fill_and_overlapping_stores_keep_the_later_vector() -> None:
    host = np.zeros(512, np.uint8)
    host[:64] = np.arange(1, 65)
    load = (
        "rhm host_addr=0 ub_addr=0 elems=3 x_size=3 y_size=2 x_stride=4 y_stride=16 "
        "pad_top=1 pad_bottom=1 pad_left=1 pad_right=1 fill=-7"
    )
    store = "whm host_addr=256 ub_addr=0 elems=4 x_size=20 x_stride=2"  # 4 bytes every 2
    expected = host.copy()
    _run(f"{load}\nsync\n{store}\nhalt\n", host)
    vectors = np.full((4, 5, C4.row_bytes), np.int8(-7).view(np.uint8))  # the padded 4 x 5 grid
    for y in range(2):
        for x in range(3):
            vectors[1 + y, 1 + x, :3] = expected[16 * y + 4 * x : 16 * y + 4 * x + 3]
    for v, vector in enumerate(vectors.reshape(20, -1)):  # in order: the later one wins
        expected[256 + 2 * v : 256 + 2 * v + 4] = vector
    np.testing.assert_array_equal(host, expected)


def test_out_of_range_addresses_are_refused_before_touching_memory() -> None:
    with pytest.raises(TpuError, match="host memory"):
        _run("rhm host_addr=4090 ub_addr=0 elems=4 x_size=2 x_stride=4\nhalt\n")
    with pytest.raises(TpuError, match="unified buffer rows"):
        _run(f"rhm host_addr=0 ub_addr={C4.ub_rows} elems=1\nhalt\n")
    with pytest.raises(TpuError, match="weight image"):
        _run("rw weight_addr=4090\nhalt\n")
    with pytest.raises(TpuError, match="follows halt"):
        _run("halt\nsync\n")


def _act_program(func: str, wide: int, zero_point: int = 0, lo: int = -128, hi: int = 127) -> str:
    return f"""
    rw weight_addr=0
    rhm host_addr=0 ub_addr=0 elems=4 x_size=64 x_stride=4 push_next
    mmc ub_addr=0 acc_addr=0 rows=64 switch=1 pop_prev
    act acc_addr=0 ub_addr=100 rows=64 func={func} wide={wide} has_params=1 params_addr=64 \
        zero_point={zero_point} lo={lo} hi={hi} push_next
    whm host_addr=1024 ub_addr=100 elems=4 wide={wide} x_size=64 pop_prev \
        x_stride={16 if wide else 4}
    halt
    """


def _act_setup(rng, params: list[np.ndarray]):
    x = rng.integers(-128, 128, (64, 4)).astype(np.int8)
    w = rng.integers(-128, 128, (4, 4)).astype(np.int8)
    host = np.zeros(4096, np.uint8)
    host[:256] = x.view(np.uint8).ravel()
    weights = np.zeros(4096, np.uint8)
    weights[:16] = w.view(np.uint8).ravel()
    record = np.stack([p.view(np.uint32) for p in params])
    weights[64 : 64 + 4 * PARAM_BYTES] = record.view(np.uint8).ravel()
    acc = run_op(Op.DOT_GENERAL, x, w, lhs_contract=(1,), rhs_contract=(0,), out_dtype=DType.I32)
    return host, weights, acc


@pytest.mark.parametrize("relu", [False, True])
def test_activate_requantizes_exactly_as_the_requantize_op(relu: bool) -> None:
    rng = np.random.default_rng(1)
    bias = rng.integers(-3000, 3000, 4).astype(np.int32)
    multiplier = rng.integers(1 << 30, (1 << 31) - 1, 4).astype(np.int32)
    shift = np.array([-1, 0, 5, 9], np.int32)
    host, weights, acc = _act_setup(rng, [bias, multiplier, shift])
    _run(
        _act_program("relu" if relu else "identity", 0, zero_point=3, lo=-100, hi=90), host, weights
    )
    expected = run_op(
        Op.REQUANTIZE,
        run_op(Op.ADD, acc, np.broadcast_to(bias, acc.shape).copy()),
        multiplier=tuple(map(int, multiplier)),
        shift=tuple(map(int, shift)),
        zero_point=3,
        min=3 if relu else -100,
        max=90,
        axis=1,
        dtype=DType.I8,
    )
    np.testing.assert_array_equal(host[1024:1280].view(np.int8).reshape(64, 4), expected)


@pytest.mark.parametrize("func", ["sigmoid", "tanh"])
def test_activate_sigmoid_tanh_equal_the_dequantize_f_quantize_chain(func: str) -> None:
    rng = np.random.default_rng(2)
    bias = rng.integers(-3000, 3000, 4).astype(np.int32)
    in_scale = np.array([1e-4, 3e-5, 2e-4, 5e-5], np.float32)
    out_scale = np.array([1 / 127, 1 / 100, 1 / 127, 1 / 64], np.float32)
    host, weights, acc = _act_setup(rng, [bias, in_scale, out_scale])
    _run(_act_program(func, 0, zero_point=0), host, weights)
    summed = run_op(Op.ADD, acc, np.broadcast_to(bias, acc.shape).copy())
    real = run_op(
        Op.DEQUANTIZE,
        summed,
        scale=tuple(map(float, in_scale)),
        zero_point=(0,),
        axis=1,
        dtype=DType.F32,
    )
    y = run_op(Op.SIGMOID if func == "sigmoid" else Op.TANH, real)
    expected = run_op(
        Op.QUANTIZE, y, scale=tuple(map(float, out_scale)), zero_point=(0,), axis=1, dtype=DType.I8
    )
    np.testing.assert_array_equal(host[1024:1280].view(np.int8).reshape(64, 4), expected)


def test_wide_relu_writes_int32() -> None:
    rng = np.random.default_rng(3)
    bias = rng.integers(-3000, 3000, 4).astype(np.int32)
    host, weights, acc = _act_setup(rng, [bias, np.zeros(4, np.int32), np.zeros(4, np.int32)])
    _run(_act_program("relu", 1), host, weights)
    out = host[1024 : 1024 + 1024].view(np.int32).reshape(64, 4)
    np.testing.assert_array_equal(out, np.maximum(acc + bias, 0))


def test_presets_are_the_documented_chips() -> None:
    v1 = PRESETS["tpu-v1"]
    assert (v1.rows, v1.cols, v1.multiplier, v1.clock_hz) == (256, 256, "int8", 700e6)
    assert round(v1.peak_ops / 1e12, 1) == 91.8
    assert round(v1.ridge) == 1349
    assert v1.unified_buffer_bytes == 24 << 20
    assert v1.accumulator_rows * 256 * 4 == 4 << 20
    v2 = PRESETS["tpu-v2-core"]
    assert (v2.rows, v2.cols, v2.multiplier) == (128, 128, "bf16")
    assert preset("tiny-8x8:rows=8,cols=4").cols == 4
    with pytest.raises(ValueError, match="unknown TPU preset"):
        preset("tpu-v9")
    with pytest.raises(ValueError, match="bad TPU override"):
        preset("tpu-v1:colour=red")


def test_compat_mode_counts_serialized_folds() -> None:
    text = """
    rw weight_addr=0 tiles=2
    rhm host_addr=0 ub_addr=0 elems=4 x_size=10 x_stride=4 push_next
    mmc ub_addr=0 acc_addr=0 rows=6 switch=1 pop_prev
    mmc ub_addr=6 acc_addr=6 rows=4
    mmc ub_addr=0 acc_addr=0 rows=10 switch=1 accumulate=1
    halt
    """
    result = _run(text, mode="compat")
    # two folds of T = 10 on 4x4: 2 * (2*4 + 4 + 10 - 2) - 1
    assert result.stats.cycles == 2 * (8 + 4 + 10 - 2) - 1
    assert sum(result.stats.breakdown.values()) == result.stats.cycles
