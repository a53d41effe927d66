"""bf16 x bf16 -> f32 dot_generals (and their output fusions) on AMX-BF16 tiles (TDPBF16PS)
where the caps have them and the OS grants them, else with AVX-512 BF16 (VDPBF16PS).

The kernel is codegen/gemm_int8.py's with Kind BF16: the same packing (two k per 32-bit
element of a B panel row instead of four), blocking, run-time choice of path and epilogue.
It needs AVX-512 BF16 for the blocks the tiles do not compute (every CPU with AMX-BF16 has
it); without it the cpu pipeline widens bf16 dots to f32 for the f32 GEMM (passes/widen.py).
Each product of two bf16 values is exact in f32 and the sums are f32, in the order the
instructions choose; the op leaves that order open (docs/graph-language.md).
"""

from __future__ import annotations

from llvmlite import ir

from codegen import gemm_int8
from codegen.cpu_caps import CpuCaps
from ir.graph import Node


def applicable(node: Node, caps: CpuCaps) -> bool:
    """A bf16 dot_general into f32, alone or with an epilogue, on a CPU with AVX-512 BF16."""
    return gemm_int8.plan(node, caps, gemm_int8.BF16) is not None


def supported(caps: CpuCaps) -> bool:
    """Whether `caps` has the bf16 units the kernel needs (the cpu pipeline asks)."""
    return gemm_int8.BF16.supported(caps)


def build(module: ir.Module, node: Node, name: str, caps: CpuCaps) -> tuple[int, int]:
    """Emit the kernel `name` for `node`; returns (rows, work per row) for the executor."""
    return gemm_int8.build(module, node, name, caps, gemm_int8.BF16)
