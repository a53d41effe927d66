"""x86-specific pieces of generated code that more than one kernel uses: AMX's tile state
(asking Linux for it, configuring and releasing the tiles) and calls of intrinsics llvmlite does
not declare. What a CPU has is codegen/cpu_caps.py's; this is how code uses it.
"""

from __future__ import annotations

from llvmlite import ir

from codegen.types import I8, I32, I64, PTR

SYS_ARCH_PRCTL = 158  # x86-64 Linux
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18


def memset(b: ir.IRBuilder, ptr: ir.Value, size: int) -> None:
    """Zero `size` bytes at `ptr` (llvm.memset: inline stores, or the C library's memset)."""
    fnty = ir.FunctionType(ir.VoidType(), [PTR, I8, I64, ir.IntType(1)])
    fn = b.module.declare_intrinsic("llvm.memset", [PTR, I64], fnty)
    b.call(fn, [ptr, I8(0), I64(size), ir.IntType(1)(0)])


def void_intrinsic(module: ir.Module, name: str, args: list[ir.Type]) -> ir.Function:
    """An intrinsic returning nothing (the AMX tile instructions), declared once per module."""
    existing = module.globals.get(name)
    if isinstance(existing, ir.Function):
        return existing
    return ir.Function(module, ir.FunctionType(ir.VoidType(), args), name)


def _amx_state(module: ir.Module) -> ir.GlobalVariable:
    """0: not asked yet, 1: the process may use AMX, 2: it may not. One per module."""
    name = "tessel_amx_state"
    existing = module.globals.get(name)
    if isinstance(existing, ir.GlobalVariable):
        return existing
    state = ir.GlobalVariable(module, I32, name)
    state.linkage = "internal"
    state.initializer = I32(0)
    return state


def amx_ready(b: ir.IRBuilder) -> ir.Value:
    """i1: whether this process may run tile instructions, asking the OS on first use.

    Racing threads may both ask; the request is idempotent, so both store the same answer.
    """
    state = _amx_state(b.module)
    known = b.load_atomic(state, "monotonic", 4, typ=I32)
    with b.if_then(b.icmp_unsigned("==", known, I32(0))):
        asm = ir.InlineAsm(
            ir.FunctionType(I64, [I64, I64, I64]),
            "syscall",
            "={rax},{rax},{rdi},{rsi},~{rcx},~{r11},~{memory}",
            side_effect=True,
        )
        request = (I64(SYS_ARCH_PRCTL), I64(ARCH_REQ_XCOMP_PERM), I64(XFEATURE_XTILEDATA))
        result = b.call(asm, list(request))
        answer = b.select(b.icmp_signed("==", result, I64(0)), I32(1), I32(2))
        b.store_atomic(answer, state, "monotonic", 4)
    return b.icmp_unsigned("==", b.load_atomic(state, "monotonic", 4, typ=I32), I32(1))


def tile_function(module: ir.Module, name: str, args: list[ir.Type]) -> ir.Function:
    """An internal function for tile code: emitted only for targets with AMX, and kept out of
    line so that it runs only once the OS has granted the tile state."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), args), name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    return fn


def amx_setup(module: ir.Module) -> tuple[ir.Function, ir.Function]:
    """(configure, release): load the one tile configuration every block uses, and give the
    tile state back. Once per kernel call rather than per block: each costs a pipeline drain.

    All eight tiles are 16 rows of 64 bytes: 0-3 accumulate a 2 x 2 block of 16 x 16 int32,
    4-5 hold A's two 16-row halves and 6-7 two 16-column panels of B.
    """
    existing = module.globals.get("tessel_amx_configure")
    if isinstance(existing, ir.Function):
        release = module.globals["tessel_amx_release"]
        assert isinstance(release, ir.Function)
        return existing, release
    fn = tile_function(module, "tessel_amx_configure", [])
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    config = b.alloca(I8, size=I64(64))
    config.align = 64
    memset(b, config, 64)
    b.store(I8(1), config)  # palette 1
    for tile in range(8):
        # bytes per row as a little-endian u16 whose high byte the memset cleared
        b.store(I8(64), b.gep(config, [I64(16 + 2 * tile)], source_etype=I8))
        b.store(I8(16), b.gep(config, [I64(48 + tile)], source_etype=I8))
    b.call(void_intrinsic(module, "llvm.x86.ldtilecfg", [PTR]), [config])
    b.ret_void()
    release = tile_function(module, "tessel_amx_release", [])
    b = ir.IRBuilder(release.append_basic_block("entry"))
    b.call(void_intrinsic(module, "llvm.x86.tilerelease", []), [])
    b.ret_void()
    return fn, release
