"""f32 contractions have exact range on every kernel, as in the reference (issue 16, item 4).

A dot_general or conv2d summing in f32 gives a non-finite element only where the sum without
intermediate overflow is non-finite (runtime/reference_nn.py, docs/cpu.md). Finite operands
whose products overflow f32 are the hard case: the kernels' FMA chains, blocks and lanes used to
give +inf, -inf or NaN depending on the order (1 x 2 x 1: `3e38 * 2 + 3e38 * -2.5` is
-1.5e38). Every kernel (GEMM specialized and from the library, both matrix-vector shapes, the
convolution kernels, the generic loops, a fused epilogue) at every level this host runs, with
one and two threads, matches the interpreter: the same elements NaN, +inf, -inf or finite, and
the finite ones within the f32 error bound.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import runtime
from codegen import emit, gemm_lib, kernel
from codegen.aot import compile_library, link_shared
from codegen.cpu_caps import CpuCaps, host_levels, level_caps
from codegen.emit import F32_MAX, contraction_depth, safe_magnitude
from codegen.executable import CpuExecutable, native_ready
from codegen.jit import host_target
from ir.graph import Module, Node
from ir.ops import Op
from ir.parser import parse_module
from passes import PassManager, parse_pipeline
from runtime.inputs import random_inputs
from runtime.interp import run_module


def _dot(lhs: str, rhs: str, out: str, dims: str = "lhs_contract = [1], rhs_contract = [0]"
         ) -> str:  # fmt: skip
    return (
        f"func @main(%a: {lhs}, %b: {rhs}) -> {out} {{\n"
        f"  %d = dot_general(%a, %b) {{{dims}}} : {out}\n  return %d\n}}"
    )


CASES = {
    "gemv-rows": _dot("f32[7,9]", "f32[9]", "f32[7]"),
    "gemv-columns": _dot("f32[9]", "f32[9,7]", "f32[7]", "lhs_contract = [0], rhs_contract = [0]"),
    "vector-dot": _dot("f32[5]", "f32[5]", "f32[]", "lhs_contract = [0], rhs_contract = [0]"),
    "k1": _dot("f32[3,1]", "f32[1,4]", "f32[3,4]"),
    "gemm-small": _dot("f32[13,40]", "f32[40,17]", "f32[13,17]"),
    "gemm-k-blocks": _dot("f32[64,600]", "f32[600,33]", "f32[64,33]"),
    "gemm-threads": _dot("f32[400,512]", "f32[512,256]", "f32[400,256]"),
    "gemm-two-k-axes": _dot(
        "f32[2,3,4,5]", "f32[4,5,6]", "f32[2,3,6]", "lhs_contract = [2, 3], rhs_contract = [0, 1]"
    ),
    "gemm-split-k": _dot(  # K in two axes with M between them: the specialized GEMM
        "f32[4,7,5]", "f32[4,5,19]", "f32[7,19]", "lhs_contract = [0, 2], rhs_contract = [0, 1]"
    ),
    "gemm-split-k-blocks": _dot(
        "f32[20,8,30]", "f32[20,30,9]", "f32[8,9]", "lhs_contract = [0, 2], rhs_contract = [0, 1]"
    ),
    "gemm-split-k-epilogue": (
        "func @main(%a: f32[4,7,5], %b: f32[4,5,19]) -> f32[7,19] {\n"
        "  %d = dot_general(%a, %b) {lhs_contract = [0, 2], rhs_contract = [0, 1]} : f32[7,19]\n"
        "  %t = tanh(%d) : f32[7,19]\n  return %t\n}"
    ),
    "batched": _dot(
        "f32[3,8,10]",
        "f32[3,10,6]",
        "f32[3,8,6]",
        "lhs_batch = [0], rhs_batch = [0], lhs_contract = [2], rhs_contract = [1]",
    ),
    "bf16": _dot("bf16[6,20]", "bf16[20,5]", "bf16[6,5]"),
    "epilogue": (
        "func @main(%a: f32[30,40], %b: f32[40,20], %c: f32[20]) -> f32[30,20] {\n"
        "  %d = dot_general(%a, %b) {lhs_contract = [1], rhs_contract = [0]} : f32[30,20]\n"
        "  %e = broadcast_in_dim(%c) {dims = [1], shape = [30, 20]} : f32[30,20]\n"
        "  %s = add(%d, %e) : f32[30,20]\n  %t = tanh(%s) : f32[30,20]\n  return %t\n}"
    ),
    "gemv-epilogue": (
        "func @main(%a: f32[30,40], %b: f32[40]) -> f32[30] {\n"
        "  %d = dot_general(%a, %b) {lhs_contract = [1], rhs_contract = [0]} : f32[30]\n"
        "  %t = tanh(%d) : f32[30]\n  return %t\n}"
    ),
    "conv": (
        "func @main(%x: f32[2,9,9,6], %w: f32[3,3,6,8]) -> f32[2,9,9,8] {\n"
        "  %c = conv2d(%x, %w) {padding = same} : f32[2,9,9,8]\n  return %c\n}"
    ),
    "conv-epilogue": (
        "func @main(%x: f32[1,6,6,5], %w: f32[3,3,5,4]) -> f32[1,6,6,4] {\n"
        "  %c = conv2d(%x, %w) {padding = same} : f32[1,6,6,4]\n"
        "  %t = tanh(%c) : f32[1,6,6,4]\n  return %t\n}"
    ),
    "conv-groups": (
        "func @main(%x: f32[1,7,7,6], %w: f32[3,3,3,4]) -> f32[1,5,5,4] {\n"
        "  %c = conv2d(%x, %w) {groups = 2} : f32[1,5,5,4]\n  return %c\n}"
    ),
}


# the kernel each case exercises (a host with AMX takes bf16 to its own, guarded kernel)
KERNELS = {
    "gemv-rows": "gemv", "gemv-columns": "gemv", "vector-dot": "gemv", "k1": "gemm-lib",
    "gemm-small": "gemm-lib", "gemm-k-blocks": "gemm-lib", "gemm-threads": "gemm-lib",
    "gemm-two-k-axes": "gemm-lib", "gemm-split-k": "gemm", "gemm-split-k-blocks": "gemm",
    "gemm-split-k-epilogue": "gemm", "batched": "gemm-lib", "bf16": "generic",
    "epilogue": "gemm-lib", "gemv-epilogue": "gemv", "conv": "conv", "conv-epilogue": "generic",
    "conv-groups": "generic",
}  # fmt: skip


def _kernel(node: Node, caps: CpuCaps) -> str:
    special = kernel.special_kernel(node, caps)
    if special is None:
        return "generic"
    if special.name == "gemm" and gemm_lib.covers(node, caps):
        return "gemm-lib"
    return special.name


def _fused(case: str) -> Module:
    return PassManager(parse_pipeline("fuse")).run(parse_module(CASES[case]))


@pytest.mark.parametrize("case", CASES)
def test_each_case_takes_its_kernel(case: str) -> None:
    (node,) = [n for n in _fused(case).entry_function.body if n.op is not Op.BROADCAST_IN_DIM]
    assert _kernel(node, level_caps("x86-64-v3")) == KERNELS[case]


def _kind(values: np.ndarray) -> np.ndarray:
    """0 finite, 1 nan, 2 +inf, 3 -inf."""
    values = values.astype(np.float64)
    return np.select([np.isnan(values), np.isposinf(values), np.isneginf(values)], [1, 2, 3], 0)


def _overflowing(shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """Finite values whose products reach past f32's maximum (3.4e38) and often cancel: each
    element a signed 1e17-1e20, so some sums are finite only when no partial sum overflowed."""
    scale = 10.0 ** rng.uniform(17, 20, shape)
    return (rng.choice([-1.0, 1.0], shape) * scale).astype(dtype)


def _magnitude(case: str, args: list[np.ndarray]) -> np.ndarray:
    """K sum|a||b| per output element (for the epilogue cases, of what the epilogue makes of
    it), from the same graph in f64 on the operands' magnitudes."""
    twin = parse_module(re.sub(r"\b(f32|bf16)\[", "f64[", CASES[case]))
    (contraction,) = [n for n in twin.entry_function.body if n.op in (Op.DOT_GENERAL, Op.CONV2D)]
    (total,) = run_module(twin, [np.abs(a.astype(np.float64)) for a in args])
    return contraction_depth(contraction) * np.asarray(total)


def _check(case: str, args: list[np.ndarray], want: np.ndarray, got: np.ndarray) -> None:
    """The same elements NaN, +inf, -inf or finite; finite ones within twice the f32 error
    bound (both sides may have summed in f32) and the result type's rounding."""
    assert np.array_equal(_kind(got), _kind(want)), case
    finite = _kind(want) == 0
    rounding = 2.0**-8 if want.dtype != np.float32 else 2.0**-23
    got, want = got.astype(np.float64)[finite], want.astype(np.float64)[finite]
    bound = 4 * 2.0**-24 * _magnitude(case, args)[finite] + rounding * np.abs(want)
    assert np.all(np.abs(got - want) <= bound), case


def _inputs(case: str, params: tuple[Node, ...], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    args = [_overflowing(p.shape, p.dtype.np, rng) for p in params]
    if case == "epilogue":
        args[2] = rng.standard_normal(args[2].shape).astype(np.float32)  # a moderate bias
    return args


@pytest.mark.parametrize("cpu", host_levels())
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", CASES)
def test_finite_operands_whose_products_overflow(case: str, threads: int, cpu: str) -> None:
    module = _fused(case)
    args = _inputs(case, module.entry_function.params, sum(map(ord, case)))
    exe = CpuExecutable(module, threads=threads, target=host_target(cpu))
    with np.errstate(over="ignore", invalid="ignore"):
        (want,) = run_module(module, args)
    (got,) = exe(*args)
    _check(case, args, want, got)


def test_an_aot_library_has_exact_range_too(tmp_path: Path) -> None:
    """The guard and its two kernels link into a shared library like any kernel."""
    module = _fused("gemm-k-blocks")
    library = compile_library(native_ready(module).function("main"), "exact", host_target())
    link_shared(library, tmp_path)
    (tmp_path / "exact.json").write_text(json.dumps(library.metadata))
    args = _inputs("gemm-k-blocks", module.entry_function.params, 5)
    with np.errstate(over="ignore", invalid="ignore"):
        (want,) = run_module(module, args)
    (got,) = runtime.load(tmp_path / "exact.json").run(args)
    _check("gemm-k-blocks", args, want, got)
    assert {0, 2, 3} <= set(np.unique(_kind(want)).tolist())  # finite, +inf and -inf occur


@pytest.mark.parametrize("case", ["gemv-rows", "gemm-small", "gemm-split-k", "epilogue", "conv"])
def test_the_guard_for_kernels_that_do_not_check_their_sums(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A special kernel without its own check (the AMX bf16 GEMM) runs behind
    codegen/range_guard.py: here every special kernel does, with its own check disabled, on
    overflowing data (the guard picks the f64 loop) and on ordinary data (the kernel)."""
    unchecked = tuple(replace(k, exact_range=False) for k in kernel.SPECIAL_KERNELS)
    monkeypatch.setattr(kernel, "SPECIAL_KERNELS", unchecked)
    monkeypatch.setattr(emit, "exact_range", lambda b, value, wide: value)
    module = _fused(case)
    exe = CpuExecutable(module, threads=2, target=host_target())
    for args in (
        _inputs(case, module.entry_function.params, 11),
        random_inputs(module.entry_function, seed=11),
    ):
        with np.errstate(over="ignore", invalid="ignore"):
            (want,) = run_module(module, args)
        (got,) = exe(*args)
        _check(case, args, want, got)


def test_some_results_are_finite_only_without_intermediate_overflow() -> None:
    """The data exercises the hard case: results that are finite while single products are
    not (else the test above would pass on any order of summation)."""
    rng = np.random.default_rng(0)
    a = _overflowing((64, 9), np.dtype(np.float32), rng).astype(np.float64)
    b = _overflowing((9, 64), np.dtype(np.float32), rng).astype(np.float64)
    exact = a @ b
    products_overflow = (np.abs(a)[:, :, None] * np.abs(b)[None]).max(axis=1) > 3.4e38
    assert np.any((np.abs(exact) < 3.4e38) & products_overflow)


def test_the_guard_bound_holds_for_any_order() -> None:
    """K terms of at most |a||b| = limit(K) each: the sum stays under f32's maximum even after
    every rounding error, while twice as much would not fit."""
    for k in (1, 2, 9, 1000, 1 << 20):
        bound = safe_magnitude(k) * k
        assert bound * (1 + 2.0**-24) ** (k + 1) < F32_MAX
        assert bound > F32_MAX / 4
