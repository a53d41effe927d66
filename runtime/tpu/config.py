"""The simulated chip's parameters, and the presets users name with `--tpu NAME`.

Everything the simulator and the code generator need to know about a chip is here: the
systolic array's shape, the on-chip memories, the clock and the two off-chip links. Sizes are
bytes; bandwidths are bytes per second and become bytes per cycle at the clock.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import ml_dtypes
import numpy as np

MiB = 1 << 20


@dataclass(frozen=True)
class TpuConfig:
    """A weight-stationary systolic TPU: `rows` x `cols` multiply-accumulate cells.

    Weights are tiles of rows x cols values; an input vector has `rows` values (one per array
    row, the contraction), an output vector `cols` values (one per array column). A unified
    buffer row holds one input or output vector: max(rows, cols) elements of the input type.

    The derived sizes are cached properties: the simulator reads them for every instruction.
    """

    name: str
    rows: int
    cols: int
    multiplier: str = "int8"  # "int8" (int32 accumulation) or "bf16" (f32 accumulation)
    clock_hz: float = 700e6
    unified_buffer_bytes: int = 24 * MiB
    accumulator_rows: int = 4096  # vectors of `cols` 32-bit accumulators
    weight_fifo_tiles: int = 4
    weight_bandwidth: float = 34e9  # weight memory -> weight FIFO, bytes/s
    host_bandwidth: float = 14e9  # host memory <-> unified buffer, bytes/s (each way)
    weight_memory_bytes: int = 8 << 30

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"{self.name}: the array needs at least one row and one column")
        if self.multiplier not in ("int8", "bf16"):
            raise ValueError(f"{self.name}: multiplier must be int8 or bf16, not {self.multiplier}")
        if self.accumulator_rows < 1 or self.weight_fifo_tiles < 1 or self.ub_rows < 1:
            raise ValueError(f"{self.name}: memories must hold at least one vector or tile")

    @functools.cached_property
    def input_dtype(self) -> np.dtype:
        return np.dtype(np.int8) if self.multiplier == "int8" else np.dtype(ml_dtypes.bfloat16)

    @functools.cached_property
    def acc_dtype(self) -> np.dtype:
        return np.dtype(np.int32) if self.multiplier == "int8" else np.dtype(np.float32)

    @functools.cached_property
    def width(self) -> int:
        """Elements per unified buffer row."""
        return max(self.rows, self.cols)

    @functools.cached_property
    def row_bytes(self) -> int:
        return self.width * self.input_dtype.itemsize

    @functools.cached_property
    def ub_rows(self) -> int:
        return self.unified_buffer_bytes // self.row_bytes

    @functools.cached_property
    def tile_bytes(self) -> int:
        return self.rows * self.cols * self.input_dtype.itemsize

    @property
    def weight_bytes_per_cycle(self) -> float:
        return self.weight_bandwidth / self.clock_hz

    @property
    def host_bytes_per_cycle(self) -> float:
        return self.host_bandwidth / self.clock_hz

    @property
    def peak_ops(self) -> float:
        """Multiply-adds count as two operations, as the TPU paper counts them."""
        return 2.0 * self.rows * self.cols * self.clock_hz

    @property
    def ridge(self) -> float:
        """Multiply-adds per weight byte where the weight link stops being the limit.

        The TPU paper's "ops per weight byte" counts multiply-adds (its Table 1 gives the batch
        size for the MLPs), so its ridge of 1350 is this number for `tpu-v1`.
        """
        return self.peak_ops / 2 / self.weight_bandwidth

    def replace(self, **changes: object) -> TpuConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


PRESETS: dict[str, TpuConfig] = {
    # Jouppi et al., ISCA 2017: 92 TOPS peak, 28 MiB on chip, DDR3 weights at 34 GB/s
    "tpu-v1": TpuConfig("tpu-v1", 256, 256),
    # one TPUv2 core: bf16 products, f32 sums; ~700 GB/s HBM per chip, half per core
    "tpu-v2-core": TpuConfig(
        "tpu-v2-core",
        128,
        128,
        multiplier="bf16",
        unified_buffer_bytes=16 * MiB,
        accumulator_rows=4096,
        weight_bandwidth=350e9,
        host_bandwidth=14e9,
    ),
    # small arrays for tests and for reading traces by eye
    "tiny-4x4": TpuConfig("tiny-4x4", 4, 4, unified_buffer_bytes=1 * MiB, accumulator_rows=1024),
    "tiny-8x8": TpuConfig("tiny-8x8", 8, 8, unified_buffer_bytes=1 * MiB, accumulator_rows=1024),
}


def preset(spec: str) -> TpuConfig:
    """A preset by name, with optional overrides: `tpu-v1`, `tiny-8x8:rows=8,cols=4`."""
    name, _, overrides = spec.partition(":")
    if name not in PRESETS:
        raise ValueError(f"unknown TPU preset {name!r}; presets: {', '.join(PRESETS)}")
    config = PRESETS[name]
    if not overrides:
        return config
    changes: dict[str, object] = {}
    fields = {f.name: f.type for f in dataclasses.fields(TpuConfig)}
    for item in overrides.split(","):
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in fields or key == "name":
            raise ValueError(f"bad TPU override {item!r}; fields: {', '.join(list(fields)[1:])}")
        changes[key] = value if key == "multiplier" else _number(value)
    return config.replace(name=spec, **changes)


def _number(text: str) -> int | float:
    value = float(text)
    exact_int = value.is_integer() and not any(ch in text.lower() for ch in "e.")
    return int(value) if exact_int else value
