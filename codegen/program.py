"""A whole function as one native program: kernels, constants and entry points in one module.

The module is self-contained, so its object code plus the JSON `ProgramSpec` is everything a
runtime needs (an on-disk cache or an AOT library holds no IR and no pickles). Every symbol
starts with the program's name (runtime/program_spec.py lists them), so two programs can share
a process, even as shared libraries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from llvmlite import ir

from codegen.cpu_caps import CpuCaps
from codegen.halfconv import define_conversions
from codegen.index_check import needs_status
from codegen.kernel import KernelInfo, build_kernel
from codegen.types import I8, I32, I64, PTR
from ir.graph import Function, Node, structural_key
from ir.ops import Op
from ir.verify import describe
from passes.buffers import BufferAssignment, assign_buffers, fits
from runtime.program_spec import (
    ALIGN,
    ARENA,
    CONST,
    OUTPUT,
    PARAM,
    CheckSpec,
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
    if assignment is None or not fits(assignment, fn, ALIGN):
        assignment = assign_buffers(fn, ALIGN)
    for buf in assignment.buffers:  # results were given output slots above; they keep them
        refs.setdefault(buf.node, Ref(ARENA, buf.offset))
    arena_bytes = assignment.arena_bytes
    status_offset = None
    if any(needs_status(n) for n in fn.body):  # one i32 after the buffers
        status_offset, arena_bytes = arena_bytes, arena_bytes + ALIGN
    checks: list[CheckSpec] = []
    steps: list[StepSpec] = []
    nodes: list[Node] = []
    built: dict[tuple[Any, ...], KernelInfo] = {}
    for i, node in enumerate(fn.body):
        if node.op is Op.CONSTANT or node.type.size == 0:
            continue  # constants are data; an empty value needs no code
        # A kernel depends only on its node's op, types and attributes, so equal nodes (the
        # layers of a deep MLP) share one: compile time grows with distinct layers, not depth.
        key = _kernel_key(node)
        info = built.get(key) or build_kernel(module, node, f"{name}_k{i}_{node.op.value}", caps)
        built[key] = info
        # Size-0 operands own no bytes; any valid pointer will do.
        buffers = tuple(refs.get(n, Ref(ARENA, 0)) for n in (node, *node.srcs))
        check = 0
        if needs_status(node):
            assert status_offset is not None
            buffers += (Ref(ARENA, status_offset),)
            checks.append(_check(node))
            check = len(checks)
        steps.append(
            StepSpec(info.name, node.op.value, info.rows, info.work_per_row, buffers, check)
        )
        nodes.append(node)
    results = tuple(ResultSpec(r.shape, r.dtype.value, refs[r]) for r in fn.results)
    spec = ProgramSpec(
        entry=name,
        params=tuple(_tensor(name, p) for name, p in zip(fn.param_names, fn.params, strict=True)),
        outputs=tuple(outputs),
        results=results,
        arena_bytes=arena_bytes,
        steps=tuple(steps),
        constants=tuple(constants),
        target_cpu=caps.cpu,
        target_features=caps.llvm_features,
        target_caches=(caps.caches.l1d, caps.caches.l2, caps.caches.l3),
        data_offset=data_offset,
        weight_offsets=tuple(offsets) if external_weights else None,
        weight_bytes=weight_bytes if external_weights else 0,
        status_offset=status_offset,
        checks=tuple(checks),
    )
    run = _build_run(module, spec, _constant_addresses(module, spec, values))
    _build_constants(module, spec, _constant_addresses(module, spec, values))
    if data_offset is not None:
        _build_py(module, spec, run, data_offset)
    define_conversions(module, caps)
    return Program(module, spec, tuple(nodes), tuple(values))


def _check(node: Node) -> CheckSpec:
    """What a failed index check in `node` means, located where the op came from."""
    what = node.op.value if node.op is not Op.FUSION else "a fused gather"
    message = f"an index is out of bounds for its axis (in {what})"
    loc = node.loc
    if node.op is Op.FUSION:  # the body's gather knows the user's line
        loc = next((n.loc for n in node.attrs["body"].body if needs_status(n) and n.loc), loc)
    if loc is None:
        return CheckSpec(message)
    return CheckSpec(message, loc.file, loc.line, loc.col, loc.source_line)


def _kernel_key(node: Node) -> tuple[Any, ...]:
    """What a kernel's code depends on: op, types, attributes and, for a fusion, its body's
    structure (not the names its parameters inherited from the caller)."""
    # A kernel reads a repeated operand through one pointer (mul(a, a) reads only one), so
    # which operands are the same value is part of its code.
    operand_types = tuple((s.type, node.srcs.index(s)) for s in node.srcs)
    if node.op is not Op.FUSION:
        return structural_key(node, operand_types)
    body: Function = node.attrs["body"]
    index: dict[Node, int] = {}
    rows = []
    for i, n in enumerate(body.nodes()):
        index[n] = i
        rows.append(structural_key(n, (index[s] for s in n.srcs)))
    return (node.op, node.type, operand_types, tuple(rows), tuple(index[r] for r in body.results))


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
                globals_[c.name] = _constant_global(module, c.name, value)
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


def _build_run(module: ir.Module, spec: ProgramSpec, constant: ConstantAddress) -> ir.Function:
    fn = ir.Function(module, ir.FunctionType(I32, [PTR, PTR]), spec.run_symbol)
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
        return constant(b, str(ref.value))

    status = None
    if spec.status_offset is not None:
        status = b.gep(arena, [I64(spec.status_offset)], inbounds=True, source_etype=I8)
        b.store(I32(0), status)
    for step in spec.steps:
        for j, ref in enumerate(step.buffers):
            slot = b.gep(table, [I64(j)], inbounds=True, source_etype=PTR)
            b.store(pointer(ref), slot)
        kernel = module.get_global(step.kernel)
        # Inlining a kernel into the entry would only make LLVM optimize its loops twice.
        b.call(kernel, [table, I64(0), I64(step.rows)], attrs=("noinline",))
        if step.check and status is not None:  # stop at the first failed check
            failed = b.icmp_signed("!=", b.load(status, typ=I32), I32(0))
            with b.if_then(failed, likely=False):
                b.ret(I32(step.check))
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
