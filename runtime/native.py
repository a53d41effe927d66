"""Running a program's machine code from Python: the executor behind the JIT and AOT libraries.

A `NativeProgram` needs only a `ProgramSpec` (runtime/program_spec.py) and a way to find the
program's symbols, so the same code runs a program JIT-compiled in this process, loaded from the
on-disk cache, or loaded from an AOT shared library (with NumPy alone: no LLVM, no parser).
Inputs are checked against the signature before any native call (shape, dtype, contiguity),
except in `run_unchecked`, whose caller has already checked them; results are fresh arrays,
so a later call never overwrites what an earlier one returned.

Three ways to run, fixed per executable:
- "py": a program too small for threads is one PYFUNCTYPE call to `NAME_py`, which reads the
  arrays' data pointers itself; the GIL stays held, so concurrent callers cannot share the
  arena at the same time and need no lock.
- "run": one call to `NAME_run` with the GIL released (a large program on one thread, a
  program with a loop, which may run long, or a small one when the PyArrayObject layout
  could not be verified).
- "threaded": Python launches each kernel, splitting large ones across a thread pool.
The last two hold a lock for the whole call: the arena is shared by every call.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ir.diagnostics import InputError
from ir.dtypes import DType
from ir.graph import Function, Node
from ir.ops import Op
from ir.types import TensorType
from runtime.inputs import bind_inputs
from runtime.program_spec import ALIGN, ARENA, CONST, OUTPUT, PARAM, ProgramSpec, Ref

KERNEL_C_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
RUN_C_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p)
TABLE_C_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
SET_C_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
DISPATCH_ARENA_LIMIT = 1 << 26  # a native dispatcher's own scratch: dispatch_parts
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


@dataclass(frozen=True)
class Rows:
    """A kernel's parallel iteration space: [0, rows), work_per_row elements each."""

    rows: int
    work_per_row: int


@dataclass
class _Step:
    node: Node | None  # None when loaded without IR (cache, AOT library)
    info: Rows
    call: Any  # the ctypes function
    buffers: tuple[Ref, ...]
    check: int  # nonzero: the status word says whether this step's check failed
    control: bool  # a loop or branch: a failed check inside it leaves its code in the status word


@dataclass(frozen=True)
class DispatchParts:
    program: int  # the address of NAME_run
    arena: np.ndarray  # the scratch its calls use
    releases_gil: bool
    shape: tuple[int, ...]  # the one result's
    scalar_type: type


class NativeProgram:
    """A program's machine code, callable with numpy arrays; returns fresh numpy arrays."""

    def __init__(
        self, spec: ProgramSpec, address: Callable[[str], int], threads: int | None = None,
        nodes: Sequence[Node] | None = None, weights: np.ndarray | None = None,
    ) -> None:  # fmt: skip
        """`address(symbol)` finds the program's functions; `nodes` are the steps' IR nodes,
        when known (for introspection only); `weights` is the blob of a program built with
        external weights (raw bytes, `spec.weight_bytes` long)."""
        self.spec = spec
        if spec.weight_offsets is not None:
            if weights is None or weights.nbytes != spec.weight_bytes:
                got = "none" if weights is None else f"{weights.nbytes} bytes"
                raise InputError(
                    f"{spec.entry} keeps its weights outside the code and needs "
                    f"{spec.weight_bytes} bytes of them, got {got}"
                )
            self._weights = _aligned_bytes(spec.weight_bytes)  # kept alive: the code points in
            self._weights[:] = weights.reshape(-1).view(np.uint8)
            SET_C_TYPE(address(spec.set_weights_symbol))(self._weights.ctypes.data)
        if not hasattr(self, "fn"):
            self.fn: Function = _signature(spec)
        self.threads = threads or default_threads()
        self.steps = [
            _Step(
                nodes[i] if nodes else None,
                Rows(s.rows, s.work_per_row),
                KERNEL_C_TYPE(address(s.kernel)),
                s.buffers,
                s.check,
                s.control,
            )
            for i, s in enumerate(spec.steps)
        ]
        table = (ctypes.c_void_p * max(len(spec.constants), 1))()
        TABLE_C_TYPE(address(spec.constants_symbol))(table)
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
        self._run_address = address(spec.run_symbol)
        self._run_call = RUN_C_TYPE(self._run_address)
        small = self.threads == 1 or not any(_splits(s.info) for s in self.steps)
        self.pool = ThreadPoolExecutor(self.threads) if not small else None
        _LIVE.add(self)
        self._py: Any = None
        self._py_releases_gil = False
        if small and spec.py_symbol and spec.data_offset == ARRAY_DATA_OFFSET:
            # The entry that takes the arrays themselves (it reads their data pointers, no
            # ctypes conversions). A program that may run long releases the GIL for the call
            # (CFUNCTYPE does; its arguments stay referenced by this frame), so calls from
            # other threads take the lock that keeps them off the shared arena.
            self._py_releases_gil = any(s.control for s in self.steps) or (
                self.threads == 1 and any(_splits(s.info) for s in self.steps)
            )
            n = len(spec.params) + len(spec.outputs)
            kind = ctypes.CFUNCTYPE if self._py_releases_gil else ctypes.PYFUNCTYPE
            py_type = kind(ctypes.c_int32, *[ctypes.py_object] * n, ctypes.c_void_p)
            self._py = py_type(address(spec.py_symbol))
        held = self._py is not None and not self._py_releases_gil
        self.mode = "py" if held else "threaded" if self.pool else "run"

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
        if self._py is not None and self._py_releases_gil:
            with self._lock:
                failed = self._py(*arrays, *outs, self._arena_address)
        elif self._py is not None:
            failed = self._py(*arrays, *outs, self._arena_address)
        else:
            io = [a.ctypes.data for a in arrays] + [o.ctypes.data for o in outs]
            with self._lock:
                if self.pool is None:
                    table = (ctypes.c_void_p * max(len(io), 1))(*io)
                    failed = self._run_call(table, self._arena_address)
                else:
                    failed = self._run_threaded(io)
        if failed:
            raise self.spec.checks[failed - 1].error()
        return outs if self._direct else self._results(arrays, outs)

    def single_result_call(self) -> Callable[[Sequence[np.ndarray]], np.ndarray] | None:
        """For one computed result on the single-call path: a closure with nothing else in
        it, for @jit's cached calls (its arguments are checked by the caller, as for
        `run_unchecked`)."""
        if self._py is None or not self._direct or len(self._out_types) != 1:
            return None
        (shape, scalar_type), py, arena = self._out_types[0], self._py, self._arena_address
        empty, checks, lock = np.empty, self.spec.checks, self._lock

        def call(arrays: Sequence[np.ndarray]) -> np.ndarray:
            out = empty(shape, scalar_type)
            if failed := py(*arrays, out, arena):
                raise checks[failed - 1].error()
            return out

        def call_locked(arrays: Sequence[np.ndarray]) -> np.ndarray:
            out = empty(shape, scalar_type)
            with lock:
                failed = py(*arrays, out, arena)
            if failed:
                raise checks[failed - 1].error()
            return out

        return call_locked if self._py_releases_gil else call

    def dispatch_parts(self) -> DispatchParts | None:
        """What a native dispatcher needs to run this program in place of
        `single_result_call` (None where that does not apply).

        A call that keeps the GIL never overlaps another, so it shares this program's arena; one
        that releases it gets scratch of its own (the Python path's calls hold the lock on this
        one), unless that would cost more than DISPATCH_ARENA_LIMIT bytes.
        """
        if self.single_result_call() is None:
            return None
        shape, scalar_type = self._out_types[0]
        arena = self._arena
        if self._py_releases_gil:
            if self.spec.arena_bytes > DISPATCH_ARENA_LIMIT:
                return None
            arena = _aligned_bytes(self.spec.arena_bytes)
        return DispatchParts(self._run_address, arena, self._py_releases_gil, shape, scalar_type)

    def _run_threaded(self, io: list[int]) -> int:
        """Runs the steps as `NAME_run` would; returns what it would (0 or a check's code)."""
        nparams = len(self.spec.params)
        status = None
        if self.spec.status_offset is not None:
            at = self.spec.status_offset
            status = self._arena[at : at + 4].view(np.int32)
            status[0] = 0

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
            if step.check and status is not None and status[0]:
                return int(status[0]) if step.control else step.check
        return 0

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


# Every program, so that a process forked from this one gets fresh pools and locks: the
# child has none of the parent's worker threads (a pool that believes it has them waits for
# them forever), and a lock some other thread held at the fork stays held.
_LIVE: weakref.WeakSet[NativeProgram] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for program in list(_LIVE):
        program._lock = threading.Lock()
        if program.pool is not None:
            program.pool = ThreadPoolExecutor(program.threads)


os.register_at_fork(after_in_child=_after_fork_in_child)


def _splits(info: Rows) -> bool:
    """Whether a kernel is worth sharing among threads."""
    return info.rows >= 2 and info.rows * info.work_per_row >= PARALLEL_MIN_ELEMENTS


def _signature(spec: ProgramSpec) -> Function:
    """A body-less function with the program's parameters, for checking arguments."""
    params = tuple(
        Node(Op.PARAMETER, TensorType(p.shape, DType(p.dtype)), name=p.name) for p in spec.params
    )
    return Function(spec.entry, params, (), ())


def _aligned_bytes(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start : start + nbytes]
