"""Index checks for gather and scatter: positions read from an integer operand, and the status
word through which kernels report out-of-range indices.

An index in mode "check" that falls outside its axis is NumPy's IndexError. Kernels cannot
raise, so they clamp it (no access ever leaves the operand) and remember the failure in a flag
that lives in a register; at its end the kernel stores 1 into the program's status word, an i32
in the arena that it receives as the last entry of its buffer table (a store inside the loop
would keep LLVM from vectorizing it). The program's entry stops after that step and returns its
code (codegen/program.py), and the runtime raises the error located at the op. (gather is a
row of codegen/emit.py, scatter a kernel of its own in codegen/scatter.py.)
"""

from __future__ import annotations

from llvmlite import ir

from codegen.types import I1, I32, I64
from ir.dtypes import DType
from ir.graph import Node
from ir.ops import CONTROL, INDEXED, Op


class StatusWord:
    """The program's status word as one kernel sees it (`ptr`), and the kernel's flag."""

    def __init__(self, ptr: ir.Value) -> None:
        self.ptr = ptr
        self.flag: ir.Value | None = None  # an i1 stack slot, which LLVM keeps in a register

    def report(self, b: ir.IRBuilder, bad: ir.Value) -> None:
        """Remember that the check `bad` (an i1) failed."""
        if self.flag is None:
            with b.goto_entry_block():
                self.flag = b.alloca(I1, name="failed")
                b.store(I1(0), self.flag)
        b.store(b.or_(b.load(self.flag, typ=I1), bad), self.flag)

    def finish(self, b: ir.IRBuilder) -> None:
        """At the kernel's end: set the status word if any check failed."""
        if self.flag is not None:
            with b.if_then(b.load(self.flag, typ=I1), likely=False):
                b.store(I32(1), self.ptr)


def needs_status(node: Node) -> bool:
    """Whether `node`'s kernel checks indices (and so receives the status word)."""
    if node.op in INDEXED:
        return bool(node.attrs["mode"] == "check")
    if node.op is Op.FUSION or node.op in CONTROL:  # a loop passes it to its body's kernels
        return any(needs_status(n) for f in node.functions for n in f.body)
    return False


def _as_i64(b: ir.IRBuilder, value: ir.Value, dtype: DType) -> ir.Value:
    if value.type == I64:
        return value
    return b.sext(value, I64) if dtype.is_signed else b.zext(value, I64)


def position(
    b: ir.IRBuilder, raw: ir.Value, dtype: DType, n: int, mode: str, status: StatusWord | None
) -> ir.Value:
    """The position in [0, n) that index `raw` (of integer type `dtype`) names under `mode`;
    in mode "check" an index outside [-n, n) is reported to `status` and reads the position
    0..n-1 nearest to it."""
    v = _as_i64(b, raw, dtype)
    top = I64(max(n - 1, 0))
    if dtype == DType.U64:  # values past int64's range look negative as i64: compare unsigned
        if mode == "wrap":
            return b.urem(v, I64(max(n, 1)))
        past = b.icmp_unsigned(">=", v, I64(n))
        if mode == "check":
            _report(b, past, status)
        return b.select(past, top, v)
    if mode == "wrap":
        r = b.srem(v, I64(max(n, 1)))
        return b.select(b.icmp_signed("<", r, I64(0)), b.add(r, I64(n)), r)
    if mode == "check":
        _report(b, b.or_(b.icmp_signed("<", v, I64(-n)), b.icmp_signed(">=", v, I64(n))), status)
        v = b.select(b.icmp_signed("<", v, I64(0)), b.add(v, I64(n)), v)
    low = b.select(b.icmp_signed("<", v, I64(0)), I64(0), v)
    return b.select(b.icmp_signed(">", low, top), top, low)


def _report(b: ir.IRBuilder, bad: ir.Value, status: StatusWord | None) -> None:
    if status is None:
        raise ValueError("a checked index needs the program's status word")
    status.report(b, bad)
