"""Ahead-of-time compilation: a function becomes an object file, a shared library and a C header.

The program is the JIT's (codegen/program.py), compiled position-independent. A small generated
C file adds the public entry point, `int NAME(const T* in..., T* out..., void* scratch)`, the
tensor descriptions and the CPU check; the system C compiler links both into `libNAME.so`.
The JSON metadata holds the program spec, so `runtime.aot.load` runs the library with NumPy
alone. docs/aot.md describes the calling convention.
"""

from __future__ import annotations

import functools
import math
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import llvmlite.binding as llvm
import numpy as np

from codegen.jit import CPU_CHOICES, Target, host_target, optimize, target_machine
from codegen.program import Program, lower_program
from ir.diagnostics import TesselError
from ir.graph import Function
from runtime.program_spec import CONST, OUTPUT, PARAM, ProgramSpec

FORMAT = "tessel-aot"
FORMAT_VERSION = 1
ERRORS = {"TESSEL_OK": 0, "TESSEL_ERROR_CPU": 1, "TESSEL_ERROR_NO_MEMORY": 2,
          "TESSEL_ERROR_NO_WEIGHTS": 3}  # fmt: skip
C_TYPES = {"f64": "double", "f32": "float", "f16": "uint16_t", "bf16": "uint16_t",
           "i64": "int64_t", "i32": "int32_t", "i16": "int16_t", "i8": "int8_t",
           "u8": "uint8_t", "bool": "uint8_t"}  # fmt: skip
DTYPE_CODES = {name: i + 1 for i, name in enumerate(C_TYPES)}
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
) -> Library:
    """Compile `fn` (optimized, composites decomposed where the CPU needs it) into a library."""
    from runtime.native import ARRAY_DATA_OFFSET

    if not name.isidentifier():
        raise TesselError(f"--name: {name!r} is not a C identifier")
    program = lower_program(
        fn, target.cpu, target.features, ARRAY_DATA_OFFSET, name, external_weights
    )
    tm = target_machine(target, jit=False)  # position-independent, for a shared library
    program.module.triple = llvm.get_process_triple()
    program.module.data_layout = str(tm.target_data)
    text = str(program.module)
    ref = llvm.parse_assembly(text)
    ref.verify()
    _optimize(ref, tm, opt_level)
    object_code = bytes(tm.emit_object(ref))
    runtime_objects = _runtime_objects(program, target)
    checked, unchecked = required_features(target)
    checked += [f for f in extra_features if f not in checked]
    weights = _weights_blob(program) if external_weights else None
    spec = program.spec
    outs = _c_names(output_names or [f"out{i}" for i in range(len(spec.results))], "out")
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "library": f"lib{name}.so",
        "object": f"{name}.o",
        "header": f"{name}.h",
        "c_source": f"{name}.c",
        "weights": f"{name}.weights" if weights is not None else None,
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
        + sum(_nbytes(p.shape, p.dtype) for p in spec.params)
        + sum(_nbytes(r.shape, r.dtype) for r in spec.results),
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


def _nbytes(shape: Sequence[int], dtype: str) -> int:
    return math.prod(shape) * np.dtype(_np_dtype(dtype)).itemsize


def _np_dtype(dtype: str) -> Any:
    from ir.dtypes import DType

    return DType(dtype).np


def _tensor_json(name: str, shape: Sequence[int], dtype: str) -> dict[str, Any]:
    return {"name": name, "shape": list(shape), "dtype": dtype, "bytes": _nbytes(shape, dtype)}


def _weights_blob(program: Program) -> bytes:
    blob = bytearray(program.spec.weight_bytes)
    offsets = program.spec.weight_offsets or ()
    for offset, value in zip(offsets, program.constant_values, strict=True):
        blob[offset : offset + value.nbytes] = value.tobytes()
    return bytes(blob)


# --- the C side ---------------------------------------------------------------------------


def _c_names(names: Sequence[str], prefix: str, taken: Sequence[str] = ()) -> list[str]:
    """Graph value names as distinct C parameter names (`prefix<i>` where one will not do)."""
    reserved = {"scratch", "io", "owned", "constants", *taken}
    out: list[str] = []
    for i, n in enumerate(names):
        c = n.replace(".", "_")
        if not c.isidentifier() or c in reserved or c in out:
            c = f"{prefix}{i}"
        out.append(c)
    return out


def _arg_names(spec: ProgramSpec, outs: Sequence[str]) -> list[str]:
    return _c_names([p.name for p in spec.params], "in", outs)


def _signature(spec: ProgramSpec, name: str, outs: Sequence[str]) -> str:
    args = _arg_names(spec, outs)
    ins = [f"const {C_TYPES[p.dtype]}* {a}" for a, p in zip(args, spec.params, strict=True)]
    results = [f"{C_TYPES[r.dtype]}* {o}" for o, r in zip(outs, spec.results, strict=True)]
    return f"int {name}({', '.join([*ins, *results, 'void* scratch'])})"


def header(spec: ProgramSpec, name: str, metadata: dict[str, Any], outs: Sequence[str]) -> str:
    guard = f"TESSEL_{name.upper()}_H"
    lines = [
        f"/* {name}.h: generated by tessel {metadata['compiler']['version']}; do not edit.",
        f" * Compiled for CPU '{metadata['target']['cpu']}'; see {name}.json for the details.",
        " * Calling convention, memory and threads: docs/aot.md in tessel. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        "#ifndef TESSEL_COMMON_DEFINED",
        "#define TESSEL_COMMON_DEFINED",
        *(f"#define {k} {v}" for k, v in ERRORS.items()),
        "",
        "/* Element types; f16 and bf16 travel as their 16-bit patterns (uint16_t). */",
        *(f"#define TESSEL_{k.upper()} {v}" for k, v in DTYPE_CODES.items()),
        "",
        "typedef struct tessel_tensor_info {",
        "  const char* name;",
        "  int dtype;             /* TESSEL_F32, ... */",
        '  const char* dtype_name; /* "f32", ... */',
        "  int rank;",
        "  const int64_t* shape;  /* rank entries, row-major (C order) */",
        "  int64_t size;          /* elements */",
        "  int64_t bytes;",
        "} tessel_tensor_info;",
        "#endif",
        "",
        f"#define {name.upper()}_NUM_INPUTS {len(spec.params)}",
        f"#define {name.upper()}_NUM_OUTPUTS {len(spec.results)}",
        "/* Scratch memory one call needs (64-byte aligned), if the caller provides it. */",
        f"#define {name.upper()}_SCRATCH_BYTES ((size_t){spec.arena_bytes})",
    ]
    if spec.weight_offsets is not None:
        lines.append(f"#define {name.upper()}_WEIGHT_BYTES ((size_t){spec.weight_bytes})")
    lines.append("")
    for i, p in enumerate(spec.params):
        lines.append(f"/* input {i}: {p.name}: {p.dtype}{list(p.shape)} */")
    for i, (o, r) in enumerate(zip(outs, spec.results, strict=True)):
        lines.append(f"/* output {i}: {o}: {r.dtype}{list(r.shape)} */")
    lines += [
        f"extern const tessel_tensor_info {name}_inputs[];",
        f"extern const tessel_tensor_info {name}_outputs[];",
        "",
        "/* NULL if this CPU has every feature the code was compiled for, else the name of the",
        "   first one it lacks. The entry point checks this itself (TESSEL_ERROR_CPU). */",
        f"const char* {name}_missing_cpu_feature(void);",
    ]
    if spec.weight_offsets is not None:
        lines += [
            "",
            f"/* Before the first call: the contents of {name}.weights ({spec.weight_bytes} "
            "bytes),",
            "   64-byte aligned, kept alive and unchanged while the library is in use. */",
            f"int {name}_load_weights(const void* data, size_t bytes);",
        ]
    lines += [
        "",
        "/* Runs the model: reads the inputs, writes every output (the caller owns all of them;",
        "   dense, C order). `scratch` is NULL (the call allocates and frees its own) or",
        f"   {name.upper()}_SCRATCH_BYTES of 64-byte-aligned memory owned by the caller; calls",
        "   running at the same time need distinct scratch. Returns TESSEL_OK or an error. */",
        _signature(spec, name, outs) + ";",
        "",
        "#ifdef __cplusplus",
        "}",
        "#endif",
        f"#endif /* {guard} */",
        "",
    ]
    return "\n".join(lines)


def _tables(spec: ProgramSpec, name: str, outs: Sequence[str]) -> list[str]:
    out = []
    for kind, tensors in (
        ("inputs", [(p.name, p.shape, p.dtype) for p in spec.params]),
        ("outputs", [(o, r.shape, r.dtype) for o, r in zip(outs, spec.results, strict=True)]),
    ):
        for i, (_, shape, _) in enumerate(tensors):
            dims = ", ".join(str(d) for d in shape) or "0"
            out.append(f"static const int64_t {kind}_shape_{i}[] = {{{dims}}};")
        out.append(f"const tessel_tensor_info {name}_{kind}[] = {{")
        for i, (tname, shape, dtype) in enumerate(tensors):
            out.append(
                f'  {{"{tname}", TESSEL_{dtype.upper()}, "{dtype}", {len(shape)}, '
                f"{kind}_shape_{i}, {math.prod(shape)}, {_nbytes(shape, dtype)}}},"
            )
        out.append("};")
    return out


def _weights_loader(spec: ProgramSpec, name: str) -> list[str]:
    if spec.weight_offsets is None:
        return []
    return [
        f"int {name}_load_weights(const void* data, size_t bytes) {{",
        f"  if (bytes != {spec.weight_bytes}u || ((uintptr_t)data & 63u) != 0)",
        "    return TESSEL_ERROR_NO_WEIGHTS;",
        f"  {spec.set_weights_symbol}(data);",
        "  weights_loaded = 1;",
        "  return TESSEL_OK;",
        "}",
        "",
    ]


def _result_copies(
    spec: ProgramSpec, args: list[str], outs: Sequence[str]
) -> tuple[list[str], dict[int, int]]:
    """memcpy lines for results the program does not write itself (an input returned, a
    constant, a value returned twice), and the result each output slot is written to."""
    slot_of: dict[int, int] = {}
    for i, r in enumerate(spec.results):
        if r.source.kind == OUTPUT:
            slot_of.setdefault(int(r.source.value), i)
    constants = [c.name for c in spec.constants]
    copies = []
    for i, r in enumerate(spec.results):
        nbytes = _nbytes(r.shape, r.dtype)
        if nbytes == 0:
            continue
        if r.source.kind == PARAM:
            copies.append(f"  memcpy({outs[i]}, {args[int(r.source.value)]}, {nbytes}u);")
        elif r.source.kind == CONST:
            index = constants.index(str(r.source.value))
            copies.append(f"  memcpy({outs[i]}, constants[{index}], {nbytes}u);")
        elif slot_of[int(r.source.value)] != i:
            first = outs[slot_of[int(r.source.value)]]
            copies.append(f"  memcpy({outs[i]}, {first}, {nbytes}u);")
    return copies, slot_of


def c_source(spec: ProgramSpec, name: str, checked: Sequence[str], outs: Sequence[str]) -> str:
    args = _arg_names(spec, outs)
    copies, slot_of = _result_copies(spec, args, outs)
    io = [f"(void*){a}" for a in args]
    io += [f"(void*){outs[slot_of[k]]}" for k in range(len(spec.outputs))]
    external = spec.weight_offsets is not None
    weights_decl = [
        f"void {spec.set_weights_symbol}(const void* blob);",
        "static int weights_loaded;",
    ]
    lines = [
        f"/* {name}.c: generated by tessel; compiled with {name}.o into lib{name}.so. */",
        "#include <stdlib.h>",
        "#include <string.h>",
        f'#include "{name}.h"',
        "",
        f"void {spec.run_symbol}(void** io, void* arena);",
        f"void {spec.constants_symbol}(void** table);",
        *(weights_decl if external else []),
        "",
        *_tables(spec, name, outs),
        "",
        f"const char* {name}_missing_cpu_feature(void) {{",
        "  __builtin_cpu_init();",
        *(f'  if (!__builtin_cpu_supports("{f}")) return "{f}";' for f in checked),
        "  return NULL;",
        "}",
        "",
        *_weights_loader(spec, name),
        _signature(spec, name, outs) + " {",
        "  static int cpu_ok = -1; /* computed once; a race only repeats the same check */",
        f"  if (cpu_ok < 0) cpu_ok = {name}_missing_cpu_feature() == NULL;",
        "  if (!cpu_ok) return TESSEL_ERROR_CPU;",
        *(["  if (!weights_loaded) return TESSEL_ERROR_NO_WEIGHTS;"] if external else []),
        "  void* owned = NULL;",
        "  if (scratch == NULL) {",
        f"    owned = aligned_alloc(64, {-(-max(spec.arena_bytes, 1) // 64) * 64}u);",
        "    if (owned == NULL) return TESSEL_ERROR_NO_MEMORY;",
        "    scratch = owned;",
        "  }",
        f"  void* io[] = {{{', '.join(io) or 'NULL'}}};",
        f"  {spec.run_symbol}(io, scratch);",
    ]
    if any("constants[" in c for c in copies):
        count = max(len(spec.constants), 1)
        lines += [f"  void* constants[{count}];", f"  {spec.constants_symbol}(constants);"]
    lines += [*copies, "  free(owned);", "  return TESSEL_OK;", "}", ""]
    return "\n".join(lines)


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
    """Write NAME.o, NAME.h, NAME.c into `folder` and link lib<NAME>.so there."""
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
            "-Wl,-Bsymbolic", "-Wl,-z,noexecstack", "-Wl,--no-undefined", "-lc",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        raise TesselError(f"linking lib{lib.name}.so failed:\n{done.stderr.strip()}")
    return out


def scratch_folder(near: Path) -> Path:
    near.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".tessel-", dir=near))
