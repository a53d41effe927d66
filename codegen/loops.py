"""Loops as context managers: `with for_range(b, n) as i:` emits a counted loop around the body."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from llvmlite import ir

from codegen.types import I64


@contextmanager
def for_range(
    b: ir.IRBuilder, stop: ir.Value | int, start: ir.Value | int = 0, name: str = "i"
) -> Iterator[ir.Value]:
    """for (i = start; i < stop; ++i) { body }. The body is emitted inside the `with` block."""
    start_v = I64(start) if isinstance(start, int) else start
    stop_v = I64(stop) if isinstance(stop, int) else stop
    pre = b.block
    header = b.append_basic_block(f"{name}.header")
    body = b.append_basic_block(f"{name}.body")
    after = b.append_basic_block(f"{name}.end")
    b.branch(header)
    b.position_at_end(header)
    index = b.phi(I64, name=name)
    index.add_incoming(start_v, pre)
    b.cbranch(b.icmp_signed("<", index, stop_v), body, after)
    b.position_at_end(body)
    yield index
    nxt = b.add(index, I64(1), name=f"{name}.next", flags=["nsw", "nuw"])
    index.add_incoming(nxt, b.block)
    b.branch(header)
    b.position_at_end(after)


@contextmanager
def loop_nest(b: ir.IRBuilder, extents: Sequence[int], name: str = "d") -> Iterator[list[ir.Value]]:
    """Nested loops over `extents`, outermost first; yields the index of every level."""
    indices: list[ir.Value] = []
    with _nest(b, list(extents), indices, name):
        yield indices


@contextmanager
def _nest(b: ir.IRBuilder, extents: list[int], out: list[ir.Value], name: str) -> Iterator[None]:
    if not extents:
        yield
        return
    with for_range(b, extents[0], name=f"{name}{len(out)}") as i:
        out.append(i)
        with _nest(b, extents[1:], out, name):
            yield
