"""Fixtures for the AOT tests: every library is compiled once per session, in parallel.

`tessel compile` takes 1-3 s per model, so the builds every test module needs start together
(two at a time per core is enough to hide the subprocess start-up) and the tests only read
the results. A C driver, generated from a library's NAME.json, calls the library the way a C
user would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import SAMPLES, run_tessel

MODELS = ("mlp", "cnn", "attention")
ALL_EMITS = ("so", "ir", "dot", "llvm", "asm")

# name of a build -> (graph file, extra `tessel compile` arguments)
BUILDS: dict[str, tuple[str, list[str]]] = {
    **{m: (m, []) for m in MODELS},
    # every other --emit kind next to the library (one compile instead of four)
    "cnn_all": ("cnn", ["--name", "cnn_all", *(a for e in ALL_EMITS for a in ("--emit", e))]),
    "cnn_obj": ("cnn", ["--name", "cnn_obj", "--emit", "obj"]),
    "mlp_ext": ("mlp", ["--name", "mlp_ext", "--weights", "external"]),
    "mlp_generic": ("mlp", ["--name", "mlp_generic", "--cpu", "generic"]),
    "mlp_v3": ("mlp", ["--name", "mlp_v3", "--cpu", "x86-64-v3"]),
    # the same model under another name, to load next to `mlp` in one process
    "mlp_twin": ("mlp", ["--name", "mlp_twin"]),
}


@dataclass(frozen=True)
class Build:
    name: str  # the C name: libNAME.so, NAME.h
    graph: Path  # the sample it was compiled from
    folder: Path

    @property
    def library(self) -> Path:
        return self.folder / f"lib{self.name}.so"

    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads((self.folder / f"{self.name}.json").read_text())


@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Build]:
    root = tmp_path_factory.mktemp("aot")

    def build(key: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        sample, extra = BUILDS[key]
        graph = SAMPLES / f"{sample}.graph"
        return key, run_tessel("compile", str(graph), "-o", str(root / key), *extra)

    with ThreadPoolExecutor(4) as pool:
        done = dict(pool.map(build, BUILDS))
    failed = {k: p.stderr for k, p in done.items() if p.returncode != 0}
    assert not failed, failed
    # every build is named after its key (`--name KEY`, or the sample's own name)
    return {k: Build(k, SAMPLES / f"{s}.graph", root / k) for k, (s, _) in BUILDS.items()}


@pytest.fixture(scope="session")
def reference() -> Callable[[Path, int], tuple[list[np.ndarray], list[np.ndarray]]]:
    """(inputs, interpreter outputs) for a graph file and a seed, computed once each."""
    from ir.parser import parse_file
    from runtime.inputs import random_inputs
    from runtime.interp import run_module

    cache: dict[tuple[Path, int], tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def get(graph: Path, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if (graph, seed) not in cache:
            module = parse_file(graph)
            inputs = random_inputs(module.entry_function, seed)
            cache[graph, seed] = inputs, run_module(module, inputs)
        return cache[graph, seed]

    return get


# --- the C driver --------------------------------------------------------------------------

DRIVER = r"""
/* Calls @NAME@ the way a C program does: inputs from DIR/in<i>.bin, outputs to DIR/out<i>.bin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "@NAME@.h"

_Static_assert(@UPPER@_NUM_INPUTS == @N_IN@, "input count");
_Static_assert(@UPPER@_NUM_OUTPUTS == @N_OUT@, "output count");

static size_t round64(size_t n) { return n == 0 ? 64 : (n + 63) / 64 * 64; }

/* The whole file, which must hold exactly `want` bytes, in 64-byte-aligned memory. */
static void* read_exactly(const char* path, size_t want) {
  FILE* f = fopen(path, "rb");
  if (f == NULL) { perror(path); exit(90); }
  void* data = aligned_alloc(64, round64(want));
  size_t got = fread(data, 1, want, f);
  if (got != want || fgetc(f) != EOF) { fprintf(stderr, "%s: wrong size\n", path); exit(91); }
  fclose(f);
  return data;
}

static void write_all(const char* path, const void* data, size_t n) {
  FILE* f = fopen(path, "wb");
  if (f == NULL || fwrite(data, 1, n, f) != n || fclose(f) != 0) { perror(path); exit(92); }
}

static void describe(const char* kind, int i, const tessel_tensor_info* t) {
  printf("%s %d %s %d %s %d", kind, i, t->name, t->dtype, t->dtype_name, t->rank);
  for (int d = 0; d < t->rank; d++) printf(" %lld", (long long)t->shape[d]);
  printf(" size %lld bytes %lld\n", (long long)t->size, (long long)t->bytes);
}

int main(int argc, char** argv) {
  if (argc < 2) return 99;
  char path[4096];
  const char* missing = @NAME@_missing_cpu_feature();
  printf("missing %s\n", missing ? missing : "none");
  void* in[@N_IN@ + 1];
  void* out[@N_OUT@ + 1];
  void* again[@N_OUT@ + 1];
  for (int i = 0; i < @N_IN@; i++) {
    describe("input", i, &@NAME@_inputs[i]);
    snprintf(path, sizeof path, "%s/in%d.bin", argv[1], i);
    in[i] = read_exactly(path, (size_t)@NAME@_inputs[i].bytes);
  }
  for (int i = 0; i < @N_OUT@; i++) {
    describe("output", i, &@NAME@_outputs[i]);
    out[i] = aligned_alloc(64, round64((size_t)@NAME@_outputs[i].bytes));
    again[i] = aligned_alloc(64, round64((size_t)@NAME@_outputs[i].bytes));
  }
  int rc;
#ifdef @UPPER@_WEIGHT_BYTES
  rc = @NAME@(@IN_ARGS@ @OUT_ARGS@ NULL);
  printf("before_weights %d\n", rc);
  void* weights = read_exactly(argv[2], @UPPER@_WEIGHT_BYTES);
  printf("wrong_size %d\n", @NAME@_load_weights(weights, @UPPER@_WEIGHT_BYTES - 4));
  printf("misaligned %d\n", @NAME@_load_weights((char*)weights + 4, @UPPER@_WEIGHT_BYTES));
  printf("load_weights %d\n", @NAME@_load_weights(weights, @UPPER@_WEIGHT_BYTES));
#endif
  rc = @NAME@(@IN_ARGS@ @OUT_ARGS@ NULL);
  printf("scratch_null %d\n", rc);
  if (rc != TESSEL_OK) return 10 + rc;
  /* Caller-owned scratch, deliberately not zeroed: the model must not depend on its contents. */
  void* scratch = aligned_alloc(64, round64(@UPPER@_SCRATCH_BYTES));
  memset(scratch, 0xA5, round64(@UPPER@_SCRATCH_BYTES));
  rc = @NAME@(@IN_ARGS@ @AGAIN_ARGS@ scratch);
  printf("scratch_given %d\n", rc);
  if (rc != TESSEL_OK) return 20 + rc;
  int same = 1;
  for (int i = 0; i < @N_OUT@; i++) {
    same &= memcmp(out[i], again[i], (size_t)@NAME@_outputs[i].bytes) == 0;
    snprintf(path, sizeof path, "%s/out%d.bin", argv[1], i);
    write_all(path, out[i], (size_t)@NAME@_outputs[i].bytes);
  }
  printf("same %d\n", same);
  return 0;
}
"""


def driver_source(name: str, n_in: int, n_out: int) -> str:
    """The driver for library NAME: the call's arity is fixed in C, so it is generated."""
    args = {
        "IN_ARGS": "".join(f"in[{i}], " for i in range(n_in)),
        "OUT_ARGS": "".join(f"out[{i}], " for i in range(n_out)),
        "AGAIN_ARGS": "".join(f"again[{i}], " for i in range(n_out)),
        "N_IN": str(n_in),
        "N_OUT": str(n_out),
        "UPPER": name.upper(),
        "NAME": name,
    }
    text = DRIVER
    for key, value in args.items():
        text = text.replace(f"@{key}@", value)
    return text


@dataclass(frozen=True)
class DriverRun:
    proc: subprocess.CompletedProcess[str]
    outputs: list[np.ndarray]
    facts: dict[str, str]  # "scratch_null" -> "0", ...


@pytest.fixture(scope="session")
def c_driver(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., DriverRun]:
    """Build a C program against `build`'s library and run it on `inputs`."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    assert cc, "the AOT tests need a C compiler"
    built: dict[Path, Path] = {}

    def run(build: Build, inputs: list[np.ndarray], weights: Path | None = None) -> DriverRun:
        meta = build.metadata
        sig = meta["signature"]
        exe = built.get(build.folder)
        if exe is None:
            work = tmp_path_factory.mktemp(f"driver_{build.name}")
            source = work / "driver.c"
            source.write_text(driver_source(build.name, len(sig["inputs"]), len(sig["outputs"])))
            exe = work / "driver"
            command = [
                cc, "-std=c11", "-O1", "-Wall", "-Werror", f"-I{build.folder}", str(source),
                f"-L{build.folder}", f"-l{build.name}", f"-Wl,-rpath,{build.folder}",
                "-o", str(exe),
            ]  # fmt: skip
            proc = subprocess.run(command, capture_output=True, text=True, check=False)
            assert proc.returncode == 0, proc.stderr
            built[build.folder] = exe
        data = tmp_path_factory.mktemp(f"io_{build.name}")
        for i, arr in enumerate(inputs):
            (data / f"in{i}.bin").write_bytes(np.ascontiguousarray(arr).tobytes())
        argv = [str(exe), str(data), *([str(weights)] if weights else [])]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        facts = {}
        for line in proc.stdout.splitlines():
            key, _, value = line.partition(" ")
            facts[key] = value
        outputs = []
        if proc.returncode == 0:
            for i, o in enumerate(sig["outputs"]):
                raw = np.fromfile(data / f"out{i}.bin", dtype=np.dtype(_np_dtype(o["dtype"])))
                outputs.append(raw.reshape(o["shape"]))
        return DriverRun(proc, outputs, facts)

    return run


def _np_dtype(name: str) -> Any:
    from ir.dtypes import DType

    return DType(name).np
