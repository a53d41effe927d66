"""The fuzzers (compiler/fuzz/, docs/fuzzing.md): a bounded, seeded run of each, which must
find nothing, and checks that the harness counts crashes and hangs, shrinks graphs and that
`tessel fuzz` works.

The runs are bounded by case count, not time, so they check the same cases on any machine;
`tessel fuzz --kind KIND --cases N --seed 0` repeats one of them (and `--out DIR` keeps the
minimized failures).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from compiler.cli import main
from compiler.fuzz import KINDS, damage, gen, oracle, shrink, values
from compiler.fuzz.campaign import Campaign, Limits
from compiler.fuzz.draw import Draw, case_rng
from compiler.fuzz.kind import Budget
from compiler.fuzz.sandbox import Worker
from compiler.fuzz.shrink import Trial, shrink_module
from ir.dtypes import DType
from ir.graph import Function, Module
from ir.ops import CONTROL, Op
from ir.parser import parse_module
from ir.printer import print_module
from ir.verify import verify_module
from runtime.interp import run_module

SEED = 0
# about a minute in all on a 2-core machine
CASES = {"graphs": 120, "pipelines": 150, "parser": 600, "inputs": 120, "cache": 30, "numpy": 40}


@pytest.mark.parametrize("kind", KINDS)
def test_bounded_campaign_finds_nothing(kind: str, worker: Worker) -> None:
    campaign = Campaign([kind], SEED, Limits(cases=CASES[kind]), None, lambda line: None,
                        worker, minimize=False)  # fmt: skip
    stats = campaign.run()[kind]
    assert stats.cases == CASES[kind]
    assert stats.statuses["ok"] > 0, campaign.report()  # the cases do reach the end
    if campaign.unique_findings():
        pytest.fail(
            f"`tessel fuzz --kind {kind} --cases {CASES[kind]} --seed {SEED} --out DIR` "
            f"reproduces and minimizes these:\n{campaign.report()}",
            pytrace=False,
        )


# --- the harness --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("do", "status", "key"),
    [
        ("segfault", "crash", "SIGSEGV"),
        ("abort", "crash", "SIGABRT"),
        ("raise", "traceback", "ValueError"),
        ("tessel-error", "traceback", "TesselError"),
        ("ok", "ok", None),
    ],
)
def test_worker_turns_misbehaviour_into_outcomes(do, status, key, worker: Worker) -> None:
    outcome = worker.run("selftest", {"do": do}, timeout=60)
    assert outcome.status == status
    assert outcome.stage == do
    assert outcome.data.get("key") == key
    assert worker.run("selftest", {"do": "ok"}, timeout=60).status == "ok"  # a fresh worker


def test_a_hang_is_killed_and_counted(worker: Worker) -> None:
    began = time.monotonic()
    outcome = worker.run("selftest", {"do": "hang"}, timeout=2)
    assert (outcome.status, outcome.stage) == ("hang", "hang")
    assert time.monotonic() - began < 30
    assert worker.run("selftest", {"do": "ok"}, timeout=60).status == "ok"


def test_a_crash_names_the_python_frame(worker: Worker) -> None:
    outcome = worker.run("selftest", {"do": "segfault"}, timeout=60)
    assert "selftest.py" in outcome.data["where"]
    assert "Segmentation fault" in outcome.data["stderr"]


def test_a_compile_over_the_budget_is_a_hang(tmp_path: Path, monkeypatch) -> None:
    """An unbounded compile is a finding even when it ends before the case's timeout."""
    from compiler.fuzz import graphs
    from compiler.fuzz.worker import Context

    case = graphs.GraphsFuzzer(threads=2).generate(case_rng(SEED, "graphs", 0)) | {"aot": False}
    ctx = Context(tmp_path, lambda message: None)
    assert graphs.execute(case, ctx).status == "ok"
    monkeypatch.setattr(graphs, "COMPILE_BUDGET", 0.0)
    outcome = graphs.execute(case, ctx)
    assert (outcome.status, outcome.stage, outcome.data) == (
        "hang",
        "cpu-1",
        {"key": "slow compile"},
    )
    assert "compiling took" in outcome.detail


# --- the generator and the oracle ---------------------------------------------------------


def _modules(n: int, options: gen.GenOptions | None = None) -> list[Module]:
    return [gen.module(Draw(case_rng(3, "test", i)), options or gen.GenOptions()) for i in range(n)]


def _ops(fn: Function) -> set[Op]:
    return {n.op for n in fn.walk()}


def test_generator_makes_every_op_and_dtype_and_valid_graphs() -> None:
    ops: set[Op] = set()
    dtypes = set()
    for m in _modules(300):
        verify_module(m)
        text = print_module(m)
        assert print_module(parse_module(text)) == text
        ops |= _ops(m.entry_function)
        dtypes |= {n.dtype for n in m.entry_function.nodes() if n.op not in CONTROL}
    assert ops == set(Op) - {Op.PARAMETER}
    assert dtypes == set(DType)


def test_generator_names_parameters_beyond_its_list() -> None:
    """Case 4172 of `tessel fuzz --kind pipelines --seed 14014` wanted an eleventh parameter
    (an index operand) when the ten names were taken, and stopped the campaign."""
    from compiler.fuzz.pipelines import PipelinesFuzzer

    case = PipelinesFuzzer().generate(case_rng(14014, "pipelines", 4172))
    fn = parse_module(case["graph"]).entry_function
    verify_module(Module((fn,), fn.name))
    assert len(fn.params) > len(gen.PARAM_NAMES)


def test_generator_is_deterministic_per_case() -> None:
    again = [print_module(m) for m in _modules(5)]
    assert again == [print_module(m) for m in _modules(5)]
    assert len(set(again)) == 5


def test_oracle_tolerates_rounding_but_not_errors() -> None:
    m = parse_module(
        "func @main(%x: f32[64]) -> (f32[], f32[64]) {\n"
        "  %e = exp(%x) : f32[64]\n"
        "  %s = reduce(%e) {kind = sum, axes = [0]} : f32[]\n"
        "  %f = floor(%e) : f32[64]\n"
        "  return %s, %f\n}\n"
    )
    x = np.linspace(-3, 3, 64, dtype=np.float32)
    expected = run_module(m, [x])
    noisy = oracle.noisy_runs(m.entry_function, [x])
    rounded = [expected[0] * np.float32(1 + 2e-7), expected[1]]
    assert oracle.compare(expected, rounded, noisy)[0] is None
    off = [expected[0] * np.float32(1.01), expected[1]]
    mismatch, _ = oracle.compare(expected, off, noisy)
    assert mismatch is not None
    assert mismatch.output == 0
    wrong_floor = [expected[0], expected[1] + 1]
    assert oracle.compare(expected, wrong_floor, noisy)[0] is not None


def test_oracle_compares_complex_parts_and_leaves_non_finite_formulas_open() -> None:
    """Each part within c64's part tolerance (f32's) of the magnitude; a product with an
    infinite part may differ from NumPy's (docs/passes.md, expand-complex), so it is open."""
    m = parse_module(
        "func @main(%x: c64[3], %y: c64[3]) -> (c64[3], c64[3]) {\n"
        "  %p = mul(%x, %y) : c64[3]\n"
        "  %s = add(%x, %y) : c64[3]\n"
        "  return %p, %s\n}\n"
    )
    x = np.array([1 + 2j, complex(np.inf, 0), 3 - 1j], np.complex64)
    y = np.array([2 + 1j, 1j, 1e-3 + 4j], np.complex64)
    expected = run_module(m, [x, y])
    noisy = oracle.noisy_runs(m.entry_function, [x, y])
    # a part far below the magnitude (the product 5i's real part, 0) may be off by rounding of
    # the magnitude; the product with an infinite part is open
    rounded = [expected[0] + np.complex64(3e-7 - 4e-7j), expected[1]]
    rounded[0][1] = complex(np.nan, np.nan)
    mismatch, skipped = oracle.compare(expected, rounded, noisy)
    assert mismatch is None
    assert skipped == 1
    wrong = [expected[0], expected[1] + np.complex64(1e-3j)]
    mismatch, _ = oracle.compare(expected, wrong, noisy)
    assert mismatch is not None
    assert mismatch.output == 1


def _dot_module(dtype: str) -> Module:
    return parse_module(
        f"func @main(%a: {dtype}[2,2], %b: {dtype}[2,2]) -> {dtype}[2,2] {{\n"
        f"  %d = dot_general(%a, %b) {{lhs_contract = [1], rhs_contract = [0]}} : {dtype}[2,2]\n"
        "  return %d\n}\n"
    )


def test_oracle_leaves_f64_sums_that_may_overflow_open() -> None:
    """docs/cpu.md leaves an f64 sum whose terms overflow open (the interpreter's nan, the
    GEMM's -inf: campaign seed 16, case 1245, in f32 then); elements beside it are checked."""
    m = _dot_module("f64")
    a = np.array([[1e300, 1e300], [1, 2]])
    b = np.array([[1e10, 1], [-1e11, 1]])
    (expected,) = run_module(m, [a, b])
    assert np.isnan(expected[0, 0])
    noisy = oracle.noisy_runs(m.entry_function, [a, b])
    other_order = expected.copy()
    other_order[0, 0] = -np.inf
    assert oracle.compare([expected], [other_order], noisy) == (None, 1)
    wrong = other_order.copy()
    wrong[1, 1] += 1
    assert oracle.compare([expected], [wrong], noisy)[0] is not None


def test_oracle_holds_f32_contractions_to_exact_range() -> None:
    """An f32 contraction has exact range (issue 16, item 4): `1e30 * 1e10 + 1e30 * -1e11` is
    -9e40, so -inf, and nan or +inf is wrong; a result at f32's largest value may round either
    way, so it alone stays open."""
    m = _dot_module("f32")
    big = np.finfo(np.float32).max
    a = np.array([[1e30, 1e30], [big, 0]], np.float32)
    b = np.array([[1e10, 1], [-1e11, 1]], np.float32)
    (expected,) = run_module(m, [a, b])
    assert expected[0, 0] == -np.inf
    assert expected[1, 1] == big
    noisy = oracle.noisy_runs(m.entry_function, [a, b])
    for wrong in (np.nan, np.inf):
        other = expected.copy()
        other[0, 0] = wrong
        assert oracle.compare([expected], [other], noisy)[0] is not None
    rounded_up = expected.copy()
    rounded_up[1, 1] = np.inf
    assert oracle.compare([expected], [rounded_up], noisy)[0] is None


@pytest.mark.parametrize("seed", range(8))
def test_oracle_judges_overflow_on_the_exact_operands(seed: int) -> None:
    """The largest finite f64 times 1.5 overflows; an input infinity meets it (the GEMM's
    fused multiply-add gives -inf, the interpreter nan). Noise must not hide the overflow by
    rounding the largest finite value itself to inf (campaign seed 17, case 665)."""
    m = parse_module(
        "func @main(%a: f64[1,2], %b: f64[2,1]) -> f64[1,1] {\n"
        "  %d = dot_general(%a, %b) {lhs_contract = [1], rhs_contract = [0]} : f64[1,1]\n"
        "  return %d\n}\n"
    )
    big = np.finfo(np.float64).max
    a, b = np.array([[big, -np.inf]]), np.array([[1.5], [1.0]])
    (expected,) = run_module(m, [a, b])
    noisy = oracle.noisy_runs(m.entry_function, [a, b], seed)
    assert oracle.compare([expected], [np.array([[-np.inf]])], noisy)[0] is None


def test_shrinking_keeps_the_failure_and_drops_the_rest() -> None:
    options = gen.GenOptions(max_nodes=12, fusion_depth=1)
    module = next(
        m for m in _modules(200, options) if Op.TANH in _ops(shrink.live(m.entry_function))
    )  # not only in dead code, which the first step drops

    def has_tanh(m: Module) -> bool:
        verify_module(m)  # every candidate is a valid graph
        return Op.TANH in _ops(m.entry_function)

    small = shrink_module(module, Trial(Budget(2000, time.monotonic() + 60), has_tanh))
    assert Op.TANH in _ops(small.entry_function)
    assert len(small.entry_function.body) <= 2, print_module(small)


def test_generated_loops_end_soon_and_shrink() -> None:
    """Loops are counted (docs/fuzzing.md): at most max_trips trips, whatever the inputs. The
    shrinker works on graphs with loops: it shrinks inside their bodies, and bypasses them."""
    looped = [m for m in _modules(200) if Op.WHILE in _ops(shrink.live(m.entry_function))]
    assert len(looped) >= 10
    for m in looped[:10]:
        run_module(m, values.inputs(m.entry_function, 0, specials=0.5))  # ends
    module = max(looped, key=lambda m: shrink.size(m.entry_function))

    def loop_with(op: Op) -> Callable[[Module], bool]:
        def test(m: Module) -> bool:
            verify_module(m)  # every candidate is a valid graph
            loops = [n for n in m.entry_function.body if n.op is Op.WHILE]
            return any(op in {b.op for b in n.attrs["body"].body} for n in loops)

        return test

    def budget() -> Budget:
        return Budget(2000, time.monotonic() + 60)

    small = shrink_module(module, Trial(budget(), loop_with(Op.ADD)))  # the counter's add
    (loop,) = [n for n in small.entry_function.body if n.op is Op.WHILE]
    assert len(loop.attrs["body"].body) <= 2, print_module(small)  # the add and its 1
    gone = shrink_module(module, Trial(budget(), lambda m: verify_module(m) is None))
    assert Op.WHILE not in _ops(gone.entry_function), print_module(gone)


# --- the command --------------------------------------------------------------------------


def test_tessel_fuzz_reports_counts_per_kind(capsys, tmp_path: Path) -> None:
    status = main(["fuzz", "--kind", "parser", "--cases", "20", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "parser" in out
    assert " 20 " in out.splitlines()[1]
    assert "0 distinct failure(s)" in out
    assert (tmp_path / "summary.txt").exists()


def test_tessel_fuzz_replays_a_saved_case(capsys, tmp_path: Path) -> None:
    record = {"kind": "selftest", "case": {"do": "segfault"}}
    (tmp_path / "case.json").write_text(json.dumps(record))
    assert main(["fuzz", "--replay", str(tmp_path)]) == 2
    assert "crash at segfault" in capsys.readouterr().out


def test_tessel_fuzz_refuses_an_unknown_kind(capsys) -> None:
    assert main(["fuzz", "--kind", "graphs,nope", "--cases", "1"]) == 1
    assert "unknown fuzzer nope" in capsys.readouterr().err


@pytest.mark.parametrize("document", [{"sha256": "ab", "cpu": "x"}, "text", 7, [1, [2]], {}])
def test_every_json_mutation_is_json(document):
    """Found by a long campaign: removing the whole document left a Python sentinel, which the
    harness then failed to write (a traceback counted against tessel)."""
    for seed in range(64):
        changed, what = damage.mutate_json(
            json.loads(json.dumps(document)), np.random.default_rng(seed)
        )
        assert json.loads(json.dumps(changed)) == changed, what
