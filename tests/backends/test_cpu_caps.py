"""CpuCaps: levels, features taken away, and the caches that size the GEMM's blocks.

The caches travel with the caps (a level forced on this host keeps this host's caches), into
the compiled program's spec and back, and GEMMs blocked for tiny caches still match NumPy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codegen.cpu_caps import Caches, CpuCaps, detected_caches, host_caps, level_caps
from codegen.executable import CpuExecutable
from codegen.gemm import CACHE_BLOCKS, base_tiling
from codegen.jit import caps_target
from ir.builder import make_node, parameter
from ir.dtypes import DType
from ir.graph import Function, Module
from ir.ops import Op
from ir.types import TensorType
from runtime.inputs import random_inputs

TINY = Caches(l1d=16 << 10, l2=32 << 10, l3=64 << 10)


def _sysfs(root: Path, entries: list[tuple[str, str, str]]) -> Path:
    for i, (level, kind, size) in enumerate(entries):
        index = root / f"index{i}"
        index.mkdir(parents=True)
        (index / "level").write_text(level + "\n")
        (index / "type").write_text(kind + "\n")
        (index / "size").write_text(size + "\n")
    return root


def test_caches_are_read_from_sysfs(tmp_path: Path) -> None:
    root = _sysfs(
        tmp_path,
        [("1", "Data", "48K"), ("1", "Instruction", "32K"), ("2", "Unified", "2048K"),
         ("3", "Unified", "105M")],
    )  # fmt: skip
    assert detected_caches(root) == Caches(48 << 10, 2 << 20, 105 << 20)


def test_missing_or_unreadable_caches_get_the_defaults(tmp_path: Path) -> None:
    assert detected_caches(tmp_path / "absent") == Caches()
    root = _sysfs(tmp_path / "odd", [("2", "Unified", "lots"), ("1", "Data", "64K")])
    assert detected_caches(root) == Caches(l1d=64 << 10)


def test_caches_survive_levels_features_and_targets() -> None:
    host = host_caps()
    caps = CpuCaps(host.cpu, host.features, host.llvm_features, TINY)
    assert caps.restricted("generic").caches == TINY
    assert caps.without("fma").caches == TINY
    assert caps_target(caps).caps == caps
    assert level_caps("x86-64-v2").caches == Caches()
    assert "L2 32 KiB" in caps.summary()


def test_blocks_shrink_to_small_caches_and_no_further_than_one_tile() -> None:
    for dtype in (DType.F32, DType.F64):
        kc, mc, nc = CACHE_BLOCKS[dtype]
        roomy = base_tiling(dtype, CpuCaps("x", level_caps("x86-64-v3").features, "",
                                            Caches(l2=64 << 20, l3=1 << 30)))  # fmt: skip
        assert (roomy.kc, roomy.mc, roomy.nc) == (kc, mc, nc)
        small = base_tiling(dtype, CpuCaps("x", level_caps("x86-64-v3").features, "", TINY))
        size = dtype.np.itemsize
        assert small.mc * small.kc * size <= TINY.l2 // 2
        assert small.mc % small.mr == 0
        assert small.nc * small.kc * size <= TINY.l3 // 2
        assert small.nc % small.nr == 0
        starved = base_tiling(
            dtype, CpuCaps("x", level_caps("x86-64-v3").features, "", Caches(1, 1, 1))
        )
        assert (starved.mc, starved.nc) == (starved.mr, starved.nr)


@pytest.mark.parametrize("caches", [TINY, Caches(1, 1, 1)], ids=["tiny", "one-tile"])
@pytest.mark.parametrize("threads", [1, 2])
def test_gemms_blocked_for_small_caches_match_numpy(caches: Caches, threads: int) -> None:
    """Many M and N blocks, and K split in several blocks: every block edge is crossed."""
    host = host_caps()
    caps = CpuCaps(host.cpu, host.features, host.llvm_features, caches)
    a = parameter("a", TensorType((97, 613), DType.F32))
    b = parameter("b", TensorType((613, 301), DType.F32))
    dims = {"lhs_batch": (), "rhs_batch": (), "lhs_contract": (1,), "rhs_contract": (0,)}
    d = make_node(Op.DOT_GENERAL, [a, b], dims)
    fn = Function("main", (a, b), (d,), (d,))
    exe = CpuExecutable(Module((fn,), "main"), threads=threads, target=caps_target(caps))
    assert tuple(exe.spec.target_caches) == (caches.l1d, caches.l2, caches.l3)
    x, y = random_inputs(fn, seed=5)
    got = exe(x, y)[0]
    exact = np.matmul(x.astype(np.float64), y.astype(np.float64))
    bound = 2 * 613 * np.finfo(np.float32).eps / 2 * np.matmul(np.abs(x), np.abs(y))
    assert np.all(np.abs(got - exact) <= bound)
    again = CpuExecutable.from_payload(*exe.payload(), threads=threads)
    assert again.compiled.target.caches == caches
    np.testing.assert_array_equal(again(x, y)[0], got)
