"""An index out of its axis (gather/scatter in mode check) is NumPy's IndexError on every way
of running a program: the interpreter, compiled code in each of its three call modes, code
restored from the on-disk cache's payload, and AOT libraries from Python and from C. The error
is located at the op; the program stops there, and the next call starts clean."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import runtime
from codegen.executable import CpuExecutable
from ir.diagnostics import IndexOutOfRange
from ir.parser import parse_module
from runtime.interp import run_module
from tests.conftest import run_tessel

# rows of x picked by idx, then those rows (times 2) added into y * y at positions pos (with
# n = 2**15, y * y is big enough to be split across threads)
GRAPH = """\
func @main(%x: f32[{n}, 3], %idx: i32[4, 1], %y: f32[{n}, 3], %pos: i64[4, 1])
    -> (f32[4, 3], f32[{n}, 3]) {{
  %rows = gather(%x, %idx)
  %twice = add(%rows, %rows)
  %square = mul(%y, %y)
  %sum = scatter(%square, %pos, %twice) {{kind = "add"}}
  return %rows, %sum
}}
"""
GATHER_LINE, SCATTER_LINE = 3, 6


def _module(n: int):
    return parse_module(GRAPH.format(n=n), "checks.graph")


def _inputs(n: int, idx: list[int], pos: list[int]) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    y = rng.standard_normal((n, 3)).astype(np.float32)
    return [x, np.array(idx, np.int32)[:, None], y, np.array(pos, np.int64)[:, None]]


GOOD = ([0, 4, -1, 2], [1, 1, -5, 0])  # repeated and negative positions, all in range


def _bad(n: int) -> list[tuple[list[int], list[int], int]]:
    """(idx, pos, line of the op that fails) for an axis of length n."""
    return [
        ([0, n, 1, 2], GOOD[1], GATHER_LINE),  # one past the end
        ([-n - 1, 0, 1, 2], GOOD[1], GATHER_LINE),  # one before the start
        (GOOD[0], [0, 1, 2, 1 << 40], SCATTER_LINE),  # far out, in a 64-bit index
        (GOOD[0], [0, -n - 1, 2, 3], SCATTER_LINE),
    ]


def _located(err: IndexOutOfRange, line: int) -> None:
    assert isinstance(err, IndexError)
    assert err.loc is not None
    assert (err.loc.file, err.loc.line) == ("checks.graph", line)
    assert "out of bounds" in err.message


def _executables(n: int) -> dict[str, CpuExecutable]:
    """The three call modes: one PYFUNCTYPE call, one `run` call, Python-launched kernels."""
    module = _module(n)
    if n < 1 << 15:
        return {"py": CpuExecutable(module, threads=1)}
    return {"run": CpuExecutable(module, threads=1), "threaded": CpuExecutable(module, threads=2)}


@pytest.mark.parametrize("n", [5, 1 << 15])
def test_compiled_code_raises_where_the_interpreter_does(n: int) -> None:
    module = _module(n)
    executables = _executables(n)
    assert {e.mode for e in executables.values()} == set(executables)
    for name, ex in executables.items():
        good = _inputs(n, *GOOD)
        want = run_module(module, good)
        for got, w in zip(ex(*good), want, strict=True):
            np.testing.assert_allclose(got, w, rtol=1e-6, err_msg=name)
        for idx, pos, line in _bad(n):
            bad = _inputs(n, idx, pos)
            with pytest.raises(IndexOutOfRange) as interp:
                run_module(module, bad)
            _located(interp.value, line)
            with pytest.raises(IndexOutOfRange) as compiled:
                ex(*bad)
            _located(compiled.value, line)
        # the status word starts clean on the next call
        for got, w in zip(ex(*good), want, strict=True):
            np.testing.assert_allclose(got, w, rtol=1e-6, err_msg=name)


def test_the_cache_payload_keeps_the_checks() -> None:
    ex = CpuExecutable(_module(5))
    restored = CpuExecutable.from_payload(*ex.payload())
    with pytest.raises(IndexOutOfRange) as err:
        restored(*_inputs(5, *_bad(5)[0][:2]))
    _located(err.value, GATHER_LINE)


def test_clip_and_wrap_never_raise_and_match_the_interpreter() -> None:
    for mode in ("clip", "wrap"):
        text = GRAPH.format(n=5).replace(
            "gather(%x, %idx)", f'gather(%x, %idx) {{mode = "{mode}"}}'
        )
        text = text.replace('{kind = "add"}', f'{{kind = "add", mode = "{mode}"}}')
        module = parse_module(text, "modes.graph")
        inputs = _inputs(5, [-17, 5, 123, -1], [9, -9, 0, 1 << 40])
        want = run_module(module, inputs)
        for got, w in zip(CpuExecutable(module)(*inputs), want, strict=True):
            np.testing.assert_allclose(got, w, rtol=1e-6, err_msg=mode)


C_MAIN = r"""
#include <stdio.h>
#include <stdint.h>
#include "checks.h"
int main(void) {
  float x[15] = {0}, y[15] = {0}, rows[12], sum[15];
  int32_t idx[4] = {0, 1, 2, 3};
  int64_t pos[4] = {0, 1, 2, 3};
  int ok = checks(x, idx, y, pos, rows, sum, NULL);
  idx[2] = 5;
  int bad = checks(x, idx, y, pos, rows, sum, NULL);
  idx[2] = 2;
  int again = checks(x, idx, y, pos, rows, sum, NULL);
  printf("%d %d %d %d\n", ok, bad, again, TESSEL_ERROR_INDEX);
  return 0;
}
"""


def test_aot_library_reports_the_index_error(tmp_path: Path) -> None:
    graph = tmp_path / "checks.graph"
    graph.write_text(GRAPH.format(n=5))
    out = tmp_path / "lib"
    proc = run_tessel("compile", str(graph), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    lib = runtime.load(out / "libchecks.so")
    with pytest.raises(IndexOutOfRange) as err:
        lib(*_inputs(5, *_bad(5)[2][:2]))
    assert err.value.loc is not None
    assert err.value.loc.line == SCATTER_LINE
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    assert cc, "the AOT tests need a C compiler"
    (tmp_path / "main.c").write_text(C_MAIN)
    exe = tmp_path / "main"
    command = [cc, "-std=c11", "-Wall", "-Werror", f"-I{out}", str(tmp_path / "main.c"),
               f"-L{out}", "-lchecks", f"-Wl,-rpath,{out}", "-o", str(exe)]  # fmt: skip
    built = subprocess.run(command, capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    ran = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=True)
    assert ran.stdout.split() == ["0", "4", "0", "4"]


def test_u64_indices_past_int64_are_out_of_range_not_negative() -> None:
    """2**64 - 1 would be -1 (the last element) read as an i64: it is far past the end."""
    huge = np.array([[2**64 - 1], [2**63], [3]], np.uint64)
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    for mode in ("check", "clip", "wrap"):
        text = (
            "func @main(%x: f32[5, 2], %i: u64[3, 1]) -> f32[3, 2] {\n"
            f'  %g = gather(%x, %i) {{mode = "{mode}"}}\n'
            "  return %g\n}\n"
        )
        module = parse_module(text, "u64.graph")
        ex = CpuExecutable(module)
        if mode == "check":
            with pytest.raises(IndexOutOfRange):
                run_module(module, [x, huge])
            with pytest.raises(IndexOutOfRange):
                ex(x, huge)
            continue
        rows = [4, 4, 3] if mode == "clip" else [int(v) % 5 for v in huge[:, 0]]
        (want,) = run_module(module, [x, huge])
        np.testing.assert_array_equal(want, x[rows])
        np.testing.assert_array_equal(ex(x, huge)[0], want)


def test_a_fused_gather_reports_its_own_line(tmp_path: Path) -> None:
    """Through `tessel compile` the gather joins its consumer's loop: the error still points
    at the gather."""
    graph = tmp_path / "checks.graph"  # the gather is no longer a result: it fuses
    graph.write_text(GRAPH.format(n=5).replace("return %rows, %sum", "return %twice, %sum"))
    out = tmp_path / "lib"
    assert run_tessel("compile", str(graph), "-o", str(out)).returncode == 0
    lib = runtime.load(out / "libchecks.so")
    assert [step.op for step in lib.spec.steps] == ["fusion", "mul", "scatter"]
    with pytest.raises(IndexOutOfRange) as err:
        lib(*_inputs(5, *_bad(5)[0][:2]))
    assert err.value.loc is not None
    assert err.value.loc.line == GATHER_LINE
