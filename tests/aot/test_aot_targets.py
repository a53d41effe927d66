"""--weights external, --cpu choices, and the CPU check that refuses instead of crashing."""

from __future__ import annotations

import json

import numpy as np
import pytest

import runtime
from codegen.aot import aot_target, compile_library, link_shared
from codegen.executable import native_ready
from compiler.cmd_run import entry_function, output_names
from compiler.driver import PipelineOptions, optimize
from ir.diagnostics import TesselError
from ir.parser import parse_file

RTOL, ATOL = 1e-4, 1e-5
MISSING = "avx5124fmaps"  # a Xeon Phi feature no current CPU has


def test_external_weights(builds, reference):
    ext, embedded = builds["mlp_ext"], builds["mlp"]
    weights = ext.folder / "mlp_ext.weights"
    meta = ext.metadata
    assert meta["weights"] == "mlp_ext.weights"
    assert weights.stat().st_size == meta["weight_bytes"] > 2_000_000
    # the 2.5 MB of weights are not in the library
    assert ext.library.stat().st_size < embedded.library.stat().st_size - 2_000_000
    assert "MLP_EXT_WEIGHT_BYTES" in (ext.folder / "mlp_ext.h").read_text()
    inputs, want = reference(ext.graph)
    got = runtime.load(ext.library).run(inputs)
    np.testing.assert_allclose(got[0], want[0], rtol=RTOL, atol=ATOL)


def test_external_weights_from_c(builds, reference, c_driver):
    ext = builds["mlp_ext"]
    inputs, want = reference(ext.graph)
    run = c_driver(ext, inputs, ext.folder / "mlp_ext.weights")
    assert run.proc.returncode == 0, run.proc.stdout + run.proc.stderr
    assert run.facts["before_weights"] == "3"  # TESSEL_ERROR_NO_WEIGHTS
    assert run.facts["wrong_size"] == "3"
    assert run.facts["misaligned"] == "3"
    assert run.facts["load_weights"] == "0"
    assert run.facts["scratch_null"] == run.facts["scratch_given"] == "0"
    assert run.facts["same"] == "1"
    np.testing.assert_allclose(run.outputs[0], want[0], rtol=RTOL, atol=ATOL)
    # the same machine code as the Python path
    assert run.outputs[0].tobytes() == runtime.load(ext.library).run(inputs)[0].tobytes()


def test_external_weights_missing_file(builds, tmp_path):
    ext = builds["mlp_ext"]
    for f in ext.folder.iterdir():
        if f.suffix != ".weights":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    with pytest.raises(TesselError):
        runtime.load(tmp_path / "mlp_ext.json")
    (tmp_path / "mlp_ext.weights").write_bytes(b"\0" * 100)
    with pytest.raises(TesselError, match="weights"):
        runtime.load(tmp_path / "mlp_ext.json")


@pytest.mark.parametrize(("key", "cpu"), [("mlp_generic", "generic"), ("mlp_v3", "x86-64-v3")])
def test_cpu_choices(builds, reference, c_driver, key, cpu):
    build = builds[key]
    target = build.metadata["target"]
    assert target["cpu"] == cpu
    # a psABI level is checked as a whole; generic x86-64 needs no check
    assert target["checked"] == ([cpu] if cpu.startswith("x86-64-") else [])
    assert f"Compiled for CPU '{cpu}'" in (build.folder / f"{build.name}.h").read_text()
    inputs, want = reference(build.graph)
    native = runtime.load(builds["mlp"].library).run(inputs)
    got = runtime.load(build.library).run(inputs)
    np.testing.assert_allclose(got[0], native[0], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got[0], want[0], rtol=RTOL, atol=ATOL)
    run = c_driver(build, inputs)
    assert run.proc.returncode == 0, run.proc.stderr
    assert run.outputs[0].tobytes() == got[0].tobytes()


@pytest.fixture(scope="module")
def refusing(tmp_path_factory, builds):
    """The CNN compiled to require a CPU feature this machine lacks, next to its NAME.json
    (as `tessel compile` writes it): the build of that name."""
    folder = tmp_path_factory.mktemp("refusing")
    graph = builds["cnn"].graph
    module = parse_file(graph)
    optimized, _ = optimize(module, PipelineOptions(target="cpu", name="refusing"))
    fn = entry_function(native_ready(optimized), None)
    lib = compile_library(
        fn, "refusing", aot_target("native"), extra_features=(MISSING,),
        output_names=output_names(fn),
    )  # fmt: skip
    link_shared(lib, folder)
    (folder / "refusing.json").write_text(json.dumps(lib.metadata))
    # the same record type as the session's builds
    return type(builds["cnn"])("refusing", graph, folder)


def test_missing_cpu_feature_refused(refusing, reference, c_driver):
    for path in (refusing.library, refusing.folder / "refusing.json"):
        with pytest.raises(TesselError, match=MISSING):
            runtime.load(path)
    build = refusing
    inputs, _ = reference(build.graph)
    run = c_driver(build, inputs)
    assert run.facts["missing"] == MISSING
    assert run.facts["scratch_null"] == "1"  # TESSEL_ERROR_CPU, not SIGILL
    assert run.proc.returncode == 11
