"""The CPU executor and its command line: samples, inputs, threads, emitted code."""

from __future__ import annotations

from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
import pytest
from llvmlite import ir

from codegen.cpu_caps import level_caps
from codegen.executable import CpuExecutable
from codegen.jit import host_target
from codegen.kernel import build_kernel
from compiler.cli import main
from compiler.targets import default_pipeline
from ir.diagnostics import InputError
from ir.parser import parse_file, parse_module
from passes import PassManager, parse_pipeline
from runtime.inputs import random_inputs
from runtime.interp import run_module

GOLDEN = Path(__file__).parent / "golden"
ADD = "func @main(%x: f32[5], %y: f32[5]) -> f32[5] {\n %z = add(%x, %y)\n return %z\n}"


def optimized(module):
    return PassManager(parse_pipeline(default_pipeline("cpu"))).run(module)


def test_golden_llvm_for_a_tiny_kernel():
    mod = ir.Module(name="golden")
    build_kernel(mod, parse_module(ADD).entry_function.body[0], "add_f32", level_caps("generic"))
    assert str(mod) == (GOLDEN / "add_f32.ll").read_text()
    llvm.parse_assembly(str(mod)).verify()


@pytest.mark.parametrize("sample", ["mlp", "cnn", "attention"])
@pytest.mark.parametrize("threads", [1, 2])
def test_samples_match_the_interpreter(samples_dir, sample, threads):
    module = parse_file(samples_dir / f"{sample}.graph")
    exe = CpuExecutable(optimized(module), threads=threads)
    for seed in range(2):
        args = random_inputs(module.entry_function, seed)
        for e, g in zip(run_module(module, args), exe(*args), strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


def test_results_do_not_depend_on_thread_count(samples_dir):
    module = optimized(parse_file(samples_dir / "attention.graph"))
    args = random_inputs(module.entry_function)
    one = CpuExecutable(module, threads=1)(*args)
    two = CpuExecutable(module, threads=2)(*args)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)  # threads split rows; each row is computed alike


def test_outputs_are_fresh_arrays():
    exe = CpuExecutable(parse_module(ADD))
    x, y = np.ones(5, np.float32), np.arange(5, dtype=np.float32)
    first = exe(x, y)[0]
    second = exe(x, 2 * y)[0]
    np.testing.assert_array_equal(first, 1 + y)
    np.testing.assert_array_equal(second, 1 + 2 * y)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.ones(4, np.float32), "argument 'x' has shape [4], expected [5]"),
        (np.ones(5, np.float64), "argument 'x' has dtype f64, expected f32"),
        ([1.0] * 5, "argument 'x' must be a numpy array of type f32[5], got list"),
        (np.ones((5, 1), np.float32), "argument 'x' has shape [5, 1], expected [5]"),
    ],
)
def test_wrong_inputs_are_rejected_before_native_code(x, message):
    exe = CpuExecutable(parse_module(ADD))
    with pytest.raises(InputError) as info:
        exe(x, np.ones(5, np.float32))
    assert info.value.message.startswith(message)


def test_non_contiguous_inputs_are_copied():
    text = "func @main(%x: f32[3,4]) -> f32[3,4] {\n %y = neg(%x)\n return %y\n}"
    exe = CpuExecutable(parse_module(text))
    base = np.arange(24, dtype=np.float32).reshape(3, 8)
    strided = base[:, ::2]
    fortran = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    np.testing.assert_array_equal(exe(strided)[0], -strided)
    np.testing.assert_array_equal(exe(fortran)[0], -fortran)


def test_portable_targets_compile_and_agree(samples_dir):
    module = optimized(parse_file(samples_dir / "cnn.graph"))
    args = random_inputs(module.entry_function)
    native = CpuExecutable(module)(*args)
    for cpu in ("x86-64-v3", "generic"):
        other = CpuExecutable(module, target=host_target(cpu))(*args)
        for a, b in zip(native, other, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_emit_llvm_and_asm_into_the_dump_folder(samples_dir, tmp_path, capsys):
    emits = ["--emit", "llvm", "--emit", "llvm-opt", "--emit", "asm"]
    sample = str(samples_dir / "mlp.graph")
    code = main(["run", sample, "--backend", "cpu", "--dump-dir", str(tmp_path), *emits])
    assert code == 0
    folder = tmp_path / "mlp"
    llvm.parse_assembly((folder / "kernels.ll").read_text()).verify()
    llvm.parse_assembly((folder / "kernels.opt.ll").read_text()).verify()
    assert "ret" in (folder / "kernels.s").read_text()


def test_cli_cpu_backend_matches_interp(samples_dir, tmp_path, capsys):
    for backend in ("interp", "cpu"):
        code = main(["run", str(samples_dir / "attention.graph"), "--backend", backend,
                     "-o", str(tmp_path / backend)])  # fmt: skip
        assert code == 0
    np.testing.assert_allclose(
        np.load(tmp_path / "cpu" / "out.npy"), np.load(tmp_path / "interp" / "out.npy"),
        rtol=1e-4, atol=1e-6,
    )  # fmt: skip


def test_threads_option_is_validated(samples_dir, capsys):
    assert main(["run", str(samples_dir / "mlp.graph"), "--backend", "cpu", "--threads", "0"]) == 1
    assert "--threads must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("x", "w", "attrs"),
    [
        ("f32[2,9,7,6]", "f32[3,2,3,8]", "{strides = [2, 1], padding = same, groups = 2}"),
        ("f32[1,8,8,4]", "f32[3,3,4,5]", "{dilation = [2, 2], padding = [[2, 1], [0, 3]]}"),
        ("f64[1,5,5,3]", "f64[1,1,3,7]", ""),
        ("i8[1,6,5,2]", "i8[2,2,2,3]", "{out_dtype = i32, padding = same}"),
        ("bf16[1,4,4,2]", "bf16[3,3,2,2]", "{padding = same}"),
        ("f32[1,3,3,6]", "f32[3,3,1,6]", "{padding = same, groups = 6}"),
    ],
)
def test_conv2d_shapes_match_the_interpreter(x, w, attrs):
    text = f"func @main(%x: {x}, %w: {w}) {{\n %y = conv2d(%x, %w) {attrs}\n return %y\n}}"
    module = parse_module(text)
    args = random_inputs(module.entry_function, seed=3)
    expected = run_module(module, args)[0]
    got = CpuExecutable(module, threads=2)(*args)[0]
    assert got.dtype == expected.dtype
    if expected.dtype.kind in "iu":
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(
            got.astype(np.float64),
            expected.astype(np.float64),
            rtol=1e-2 if "bf16" in x else 1e-5,
            atol=1e-5,
        )


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("shape", ["[3,1]", "[5,17]", "[2,3,33]", "[7]"])
def test_row_softmax_kernel_matches_the_interpreter(dtype, shape):
    text = f"func @main(%x: {dtype}{shape}) {{\n %y = softmax(%x)\n return %y\n}}"
    module = parse_module(text)
    exe = CpuExecutable(module)
    assert [s.node.op.value for s in exe.steps] == ["softmax"]  # one kernel, not decomposed
    x = random_inputs(module.entry_function, seed=5)[0] * 30
    flat = x.reshape(-1)
    flat[:3] = [np.inf, -np.inf, np.nan][: flat.size]  # special values in the first row
    np.testing.assert_allclose(exe(x)[0], run_module(module, [x])[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n", [1_000_003, 4096, 17])
def test_float_sum_error_bound(n):
    """Reassociated f32 sums: with at least 16 partial sums (one vector) the error is at most
    (n / 16 + 16) * u * sum(|x|), u = 2**-24 — the bound codegen/emit.py documents."""
    text = (
        f"func @main(%x: f32[{n}]) {{\n %s = reduce(%x) {{kind = sum, axes = [0]}}\n return %s\n}}"
    )
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32) + np.float32(0.5)
    got = float(CpuExecutable(parse_module(text), threads=1)(x)[0])
    exact = float(np.sum(x.astype(np.float64)))
    bound = (n / 16 + 16) * 2.0**-24 * float(np.abs(x.astype(np.float64)).sum())
    assert abs(got - exact) <= bound
