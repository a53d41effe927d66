"""scatter: x with updates combined, one after another, into positions read from indices."""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from codegen.emit import Emitter, combine, linear, operand_buffers, source_index
from codegen.index_check import StatusWord, needs_status
from codegen.loops import loop_nest
from codegen.types import copy_bytes, element_ptr, load_value, store_value
from ir.graph import Node
from ir.ops import Op
from ir.typerules import gathered_shape

Pointer = Callable[[int], ir.Value]

# scatter's kinds as the reduce combiner spells them
_COMBINE = {"add": "sum", "mul": "prod", "min": "min", "max": "max"}


def applicable(node: Node) -> bool:
    return node.op is Op.SCATTER


def build_body(
    b: ir.IRBuilder, node: Node, pointer: Pointer, start: ir.Value, stop: ir.Value
) -> int:
    """One row: copy x to the output, then apply the updates in order (a repeated position
    takes them one after another, so the kernel cannot be split across threads)."""
    x, idx, updates = node.srcs
    out, dtype = pointer(0), node.dtype
    size = node.type.size
    nbytes = size * dtype.itemsize
    copy_bytes(b, out, pointer(1), nbytes)
    status = StatusWord(pointer(4)) if needs_status(node) else None
    e = Emitter(b, operand_buffers((idx, updates), (pointer(2), pointer(3))), status=status)
    with loop_nest(b, gathered_shape(x.type, idx.type, node.attrs["axis"])) as loops:
        where = tuple(loops)
        with e.scope():
            target = element_ptr(b, out, linear(b, source_index(e, node, where), x.shape), dtype)
            value = e.value(updates, where)
            kind = node.attrs["kind"]
            if kind != "set":
                value = combine(b, _COMBINE[kind], dtype, load_value(b, target, dtype), value)
            store_value(b, value, target, dtype)
    if status is not None:
        status.finish(b)
    return 1
