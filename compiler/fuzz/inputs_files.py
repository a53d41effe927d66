"""Damaged files for the command line and for `runtime.load`.

- `aot`: a library from `tessel compile` (weights embedded or external) with its NAME.json,
  libNAME.so or NAME.weights damaged, loaded with `runtime.load` and called;
- `cli-input`: `tessel run --input` with a damaged .npy or .npz, or an odd `--seed`;
- `cli-weights`: a graph file whose weights (.npz member, .npy) are damaged, run and checked;
- `cli-graph`: files that are not graph files (binary, UTF-16, an archive, a folder, huge
  dimensions) given to `tessel run`.

The command line runs in the worker (`compiler.cli.main`, as `python -m compiler` does): its
answer must be exit status 1 with a message and no traceback, or status 0 with the right
outputs. `runtime.load` must raise `TesselError` or give the library's right answer.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from compiler.fuzz import damage, programs
from compiler.fuzz.outcome import Outcome
from ir.diagnostics import TesselError

AOT_FILES = {"json": "fuzz.json", "so": "libfuzz.so", "weights": "fuzz.weights"}
GRAPH_DAMAGE = (
    *("binary", "utf16", "latin1", "npz", "empty", "directory", "huge-param"),
    *("huge-constant", "nul", "deep", "long-line", "so-suffix", "json-suffix"),
)


def cli_verdict(status: int, text: str, stage: str, key: str) -> Outcome | None:
    """None for a clean success; `rejected` for a clean error; else the failure."""
    if "Traceback (most recent call last)" in text:
        return Outcome(
            "traceback", stage, f"printed a traceback: {text.strip()[-300:]}", {"key": key}
        )
    if status == 0:
        return None
    if status in (1, 2) and "error" in text:
        message = next(line for line in text.splitlines() if "error" in line)
        return Outcome("rejected", stage, message.strip()[:300], {"key": key})
    return Outcome(
        "wrong", stage, f"exit status {status} with {text.strip()[:200]!r}", {"key": key}
    )


def _write(path: Path, how: str, make: Any) -> None:
    """Damage `how` to the file at `path`: missing, a directory, or `make()`'s bytes."""
    special = damage.special_file(how)
    damage.replace_file(path, make() if special == "bytes" else special)  # type: ignore[arg-type]


# --- materializing a case's files -----------------------------------------------------------


def cli_input_files(case: dict[str, Any], folder: Path) -> list[str]:
    """Write the graph and the (damaged) inputs; return the `tessel run` arguments."""
    rng = np.random.default_rng(case["seed"])
    graph = folder / "case.graph"
    graph.write_text(programs.CLI_GRAPH)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    n = rng.integers(-100, 100, 4).astype(np.int32)
    how = case["how"]
    if case["form"] == "npy":
        np.save(folder / "n.npy", n)
        _write(folder / "x.npy", how, lambda: damage.npy_bytes(x, how, rng))
        specs = [f"x={folder / 'x.npy'}", f"n={folder / 'n.npy'}"]
    else:
        _write(folder / "inputs.npz", how, lambda: damage.npz_bytes({"x": x, "n": n}, how, rng))
        specs = [str(folder / "inputs.npz")]
    argv = ["run", str(graph), "--backend", case["backend"], "--seed", str(case["rand_seed"])]
    for spec in specs:
        argv += ["--input", spec]
    return [*argv, "--output", str(folder / "out")]


def cli_weights_files(case: dict[str, Any], folder: Path) -> list[str]:
    rng = np.random.default_rng(case["seed"])
    (folder / "case.graph").write_text(programs.WEIGHTS_GRAPH)
    arrays = programs.weights(rng)
    how = case["how"]
    if case["file"] == "w.npz":
        np.save(folder / "b.npy", arrays["b"])
        _write(folder / "w.npz", how, lambda: damage.npz_bytes({"w": arrays["w"]}, how, rng))
    else:
        np.savez(folder / "w.npz", w=arrays["w"])
        _write(folder / "b.npy", how, lambda: damage.npy_bytes(arrays["b"], how, rng))
    argv = [case["verb"], str(folder / "case.graph")]
    return argv + (
        ["--backend", "cpu", "--output", str(folder / "out")] if case["verb"] == "run" else []
    )


def cli_graph_files(case: dict[str, Any], folder: Path) -> list[str]:
    rng = np.random.default_rng(case["seed"])
    how = case["how"]
    text = programs.CLI_GRAPH
    suffix = {"so-suffix": "libcase.so", "json-suffix": "case.json", "npz": "case.graph"}
    path = folder / suffix.get(how, "case.graph")
    contents: dict[str, Any] = {
        "binary": lambda: rng.integers(0, 256, 300, dtype=np.uint8).tobytes(),
        "utf16": lambda: text.encode("utf-16"),
        "latin1": lambda: ("# café\n" + text).encode("latin-1"),
        "empty": lambda: b"",
        "huge-param": lambda: text.replace("f32[3,4]", "f32[99999999999,4]").encode(),
        "huge-constant": lambda: text.replace(
            "  %e = exp(%x) : f32[3,4]",
            "  %c = constant 1.0 : f32[4294967296,3]\n  %e = exp(%x) : f32[3,4]",
        ).encode(),
        "nul": lambda: text.replace("exp", "e\0xp").encode(),
        "deep": lambda: (
            "func @main() -> f32[1] {\n  %c = constant "
            + "[" * 5000
            + "1.0"
            + "]" * 5000
            + " : f32[1]\n  return %c\n}\n"
        ).encode(),
        "long-line": lambda: text.replace(
            "%m = mul(%n, %n)", "%m = mul(%n, %n)" + " " * 2_000_000
        ).encode(),
        "so-suffix": lambda: text.encode(),
        "json-suffix": lambda: b"[]" if rng.random() < 0.5 else b'{"format": "tessel-aot"}',
    }
    if how == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, x=np.zeros(3))
        path.write_bytes(buffer.getvalue())
    elif how == "directory":
        path.mkdir()
    else:
        path.write_bytes(contents[how]())
    return ["run", str(path), "--backend", case["backend"]]


# --- running the cases ----------------------------------------------------------------------


def _saved_outputs(folder: Path, names: list[str]) -> list[np.ndarray]:
    return [np.load(folder / f"{n}.npy") for n in names]


def execute_cli(case: dict[str, Any], ctx: Any) -> Outcome:
    from compiler.cmd_run import gather_inputs, load, output_names
    from compiler.fuzz.inputs_jit import compare_answers
    from runtime.interp import run_module

    target = case["target"]
    key = f"{target}:{case.get('form', case.get('file', ''))}:{case['how']}"
    if target == "cli-input" and case["rand_seed"] != 0:
        key = f"cli-input:seed {case['rand_seed']}"
    folder = Path(tempfile.mkdtemp(prefix="cli-", dir=ctx.scratch))
    try:
        ctx.progress("files")
        make = {
            "cli-input": cli_input_files,
            "cli-weights": cli_weights_files,
            "cli-graph": cli_graph_files,
        }[target]
        argv = make(case, folder)
        ctx.progress("cli")
        status, text = ctx.cli(argv)
        verdict = cli_verdict(status, text, "cli", key)
        if verdict is not None or argv[0] != "run" or target == "cli-graph":
            return verdict or Outcome("ok", "cli")
        ctx.progress("compare")  # exit 0: the outputs must be the interpreter's
        module = load(argv[1])
        fn = module.entry_function
        specs = [argv[i + 1] for i, a in enumerate(argv) if a == "--input"]
        inputs = gather_inputs(fn, specs, case.get("rand_seed", 0))
        expected = run_module(module, inputs)
        got = _saved_outputs(folder / "out", output_names(fn))
        return compare_answers(expected, got, "compare", key) or Outcome("ok", "compare")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _pristine_library(ctx: Any, weights: str) -> tuple[Path, list[np.ndarray], list[np.ndarray]]:
    """A library of programs.aot_graph() built once per worker, its inputs and expected outputs."""
    from ir.parser import parse_module
    from runtime.interp import run_module

    libraries = ctx.state.setdefault("aot", {})
    if weights not in libraries:
        folder = ctx.scratch / f"aot-pristine-{weights}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / "model.graph").write_text(programs.aot_graph())
        argv = [
            "compile",
            str(folder / "model.graph"),
            "-o",
            str(folder / "lib"),
            "--name",
            "fuzz",
            "--weights",
            weights,
        ]
        status, text = ctx.cli(argv)
        if status != 0:
            raise RuntimeError(f"tessel compile of the pristine library failed: {text}")
        module = parse_module(programs.aot_graph())
        x = np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32)
        libraries[weights] = (folder / "lib", [x], run_module(module, [x]))
    result: tuple[Path, list[np.ndarray], list[np.ndarray]] = libraries[weights]
    return result


def execute_aot(case: dict[str, Any], ctx: Any) -> Outcome:
    import runtime
    from compiler.fuzz.inputs_jit import compare_answers

    key = f"aot:{case['file']}:{case['how']}"
    ctx.progress("build")
    pristine, inputs, expected = _pristine_library(ctx, case["weights"])
    other, _, _ = _pristine_library(
        ctx, "external" if case["weights"] == "embedded" else "embedded"
    )
    folder = Path(tempfile.mkdtemp(prefix="aot-", dir=ctx.scratch)) / "lib"
    try:
        ctx.progress("damage")
        shutil.copytree(pristine, folder)
        rng = np.random.default_rng(case["seed"])
        path = folder / AOT_FILES[case["file"]]
        how = case["how"]
        if how == "other-library":  # the other build's file of the same name (or none)
            source = other / AOT_FILES[case["file"]]
            damage.replace_file(path, source.read_bytes() if source.exists() else None)
        elif case["file"] == "json" and how.startswith("json-"):
            import json

            data, what = damage.json_bytes(json.loads(path.read_text()), how, rng)
            path.write_bytes(data)
            key += f" ({what.split(':')[0].split('/')[0]})"
        else:
            _write(path, how, lambda: damage.damage_bytes(path.read_bytes(), how, rng))
        ctx.progress("load")
        try:
            library = runtime.load(folder / "libfuzz.so")
            ctx.progress("call")
            got = library.run(inputs)
        except TesselError as e:
            return Outcome("rejected", ctx.stage, e.message, {"key": key})
        ctx.progress("compare")
        return compare_answers(expected, got, "compare", key) or Outcome("ok", "compare")
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)
