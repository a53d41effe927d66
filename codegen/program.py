"""A whole function as one native program: kernels, constants and entry points in one module.

The module is self-contained, so its object code plus the JSON `ProgramSpec` is everything a
runtime needs (an on-disk cache or an AOT library holds no IR and no pickles). Symbols:

    void <entry>_run(ptr io, ptr arena)
        `io` holds the parameters' data pointers in order, then one pointer per computed
        output slot. Every kernel runs in schedule order over all its rows; the pointer table
        each kernel gets is built on the stack, so the function is reentrant as long as each
        concurrent caller passes its own `arena` (`arena_bytes`, 64-byte aligned).
    void <entry>_py(PyObject* in_0, ..., PyObject* out_0, ..., ptr arena)
        Reads each numpy array's data pointer out of its PyArrayObject (at `data_offset`) and
        calls `_run`; Python calls it through ctypes.PYFUNCTYPE with no per-array
        `.ctypes.data` lookup. Only emitted when the runtime knows the offset.
    void <entry>_constants(ptr table)
        Stores the address of every constant (spec order) into `table`: the constants stay
        private, yet the threaded runtime and returned constants can still reach them.
    void k<i>_<op>(ptr* buffers, i64 start, i64 stop)
        The kernels (codegen/kernel.py ABI), exported for the threaded runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from llvmlite import ir

from codegen.kernel import KernelInfo, build_kernel
from codegen.types import I8, I64, PTR
from ir.graph import Function, Node, structural_key
from ir.ops import Op
from passes.buffers import assign_buffers

SPEC_VERSION = 1
ALIGN = 64  # arena offsets and constants: a cache line, enough for AVX-512 loads

ARENA, PARAM, OUTPUT, CONST = "arena", "param", "output", "const"
REF_KINDS = (ARENA, PARAM, OUTPUT, CONST)


@dataclass(frozen=True)
class Ref:
    """Where one buffer lives: an arena offset, parameter i, output slot k or a constant."""

    kind: str
    value: int | str  # an int, except a constant's symbol

    def to_json(self) -> list[Any]:
        return [self.kind, self.value]

    @staticmethod
    def from_json(data: list[Any]) -> Ref:
        kind, value = data
        if kind not in REF_KINDS or not isinstance(value, str if kind == CONST else int):
            raise ValueError(f"bad buffer reference {data!r}")
        return Ref(kind, value)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # tessel's spelling (f32, bf16, ...), see ir.dtypes.DType

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @staticmethod
    def from_json(data: dict[str, Any]) -> TensorSpec:
        return TensorSpec(data["name"], tuple(int(d) for d in data["shape"]), data["dtype"])


@dataclass(frozen=True)
class StepSpec:
    kernel: str
    op: str
    rows: int
    work_per_row: int
    buffers: tuple[Ref, ...]  # the kernel ABI's table: output, then operands

    def to_json(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "op": self.op,
            "rows": self.rows,
            "work_per_row": self.work_per_row,
            "buffers": [b.to_json() for b in self.buffers],
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> StepSpec:
        buffers = tuple(Ref.from_json(b) for b in data["buffers"])
        return StepSpec(data["kernel"], data["op"], data["rows"], data["work_per_row"], buffers)

    @property
    def info(self) -> KernelInfo:
        return KernelInfo(self.kernel, self.rows, self.work_per_row)


@dataclass(frozen=True)
class ResultSpec:
    shape: tuple[int, ...]
    dtype: str
    source: Ref  # OUTPUT, PARAM or CONST

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype, "source": self.source.to_json()}

    @staticmethod
    def from_json(data: dict[str, Any]) -> ResultSpec:
        shape = tuple(int(d) for d in data["shape"])
        return ResultSpec(shape, data["dtype"], Ref.from_json(data["source"]))


@dataclass(frozen=True)
class ProgramSpec:
    """Everything the runtime needs to call a program's object code, as plain JSON data."""

    entry: str
    params: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]  # computed output slots, `io[len(params) + k]`
    results: tuple[ResultSpec, ...]
    arena_bytes: int
    steps: tuple[StepSpec, ...]
    constants: tuple[TensorSpec, ...]  # name = the global's symbol
    target_cpu: str
    target_features: str
    data_offset: int | None  # the PyArrayObject data offset `_py` was built for; None: no `_py`

    @property
    def run_symbol(self) -> str:
        return f"{self.entry}_run"

    @property
    def py_symbol(self) -> str | None:
        return None if self.data_offset is None else f"{self.entry}_py"

    @property
    def constants_symbol(self) -> str:
        return f"{self.entry}_constants"

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SPEC_VERSION,
            "entry": self.entry,
            "params": [p.to_json() for p in self.params],
            "outputs": [o.to_json() for o in self.outputs],
            "results": [r.to_json() for r in self.results],
            "arena_bytes": self.arena_bytes,
            "steps": [s.to_json() for s in self.steps],
            "constants": [c.to_json() for c in self.constants],
            "target": {"cpu": self.target_cpu, "features": self.target_features},
            "data_offset": self.data_offset,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> ProgramSpec:
        if data.get("version") != SPEC_VERSION:
            raise ValueError(f"program spec version {data.get('version')!r}, want {SPEC_VERSION}")
        return ProgramSpec(
            entry=data["entry"],
            params=tuple(TensorSpec.from_json(p) for p in data["params"]),
            outputs=tuple(TensorSpec.from_json(o) for o in data["outputs"]),
            results=tuple(ResultSpec.from_json(r) for r in data["results"]),
            arena_bytes=int(data["arena_bytes"]),
            steps=tuple(StepSpec.from_json(s) for s in data["steps"]),
            constants=tuple(TensorSpec.from_json(c) for c in data["constants"]),
            target_cpu=data["target"]["cpu"],
            target_features=data["target"]["features"],
            data_offset=data["data_offset"],
        )


@dataclass
class Program:
    module: ir.Module
    spec: ProgramSpec
    kernel_nodes: tuple[Node, ...]  # the node each step computes, parallel to `spec.steps`
    constant_values: tuple[np.ndarray, ...]  # parallel to `spec.constants`


def _tensor(name: str, node: Node) -> TensorSpec:
    return TensorSpec(name, node.shape, node.dtype.value)


def lower_program(
    fn: Function, target_cpu: str, target_features: str, data_offset: int | None
) -> Program:
    """One module for all of `fn`: its kernels, constants and the entry points above."""
    module = ir.Module(name=f"tessel.{fn.name}")
    refs: dict[Node, Ref] = {p: Ref(PARAM, i) for i, p in enumerate(fn.params)}
    outputs: list[TensorSpec] = []
    for r in fn.results:
        if r not in refs and r.op is not Op.CONSTANT:
            refs[r] = Ref(OUTPUT, len(outputs))
            outputs.append(_tensor(f"out{len(outputs)}", r))
    constants: list[TensorSpec] = []
    values: list[np.ndarray] = []
    globals_: list[ir.GlobalVariable] = []
    for i, node in enumerate(fn.body):
        if node.op is Op.CONSTANT:
            symbol = f"{fn.name}_c{i}"
            value = np.ascontiguousarray(node.attrs["value"].array, dtype=node.dtype.np)
            globals_.append(_constant_global(module, symbol, value))
            refs[node] = Ref(CONST, symbol)
            constants.append(_tensor(symbol, node))
            values.append(value)
    assignment = assign_buffers(fn, ALIGN)
    for buf in assignment.buffers:  # results were given output slots above; they keep them
        refs.setdefault(buf.node, Ref(ARENA, buf.offset))
    steps: list[StepSpec] = []
    nodes: list[Node] = []
    built: dict[tuple[Any, ...], KernelInfo] = {}
    for i, node in enumerate(fn.body):
        if node.op is Op.CONSTANT or node.type.size == 0:
            continue  # constants are data; an empty value needs no code
        # A kernel depends only on its node's op, types and attributes, so equal nodes (the
        # layers of a deep MLP) share one: compile time grows with distinct layers, not depth.
        key = _kernel_key(node)
        info = built.get(key) or build_kernel(module, node, f"k{i}_{node.op.value}")
        built[key] = info
        # Size-0 operands own no bytes; any valid pointer will do.
        buffers = tuple(refs.get(n, Ref(ARENA, 0)) for n in (node, *node.srcs))
        steps.append(StepSpec(info.name, node.op.value, info.rows, info.work_per_row, buffers))
        nodes.append(node)
    results = tuple(ResultSpec(r.shape, r.dtype.value, refs[r]) for r in fn.results)
    spec = ProgramSpec(
        entry=fn.name,
        params=tuple(_tensor(name, p) for name, p in zip(fn.param_names, fn.params, strict=True)),
        outputs=tuple(outputs),
        results=results,
        arena_bytes=assignment.arena_bytes,
        steps=tuple(steps),
        constants=tuple(constants),
        target_cpu=target_cpu,
        target_features=target_features,
        data_offset=data_offset,
    )
    globals_by_symbol = {g.name: g for g in globals_}
    run = _build_run(module, spec, globals_by_symbol)
    _build_constants(module, spec, globals_)
    if data_offset is not None:
        _build_py(module, spec, run, data_offset)
    return Program(module, spec, tuple(nodes), tuple(values))


def _kernel_key(node: Node) -> tuple[Any, ...]:
    """What a kernel's code depends on: op, types, attributes and, for a fusion, its body's
    structure (not the names its parameters inherited from the caller)."""
    operand_types = tuple(s.type for s in node.srcs)
    if node.op is not Op.FUSION:
        return structural_key(node, operand_types)
    body: Function = node.attrs["body"]
    index: dict[Node, int] = {}
    rows = []
    for i, n in enumerate(body.nodes()):
        index[n] = i
        rows.append(structural_key(n, (index[s] for s in n.srcs)))
    return (node.op, node.type, operand_types, tuple(rows), tuple(index[r] for r in body.results))


def _constant_global(module: ir.Module, symbol: str, value: np.ndarray) -> ir.GlobalVariable:
    ty = ir.ArrayType(I8, value.nbytes)
    g = ir.GlobalVariable(module, ty, symbol)
    g.linkage = "private"
    g.global_constant = True
    g.align = ALIGN
    g.initializer = _bytes_constant(ty, value)
    return g


_HEX_DIGITS = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)


def _bytes_constant(ty: ir.ArrayType, value: np.ndarray) -> ir.Constant:
    """`c"\\XX..."` escaped with numpy: llvmlite's own escaping loops over the bytes in Python,
    which took ~100 ms for the MLP's 2.7 MB of weights."""
    raw = np.frombuffer(value.tobytes(), dtype=np.uint8)
    if not raw.any():
        return ir.Constant(ty, None)  # zeroinitializer
    text = np.empty((raw.size, 3), dtype=np.uint8)
    text[:, 0] = ord("\\")
    text[:, 1] = _HEX_DIGITS[raw >> 4]
    text[:, 2] = _HEX_DIGITS[raw & 15]
    return ir.FormattedConstant(ty, f'c"{text.tobytes().decode("ascii")}"')


def _build_run(
    module: ir.Module, spec: ProgramSpec, globals_: dict[str, ir.GlobalVariable]
) -> ir.Function:
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR, PTR]), spec.run_symbol)
    io, arena = fn.args
    io.name, arena.name = "io", "arena"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    width = max((len(s.buffers) for s in spec.steps), default=1)
    # One table reused by every call: kernels do not keep it, and calls are sequential.
    table = b.alloca(PTR, size=I64(width), name="buffers")
    slots = [
        b.load(b.gep(io, [I64(i)], inbounds=True, source_etype=PTR), typ=PTR, name=f"io{i}")
        for i in range(len(spec.params) + len(spec.outputs))
    ]

    def pointer(ref: Ref) -> ir.Value:
        if ref.kind == ARENA:
            return b.gep(arena, [I64(ref.value)], inbounds=True, source_etype=I8)
        if ref.kind == PARAM:
            return slots[int(ref.value)]
        if ref.kind == OUTPUT:
            return slots[len(spec.params) + int(ref.value)]
        return globals_[str(ref.value)]

    for step in spec.steps:
        for j, ref in enumerate(step.buffers):
            slot = b.gep(table, [I64(j)], inbounds=True, source_etype=PTR)
            b.store(pointer(ref), slot)
        kernel = module.get_global(step.kernel)
        # Inlining a kernel into the entry would only make LLVM optimize its loops twice.
        b.call(kernel, [table, I64(0), I64(step.rows)], attrs=("noinline",))
    b.ret_void()
    return fn


def _build_constants(
    module: ir.Module, spec: ProgramSpec, globals_: list[ir.GlobalVariable]
) -> None:
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR]), spec.constants_symbol)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    for i, g in enumerate(globals_):
        b.store(g, b.gep(fn.args[0], [I64(i)], inbounds=True, source_etype=PTR))
    b.ret_void()


def _build_py(module: ir.Module, spec: ProgramSpec, run: ir.Function, data_offset: int) -> None:
    n = len(spec.params) + len(spec.outputs)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR] * (n + 1)), spec.py_symbol)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    io = b.alloca(PTR, size=I64(max(n, 1)), name="io")
    for i, array in enumerate(fn.args[:n]):
        field = b.gep(array, [I64(data_offset)], inbounds=True, source_etype=I8)
        slot = b.gep(io, [I64(i)], inbounds=True, source_etype=PTR)
        b.store(b.load(field, typ=PTR), slot)
    b.call(run, [io, fn.args[n]])
    b.ret_void()
