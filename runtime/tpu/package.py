"""A compiled TPU program on disk, as `tessel compile --target tpu` writes it.

    NAME.tpu.json          the manifest: chip, signature, and the stages in order
    NAME.stage<k>.tbin     a TPU stage's instructions (256-bit words, docs/tpu.md)
    NAME.stage<k>.tasm     the same as an assembly listing (assembles back to the .tbin)
    NAME.stage<k>.weights  its weight memory image
    NAME.stage<k>.graph    a host stage: an ordinary graph file (+ .npz for large constants)

Everything is plain data (JSON, raw bytes, graph text): `tessel tpu-sim NAME.tpu.json` runs it,
and a person can read or edit every piece.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ir.diagnostics import TesselError
from ir.parser import parse_file
from ir.printer import WeightSink, print_module
from runtime.tpu.asm import listing
from runtime.tpu.config import preset
from runtime.tpu.executable import Step, TpuExecutable
from runtime.tpu.program import TpuProgram

FORMAT = "tessel-tpu-1"


def save(
    exe: TpuExecutable, folder: Path, name: str, final: Path | None = None,
    entry: str | None = None, result_names: Sequence[str] = (),
) -> list[str]:  # fmt: skip
    """Write the package into `folder` (whose contents will move to `final`); the file names.
    Results are called `result_names` where given (the graph's names), else v0, v1, ..."""
    final = final or folder
    names: dict[Hashable, str] = {}
    for i, p in enumerate(exe.params):
        names[p] = getattr(p, "name", None) or f"arg{i}"
    for r, out_name in zip(exe.results, result_names, strict=False):
        names.setdefault(r, out_name)

    def key(x: Hashable) -> str:
        if x not in names:
            names[x] = f"v{len(names)}"
        return names[x]

    files: list[str] = []
    stages = []
    for k, step in enumerate(exe.steps):
        stage: dict[str, Any] = {
            "inputs": [key(x) for x in step.inputs],
            "outputs": [key(x) for x in step.outputs],
        }
        stem = f"{name}.stage{k}"
        if step.program is not None:
            p = step.program
            (folder / f"{stem}.tbin").write_bytes(p.binary())
            (folder / f"{stem}.tasm").write_text(listing(p.instructions))
            (folder / f"{stem}.weights").write_bytes(p.weights.tobytes())
            files += [f"{stem}.tbin", f"{stem}.tasm", f"{stem}.weights"]
            stage.update(
                device="tpu",
                program=f"{stem}.tbin",
                listing=f"{stem}.tasm",
                weights=f"{stem}.weights",
                metadata=p.metadata(),
            )
        else:
            assert step.host_module is not None
            sink = WeightSink(final / f"{stem}.npz")
            text = print_module(step.host_module, base_dir=final, weights=sink)
            sink.path = (folder / f"{stem}.npz").absolute()
            sink.save()
            (folder / f"{stem}.graph").write_text(text)
            files += [f"{stem}.graph"] + ([f"{stem}.npz"] if sink.arrays else [])
            stage.update(device="host", graph=f"{stem}.graph")
        stages.append(stage)
    manifest = {
        "format": FORMAT,
        "preset": exe.config.name,
        "entry": entry or name,
        "inputs": [_tensor(names[p], p) for p in exe.params],
        "outputs": [key(r) for r in exe.results],
        "constants": {key(r): v.tolist() for r, v in exe.constants.items()},
        "stages": stages,
    }
    (folder / f"{name}.tpu.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return [f"{name}.tpu.json", *files]


def _tensor(name: str, node: Any) -> dict[str, Any]:
    return {"name": name, "dtype": str(node.dtype), "shape": list(node.shape)}


def load(path: str | Path, mode: str = "native") -> TpuExecutable:
    """A saved program; its host stages still need compiling (codegen/tpu/build.py's
    `prepare_hosts`, as compiler/targets.py's `attach_hosts` does)."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise TesselError(f"{path}: not a TPU program manifest ({e})") from None
    if manifest.get("format") != FORMAT:
        raise TesselError(f"{path}: format {manifest.get('format')!r} is not {FORMAT!r}")
    folder = path.parent
    config = preset(manifest["preset"])
    steps = []
    for stage in manifest["stages"]:
        step = Step(stage["inputs"], stage["outputs"])
        if stage["device"] == "tpu":
            step.program = TpuProgram.from_files(
                stage["metadata"],
                (folder / stage["program"]).read_bytes(),
                (folder / stage["weights"]).read_bytes(),
            )
        else:
            step.host_module = parse_file(str(folder / stage["graph"]))
        steps.append(step)
    constants = {k: np.asarray(v) for k, v in manifest.get("constants", {}).items()}
    params = [t["name"] for t in manifest["inputs"]]
    exe = TpuExecutable(config, mode, steps, params, manifest["outputs"], constants)
    exe.signature = manifest["inputs"]  # type: ignore[attr-defined]
    return exe
