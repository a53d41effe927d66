"""Ahead-of-time compilation: a function becomes an object file, a shared library and a C header.

The program is the JIT's (codegen/program.py), compiled position-independent. A small generated
C file adds the public entry point, `int NAME(const T* in..., T* out..., void* scratch)`, the
tensor descriptions and the CPU check; the system C compiler links both into `libNAME.so`.
The JSON metadata holds the program spec, so `runtime.aot.load` runs the library with NumPy
alone. docs/aot.md describes the calling convention.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import llvmlite.binding as llvm

from codegen.aot_c import c_names, c_source, header, nbytes
from codegen.jit import (
    CPU_CHOICES,
    Target,
    host_target,
    optimize,
    target_machine,
)
from codegen.link import library_symbols
from codegen.objsyms import check_symbols
from codegen.program import Program, lower_program
from ir.diagnostics import TesselError
from ir.graph import Function
from passes.buffers import BufferAssignment
from runtime.program_spec import ProgramSpec

FORMAT = "tessel-aot"
FORMAT_VERSION = 1
# The x86-64 psABI levels, checked as a whole by the C compiler's __builtin_cpu_supports.
LEVELS = ("x86-64-v2", "x86-64-v3", "x86-64-v4")
# LLVM feature names that GCC (12 and later) can test with __builtin_cpu_supports.
CHECKABLE = frozenset(
    [
        "cmov",
        "mmx",
        "popcnt",
        "sse",
        "sse2",
        "sse3",
        "ssse3",
        "sse4.1",
        "sse4.2",
        "avx",
        "avx2",
        "sse4a",
        "fma4",
        "xop",
        "fma",
        "avx512f",
        "bmi",
        "bmi2",
        "aes",
        "pclmul",
        "avx512vl",
        "avx512bw",
        "avx512dq",
        "avx512cd",
        "avx512er",
        "avx512pf",
        "avx512vbmi",
        "avx512ifma",
        "avx5124vnniw",
        "avx5124fmaps",
        "avx512vpopcntdq",
        "avx512vbmi2",
        "gfni",
        "vpclmulqdq",
        "avx512vnni",
        "avx512bitalg",
        "avx512bf16",
        "avx512vp2intersect",
        "avx512fp16",
        "amx-tile",
        "amx-int8",
        "amx-bf16",
        "avxvnni",
        "f16c",
        "lzcnt",
        "movbe",
        "adx",
        "sha",
        "vaes",
        "rdrnd",
        "rdseed",
        "xsave",
        "prfchw",
        "serialize",
    ]
)


def compiler_version() -> str:
    try:
        return version("tessel")
    except PackageNotFoundError:
        return "unknown"


def aot_target(cpu: str) -> Target:
    """`native`, a psABI level, `generic`, or any CPU name LLVM knows."""
    if cpu in CPU_CHOICES:
        return host_target(cpu)
    if cpu == "x86-64-v4" or cpu.replace("-", "").replace("_", "").replace(".", "").isalnum():
        host_target("generic")  # initializes LLVM
        return Target(cpu, "")
    raise TesselError(f"--cpu: {cpu!r} is not a CPU name")


def required_features(target: Target) -> tuple[list[str], list[str]]:
    """(what the library checks before running, what it cannot check) for `target`."""
    if target.cpu in LEVELS:
        return [target.cpu], []
    wanted = sorted(f[1:] for f in target.features.split(",") if f.startswith("+"))
    return [f for f in wanted if f in CHECKABLE], [f for f in wanted if f not in CHECKABLE]


@dataclass
class Library:
    """Everything `tessel compile` writes for the CPU, in memory until `write` commits it."""

    name: str
    spec: ProgramSpec
    object_code: bytes
    header: str
    source: str  # NAME.c: entry point, tensor tables, CPU check
    metadata: dict[str, Any]
    weights: bytes | None  # the blob for --weights external
    ir_before: str
    _optimized: llvm.ModuleRef = field(repr=False)
    target: Target = field(repr=False)
    # object files of tessel's runtime routines the program calls (the GEMM library), by name
    runtime_objects: dict[str, bytes] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def ir_after(self) -> str:
        return str(self._optimized)

    @functools.cached_property
    def asm(self) -> str:
        tm = target_machine(self.target, jit=False)
        return str(tm.emit_assembly(self._optimized))


def compile_library(
    fn: Function,
    name: str,
    target: Target,
    opt_level: int = 3,
    external_weights: bool = False,
    extra_features: Sequence[str] = (),
    facts: dict[str, Any] | None = None,
    output_names: Sequence[str] | None = None,
    assignment: BufferAssignment | None = None,
) -> Library:
    """Compile `fn` (optimized, composites decomposed where the CPU needs it) into a library."""
    from runtime.native import ARRAY_DATA_OFFSET

    if not name.isidentifier():
        raise TesselError(f"--name: {name!r} is not a C identifier")
    program = lower_program(fn, target.caps, ARRAY_DATA_OFFSET, name, external_weights, assignment)
    tm = target_machine(target, jit=False)  # position-independent, for a shared library
    program.module.triple = llvm.get_process_triple()
    program.module.data_layout = str(tm.target_data)
    text = str(program.module)
    ref = llvm.parse_assembly(text)
    ref.verify()
    _optimize(ref, tm, opt_level)
    object_code = bytes(tm.emit_object(ref))
    check_symbols(object_code, library_symbols(), program.describe_kernels())
    runtime_objects = _runtime_objects(program, target)
    checked, unchecked = required_features(target)
    checked += [f for f in extra_features if f not in checked]
    weights = _weights_blob(program) if external_weights else None
    spec = program.spec
    outs = c_names(output_names or [f"out{i}" for i in range(len(spec.results))], "out")
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "library": f"lib{name}.so",
        "object": f"{name}.o",
        "header": f"{name}.h",
        "c_source": f"{name}.c",
        "weights": f"{name}.weights" if weights is not None else None,
        "weights_bytes": len(weights) if weights is not None else None,
        "weights_sha256": hashlib.sha256(weights).hexdigest() if weights is not None else None,
        "compiler": {"name": "tessel", "version": compiler_version()},
        **(facts or {}),
        "opt_level": opt_level,
        "target": {
            "cpu": target.cpu,
            "features": target.features,
            "checked": checked,
            "unchecked": unchecked,
        },
        "signature": {
            "inputs": [_tensor_json(p.name, p.shape, p.dtype) for p in spec.params],
            "outputs": [
                _tensor_json(n, r.shape, r.dtype) for n, r in zip(outs, spec.results, strict=True)
            ],
        },
        "scratch_bytes": spec.arena_bytes,
        "weight_bytes": sum(v.nbytes for v in program.constant_values),
        "peak_memory_bytes": spec.arena_bytes
        + sum(nbytes(p.shape, p.dtype) for p in spec.params)
        + sum(nbytes(r.shape, r.dtype) for r in spec.results),
        "spec": spec.to_json(),
    }
    return Library(
        name, spec, object_code, header(spec, name, metadata, outs),
        c_source(spec, name, checked, outs),
        metadata, weights, text, ref, target, runtime_objects,
    )  # fmt: skip


def _runtime_objects(program: Program, target: Target) -> dict[str, bytes]:
    """The precompiled routines the program's kernels call (declared, not defined, in it)."""
    from codegen import gemm_lib

    called = {f.name for f in program.module.functions if f.is_declaration}
    return {
        f"{symbol}.o": gemm_lib.library_object(target, dtype)
        for dtype, symbol in gemm_lib.SYMBOLS.items()
        if symbol in called
    }


def _optimize(module: llvm.ModuleRef, tm: llvm.TargetMachine, level: int) -> None:
    """-O3 is the JIT's pipeline; -O1/-O2 the same at a lower speed level; -O0 none."""
    if level >= 3:
        optimize(module, tm)
    elif level > 0:
        options = llvm.create_pipeline_tuning_options(speed_level=level)
        options.loop_vectorization = options.slp_vectorization = level >= 2
        options.loop_unrolling = False
        builder = llvm.create_pass_builder(tm, options)
        builder.getModulePassManager().run(module, builder)


def _tensor_json(name: str, shape: Sequence[int], dtype: str) -> dict[str, Any]:
    return {"name": name, "shape": list(shape), "dtype": dtype, "bytes": nbytes(shape, dtype)}


def _weights_blob(program: Program) -> bytes:
    blob = bytearray(program.spec.weight_bytes)
    offsets = program.spec.weight_offsets or ()
    for offset, value in zip(offsets, program.constant_values, strict=True):
        blob[offset : offset + value.nbytes] = value.tobytes()
    return bytes(blob)


# --- linking ------------------------------------------------------------------------------


def c_compiler() -> str:
    for cc in ("cc", "gcc", "clang"):
        path = shutil.which(cc)
        if path:
            return path
    raise TesselError(
        "linking a shared library needs a C compiler (cc, gcc or clang) on PATH; "
        "--emit obj works without one"
    )


def link_shared(lib: Library, folder: Path) -> Path:
    """Write NAME.o, NAME.h, NAME.c into `folder` and link lib<NAME>.so there; the library's
    size and digest go into `lib.metadata`, so that `runtime.load` can refuse a damaged copy
    before the loader maps it (a truncated library is a SIGBUS inside dlopen)."""
    (folder / f"{lib.name}.o").write_bytes(lib.object_code)
    (folder / f"{lib.name}.h").write_text(lib.header)
    (folder / f"{lib.name}.c").write_text(lib.source)
    out = folder / f"lib{lib.name}.so"
    runtime = []
    with tempfile.TemporaryDirectory() as scratch:
        for file_name, code in lib.runtime_objects.items():
            (Path(scratch) / file_name).write_bytes(code)
            runtime.append(str(Path(scratch) / file_name))
        command = [
            c_compiler(), "-shared", "-fPIC", "-O2", "-o", str(out),
            str(folder / f"{lib.name}.c"), str(folder / f"{lib.name}.o"), *runtime,
            "-Wl,-Bsymbolic", "-Wl,-z,noexecstack", "-Wl,--no-undefined", "-lm", "-lc",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        raise TesselError(f"linking lib{lib.name}.so failed:\n{done.stderr.strip()}")
    code = out.read_bytes()
    lib.metadata["library_bytes"] = len(code)
    lib.metadata["library_sha256"] = hashlib.sha256(code).hexdigest()
    return out


def scratch_folder(near: Path) -> Path:
    near.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".tessel-", dir=near))
