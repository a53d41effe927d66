"""Index-set splitting: a kernel's innermost loop cut where a pad or concatenate changes source.

`x[1:-1] = v` under @jit becomes `select(pad(true...), pad(v), x)`, and a padded or
concatenated read needs a clamped index and a select for every element, which LLVM turns into
gathers: five times slower than the same arithmetic without the pad. Split the loop over the
last axis at the boundaries of the pads and concatenates that see the output's index
unchanged, and within each piece the emitter knows which side of every boundary it is on
(`Emitter.ranges`): the reads become plain affine loads that vectorize, and the selects fold.
"""

from __future__ import annotations

import itertools

from ir.graph import Node
from ir.ops import ELEMENTWISE, Op


def split_points(node: Node) -> list[int]:
    """Positions along the last axis where a pad or concatenate reached from `node` through
    index-preserving ops (elementwise, a fusion's body) changes what it reads, in order."""
    if not node.shape:
        return []
    axis, length = len(node.shape) - 1, node.shape[-1]
    points: set[int] = set()
    stack, seen = [node], set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.op is Op.FUSION:
            stack.append(n.attrs["body"].results[0])
        elif n.op in ELEMENTWISE:
            stack.extend(s for s in n.srcs if s.shape == n.shape)
        elif n.op is Op.PAD and not n.attrs["interior"][axis]:
            low = n.attrs["low"][axis]
            points.update((low, low + n.srcs[0].shape[axis]))
        elif n.op is Op.CONCATENATE and n.attrs["axis"] == axis:
            start = 0
            for s in n.srcs:
                start += s.shape[axis]
                points.add(start)
    return sorted(p for p in points if 0 < p < length)


def regions(node: Node) -> list[tuple[int, int]]:
    """The pieces [lo, hi) of the last axis that `split_points` cuts it into."""
    if not node.shape:
        return []
    cuts = [0, *split_points(node), node.shape[-1]]
    return list(itertools.pairwise(cuts))
