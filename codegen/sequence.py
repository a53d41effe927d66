"""A function body as a sequence of kernel calls, and loops that run such sequences natively.

`lower_steps` turns one function's schedule into steps (a kernel and the buffers it reads and
writes): the whole program's body (codegen/program.py) or a loop's condition and body. A
`while` becomes one kernel of its own, which calls its condition's and body's kernels in
sequence until the condition fails; a `cond` one that calls the kernels of the side its
predicate picks. Their scratch memory (the bodies' temporaries) is a region of the caller's
arena, so no step allocates. A `get` copies one element out of a loop's or branch's result.

Buffers are `Ref`s. At the top level they are the ProgramSpec's; inside a loop kernel PARAM i
is carried value i, NEXT i the buffer its next value goes to, ARENA the loop's scratch, and
STATUS the status word it was handed; inside a branch kernel PARAM i is the branch's
parameter i and OUT k element k of its result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from llvmlite import ir

from codegen.cpu_caps import CpuCaps
from codegen.index_check import needs_status
from codegen.kernel import KERNEL_TYPE, KernelInfo, build_kernel
from codegen.types import I8, I32, I64, PTR, buffer_pointers, copy_bytes
from ir.graph import Function, Node, structural_key
from ir.ops import CONTROL, Op
from ir.types import TupleType
from passes.buffers import BufferAssignment, assign_buffers, fits
from runtime.program_spec import ALIGN, ARENA, CONST, PARAM, CheckSpec, Ref, StepSpec

# Refs only a loop kernel uses (never in a ProgramSpec): its status word, and the spare buffer
# a carried value's next value is computed into.
STATUS, NEXT, OUT, INDEX = "status", "next", "out", "index"
TINY_KERNEL = 16  # elements: kernels this small are inlined into the code that calls them
Pointer = Callable[[ir.IRBuilder, Ref], ir.Value]


@dataclass
class Lowering:
    """What the steps of one program share: its module, target, kernels and check codes."""

    module: ir.Module
    caps: CpuCaps
    checks: list[CheckSpec] = field(default_factory=list)  # code i + 1 is checks[i]
    built: dict[tuple[Any, ...], KernelInfo] = field(default_factory=dict)


@dataclass
class Steps:
    steps: list[StepSpec]
    nodes: list[Node]  # the node each step computes
    arena_bytes: int
    status_offset: int | None  # where the status word is, if this sequence placed it


def lower_steps(
    low: Lowering,
    fn: Function,
    prefix: str,
    refs: dict[Node, Ref],
    assignment: BufferAssignment | None = None,
    status: Ref | None = None,
) -> Steps:
    """Steps for `fn`'s body, given refs for its parameters, constants and any results with a
    place of their own; other values get arena buffers (from `assignment` if it still fits).
    A checking step gets `status` (placed in the arena if None) as its last buffer."""
    if assignment is None or not fits(assignment, fn, ALIGN):
        assignment = assign_buffers(fn, ALIGN)
    for buf in assignment.buffers:
        refs.setdefault(buf.node, Ref(ARENA, buf.offset))
    arena = assignment.arena_bytes
    status_offset = None
    if status is None and any(needs_status(n) for n in fn.body):  # one i32 after the buffers
        status_offset, arena = arena, arena + ALIGN
        status = Ref(ARENA, status_offset)
    users = fn.users()
    loops = {
        n: _build_loop(low, n, f"{prefix}_k{i}_{n.op.value}", needs_status(n), _read(users[n]))
        if n.op is not Op.COND
        else _build_cond(low, n, f"{prefix}_k{i}_cond", needs_status(n))
        for i, n in enumerate(fn.body)
        if n.op in CONTROL
    }
    scratch = Ref(ARENA, arena)  # shared: loops and branches run one at a time
    arena += max((scratch_bytes for _, scratch_bytes in loops.values()), default=0)
    steps: list[StepSpec] = []
    nodes: list[Node] = []
    for i, node in enumerate(fn.body):
        if node.op is Op.CONSTANT or (node.type.size == 0 and node not in loops):
            continue  # constants are data; an empty value needs no code (a loop may not end)
        if node in loops:
            info = loops[node][0]
        else:
            # A kernel depends only on its node's op, types and attributes, so equal nodes
            # (the layers of a deep MLP) share one: compile time grows with distinct layers.
            key = kernel_key(node)
            info = low.built.get(key) or _build(low, node, f"{prefix}_k{i}_{node.op.value}")
            low.built[key] = info
        # Size-0 operands own no bytes; any valid pointer will do.
        buffers = tuple(refs.get(n, Ref(ARENA, 0)) for n in (node, *node.srcs))
        if node in loops:
            buffers += (scratch,)
        check = 0
        if needs_status(node):
            assert status is not None
            buffers += (status,)
            low.checks.append(check_spec(node))
            check = len(low.checks)
        steps.append(
            StepSpec(info.name, node.op.value, info.rows, info.work_per_row, buffers, check)
        )
        nodes.append(node)
    return Steps(steps, nodes, arena, status_offset)


def _read(users: list[Node]) -> set[int]:
    """Which elements of a loop's result are read (by `get`, the only op that takes a tuple)."""
    return {u.attrs["index"] for u in users}


def _build(low: Lowering, node: Node, name: str) -> KernelInfo:
    if node.op is Op.GET:
        return _build_get(low.module, node, name)
    return build_kernel(low.module, node, name, low.caps)


def check_spec(node: Node) -> CheckSpec:
    """What a failed index check in `node` means, located at the op that checks (inside a
    fusion or a loop: the first such op in its body)."""
    while node.op is not Op.GATHER and node.op is not Op.SCATTER:
        node = next(n for f in node.functions for n in f.body if needs_status(n))
    message = f"an index is out of bounds for its axis (in {node.op.value})"
    loc = node.loc
    if loc is None:
        return CheckSpec(message)
    return CheckSpec(message, loc.file, loc.line, loc.col, loc.source_line)


def kernel_key(node: Node) -> tuple[Any, ...]:
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


def buffer_table(b: ir.IRBuilder, *sequences: list[StepSpec]) -> ir.Value:
    """Room for the buffer table of every step in `sequences`, reused by every call: kernels
    do not keep it, and calls are sequential."""
    width = max((len(s.buffers) for steps in sequences for s in steps), default=1)
    return b.alloca(PTR, size=I64(width), name="buffers")


def emit_steps(
    b: ir.IRBuilder,
    steps: list[StepSpec],
    pointer: Pointer,
    table: ir.Value,
    status: ir.Value | None,
    on_fail: Callable[[ir.IRBuilder, StepSpec], None],
) -> None:
    """Call each step's kernel over all its rows; after a step that checks, `on_fail` runs
    (and must leave the function) if the status word is set."""
    for step in steps:
        for j, ref in enumerate(step.buffers):
            b.store(pointer(b, ref), b.gep(table, [I64(j)], inbounds=True, source_etype=PTR))
        kernel = b.module.get_global(step.kernel)
        # Inlining a kernel into its caller would only make LLVM optimize its loops twice; a
        # tiny one (a loop's counter, a scalar) costs less inlined than called.
        tiny = step.rows * step.work_per_row <= TINY_KERNEL and not step.control
        b.call(kernel, [table, I64(0), I64(step.rows)], attrs=() if tiny else ("noinline",))
        if step.check and status is not None:
            failed = b.icmp_signed("!=", b.load(status, typ=I32), I32(0))
            with b.if_then(failed, likely=False):
                on_fail(b, step)


def constant_refs(low: Lowering, fn: Function, prefix: str) -> dict[Node, Ref]:
    """Refs for a loop body's constants, each a private global of the module."""
    refs: dict[Node, Ref] = {}
    for i, node in enumerate(fn.body):
        if node.op is Op.CONSTANT:
            symbol = f"{prefix}_c{i}"
            value = np.ascontiguousarray(node.attrs["value"].array, dtype=node.dtype.np)
            constant_global(low.module, symbol, value)
            refs[node] = Ref(CONST, symbol)
    return refs


@dataclass
class _LoopParts:
    """A loop's condition (a `for` has none) and body lowered to steps, and the scratch layout
    they share."""

    cond: Steps | None
    body: Steps
    cond_result: Ref | None
    body_results: list[Ref]
    staged: dict[int, int]  # carried value k -> its scratch offset while results are copied
    spare: dict[int, int]  # carried value k -> the scratch offset of its second buffer
    scratch_bytes: int


def _lower_nested(
    low: Lowering, f: Function, name: str, params: dict[Node, Ref], into: str | None,
    status: Ref | None,
) -> tuple[Steps, list[Ref]]:  # fmt: skip
    """A loop's or branch's nested function `f` as steps, given refs for its parameters; a
    result it computes is written straight into Ref(`into`, k) (unless `into` is None). Also
    returns where each result is once the steps ran."""
    refs = params | constant_refs(low, f, name)
    if into is not None:
        for k, r in enumerate(f.results):
            if r not in refs and r.type.nbytes:
                refs[r] = Ref(into, k)
    steps = lower_steps(low, f, name, refs, status=status)
    return steps, [refs[r] for r in f.results]


def _lower_parts(low: Lowering, node: Node, name: str, checked: bool) -> _LoopParts:
    inner_status = Ref(STATUS, 0) if checked else None
    lowered: dict[str, tuple[Steps, list[Ref]]] = {}
    for part in ("cond", "body") if node.op is Op.WHILE else ("body",):
        f: Function = node.attrs[part]
        params = f.params
        refs = {}
        if node.op is Op.FOR:  # the index, then the carried values
            refs[params[0]] = Ref(INDEX, 0)
            params = params[1:]
        refs |= {p: Ref(PARAM, i) for i, p in enumerate(params)}
        # a result the body computes is written straight into its spare buffer
        into = NEXT if part == "body" else None
        lowered[part] = _lower_nested(low, f, f"{name}_{part}", refs, into, inner_status)
    body, body_results = lowered["body"]
    cond, cond_results = lowered.get("cond", (None, [None]))
    # The condition's and the body's temporaries share scratch (they run one after the
    # other); then come the spare buffers, and the staging of results that are other
    # carried values.
    end = _align(max(body.arena_bytes, cond.arena_bytes if cond else 0))
    staged: dict[int, int] = {}
    spare: dict[int, int] = {}
    for k, (ref, r) in enumerate(zip(body_results, node.attrs["body"].results, strict=True)):
        if ref == Ref(NEXT, k):
            spare[k], end = end, end + _align(r.type.nbytes)
        elif ref.kind == PARAM and ref.value != k:
            staged[k], end = end, end + _align(r.type.nbytes)
    return _LoopParts(cond, body, cond_results[0], body_results, staged, spare, end)


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _build_loop(
    low: Lowering, node: Node, name: str, checked: bool, read: set[int]
) -> tuple[KernelInfo, int]:
    """A `while` or `for` loop as one kernel; returns it and the scratch bytes it needs.

    Buffers: the loop's result (each carried value at its aligned offset, where the loop
    leaves its state), the operands (a `for`'s bounds, then the initial values), the scratch
    region, and the status word if `checked`. Each iteration runs the condition's steps (a
    `for` compares its index with the upper bound instead), then the body's. A carried value
    the body computes has two buffers: the body writes the new value into the spare one and
    the two swap roles, so nothing is copied (the final value is copied into the result once,
    if it ended in the spare). Other results (constants, other carried values) are copied,
    through scratch when they are carried values, so a swap reads the old values. A value the
    loop only reads (the body returns it unchanged) and that no `get` reads afterwards is read
    where it is, never copied. A `for`'s index lives in a slot of the kernel's frame, which
    the body's kernels read like any operand.
    """
    parts = _lower_parts(low, node, name, checked)
    fn = ir.Function(low.module, KERNEL_TYPE, name)
    k = _LoopKernel(ir.IRBuilder(fn.append_basic_block("entry")), node, parts, checked, read)
    b = k.b
    table = buffer_table(b, parts.cond.steps if parts.cond else [], parts.body.steps)
    k.start()
    header, loop_body, done = (fn.append_basic_block(n) for n in ("cond", "body", "done"))
    b.branch(header)
    b.position_at_end(header)
    if parts.cond is not None:
        assert parts.cond_result is not None
        emit_steps(b, parts.cond.steps, k.pointer, table, k.status, k.fail)
        flag = b.load(k.pointer(b, parts.cond_result), typ=I8)
        more = b.icmp_unsigned("!=", flag, I8(0))
    else:
        more = k.index_below_upper()
    b.cbranch(more, loop_body, done)
    b.position_at_end(loop_body)
    emit_steps(b, parts.body.steps, k.pointer, table, k.status, k.fail)
    k.next_state()
    b.branch(header)
    b.position_at_end(done)
    k.finish()
    b.ret_void()
    # one row: the iterations are sequential (their kernels are not split across threads)
    return KernelInfo(name, 1, node.type.size), parts.scratch_bytes


class _LoopKernel:
    """Where a loop kernel's values are, and the copies and swaps between iterations."""

    def __init__(
        self, b: ir.IRBuilder, node: Node, parts: _LoopParts, checked: bool, read: set[int]
    ) -> None:
        tup = node.type
        assert isinstance(tup, TupleType)
        self.b, self.parts, self.elements = b, parts, tup.elements
        count = len(node.srcs)
        ptrs = buffer_pointers(b, b.function.args[0], 2 + count + checked)
        bounds = 2 if node.op is Op.FOR else 0
        out, self.inits, self.scratch = ptrs[0], ptrs[1 + bounds : 1 + count], ptrs[1 + count]
        self.status = ptrs[2 + count] if checked else None
        self.index: ir.Value | None = None
        if bounds:  # the index slot starts at the lower bound
            self.index_type = ir.IntType(8 * node.srcs[0].type.nbytes)
            self.signed = node.srcs[0].dtype.is_signed
            lower, self.upper = self.bound(node.srcs[0], ptrs[1]), self.bound(node.srcs[1], ptrs[2])
            self.index = b.alloca(self.index_type, name="index")
            self.index.align = ALIGN
            b.store(lower, self.index)
        self.carried = [self.at(out, o) for o in tup.offsets(ALIGN)[0]]
        self.invariant = {
            k for k, ref in enumerate(parts.body_results) if ref == Ref(PARAM, k) and k not in read
        }
        self.current: dict[int, ir.Value] = {}  # k -> a slot: where carried value k is now
        self.following: dict[int, ir.Value] = {}  # k -> a slot: its spare buffer
        for k, at in parts.spare.items():
            self.current[k], self.following[k] = b.alloca(PTR), b.alloca(PTR)
            b.store(self.carried[k], self.current[k])
            b.store(self.at(self.scratch, at), self.following[k])

    def at(self, base: ir.Value, offset: int) -> ir.Value:
        return _at(self.b, base, offset)

    def bound(self, node: Node, ptr: ir.Value) -> ir.Value:
        """A `for` bound: its value where it is a constant, so that LLVM knows the index's
        range (and drops the clamps of gathers the loop keeps in range), else a load."""
        if node.op is Op.CONSTANT:
            return ir.Constant(self.index_type, int(node.attrs["value"].array))
        return self.b.load(ptr, typ=self.index_type)

    def pointer(self, b: ir.IRBuilder, ref: Ref) -> ir.Value:
        k = int(ref.value) if ref.kind in (PARAM, NEXT) else -1
        if ref.kind == PARAM and k in self.invariant:
            return self.inits[k]
        if ref.kind == PARAM:
            return b.load(self.current[k], typ=PTR) if k in self.current else self.carried[k]
        if ref.kind == NEXT:
            return b.load(self.following[k], typ=PTR)
        if ref.kind == ARENA:
            return self.at(self.scratch, int(ref.value))
        if ref.kind == STATUS:
            assert self.status is not None
            return self.status
        if ref.kind == INDEX:
            assert self.index is not None
            return self.index
        return b.module.get_global(str(ref.value))

    def index_below_upper(self) -> ir.Value:
        assert self.index is not None
        i = self.b.load(self.index, typ=self.index_type)
        compare = self.b.icmp_signed if self.signed else self.b.icmp_unsigned
        return compare("<", i, self.upper)

    def fail(self, b: ir.IRBuilder, step: StepSpec) -> None:
        _fail(b, step, self.status)

    def start(self) -> None:
        for k, t in enumerate(self.elements):
            if k not in self.invariant:
                copy_bytes(self.b, self.carried[k], self.inits[k], t.nbytes)

    def next_state(self) -> None:
        """After the body: copy the results that are not in a spare buffer, then swap buffers.
        Every copy reads the values of this iteration (copies before swaps, staging first)."""
        b, parts = self.b, self.parts
        for k, at in parts.staged.items():
            source = self.pointer(b, parts.body_results[k])
            copy_bytes(b, self.at(self.scratch, at), source, self.elements[k].nbytes)
        for k, ref in enumerate(parts.body_results):
            if k in parts.spare or ref == Ref(PARAM, k):
                continue
            source = self.pointer(b, Ref(ARENA, parts.staged[k]) if k in parts.staged else ref)
            copy_bytes(b, self.carried[k], source, self.elements[k].nbytes)
        for k in parts.spare:
            now, spare = b.load(self.current[k], typ=PTR), b.load(self.following[k], typ=PTR)
            b.store(spare, self.current[k])
            b.store(now, self.following[k])
        if self.index is not None:  # no overflow: the index was below the upper bound
            i = b.load(self.index, typ=self.index_type)
            b.store(b.add(i, ir.Constant(self.index_type, 1)), self.index)

    def finish(self) -> None:
        """The final values into the result, where they ended in a spare buffer."""
        b = self.b
        for k in self.parts.spare:
            now = b.load(self.current[k], typ=PTR)
            with b.if_then(b.icmp_unsigned("!=", now, self.carried[k])):
                copy_bytes(b, self.carried[k], now, self.elements[k].nbytes)


def _fail(b: ir.IRBuilder, step: StepSpec, status: ir.Value | None) -> None:
    """Leave a loop or branch kernel after `step`'s check failed, its code in the status word."""
    if not step.control:  # an inner loop or branch stored its own code already
        assert status is not None
        b.store(I32(step.check), status)
    b.ret_void()


def _lower_sides(
    low: Lowering, node: Node, name: str, checked: bool
) -> list[tuple[Steps, list[Ref]]]:
    """Each side of a branch as steps, and where each of its results is once they ran."""
    inner_status = Ref(STATUS, 0) if checked else None
    sides = []
    for side in ("true_branch", "false_branch"):
        f: Function = node.attrs[side]
        refs = {p: Ref(PARAM, i) for i, p in enumerate(f.params)}
        sides.append(_lower_nested(low, f, f"{name}_{side}", refs, OUT, inner_status))
    return sides


def _build_cond(low: Lowering, node: Node, name: str, checked: bool) -> tuple[KernelInfo, int]:
    """A branch as one kernel; returns it and the scratch bytes it needs.

    Buffers: the result (element k at its aligned offset), the predicate, the operands, the
    scratch region, and the status word if `checked`. The kernel runs the steps of the side
    the predicate picks; a result that side computes is written straight into its element,
    any other (a parameter, a constant, a value returned twice) is copied there afterwards.
    """
    tup = node.type
    assert isinstance(tup, TupleType)
    offsets = tup.offsets(ALIGN)[0]
    sides = _lower_sides(low, node, name, checked)
    fn = ir.Function(low.module, KERNEL_TYPE, name)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    count = len(node.srcs)
    ptrs = buffer_pointers(b, fn.args[0], 2 + count + checked)
    out, scratch = ptrs[0], ptrs[1 + count]
    status = ptrs[2 + count] if checked else None
    places: dict[str, Callable[[int], ir.Value]] = {
        PARAM: lambda i: ptrs[2 + i],
        OUT: lambda k: _at(b, out, offsets[k]),
        ARENA: lambda offset: _at(b, scratch, offset),
    }
    if status is not None:
        places[STATUS] = lambda _: status

    def pointer(b: ir.IRBuilder, ref: Ref) -> ir.Value:
        place = places.get(ref.kind)
        return place(int(ref.value)) if place else b.module.get_global(str(ref.value))

    table = buffer_table(b, *(steps.steps for steps, _ in sides))
    flag = b.load(ptrs[1], typ=I8)
    with b.if_else(b.icmp_unsigned("!=", flag, I8(0))) as (on_true, on_false):
        for block, (steps, results) in zip((on_true, on_false), sides, strict=True):
            with block:
                emit_steps(b, steps.steps, pointer, table, status, lambda b, s: _fail(b, s, status))
                for k, (ref, t) in enumerate(zip(results, tup.elements, strict=True)):
                    if ref != Ref(OUT, k) and t.nbytes:
                        copy_bytes(b, pointer(b, Ref(OUT, k)), pointer(b, ref), t.nbytes)
    b.ret_void()
    scratch_bytes = _align(max(steps.arena_bytes for steps, _ in sides))
    return KernelInfo(name, 1, node.type.size), scratch_bytes


def _at(b: ir.IRBuilder, base: ir.Value, offset: int) -> ir.Value:
    return b.gep(base, [I64(offset)], inbounds=True, source_etype=I8)


def _build_get(module: ir.Module, node: Node, name: str) -> KernelInfo:
    """Element `index` of a loop's result: a copy out of the loop's buffer."""
    tup = node.srcs[0].type
    assert isinstance(tup, TupleType)
    offset = tup.offsets(ALIGN)[0][node.attrs["index"]]
    fn = ir.Function(module, KERNEL_TYPE, name)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    out, source = buffer_pointers(b, fn.args[0], 2)
    copy_bytes(
        b, out, b.gep(source, [I64(offset)], inbounds=True, source_etype=I8), node.type.nbytes
    )
    b.ret_void()
    return KernelInfo(name, 1, node.type.size)


def constant_global(module: ir.Module, symbol: str, value: np.ndarray) -> ir.GlobalVariable:
    """`value`'s bytes as a private, aligned, read-only global named `symbol`."""
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
