"""The CPU executor: JIT-compiled kernels run in schedule order over one reused arena.

Inputs are checked against the signature before any native call (shape, dtype, contiguity);
intermediate values live in one arena laid out by buffer assignment and reused across calls;
results are copied out, so a later call never overwrites what an earlier one returned.
Kernels take a row range, and large ones are split across a thread pool (ctypes releases the
GIL during the call).
"""

from __future__ import annotations

import ctypes
import itertools
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from llvmlite import ir

from codegen import softmax as softmax_kernel
from codegen.jit import Compiled, Target, compile_ir
from codegen.kernel import KernelInfo, build_kernel
from ir.graph import Function, Module, Node
from ir.ops import COMPOSITE, Op
from passes.base import PassContext
from passes.buffers import assign_buffers
from passes.decompose import Decompose
from runtime.inputs import bind_inputs

KERNEL_C_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
PARALLEL_MIN_ELEMENTS = 1 << 15  # smaller kernels are not worth waking another thread for
ALIGN = 64


def default_threads() -> int:
    env = os.environ.get("TESSEL_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class _Step:
    node: Node
    info: KernelInfo
    call: Any  # the ctypes function
    operands: tuple[Node, ...]


class CpuExecutable:
    """A compiled function. Call it with numpy arrays; it returns fresh numpy arrays."""

    def __init__(
        self, module: Module, entry: str | None = None, threads: int | None = None,
        target: Target | None = None,
    ) -> None:  # fmt: skip
        if any(_needs_decomposing(n) for f in module.functions for n in f.body):
            module = Decompose().run(module, PassContext())
        self.fn: Function = module.function(entry or module.entry)
        self.threads = threads or default_threads()
        llvm_module = ir.Module(name=f"tessel.{self.fn.name}")
        kernels = []
        for i, node in enumerate(self.fn.body):
            if node.op is Op.CONSTANT or node.type.size == 0:
                continue
            kernels.append((node, build_kernel(llvm_module, node, f"k{i}_{node.op.value}")))
        self.compiled: Compiled = compile_ir(llvm_module, target)
        self.steps = [
            _Step(node, info, KERNEL_C_TYPE(self.compiled.address(info.name)), node.srcs)
            for node, info in kernels
        ]
        self.constants = {
            n: n.attrs["value"].array.copy(order="C") for n in self.fn.body if n.op is Op.CONSTANT
        }
        self.assignment = assign_buffers(self.fn, ALIGN)
        self.arena = _aligned_bytes(self.assignment.arena_bytes)
        base = self.arena.ctypes.data
        self.addresses: dict[Node, int] = {n: base for n in self.fn.body}  # size-0 values
        for buf in self.assignment.buffers:
            self.addresses[buf.node] = base + buf.offset
        for node, arr in self.constants.items():
            self.addresses[node] = arr.ctypes.data
        self.pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    @property
    def llvm_ir(self) -> str:
        return self.compiled.ir_before

    @property
    def llvm_ir_optimized(self) -> str:
        return self.compiled.ir_after

    def __call__(self, *args: Any, **kwargs: Any) -> list[np.ndarray]:
        return self.run(args, kwargs)

    def run(
        self, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> list[np.ndarray]:
        inputs = bind_inputs(self.fn, args, kwargs)  # every check happens before native code
        addresses = dict(self.addresses)
        for param, arr in zip(self.fn.params, inputs, strict=True):
            addresses[param] = arr.ctypes.data
        # Computed results are written straight into fresh arrays (no arena copy at the end);
        # later kernels may read them there like any other buffer.
        fresh: dict[Node, np.ndarray] = {}
        for r in self.fn.results:
            if r.op not in (Op.PARAMETER, Op.CONSTANT) and r not in fresh:
                fresh[r] = np.empty(r.shape, dtype=r.dtype.np)
                addresses[r] = fresh[r].ctypes.data
        for step in self.steps:
            pointers = (ctypes.c_void_p * (1 + len(step.operands)))(
                addresses[step.node], *(addresses[s] for s in step.operands)
            )
            self._launch(step, pointers)
        out: list[np.ndarray] = []
        for r in self.fn.results:
            value = fresh.get(r)
            if value is None:
                value = self._source_value(r, inputs)
            elif any(value is earlier for earlier in out):
                value = value.copy()  # a value returned twice comes back as two arrays
            out.append(value)
        return out

    def _launch(self, step: _Step, pointers: ctypes.Array[ctypes.c_void_p]) -> None:
        rows = step.info.rows
        total = rows * step.info.work_per_row
        if self.pool is None or rows < 2 or total < PARALLEL_MIN_ELEMENTS:
            step.call(pointers, 0, rows)
            return
        chunks = min(self.threads, rows)
        bounds = [rows * k // chunks for k in range(chunks + 1)]
        futures = [
            self.pool.submit(step.call, pointers, lo, hi) for lo, hi in itertools.pairwise(bounds)
        ]
        for f in futures:
            f.result()

    def _source_value(self, node: Node, inputs: list[np.ndarray]) -> np.ndarray:
        """A returned parameter or constant, copied so the caller owns it."""
        if node.op is Op.PARAMETER:
            given: np.ndarray = inputs[self.fn.params.index(node)]
            return given.copy()
        return np.array(self.constants[node])


def _needs_decomposing(node: Node) -> bool:
    """Composites without a native kernel are expanded into primitives first."""
    if node.op is Op.SOFTMAX:
        return not softmax_kernel.applicable(node)
    return node.op in COMPOSITE | {Op.AVG_POOL}


def _aligned_bytes(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start : start + nbytes]
