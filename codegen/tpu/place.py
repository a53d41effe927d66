"""Device placement for the TPU target: contraction regions become `fusion {device = tpu}`.

A pass of the pass registry like any other, kept with the TPU's code generator because only
it knows which regions the chip runs; importing compiler/targets.py registers it.

Everything else stays on the host (the CPU backend runs it). The dump after this pass shows
exactly what runs where, and is a valid graph: a tpu fusion's body is the ops it stands for,
so the interpreter and the CPU backend can still run the file.
"""

from __future__ import annotations

from dataclasses import dataclass

from codegen.tpu.regions import INPUT, regions_of
from ir.builder import make_node
from ir.graph import Function, Node
from ir.ops import Op
from passes.base import Pass, PassContext, register
from passes.fuse import Group, fusion_body, rebuild_function


@dataclass
class TpuPlaceOptions:
    multiplier: str = "int8"  # the chip's: int8 (i8 operands, i32 sums) or bf16 (f32 sums)

    def __post_init__(self) -> None:
        if self.multiplier not in INPUT:
            raise ValueError(
                f"multiplier must be one of {', '.join(INPUT)}, not {self.multiplier!r}"
            )


@register
class TpuPlace(Pass):
    """Put each TPU-runnable contraction and its epilogue into a `fusion {device = tpu}`.

    A region is a dot_general or conv2d with constant weights in the chip's input type (i8
    for int8 chips, bf16 for bf16 ones) and its per-column bias, activation and requantization
    (codegen/tpu/regions.py). Each contraction left on the host gets a remark saying why.
    """

    name = "tpu-place"
    Options = TpuPlaceOptions

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        regions, rejected = regions_of(fn, self.options.multiplier)
        for node, reason in rejected.items():
            ctx.remark(
                self.name, f"@{fn.name}: %{node.name or node.op.value} stays on the host: {reason}"
            )
        if not regions:
            return fn
        order = {n: i for i, n in enumerate(fn.nodes())}
        replaced: dict[Node, Node] = {}
        absorbed: set[Node] = set()
        for r in regions:
            body, operands = fusion_body(Group(r.root, list(r.members)), order)
            replaced[r.root] = make_node(
                Op.FUSION,
                operands,
                {"body": body, "device": "tpu"},
                name=r.root.name,
                loc=r.root.loc,
            )
            absorbed.update(m for m in r.members if m is not r.root)
            ctx.remark(
                self.name,
                f"@{fn.name}: %{r.root.name or r.root.op.value} on the TPU "
                f"({r.core.op.value} + {len(r.chain)} epilogue ops)",
            )
        return rebuild_function(fn, replaced, absorbed)
