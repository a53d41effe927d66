"""Fuzzers for tessel: random graphs, random pass pipelines, mutated graph files, bad inputs,
damaged caches and random in-place NumPy functions under @jit, each case run in a worker
process so that a crash or a hang is counted, not fatal. `tessel fuzz` (compiler/cmd_fuzz.py)
runs them; docs/fuzzing.md describes each one.

The parent side (case generation, minimization, reports) needs only `ir` and `passes`; what
runs a case (LLVM, the native runtime, `@jit`) is imported by the worker alone.
"""

from __future__ import annotations

# The fuzzers, in the order `--kind all` runs them and reports list them.
KINDS = ("graphs", "pipelines", "parser", "inputs", "cache", "numpy")
