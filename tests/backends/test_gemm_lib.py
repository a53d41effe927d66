"""The GEMM library (codegen/gemm_lib.py) through whole programs, against the interpreter.

Sizes are the awkward ones: 1, 2, primes and one either side of the vector width (16 f32 /
8 f64 lanes), the register tiles (6 x 64, 12 x 32, 14 x 16) and the cache blocks, so edge
tiles, edge vectors and the narrow-output tiles all run; several K blocks put partial sums in
the output before the epilogue. Tolerances as in test_gemm.py (the interpreter sums in another
order); the specialized kernel sums in the library's order, so those two agree bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codegen import gemm, gemm_lib
from codegen.cpu_caps import host_caps
from codegen.executable import CpuExecutable
from codegen.jit import host_target
from ir.builder import make_node, parameter
from ir.dtypes import DType
from ir.graph import Function, Module, Node
from ir.ops import Op
from ir.types import TensorType
from passes import PassManager, parse_pipeline
from runtime.inputs import random_inputs
from runtime.interp import run_module

F32, F64 = DType.F32, DType.F64
SIZES = (1, 2, 7, 15, 17, 63, 65, 129)


@pytest.fixture(autouse=True)
def _always_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let small shapes ask for threads too, so threads=2 really splits the rows."""
    monkeypatch.setattr(gemm, "PARALLEL_MACS", 1)


def _dense(
    m: int, n: int, k: int, dtype: DType, epilogue: str = "", transpose: str = "", batch: int = 0
) -> Module:
    """[batch] x @ w (each operand optionally stored transposed) + an optional epilogue."""
    lead = (batch,) if batch else ()
    lhs_shape = (*lead, k, m) if "a" in transpose else (*lead, m, k)
    rhs_shape = (*lead, n, k) if "b" in transpose else (*lead, k, n)
    x = parameter("x", TensorType(lhs_shape, dtype))
    w = parameter("w", TensorType(rhs_shape, dtype))
    params = [x, w]
    body: list[Node] = []

    def add(node: Node) -> Node:
        body.append(node)
        return node

    rank = len(lead)
    dims = {
        "lhs_batch": tuple(range(rank)),
        "rhs_batch": tuple(range(rank)),
        "lhs_contract": (rank if "a" in transpose else rank + 1,),
        "rhs_contract": (rank + 1 if "b" in transpose else rank,),
    }
    out = (*lead, m, n)
    y = add(make_node(Op.DOT_GENERAL, [x, w], dims))
    if epilogue:
        bias = parameter("bias", TensorType((n,), dtype))
        params.append(bias)
        spread = {"shape": out, "dims": (len(out) - 1,)}
        y = add(make_node(Op.ADD, [y, add(make_node(Op.BROADCAST_IN_DIM, [bias], spread))]))
        if epilogue == "bias-relu":
            y = add(make_node(Op.RELU, [y]))
        elif epilogue == "gate":  # a second full-size operand: (x @ w + bias) * sigmoid(g)
            gate = parameter("g", TensorType(out, dtype))
            params.append(gate)
            y = add(make_node(Op.MUL, [y, add(make_node(Op.SIGMOID, [gate]))]))
    fn = Function("main", tuple(params), tuple(body), (y,))
    return PassManager(parse_pipeline("fuse")).run(Module((fn,), "main"))


def _run(
    module: Module, threads: int, library: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[np.ndarray, np.ndarray]:
    monkeypatch.setattr(gemm_lib, "USE_LIBRARY", library)
    fn = module.function("main")
    gemms = [n for n in fn.body if gemm.applicable(n)]
    assert gemms, "the GEMM path was not taken"
    assert all(gemm_lib.covers(n, host_caps()) for n in gemms) == library
    args = random_inputs(fn, seed=3)
    exe = CpuExecutable(module, threads=threads)
    return exe(*args)[0], run_module(module, args)[0]


def _check(module: Module, threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    got, expected = _run(module, threads, True, monkeypatch)
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    k = module.function("main").params[0].shape[-1]
    eps = float(np.finfo(expected.dtype).eps)
    scale = np.max(np.abs(expected)) + 1.0
    np.testing.assert_allclose(got, expected, rtol=0, atol=4 * max(k, 1) * eps * scale)
    # The same accumulation order as the specialized kernel: equal bit for bit.
    specialized, _ = _run(module, threads, False, monkeypatch)
    np.testing.assert_array_equal(got, specialized)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("m", SIZES)
def test_sizes(m: int, dtype: DType, threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for n, k in ((m, 1), (17, m), (SIZES[(SIZES.index(m) + 3) % len(SIZES)], 31)):
        _check(_dense(m, n, k, dtype), threads, monkeypatch)


CASES = [
    (6, 64, 16),  # one whole register tile
    (97, 101, 103),  # primes
    (13, 5, 7),  # narrow output: the 14-row tile
    (40, 33, 9),  # two vectors per row: the 12-row tile
    (100, 70, 600),  # several K blocks
    (5, 7, 0),  # K = 0
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("epilogue", ["", "bias", "bias-relu", "gate"])
@pytest.mark.parametrize("shape", CASES, ids=[f"{m}x{n}x{k}" for m, n, k in CASES])
def test_epilogues(
    shape: tuple[int, int, int], epilogue: str, dtype: DType, threads: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    _check(_dense(*shape, dtype, epilogue), threads, monkeypatch)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("transpose", ["a", "b", "ab"])
@pytest.mark.parametrize("batch", [0, 3])
def test_transposed_and_batched(
    transpose: str, batch: int, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for dtype in (F32, F64):
        _check(_dense(37, 70, 300, dtype, "bias-relu", transpose, batch), threads, monkeypatch)
        _check(_dense(2, 3, 65, dtype, "", transpose, batch), threads, monkeypatch)


def test_batched_epilogue_and_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    _check(_dense(17, 129, 63, F32, "gate", batch=2), 2, monkeypatch)
    _check(_dense(1, 1, 1, F64, batch=5), 1, monkeypatch)


def test_library_is_linked_only_where_called() -> None:
    """Programs without a GEMM do not reference the library; one with a GEMM does."""
    x = parameter("x", TensorType((4, 4), F32))
    y = make_node(Op.RELU, [x])
    plain = CpuExecutable(Module((Function("main", (x,), (y,), (y,)),), "main"))
    assert not gemm_lib.library_calls(plain.compiled.object_code)
    dense = CpuExecutable(_dense(4, 4, 4, F32))
    assert gemm_lib.library_calls(dense.compiled.object_code) == [DType.F32]
    # from object code alone (the on-disk cache's path) it links and runs the same
    args = random_inputs(dense.fn, seed=0)
    again = CpuExecutable.from_payload(*dense.payload())
    np.testing.assert_array_equal(again(*args)[0], dense(*args)[0])


DAMAGE = {
    "json-list": ("json", b"[]"),
    "json-null": ("json", b"null"),
    "json-empty-object": ("json", b"{}"),
    "json-digest-not-a-string": ("json", b'{"sha256": 5}'),
    "json-garbage": ("json", b"\x00\xff{"),
    "object-truncated": ("o", None),
    "object-empty": ("o", b""),
}


def test_the_disk_cache_treats_its_files_as_untrusted_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever is found in the cache folder, the library comes out whole (rebuilt, then
    stored again) and never raises: the cache only ever saves time."""
    monkeypatch.setenv("TESSEL_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TESSEL_LIBRARY_CACHE", "1")
    target = host_target()
    build = gemm_lib.library_object.__wrapped__  # past the in-process memo
    fresh = build(target, F64)
    stored = {p.suffix[1:]: p for p in (tmp_path / "lib").glob("gemm-*")}
    assert sorted(stored) == ["json", "o"]
    assert build(target, F64) == fresh  # read back from disk
    for suffix, content in DAMAGE.values():
        path = stored[suffix]
        path.write_bytes(fresh[: len(fresh) // 2] if content is None else content)
        assert build(target, F64) == fresh
        assert stored["o"].read_bytes() == fresh  # and repaired for the next process
