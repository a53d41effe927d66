"""Every op x dtype compiled ahead of time, linked into a shared library and loaded back.

The JIT tests cover each op and dtype at every capability level; this covers what only an AOT
library meets: linking with the system linker (a math function the code calls must resolve,
as `powf` once did not) and loading through `runtime.load`. All cases go into one function so
that the whole table costs one compile and one link: each case keeps its own parameters and
results, and a mismatch names its op and dtype.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from graphgen import OP_DTYPES, functions
from hypothesis import HealthCheck, given, settings
from test_cpu_differential import ACCUMULATING, assert_matches

import runtime
from codegen.aot import compile_library, link_shared
from codegen.executable import native_ready
from codegen.jit import host_target
from ir.graph import Function, Module, Node
from runtime.inputs import random_inputs
from runtime.interp import run_function

EXAMPLES = 1  # graph per op x dtype: linking and loading, not breadth, is what this adds


def _cases() -> list[tuple[str, Function]]:
    cases: list[tuple[str, Function]] = []
    for op, dtype in OP_DTYPES:
        label = f"{op.value}-{dtype.value}"

        @settings(
            max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(functions(op=op, dtype=dtype))
        def collect(fn: Function) -> None:  # called at once: `label` is this op's
            cases.append((label, fn))  # noqa: B023

        collect()
    return cases


def _combined(cases: list[tuple[str, Function]]) -> tuple[Function, list[tuple[str, bool]]]:
    """One function holding every case: parameters renamed c<i>_<j>, results in case order.
    Returns it and, per result, (its case's label, whether the case accumulates)."""
    params: list[Node] = []
    body: list[Node] = []
    results: list[Node] = []
    labels: list[tuple[str, bool]] = []
    for i, (label, fn) in enumerate(cases):
        mapping: dict[Node, Node] = {}
        for j, p in enumerate(fn.params):
            mapping[p] = p.replace(name=f"c{i}_{j}")
            params.append(mapping[p])
        for node in fn.body:
            mapping[node] = node.replace(srcs=tuple(mapping[s] for s in node.srcs))
            body.append(mapping[node])
        accumulating = any(n.op in ACCUMULATING for n in fn.body)
        for r in fn.results:
            results.append(mapping[r])
            labels.append((label, accumulating))
    return Function("main", tuple(params), tuple(body), tuple(results)), labels


def test_every_op_and_dtype_links_loads_and_matches(tmp_path: Path) -> None:
    cases = _cases()
    assert len(cases) >= len(OP_DTYPES)
    fn, labels = _combined(cases)
    # as the JIT tests lower it: no folding, so ops on constants are compiled too
    ready = native_ready(Module((fn,), "main")).function("main")
    library = compile_library(ready, "ops", host_target())
    link_shared(library, tmp_path)
    (tmp_path / "ops.json").write_text(json.dumps(library.metadata))
    loaded = runtime.load(tmp_path / "ops.json")
    args = random_inputs(fn, seed=0)
    expected = run_function(fn, args)
    got = loaded.run(args)
    assert len(got) == len(expected) == len(labels)
    wrong = []
    for (label, accumulating), e, g in zip(labels, expected, got, strict=True):
        try:
            assert_matches(e, g, accumulating)
        except AssertionError as error:
            wrong.append(f"{label}: {str(error).strip().splitlines()[-1]}")
    assert wrong == []


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
