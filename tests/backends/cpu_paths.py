"""The ways the int8 and bf16 kernels compute, as CpuCaps, for the tests of those kernels.

A path is the caps that select it. Paths this host cannot execute are skipped with the features
they need named; their code is still built for a stand-in server (SERVER) and compiled to object
code, so every path's code generation is checked on every host.
"""

from __future__ import annotations

from dataclasses import dataclass

import llvmlite.binding as llvm

from codegen.cpu_caps import LEVELS, CpuCaps, caps_of, host_caps, level_caps
from codegen.executable import native_ready
from codegen.jit import caps_target, optimize, target_machine
from codegen.program import lower_program
from ir.graph import Module

AMX = ("amx-tile", "amx-int8", "amx-bf16")
# A server with every unit the kernels use: the stand-in for paths this host lacks
SERVER = caps_of(
    "sapphirerapids",
    ",".join(f"+{f}" for f in sorted(LEVELS["x86-64-v4"] | {"avx512vnni", "avx512bf16", *AMX})),
)


@dataclass(frozen=True)
class Path:
    """One way a kernel computes: the caps that select it, the features a host needs to run it
    (named when it cannot), the instructions its assembly must contain and the widest vector
    register it may use ("" when that is not checked)."""

    name: str
    caps: CpuCaps
    needs: tuple[str, ...]
    instructions: tuple[str, ...]
    register: str = ""


def int8_paths(tiles: str) -> dict[str, Path]:
    """The int8 kernels' paths (the tile path called `tiles`), from the fastest down."""
    host = host_caps()
    amx = host if host.amx_int8 else SERVER
    vnni = (host if host.vnni else SERVER).without(*AMX)
    paths = (
        Path(tiles, amx, ("amx-tile", "amx-int8"), ("tdpbssd",), "%zmm"),
        Path("vnni", vnni, ("avx512vnni",), ("vpdpbusd",), "%zmm"),
        Path("avx512bw", level_caps("x86-64-v4"), ("avx512f", "avx512bw"), ("vpmaddwd",), "%zmm"),
        Path("avx2", level_caps("x86-64-v3"), ("avx2",), ("vpmaddwd",), "%ymm"),
        Path("sse2", level_caps("generic"), (), ("pmaddwd",), "%xmm"),
    )
    return {p.name: p for p in paths}


def skip_reason(path: Path) -> str | None:
    """Why this host cannot run the path's code, naming the features it lacks (None: it can)."""
    host = host_caps()
    lacks = sorted(path.caps.features - host.features)
    if not lacks:
        return None
    named = [f for f in path.needs if f not in host.features] or lacks
    return f"needs {', '.join(named)} (host: {host.level})"


def assembly_for(module: Module, caps: CpuCaps) -> str:
    """The code for `caps`, generated, verified and compiled to an object without running it;
    returns its assembly."""
    fn = native_ready(module).function("main")  # as CpuExecutable lowers it
    program = lower_program(fn, caps, None)
    tm = target_machine(caps_target(caps), jit=False)
    program.module.triple = llvm.get_process_triple()
    program.module.data_layout = str(tm.target_data)
    ref = llvm.parse_assembly(str(program.module))
    ref.verify()
    optimize(ref, tm)
    assert len(tm.emit_object(ref)) > 0
    return str(tm.emit_assembly(ref))
