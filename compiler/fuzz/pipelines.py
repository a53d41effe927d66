"""The pass-pipeline fuzzer: random pipelines of registered passes on random graphs.

A case is a graph (compiler/fuzz/gen.py) and a pipeline of 1 to 8 passes drawn from
`passes.REGISTRY` with random options (each checked by `parse_pipeline`, as `tessel opt -p`
would). The worker runs the passes one by one with the verifier after each (`--verify-each`),
prints the final IR and reads it back (the dumps are re-runnable graph files), runs it on the
interpreter and compares with the interpreter on the unoptimized graph. On a mismatch it runs
`compiler.bisect.bisect` (what `tessel bisect` does) to name the first pass that changes the
outputs.

A pass that refuses a graph with a clean `TesselError` is `rejected`, not a failure; passes that
change numerics by design (LOSSY) are checked for everything but the numbers.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import numpy as np

from compiler.fuzz import gen
from compiler.fuzz.draw import Draw
from compiler.fuzz.graphs import minimize_graph, parsed_case, reference, save_graph_case
from compiler.fuzz.kind import Budget, Case, Fuzzer, Rerun, same_failure
from compiler.fuzz.outcome import Outcome
from compiler.fuzz.shrink import Trial, shrink_list
from ir.diagnostics import TesselError, VerifyError
from ir.parser import parse_module
from ir.printer import print_module
from ir.verify import verify_module

# Passes whose job is to change the numbers (bf16 operands, integer rescaling); with
# canonicalize{fast-math=true}, their pipelines are not compared numerically.
LOSSY = frozenset({"bf16-mixed", "fold-qdq", "fold-requantize"})


def registry() -> dict[str, Any]:
    """Every registered pass, the target-specific ones (tpu-place) included."""
    import codegen.tpu.place  # noqa: F401  (registers tpu-place)
    from passes import REGISTRY

    return dict(REGISTRY)


def _string_choices(pass_name: str, field: str) -> list[str]:
    """Valid values of the string options (they are checked against these lists)."""
    if (pass_name, field) == ("fuse", "int_epilogue"):
        from passes.fuse import INT_EPILOGUE

        return list(INT_EPILOGUE)
    if (pass_name, field) == ("tpu-place", "multiplier"):
        from codegen.tpu.regions import INPUT

        return list(INPUT)
    return []


def _option_value(d: Draw, pass_name: str, f: dataclasses.Field[Any], kind: type) -> Any:
    default = f.default
    if kind is bool:
        return d.flag()
    if kind is int:
        top = max(2 * int(default), 8) if isinstance(default, int) else 8
        return d.pick([0, 1, 2, 3, d.integer(0, top), top])
    if kind is str:
        return d.pick(_string_choices(pass_name, f.name) or [default])
    return default


def random_pipeline(d: Draw, length: int | None = None) -> str:
    """A pipeline text that parse_pipeline accepts: random passes, some with random options."""
    from passes import parse_pipeline

    passes = registry()
    names = sorted(passes)
    items = []
    for _ in range(length or d.integer(1, 8)):
        name = d.pick(names)
        cls = passes[name]
        hints = typing.get_type_hints(cls.Options)
        options = []
        for f in cls.option_fields():
            if d.flag(0.4):
                value = _option_value(d, name, f, hints[f.name])
                text = str(value).lower() if isinstance(value, bool) else str(value)
                options.append(f"{f.name.replace('_', '-')}={text}")
        spec = name + ("{" + ",".join(options) + "}" if options else "")
        try:  # an option value the Options class refuses (max-ops=1): drop the options
            parse_pipeline(spec)
        except TesselError:
            spec = name
        items.append(spec)
    return ",".join(items)


def split_pipeline(text: str) -> list[str]:
    from passes import parse_pipeline

    registry()
    return [p.spec() for p in parse_pipeline(text)]


class PipelinesFuzzer(Fuzzer):
    kind = "pipelines"
    timeout = 120.0

    def __init__(self, options: gen.GenOptions | None = None) -> None:
        self.options = options or gen.GenOptions()

    def generate(self, rng: np.random.Generator) -> Case:
        d = Draw(rng)
        module = gen.module(d, self.options)
        return {
            "graph": print_module(module),
            "pipeline": random_pipeline(d),
            "seed": d.integer(0, 2**31 - 1),
            "specials": 0.1 if d.flag(1 / 3) else 0.0,
            "collide": d.flag(),
        }

    def minimize(self, case: Case, outcome: Outcome, rerun: Rerun, budget: Budget) -> Case:
        items = split_pipeline(case["pipeline"])
        best = dict(case)

        def test(trial: list[str]) -> bool:
            return bool(trial) and same_failure(
                outcome, rerun({**best, "pipeline": ",".join(trial)})
            )

        best["pipeline"] = ",".join(shrink_list(items, Trial(budget, test)))
        return minimize_graph(best, outcome, rerun, budget)

    def save(self, case: Case, outcome: Outcome, folder: Path) -> list[str]:
        inputs_file = save_graph_case(case, folder)
        (folder / "pipeline.txt").write_text(case["pipeline"] + "\n")
        pipeline = case["pipeline"]
        note = ["# the worker gave the nodes colliding name hints: --replay does too"]
        return (note if case.get("collide") else []) + [
            f"tessel opt case.graph -p '{pipeline}' --verify-each",
            f"tessel bisect case.graph -p '{pipeline}' --input {inputs_file}",
        ]


# --- the worker side ----------------------------------------------------------------------


def _tolerance(expected: list[np.ndarray]) -> tuple[float, float]:
    """Tolerances for `tessel bisect`: fifty times the coarsest float output type's."""
    from compiler.fuzz.oracle import RTOL
    from ir.dtypes import DType

    rtol, scale = 1e-9, 0.0
    for e in expected:
        if e.dtype.kind in "fc" or e.dtype.name == "bfloat16":
            rtol = max(rtol, 50 * RTOL[DType.from_numpy(e.dtype).real_part])
            finite = np.abs(e[np.isfinite(e)]).astype(np.float64)
            scale = max(scale, float(finite.max(initial=0.0)))
    return rtol, rtol * scale


def _named_pass(module: Any, passes: list[Any], args: list[np.ndarray], expected: Any) -> str:
    from compiler.bisect import bisect

    rtol, atol = _tolerance(expected)
    _, bad = bisect(module, passes, args, rtol, atol)
    return bad.spec if bad is not None else "(no single pass beyond tessel bisect's tolerance)"


def execute(case: Case, ctx: Any) -> Outcome:
    from compiler.fuzz import oracle
    from passes import PassContext, parse_pipeline
    from runtime.interp import run_module

    registry()
    module = parsed_case(case, ctx)
    if isinstance(module, Outcome):
        return module
    ctx.progress("interp")
    fn, args, expected, noisy = reference(module, case)
    passes = parse_pipeline(case["pipeline"])
    pctx = PassContext()
    current = module
    for index, p in enumerate(passes, start=1):
        ctx.progress(p.name)
        data = {"pass": p.spec(), "index": index}
        try:
            current = p.run(current, pctx)
        except TesselError as e:
            return Outcome("rejected", p.name, e.message, data)
        try:
            verify_module(current)
        except VerifyError as e:
            return Outcome(
                "wrong", p.name, f"produced invalid IR: {e.message}", {**data, "key": "invalid IR"}
            )
    ctx.progress("dump")
    text = print_module(current)
    try:
        again = parse_module(text, "dump.graph")
        verify_module(again)
    except TesselError as e:
        return Outcome(
            "wrong", "dump", f"the printed IR does not read back: {e}", {"key": "dump unreadable"}
        )
    if again != current:
        return Outcome(
            "wrong", "dump", "the printed IR reads back as another graph", {"key": "dump differs"}
        )
    ctx.progress("interp-optimized")
    got = run_module(current, args)
    ctx.progress("compare")
    lossy = [p.spec() for p in passes if p.name in LOSSY or "fast-math=true" in p.spec()]
    if lossy:
        return Outcome("ok", "compare", f"not compared: {', '.join(lossy)} change numerics")
    mismatch, unstable = oracle.compare(expected, got, noisy)
    if mismatch is None:
        return Outcome("ok", "compare", unstable=unstable)
    ctx.progress("bisect")
    named = _named_pass(module, parse_pipeline(case["pipeline"]), args, expected)
    r = fn.results[mismatch.output]
    detail = f"{mismatch.message}; tessel bisect names '{named}'"
    data = {"pass": named, "output": mismatch.output, "culprit": f"{named}:{r.op.value}"}
    return Outcome("wrong", "compare", detail, data, unstable)
