"""From llvmlite IR to machine code: target selection, the -O3 pipeline, and MCJIT.

Code generation runs once: the optimized module becomes object code (`Compiled.object_code`,
what an on-disk cache stores), and MCJIT only links those bytes into the process.
`load_object` does the same linking for object code alone, without any IR.

The host CPU's name and features are used by default (AVX-512 where present, with 512-bit
vectors preferred, which measured 1.2-1.4x faster than LLVM's 256-bit default on this machine);
`cpu="generic"` or `"x86-64-v3"` builds for other machines. Every engine gets a fresh target
machine: sharing one with an engine that was freed crashed in a probe.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite import ir

from codegen.cpu_caps import CpuCaps, caps_of, host_caps
from codegen.objsyms import check_symbols
from ir.diagnostics import TesselError

CPU_CHOICES = ("native", "x86-64-v4", "x86-64-v3", "x86-64-v2", "generic")


@functools.cache
def _init() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@dataclass(frozen=True)
class Target:
    cpu: str
    features: str

    @property
    def caps(self) -> CpuCaps:
        """What the code may use: kernels are chosen by this, never by probing the host."""
        return caps_of(self.cpu, self.features)


def caps_target(caps: CpuCaps) -> Target:
    """The LLVM target whose code runs on exactly `caps` (a level, the host, or less)."""
    return Target(caps.cpu, caps.llvm_features)


def host_target(cpu: str = "native") -> Target:
    _init()
    if cpu == "native":
        host = host_caps()
        return Target(host.cpu, host.llvm_features)
    if cpu not in CPU_CHOICES:
        raise ValueError(f"unknown --cpu {cpu!r}; choose one of {', '.join(CPU_CHOICES)}")
    return Target(cpu, "")


def target_machine(target: Target, jit: bool = True) -> llvm.TargetMachine:
    _init()
    triple = llvm.get_process_triple()
    return llvm.Target.from_triple(triple).create_target_machine(
        cpu=target.cpu,
        features=target.features,
        opt=3,
        jit=jit,
        reloc="pic" if not jit else "default",
    )


def optimize(module: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """-O3 with vectorization and interleaving but without automatic loop unrolling.

    Unrolling tripled the optimize and code-generation time of the GEMM kernels (0.39 s to
    0.09 s for one MLP layer) and measured no faster on GEMM, softmax or elementwise chains:
    the GEMM microkernel is vectorized by hand, and the vectorizer's interleaving already
    hides the latency of the other loops. Loops that carry unroll metadata are still unrolled.
    """
    options = llvm.create_pipeline_tuning_options(speed_level=3)
    options.loop_vectorization = True
    options.slp_vectorization = True
    options.loop_interleaving = True
    options.loop_unrolling = False
    builder = llvm.create_pass_builder(tm, options)
    builder.getModulePassManager().run(module, builder)


class Compiled:
    """Linked machine code: keep it alive as long as its function addresses are used.

    `ir_after` is printed on first use (printing the weights took ~80 ms for the MLP). Loaded
    from object code alone, there is no IR: `ir_before`/`ir_after` are empty and `asm()` is
    unavailable (disassemble `object_code` with an external tool if needed).
    """

    def __init__(
        self, engine: llvm.ExecutionEngine, ir_before: str, optimized: llvm.ModuleRef | None,
        target: Target, object_code: bytes,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.ir_before = ir_before
        self._optimized = optimized
        self._ir_after: str | None = None if optimized is not None else ""
        self.target = target
        self.object_code = object_code

    @property
    def ir_after(self) -> str:
        if self._ir_after is None:
            self._ir_after = str(self._optimized)
            self._optimized = None
        return self._ir_after

    def address(self, name: str) -> int:
        address = int(self.engine.get_function_address(name))
        if not address:
            raise KeyError(f"no function {name!r} in the compiled code")
        return address

    def asm(self) -> str:
        if not self.ir_after:
            raise RuntimeError("assembly is unavailable: this code was loaded from object code")
        tm = target_machine(self.target, jit=False)
        text = str(tm.emit_assembly(llvm.parse_assembly(self.ir_after)))
        from codegen import gemm_lib  # see _link

        for dtype in gemm_lib.library_calls(self.object_code):  # the code that runs includes it
            text += "\n; linked library\n" + gemm_lib.library_assembly(self.target, dtype)
        return text


def _link(object_code: bytes, target: Target) -> llvm.ExecutionEngine:
    host = llvm.parse_assembly("")
    host.triple = llvm.get_process_triple()
    engine = llvm.create_mcjit_compiler(host, target_machine(target))
    # Imported here: the library is built with this module's pipeline.
    from codegen import gemm_lib

    # The library first, so RuntimeDyld resolves the program's calls into it.
    for dtype in gemm_lib.library_calls(object_code):
        library = gemm_lib.library_object(target, dtype)
        engine.add_object_file(llvm.ObjectFileRef.from_data(library))
    engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
    engine.finalize_object()
    return engine


def library_symbols() -> frozenset[str]:
    """The symbols tessel links next to generated code (the precompiled GEMM routines)."""
    from codegen import gemm_lib  # see _link

    return frozenset(gemm_lib.SYMBOLS.values())


def compile_ir(
    module: ir.Module, target: Target | None = None, describe: dict[str, str] | None = None
) -> Compiled:
    """Optimize, emit and link `module`. `describe` names the node behind each function for
    the error raised if the code calls a symbol nothing provides (checked before linking)."""
    target = target or host_target()
    tm = target_machine(target)
    module.triple = llvm.get_process_triple()
    module.data_layout = str(tm.target_data)
    text = str(module)
    ref = llvm.parse_assembly(text)
    ref.verify()
    optimize(ref, tm)
    object_code = bytes(tm.emit_object(ref))
    check_symbols(object_code, library_symbols(), describe)
    return Compiled(_link(object_code, target), text, ref, target, object_code)


def missing_features(target: Target) -> list[str]:
    """CPU features the code for `target` may use that this machine lacks."""
    _init()
    host = set(llvm.get_host_cpu_features().flatten().split(","))
    wanted = [f for f in target.features.split(",") if f.startswith("+")]
    return sorted(f[1:] for f in wanted if f not in host)


def load_object(object_code: bytes, target: Target) -> Compiled:
    """Link object code that `compile_ir` produced (in this or an earlier process).

    Code built for features this CPU lacks is refused here: running it would stop the process
    with an illegal instruction.
    """
    missing = missing_features(target)
    if missing:
        raise TesselError(
            f"this code was compiled for a CPU with {', '.join(missing)}, which this machine "
            f"lacks; compile it again here, or for a baseline with --cpu generic"
        )
    check_symbols(object_code, library_symbols())
    return Compiled(_link(object_code, target), "", None, target, bytes(object_code))
