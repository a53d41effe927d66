"""The @jit function object: caching, static arguments, pytrees, explanations, introspection,
the on-disk cache and concurrent first calls."""

from __future__ import annotations

import json
import logging
import threading
import warnings

import numpy as np
import pytest

from compiler import jit, no_recompile
from compiler.diskcache import CacheWarning, _entry_digest
from compiler.jitfunc import RecompileError
from ir.diagnostics import TesselError
from ir.parser import parse_module
from runtime.interp import run_module


def affine(x, w, b):
    return x @ w + b


def args_for(n=3, k=4, m=5, dtype=np.float32):
    rng = np.random.default_rng(n * 100 + k)
    return (
        rng.standard_normal((n, k)).astype(dtype),
        rng.standard_normal((k, m)).astype(dtype),
        rng.standard_normal(m).astype(dtype),
    )


def test_cache_hits_and_misses_by_signature():
    f = jit(affine, target="interp")
    f(*args_for())
    f(*args_for())
    f(*args_for(n=7))
    f(*args_for(dtype=np.float64))
    info = f.cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 3, 3)


def test_explain_names_the_argument_and_the_change(monkeypatch, caplog, capsys):
    monkeypatch.setenv("TESSEL_LOG_COMPILES", "1")
    f = jit(affine, target="interp")
    with caplog.at_level(logging.WARNING, logger="tessel.jit"):
        f(*args_for())
        f(*args_for(n=7))
        x, w, b = args_for()
        f(x, w.astype(np.float64), b)
    f.explain()  # prints: it shows in a script, not only at a prompt
    text = capsys.readouterr().out.rstrip("\n")
    assert text == "\n".join(f.explanations)
    assert text.startswith("compiled affine in ")
    assert "first call" in text
    assert "argument 'x' changed shape: f32[3,4] -> f32[7,4]" in text
    assert "argument 'w' changed type: f32[4,5] -> f64[4,5]" in text
    assert [r.getMessage() for r in caplog.records] == [
        f"tessel: {line}" for line in text.split("\n")
    ]


def test_static_arguments_are_part_of_the_key():
    @jit(target="interp", static_argnames="n")
    def power(x, n):
        for _ in range(n - 1):  # Python control flow on a static value is fine
            x = x * x
        return x

    x = np.full(3, 2.0, np.float32)
    np.testing.assert_array_equal(power(x, n=3), np.full(3, 16.0, np.float32))
    np.testing.assert_array_equal(power(x, n=2), np.full(3, 4.0, np.float32))
    assert "static argument 'n' changed: 3 -> 2" in power.explanations[-1]
    power(x, n=3)
    assert power.cache_info().misses == 2


def test_static_argnums_and_unhashable_static_values():
    f = jit(lambda x, shape: x.reshape(shape), target="interp", static_argnums=1)
    assert f(np.arange(6.0), (2, 3)).shape == (2, 3)
    with pytest.raises(TesselError, match="static argument 'shape' must be hashable"):
        f(np.arange(6.0), [2, 3])


def test_pytrees_and_keyword_arguments():
    @jit(target="interp")
    def step(state, batch, *, lr):
        grads = {k: v * batch["scale"] for k, v in state["params"].items()}
        new = {k: state["params"][k] - lr * grads[k] for k in grads}
        return {"params": new, "count": state["count"] + 1}, [grads["a"].sum(), (batch["x"],)]

    state = {"params": {"a": np.ones(3, np.float32), "b": np.zeros((2, 2), np.float32)},
             "count": np.int32(4)}  # fmt: skip
    batch = {"scale": np.float32(0.5), "x": np.arange(4, dtype=np.int64)}
    new, (total, (x,)) = step(state, batch, lr=0.1)
    assert set(new) == {"params", "count"}
    assert set(new["params"]) == {"a", "b"}
    np.testing.assert_allclose(new["params"]["a"], np.full(3, 0.95, np.float32), rtol=1e-6)
    assert new["params"]["a"].dtype == np.float32  # a Python float is weakly typed
    assert new["count"].dtype == np.int32
    assert int(new["count"]) == 5
    assert float(total) == 1.5
    np.testing.assert_array_equal(x, batch["x"])
    step(state, batch, lr=0.2)  # a new Python scalar value does not recompile
    assert step.cache_info().misses == 1


def test_python_scalars_are_traced_weakly():
    f = jit(lambda x, s: x * s, target="interp")
    y = f(np.ones(2, np.float16), 3.0)
    assert y.dtype == np.float16
    f(np.ones(2, np.float16), 4.5)
    assert f.cache_info().misses == 1
    f(np.ones(2, np.float16), 4)  # an int is another kind: new signature
    assert "changed type" in f.explanations[-1]


def test_no_recompile_turns_a_compile_into_an_error():
    f = jit(affine, target="interp")
    f(*args_for())
    with no_recompile():
        f(*args_for())
        with pytest.raises(RecompileError, match=r"argument 'x' changed shape"):
            f(*args_for(n=2))
    f(*args_for(n=2))  # outside the block it compiles as usual


def test_lower_gives_a_valid_graph_file_and_compile_gives_code():
    f = jit(affine)
    args = args_for()
    lowered = f.lower(*args)
    text = lowered.as_text()
    module = parse_module(text)
    np.testing.assert_allclose(run_module(module, list(args))[0], affine(*args), rtol=1e-6)
    compiled = f.compile(*args)
    assert "define" in compiled.as_llvm()
    assert "ret void" in compiled.as_llvm()
    assert "vfmadd" in compiled.as_asm() or "mulps" in compiled.as_asm()  # SSE too (TESSEL_CPU)
    assert "dot_general" in compiled.as_text()
    np.testing.assert_allclose(compiled(*args), affine(*args), rtol=1e-5)


def test_dump_dir_writes_rerunnable_dumps_and_a_report(tmp_path):
    f = jit(affine, dump_dir=tmp_path)
    f(*args_for())
    folder = tmp_path / "affine"
    dumps = sorted(folder.glob("*.graph"))
    assert dumps[0].name == "000-input.graph"
    assert len(dumps) > 3
    assert (folder / "index.html").exists()
    for dump in dumps:
        parse_module(dump.read_text())


def test_results_are_fresh_arrays_and_inputs_are_not_modified():
    f = jit(lambda x: (x, x + 1, x + 1))
    x = np.arange(4, dtype=np.float32)
    a, b, c = f(x)
    assert a is not x
    assert not np.shares_memory(a, x)
    assert not np.shares_memory(b, c)
    b[0] = 100
    np.testing.assert_array_equal(f(x)[1], x + 1)
    np.testing.assert_array_equal(x, np.arange(4, dtype=np.float32))


def test_non_contiguous_and_scalar_inputs():
    f = jit(lambda x: x * 2)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(f(x.T), x.T * 2)
    np.testing.assert_array_equal(f(x[:, ::2]), x[:, ::2] * 2)
    assert f(np.float32(3)).shape == ()
    assert float(f(np.float32(3))) == 6.0


@pytest.mark.parametrize("arity", [1, 2, 3])
def test_the_cached_path_checks_what_the_first_call_checked(arity):
    """The short path after a first call is keyed on all the compiled code assumes: '>f4' has
    the same dtype number as '<f4' but is refused; a misaligned array is copied, not passed."""
    f = jit(lambda *xs: sum(xs[1:], xs[0]) + 1)
    plain = [np.zeros(4, np.float32) for _ in range(arity)]
    np.testing.assert_array_equal(f(*plain), np.ones(4, np.float32))
    swapped = [np.arange(4, dtype=">f4"), *plain[1:]]
    for _ in range(2):  # the first refusal must not make a key that lets the second through
        with pytest.raises(TesselError, match=r"argument .* has dtype >f4.*astype\('float32'\)"):
            f(*swapped)
    raw = np.zeros(4 * 4 + 1, np.uint8)
    misaligned = np.ndarray(buffer=raw, offset=1, shape=(4,), dtype=np.float32)
    misaligned[:] = np.arange(4)
    assert not misaligned.flags.aligned
    for _ in range(2):
        got = f(misaligned, *plain[1:])
        np.testing.assert_array_equal(got, np.arange(4, dtype=np.float32) + 1)


def test_a_non_array_argument_gets_a_clear_error():
    f = jit(lambda x: x + 1, target="interp")
    with pytest.raises(TesselError, match="argument 'x' is a str, which cannot be traced"):
        f("abc")


def test_nested_jit_functions_inline():
    inner = jit(lambda x: np.exp(x) * 2)
    outer = jit(lambda x: inner(x) + inner(x + 1))
    x = np.linspace(-1, 1, 9, dtype=np.float32)
    np.testing.assert_allclose(outer(x), np.exp(x) * 2 + np.exp(x + 1) * 2, rtol=1e-5)
    assert inner.cache_info().misses == 0  # traced through, never compiled on its own


def test_methods_take_self_as_a_static_argument():
    class Model:
        def __init__(self, w):
            self.w = w

        @jit(static_argnames="self")
        def forward(self, x):
            return x @ self.w  # the instance's array is a captured constant

    a, b = Model(np.eye(3, dtype=np.float32) * 2), Model(np.eye(3, dtype=np.float32) * 3)
    x = np.ones((1, 3), np.float32)
    np.testing.assert_array_equal(a.forward(x), np.full((1, 3), 2.0))
    np.testing.assert_array_equal(b.forward(x), np.full((1, 3), 3.0))
    np.testing.assert_array_equal(a.forward(x), np.full((1, 3), 2.0))
    assert Model.forward.cache_info().misses == 2


def test_concurrent_first_calls_compile_once():
    f = jit(affine)
    args = args_for(n=64, k=32, m=48)
    want = affine(*args)
    results, errors = [], []
    barrier = threading.Barrier(6)

    def call():
        barrier.wait()
        try:
            for _ in range(20):
                results.append(f(*args))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert f.cache_info().misses == 1
    assert len(results) == 120
    for r in results:
        np.testing.assert_allclose(r, want, rtol=1e-5, atol=1e-5)


# --- the on-disk cache --------------------------------------------------------------------


def test_disk_cache_survives_a_new_function_object(tmp_path, monkeypatch):
    monkeypatch.setenv("TESSEL_CACHE_DIR", str(tmp_path))
    args = args_for()
    first = jit(affine)(*args)
    entries = list((tmp_path / "entries").glob("*.json"))
    objects = list((tmp_path / "objects").glob("*.o"))
    assert len(entries) == 1
    assert len(objects) == 1
    meta = json.loads(entries[0].read_text())
    assert meta["built_for"]["cpu"]  # the CPU, or the level (TESSEL_CPU) the code is for
    assert "features" in meta["built_for"]
    assert "spec" in meta
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a good entry loads silently
        again = jit(affine)
        np.testing.assert_array_equal(again(*args), first)
    (line,) = again.explanations
    assert line.startswith("loaded affine from the disk cache in ")
    assert line.endswith("(first call)")
    with pytest.raises(TesselError, match="loaded from the on-disk cache"):
        again.compile(*args).as_llvm()
    with pytest.raises(TesselError, match="loaded from the on-disk cache"):
        again.compile(*args).as_text()


@pytest.mark.parametrize("damage", ["object", "json", "edited", "stale"])
def test_a_corrupt_or_stale_entry_recompiles_with_a_warning(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("TESSEL_CACHE_DIR", str(tmp_path))
    args = args_for()
    want = jit(affine)(*args)
    (entry,) = (tmp_path / "entries").glob("*.json")
    (obj,) = (tmp_path / "objects").glob("*.o")
    if damage == "object":
        obj.write_bytes(obj.read_bytes()[:100])
    elif damage == "json":
        entry.write_text("{not json")
    elif damage == "edited":
        meta = json.loads(entry.read_text())
        meta["spec"]["arena_bytes"] += 64
        entry.write_text(json.dumps(meta))
    else:  # stale: whole and consistent, but from another compiler
        meta = json.loads(entry.read_text())
        meta["built_for"]["compiler"] = "an older tessel"
        meta["digest"] = _entry_digest(meta)
        entry.write_text(json.dumps(meta))
    with pytest.warns(CacheWarning, match="unusable"):
        got = jit(affine)(*args)
    np.testing.assert_array_equal(got, want)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the entry was rewritten
        np.testing.assert_array_equal(jit(affine)(*args), want)


def test_entries_swapped_between_functions_are_not_run(tmp_path, monkeypatch):
    """Found by the cache fuzzer: each entry's file under the other's name ran the other
    function's code (a wrong answer, or a crash on the wrong number of arguments)."""
    monkeypatch.setenv("TESSEL_CACHE_DIR", str(tmp_path))
    args = args_for()
    x = np.arange(6, dtype=np.float64)
    want_affine, want_twice = jit(affine)(*args), jit(lambda v: v * 2)(x)
    first, second = sorted((tmp_path / "entries").glob("*.json"))
    texts = first.read_text(), second.read_text()
    first.write_text(texts[1])
    second.write_text(texts[0])
    with pytest.warns(CacheWarning, match="not this function's entry"):
        np.testing.assert_array_equal(jit(affine)(*args), want_affine)
    with pytest.warns(CacheWarning, match="not this function's entry"):
        np.testing.assert_array_equal(jit(lambda v: v * 2)(x), want_twice)


def test_cache_false_ignores_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TESSEL_CACHE_DIR", str(tmp_path))
    jit(affine, cache=False)(*args_for())
    assert not (tmp_path / "entries").exists()


def test_a_leaked_tracer_is_a_clear_error():
    kept = []

    @jit(target="interp")
    def leak(x):
        kept.append(x)
        return x + 1

    @jit(target="interp")
    def use(y):
        return y + kept[0]

    leak(np.ones(2, np.float32))
    with pytest.raises(TesselError, match="used outside the call that traced it"):
        use(np.ones(2, np.float32))
