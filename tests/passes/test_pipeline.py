"""Pipeline text, the registry, the pass manager, the verifier between passes."""

from __future__ import annotations

import pytest
from passcheck import apply

import passes  # noqa: F401
from compiler.targets import TARGETS, TargetOptions, default_pipeline
from ir.diagnostics import VerifyError
from ir.graph import Function, Module
from ir.parser import parse_module
from passes.base import REGISTRY, Pass, PassContext, register
from passes.manager import Instrument, PassManager, PassRecord, PassVerifyError
from passes.pipeline import PipelineError, format_pipeline, parse_pipeline

TEXT = """func @main(%x: f32[4]) -> f32[4] {
  %a = neg(%x)
  %b = neg(%a)
  %c = exp(%b)
  return %c
}
"""


def test_every_registered_pass_is_documented():
    assert {"canonicalize", "fold", "cse", "dce", "decompose", "fuse", "buffer-assign"} <= set(
        REGISTRY
    )
    for name, cls in REGISTRY.items():
        assert cls.name == name
        assert cls.summary(), name
        assert cls.summary() == cls.summary().strip(), name


def test_parse_pipeline_with_options_round_trips():
    ps = parse_pipeline(
        "canonicalize,fold{max-elements=10},cse, dce ,fuse{max-ops=16,epilogue=false}"
    )
    assert [p.name for p in ps] == ["canonicalize", "fold", "cse", "dce", "fuse"]
    assert ps[1].options.max_elements == 10
    assert ps[4].options.max_ops == 16
    assert ps[4].options.epilogue is False
    assert (
        format_pipeline(ps)
        == "canonicalize,fold{max-elements=10},cse,dce,fuse{max-ops=16,epilogue=false}"
    )


@pytest.mark.parametrize(
    ("text", "col", "message"),
    [
        ("canonicalise", 1, "unknown pass 'canonicalise' (did you mean 'canonicalize'?)"),
        ("fold,,cse", 6, "expected a pass name"),
        (
            "fuse{max-op=3}",
            6,
            "pass 'fuse' has no option 'max-op' "
            "(options: max-ops, max-tiny-ops, epilogue, int-epilogue, reductions)",
        ),
        ("fuse{max-ops=many}", 14, "option 'max-ops' takes an int, got 'many'"),
        ("fuse{epilogue=maybe}", 15, "option 'epilogue' takes true or false, got 'maybe'"),
        ("cse dce", 5, "expected ',' between passes"),
        ("cse{x}", 5, "expected 'option=value' in the option list"),
        ("fold,", 5, "expected a pass name after ','"),
        (
            "fuse{max-ops=1}",
            6,
            "pass 'fuse': max-ops must be at least 2 (a group has two ops), got 1",
        ),
    ],
)
def test_pipeline_errors_point_at_the_problem(text, col, message):
    with pytest.raises(PipelineError) as info:
        parse_pipeline(text)
    err = info.value
    assert err.message.startswith(message)
    assert err.loc is not None
    assert err.loc.col == col
    lines = err.format().splitlines()
    assert lines[1] == "  " + text
    assert lines[2] == "  " + " " * (col - 1) + "^"


@pytest.mark.parametrize(
    "options", [TargetOptions(), TargetOptions(cpu="generic", tpu="tpu-v2-core")]
)
def test_default_pipelines_parse(options):
    for name, row in TARGETS.items():
        assert parse_pipeline(row.pipeline(options)), name


class _Recorder(Instrument):
    def __init__(self) -> None:
        self.records: list[PassRecord] = []

    def after_pass(self, record: PassRecord, before: Module, ctx: PassContext) -> None:
        self.records.append(record)


def test_manager_reports_changes_and_op_counts():
    rec = _Recorder()
    module = parse_module(TEXT)
    PassManager(parse_pipeline("canonicalize,cse,dce"), [rec], verify_each=True).run(module)
    assert [(r.index, r.name, r.changed) for r in rec.records] == [
        (1, "canonicalize", True),
        (2, "cse", False),
        (3, "dce", True),
    ]
    assert [(r.ops_before, r.ops_after) for r in rec.records] == [(3, 2), (2, 2), (2, 1)]
    assert all(r.seconds >= 0 for r in rec.records)


class _Broken(Pass):
    """Deliberately drops the body but keeps the results: invalid IR."""

    name = "test-broken"

    def run_function(self, fn: Function, ctx: PassContext) -> Function:
        return fn.replace(body=fn.body[:1])


def test_verifier_names_the_pass_that_broke_the_ir():
    module = parse_module(TEXT)
    with pytest.raises(PassVerifyError) as info:
        PassManager([_Broken()], verify_each=True).run(module)
    assert "pass #1 'test-broken' produced invalid IR" in info.value.message
    assert "is not defined in the function" in info.value.message
    with pytest.raises(VerifyError):  # without verify_each the broken IR gets through
        from ir.verify import verify_module

        verify_module(PassManager([_Broken()]).run(module))


def test_register_rejects_undocumented_and_duplicate_passes():
    class NoDoc(Pass):
        name = "test-nodoc"

    with pytest.raises(TypeError, match="docstring"):
        register(NoDoc)

    class Dup(Pass):
        """Duplicate."""

        name = "cse"

    with pytest.raises(TypeError, match="registered twice"):
        register(Dup)


def test_pipeline_keeps_numbers_on_samples(samples_dir):
    from passcheck import assert_same_numbers

    from ir.parser import parse_file

    for sample in sorted(samples_dir.glob("*.graph")):
        module = parse_file(sample)
        out, _ = apply(default_pipeline("cpu"), module)
        assert_same_numbers(module, out, seeds=1, rtol=1e-4)
