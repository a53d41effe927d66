"""The CPU backend as one native program: payload round trips, run_unchecked and its modes."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import codegen.executable as cpu
import runtime.native as native
from codegen.executable import CpuExecutable
from codegen.program import ProgramSpec
from compiler.targets import default_pipeline
from ir.diagnostics import TesselError
from ir.graph import Module
from ir.parser import parse_file, parse_module
from passes import PassManager, parse_pipeline
from runtime.inputs import random_inputs
from runtime.interp import run_module
from runtime.native import PARALLEL_MIN_ELEMENTS

SMALL = """func @main(%x: f32[4], %y: f32[4]) -> f32[4] {
 %z = add(%x, %y)
 %e = exp(%z)
 return %e
}"""
# every kernel's work is above PARALLEL_MIN_ELEMENTS, so two threads split it
LARGE = """func @main(%x: f32[64,1024], %y: f32[64,1024]) -> (f32[64,1024], f32[64,1024]) {
 %z = mul(%x, %y)
 %t = tanh(%z)
 %s = add(%t, %x)
 return %s, %z
}"""
assert PARALLEL_MIN_ELEMENTS <= 64 * 1024


def optimized(module: Module) -> Module:
    return PassManager(parse_pipeline(default_pipeline("cpu"))).run(module)


def reload(exe: CpuExecutable, threads: int | None = None) -> CpuExecutable:
    """Through JSON text and bytes, as an on-disk cache would store them."""
    spec, obj = exe.payload()
    assert isinstance(obj, bytes)
    assert obj
    return CpuExecutable.from_payload(json.loads(json.dumps(spec)), obj, threads=threads)


def assert_same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype
        assert g.shape == w.shape
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("sample", ["mlp", "cnn", "attention"])
def test_payload_round_trip_on_samples(samples_dir: Path, sample: str) -> None:
    module = parse_file(samples_dir / f"{sample}.graph")
    exe = CpuExecutable(optimized(module), threads=2)
    loaded = reload(exe, threads=2)
    assert loaded.mode == exe.mode
    args = random_inputs(module.entry_function, seed=1)
    want = exe(*args)
    assert_same(loaded(*args), want)
    assert_same(loaded.run_unchecked(args), want)
    assert_same(exe.run_unchecked(args), want)
    for e, g in zip(run_module(module, args), want, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


def test_spec_is_plain_json_and_round_trips(samples_dir: Path) -> None:
    exe = CpuExecutable(optimized(parse_file(samples_dir / "mlp.graph")))
    spec, _ = exe.payload()
    text = json.dumps(spec)  # no numpy scalars, tuples of objects or nodes
    assert ProgramSpec.from_json(json.loads(text)).to_json() == json.loads(text)
    assert spec["constants"]
    assert all(c["name"] for c in spec["constants"])
    assert "value" not in text  # constant data lives in the object code, not the spec


def test_loaded_program_has_no_ir_but_checks_inputs() -> None:
    loaded = reload(CpuExecutable(parse_module(SMALL)))
    assert loaded.llvm_ir == ""
    assert loaded.fn.param_names == ("x", "y")
    with pytest.raises(RuntimeError, match="object code"):
        loaded.compiled.asm()
    with pytest.raises(Exception, match="expected \\[4\\]"):
        loaded(np.ones(3, np.float32), np.ones(4, np.float32))
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_allclose(loaded(x, y=x)[0], np.exp(2 * x), rtol=1e-6)


def _inputs(text: str, seed: int) -> list[np.ndarray]:
    return random_inputs(parse_module(text).entry_function, seed)


@pytest.mark.parametrize(
    ("text", "threads", "mode"),
    [(SMALL, 1, "py"), (SMALL, 2, "py"), (LARGE, 1, "run"), (LARGE, 2, "threaded")],
)
def test_modes_agree_with_the_interpreter(text: str, threads: int, mode: str) -> None:
    module = parse_module(text)
    exe = CpuExecutable(module, threads=threads)
    assert exe.mode == mode
    args = _inputs(text, 0)
    want = run_module(module, args)
    for got in (exe.run_unchecked(args), exe(*args), reload(exe, threads).run_unchecked(args)):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_without_a_verified_array_layout_the_py_entry_is_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exe = CpuExecutable(parse_module(SMALL), threads=1)
    spec, obj = exe.payload()
    monkeypatch.setattr(cpu, "ARRAY_DATA_OFFSET", None)  # what the compiler builds for
    monkeypatch.setattr(native, "ARRAY_DATA_OFFSET", None)  # what the executor accepts
    cached = CpuExecutable.from_payload(spec, obj, threads=1)  # built for another layout
    fresh = CpuExecutable(parse_module(SMALL), threads=1)
    assert cached.mode == fresh.mode == "run"
    assert fresh.payload()[0]["data_offset"] is None
    args = _inputs(SMALL, 3)
    assert_same(cached.run_unchecked(args), exe.run_unchecked(args))
    assert_same(fresh.run_unchecked(args), exe.run_unchecked(args))


@pytest.mark.parametrize(("text", "threads"), [(SMALL, 2), (LARGE, 1), (LARGE, 2)])
def test_concurrent_calls_share_one_executable(text: str, threads: int) -> None:
    exe = CpuExecutable(parse_module(text), threads=threads)
    inputs = [_inputs(text, seed) for seed in range(4)]
    expected = [exe.run_unchecked(args) for args in inputs]
    failures: list[Any] = []

    def worker(k: int) -> None:
        try:
            for _ in range(30 if text is SMALL else 5):
                assert_same(exe.run_unchecked(inputs[k]), expected[k])
        except AssertionError as e:  # re-raised on the main thread
            failures.append(e)

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures, failures[0]


RESULTS = """func @main(%x: f32[3], %e: f32[0,2]) {
 %c = constant [1.5, -2.0] : f32[2]
 %y = neg(%x)
 %n = neg(%e)
 return %y, %y, %x, %c, %n, %e, %x
}"""


@pytest.mark.parametrize("load", [False, True])
def test_returned_twice_params_constants_and_empty_values(load: bool) -> None:
    exe = CpuExecutable(parse_module(RESULTS), threads=1)
    if load:
        exe = reload(exe, threads=1)
    x, e = np.array([1, 2, 3], np.float32), np.zeros((0, 2), np.float32)
    out = exe.run_unchecked([x, e])
    assert_same(out, [-x, -x, x, np.array([1.5, -2.0], np.float32), e, e, x])
    assert len({id(a) for a in out}) == len(out)  # every result is its own array
    assert not any(np.shares_memory(a, x) for a in out)
    out[3][0] = 99.0  # a returned constant is a copy; the program's global is read-only
    np.testing.assert_array_equal(exe.run_unchecked([x, e])[3], [1.5, -2.0])


def test_object_code_is_emitted_once_and_linked() -> None:
    exe = CpuExecutable(parse_module(SMALL))
    assert exe.compiled.object_code[:4] == b"\x7fELF"
    assert "main_run" in exe.llvm_ir
    assert "main_py" in exe.llvm_ir
    assert "ret" in exe.compiled.asm()


def test_code_for_features_this_cpu_lacks_is_refused_before_it_runs() -> None:
    spec, obj = CpuExecutable(parse_module(SMALL)).payload()
    spec["target"]["features"] += ",+made-up-feature"
    with pytest.raises(TesselError, match="made-up-feature, which this machine lacks"):
        CpuExecutable.from_payload(spec, obj)


def test_buffers_are_assigned_once_per_compile(samples_dir, monkeypatch):
    """The cpu pipeline's buffer-assign result is what the program is lowered with."""
    import codegen.program
    import passes.buffers
    from compiler.driver import PipelineOptions, optimize
    from compiler.targets import prepare
    from ir.parser import parse_file

    calls = []
    real = passes.buffers.assign_buffers

    def counting(fn, alignment=64):
        calls.append(fn.name)
        return real(fn, alignment)

    monkeypatch.setattr(passes.buffers, "assign_buffers", counting)
    monkeypatch.setattr(codegen.sequence, "assign_buffers", counting)
    optimized, ctx = optimize(parse_file(samples_dir / "mlp.graph"), PipelineOptions(target="cpu"))
    assert len(calls) == 1  # the pass
    prepare("cpu", optimized, None, None, ctx.analyses)
    assert len(calls) == 1  # lowering reused it
    prepare("cpu", optimized)  # without the pipeline's analyses, lowering assigns them itself
    assert len(calls) == 2


FUSED_SCATTER = """
func @main(%x: f32[5], %i: i32[3,1], %u: f32[3]) -> f32[5] {
  %r = fusion(%x, %i, %u) {body = func @fusion(%a: f32[5], %b: i32[3,1], %c: f32[3]) -> f32[5] {
    %e = exp(%a) : f32[5]
    %s = scatter(%e, %b, %c) {kind = add, mode = clip} : f32[5]
    %n = neg(%s) : f32[5]
    return %n
  }} : f32[5]
  return %r
}
"""


def test_a_fusion_holding_a_scatter_runs_as_its_ops() -> None:
    """A scatter has no fused form (its updates apply in order), so such a fusion, which a
    graph file may hold though `fuse` never makes one, is computed op by op."""
    module = parse_module(FUSED_SCATTER)
    args = random_inputs(module.entry_function, seed=3)
    want = run_module(module, args)
    np.testing.assert_allclose(CpuExecutable(module)(*args)[0], want[0], rtol=1e-6)  # exp: ulps
