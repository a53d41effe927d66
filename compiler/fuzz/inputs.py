"""The bad-input campaign: every way a user can hand tessel something wrong.

A case picks a target and one kind of damage:

- `jit`: a spoiled argument to a compiled NumPy function (compiler/fuzz/inputs_jit.py);
- `aot`: a damaged library for `runtime.load`; `cli-input`, `cli-weights`, `cli-graph`:
  damaged inputs, weights and graph files for `tessel run` / `tessel check`
  (compiler/fuzz/inputs_files.py).

Each must end in a clean tessel error (exit status 1, no traceback, for the command line) or in
the right answer: never a crash, never a wrong answer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from compiler.fuzz import damage, programs
from compiler.fuzz.draw import Draw
from compiler.fuzz.inputs_files import AOT_FILES, GRAPH_DAMAGE
from compiler.fuzz.inputs_jit import VARIANTS
from compiler.fuzz.kind import Case, Fuzzer
from compiler.fuzz.outcome import Outcome

TARGETS = (("jit", 4.0), ("aot", 2.0), ("cli-input", 2.0), ("cli-weights", 1.0), ("cli-graph", 1.0))
AOT_DAMAGE = {
    "json": (*damage.JSON_DAMAGE, "other-library"),
    "so": (*damage.BYTES_DAMAGE, "missing", "directory", "other-library"),
    "weights": (*damage.BYTES_DAMAGE, "missing", "directory", "other-library"),
}
ODD_SEEDS = [1, -1, 2**32, 2**63, 2**64, -(2**70)]


class InputsFuzzer(Fuzzer):
    kind = "inputs"
    timeout = 120.0

    def generate(self, rng: np.random.Generator) -> Case:
        d = Draw(rng)
        target = d.weighted(TARGETS)
        case: Case = {"target": target, "seed": d.integer(0, 2**31 - 1)}
        if target == "jit":
            program = d.pick(sorted(programs.JIT_PROGRAMS))
            arity = len(programs.JIT_PROGRAMS[program][1])
            case.update(
                program=program, arg=d.integer(0, arity - 1), variant=d.pick(sorted(VARIANTS))
            )
        elif target == "aot":
            weights = d.pick(["embedded", "external"])
            files = ["json", "so"] + (["weights"] if weights == "external" else [])
            file = d.pick(files)
            case.update(weights=weights, file=file, how=d.pick(AOT_DAMAGE[file]))
        elif target == "cli-input":
            form = d.pick(["npy", "npz"])
            how = d.pick(damage.NPY_DAMAGE if form == "npy" else damage.NPZ_DAMAGE)
            seed = d.pick(ODD_SEEDS) if d.flag(0.1) else 0
            case.update(form=form, how=how, rand_seed=seed, backend=d.pick(["cpu", "interp"]))
        elif target == "cli-weights":
            file = d.pick(["w.npz", "b.npy"])
            how = d.pick(damage.NPZ_DAMAGE if file == "w.npz" else damage.NPY_DAMAGE)
            case.update(file=file, how=how, verb=d.pick(["run", "check"]))
        else:
            case.update(how=d.pick(GRAPH_DAMAGE), backend=d.pick(["cpu", "interp"]))
        return case

    def save(self, case: Case, outcome: Outcome, folder: Path) -> list[str]:
        from compiler.fuzz import inputs_files

        folder.mkdir(parents=True, exist_ok=True)
        target = case["target"]
        if target == "jit":
            (folder / "repro.py").write_text(_jit_repro(case))
            return ["python repro.py"]
        if target == "aot":
            file = AOT_FILES[case["file"]]
            return [
                f"# builds a library ({case['weights']} weights), damages {file}: {case['how']}"
            ]
        make = {
            "cli-input": inputs_files.cli_input_files,
            "cli-weights": inputs_files.cli_weights_files,
            "cli-graph": inputs_files.cli_graph_files,
        }[target]
        argv = make(case, folder)
        return ["tessel " + " ".join(a.replace(str(folder) + "/", "") for a in argv)]


def _jit_repro(case: Case) -> str:
    return f'''"""Reproduce: {case["program"]} with argument {case["arg"]} as {case["variant"]}."""
import numpy as np

from compiler import jit
from compiler.fuzz import programs
from compiler.fuzz.inputs_jit import bad_args

case = {json.dumps(case)}
fn = programs.JIT_PROGRAMS[case["program"]][0]
f = jit(fn)
f(*programs.good_args(case["program"], np.random.default_rng(0)))  # compiled for good arguments
args = bad_args(case)
print("numpy:", fn(*args))
print("tessel:", f(*args))
'''


def execute(case: Case, ctx: Any) -> Outcome:
    from compiler.fuzz import inputs_files, inputs_jit

    if case["target"] == "jit":
        return inputs_jit.execute(case, ctx)
    if case["target"] == "aot":
        return inputs_files.execute_aot(case, ctx)
    return inputs_files.execute_cli(case, ctx)
