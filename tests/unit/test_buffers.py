"""buffer-assign: liveness, arena offsets, the memory report and the lifetime SVG.

Expected ranges and offsets are worked out by hand in each test's comment, so a change in the
placement strategy shows up as a readable diff rather than a silently different number.
Sizes are mostly f32[4,4] = 64 bytes, one alignment unit, to keep the arithmetic obvious.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pytest

from ir.builder import FunctionBuilder
from ir.diagnostics import TesselError
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op
from ir.types import TensorType
from passes.base import REGISTRY, PassContext
from passes.buffers import (
    BufferAssign,
    BufferAssignment,
    assign_buffers,
    format_memory_report,
    lifetime_svg,
    live_ranges,
)
from passes.pipeline import parse_pipeline

F4x4 = TensorType((4, 4), DType.F32)  # 64 bytes
SVG = "{http://www.w3.org/2000/svg}"


def ranges_by_name(fn: Function) -> dict[str, tuple[int, int]]:
    return {n.name or "?": r for n, r in live_ranges(fn).items()}


def offsets_by_name(a: BufferAssignment) -> dict[str, int]:
    return {b.node.name or "?": b.offset for b in a.buffers}


def chain() -> Function:
    fb = FunctionBuilder("chain")
    x = fb.param("x", F4x4)
    a = fb.op(Op.NEG, x, name="a")
    b = fb.op(Op.EXP, a, name="b")
    c = fb.op(Op.NEG, b, name="c")
    d = fb.op(Op.ABS, c, name="d")
    return fb.build([d])


def test_chain_ping_pongs_between_two_buffers() -> None:
    # step: 0 a=neg(x)  1 b=exp(a)  2 c=neg(b)  3 d=abs(c)
    # a [0,1], b [1,2], c [2,3], d [3,3]: only neighbours overlap, so two slots alternate.
    fn = chain()
    assert ranges_by_name(fn) == {"a": (0, 1), "b": (1, 2), "c": (2, 3), "d": (3, 3)}
    a = assign_buffers(fn)
    a.check()
    assert offsets_by_name(a) == {"a": 0, "b": 64, "c": 0, "d": 64}
    assert (a.arena_bytes, a.total_bytes, a.peak_live_bytes) == (128, 256, 128)
    assert a.live_bytes == (64, 128, 128, 128)
    assert a.peak_step == 1
    assert a.peak_node is fn.body[1]
    assert a.reuse_ratio == 2.0


def test_output_never_shares_memory_with_its_operand() -> None:
    # b = exp(a) reads a while writing b: both are live at step 1, so b must not take a's bytes.
    fn = chain()
    a = assign_buffers(fn)
    for node in fn.body:
        for src in node.srcs:
            if src in live_ranges(fn):
                assert a.offset_of(src) != a.offset_of(node)


def test_diamond() -> None:
    # 0 a=neg(x)  1 b=exp(a)  2 c=abs(a)  3 d=add(b,c)
    # a [0,2], b [1,3], c [2,3], d [3,3]. Step 2 has a, b, c live: three slots. d comes
    # after a's last use, so it takes a's slot at 0.
    fb = FunctionBuilder("diamond")
    x = fb.param("x", F4x4)
    a = fb.op(Op.NEG, x, name="a")
    b = fb.op(Op.EXP, a, name="b")
    c = fb.op(Op.ABS, a, name="c")
    d = fb.op(Op.ADD, b, c, name="d")
    fn = fb.build([d])
    assert ranges_by_name(fn) == {"a": (0, 2), "b": (1, 3), "c": (2, 3), "d": (3, 3)}
    asg = assign_buffers(fn)
    asg.check()
    assert offsets_by_name(asg) == {"a": 0, "b": 64, "c": 128, "d": 0}
    assert asg.live_bytes == (64, 128, 192, 192)
    assert (asg.arena_bytes, asg.peak_live_bytes, asg.peak_step) == (192, 192, 2)


def test_value_used_at_the_end_blocks_its_slot() -> None:
    # 0 a=neg(x)  1 b=exp(x)  2 c=neg(b)  3 d=add(a,c)
    # a [0,3] holds slot 0 throughout; b [1,2], c [2,3] need two more; d [3,3] conflicts
    # with a and c only, so it reuses b's slot.
    fb = FunctionBuilder("late_use")
    x = fb.param("x", F4x4)
    a = fb.op(Op.NEG, x, name="a")
    b = fb.op(Op.EXP, x, name="b")
    c = fb.op(Op.NEG, b, name="c")
    d = fb.op(Op.ADD, a, c, name="d")
    fn = fb.build([d])
    assert ranges_by_name(fn) == {"a": (0, 3), "b": (1, 2), "c": (2, 3), "d": (3, 3)}
    asg = assign_buffers(fn)
    asg.check()
    assert offsets_by_name(asg) == {"a": 0, "b": 64, "c": 128, "d": 64}
    assert asg.arena_bytes == 192


def test_results_stay_live_to_the_end() -> None:
    # 0 r=neg(x) [result, no users]  1 t=exp(x)  2 u=neg(t) [result]
    # Without the result rule r would be live only at step 0 and t would overwrite it.
    fb = FunctionBuilder("two_results")
    x = fb.param("x", F4x4)
    r = fb.op(Op.NEG, x, name="r")
    t = fb.op(Op.EXP, x, name="t")
    u = fb.op(Op.NEG, t, name="u")
    fn = fb.build([r, u])
    assert ranges_by_name(fn) == {"r": (0, 2), "t": (1, 2), "u": (2, 2)}
    asg = assign_buffers(fn)
    asg.check()
    assert offsets_by_name(asg) == {"r": 0, "t": 64, "u": 128}
    later = [b for b in asg.buffers if b.first > 0]
    assert all(b.offset >= 64 for b in later)


def test_parameters_and_constants_get_no_buffer() -> None:
    fb = FunctionBuilder("f")
    x = fb.param("x", F4x4)
    k = fb.const([[1.0] * 4] * 4, DType.F32, name="k")
    y = fb.op(Op.ADD, x, k, name="y")
    fn = fb.build([y])
    asg = assign_buffers(fn)
    assert [b.node for b in asg.buffers] == [y]
    # Step 0 is the constant: nothing is live there.
    assert asg.live_bytes == (0, 64)
    with pytest.raises(KeyError, match="no buffer"):
        asg.offset_of(x)
    with pytest.raises(KeyError, match="no buffer"):
        asg.offset_of(k)


def test_returned_parameter_needs_no_buffer() -> None:
    fb = FunctionBuilder("identity")
    x = fb.param("x", F4x4)
    fn = fb.build([x])
    asg = assign_buffers(fn)
    assert (asg.buffers, asg.arena_bytes, asg.peak_step, asg.peak_node) == ((), 0, None, None)


def test_dead_values_are_live_only_at_their_own_step() -> None:
    # 0 a=neg(x)  1 dead=exp(a) [unused]  2 b=neg(a)
    # a [0,2], dead [1,1], b [2,2]: dead conflicts with a only; b may reuse dead's slot.
    fb = FunctionBuilder("dead")
    x = fb.param("x", F4x4)
    a = fb.op(Op.NEG, x, name="a")
    fb.op(Op.EXP, a, name="dead")
    b = fb.op(Op.NEG, a, name="b")
    fn = fb.build([b])
    assert ranges_by_name(fn) == {"a": (0, 2), "dead": (1, 1), "b": (2, 2)}
    asg = assign_buffers(fn)
    asg.check()
    assert offsets_by_name(asg) == {"a": 0, "dead": 64, "b": 64}
    assert asg.arena_bytes == 128


def test_size_zero_tensors_take_no_bytes() -> None:
    fb = FunctionBuilder("empty")
    x = fb.param("x", TensorType((0, 4), DType.F32))
    y = fb.param("y", F4x4)
    a = fb.op(Op.NEG, x, name="a")
    b = fb.op(Op.NEG, y, name="b")
    c = fb.op(Op.NEG, a, name="c")
    fn = fb.build([b, c])
    asg = assign_buffers(fn)
    asg.check()
    assert {b.node.name: (b.offset, b.size) for b in asg.buffers} == {
        "a": (0, 0),
        "b": (0, 64),
        "c": (0, 0),
    }
    assert (asg.arena_bytes, asg.total_bytes, asg.peak_live_bytes) == (64, 64, 64)


def test_all_empty_function_has_an_empty_arena() -> None:
    fb = FunctionBuilder("empty")
    x = fb.param("x", TensorType((0,), DType.F32))
    fn = fb.build([fb.op(Op.EXP, fb.op(Op.NEG, x))])
    asg = assign_buffers(fn)
    assert (asg.arena_bytes, asg.total_bytes, asg.peak_live_bytes) == (0, 0, 0)
    assert asg.reuse_ratio is None
    assert "reuse ratio       -" in format_memory_report({"empty": asg})


def test_largest_first_and_first_fit_into_a_gap() -> None:
    # x: f32[16] (64 B)
    # 0 y  = broadcast(x) [2,16] 128 B   live [0,3]
    # 1 w  = broadcast(x) [4,16] 256 B   live [1,2]
    # 2 wr = reduce(w)    [16]    64 B   live [2,4]
    # 3 yr = reduce(y)    [16]    64 B   live [3,4]
    # 4 out = add(wr, yr) [16]    64 B   live [4,4]
    # Placement by size: w -> 0; y (meets w) -> 256; wr (meets y, w) -> 384;
    # yr (meets y at 256, wr at 384) fits in the gap at 0 that w left; out (meets wr, yr) -> 64.
    fb = FunctionBuilder("gap")
    x = fb.param("x", TensorType((16,), DType.F32))
    y = fb.op(Op.BROADCAST_IN_DIM, x, name="y", shape=(2, 16))
    w = fb.op(Op.BROADCAST_IN_DIM, x, name="w", shape=(4, 16))
    wr = fb.op(Op.REDUCE, w, name="wr", kind="sum", axes=(0,))
    yr = fb.op(Op.REDUCE, y, name="yr", kind="sum", axes=(0,))
    out = fb.op(Op.ADD, wr, yr, name="out")
    fn = fb.build([out])
    asg = assign_buffers(fn)
    asg.check()
    assert offsets_by_name(asg) == {"y": 256, "w": 0, "wr": 384, "yr": 0, "out": 64}
    assert asg.live_bytes == (128, 384, 448, 256, 192)
    assert (asg.arena_bytes, asg.peak_live_bytes, asg.total_bytes) == (448, 448, 576)


def odd_chain() -> Function:
    fb = FunctionBuilder("odd")
    x = fb.param("x", TensorType((3,), DType.F32))  # 12 bytes
    a = fb.op(Op.NEG, x, name="a")
    b = fb.op(Op.NEG, a, name="b")
    return fb.build([b])


@pytest.mark.parametrize(("alignment", "b_offset"), [(64, 64), (16, 16), (4, 12), (1, 12)])
def test_offsets_are_aligned(alignment: int, b_offset: int) -> None:
    asg = assign_buffers(odd_chain(), alignment)
    asg.check()
    assert offsets_by_name(asg) == {"a": 0, "b": b_offset}
    assert asg.arena_bytes == b_offset + 12


@pytest.mark.parametrize("alignment", [0, 3, 48, -64])
def test_alignment_must_be_a_power_of_two(alignment: int) -> None:
    with pytest.raises(TesselError, match="power of two"):
        assign_buffers(odd_chain(), alignment)


def test_check_rejects_overlapping_live_buffers() -> None:
    asg = assign_buffers(chain())
    bad = BufferAssignment(
        asg.function,
        asg.alignment,
        tuple(
            b if b.node.name != "b" else type(b)(b.node, 0, b.size, b.first, b.last)
            for b in asg.buffers
        ),
        asg.live_bytes,
        asg.peak_node,
    )
    with pytest.raises(AssertionError, match="share memory"):
        bad.check()


def test_check_rejects_misaligned_offsets() -> None:
    asg = assign_buffers(odd_chain(), 4)
    bad = BufferAssignment(asg.function, 64, asg.buffers, asg.live_bytes, asg.peak_node)
    with pytest.raises(AssertionError, match="not 64-aligned"):
        bad.check()


# -- random DAGs --

SHAPES = [(16,), *((k, 16) for k in range(1, 6)), (0, 16)]


def random_function(rng: random.Random) -> Function:
    """A random DAG over f32[16] and f32[k,16] values: elementwise ops within a shape, and
    broadcast / reduce between them. Results are a random subset, so some values are dead."""
    fb = FunctionBuilder("rand")
    values: list[Node] = [fb.param(f"p{i}", TensorType((16,), DType.F32)) for i in range(2)]
    for i in range(rng.randint(1, 40)):
        a = rng.choice(values)
        roll = rng.random()
        if roll < 0.3:
            node = fb.op(rng.choice([Op.NEG, Op.EXP, Op.ABS]), a, name=f"v{i}")
        elif roll < 0.6:
            same = [v for v in values if v.shape == a.shape]
            node = fb.op(Op.ADD, a, rng.choice(same), name=f"v{i}")
        elif a.shape == (16,):
            node = fb.op(Op.BROADCAST_IN_DIM, a, name=f"v{i}", shape=rng.choice(SHAPES[1:]))
        else:
            node = fb.op(Op.REDUCE, a, name=f"v{i}", kind="sum", axes=(0,))
        values.append(node)
    body = fb.body
    results = rng.sample(body, rng.randint(1, min(3, len(body))))
    return fb.build(results)


@pytest.mark.parametrize("seed", range(60))
def test_random_dags(seed: int) -> None:
    rng = random.Random(seed)
    fn = random_function(rng)
    alignment = rng.choice([1, 16, 64])
    asg = assign_buffers(fn, alignment)
    asg.check()
    assert asg.arena_bytes >= asg.peak_live_bytes
    assert len(asg.buffers) == len(fn.body)
    ranges = live_ranges(fn)
    for node in fn.body:
        buf = asg.buffer(node)
        # An op's output never shares bytes with an operand it is reading.
        for src in node.srcs:
            if src in ranges:
                assert not buf.overlaps_in_memory(asg.buffer(src))
    for r in fn.results:
        if r in ranges:
            res = asg.buffer(r)
            assert res.last == len(fn.body) - 1
            for b in asg.buffers:
                if b.first > res.first:
                    assert not res.overlaps_in_memory(b), "a later op overwrites a result"


# -- the pass --


def test_pass_is_registered_and_leaves_the_module_unchanged() -> None:
    assert REGISTRY["buffer-assign"] is BufferAssign
    other = chain().replace(name="other")
    module = Module((chain(), other), "chain")
    ctx = PassContext()
    out = BufferAssign().run(module, ctx)
    assert out is module
    result = ctx.analyses["buffer-assign"]
    assert list(result) == ["chain", "other"]
    assert all(isinstance(a, BufferAssignment) for a in result.values())
    assert result["other"].function == "other"


def test_pipeline_option() -> None:
    (p,) = parse_pipeline("buffer-assign{alignment=16}")
    ctx = PassContext()
    p.run(Module((odd_chain(),), "odd"), ctx)
    assert offsets_by_name(ctx.analyses["buffer-assign"]["odd"]) == {"a": 0, "b": 16}
    (bad,) = parse_pipeline("buffer-assign{alignment=24}")
    with pytest.raises(TesselError, match="power of two"):
        bad.run(Module((odd_chain(),), "odd"), PassContext())


# -- report and picture --

CHAIN_REPORT = """\
memory @chain (alignment 64 B)
  buffers           4
  total (no reuse)  256 B
  arena             128 B
  peak live         128 B
  reuse ratio       2.00x (total / arena)
  peak at step      1 of 4: %b = exp : f32[4,4]
  live at peak      %a 64 B, %b 64 B
"""


def test_memory_report_golden() -> None:
    assert format_memory_report({"chain": assign_buffers(chain())}) == CHAIN_REPORT


def test_memory_report_units_and_unnamed_values() -> None:
    fb = FunctionBuilder("big")
    x = fb.param("x", TensorType((512, 512), DType.F32))
    fb.op(Op.NEG, x)  # unnamed: reported by op and step
    fn = fb.build([fb.op(Op.EXP, x, name="y")])
    text = format_memory_report({"big": assign_buffers(fn)})
    assert "total (no reuse)  2,097,152 B (2.0 MiB)" in text
    assert "arena             1,048,576 B (1.0 MiB)" in text  # the dead neg's bytes are reused
    assert "peak at step      0 of 2: neg@0 = neg : f32[512,512]" in text
    assert "live at peak      neg@0 1.0 MiB\n" in text


def test_svg_is_xml_with_one_bar_per_buffer() -> None:
    fb = FunctionBuilder("svg")
    x = fb.param("x", F4x4)
    a = fb.op(Op.NEG, x, name="a<&>")  # a hint a parser would reject: must still be escaped
    b = fb.op(Op.DOT_GENERAL, a, a, lhs_contract=(1,), rhs_contract=(0,), name="b")
    c = fb.op(Op.BROADCAST_IN_DIM, fb.op(Op.REDUCE, b, kind="sum", axes=(0,)), shape=(4, 4))
    fn = fb.build([fb.op(Op.ADD, c, a, name="d")])
    asg = assign_buffers(fn)
    root = ET.fromstring(lifetime_svg(asg, fn))
    assert root.tag == SVG + "svg"
    bars = [r for r in root.iter(SVG + "rect") if r.get("class") == "buffer"]
    assert len(bars) == len(asg.buffers) == 5
    tips = [bar.findtext(SVG + "title") or "" for bar in bars]
    assert tips[0].startswith("%a<&> = neg : f32[4,4]\n64 bytes at offset 0")
    assert tips[1].startswith("%b = dot_general")
    # Colors follow the op kind: dot_general, reduce and broadcast each get their own.
    assert len({bars[i].get("fill") for i in (0, 1, 2, 3)}) == 4
    assert len(list(root.iter(SVG + "line"))) > 0
    peak = [ln for ln in root.iter(SVG + "line") if ln.get("class") == "peak"]
    assert len(peak) == 1


def test_svg_without_buffers_still_renders() -> None:
    fb = FunctionBuilder("identity")
    fn = fb.build([fb.param("x", F4x4)])
    root = ET.fromstring(lifetime_svg(assign_buffers(fn), fn))
    assert not [r for r in root.iter(SVG + "rect") if r.get("class") == "buffer"]


def test_svg_rejects_another_function() -> None:
    with pytest.raises(ValueError, match="does not describe"):
        lifetime_svg(assign_buffers(chain()), odd_chain())
