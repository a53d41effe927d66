"""LLVM targets and the -O3 pipeline: what codegen/link.py and codegen/aot.py compile with.

The host CPU's name and features are used by default (AVX-512 where present, with 512-bit
vectors preferred, which measured 1.2-1.4x faster than LLVM's 256-bit default on this machine);
`cpu="generic"` or `"x86-64-v3"` builds for other machines. Every engine gets a fresh target
machine: sharing one with an engine that was freed crashed in a probe.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import llvmlite.binding as llvm

from codegen.cpu_caps import Caches, CpuCaps, caps_of, host_caps

CPU_CHOICES = ("native", "x86-64-v4", "x86-64-v3", "x86-64-v2", "generic")


@functools.cache
def _init() -> None:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@dataclass(frozen=True)
class Target:
    cpu: str
    features: str
    # What cache blocking is sized for: the host's when compiling for it, else the defaults.
    caches: Caches = field(default_factory=Caches)

    @property
    def caps(self) -> CpuCaps:
        """What the code may use: kernels are chosen by this, never by probing the host."""
        return caps_of(self.cpu, self.features, self.caches)


def caps_target(caps: CpuCaps) -> Target:
    """The LLVM target whose code runs on exactly `caps` (a level, the host, or less)."""
    return Target(caps.cpu, caps.llvm_features, caps.caches)


def host_target(cpu: str = "native") -> Target:
    _init()
    if cpu == "native":
        return caps_target(host_caps())
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


def missing_features(target: Target) -> list[str]:
    """CPU features the code for `target` may use that this machine lacks."""
    _init()
    host = set(llvm.get_host_cpu_features().flatten().split(","))
    wanted = [f for f in target.features.split(",") if f.startswith("+")]
    return sorted(f[1:] for f in wanted if f not in host)
