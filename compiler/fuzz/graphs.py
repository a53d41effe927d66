"""The differential graph fuzzer: one random graph, every way tessel can run it, one answer.

Stages of a case (the worker reports each as it starts):

1. `parse`, `roundtrip`: the printed graph parses, verifies and prints back to the same text;
2. `interp`: the reference interpreter on the graph as generated: the expected answer, plus
   its noisy runs (compiler/fuzz/oracle.py);
3. `optimize`: the cpu pipeline with the verifier after every pass; `interp-optimized`: the
   optimized graph on the interpreter;
4. `cpu-1`, `cpu-N`: the CPU backend with one thread and with N (the same object code, linked
   again as the @jit disk cache does);
5. `aot` (a third of the cases): `tessel compile` into a shared library, loaded with
   `runtime.load`.

Every stage must give the expected answer; a clean error on the valid graph counts as a wrong
answer (the graph deserved one), anything else raised is a traceback.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compiler.fuzz import gen, oracle, values
from compiler.fuzz.draw import Draw
from compiler.fuzz.kind import Budget, Case, Fuzzer, Rerun, same_failure
from compiler.fuzz.outcome import Outcome
from compiler.fuzz.shrink import Trial, shrink_module
from ir.diagnostics import TesselError
from ir.graph import Function, Module, Node
from ir.parser import parse_module
from ir.printer import print_module
from ir.verify import verify_module

# A generated graph compiles in about a second; one that takes this long has met something
# that grows out of bounds (LLVM's loop vectorizer once took 10 s over a chain of 16 selects, and
# minutes over 32)
COMPILE_BUDGET = 30.0


class GraphsFuzzer(Fuzzer):
    kind = "graphs"
    timeout = 180.0

    def __init__(self, options: gen.GenOptions | None = None, threads: int = 4) -> None:
        self.options = options or gen.GenOptions()
        self.threads = threads

    def generate(self, rng: np.random.Generator) -> Case:
        d = Draw(rng)
        module = gen.module(d, self.options)
        return {
            "graph": print_module(module),
            "seed": d.integer(0, 2**31 - 1),
            # a third of the cases feed nan, inf, -0.0 and range ends to the parameters too
            "specials": 0.1 if d.flag(1 / 3) else 0.0,
            "threads": self.threads,
            "collide": d.flag(),
            # the library costs twice the JIT's compile: a third of the cases build one
            "aot": d.flag(1 / 3),
        }

    def minimize(self, case: Case, outcome: Outcome, rerun: Rerun, budget: Budget) -> Case:
        return minimize_graph(case, outcome, rerun, budget, until=outcome.stage)

    def save(self, case: Case, outcome: Outcome, folder: Path) -> list[str]:
        inputs_file = save_graph_case(case, folder)
        threads = case.get("threads", 4)
        backend = {
            "cpu-1": "--backend cpu --threads 1",
            "cpu-N": f"--backend cpu --threads {threads}",
        }.get(outcome.stage, "--backend cpu")
        note = ["# the worker gave the nodes colliding name hints: --replay does too"]
        return (note if case.get("collide") else []) + [
            f"tessel run case.graph --input {inputs_file} --backend interp   # expected",
            f"tessel run case.graph --input {inputs_file} {backend}",
            f"tessel compile case.graph -o lib/ && tessel run lib/libcase.so --input {inputs_file}",
        ]


def save_graph_case(case: Case, folder: Path) -> str:
    """case.graph and its inputs (inputs.npz, keyed by parameter name) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "case.graph").write_text(case["graph"])
    fn = parse_module(case["graph"], "case.graph").entry_function
    args = values.inputs(fn, case["seed"], case.get("specials", 0.0))
    arrays: dict[str, Any] = dict(zip(fn.param_names, args, strict=True))
    np.savez(folder / "inputs.npz", **arrays)
    return "inputs.npz"


def minimize_graph(
    case: Case, outcome: Outcome, rerun: Rerun, budget: Budget, **extra: Any
) -> Case:
    """Shrink case["graph"] while it fails like `outcome` (`extra` goes into each trial case,
    such as the stage to stop after)."""
    best = dict(case)

    def test(module: Module) -> bool:
        trial = {**best, **extra, "graph": print_module(module)}
        if same_failure(outcome, rerun(trial)):
            best["graph"] = trial["graph"]
            return True
        return False

    shrink_module(
        parse_module(case["graph"], "case.graph"), Trial(budget, test), outcome.data.get("output")
    )
    return best


# --- the worker side ----------------------------------------------------------------------


def reference(
    module: Module, case: Case
) -> tuple[Function, list[np.ndarray], list[np.ndarray], list[list[np.ndarray]]]:
    """The entry function, its inputs, the expected outputs and the noisy reference runs."""
    from runtime.interp import run_module

    fn = module.entry_function
    args = values.inputs(fn, case["seed"], case.get("specials", 0.0))
    expected = run_module(module, args)
    return fn, args, expected, oracle.noisy_runs(fn, args, case["seed"])


def check(
    stage: str,
    fn: Function,
    run: Callable[[], Sequence[np.ndarray]],
    expected: list[np.ndarray],
    noisy: list[list[np.ndarray]],
) -> Outcome | None:
    """Run one stage and compare: None if it agrees with the reference."""
    try:
        got = list(run())
    except TesselError as e:
        return Outcome("wrong", stage, f"refused a valid graph: {e.message}", {"key": "refused"})
    mismatch, unstable = oracle.compare(expected, got, noisy)
    if mismatch is None:
        return None
    r = fn.results[mismatch.output]
    culprit = f"{r.op.value}:{r.dtype}"
    return Outcome(
        "wrong", stage, mismatch.message, {"output": mismatch.output, "culprit": culprit}, unstable
    )


def parsed_case(case: Case, ctx: Any) -> Module | Outcome:
    """The case's graph, parsed, verified and checked to print back to its text; with its
    name hints made to collide if the case says so. An Outcome if the round trip fails."""
    ctx.progress("parse")
    module = parse_module(case["graph"], "case.graph")
    verify_module(module)
    ctx.progress("roundtrip")
    if print_module(module) != case["graph"]:
        return Outcome("wrong", "roundtrip", "printing the parsed graph changes its text")
    if case.get("collide"):
        module = module.replace_function(colliding_names(module.entry_function, case["seed"]))
        verify_module(module)
    return module


def colliding_names(fn: Function, seed: int) -> Function:
    """`fn` with its body's name hints drawn from a small pool, as in traced code (a Python
    variable assigned in a loop names many values): passes must not rely on them being unique.
    Parameters keep their names, which are the arguments' and must stay unique."""
    rng = np.random.default_rng([seed, 1])
    pool = gen.NAME_HINTS

    def rename(f: Function) -> Function:
        mapping: dict[Node, Node] = {p: p for p in f.params}
        body = []
        for n in f.body:
            attrs = n.attrs
            nested = {k: rename(v) for k, v in attrs.items() if isinstance(v, Function)}
            if nested:  # a fusion's or a loop's bodies
                attrs = attrs.replace(**nested)
            hint = pool[int(rng.integers(len(pool)))]
            new = n.replace(srcs=tuple(mapping[s] for s in n.srcs), attrs=attrs, name=hint)
            mapping[n] = new
            body.append(new)
        return f.replace(body=tuple(body), results=tuple(mapping[r] for r in f.results))

    return rename(fn)


def execute(case: Case, ctx: Any) -> Outcome:
    from compiler.driver import PipelineOptions, optimize
    from compiler.targets import TargetOptions, cpu_from_payload, prepare
    from runtime.interp import run_module

    until = case.get("until")
    module = parsed_case(case, ctx)
    if isinstance(module, Outcome):
        return module
    ctx.progress("interp")
    fn, args, expected, noisy = reference(module, case)
    if until in ("parse", "roundtrip", "interp"):
        return Outcome("ok", ctx.stage)
    ctx.progress("optimize")
    optimized, pctx = optimize(module, PipelineOptions(target="cpu", verify_each=True))
    if until == "optimize":
        return Outcome("ok", "optimize")
    stages: list[tuple[str, Callable[[], Sequence[np.ndarray]]]] = [
        ("interp-optimized", lambda: run_module(optimized, args)),
    ]
    exe: list[Any] = []
    compile_seconds: list[float] = []

    def cpu_1() -> Sequence[np.ndarray]:
        began = time.monotonic()
        exe.append(prepare("cpu", optimized, None, TargetOptions(threads=1), pctx.analyses))
        compile_seconds.append(time.monotonic() - began)
        outputs: Sequence[np.ndarray] = exe[0].run(args)
        return outputs

    def cpu_n() -> Sequence[np.ndarray]:
        spec, code = exe[0].native.payload()
        return cpu_from_payload(spec, code, TargetOptions(threads=case["threads"])).run(args)

    stages += [("cpu-1", cpu_1), ("cpu-N", cpu_n)]
    if case.get("aot", True):
        stages.append(("aot", lambda: _aot(case["graph"], args, ctx)))
    for stage, run in stages:
        ctx.progress(stage)
        bad = check(stage, fn, run, expected, noisy)
        if bad is not None:
            return bad
        if stage == "cpu-1" and compile_seconds[0] > COMPILE_BUDGET:
            took = (
                f"compiling took {compile_seconds[0]:.0f} s, over the {COMPILE_BUDGET:.0f} s budget"
            )
            return Outcome("hang", stage, took, {"key": "slow compile"})
        if stage == until:
            break
    return Outcome("ok", ctx.stage)


def _aot(graph: str, args: list[np.ndarray], ctx: Any) -> Sequence[np.ndarray]:
    """`tessel compile` (in the worker) and `runtime.load` of the library it wrote."""
    import runtime

    folder = Path(tempfile.mkdtemp(prefix="aot-", dir=ctx.scratch))
    try:
        source = folder / "case.graph"
        source.write_text(graph)
        argv = ["compile", str(source), "-o", str(folder / "lib"), "--name", "fuzz"]
        status, log = ctx.cli(argv)
        if status != 0:
            raise TesselError(f"tessel compile exited with {status}: {log.strip()}")
        library = runtime.load(folder / "lib" / "libfuzz.so")
        outputs: Sequence[np.ndarray] = library.run(args)
        return outputs
    finally:
        shutil.rmtree(folder, ignore_errors=True)
