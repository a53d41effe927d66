"""Loading a library that `tessel compile` built: NumPy and ctypes only, no LLVM, no parser.

    import runtime
    model = runtime.load("out/libmlp.so")     # or "out/mlp.json"
    probs = model(x)                          # inputs checked first; fresh numpy arrays out

The library's own CPU check runs before any of its code: a machine without a feature the code
was compiled for gets an error naming it, not an illegal-instruction crash.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ir.diagnostics import TesselError
from runtime.native import NativeProgram
from runtime.program_spec import ProgramSpec

FORMAT = "tessel-aot"


class AotExecutable(NativeProgram):
    """A compiled library, called with numpy arrays like the function it was compiled from."""

    def __init__(self, metadata: dict[str, Any], folder: Path, threads: int | None) -> None:
        self.metadata = metadata
        self.name: str = metadata["name"]
        library = folder / metadata["library"]
        _check_file(library, metadata, "library", "no such library (did `tessel compile` finish?)")
        # an absolute path: dlopen("libNAME.so") would search the system's library path, not
        # the current folder
        try:
            self._lib = ctypes.CDLL(str(library.absolute()), mode=ctypes.RTLD_LOCAL)
            check = getattr(self._lib, f"{self.name}_missing_cpu_feature")
        except (OSError, AttributeError) as e:
            raise TesselError(
                f"{library}: not a library tessel compiled as {self.name} ({e})"
            ) from None
        check.restype = ctypes.c_char_p
        missing = check()
        if missing is not None:
            raise TesselError(
                f"{library}: compiled for CPU '{metadata['target']['cpu']}', whose feature "
                f"'{missing.decode()}' this machine lacks; compile again with --cpu native "
                "(or --cpu generic for any x86-64)"
            )
        weights = None
        if metadata.get("weights"):
            blob = folder / metadata["weights"]
            _check_file(blob, metadata, "weights", "no such weights file (it is written next to "
                        "the library)")  # fmt: skip
            weights = np.fromfile(blob, dtype=np.uint8)
        try:
            spec = ProgramSpec.from_json(metadata["spec"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise TesselError(
                f"{library}: its description has a damaged program spec ({e!r})"
            ) from None
        super().__init__(spec, self._address, threads, weights=weights)

    def _address(self, symbol: str) -> int:
        try:
            address = ctypes.cast(getattr(self._lib, symbol), ctypes.c_void_p).value
        except AttributeError:
            address = None
        if not address:
            raise TesselError(f"lib{self.name}.so has no symbol {symbol}")
        return address

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """One output comes back as an array, several as a tuple."""
        outs = self.run(args, kwargs)
        return outs[0] if len(outs) == 1 else tuple(outs)


def _check_file(path: Path, metadata: dict[str, Any], kind: str, missing: str) -> None:
    """`path` is the file NAME.json describes, byte for byte: checked before it is mapped or
    read, since a damaged library crashes the loader and damaged weights give wrong answers."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TesselError(f"{path}: {missing}") from None
    except OSError as e:  # a folder, no permission, an I/O error
        raise TesselError(f"{path}: cannot read it ({e.strerror or e})") from None
    want_bytes = metadata.get(f"{kind}_bytes")
    if want_bytes is not None and len(data) != want_bytes:
        raise TesselError(
            f"{path}: {len(data)} bytes, but `tessel compile` wrote {want_bytes}: the file is "
            "damaged or from another build; compile again"
        )
    want = metadata.get(f"{kind}_sha256")
    if want is not None and hashlib.sha256(data).hexdigest() != want:
        raise TesselError(
            f"{path}: its contents differ from what `tessel compile` wrote (SHA-256 mismatch): "
            "the file is damaged or from another build; compile again"
        )


REQUIRED = {"name": str, "library": str, "spec": dict}  # what NAME.json must hold, by type


def metadata_digest(metadata: dict[str, Any]) -> str:
    """The SHA-256 of NAME.json's fields but `digest` itself, which `tessel compile` stores in
    it: a damaged description (a spec with another result count) would run, and answer wrong."""
    fields = {k: v for k, v in metadata.items() if k != "digest"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def metadata_path(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix == ".json":
        return p
    if p.suffix == ".so" and p.name.startswith("lib"):
        return p.with_name(p.name[3:-3] + ".json")
    raise TesselError(f"{p}: expected a compiled library (libNAME.so) or its NAME.json")


def load(path: str | Path, threads: int | None = None) -> AotExecutable:
    """The library at `path` (libNAME.so, or NAME.json next to it) as a callable."""
    meta_file = metadata_path(path)
    try:
        metadata = json.loads(meta_file.read_text())
    except FileNotFoundError:
        raise TesselError(f"{meta_file}: not found (it is written next to the library)") from None
    except OSError as e:
        raise TesselError(f"{meta_file}: cannot read it ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TesselError(f"{meta_file}: not a tessel library description ({e})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:  # e.g. a JSON list
        raise TesselError(f"{meta_file}: not a tessel library description")
    if "digest" in metadata and metadata["digest"] != metadata_digest(metadata):
        raise TesselError(
            f"{meta_file}: its contents differ from what `tessel compile` wrote (digest "
            "mismatch): the file is damaged or edited; compile again"
        )
    for key, kind in REQUIRED.items():
        if not isinstance(metadata.get(key), kind):
            raise TesselError(f"{meta_file}: damaged library description (no valid '{key}')")
    if not metadata["name"].isidentifier() or Path(metadata["library"]).name != metadata["library"]:
        raise TesselError(f"{meta_file}: damaged library description (its names)")
    return AotExecutable(metadata, meta_file.parent, threads)
