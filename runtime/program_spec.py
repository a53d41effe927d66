"""The contract between generated code and the runtime: a program's spec, as plain JSON data.

A `ProgramSpec` says everything needed to call a program's machine code without its IR: the
parameters and results, the scratch arena's size, the kernels in schedule order with the buffers
each one reads and writes, the constants, and the CPU it was built for. codegen/program.py
writes it next to the code; the JIT, the on-disk cache and AOT libraries read it. This module
imports neither LLVM nor the parser, so a compiled artifact runs with NumPy alone.

Symbols of a program named NAME:

    i32 NAME_run(ptr io, ptr arena)
        `io` holds the parameters' data pointers in order, then one pointer per computed
        output slot. Every kernel runs in schedule order over all its rows; reentrant as long
        as each concurrent caller passes its own `arena` (`arena_bytes`, 64-byte aligned).
        Returns 0, or the code of the first step whose check failed (`checks[code - 1]`
        says what; the outputs are then unspecified).
    i32 NAME_py(PyObject* in_0, ..., PyObject* out_0, ..., ptr arena)
        Reads each numpy array's data pointer from its PyArrayObject (at `data_offset`) and
        calls `_run`, returning what it returns; emitted only when the compiler knew the
        offset.
    void NAME_constants(ptr table)
        Stores the address of every constant (spec order) into `table`.
    void NAME_set_weights(ptr blob)
        Only with external weights: where the constants are (see `weight_offsets`).
    void NAME_k<i>_<op>(ptr* buffers, i64 start, i64 stop)
        The kernels (codegen/kernel.py ABI), for runtimes that split rows across threads.
        A step with a `check` code gets the status word (an i32 at arena offset
        `status_offset`, zero before the step) as its last buffer and makes it nonzero when
        the check fails. A `while` step (one kernel running a whole loop) leaves there the
        code of the check inside the loop that failed, which is what `_run` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ir.diagnostics import IndexOutOfRange, Loc
from ir.ops import CONTROL

SPEC_VERSION = 3  # 2: the target names the caches its kernels were blocked for; 3: checks
ALIGN = 64  # arena offsets and constants: a cache line, enough for AVX-512 loads

ARENA, PARAM, OUTPUT, CONST = "arena", "param", "output", "const"
REF_KINDS = (ARENA, PARAM, OUTPUT, CONST)


@dataclass(frozen=True)
class Ref:
    """Where one buffer lives: an arena offset, parameter i, output slot k or a constant."""

    kind: str
    value: int | str  # an int, except a constant's symbol

    def to_json(self) -> list[Any]:
        return [self.kind, self.value]

    @staticmethod
    def from_json(data: list[Any]) -> Ref:
        kind, value = data
        if kind not in REF_KINDS or not isinstance(value, str if kind == CONST else int):
            raise ValueError(f"bad buffer reference {data!r}")
        return Ref(kind, value)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # tessel's spelling (f32, bf16, ...), see ir.dtypes.DType

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @staticmethod
    def from_json(data: dict[str, Any]) -> TensorSpec:
        return TensorSpec(data["name"], tuple(int(d) for d in data["shape"]), data["dtype"])


@dataclass(frozen=True)
class CheckSpec:
    """What a failed check means: the error's message and where the op came from."""

    message: str
    file: str | None = None
    line: int = 0
    col: int = 0
    source_line: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "file": self.file, "line": self.line,
                "col": self.col, "source_line": self.source_line}  # fmt: skip

    def error(self) -> IndexOutOfRange:
        loc = None if self.file is None else Loc(self.file, self.line, self.col, self.source_line)
        return IndexOutOfRange(self.message, loc)

    @staticmethod
    def from_json(data: dict[str, Any]) -> CheckSpec:
        return CheckSpec(str(data["message"]), data["file"], int(data["line"]), int(data["col"]),
                         data["source_line"])  # fmt: skip


_CONTROL_NAMES = frozenset(op.value for op in CONTROL)


@dataclass(frozen=True)
class StepSpec:
    kernel: str
    op: str
    rows: int
    work_per_row: int
    buffers: tuple[Ref, ...]  # the kernel ABI's table: output, then operands (then status)
    check: int = 0  # 0, or the code `run` returns when this step's check fails

    @property
    def control(self) -> bool:
        """A loop or branch: it runs other kernels and, when a check inside fails, leaves that
        check's code in the status word itself."""
        return self.op in _CONTROL_NAMES

    def to_json(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "op": self.op,
            "rows": self.rows,
            "work_per_row": self.work_per_row,
            "buffers": [b.to_json() for b in self.buffers],
            "check": self.check,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> StepSpec:
        buffers = tuple(Ref.from_json(b) for b in data["buffers"])
        return StepSpec(
            data["kernel"], data["op"], data["rows"], data["work_per_row"], buffers,
            int(data["check"]),
        )  # fmt: skip


@dataclass(frozen=True)
class ResultSpec:
    shape: tuple[int, ...]
    dtype: str
    source: Ref  # OUTPUT, PARAM or CONST

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype, "source": self.source.to_json()}

    @staticmethod
    def from_json(data: dict[str, Any]) -> ResultSpec:
        shape = tuple(int(d) for d in data["shape"])
        return ResultSpec(shape, data["dtype"], Ref.from_json(data["source"]))


@dataclass(frozen=True)
class ProgramSpec:
    """Everything the runtime needs to call a program's object code, as plain JSON data."""

    entry: str
    params: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]  # computed output slots, `io[len(params) + k]`
    results: tuple[ResultSpec, ...]
    arena_bytes: int
    steps: tuple[StepSpec, ...]
    constants: tuple[TensorSpec, ...]  # name = the global's symbol
    target_cpu: str
    target_features: str
    target_caches: tuple[int, int, int]  # the L1d, L2, L3 bytes its kernels were blocked for
    data_offset: int | None  # the PyArrayObject data offset `_py` was built for; None: no `_py`
    # External weights: each constant's byte offset in one blob the caller hands to
    # NAME_set_weights (64-byte aligned) before the first run; None: constants are in the code.
    weight_offsets: tuple[int, ...] | None = None
    weight_bytes: int = 0
    status_offset: int | None = None  # the status word's arena offset, if a step checks
    checks: tuple[CheckSpec, ...] = ()  # what code i + 1 from `run` means

    @property
    def run_symbol(self) -> str:
        return f"{self.entry}_run"

    @property
    def py_symbol(self) -> str | None:
        return None if self.data_offset is None else f"{self.entry}_py"

    @property
    def set_weights_symbol(self) -> str:
        return f"{self.entry}_set_weights"

    @property
    def constants_symbol(self) -> str:
        return f"{self.entry}_constants"

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SPEC_VERSION,
            "entry": self.entry,
            "params": [p.to_json() for p in self.params],
            "outputs": [o.to_json() for o in self.outputs],
            "results": [r.to_json() for r in self.results],
            "arena_bytes": self.arena_bytes,
            "steps": [s.to_json() for s in self.steps],
            "constants": [c.to_json() for c in self.constants],
            "target": {
                "cpu": self.target_cpu,
                "features": self.target_features,
                "caches": list(self.target_caches),
            },
            "data_offset": self.data_offset,
            "weights": None
            if self.weight_offsets is None
            else {"offsets": list(self.weight_offsets), "bytes": self.weight_bytes},
            "status_offset": self.status_offset,
            "checks": [c.to_json() for c in self.checks],
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> ProgramSpec:
        weights = data.get("weights")
        if data.get("version") != SPEC_VERSION:
            raise ValueError(f"program spec version {data.get('version')!r}, want {SPEC_VERSION}")
        return ProgramSpec(
            entry=data["entry"],
            params=tuple(TensorSpec.from_json(p) for p in data["params"]),
            outputs=tuple(TensorSpec.from_json(o) for o in data["outputs"]),
            results=tuple(ResultSpec.from_json(r) for r in data["results"]),
            arena_bytes=int(data["arena_bytes"]),
            steps=tuple(StepSpec.from_json(s) for s in data["steps"]),
            constants=tuple(TensorSpec.from_json(c) for c in data["constants"]),
            target_cpu=data["target"]["cpu"],
            target_features=data["target"]["features"],
            target_caches=tuple(int(b) for b in data["target"]["caches"]),  # type: ignore[arg-type]
            data_offset=data["data_offset"],
            weight_offsets=None if weights is None else tuple(int(o) for o in weights["offsets"]),
            weight_bytes=0 if weights is None else int(weights["bytes"]),
            status_offset=data["status_offset"],
            checks=tuple(CheckSpec.from_json(c) for c in data["checks"]),
        )
