"""The on-disk compile cache for @jit: object code plus JSON, never pickles.

Layout under the cache directory (`TESSEL_CACHE_DIR`, or ~/.cache/tessel with `cache=True`):

    entries/<key>.json     what the runtime needs to run the code, and what it was built for
    objects/<sha256>.o     the object code, named by the hash of its bytes

The key hashes the traced graph (text and constant data), the pipeline and target, the CPU
(name and features) and a fingerprint of tessel's own sources, so a new compiler or another
machine never picks up stale code. Every file is written to a temporary name and renamed, so
processes can share the directory. An entry that cannot be read, that names another key, whose
contents or object do not match their digests, whose program has another signature, or that was
built for something else is reported with a warning and compiled again: every file there is
treated as input that may be damaged.

Loading object code runs it: as with any compile cache, only point tessel at a directory whose
writers you trust.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ir.attrs import ConstData, WeightRef
from ir.files import atomic_write, write_text_atomic
from ir.graph import Module
from ir.printer import Printer, WeightSink

if TYPE_CHECKING:
    from compiler.jitoptions import JitOptions
    from compiler.targets import Executable

FORMAT = 1
_PACKAGES = ("ir", "passes", "codegen", "runtime", "compiler")


class CacheWarning(UserWarning):
    """A cache entry was unusable; tessel compiled again instead."""


def cache_dir(options: JitOptions) -> Path | None:
    if options.cache is False:
        return None
    env = os.environ.get("TESSEL_CACHE_DIR")
    if env:
        return Path(env)
    if options.cache:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "tessel"
    return None


@functools.cache
def compiler_fingerprint() -> str:
    """A hash of tessel's sources: any change to the compiler invalidates every entry."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for pkg in _PACKAGES:
        for path in sorted((root / pkg).rglob("*")):
            if path.suffix in (".py", ".lark"):
                h.update(path.relative_to(root).as_posix().encode())
                h.update(path.read_bytes())
    return h.hexdigest()[:24]


class _HashingSink(WeightSink):
    """Collects constants while printing so their bytes, not their text, go into the hash."""

    def __init__(self) -> None:
        super().__init__("weights")
        self.data: list[np.ndarray[Any, Any]] = []

    def add(self, data: ConstData, hint: str | None) -> WeightRef:
        self.data.append(data.array)
        return WeightRef(self.path, str(len(self.data) - 1))


def _build_facts(options: JitOptions) -> dict[str, Any]:
    from codegen.jit import host_target

    target = host_target(options.cpu)
    return {
        "format": FORMAT,
        "compiler": compiler_fingerprint(),
        "cpu": target.cpu,
        "features": target.features,
        "caches": [target.caches.l1d, target.caches.l2, target.caches.l3],
        "pipeline": options.pipeline,
        "environment": [list(kv) for kv in options.environment()],
    }


def module_key(module: Module, options: JitOptions) -> str:
    sink = _HashingSink()
    text = Printer(weights=sink).module(module)
    h = hashlib.sha256(text.encode())
    for arr in sink.data:
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(json.dumps(_build_facts(options), sort_keys=True).encode())
    return h.hexdigest()


def _entry_digest(meta: dict[str, Any]) -> str:
    """A hash of everything in an entry but itself: part of one entry pasted into another (a
    spec from elsewhere under the right key) is caught, not run."""
    fields = {k: v for k, v in meta.items() if k != "digest"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def lookup(module: Module, options: JitOptions) -> Executable | None:
    root = cache_dir(options)
    if root is None:
        return None
    key = module_key(module, options)
    path = root / "entries" / f"{key}.json"
    if not path.exists():
        return None
    try:
        meta = json.loads(path.read_text())
        if not isinstance(meta, dict) or meta.get("key") != key:
            # another entry's file under this name would run another function's code
            raise ValueError("it is not this function's entry")
        if meta.get("digest") != _entry_digest(meta):
            raise ValueError("its contents do not match their digest")
        facts = _build_facts(options)
        stale = [k for k, v in facts.items() if meta.get("built_for", {}).get(k) != v]
        if stale:
            raise ValueError(f"built for a different {', '.join(stale)}")
        code = (root / "objects" / f"{meta['object']}.o").read_bytes()
        if hashlib.sha256(code).hexdigest() != meta["object"]:
            raise ValueError("the object code does not match its hash")
        from compiler.targets import TargetOptions, cpu_from_payload

        exe = cpu_from_payload(meta["spec"], code, TargetOptions(cpu=options.cpu))
        fn, spec = module.entry_function, exe.native.spec
        want = [(t.shape, t.dtype.value) for t in (*fn.param_types, *fn.result_types)]
        have = [(tuple(t.shape), t.dtype) for t in (*spec.params, *spec.results)]
        if have != want:
            raise ValueError("its program has another signature")
        return exe
    except Exception as e:  # any unusable entry is a miss, never a failure
        warnings.warn(
            f"tessel: cache entry {path} is unusable ({e}); compiling again",
            CacheWarning,
            stacklevel=2,
        )
        return None


def store(module: Module, options: JitOptions, exe: Executable) -> None:
    root = cache_dir(options)
    if root is None or exe.native is None:
        return
    try:
        spec, code = exe.native.payload()
        digest = hashlib.sha256(code).hexdigest()
        obj = root / "objects" / f"{digest}.o"
        with atomic_write(obj) as f:  # rewritten even if present: it may be a damaged copy
            f.write(code)
        key = module_key(module, options)
        meta = {"key": key, "object": digest, "built_for": _build_facts(options), "spec": spec}
        meta["digest"] = _entry_digest(meta)
        write_text_atomic(root / "entries" / f"{key}.json", json.dumps(meta))
    except OSError as e:  # a read-only or full cache directory must not break the call
        warnings.warn(f"tessel: could not write the compile cache: {e}", CacheWarning, stacklevel=2)
