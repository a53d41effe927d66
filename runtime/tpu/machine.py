"""What each instruction does to the chip's memories: exact, one handler per opcode.

The handlers work a whole instruction at a time with NumPy. An int8 matrix multiply is done
in floating point on BLAS: a tile's sum of int8 x int8 products is below rows x 2^14 in
magnitude, exact in float32 for up to 1024 rows (float64 beyond), so it is the same integer
the systolic array computes; adding it to the accumulator wraps modulo 2^32 as the adders do.
A bf16 multiply follows the array's documented order: each column's partial sum flows down
the rows, adding one exact bf16 x bf16 product (exact in f32) per row with f32 rounding; the
tile's sum is then added to the accumulator (docs/tpu.md).

The activation unit uses the reference interpreter's own definitions of requantize, quantize,
dequantize, sigmoid and tanh, so an ACT computes exactly what the graph ops it replaces do.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ir.attrs import Attrs
from ir.dtypes import DType
from ir.ops import Op
from ir.types import TensorType
from runtime.reference import REFERENCE
from runtime.reference_quant import INT32_MAX, INT32_MIN, rounding_high_mul, rounding_shift_right
from runtime.tpu.config import TpuConfig
from runtime.tpu.isa import Act, Func, Instruction, Mmc, Rhm, Rw, Whm

PARAM_BYTES = 12  # per output column: bias, multiplier (or input scale), shift (or output scale)


class TpuError(RuntimeError):
    """A program that the chip cannot run: out-of-range addresses, deadlock, a race."""


_NONE = np.zeros(0, np.int64)


class Machine:
    """The chip's state: host and weight memory, unified buffer, accumulators, weight FIFO."""

    def __init__(self, config: TpuConfig, host: np.ndarray, weights: np.ndarray) -> None:
        self.config = config
        self.host = host  # uint8, the host memory the program's addresses refer to
        self.weights = weights  # uint8, the weight memory image
        self.ub = np.zeros((config.ub_rows, config.row_bytes), np.uint8)
        self.acc = np.zeros((config.accumulator_rows, config.cols), config.acc_dtype)
        self.fifo: deque[int] = deque()  # weight addresses of tiles requested, not yet in the array
        self._tiles: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}
        self._last_rows: tuple[Mmc | None, tuple[np.ndarray, np.ndarray]] = (None, (_NONE, _NONE))
        self.tile: np.ndarray | None = None  # the weight tile in the array, as float64
        self.tile_used = (0, 0)  # rows and columns of the active tile with a nonzero weight
        self.handlers = {Rhm: self.rhm, Rw: self.rw, Mmc: self.mmc, Act: self.act, Whm: self.whm}
        # a sum of `rows` int8 x int8 products is below rows * 2^14 in magnitude: exact in
        # float32's 24 bits up to 1024 rows (twice BLAS's float64 speed), in float64 beyond
        self.exact = np.float32 if config.rows <= 1024 else np.float64

    def execute(self, i: Instruction) -> None:
        handler = self.handlers.get(type(i))
        if handler is not None:
            handler(i)  # type: ignore[operator]

    # --- addressing -------------------------------------------------------------------------

    def vector_rows(self, elems: int, itemsize: int) -> int:
        """Unified buffer rows one vector of `elems` values occupies (ACT output vectors hold
        `cols` values; a WHM reads vectors laid out that way)."""
        return max(1, -(-elems * itemsize // self.config.row_bytes))

    def _ub_range(self, i: Instruction, first: int, count: int) -> None:
        if first < 0 or first + count > self.config.ub_rows:
            raise TpuError(
                f"{i.asm()}: unified buffer rows [{first}, {first + count}) are outside "
                f"[0, {self.config.ub_rows})"
            )

    def _memory_range(self, i: Instruction, what: str, addresses: np.ndarray, size: int) -> None:
        if addresses.size and (addresses.min() < 0 or addresses.max() >= size):
            raise TpuError(
                f"{i.asm()}: {what} bytes [{addresses.min()}, {addresses.max() + 1}) "
                f"are outside the {size} bytes of {what}"
            )

    def _host_bytes(self, i: Rhm | Whm, elems: int, itemsize: int) -> np.ndarray:
        """Byte addresses, shape (y_size, x_size, elems * itemsize)."""
        y = np.arange(i.y_size, dtype=np.int64)[:, None, None] * i.y_stride
        x = np.arange(i.x_size, dtype=np.int64)[None, :, None] * i.x_stride
        e = np.arange(elems * itemsize, dtype=np.int64)[None, None, :]
        addresses = i.host_addr + y + x + e
        self._memory_range(i, "host memory", addresses, self.host.size)
        return addresses

    # --- handlers ---------------------------------------------------------------------------

    def rhm(self, i: Rhm) -> None:
        c = self.config
        dtype = c.input_dtype
        if not 0 < i.elems <= c.width:
            raise TpuError(f"{i.asm()}: a vector has 1 to {c.width} elements, not {i.elems}")
        ys, xs = i.pad_top + i.y_size + i.pad_bottom, i.pad_left + i.x_size + i.pad_right
        self._ub_range(i, i.ub_addr, ys * xs)
        block = np.full((ys, xs, c.width), i.fill, np.float64).astype(dtype)
        data = self.host[self._host_bytes(i, i.elems, dtype.itemsize)]
        inner = block[i.pad_top : i.pad_top + i.y_size, i.pad_left : i.pad_left + i.x_size]
        inner[..., : i.elems] = data.view(dtype).reshape(i.y_size, i.x_size, i.elems)
        self.ub[i.ub_addr : i.ub_addr + ys * xs] = block.reshape(ys * xs, c.width).view(np.uint8)

    def rw(self, i: Rw) -> None:
        c = self.config
        start, size = i.weight_addr, i.tiles * c.tile_bytes
        if start + size > self.weights.size:
            raise TpuError(
                f"{i.asm()}: weight bytes [{start}, {start + size}) are outside the "
                f"{self.weights.size} bytes of the weight image"
            )
        for offset in range(start, start + size, c.tile_bytes):
            self.fifo.append(offset)

    def switch_tile(self, i: Mmc) -> None:
        if not self.fifo:
            raise TpuError(f"{i.asm()}: the weight FIFO is empty")
        self.tile, self.tile_used = self._tile(self.fifo.popleft())

    def _tile(self, offset: int) -> tuple[np.ndarray, tuple[int, int]]:
        """The weight tile at `offset` in the multiply's type, and its used rows and columns;
        converted once per run (weight memory is read-only), as programs reuse tiles."""
        if offset not in self._tiles:
            c = self.config
            raw = self.weights[offset : offset + c.tile_bytes].view(c.input_dtype)
            tile = raw.reshape(c.rows, c.cols).astype(self.exact)
            nonzero = tile != 0
            used = (int(nonzero.any(axis=1).sum()), int(nonzero.any(axis=0).sum()))
            self._tiles[offset] = (tile, used)
        return self._tiles[offset]

    def mmc_rows(self, i: Mmc) -> tuple[np.ndarray, np.ndarray]:
        """(unified buffer rows read, accumulator rows written), in streaming order."""
        if self._last_rows[0] is not i:  # the simulator asks first, then executes
            o = np.arange(i.outer, dtype=np.int64)[:, None]
            r = np.arange(i.rows, dtype=np.int64)[None, :]
            ub = (i.ub_addr + o * i.ub_outer_stride + r * i.ub_stride).ravel()
            acc = (i.acc_addr + o * i.acc_outer_stride + r).ravel()
            self._last_rows = (i, (ub, acc))
        return self._last_rows[1]

    def mmc(self, i: Mmc) -> None:
        c = self.config
        if i.switch:
            self.switch_tile(i)
        if self.tile is None:
            raise TpuError(f"{i.asm()}: no weight tile in the array yet (switch=1 loads one)")
        ub_rows, acc_rows = self.mmc_rows(i)
        if ub_rows.size and (ub_rows.min() < 0 or ub_rows.max() >= c.ub_rows):
            raise TpuError(f"{i.asm()}: reads unified buffer rows outside [0, {c.ub_rows})")
        if acc_rows.size and acc_rows.max() >= c.accumulator_rows:
            raise TpuError(f"{i.asm()}: writes accumulator rows outside [0, {c.accumulator_rows})")
        overlapping = i.outer > 1 and i.acc_outer_stride < i.rows
        if overlapping and np.unique(acc_rows).size != acc_rows.size:
            raise TpuError(f"{i.asm()}: writes the same accumulator row twice")
        x = self.ub[ub_rows, : c.rows * c.input_dtype.itemsize].view(c.input_dtype)
        if c.multiplier == "int8":
            sums = (x.astype(self.exact) @ self.tile).astype(np.int32)  # exact, see __init__
            if i.accumulate:
                sums += self.acc[acc_rows]  # int32 arrays wrap modulo 2^32, as the adders do
            self.acc[acc_rows] = sums
        else:
            sums = column_sums_f32(x.astype(np.float32), self.tile.astype(np.float32))
            self.acc[acc_rows] = self.acc[acc_rows] + sums if i.accumulate else sums

    def act(self, i: Act) -> None:
        c = self.config
        if i.acc_addr + i.rows > c.accumulator_rows:
            raise TpuError(f"{i.asm()}: reads accumulator rows outside [0, {c.accumulator_rows})")
        acc = self.acc[i.acc_addr : i.acc_addr + i.rows]
        params = self._params(i) if i.has_params else None
        out = activate(c, i, acc, params)
        k = self.vector_rows(c.cols, out.dtype.itemsize)
        self._ub_range(i, i.ub_addr, i.rows * k)
        rows = np.zeros((i.rows, k * c.row_bytes), np.uint8)
        rows[:, : c.cols * out.dtype.itemsize] = np.ascontiguousarray(out).view(np.uint8)
        self.ub[i.ub_addr : i.ub_addr + i.rows * k] = rows.reshape(i.rows * k, c.row_bytes)

    def _params(self, i: Act) -> np.ndarray:
        size = self.config.cols * PARAM_BYTES
        if i.params_addr + size > self.weights.size:
            raise TpuError(
                f"{i.asm()}: parameters [{i.params_addr}, {i.params_addr + size}) are "
                f"outside the {self.weights.size} bytes of the weight image"
            )
        record = self.weights[i.params_addr : i.params_addr + size]
        return record.view(np.uint32).reshape(3, self.config.cols)

    def whm(self, i: Whm) -> None:
        c = self.config
        itemsize = c.acc_dtype.itemsize if i.wide else c.input_dtype.itemsize
        k = self.vector_rows(c.cols, itemsize)  # vectors as an ACT lays them out
        count = i.y_size * i.x_size
        self._ub_range(i, i.ub_addr, count * k)
        rows = self.ub[i.ub_addr : i.ub_addr + count * k].reshape(count, k * c.row_bytes)
        addresses = self._host_bytes(i, i.elems, itemsize)
        self.host[addresses] = rows[:, : i.elems * itemsize].reshape(addresses.shape)


def column_sums_f32(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """sum_k x[t, k] * w[k, c] in f32, k in order, one rounding per addition (the array's order)."""
    sums = np.zeros((x.shape[0], w.shape[1]), np.float32)
    for k in range(w.shape[0]):
        sums += x[:, k, None] * w[None, k, :]  # the product of two bf16 values is exact in f32
    return sums


def activate(c: TpuConfig, i: Act, acc: np.ndarray, params: np.ndarray | None) -> np.ndarray:
    """The activation unit: bias, function, and the conversion to the output type."""
    func = Func(i.func)
    if c.multiplier == "bf16":
        x = acc + params[0].view(np.float32) if params is not None else acc.copy()
        if func is not Func.IDENTITY:
            x = _reference(_FLOAT_FUNC[func], Attrs(), [x], DType.F32)
        if i.wide:
            return x
        return _reference(Op.CONVERT, Attrs({"dtype": DType.BF16}), [x], DType.BF16)
    wide = acc.astype(np.int64) + (params[0].view(np.int32) if params is not None else 0)
    x = ((wide - INT32_MIN) % (1 << 32) + INT32_MIN).astype(np.int32)  # the int32 adder wraps
    if i.wide:
        if func in (Func.SIGMOID, Func.TANH):
            raise TpuError(f"{i.asm()}: sigmoid and tanh need an int8 output (wide=0)")
        return np.maximum(x, 0) if func is Func.RELU else x
    if func in (Func.SIGMOID, Func.TANH):
        if params is None:
            raise TpuError(f"{i.asm()}: sigmoid and tanh need input and output scales (params)")
        return _float_func_int8(i, func, x, params)
    y = x.astype(np.int64)
    if params is not None:
        multiplier, shift = params[1].view(np.int32).astype(np.int64), params[2].view(np.int32)
        left = np.maximum(-shift, 0).astype(np.int64)
        y = np.clip(y << left, INT32_MIN, INT32_MAX)
        y = rounding_shift_right(rounding_high_mul(y, multiplier), np.maximum(shift, 0))
    lo = max(i.lo, i.zero_point) if func is Func.RELU else i.lo
    return np.clip(y + i.zero_point, max(lo, -128), min(i.hi, 127)).astype(np.int8)


_FLOAT_FUNC = {Func.RELU: Op.RELU, Func.SIGMOID: Op.SIGMOID, Func.TANH: Op.TANH}


def _reference(op: Op, attrs: Attrs, args: list[np.ndarray], dtype: DType) -> np.ndarray:
    return np.asarray(REFERENCE[op](attrs, args, TensorType(args[0].shape, dtype)))


def _float_func_int8(i: Act, func: Func, x: np.ndarray, params: np.ndarray) -> np.ndarray:
    """dequantize (input scale) -> sigmoid/tanh in f32 -> quantize (output scale), per column."""
    in_scale = tuple(float(s) for s in params[1].view(np.float32))
    out_scale = tuple(float(s) for s in params[2].view(np.float32))
    real = _reference(
        Op.DEQUANTIZE,
        Attrs({"scale": in_scale, "zero_point": (0,), "axis": 1, "dtype": DType.F32}),
        [x],
        DType.F32,
    )
    y = _reference(_FLOAT_FUNC[func], Attrs(), [real], DType.F32)
    q = _reference(
        Op.QUANTIZE,
        Attrs({"scale": out_scale, "zero_point": (i.zero_point,), "axis": 1, "dtype": DType.I8}),
        [y],
        DType.I8,
    )
    return np.asarray(np.clip(q, max(i.lo, -128), min(i.hi, 127)), np.int8)
