"""The graph-file text round-trips: print(parse(print(m))) == print(m) and parse(print(m)) == m.

Random valid modules come from `graphgen`, which covers every op and every dtype each op
accepts. Large constants go to a weights archive and come back from it.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from graphgen import ACCEPTS, GENERATORS, OP_DTYPES, functions, modules
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ir.builder import FunctionBuilder
from ir.diagnostics import ShapeError
from ir.dtypes import DType
from ir.graph import Module
from ir.ops import ARITY, CONTROL, OPERAND_DTYPES, SOURCES, Op
from ir.parser import parse_module
from ir.printer import WeightSink, is_splat, print_module
from ir.typerules import check_operands, infer
from ir.types import TensorType
from ir.verify import verify_module

FAST = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def assert_roundtrips(m: Module, base_dir: str | Path | None = None, **print_kw: object) -> str:
    verify_module(m)
    text = print_module(m, base_dir=base_dir, **print_kw)
    back = parse_module(text, "roundtrip.graph", base_dir)
    verify_module(back)
    assert back == m, text
    assert print_module(back, base_dir=base_dir, **print_kw) == text
    return text


# --- coverage of the generators ----------------------------------------------------------------


def test_generators_cover_every_op() -> None:
    assert set(GENERATORS) == set(Op)


def test_generated_dtypes_are_exactly_what_each_op_accepts() -> None:
    for op in Op:
        pairs = {dt for o, dt in OP_DTYPES if o is op}
        assert pairs == ACCEPTS[op], op
        assert pairs, op
        assert ACCEPTS[op] <= OPERAND_DTYPES[op].allowed, op


@pytest.mark.parametrize("op", [op for op in Op if op not in SOURCES], ids=str)
def test_dtypes_outside_the_table_are_rejected(op: Op) -> None:
    for dt in set(DType) - ACCEPTS[op]:
        arity = ARITY[op] or 2
        types = [TensorType((1,), dt)] * arity
        if op is Op.SELECT:
            types[0] = TensorType((1,), DType.BOOL)
        with pytest.raises(ShapeError, match=r"^needs .*, got "):
            check_operands(op, types)


def test_iota_rejects_bool_although_sources_take_any_type() -> None:
    with pytest.raises(ShapeError, match=r"^dtype must be numeric, got bool$"):
        infer(Op.IOTA, [], {"shape": (2,), "dtype": DType.BOOL})


# --- round trips ---------------------------------------------------------------------------------


@settings(FAST, max_examples=150)
@given(modules())
def test_random_module_roundtrips(m: Module) -> None:
    assert_roundtrips(m)


FIRST_IS_DATA = {Op.FUSION, Op.GATHER}  # gather's last operand is its integer indices


@pytest.mark.parametrize(("op", "dtype"), OP_DTYPES, ids=lambda v: str(v))
@settings(FAST, max_examples=3)
@given(data=st.data())
def test_every_op_and_dtype_roundtrips(op: Op, dtype: DType, data: st.DataObject) -> None:
    fn = data.draw(functions(op=op, dtype=dtype))
    node = fn.results[0]
    if op in CONTROL:  # a function returns tensors: graphgen reads the loop with a get
        node = node.srcs[0]
    assert node.op is op
    # the data operand: select's predicate comes first, a fusion's typed parameter does; a
    # get reads the element of the loop that has the dtype
    if op in SOURCES or op is Op.GET:
        made = node.dtype
    else:
        made = node.srcs[0 if op in FIRST_IS_DATA else -1].dtype
    assert made == dtype
    assert_roundtrips(Module((fn,), fn.name))


@settings(FAST, max_examples=60)
@given(modules())
def test_large_constants_roundtrip_through_a_weights_archive(m: Module) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sink = WeightSink(Path(tmp) / "w.npz")
        text = print_module(m, base_dir=tmp, weights=sink, inline_limit=4)
        sink.save()
        big = [
            n
            for f in m.functions
            for n in f.walk()
            if n.op is Op.CONSTANT and n.type.size > 4 and not is_splat(n.attrs["value"].array)
        ]  # splats always print as one value; nested bodies' constants go to the archive too
        assert text.count('constant "w.npz"[') == len(big)
        assert bool(sink.arrays) == bool(big)
        back = parse_module(text, "roundtrip.graph", tmp)
        verify_module(back)
        assert back == m
        again = WeightSink(Path(tmp) / "unused.npz")
        assert print_module(back, base_dir=tmp, weights=again, inline_limit=4) == text
        assert again.arrays == {}  # constants read from the archive keep pointing at it


# --- constants and weights, by hand ------------------------------------------------------------


def _constant_text(values: list[float], dtype: DType) -> str:
    fb = FunctionBuilder("main")
    c = fb.const(np.array(values, dtype=dtype.np))
    return print_module(Module((fb.build([c]),), "main")).splitlines()[1].strip()


@pytest.mark.parametrize("dtype", [DType.F64, DType.F32, DType.F16, DType.BF16], ids=str)
def test_special_floats_print_and_parse_back(dtype: DType) -> None:
    values = [math.nan, -math.nan, math.inf, -math.inf, -0.0, 0.0]
    text = _constant_text(values, dtype)
    assert text == f"%0 = constant [nan, -nan, inf, -inf, -0.0, 0.0] : {dtype}[6]"
    back = parse_module(f"func @main() -> {dtype}[6] {{\n  {text}\n  return %0\n}}\n")
    array = back.entry_function.body[0].attrs["value"].array
    assert array.tobytes() == np.array(values, dtype=dtype.np).tobytes()


def test_floats_print_as_the_shortest_text_that_reads_back() -> None:
    assert _constant_text([0.1, 1 / 3], DType.F32) == "%0 = constant [0.1, 0.33333334] : f32[2]"
    assert _constant_text([0.1, 1 / 3], DType.F64) == (
        "%0 = constant [0.1, 0.3333333333333333] : f64[2]"
    )
    # bf16 holds 0.1 as 0.10009765625 and 1/3 as 0.333984375; 2-3 digits name them uniquely.
    assert _constant_text([0.1, 1 / 3], DType.BF16) == "%0 = constant [0.1, 0.334] : bf16[2]"
    assert _constant_text([65504.0, 1e-7], DType.F16) == "%0 = constant [6.55e+04, 1e-07] : f16[2]"


def test_equal_elements_print_as_one_number_but_signed_zeros_do_not_merge() -> None:
    assert _constant_text([2.5, 2.5, 2.5], DType.F32) == "%0 = constant 2.5 : f32[3]"
    assert _constant_text([0.0, -0.0], DType.F32) == "%0 = constant [0.0, -0.0] : f32[2]"
    assert _constant_text([-0.0, -0.0], DType.BF16) == "%0 = constant -0.0 : bf16[2]"


def test_weights_archive_keys_come_from_name_hints(tmp_path: Path) -> None:
    fb = FunctionBuilder("main")
    shared = np.arange(20, dtype=np.float32)
    nodes = [
        fb.const(shared, name="file"),  # np.savez would take this key for its own argument
        fb.const(np.arange(20, dtype=np.int8), name="allow_pickle"),
        fb.const(-np.arange(20, dtype=np.float32), name="file"),
        fb.const(np.linspace(0, 1, 20).astype(ml_dtypes.bfloat16), name="has space"),
    ]
    nodes.append(fb.add(nodes[0].replace(name="again")))  # the same array, stored once
    m = Module((fb.build(nodes),), "main")
    sink = WeightSink(tmp_path / "w.npz")
    text = print_module(m, base_dir=tmp_path, weights=sink)
    sink.save()
    assert list(sink.arrays) == ["file", "allow_pickle", "file.1", "const3"]
    assert 'constant "w.npz"["file"] : f32[20]' in text
    assert text.count('"w.npz"["file"]') == 2
    with np.load(tmp_path / "w.npz") as archive:
        assert archive.files == ["file", "allow_pickle", "file.1", "const3"]
    back = parse_module(text, "w.graph", tmp_path)
    assert back == m
    assert back.entry_function.body[3].dtype == DType.BF16


def test_small_constants_stay_inline_and_big_ones_without_a_sink_too() -> None:
    fb = FunctionBuilder("main")
    small = fb.const(np.arange(16, dtype=np.int32))
    big = fb.const(np.arange(17, dtype=np.int32))
    text = print_module(Module((fb.build([small, big]),), "main"))
    assert "constant [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] : i32[16]" in text
    assert "constant [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16] : i32[17]" in text


def test_number_operands_become_scalar_constants_that_broadcast() -> None:
    text = "\n".join(
        [
            "func @main(%x: f32[2]) -> (f32[2], f32[2]) {",
            "  %y = add(%x, 1.5)",
            "  %s = select(true, %x, -0.0)",
            "  return %y, %s",
            "}",
        ]
    )
    assert print_module(parse_module(text)).splitlines() == [
        "func @main(%x: f32[2]) -> (f32[2], f32[2]) {",
        "  %0 = constant 1.5 : f32[]",
        "  %1 = broadcast_in_dim(%0) {shape = [2]} : f32[2]",
        "  %y = add(%x, %1) : f32[2]",
        "  %2 = constant true : bool[]",  # select's predicate is bool
        "  %3 = constant -0.0 : f32[]",  # its data operands take the other operand's type
        "  %4 = broadcast_in_dim(%2) {shape = [2]} : bool[2]",
        "  %5 = broadcast_in_dim(%3) {shape = [2]} : f32[2]",
        "  %s = select(%4, %x, %5) : f32[2]",
        "  return %y, %s",
        "}",
    ]


def test_printer_names_values_and_marks_the_entry() -> None:
    text = "\n".join(
        [
            "func @helper(%x: f32[2]) -> f32[2] {",
            "  %x.1 = neg(%x) : f32[2]",
            "  return %x.1",
            "}",
            "",
            "entry func @main(%x: f32[2], %y: f32[2]) -> (f32[2], bool[2]) {",
            "  %0 = add(%x, %y) : f32[2]",
            "  %x.1 = abs(%0) : f32[2]",
            "  %1 = lt(%0, %x.1) : bool[2]",
            "  return %x.1, %1",
            "}",
            "",
        ]
    )
    m = parse_module(text)
    assert m.entry == "main"
    assert print_module(m) == text
