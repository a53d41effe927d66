"""@jit's native dispatcher: machine code that checks a call's arguments and runs the program,
with no Python between the caller and the kernels.

A cached `@jit` call in Python checks each array's type, shape, dtype and flags, allocates the
result and calls the program through ctypes: about 2 µs on a Zen 3 core, five times Numba's
dispatch (and tens of µs with a Python number among the arguments). The dispatcher does the
same in a few dozen instructions, reading the argument tuple, the arrays' headers and the
floats' values at offsets that runtime/pyabi.py has verified on live objects:

    PyObject *NAME_dispatch(PyObject *fallback, PyObject *args, PyObject *kwargs)

Anything it does not recognize exactly (keyword arguments, another count of arguments, an
object that is not exactly an ndarray or the signature's kind of Python number, another dtype
object, shape, a non-contiguous or unaligned array, an int beyond int64), and a program that
reports a failed check, goes to `fallback(*args)`: the Python path, which recompiles, converts
or raises the located error as before. The result is allocated by calling `empty(*empty_args)`.

A program that may run long (a loop) runs with the GIL released, on the dispatcher's own arena,
which a flag reserves for one call at a time; a call that finds it taken takes the Python path
(its own arena, under its lock). Others keep the GIL, which then serializes calls."""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from codegen.jit import Target
from codegen.link import Compiled, compile_ir
from codegen.types import I8, I32, I64, PTR
from runtime.pyabi import BEHAVED, Layout

__all__ = ["DispatchSpec", "Param", "build_dispatcher"]


@dataclass(frozen=True)
class Param:
    """One argument as the signature has it: an array (its dtype object's address and shape),
    or a Python number of a kind, "float", "int" or "bool", which the program takes as a 0-d
    f64, i64 or bool array."""

    kind: str
    descr: int = 0
    shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class DispatchSpec:
    """What one compiled signature accepts, and the addresses of what it calls."""

    name: str
    params: tuple[Param, ...]
    program: int  # NAME_run: i32 (void **io, void *arena), io the data pointers, result last
    arena: int
    releases_gil: bool
    types: dict[str, int]  # the addresses of ndarray, float and int, and of True and False
    empty: int  # a callable: empty(*empty_args) -> the result array
    empty_args: int


class _Builder:
    def __init__(self, spec: DispatchSpec, layout: Layout, api: dict[str, int]) -> None:
        self.spec, self.layout, self.api = spec, layout, api
        self.module = ir.Module(name=f"tessel.dispatch.{spec.name}")
        fn = ir.Function(self.module, ir.FunctionType(PTR, [PTR] * 3), f"{spec.name}_dispatch")
        self.fn = fn
        self.hits = self._global("hits", I64)
        self.busy = self._global("busy", I32)
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.fallback = fn.append_basic_block("fallback")

    def _global(self, name: str, ty: ir.Type) -> ir.GlobalVariable:
        g = ir.GlobalVariable(self.module, ty, f"{self.spec.name}_{name}")
        g.initializer = ty(0)
        return g

    def load(self, base: ir.Value, offset: int, ty: ir.Type) -> ir.Value:
        field = self.b.gep(base, [I64(offset)], inbounds=True, source_etype=I8)
        return self.b.load(field, typ=ty)

    def address(self, value: int) -> ir.Value:
        return ir.Constant(I64, value).inttoptr(PTR)

    def call(self, address: int, ret: ir.Type, args: list[ir.Value]) -> ir.Value:
        """Call the function at `address` (llvmlite takes the callee's type from the callee)."""
        callee = self.address(address)
        callee.function_type = ir.FunctionType(ret, [a.type for a in args])
        return self.b.call(callee, args)

    def call_api(self, name: str, ret: ir.Type, args: list[ir.Value]) -> ir.Value:
        return self.call(self.api[name], ret, args)

    def require(self, ok: ir.Value) -> None:
        """Go on if `ok`, else take the Python path."""
        then = self.fn.append_basic_block()
        self.branch(ok, then, self.fallback)
        self.b.position_at_end(then)

    def branch(self, likely: ir.Value, then: ir.Block, otherwise: ir.Block) -> None:
        self.b.cbranch(likely, then, otherwise).set_weights([1000, 1])

    def check_arguments(self, args: ir.Value, kwargs: ir.Value) -> list[ir.Value]:
        """Each argument's data pointer, once it is known to be what the signature says."""
        b, lay = self.b, self.layout
        self.require(b.icmp_unsigned("==", kwargs, ir.Constant(PTR, None)))
        count = self.load(args, lay.tuple_size, I64)
        self.require(b.icmp_signed("==", count, I64(len(self.spec.params))))
        data = []
        for i, param in enumerate(self.spec.params):
            a = self.load(args, lay.tuple_items + 8 * i, PTR)
            data.append(getattr(self, f"_{param.kind}")(a, param))
        return data

    def is_type(self, a: ir.Value, name: str) -> ir.Value:
        ob_type = self.load(a, self.layout.ob_type, I64)
        return self.b.icmp_unsigned("==", ob_type, I64(self.spec.types[name]))

    def _array(self, a: ir.Value, param: Param) -> ir.Value:
        b, lay = self.b, self.layout
        self.require(self.is_type(a, "ndarray"))
        self.require(b.icmp_unsigned("==", self.load(a, lay.descr, I64), I64(param.descr)))
        self.require(b.icmp_signed("==", self.load(a, lay.nd, I32), I32(len(param.shape))))
        flags = b.and_(self.load(a, lay.flags, I32), I32(BEHAVED))
        self.require(b.icmp_unsigned("==", flags, I32(BEHAVED)))
        dims = self.load(a, lay.dimensions, PTR)
        for d, extent in enumerate(param.shape):
            self.require(b.icmp_signed("==", self.load(dims, 8 * d, I64), I64(extent)))
        return self.load(a, lay.data, PTR)

    def _float(self, a: ir.Value, param: Param) -> ir.Value:
        self.require(self.is_type(a, "float"))  # its double is read where it is
        return self.b.gep(a, [I64(self.layout.float_value)], inbounds=True, source_etype=I8)

    def _int(self, a: ir.Value, param: Param) -> ir.Value:
        """Its value as an i64 in a stack slot; one out of range takes the Python path."""
        b = self.b
        self.require(self.is_type(a, "int"))
        value = self.call_api("PyLong_AsLongLong", I64, [a])
        maybe_error = b.icmp_signed("==", value, I64(-1))
        with b.if_then(maybe_error, likely=False):
            raised = self.call_api("PyErr_Occurred", PTR, [])
            overflow = b.icmp_unsigned("!=", raised, ir.Constant(PTR, None))
            with b.if_then(overflow, likely=False):
                self.call_api("PyErr_Clear", ir.VoidType(), [])
                b.branch(self.fallback)
        return self.slot(value)

    def _bool(self, a: ir.Value, param: Param) -> ir.Value:
        b = self.b
        true = b.icmp_unsigned("==", b.ptrtoint(a, I64), I64(self.spec.types["True"]))
        false = b.icmp_unsigned("==", b.ptrtoint(a, I64), I64(self.spec.types["False"]))
        self.require(b.or_(true, false))
        return self.slot(b.zext(true, I8))

    def slot(self, value: ir.Value) -> ir.Value:
        with self.b.goto_entry_block():
            ptr = self.b.alloca(value.type)
        self.b.store(value, ptr)
        return ptr

    def run(self, data: list[ir.Value], out: ir.Value) -> ir.Value:
        """The program's status (0 or a failed check's code)."""
        b, spec = self.b, self.spec
        pointers = [*data, self.load(out, self.layout.data, PTR)]
        with b.goto_entry_block():
            io = b.alloca(PTR, size=I64(len(pointers)), name="io")
        for i, pointer in enumerate(pointers):
            b.store(pointer, b.gep(io, [I64(i)], inbounds=True, source_etype=PTR))
        operands = [io, self.address(spec.arena)]
        if not spec.releases_gil:
            return self.call(spec.program, I32, operands)
        state = self.call_api("PyEval_SaveThread", PTR, [])
        status = self.call(spec.program, I32, operands)
        self.call_api("PyEval_RestoreThread", ir.VoidType(), [state])
        b.store_atomic(I32(0), self.busy, "release", align=4)
        return status

    def reserve_arena(self, out: ir.Value) -> None:
        """One call at a time on the dispatcher's arena; a second gets the Python path."""
        b = self.b
        pair = b.cmpxchg(self.busy, I32(0), I32(1), "acquire", "monotonic")
        got = b.extract_value(pair, 1)
        then, taken = self.fn.append_basic_block(), self.fn.append_basic_block("taken")
        b.cbranch(got, then, taken)
        b.position_at_end(taken)
        self.call_api("Py_DecRef", ir.VoidType(), [out])
        b.branch(self.fallback)
        b.position_at_end(then)

    def build(self) -> ir.Module:
        b, spec = self.b, self.spec
        fallback, args, kwargs = self.fn.args
        data = self.check_arguments(args, kwargs)
        null = ir.Constant(PTR, None)
        empty_args = self.address(spec.empty_args)
        out = self.call_api("PyObject_Call", PTR, [self.address(spec.empty), empty_args, null])
        allocated, failed = self.fn.append_basic_block(), self.fn.append_basic_block("failed")
        b.cbranch(b.icmp_unsigned("!=", out, null), allocated, failed)
        b.position_at_end(failed)
        b.ret(null)  # MemoryError, raised by empty
        b.position_at_end(allocated)
        if spec.releases_gil:
            self.reserve_arena(out)
        status = self.run(data, out)
        ok, check_failed = self.fn.append_basic_block(), self.fn.append_basic_block("check")
        self.branch(b.icmp_signed("==", status, I32(0)), ok, check_failed)
        b.position_at_end(ok)
        b.store(b.add(b.load(self.hits, typ=I64), I64(1)), self.hits)
        b.ret(out)
        b.position_at_end(check_failed)  # the Python path raises the located error
        self.call_api("Py_DecRef", ir.VoidType(), [out])
        b.branch(self.fallback)
        b.position_at_end(self.fallback)
        b.ret(self.call_api("PyObject_Call", PTR, [fallback, args, kwargs]))
        return self.module


@dataclass
class Dispatcher:
    """Linked dispatcher code; keep it alive while its function may be called."""

    compiled: Compiled
    function: int
    hits: int  # address of the count of calls it ran itself


def build_dispatcher(
    spec: DispatchSpec, layout: Layout, api: dict[str, int], target: Target
) -> Dispatcher:
    module = _Builder(spec, layout, api).build()
    compiled = compile_ir(module, target)
    hits = int(compiled.engine.get_global_value_address(f"{spec.name}_hits"))
    return Dispatcher(compiled, compiled.address(f"{spec.name}_dispatch"), hits)
