"""The CPU target's executable: a function compiled by LLVM into one native program.

`CpuExecutable(module)` lowers the function (codegen/program.py), compiles it, and runs it with
`runtime.native.NativeProgram`; `payload()`/`from_payload()` save and restore it as JSON plus
object code (the on-disk cache), with no IR and no passes on the way back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codegen import softmax as softmax_kernel
from codegen.jit import Target, host_target
from codegen.link import Compiled, compile_ir, load_object
from codegen.program import lower_program
from ir.graph import Function, Module, Node
from ir.ops import COMPOSITE, Op
from passes.base import PassContext
from passes.buffers import BufferAssignment
from passes.decompose import Decompose
from runtime.native import ARRAY_DATA_OFFSET, NativeProgram
from runtime.program_spec import ProgramSpec

__all__ = ["CpuExecutable", "native_ready"]


class CpuExecutable(NativeProgram):
    """A compiled function. Call it with numpy arrays; it returns fresh numpy arrays."""

    def __init__(
        self, module: Module, entry: str | None = None, threads: int | None = None,
        target: Target | None = None, assignments: Mapping[str, BufferAssignment] | None = None,
    ) -> None:  # fmt: skip
        module = native_ready(module)
        self.fn: Function = module.function(entry or module.entry)
        target = target or host_target()
        assignment = (assignments or {}).get(self.fn.name)  # the pipeline's buffer-assign
        program = lower_program(
            self.fn, target.cpu, target.features, ARRAY_DATA_OFFSET, assignment=assignment
        )
        self.compiled: Compiled = compile_ir(program.module, target, program.describe_kernels())
        super().__init__(program.spec, self.compiled.address, threads, program.kernel_nodes)

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
        self.compiled = load_object(object_code, Target(spec.target_cpu, spec.target_features))
        NativeProgram.__init__(self, spec, self.compiled.address, threads)
        return self

    def payload(self) -> tuple[dict[str, Any], bytes]:
        """(JSON-serializable spec, object code): what `from_payload` needs."""
        return self.spec.to_json(), self.compiled.object_code

    @property
    def llvm_ir(self) -> str:
        return self.compiled.ir_before

    @property
    def llvm_ir_optimized(self) -> str:
        return self.compiled.ir_after


def native_ready(module: Module) -> Module:
    """`module` with every composite the CPU has no kernel for expanded into primitives."""
    if any(_needs_decomposing(n) for f in module.functions for n in f.body):
        return Decompose().run(module, PassContext())
    return module


def _needs_decomposing(node: Node) -> bool:
    """Composites without a native kernel are expanded into primitives first."""
    if node.op is Op.SOFTMAX:
        return not softmax_kernel.applicable(node)
    return node.op in COMPOSITE | {Op.AVG_POOL}
