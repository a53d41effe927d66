"""A whole function as one native program: kernels, constants and entry points in one module.

The module is self-contained, so its object code plus the JSON `ProgramSpec` is everything a
runtime needs (an on-disk cache or an AOT library holds no IR and no pickles). Every symbol
starts with the program's name (runtime/program_spec.py lists them), so two programs can share
a process, even as shared libraries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from codegen.cpu_caps import CpuCaps
from codegen.halfconv import define_conversions
from codegen.sequence import Lowering, buffer_table, constant_global, emit_steps, lower_steps
from codegen.types import I8, I32, I64, PTR
from ir.graph import Function, Node
from ir.ops import Op
from ir.verify import describe
from passes.buffers import BufferAssignment
from runtime.program_spec import (
    ALIGN,
    ARENA,
    CONST,
    OUTPUT,
    PARAM,
    ProgramSpec,
    Ref,
    ResultSpec,
    StepSpec,
    TensorSpec,
)

__all__ = ["ALIGN", "Program", "ProgramSpec", "lower_program"]


@dataclass
class Program:
    module: ir.Module
    spec: ProgramSpec
    kernel_nodes: tuple[Node, ...]  # the node each step computes, parallel to `spec.steps`
    constant_values: tuple[np.ndarray, ...]  # parallel to `spec.constants`

    def describe_kernels(self) -> dict[str, str]:
        """Kernel function name -> what it computes, for messages about the code."""
        return {
            step.kernel: f"{step.kernel} ('{describe(node)}')"
            for step, node in zip(self.spec.steps, self.kernel_nodes, strict=True)
        }


def _tensor(name: str, node: Node) -> TensorSpec:
    return TensorSpec(name, node.shape, node.dtype.value)


def lower_program(
    fn: Function,
    caps: CpuCaps,
    data_offset: int | None,
    name: str | None = None,
    external_weights: bool = False,
    assignment: BufferAssignment | None = None,
) -> Program:
    """One module for all of `fn`: its kernels, constants and entry points, every symbol
    prefixed with `name` (default: the function's name). With `external_weights`, constants
    are not in the code but in a blob given to `NAME_set_weights` at run time. `assignment` is
    the buffer-assign pass's result, used when it still fits `fn` (else assigned here)."""
    name = name or fn.name
    module = ir.Module(name=f"tessel.{name}")
    refs: dict[Node, Ref] = {p: Ref(PARAM, i) for i, p in enumerate(fn.params)}
    outputs: list[TensorSpec] = []
    for r in fn.results:
        if r not in refs and r.op is not Op.CONSTANT:
            refs[r] = Ref(OUTPUT, len(outputs))
            outputs.append(_tensor(f"out{len(outputs)}", r))
    constants: list[TensorSpec] = []
    values: list[np.ndarray] = []
    offsets: list[int] = []
    weight_bytes = 0
    for i, node in enumerate(fn.body):
        if node.op is Op.CONSTANT:
            symbol = f"{name}_c{i}"
            value = np.ascontiguousarray(node.attrs["value"].array, dtype=node.dtype.np)
            refs[node] = Ref(CONST, symbol)
            constants.append(_tensor(symbol, node))
            values.append(value)
            offsets.append(weight_bytes)
            weight_bytes += -(-value.nbytes // ALIGN) * ALIGN
    low = Lowering(module, caps)
    lowered = lower_steps(low, fn, name, refs, assignment)
    results = tuple(ResultSpec(r.shape, r.dtype.value, refs[r]) for r in fn.results)
    spec = ProgramSpec(
        entry=name,
        params=tuple(_tensor(name, p) for name, p in zip(fn.param_names, fn.params, strict=True)),
        outputs=tuple(outputs),
        results=results,
        arena_bytes=lowered.arena_bytes,
        steps=tuple(lowered.steps),
        constants=tuple(constants),
        target_cpu=caps.cpu,
        target_features=caps.llvm_features,
        target_caches=(caps.caches.l1d, caps.caches.l2, caps.caches.l3),
        data_offset=data_offset,
        weight_offsets=tuple(offsets) if external_weights else None,
        weight_bytes=weight_bytes if external_weights else 0,
        status_offset=lowered.status_offset,
        checks=tuple(low.checks),
    )
    run = _build_run(module, spec, _constant_addresses(module, spec, values))
    _build_constants(module, spec, _constant_addresses(module, spec, values))
    if data_offset is not None:
        _build_py(module, spec, run, data_offset)
    define_conversions(module, caps)
    return Program(module, spec, tuple(lowered.nodes), tuple(values))


ConstantAddress = Callable[[ir.IRBuilder, str], ir.Value]


def _constant_addresses(
    module: ir.Module, spec: ProgramSpec, values: Sequence[np.ndarray]
) -> ConstantAddress:
    """How code reaches constant `symbol`: a private global, or an offset into the weights
    blob whose address NAME_set_weights stored (external weights)."""
    if spec.weight_offsets is None:
        globals_ = {g.name: g for g in module.global_values if isinstance(g, ir.GlobalVariable)}
        for c, value in zip(spec.constants, values, strict=True):
            if c.name not in globals_:
                globals_[c.name] = constant_global(module, c.name, value)
        return lambda b, symbol: globals_[symbol]
    base = module.globals.get(f"{spec.entry}_weights")
    if base is None:
        base = ir.GlobalVariable(module, PTR, f"{spec.entry}_weights")
        base.linkage = "internal"
        base.initializer = ir.Constant(PTR, None)
        setter = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR]), spec.set_weights_symbol)
        sb = ir.IRBuilder(setter.append_basic_block("entry"))
        sb.store(setter.args[0], base)
        sb.ret_void()
    offsets = {c.name: o for c, o in zip(spec.constants, spec.weight_offsets, strict=True)}

    def address(b: ir.IRBuilder, symbol: str) -> ir.Value:
        blob = b.load(base, typ=PTR)
        return b.gep(blob, [I64(offsets[symbol])], inbounds=True, source_etype=I8)

    return address


def _build_run(module: ir.Module, spec: ProgramSpec, constant: ConstantAddress) -> ir.Function:
    fn = ir.Function(module, ir.FunctionType(I32, [PTR, PTR]), spec.run_symbol)
    io, arena = fn.args
    io.name, arena.name = "io", "arena"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    table = buffer_table(b, list(spec.steps))
    slots = [
        b.load(b.gep(io, [I64(i)], inbounds=True, source_etype=PTR), typ=PTR, name=f"io{i}")
        for i in range(len(spec.params) + len(spec.outputs))
    ]

    def pointer(b: ir.IRBuilder, ref: Ref) -> ir.Value:
        if ref.kind == ARENA:
            return b.gep(arena, [I64(ref.value)], inbounds=True, source_etype=I8)
        if ref.kind == PARAM:
            return slots[int(ref.value)]
        if ref.kind == OUTPUT:
            return slots[len(spec.params) + int(ref.value)]
        return constant(b, str(ref.value))

    status = None
    if spec.status_offset is not None:
        status = b.gep(arena, [I64(spec.status_offset)], inbounds=True, source_etype=I8)
        b.store(I32(0), status)

    def fail(b: ir.IRBuilder, step: StepSpec) -> None:  # stop at the first failed check
        assert status is not None
        b.ret(b.load(status, typ=I32) if step.control else I32(step.check))

    emit_steps(b, list(spec.steps), pointer, table, status, fail)
    b.ret(I32(0))
    return fn


def _build_constants(module: ir.Module, spec: ProgramSpec, constant: ConstantAddress) -> None:
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR]), spec.constants_symbol)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    for i, c in enumerate(spec.constants):
        b.store(constant(b, c.name), b.gep(fn.args[0], [I64(i)], inbounds=True, source_etype=PTR))
    b.ret_void()


def _build_py(module: ir.Module, spec: ProgramSpec, run: ir.Function, data_offset: int) -> None:
    n = len(spec.params) + len(spec.outputs)
    fn = ir.Function(module, ir.FunctionType(I32, [PTR] * (n + 1)), spec.py_symbol)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    io = b.alloca(PTR, size=I64(max(n, 1)), name="io")
    for i, array in enumerate(fn.args[:n]):
        field = b.gep(array, [I64(data_offset)], inbounds=True, source_etype=I8)
        slot = b.gep(io, [I64(i)], inbounds=True, source_etype=PTR)
        b.store(b.load(field, typ=PTR), slot)
    b.ret(b.call(run, [io, fn.args[n]]))
