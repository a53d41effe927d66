"""Matrix multiplies and convolutions tiled onto the systolic array.

Both are weight-stationary: a weight tile holds `rows` contraction values x `cols` output
columns; input vectors stream through it. A GEMM A[M, K] @ W[K, N] tiles K by rows and N by
cols; a convolution is the same with the contraction running over (tap, input-channel chunk):
for tap (i, j), the input vectors are the pixels the tap sees, which the MMC's two-level
address pattern picks straight out of the padded image in the unified buffer (row stride =
horizontal stride, outer stride = vertical stride x padded width), so nothing like im2col is
ever built. The padding is written by the load (RHM pads on chip), costing no host traffic.

Weights and the per-column epilogue parameters (bias, requantization or scales) go into the
weight image; `Epilogue` is what the activation unit applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from codegen.tpu.stream import Chunk, Regions, TilingError, Unit, build_stream, check_fits
from runtime.tpu.config import TpuConfig
from runtime.tpu.isa import Act, Func, Instruction, Mmc, Rhm, Whm
from runtime.tpu.program import HostTensor


@dataclass(frozen=True)
class Epilogue:
    """What the activation unit does to each accumulator row, per output column."""

    bias: np.ndarray | None = None  # int32 (int8 chip) or f32 (bf16 chip), one per column
    multiplier: np.ndarray | None = None  # int32: requantize (int8 out), with `shift`
    shift: np.ndarray | None = None
    in_scale: np.ndarray | None = None  # f32: sigmoid/tanh on int8 (dequantize, f, quantize)
    out_scale: np.ndarray | None = None
    func: Func = Func.IDENTITY
    wide: bool = False  # write the accumulator type (int32 / f32)
    zero_point: int = 0
    lo: int = -128
    hi: int = 127

    def has_params(self) -> bool:
        return any(p is not None for p in (self.bias, self.multiplier, self.in_scale))

    def params(self, c: TpuConfig, n0: int, count: int) -> bytes:
        """The columns [n0, n0 + count) as the ACT's parameter records, padded to `cols`."""
        record = np.zeros((3, c.cols), np.uint32)
        acc = c.acc_dtype
        for row, values, dtype in (
            (0, self.bias, acc),
            (
                1,
                self.multiplier if self.multiplier is not None else self.in_scale,
                np.int32 if self.multiplier is not None else np.float32,
            ),
            (
                2,
                self.shift if self.shift is not None else self.out_scale,
                np.int32 if self.shift is not None else np.float32,
            ),
        ):
            if values is not None:
                record[row, :count] = np.asarray(values, dtype)[n0 : n0 + count].view(np.uint32)
        if self.multiplier is None and self.in_scale is None and c.multiplier == "int8":
            record[1, :count] = 1 << 30  # identity requantization: x * 2^30 / 2^31 * 2 = x
            record[2, :count] = np.uint32(np.int32(-1).view(np.uint32))
        return record.tobytes()

    def act(self, rows: int, params_addr: int) -> Act:
        return Act(
            acc_addr=0,
            ub_addr=0,
            rows=rows,
            func=self.func,
            wide=self.wide,
            has_params=self.has_params(),
            params_addr=params_addr,
            zero_point=self.zero_point,
            lo=self.lo,
            hi=self.hi,
        )


class WeightImage:
    """The weight memory, built tile by tile."""

    def __init__(self, c: TpuConfig) -> None:
        self.c = c
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> int:
        address = self.size
        self.parts.append(data)
        self.size += len(data)
        return address

    def tiles(self, blocks: list[np.ndarray]) -> int:
        """Zero-padded rows x cols tiles, consecutive; the address of the first."""
        c = self.c
        out = np.zeros((len(blocks), c.rows, c.cols), c.input_dtype)
        for t, block in enumerate(blocks):
            out[t, : block.shape[0], : block.shape[1]] = block
        return self.add(out.tobytes())

    def image(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.parts), np.uint8).copy()


def _out_dtype(c: TpuConfig, e: Epilogue) -> np.dtype:
    return c.acc_dtype if e.wide else c.input_dtype


def _out_rows(c: TpuConfig, e: Epilogue, vectors: int) -> int:
    per_vector = -(-c.cols * _out_dtype(c, e).itemsize // c.row_bytes)
    return vectors * per_vector


def _row_loads(c: TpuConfig, a: HostTensor, m0: int, rows: int) -> list[Rhm]:
    """Rows [m0, m0 + rows) of a[M, K] into the unified buffer, one RHM per K tile of `rows`."""
    k, isz = a.shape[1], c.input_dtype.itemsize
    return [
        Rhm(
            host_addr=a.offset + (m0 * k + k0) * isz,
            ub_addr=kt * rows,
            elems=min(c.rows, k - k0),
            x_size=rows,
            x_stride=k * isz,
        )
        for kt, k0 in enumerate(range(0, k, c.rows))
    ]


def _weight_columns(
    c: TpuConfig, image: WeightImage, w: np.ndarray, e: Epilogue
) -> list[tuple[int, int]]:
    """Per column tile of w[K, N]: (address of its K tiles, address of its ACT parameters)."""
    k, n = w.shape
    columns = []
    for n0 in range(0, n, c.cols):
        width = min(c.cols, n - n0)
        address = image.tiles([w[k0 : k0 + c.rows, n0 : n0 + width] for k0 in range(0, k, c.rows)])
        columns.append((address, image.add(e.params(c, n0, width)) if e.has_params() else 0))
    return columns


def _mmcs(k_tiles: int, rows: int) -> list[Mmc]:
    """One weight tile per K tile, summed into the accumulators."""
    return [
        Mmc(ub_addr=kt * rows, acc_addr=0, rows=rows, switch=True, accumulate=kt > 0)
        for kt in range(k_tiles)
    ]


def _store(c: TpuConfig, out: HostTensor, m0: int, rows: int, n0: int, e: Epilogue) -> Whm:
    """The ACT's output vectors for out[m0 : m0 + rows, n0 : n0 + cols] back to the host."""
    n, osz = out.shape[1], _out_dtype(c, e).itemsize
    return Whm(
        host_addr=out.offset + (m0 * n + n0) * osz,
        ub_addr=0,
        elems=min(c.cols, n - n0),
        wide=e.wide,
        x_size=rows,
        x_stride=n * osz,
    )


def gemm(
    c: TpuConfig, image: WeightImage, a: HostTensor, w: np.ndarray, out: HostTensor, e: Epilogue
) -> list[Instruction]:
    """out[M, N] = epilogue(a[M, K] @ w[K, N]); `a` and `out` row-major in host memory."""
    (m, k), n = a.shape, w.shape[1]
    R, C = c.rows, c.cols
    osz = _out_dtype(c, e).itemsize
    k_tiles = math.ceil(k / R)
    if m == 0 or n == 0:
        return []
    if k == 0:
        raise TilingError("a contraction over zero elements has no work for the array")
    per_row = 2 * k_tiles + 2 * _out_rows(c, e, 1)
    cap = min(m, c.accumulator_rows // 2, c.ub_rows // per_row)
    if cap < 1:
        raise TilingError(
            f"K = {k} needs {per_row} unified buffer rows per input row; the chip has {c.ub_rows}"
        )
    mc = min(_row_candidates(cap), key=lambda rows: (_gemm_cost(c, m, k, n, rows, osz), -rows))
    columns = _weight_columns(c, image, w, e)
    chunks = []
    for m0 in range(0, m, mc):
        rows = min(mc, m - m0)
        chunk = Chunk(_row_loads(c, a, m0, rows))
        for nt, (address, params) in enumerate(columns):
            whm = _store(c, out, m0, rows, nt * C, e)
            act = e.act(rows, params)
            chunk.units.append(
                Unit(address, k_tiles, _mmcs(k_tiles, rows), act, whm, list(range(k_tiles)))
            )
        chunks.append(chunk)
    regions = Regions(k_tiles * mc, _out_rows(c, e, mc), mc)
    return build_stream(c, chunks, regions)[:-1]


def _row_candidates(cap: int) -> list[int]:
    sizes = {cap}
    size = 16
    while size < cap:
        sizes.add(size)
        size *= 2
    return sorted(sizes)


def _gemm_cost(c: TpuConfig, m: int, k: int, n: int, rows: int, out_itemsize: int) -> float:
    """Estimated cycles with `rows` rows per chunk: chunks pipeline load, compute and store,
    and each chunk fetches every weight tile again, so small chunks trade weight traffic for
    overlap. The codegen picks the cheapest; the simulator gives the real count."""
    k_tiles, n_tiles = math.ceil(k / c.rows), math.ceil(n / c.cols)
    tile = c.tile_bytes / c.weight_bytes_per_cycle
    load = rows * k * c.input_dtype.itemsize / c.host_bytes_per_cycle
    store = rows * n * out_itemsize / c.host_bytes_per_cycle
    compute = n_tiles * k_tiles * max(rows, tile, c.rows)  # a tile shifts in over `rows` cycles
    steady = max(load, compute, store)
    return load / k_tiles + math.ceil(m / rows) * steady + store / n_tiles + c.rows + c.cols


def gemm_chain(
    c: TpuConfig,
    image: WeightImage,
    a: HostTensor,
    layers: list[tuple[np.ndarray, Epilogue]],
    out: HostTensor,
) -> list[Instruction]:
    """out = layer_L(... layer_1(a)), each layer epilogue(x @ w), activations kept on chip.

    As the TPU runs an MLP: the inputs are loaded once per chunk of rows, each layer's output
    stays in the unified buffer as the next layer's input (an output vector of `cols` values is
    an input vector of `rows` values on a square array: tile n of one layer is K tile n of the
    next), and only the last layer is stored. Layers alternate between two scratch regions.
    """
    m = a.shape[0]
    if c.rows != c.cols:
        raise TilingError("chained layers need a square array (outputs become inputs)")
    if any(e.wide for _, e in layers[:-1]):
        raise TilingError("only the last chained layer may write the accumulator type")
    if m == 0:
        return []
    size = c.rows
    tiles = [(math.ceil(w.shape[0] / size), math.ceil(w.shape[1] / size)) for w, _ in layers]
    last = layers[-1][1]
    widest = max((nt for _, nt in tiles[:-1]), default=0)

    def regions(rows: int) -> Regions:
        return Regions(tiles[0][0] * rows, _out_rows(c, last, rows), rows, widest * rows)

    mc = min(m, c.accumulator_rows // 2)
    while mc > 1 and not _fits(c, regions(mc)):
        mc = max(1, mc // 2)
    weights = [_weight_columns(c, image, w, e) for w, e in layers]
    chunks = []
    for m0 in range(0, m, mc):
        rows = min(mc, m - m0)
        chunk = Chunk(_row_loads(c, a, m0, rows))
        for li, ((_, e), (kt, nt)) in enumerate(zip(layers, tiles, strict=True)):
            final = li == len(layers) - 1
            for n in range(nt):
                act = e.act(rows, weights[li][n][1])
                whm = None
                if final:
                    whm = _store(c, out, m0, rows, n * size, e)
                else:
                    act = act.replace(ub_addr=n * rows)
                chunk.units.append(Unit(
                    weights[li][n][0], kt, _mmcs(kt, rows), act, whm,
                    list(range(kt)) if li == 0 else [],
                    source="input" if li == 0 else f"scratch{(li - 1) % 2}",
                    dest="output" if final else f"scratch{li % 2}",
                ))  # fmt: skip
        chunks.append(chunk)
    return build_stream(c, chunks, regions(mc))[:-1]


@dataclass(frozen=True)
class ConvShape:
    batch: int
    height: int
    width: int
    cin: int
    kh: int
    kw: int
    cout: int
    out_h: int
    out_w: int
    strides: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]
    groups: int = 1


def conv2d(
    c: TpuConfig,
    image: WeightImage,
    x: HostTensor,
    w: np.ndarray,
    out: HostTensor,
    s: ConvShape,
    e: Epilogue,
) -> list[Instruction]:
    """out = epilogue(conv2d(x, w)), NHWC x HWIO -> NHWC, in host memory."""
    if s.batch * s.out_h * s.out_w * s.cout == 0:
        return []
    if s.cin * s.kh * s.kw == 0:
        raise TilingError("a convolution over zero elements has no work for the array")
    if max(*s.padding[0], *s.padding[1]) > 255:
        raise TilingError("padding above 255 does not fit the load instruction's pad fields")
    return _Conv(c, x, out, s, e).emit(image, w)


class _Conv:
    """One chunk per (image, group, band of output rows); one unit per output-column tile."""

    def __init__(
        self, c: TpuConfig, x: HostTensor, out: HostTensor, s: ConvShape, e: Epilogue
    ) -> None:
        self.c, self.x, self.out, self.s, self.e = c, x, out, s, e
        self.cin_g, self.cout_g = s.cin // s.groups, s.cout // s.groups
        self.c_chunks = math.ceil(self.cin_g / c.rows)
        self.n_tiles = math.ceil(self.cout_g / c.cols)
        self.wp = s.padding[1][0] + s.width + s.padding[1][1]  # padded width
        self.taps = [
            (i, j, cc) for i in range(s.kh) for j in range(s.kw) for cc in range(self.c_chunks)
        ]

    def window(self, rows: int) -> int:
        """Padded input rows that `rows` output rows read."""
        return (rows - 1) * self.s.strides[0] + (self.s.kh - 1) * self.s.dilation[0] + 1

    def regions(self, rows: int) -> Regions:
        t = rows * self.s.out_w
        return Regions(self.c_chunks * self.window(rows) * self.wp, _out_rows(self.c, self.e, t), t)

    def emit(self, image: WeightImage, w: np.ndarray) -> list[Instruction]:
        s = self.s
        band = s.out_h
        while band > 1 and not _fits(self.c, self.regions(band)):
            band = max(1, band // 2) if band > 8 else band - 1
        check_fits(self.c, self.regions(band))
        weights = self._weights(image, w)
        chunks = [
            self._chunk(b, g, o0, min(band, s.out_h - o0), weights)
            for b in range(s.batch)
            for g in range(s.groups)
            for o0 in range(0, s.out_h, band)
        ]
        return build_stream(self.c, chunks, self.regions(band))[:-1]

    def _weights(self, image: WeightImage, w: np.ndarray) -> dict[tuple[int, int], tuple[int, int]]:
        """(tiles address, parameters address) per (group, column tile)."""
        c, at = self.c, {}
        for g in range(self.s.groups):
            for nt in range(self.n_tiles):
                n0, width = g * self.cout_g + nt * c.cols, min(c.cols, self.cout_g - nt * c.cols)
                blocks = [
                    w[i, j, cc * c.rows : (cc + 1) * c.rows, n0 : n0 + width]
                    for i, j, cc in self.taps
                ]
                params = image.add(self.e.params(c, n0, width)) if self.e.has_params() else 0
                at[g, nt] = (image.tiles(blocks), params)
        return at

    def _loads(self, b: int, g: int, o0: int, rows: int) -> list[Rhm]:
        s, c, isz = self.s, self.c, self.c.input_dtype.itemsize
        win = self.window(rows)
        top = o0 * s.strides[0] - s.padding[0][0]
        pad_top, pad_bottom = max(0, -top), max(0, top + win - s.height)
        y_size = max(0, win - pad_top - pad_bottom)
        if y_size == 0:  # the window lies wholly in the padding
            pad_top, pad_bottom = win, 0
        pixel = (b * s.height + max(0, top)) * s.width
        return [
            Rhm(
                host_addr=self.x.offset + (pixel * s.cin + g * self.cin_g + cc * c.rows) * isz,
                ub_addr=cc * win * self.wp,
                elems=min(c.rows, self.cin_g - cc * c.rows),
                x_size=s.width,
                y_size=y_size,
                x_stride=s.cin * isz,
                y_stride=s.width * s.cin * isz,
                pad_top=pad_top,
                pad_bottom=pad_bottom,
                pad_left=s.padding[1][0],
                pad_right=s.padding[1][1],
            )
            for cc in range(self.c_chunks)
        ]

    def _chunk(
        self, b: int, g: int, o0: int, rows: int, weights: dict[tuple[int, int], tuple[int, int]]
    ) -> Chunk:
        s, c, e = self.s, self.c, self.e
        (sh, sw), (dh, dw) = s.strides, s.dilation
        osz, win, t = _out_dtype(c, e).itemsize, self.window(rows), rows * s.out_w
        chunk = Chunk(self._loads(b, g, o0, rows))
        mmcs = [
            Mmc(
                ub_addr=cc * win * self.wp + i * dh * self.wp + j * dw,
                acc_addr=0,
                rows=s.out_w,
                outer=rows,
                ub_stride=sw,
                ub_outer_stride=sh * self.wp,
                acc_outer_stride=s.out_w,
                switch=True,
                accumulate=n > 0,
            )
            for n, (i, j, cc) in enumerate(self.taps)
        ]
        needs = _first_needs([cc for _, _, cc in self.taps])
        for nt in range(self.n_tiles):
            n0 = g * self.cout_g + nt * c.cols
            pixel = (b * s.out_h + o0) * s.out_w
            whm = Whm(
                host_addr=self.out.offset + (pixel * s.cout + n0) * osz,
                ub_addr=0,
                elems=min(c.cols, self.cout_g - nt * c.cols),
                wide=e.wide,
                x_size=t,
                x_stride=s.cout * osz,
            )
            tiles, params = weights[g, nt]
            chunk.units.append(Unit(tiles, len(self.taps), mmcs, e.act(t, params), whm, needs))
        return chunk


def _first_needs(loads: list[int]) -> list[int]:
    """Per MMC, the highest load index read so far (tokens are popped in load order)."""
    out, top = [], 0
    for cc in loads:
        top = max(top, cc)
        out.append(top)
    return out


def _fits(c: TpuConfig, r: Regions) -> bool:
    try:
        check_fits(c, r)
    except TilingError:
        return False
    return True
