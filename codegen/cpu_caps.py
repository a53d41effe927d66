"""What a CPU can do, in one value that code generation is handed explicitly.

`CpuCaps` is derived once, from the host (`host_caps()`) or from a `--cpu` level
(`level_caps("x86-64-v3")`), and passed down to every kernel: no kernel file probes the host.
Forcing a lower level on a bigger host gives exactly what a smaller machine would run, so the
code paths of an AVX2 laptop are tested on an AVX-512 server.

`TESSEL_CPU=x86-64-v2` (or any level below the host's) makes `host_caps()` that level, so a
whole test run exercises what a smaller machine would run.

The psABI levels are sets of LLVM feature names. A level compiles with LLVM's CPU of the same
name and no feature string, so LLVM uses exactly that set; the host compiles with its own name
and feature string.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

_V1 = frozenset({"cmov", "cx8", "fxsr", "mmx", "sse", "sse2"})
_V2 = _V1 | {"cx16", "popcnt", "sahf", "sse3", "sse4.1", "sse4.2", "ssse3"}
_V3 = _V2 | {"avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave"}
_V4 = _V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
# Lowest first. "generic" is LLVM's name for baseline x86-64 (v1).
LEVELS: dict[str, frozenset[str]] = {
    "generic": _V1,
    "x86-64-v2": _V2,
    "x86-64-v3": _V3,
    "x86-64-v4": _V4,
}
# What each level's kernels gain over the one below: the skip message of a test that needs it.
LEVEL_NEEDS = {"x86-64-v2": "sse4.2", "x86-64-v3": "avx2, fma", "x86-64-v4": "avx512f/bw/vl"}


@dataclass(frozen=True)
class Caches:
    """Per-core data cache sizes in bytes (L3: the whole of it, as the OS reports it).

    The defaults are a small x86-64 core of any level (32 KiB L1d, 256 KiB L2, 2 MiB L3):
    kernels blocked for them stay correct and reasonable on every machine of that level.
    """

    l1d: int = 32 << 10
    l2: int = 256 << 10
    l3: int = 2 << 20

    def summary(self) -> str:
        return f"L1d {self.l1d >> 10} KiB, L2 {self.l2 >> 10} KiB, L3 {self.l3 >> 10} KiB"


def detected_caches(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> Caches:
    """The data caches Linux reports for CPU 0; the defaults for any level it does not."""
    sizes: dict[int, int] = {}
    for index in sorted(root.glob("index*")):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            level = int((index / "level").read_text())
            sizes[level] = _bytes((index / "size").read_text().strip())
        except (OSError, ValueError):
            continue
    default = Caches()
    return Caches(sizes.get(1, default.l1d), sizes.get(2, default.l2), sizes.get(3, default.l3))


def _bytes(text: str) -> int:
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    return int(text.rstrip("KMGkmg")) * scale


@dataclass(frozen=True)
class CpuCaps:
    """An x86-64 CPU's name (as LLVM knows it) and features (LLVM names, without '+')."""

    cpu: str
    features: frozenset[str]
    # The LLVM feature string the target machine is created with ("" for a named level).
    llvm_features: str = ""
    caches: Caches = Caches()

    def has(self, *names: str) -> bool:
        return all(n in self.features for n in names)

    @property
    def vector_bits(self) -> int:
        """The widest vector the kernels use: 512 with AVX-512F, 256 with AVX2, else 128."""
        if self.has("avx512f"):
            return 512
        return 256 if self.has("avx2") else 128

    @property
    def vector_registers(self) -> int:
        return 32 if self.has("avx512f") else 16

    @property
    def fma(self) -> bool:
        return self.has("fma")

    @property
    def f16c(self) -> bool:
        """Hardware f16 <-> f32 conversion (else it is lowered to integer code)."""
        return self.has("f16c")

    @property
    def avx2(self) -> bool:
        return self.has("avx2")

    @property
    def vnni(self) -> bool:
        """AVX-512 VNNI: four u8 x s8 products summed per int32 lane."""
        return self.has("avx512f", "avx512bw", "avx512vnni")

    @property
    def avx512_bf16(self) -> bool:
        return self.has("avx512f", "avx512bw", "avx512bf16")

    @property
    def amx_int8(self) -> bool:
        # Linux hands out the tile state on request (the kernel asks, and checks the answer)
        return sys.platform == "linux" and self.has("amx-tile", "amx-int8")

    @property
    def amx_bf16(self) -> bool:
        return sys.platform == "linux" and self.has("amx-tile", "amx-bf16")

    @property
    def level(self) -> str:
        """The highest psABI level whose every feature this CPU has."""
        best = "generic"
        for name, needs in LEVELS.items():
            if needs <= self.features:
                best = name
        return best

    def restricted(self, level: str) -> CpuCaps:
        """These caps cut down to `level` (no more than the CPU has): a smaller machine with
        this one's caches."""
        if not LEVELS[level] <= self.features:
            raise ValueError(f"{self.cpu} cannot run {level}")
        return replace(level_caps(level), caches=self.caches)

    def without(self, *names: str) -> CpuCaps:
        """The same CPU with `names` turned off (how tests reach a kernel's fallbacks)."""
        off = ",".join(f"-{n}" for n in names)
        flags = f"{self.llvm_features},{off}" if self.llvm_features else off
        if not self.llvm_features:  # a level: spell its features out, then take some away
            flags = ",".join(f"+{f}" for f in sorted(self.features)) + "," + off
        return caps_of(self.cpu if self.llvm_features else "x86-64", flags, self.caches)

    def summary(self) -> str:
        extras = [
            name
            for name, present in (
                ("fma", self.fma), ("f16c", self.f16c), ("vnni", self.vnni),
                ("avx512-bf16", self.avx512_bf16), ("amx-int8", self.amx_int8),
                ("amx-bf16", self.amx_bf16),
            )
            if present
        ]  # fmt: skip
        return (
            f"{self.cpu} ({self.level}, {self.vector_bits}-bit vectors; {', '.join(extras)}; "
            f"{self.caches.summary()})"
        )


def level_caps(level: str) -> CpuCaps:
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; choose one of {', '.join(LEVELS)}")
    return CpuCaps(level, LEVELS[level])


def caps_of(cpu: str, llvm_features: str, caches: Caches = Caches()) -> CpuCaps:
    """Caps of an LLVM target: a level by its name, else the '+feature' list given with it.

    A CPU named without features (`--cpu skylake`) gets the baseline's: correct on it, if not
    as fast as it could be, since nothing it might lack is assumed.
    """
    if cpu in LEVELS and not llvm_features:
        return replace(level_caps(cpu), caches=caches)
    flags = [f for f in llvm_features.split(",") if f]
    plus = {f[1:] for f in flags if f.startswith("+")} or set(LEVELS["generic"])
    minus = {f[1:] for f in flags if f.startswith("-")}
    return CpuCaps(cpu, frozenset(plus - minus), llvm_features, caches)


@functools.cache
def host_caps() -> CpuCaps:
    """This machine's caps, or a lower level's where TESSEL_CPU names one: the whole of tessel
    (tests included) then compiles as for that smaller machine."""
    caps = detected_caps()
    forced = os.environ.get("TESSEL_CPU", "native")
    if forced == "native":
        return caps
    if forced not in LEVELS:
        raise ValueError(f"TESSEL_CPU={forced!r}: choose native or one of {', '.join(LEVELS)}")
    return caps.restricted(forced)


@functools.cache
def detected_caps() -> CpuCaps:
    """What the CPU this process runs on reports, whatever TESSEL_CPU says."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" in features.split(","):
        features += ",-prefer-256-bit"  # let the vectorizer use zmm registers
    return caps_of(llvm.get_host_cpu_name(), features, detected_caches())


def host_levels() -> list[str]:
    """The levels this host can execute, lowest first, then "native"."""
    host = host_caps()
    return [name for name, needs in LEVELS.items() if needs <= host.features] + ["native"]


def lower_levels() -> list[str]:
    """The levels below this machine's own that it can run (what CI tests again)."""
    host = detected_caps()
    names = list(LEVELS)
    return [name for name in names if LEVELS[name] <= host.features][: names.index(host.level)]
