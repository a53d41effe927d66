"""buffer-assign on the samples: the arena reaches its lower bound (peak live bytes)."""

from __future__ import annotations

import pytest
from passcheck import apply

from compiler.targets import default_pipeline
from ir.parser import parse_file


@pytest.mark.parametrize("sample", ["mlp", "cnn", "attention"])
@pytest.mark.parametrize(
    "pipeline", ["canonicalize,fold,cse,dce,buffer-assign", default_pipeline("cpu")]
)
def test_arena_equals_peak_live_bytes(samples_dir, sample, pipeline):
    module = parse_file(samples_dir / f"{sample}.graph")
    _, ctx = apply(pipeline, module)
    assignment = ctx.analyses["buffer-assign"]["main"]
    assignment.check()
    assert assignment.arena_bytes == assignment.peak_live_bytes
    assert assignment.total_bytes > assignment.arena_bytes
