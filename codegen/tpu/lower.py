"""A placed function split into host and TPU stages, and each TPU stage compiled to a program.

After tpu-place, a function mixes `fusion {device = tpu}` nodes with host ops. Stages
alternate: host stage 0, TPU stage 1, host stage 2, ...; a node goes to the earliest stage of
its device that comes after all its operands' stages. Constants are copied into whichever
stages use them, so they never cross a stage boundary. A TPU stage's regions run one after
another (a SYNC between them); values crossing from stage to stage are host memory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from codegen.tpu.kernels import Epilogue, WeightImage, conv2d, gemm, gemm_chain
from codegen.tpu.regions import Region, regions_of
from codegen.tpu.stream import TilingError
from ir.graph import Function, Node
from ir.ops import Op
from runtime.tpu.config import TpuConfig
from runtime.tpu.isa import Halt, Instruction, Sync
from runtime.tpu.program import HostLayout, HostTensor, TpuProgram


def is_tpu(node: Node) -> bool:
    return node.op is Op.FUSION and node.attrs["device"] == "tpu"


@dataclass
class Stage:
    index: int
    nodes: list[Node] = field(default_factory=list)
    inputs: list[Node] = field(default_factory=list)  # values from earlier stages or params
    outputs: list[Node] = field(default_factory=list)  # values later stages or results use

    @property
    def device(self) -> str:
        return "tpu" if self.index % 2 else "host"


def split_stages(fn: Function) -> list[Stage]:
    stage_of: dict[Node, int] = {p: 0 for p in fn.params}
    stages: dict[int, Stage] = {}
    for n in fn.body:
        if n.op is Op.CONSTANT:
            continue
        k = max((stage_of[x] for x in n.srcs if x in stage_of), default=0)
        if k % 2 != int(is_tpu(n)):
            k += 1
        stage_of[n] = k
        stages.setdefault(k, Stage(k)).nodes.append(n)
    used_later: dict[Node, int] = {r: 1 << 30 for r in fn.results}
    for n in fn.body:
        for x in n.srcs:
            if x in stage_of and n in stage_of:
                used_later[x] = max(used_later.get(x, -1), stage_of[n])
    for s in stages.values():
        members = set(s.nodes)
        seen: set[Node] = set()
        for n in s.nodes:
            for x in n.srcs:
                if x in stage_of and x not in members and x not in seen:
                    seen.add(x)
                    s.inputs.append(x)
        s.outputs = [n for n in s.nodes if used_later.get(n, -1) > s.index]
    return [stages[k] for k in sorted(stages)]


def stage_function(fn: Function, s: Stage) -> Function:
    """A host stage as a function of its inputs (constants copied in)."""
    mapping: dict[Node, Node] = {}
    params = []
    for i, x in enumerate(s.inputs):
        p = Node(Op.PARAMETER, x.type, name=x.name if x.name and x.name.isidentifier() else f"v{i}")
        mapping[x] = p
        params.append(p)
    body: list[Node] = []

    def get(x: Node) -> Node:
        if x not in mapping:  # a constant
            mapping[x] = x
            body.append(x)
        return mapping[x]

    for n in s.nodes:
        clone = n.replace(srcs=tuple(get(x) for x in n.srcs))
        mapping[n] = clone
        body.append(clone)
    return Function(
        f"{fn.name}_stage{s.index}",
        tuple(params),
        tuple(body),
        tuple(mapping[o] for o in s.outputs),
    )


def _region(c: TpuConfig, n: Node) -> Region:
    body: Function = n.attrs["body"]
    regions, rejected = regions_of(body, c.multiplier)
    if len(regions) != 1 or regions[0].root is not body.results[0]:
        raise TilingError(
            f"%{n.name}: the fusion body is not one TPU region "
            f"({'; '.join(rejected.values()) or 'its shape changed'})"
        )
    return regions[0]


def _chains(c: TpuConfig, s: Stage) -> list[list[tuple[Node, Region, Node]]]:
    """The stage's regions as (fusion, region, activation) runs: a GEMM whose only use is the
    next GEMM's activation joins it, so the TPU keeps that activation in the unified buffer."""
    uses: dict[Node, int] = {o: 1 for o in s.outputs}
    for n in s.nodes:
        for x in n.srcs:
            uses[x] = uses.get(x, 0) + 1
    runs: list[list[tuple[Node, Region, Node]]] = []
    for n in s.nodes:
        r = _region(c, n)
        outer = n.srcs[list(n.attrs["body"].params).index(r.activation)]
        prev = runs[-1][-1] if runs else None
        if (
            prev is not None and c.rows == c.cols and r.core.op is Op.DOT_GENERAL
            and prev[1].core.op is Op.DOT_GENERAL and outer is prev[0] and uses[outer] == 1
            and not prev[1].epilogue.wide and outer.shape[:-1] == prev[2].shape[:-1]
        ):  # fmt: skip
            runs[-1].append((n, r, outer))
        else:
            runs.append([(n, r, outer)])
    return runs


def compile_tpu_stage(c: TpuConfig, s: Stage) -> TpuProgram:
    layout = HostLayout()
    names: dict[Node, str] = {}

    def place(x: Node) -> HostTensor:
        if x not in names:
            names[x] = f"t{len(names)}"
            layout.add(names[x], np.dtype(x.dtype.np), x.shape)
        return layout.tensors[names[x]]

    for x in s.inputs:
        place(x)
    image = WeightImage(c)
    code: list[Instruction] = []
    macs = 0
    for run in _chains(c, s):
        (_, r, outer), last = run[0], run[-1][0]
        src, dst = place(outer), place(last)
        if r.core.op is Op.CONV2D:
            shape = r.conv_shape()
            kernel = conv2d(c, image, src, r.weights, dst, shape, r.epilogue)
            macs += int(np.prod(r.core.shape)) * shape.kh * shape.kw * (shape.cin // shape.groups)
        else:
            m = int(np.prod(outer.shape[:-1]))
            src = dataclasses.replace(src, shape=(m, r.weights.shape[0]))  # [..., K] is [M, K]
            dst = dataclasses.replace(dst, shape=(m, run[-1][1].weights.shape[1]))
            layers = [(region.weights, region.epilogue) for _, region, _ in run]
            if len(layers) > 1:
                kernel = gemm_chain(c, image, src, layers, dst)
            else:
                kernel = gemm(c, image, src, r.weights, dst, r.epilogue)
            macs += sum(m * w.shape[0] * w.shape[1] for w, _ in layers)
        code += [*kernel, Sync()]  # the next region may read what this one wrote
    return TpuProgram(
        c,
        [*code[:-1], Halt()],
        image.image(),
        layout,
        [names[x] for x in s.inputs],
        [names[o] for o in s.outputs],
        macs,
    )


def gemm_program(c: TpuConfig, a_shape: tuple[int, int], w: np.ndarray, e: Epilogue) -> TpuProgram:
    """One GEMM `a @ w` (w constant) with epilogue `e` as a program: input `a`, output `out`."""
    layout = HostLayout()
    a = layout.add("a", c.input_dtype, a_shape)
    out_dtype = c.acc_dtype if e.wide else c.input_dtype
    out = layout.add("out", out_dtype, (a_shape[0], w.shape[1]))
    image = WeightImage(c)
    code = [*gemm(c, image, a, w, out, e), Halt()]
    macs = a_shape[0] * a_shape[1] * w.shape[1]
    return TpuProgram(c, code, image.image(), layout, ["a"], ["out"], macs)
