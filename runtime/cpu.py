"""The CPU executor: one native program per function, called with numpy arrays.

The whole function is one LLVM module (codegen/program.py): kernels, constants as read-only
globals, and entry points that run every kernel in schedule order over a scratch arena laid out
by buffer assignment. Inputs are checked against the signature before any native call (shape,
dtype, contiguity), except in `run_unchecked`, whose caller has already checked them; results
are fresh arrays, so a later call never overwrites what an earlier one returned.

Three ways to run, fixed per executable:
- "py": a program too small for threads is one PYFUNCTYPE call to `<entry>_py`, which reads the
  arrays' data pointers itself; the GIL stays held, so concurrent callers cannot share the
  arena at the same time and need no lock.
- "run": one call to `<entry>_run` with the GIL released (a large program on one thread, or a
  small one when the PyArrayObject layout could not be verified).
- "threaded": Python launches each kernel, splitting large ones across a thread pool.
The last two hold a lock for the whole call: the arena is shared by every call.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from codegen import softmax as softmax_kernel
from codegen.jit import Compiled, Target, compile_ir, host_target, load_object
from codegen.kernel import KernelInfo
from codegen.program import ALIGN, ARENA, CONST, OUTPUT, PARAM, ProgramSpec, Ref, lower_program
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import COMPOSITE, Op
from ir.types import TensorType
from passes.base import PassContext
from passes.decompose import Decompose
from runtime.inputs import bind_inputs

KERNEL_C_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
RUN_C_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
TABLE_C_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
PARALLEL_MIN_ELEMENTS = 1 << 15  # smaller kernels are not worth waking another thread for


def _array_data_offset() -> int | None:
    """The byte offset of `data` in numpy's PyArrayObject, checked on live arrays, or None.

    It follows PyObject_HEAD (16 bytes on a default CPython build); other builds (free-threaded,
    debug) have a different header, and then `_py` is never used rather than guessed at.
    """
    base = np.arange(24, dtype=np.float64)
    samples: list[np.ndarray] = [
        base,
        base[3:],
        base.reshape(4, 6)[1:, 2:],
        np.zeros(0, np.int8),
        np.array(1.0),
    ]
    for candidate in (16,):
        if all(
            ctypes.c_void_p.from_address(id(a) + candidate).value == a.ctypes.data for a in samples
        ):
            return candidate
    return None


ARRAY_DATA_OFFSET = _array_data_offset()


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
    node: Node | None  # None when loaded from a payload (there is no IR)
    info: KernelInfo
    call: Any  # the ctypes function
    buffers: tuple[Ref, ...]


class CpuExecutable:
    """A compiled function. Call it with numpy arrays; it returns fresh numpy arrays."""

    def __init__(
        self, module: Module, entry: str | None = None, threads: int | None = None,
        target: Target | None = None,
    ) -> None:  # fmt: skip
        if any(_needs_decomposing(n) for f in module.functions for n in f.body):
            module = Decompose().run(module, PassContext())
        self.fn: Function = module.function(entry or module.entry)
        target = target or host_target()
        program = lower_program(self.fn, target.cpu, target.features, ARRAY_DATA_OFFSET)
        self._load(program.spec, compile_ir(program.module, target), threads, program.kernel_nodes)

    @classmethod
    def from_payload(
        cls, spec_json: dict[str, Any], object_code: bytes, threads: int | None = None
    ) -> CpuExecutable:
        """An executable from `payload()` output alone: no IR, no passes, no LLVM codegen.

        `.fn` is then a signature-only function (parameters, no body), `.llvm_ir` is empty and
        `.compiled.asm()` is unavailable.
        """
        spec = ProgramSpec.from_json(spec_json)
        self = cls.__new__(cls)
        self.fn = _signature(spec)
        target = Target(spec.target_cpu, spec.target_features)
        self._load(spec, load_object(object_code, target), threads, None)
        return self

    def payload(self) -> tuple[dict[str, Any], bytes]:
        """(JSON-serializable spec, object code): what `from_payload` needs."""
        return self.spec.to_json(), self.compiled.object_code

    def _load(
        self, spec: ProgramSpec, compiled: Compiled, threads: int | None,
        nodes: Sequence[Node] | None,
    ) -> None:  # fmt: skip
        self.spec = spec
        self.compiled = compiled
        self.threads = threads or default_threads()
        self.steps = [
            _Step(nodes[i] if nodes else None, s.info, KERNEL_C_TYPE(compiled.address(s.kernel)),
                  s.buffers)
            for i, s in enumerate(spec.steps)
        ]  # fmt: skip
        table = (ctypes.c_void_p * max(len(spec.constants), 1))()
        TABLE_C_TYPE(compiled.address(spec.constants_symbol))(table)
        self._constant_addresses = {c.name: table[i] or 0 for i, c in enumerate(spec.constants)}
        self._arena = _aligned_bytes(spec.arena_bytes)
        self._arena_address = self._arena.ctypes.data
        self._lock = threading.Lock()
        # np.empty is twice as fast given the scalar type (np.float32) as given a dtype object
        self._out_types = [(o.shape, DType(o.dtype).np.type) for o in spec.outputs]
        # The common case, every result a distinct computed value in slot order, skips the
        # per-result assembly.
        self._direct = [r.source for r in spec.results] == [
            Ref(OUTPUT, k) for k in range(len(spec.outputs))
        ]
        self._run_call = RUN_C_TYPE(compiled.address(spec.run_symbol))
        small = self.threads == 1 or not any(_splits(s.info) for s in self.steps)
        self.pool = ThreadPoolExecutor(self.threads) if not small else None
        self._py: Any = None
        if small and spec.py_symbol and spec.data_offset == ARRAY_DATA_OFFSET:
            if self.threads == 1 and any(_splits(s.info) for s in self.steps):
                pass  # long-running: release the GIL ("run") rather than hold it
            else:
                n = len(spec.params) + len(spec.outputs)
                py_type = ctypes.PYFUNCTYPE(None, *[ctypes.py_object] * n, ctypes.c_void_p)
                self._py = py_type(compiled.address(spec.py_symbol))
        self.mode = "py" if self._py else "threaded" if self.pool else "run"

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
        return self.run_unchecked(bind_inputs(self.fn, args, kwargs))  # checks come first

    def run_unchecked(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run on arrays that already have exactly the parameters' shapes and dtypes and are
        C-contiguous (not checked: a wrong array is undefined behaviour)."""
        # Computed results are written straight into fresh arrays (no arena copy at the end);
        # later kernels may read them there like any other buffer.
        outs = [np.empty(shape, dtype) for shape, dtype in self._out_types]
        if self._py is not None:
            self._py(*arrays, *outs, self._arena_address)
        else:
            io = [a.ctypes.data for a in arrays] + [o.ctypes.data for o in outs]
            with self._lock:
                if self.pool is None:
                    self._run_call((ctypes.c_void_p * max(len(io), 1))(*io), self._arena_address)
                else:
                    self._run_threaded(io)
        return outs if self._direct else self._results(arrays, outs)

    def single_result_call(self) -> Callable[[Sequence[np.ndarray]], np.ndarray] | None:
        """For one computed result on the single-call path: a closure with nothing else in
        it, for @jit's cached calls (its arguments are checked by the caller, as for
        `run_unchecked`)."""
        if self._py is None or not self._direct or len(self._out_types) != 1:
            return None
        (shape, scalar_type), py, arena = self._out_types[0], self._py, self._arena_address
        empty = np.empty

        def call(arrays: Sequence[np.ndarray]) -> np.ndarray:
            out = empty(shape, scalar_type)
            py(*arrays, out, arena)
            return out

        return call

    def _run_threaded(self, io: list[int]) -> None:
        nparams = len(self.spec.params)

        def address(ref: Ref) -> int:
            if ref.kind == ARENA:
                return self._arena_address + int(ref.value)
            if ref.kind == PARAM:
                return io[int(ref.value)]
            if ref.kind == OUTPUT:
                return io[nparams + int(ref.value)]
            return self._constant_addresses[str(ref.value)]

        for step in self.steps:
            pointers = (ctypes.c_void_p * len(step.buffers))(*map(address, step.buffers))
            self._launch(step, pointers)

    def _launch(self, step: _Step, pointers: ctypes.Array[ctypes.c_void_p]) -> None:
        rows = step.info.rows
        if self.pool is None or not _splits(step.info):
            step.call(pointers, 0, rows)
            return
        chunks = min(self.threads, rows)
        bounds = [rows * k // chunks for k in range(chunks + 1)]
        futures = [
            self.pool.submit(step.call, pointers, lo, hi) for lo, hi in itertools.pairwise(bounds)
        ]
        for f in futures:
            f.result()

    def _results(self, arrays: Sequence[np.ndarray], outs: list[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for r in self.spec.results:
            source = r.source
            if source.kind == OUTPUT:
                value = outs[int(source.value)]
                if any(value is earlier for earlier in out):
                    value = value.copy()  # a value returned twice comes back as two arrays
            elif source.kind == PARAM:
                value = arrays[int(source.value)].copy()  # the caller owns what it gets
            else:
                value = self._constant(r.shape, r.dtype, source)
            out.append(value)
        return out

    def _constant(self, shape: tuple[int, ...], dtype: str, source: Ref) -> np.ndarray:
        """A copy of a constant, read from the program's read-only global."""
        assert source.kind == CONST
        value = np.empty(shape, DType(dtype).np)
        if value.nbytes:
            address = self._constant_addresses[str(source.value)]
            ctypes.memmove(value.ctypes.data, address, value.nbytes)
        return value


def _splits(info: KernelInfo) -> bool:
    """Whether a kernel is worth sharing among threads."""
    return info.rows >= 2 and info.rows * info.work_per_row >= PARALLEL_MIN_ELEMENTS


def _signature(spec: ProgramSpec) -> Function:
    """A body-less function with the program's parameters, for checking arguments."""
    params = tuple(
        Node(Op.PARAMETER, TensorType(p.shape, DType(p.dtype)), name=p.name) for p in spec.params
    )
    return Function(spec.entry, params, (), ())


def _needs_decomposing(node: Node) -> bool:
    """Composites without a native kernel are expanded into primitives first."""
    if node.op is Op.SOFTMAX:
        return not softmax_kernel.applicable(node)
    return node.op in COMPOSITE | {Op.AVG_POOL}


def _aligned_bytes(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start : start + nbytes]
