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

Speed: programs run hundreds of thousands of instructions on small arrays, so what every
instruction pays matters as much as the arithmetic. The rows an instruction touches are a slice
when they are one contiguous run (the usual case), which NumPy indexes as a view instead of a
gather; host transfers go through a strided view of host memory rather than an array of byte
addresses (except a store whose vectors overlap in host memory, where the order matters).
"""

from __future__ import annotations

import math
import mmap
from collections import deque

import numpy as np
from numpy.typing import DTypeLike

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


def lazy_zeros(shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray:
    """A zeroed array of the chip's size whose memory is only paid for where a run touches it.

    The unified buffer alone is 16-24 MiB, and every run makes one. np.zeros of a block that
    big often memsets all of it (glibc serves it from the heap once a block that size has been
    freed): a sixth of a 512-cube GEMM program's run time on tpu-v2-core. An anonymous mapping
    gets zero pages from the kernel on first touch instead.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < mmap.PAGESIZE:
        return np.zeros(shape, dtype)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype).reshape(shape)


Rows = slice | np.ndarray
"""Unified buffer or accumulator rows in the order an instruction touches them: one contiguous
run as a slice (start and stop set, no step), otherwise the row numbers as an int64 array."""


def row_count(rows: Rows) -> int:
    if isinstance(rows, slice):
        return int(rows.stop - rows.start)
    return int(rows.size)


def row_span(first: int, count: int) -> slice:
    return slice(first, first + count)


def mmc_rows(i: Mmc) -> tuple[Rows, Rows]:
    """(unified buffer rows read, accumulator rows written) by an MMC, in streaming order."""
    # the vectors form one run when each level's stride is the size of the level below
    ub_run = (i.rows <= 1 or i.ub_stride == 1) and (i.outer <= 1 or i.ub_outer_stride == i.rows)
    acc_run = i.outer <= 1 or i.acc_outer_stride == i.rows
    if i.length == 0 or (ub_run and acc_run):
        return row_span(i.ub_addr, i.length), row_span(i.acc_addr, i.length)
    o = np.arange(i.outer, dtype=np.int64)[:, None]
    r = np.arange(i.rows, dtype=np.int64)[None, :]
    ub: Rows = row_span(i.ub_addr, i.length)
    if not ub_run:
        ub = (i.ub_addr + o * i.ub_outer_stride + r * i.ub_stride).ravel()
    acc: Rows = row_span(i.acc_addr, i.length)
    if not acc_run:
        acc = (i.acc_addr + o * i.acc_outer_stride + r).ravel()
    return ub, acc


class Machine:
    """The chip's state: host and weight memory, unified buffer, accumulators, weight FIFO."""

    def __init__(self, config: TpuConfig, host: np.ndarray, weights: np.ndarray) -> None:
        self.config = config
        self.host = host  # contiguous uint8, the host memory the program's addresses refer to
        self.weights = weights  # uint8, the weight memory image
        self.ub = lazy_zeros((config.ub_rows, config.row_bytes), np.uint8)
        self.acc = lazy_zeros((config.accumulator_rows, config.cols), config.acc_dtype)
        self.fifo: deque[int] = deque()  # weight addresses of tiles requested, not yet in the array
        self._tiles: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}
        self._last_rows: tuple[Mmc | None, tuple[Rows, Rows]] = (None, (slice(0, 0), slice(0, 0)))
        self.tile: np.ndarray | None = None  # the weight tile in the array, as `exact`
        self.tile_used = (0, 0)  # rows and columns of the active tile with a nonzero weight
        self.handlers = {Rhm: self.rhm, Rw: self.rw, Mmc: self.mmc, Act: self.act, Whm: self.whm}
        # a sum of `rows` int8 x int8 products is below rows * 2^14 in magnitude: exact in
        # float32's 24 bits up to 1024 rows (twice BLAS's float64 speed), in float64 beyond
        self.exact = np.float32 if config.rows <= 1024 else np.float64
        # the config's derived sizes are properties; every MMC needs them
        self._input_dtype = config.input_dtype
        self._input_bytes = config.rows * config.input_dtype.itemsize  # of a UB row, per MMC
        self._ub_rows = config.ub_rows

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

    def _host_range(self, i: Rhm | Whm, first: int, last: int) -> None:
        if first < 0 or last >= self.host.size:
            raise TpuError(
                f"{i.asm()}: host memory bytes [{first}, {last + 1}) are outside the "
                f"{self.host.size} bytes of host memory"
            )

    def _host_bytes(self, i: Rhm | Whm, nbytes: int) -> np.ndarray:
        """The transfer's host bytes, shape (y_size, x_size, nbytes): a strided view of host
        memory (the fields are unsigned, so the first and last byte bound the rest)."""
        shape = (i.y_size, i.x_size, nbytes)
        if 0 in shape:
            return np.zeros(shape, np.uint8)
        last = i.host_addr + (i.y_size - 1) * i.y_stride + (i.x_size - 1) * i.x_stride + nbytes - 1
        self._host_range(i, i.host_addr, last)
        strides = (i.y_stride, i.x_stride, 1)
        return np.ndarray(shape, np.uint8, buffer=self.host, offset=i.host_addr, strides=strides)

    # --- handlers ---------------------------------------------------------------------------

    def rhm(self, i: Rhm) -> None:
        c = self.config
        dtype = c.input_dtype
        if not 0 < i.elems <= c.width:
            raise TpuError(f"{i.asm()}: a vector has 1 to {c.width} elements, not {i.elems}")
        ys, xs = i.pad_top + i.y_size + i.pad_bottom, i.pad_left + i.x_size + i.pad_right
        self._ub_range(i, i.ub_addr, ys * xs)
        nbytes = i.elems * dtype.itemsize
        data = self._host_bytes(i, nbytes)
        block = self.ub[i.ub_addr : i.ub_addr + ys * xs].reshape(ys, xs, c.row_bytes)
        # every element the data does not cover (the padding, the rest of a row) is `fill`
        if (i.pad_top, i.pad_bottom, i.pad_left, i.pad_right) != (0, 0, 0, 0):
            block[...] = self._fill_row(i.fill)
        elif nbytes < c.row_bytes:
            block[..., nbytes:] = self._fill_row(i.fill)[nbytes:]
        inner = block[i.pad_top : i.pad_top + i.y_size, i.pad_left : i.pad_left + i.x_size]
        inner[..., :nbytes] = data

    def _fill_row(self, fill: int) -> np.ndarray:
        """A unified buffer row of `fill` in the input type, as bytes."""
        return np.full(self.config.width, fill, np.float64).astype(self._input_dtype).view(np.uint8)

    def rw(self, i: Rw) -> None:
        c = self.config
        start, size = i.weight_addr, i.tiles * c.tile_bytes
        if start + size > self.weights.size:
            raise TpuError(
                f"{i.asm()}: weight bytes [{start}, {start + size}) are outside the "
                f"{self.weights.size} bytes of the weight image"
            )
        self.fifo.extend(range(start, start + size, c.tile_bytes))

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
            used_rows, used_cols = nonzero.any(axis=1), nonzero.any(axis=0)
            used = (int(np.count_nonzero(used_rows)), int(np.count_nonzero(used_cols)))
            self._tiles[offset] = (tile, used)
        return self._tiles[offset]

    def mmc_rows(self, i: Mmc) -> tuple[Rows, Rows]:
        """(unified buffer rows read, accumulator rows written), in streaming order."""
        if self._last_rows[0] is not i:  # the simulator asks first, then executes
            self._last_rows = (i, mmc_rows(i))
        return self._last_rows[1]

    def _check_mmc_rows(self, i: Mmc, ub_rows: Rows, acc_rows: Rows) -> None:
        c = self.config
        if isinstance(ub_rows, slice):
            ub_outside = ub_rows.stop > ub_rows.start and ub_rows.stop > self._ub_rows
        else:
            ub_outside = bool(ub_rows.size and (ub_rows.min() < 0 or ub_rows.max() >= c.ub_rows))
        if ub_outside:
            raise TpuError(f"{i.asm()}: reads unified buffer rows outside [0, {c.ub_rows})")
        if isinstance(acc_rows, slice):
            acc_outside = acc_rows.stop > acc_rows.start and acc_rows.stop > c.accumulator_rows
        else:
            acc_outside = bool(acc_rows.size and acc_rows.max() >= c.accumulator_rows)
        if acc_outside:
            raise TpuError(f"{i.asm()}: writes accumulator rows outside [0, {c.accumulator_rows})")
        overlapping = i.outer > 1 and i.acc_outer_stride < i.rows  # else no row can repeat
        if overlapping and _repeats(acc_rows):
            raise TpuError(f"{i.asm()}: writes the same accumulator row twice")

    def mmc(self, i: Mmc) -> None:
        if i.switch:
            self.switch_tile(i)
        tile = self.tile
        if tile is None:
            raise TpuError(f"{i.asm()}: no weight tile in the array yet (switch=1 loads one)")
        ub_rows, acc_rows = self.mmc_rows(i)
        self._check_mmc_rows(i, ub_rows, acc_rows)
        x = self.ub[ub_rows, : self._input_bytes].view(self._input_dtype)
        if self.config.multiplier == "int8":
            sums = (x.astype(self.exact) @ tile).astype(np.int32)  # exact, see __init__
            if not i.accumulate:
                self.acc[acc_rows] = sums
            elif isinstance(acc_rows, slice):
                target = self.acc[acc_rows]
                target += sums  # int32 arrays wrap modulo 2^32, as the adders do
            else:
                self.acc[acc_rows] += sums  # the rows are distinct (checked above)
        else:
            sums = column_sums_f32(x.astype(np.float32), tile.astype(np.float32, copy=False))
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
        vectors = self.ub[i.ub_addr : i.ub_addr + i.rows * k].reshape(i.rows, k * c.row_bytes)
        nbytes = c.cols * out.dtype.itemsize
        vectors[:, :nbytes] = np.ascontiguousarray(out).view(np.uint8)
        if nbytes < vectors.shape[1]:
            vectors[:, nbytes:] = 0

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
        nbytes = i.elems * itemsize
        data = rows[:, :nbytes].reshape(i.y_size, i.x_size, nbytes)
        if _disjoint(i, nbytes):
            self._host_bytes(i, nbytes)[...] = data
        else:  # vectors overlap in host memory: the later one's bytes win, in vector order
            self.host[self._host_addresses(i, nbytes)] = data

    def _host_addresses(self, i: Whm, nbytes: int) -> np.ndarray:
        """Every byte address of the transfer, shape (y_size, x_size, nbytes), in order."""
        y = np.arange(i.y_size, dtype=np.int64)[:, None, None] * i.y_stride
        x = np.arange(i.x_size, dtype=np.int64)[None, :, None] * i.x_stride
        e = np.arange(nbytes, dtype=np.int64)[None, None, :]
        addresses = i.host_addr + y + x + e
        if addresses.size:
            self._host_range(i, int(addresses.min()), int(addresses.max()))
        return addresses


def _repeats(rows: Rows) -> bool:
    """Whether some row comes twice (a run never has one twice)."""
    return not isinstance(rows, slice) and np.unique(rows).size != rows.size


def _disjoint(i: Whm, nbytes: int) -> bool:
    """Whether no two vectors of the transfer share a host byte (then the order is moot)."""
    row_extent = (i.x_size - 1) * i.x_stride + nbytes
    return (i.x_size <= 1 or i.x_stride >= nbytes) and (i.y_size <= 1 or i.y_stride >= row_extent)


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
    # the int32 adder wraps, as NumPy's int32 arithmetic does
    x = acc + params[0].view(np.int32) if params is not None else acc.copy()
    if i.wide:
        if func in (Func.SIGMOID, Func.TANH):
            raise TpuError(f"{i.asm()}: sigmoid and tanh need an int8 output (wide=0)")
        return np.maximum(x, 0) if func is Func.RELU else x
    if func in (Func.SIGMOID, Func.TANH):
        if params is None:
            raise TpuError(f"{i.asm()}: sigmoid and tanh need input and output scales (params)")
        return _float_func_int8(i, func, x, params)
    lo = max(max(i.lo, i.zero_point) if func is Func.RELU else i.lo, -128)
    hi = min(i.hi, 127)
    if params is None:  # clamp(x + zero_point) as clamp(x) + zero_point: no int64 needed
        return (_clamp(x, lo - i.zero_point, hi - i.zero_point) + i.zero_point).astype(np.int8)
    multiplier, shift = params[1].view(np.int32).astype(np.int64), params[2].view(np.int32)
    left = np.maximum(-shift, 0).astype(np.int64)
    y = _clamp(x.astype(np.int64) << left, INT32_MIN, INT32_MAX)
    y = rounding_shift_right(rounding_high_mul(y, multiplier), np.maximum(shift, 0))
    return _clamp(y + i.zero_point, lo, hi).astype(np.int8)


def _clamp(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """np.clip for integers, without its wrapper (which checks the bounds against the dtype's
    range on every call and costs more than the clamp on an activation's few rows)."""
    clamped: np.ndarray = np.minimum(np.maximum(x, lo), hi)
    return clamped


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
