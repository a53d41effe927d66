"""Shared checks for pass tests: golden IR before/after and numerical equivalence."""

from __future__ import annotations

import numpy as np

import codegen.tpu.place  # noqa: F401  (registers the TPU target's pass)
import passes  # noqa: F401  (registers every pass)
from ir.graph import Module
from ir.parser import parse_module
from ir.printer import print_module
from ir.verify import verify_module
from passes.base import PassContext
from passes.manager import PassManager
from passes.pipeline import parse_pipeline
from runtime.inputs import random_inputs
from runtime.interp import run_module


def apply(pipeline: str, module: Module | str) -> tuple[Module, PassContext]:
    if isinstance(module, str):
        module = parse_module(module)
    ctx = PassContext()
    out = PassManager(parse_pipeline(pipeline), verify_each=True).run(module, ctx)
    verify_module(out)
    return out, ctx


def canonical(text: str) -> str:
    return print_module(parse_module(text))


def assert_golden(pipeline: str, before: str, after: str) -> Module:
    """`pipeline` turns `before` into exactly `after`, and computes the same numbers."""
    module = parse_module(before)
    out, _ = apply(pipeline, module)
    assert print_module(out) == canonical(after)
    assert_same_numbers(module, out)
    return out


def assert_unchanged(pipeline: str, text: str) -> None:
    module = parse_module(text)
    out, _ = apply(pipeline, module)
    assert out == module
    assert print_module(out) == print_module(module)


def assert_same_numbers(a: Module, b: Module, seeds: int = 3, rtol: float = 1e-5) -> None:
    fn = a.entry_function
    for seed in range(seeds):
        args = random_inputs(fn, seed)
        for x, y in zip(run_module(a, args), run_module(b, args), strict=True):
            assert x.dtype == y.dtype
            assert x.shape == y.shape
            if x.dtype.kind in "fc" or x.dtype.name == "bfloat16":
                wide = np.complex128 if x.dtype.kind == "c" else np.float64
                np.testing.assert_allclose(x.astype(wide), y.astype(wide), rtol=rtol, atol=1e-6)
            else:
                np.testing.assert_array_equal(x, y)
