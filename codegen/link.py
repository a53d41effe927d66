"""Object code into the process: link a program (and the precompiled routines it calls) with
MCJIT, after checking that it calls nothing the loader could not resolve.

`compile_ir` optimizes and emits a module for a target (codegen/jit.py) and links it;
`load_object` links object code from an earlier process (the on-disk cache).
"""

from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir

from codegen import gemm_lib
from codegen.jit import Target, host_target, missing_features, optimize, target_machine
from codegen.objsyms import check_symbols
from ir.diagnostics import TesselError


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
        for dtype in gemm_lib.library_calls(self.object_code):  # the code that runs includes it
            text += "\n; linked library\n" + gemm_lib.library_assembly(self.target, dtype)
        return text


def _link(object_code: bytes, target: Target) -> llvm.ExecutionEngine:
    host = llvm.parse_assembly("")
    host.triple = llvm.get_process_triple()
    engine = llvm.create_mcjit_compiler(host, target_machine(target))
    # The library first, so RuntimeDyld resolves the program's calls into it.
    for dtype in gemm_lib.library_calls(object_code):
        library = gemm_lib.library_object(target, dtype)
        engine.add_object_file(llvm.ObjectFileRef.from_data(library))
    engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
    engine.finalize_object()
    return engine


def library_symbols() -> frozenset[str]:
    """The symbols tessel links next to generated code (the precompiled GEMM routines)."""
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
