"""The CPU target's executable: a function compiled by LLVM into one native program.

`CpuExecutable(module)` lowers the function (codegen/program.py), compiles it, and runs it with
`runtime.native.NativeProgram`; `payload()`/`from_payload()` save and restore it as JSON plus
object code (the on-disk cache), with no IR and no passes on the way back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codegen import softmax as softmax_kernel
from codegen.cpu_caps import Caches
from codegen.jit import Target, host_target
from codegen.link import Compiled, compile_ir, load_object
from codegen.program import lower_program
from ir.graph import Function, Module, Node
from ir.ops import COMPOSITE, Op
from passes.base import PassContext
from passes.buffers import BufferAssignment
from passes.complex import ExpandComplex, expanded
from passes.decompose import Decompose
from passes.rewrite import inline_fusion, rewrite_function, rewrite_loop_bodies
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
        program = lower_program(self.fn, target.caps, ARRAY_DATA_OFFSET, assignment=assignment)
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
        caches = Caches(*spec.target_caches)
        self.compiled = load_object(
            object_code, Target(spec.target_cpu, spec.target_features, caches)
        )
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
    """`module` with every composite the CPU has no kernel for expanded into primitives, and
    fusions one level deep: a fusion kernel computes its body element by element, so a fusion
    nested in another (which `fuse` never makes, but a graph file may hold) is inlined into it,
    and composites inside bodies are expanded too. A fusion holding a scatter, which has no
    fused form, is computed as its ops. Loop bodies are made ready alike, and complex values
    become pairs of reals (expand-complex) where the pipeline did not do it."""
    functions = tuple(_ready(f) for f in module.functions)
    if all(a is b for a, b in zip(functions, module.functions, strict=True)):
        return module
    return Module(functions, module.entry)


def _ready(fn: Function) -> Function:
    if not expanded(fn):  # a module that skipped the cpu pipeline: kernels compute on reals
        fn = ExpandComplex().run_function(fn, PassContext())
    fn = rewrite_loop_bodies(fn, _ready)
    if any(_needs_decomposing(n) for n in fn.body):
        fn = Decompose().run_function(fn, PassContext())
    return rewrite_function(fn, _ready_fusion)


def _ready_fusion(node: Node) -> Node | None:
    if node.op is not Op.FUSION:
        return None
    body = node.attrs["body"]
    if any(n.op is Op.SCATTER for n in body.body):  # no fused form: computed as its ops
        return inline_fusion(node)
    flat = rewrite_function(body, inline_fusion)
    # inside a body every composite is expanded: softmax's row kernel is a kernel of its own
    if any(n.op in COMPOSITE | {Op.AVG_POOL} for n in flat.body):
        flat = Decompose().run_function(flat, PassContext())
    return None if flat is body else node.replace(attrs=node.attrs.replace(body=flat))


def _needs_decomposing(node: Node) -> bool:
    """Composites without a native kernel are expanded into primitives first."""
    if node.op is Op.SOFTMAX:
        return not softmax_kernel.applicable(node)
    return node.op in COMPOSITE | {Op.AVG_POOL}
