"""f16 conversions on the CPU at every capability level: exact, with no runtime helper.

Without F16C (generic, x86-64-v2) the conversions are integer code (codegen/halfconv.py); with
it, the instructions. Both must give NumPy's bits: every f16 widened, f32 and f64 values at
and around every rounding boundary narrowed (ties to even, subnormals, overflow to infinity).
"""

from __future__ import annotations

import numpy as np
import pytest

from codegen.cpu_caps import host_levels
from codegen.executable import CpuExecutable
from codegen.jit import host_target
from codegen.objsyms import UnresolvedSymbolError, check_symbols, undefined_calls
from ir.parser import parse_module

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast")
LEVELS = host_levels()


def _convert(source: str, dest: str, x: np.ndarray, cpu: str) -> np.ndarray:
    n = x.size
    module = parse_module(
        f"func @main(%x: {source}[{n}]) -> {dest}[{n}] {{\n"
        f"  %y = convert(%x) {{dtype = {dest}}}\n  return %y\n}}"
    )
    return CpuExecutable(module, threads=1, target=host_target(cpu))(x)[0]


def _same_bits(got: np.ndarray, want: np.ndarray) -> None:
    """Equal bit patterns, except that any NaN matches any NaN (`want` is NumPy's cast, whose
    overflow to infinity is expected here)."""
    assert got.dtype == want.dtype
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[want.itemsize]
    np.testing.assert_array_equal(got[~nan].view(bits), want[~nan].view(bits))


def _boundaries() -> np.ndarray:
    """Every f16 value, the midpoints between neighbours and the f32s just beside them."""
    halves = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    finite = np.sort(halves[np.isfinite(halves)].astype(np.float64))
    mids = (finite[1:] + finite[:-1]) / 2
    edges = np.concatenate([finite, mids, [65520.0, -65520.0, 65519.99, 1e30, 2.0**-25]])
    f32 = edges.astype(np.float32)
    return np.concatenate(
        [f32, np.nextafter(f32, np.float32(np.inf)), np.nextafter(f32, np.float32(-np.inf)),
         np.array([np.inf, -np.inf, np.nan, -0.0, 1e-45], np.float32)]
    )  # fmt: skip


@pytest.mark.parametrize("cpu", LEVELS)
def test_every_half_widens_exactly(cpu: str) -> None:
    every = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    _same_bits(_convert("f16", "f32", every, cpu), every.astype(np.float32))
    _same_bits(_convert("f16", "f64", every, cpu), every.astype(np.float64))


@pytest.mark.parametrize("cpu", LEVELS)
def test_f32_narrows_to_nearest_even(cpu: str) -> None:
    x = _boundaries()
    _same_bits(_convert("f32", "f16", x, cpu), x.astype(np.float16))


@pytest.mark.parametrize("cpu", LEVELS)
def test_f64_and_integers_narrow_with_one_rounding(cpu: str) -> None:
    """f64 just off an f16 midpoint must not round twice (f64 -> f32 -> f16 would)."""
    mids = _boundaries().astype(np.float64)
    x = np.concatenate([mids, mids * (1 + 2.0**-40), mids * (1 - 2.0**-40)])
    _same_bits(_convert("f64", "f16", x, cpu), x.astype(np.float16))
    ints = np.array([0, 1, -1, 2049, 2051, 65504, 65519, 65520, -65536, 2**62], np.int64)
    _same_bits(_convert("i64", "f16", ints, cpu), ints.astype(np.float16))


def test_no_helper_symbols_at_the_baseline() -> None:
    """The issue that crashed on AVX2 hosts: f64 -> f16 called __truncdfhf2, which the JIT
    never resolved. At the baseline level every conversion must be inline code."""
    module = parse_module(
        "func @main(%x: f64[8], %h: f16[8]) -> (f16[8], f64[8]) {\n"
        "  %y = convert(%x) {dtype = f16}\n  %z = convert(%h) {dtype = f64}\n  return %y, %z\n}"
    )
    exe = CpuExecutable(module, target=host_target("generic"))
    assert not [s for s in undefined_calls(exe.compiled.object_code) if "hf" in s]


def test_an_unprovided_symbol_is_a_located_error() -> None:
    """An object that calls a helper nobody provides is refused before linking, naming the
    symbol and the function that calls it."""
    import llvmlite.binding as llvm
    from llvmlite import ir

    from codegen.jit import target_machine

    module = ir.Module("m")
    helper = ir.Function(module, ir.FunctionType(ir.VoidType(), []), "__not_a_real_helper")
    kernel = ir.Function(module, ir.FunctionType(ir.VoidType(), []), "main_k0_exp")
    b = ir.IRBuilder(kernel.append_basic_block())
    b.call(helper, [])
    b.ret_void()
    tm = target_machine(host_target(), jit=False)
    module.triple = llvm.get_process_triple()
    code = bytes(tm.emit_object(llvm.parse_assembly(str(module))))
    assert undefined_calls(code)["__not_a_real_helper"] == ["main_k0_exp"]
    with pytest.raises(UnresolvedSymbolError, match=r"__not_a_real_helper, called from X"):
        check_symbols(code, describe={"main_k0_exp": "X"})
