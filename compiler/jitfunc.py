"""`@jit`: trace a Python/NumPy function once per signature, compile it, and cache the result.

A call is looked up by its signature: the arguments' structure (pytree), each array's shape and
dtype, each Python scalar's kind, the static arguments' values and the options. A miss traces
the function on `Tracer`s, runs the pass pipeline and the backend, and says why it compiled
(`TESSEL_LOG_COMPILES=1`, `f.explain()`). A hit on plain positional arrays takes a short path
that checks only the key before the native call.
"""

from __future__ import annotations

import contextlib
import contextvars
import dis
import functools
import inspect
import linecache
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import numpy as np

from compiler import diskcache, native_dispatch, pytree, targets
from compiler import tracer_methods as _tracer_methods  # noqa: F401  (installs the methods)
from compiler.allocation import traced_constructors
from compiler.autograph import convert as convert_control_flow
from compiler.driver import PipelineOptions, optimize
from compiler.jitoptions import JitOptions
from compiler.masking import Selection
from compiler.targets import Executable, TargetOptions, prepare, target
from compiler.tracing import Trace, TraceError, Tracer, lift, user_location
from ir.diagnostics import Loc, TesselError
from ir.dtypes import DType
from ir.graph import Module
from ir.printer import print_module
from runtime.pyabi import BEHAVED as _BEHAVED

log = logging.getLogger("tessel.jit")


class RecompileError(TesselError):
    """A function compiled inside `no_recompile()`."""


class CacheInfo(NamedTuple):
    hits: int
    misses: int
    maxsize: None
    currsize: int


_no_recompile: contextvars.ContextVar[bool] = contextvars.ContextVar("no_recompile", default=False)


@contextlib.contextmanager
def no_recompile() -> Iterator[None]:
    """Within this block, any call that would compile raises RecompileError (for tests)."""
    token = _no_recompile.set(True)
    try:
        yield
    finally:
        _no_recompile.reset(token)


@dataclass(frozen=True)
class LeafSpec:
    """What a traced argument leaf looked like: an array's type, or a Python scalar's kind."""

    kind: str  # array, numpy-scalar (immutable: x += 1 rebinds) or scalar (a Python one)
    dtype: DType
    shape: tuple[int, ...] = ()

    def __str__(self) -> str:
        t = f"{self.dtype}[{','.join(map(str, self.shape))}]"
        if self.kind == "scalar":
            return f"Python {_PY_NAMES[self.dtype]} (traced as {t})"
        return t if self.kind == "array" else f"NumPy scalar {t}"


_PY_SCALARS = {bool: DType.BOOL, int: DType.I64, float: DType.F64, complex: DType.C128}
# NumPy's flag bits for C-contiguous and aligned: what compiled code may assume of an input
_NATIVE_NUMBERS = (float, int, bool)  # the Python numbers native dispatch takes


def _plain_array(a: Any) -> bool:
    return type(a) is np.ndarray and a.flags.num & _BEHAVED == _BEHAVED


_PY_NAMES = {v: k.__name__ for k, v in _PY_SCALARS.items()}


@dataclass(frozen=True)
class Signature:
    treedef: tuple[pytree.TreeDef, ...]  # one per non-static parameter
    leaves: tuple[LeafSpec, ...]
    statics: tuple[tuple[str, Any], ...]
    environment: tuple[tuple[str, Any], ...]
    names: tuple[str, ...]  # each leaf's path (`params['w']`); follows from treedef


@dataclass
class Entry:
    signature: Signature
    executable: Executable
    out_tree: pytree.TreeDef
    optimized: Module | None  # None when loaded from the on-disk cache
    lowered: Lowered
    run_flat: Callable[[Sequence[np.ndarray]], list[np.ndarray]]
    # arrays already checked -> results, for the short path; one native call where possible
    fast: Callable[[Sequence[np.ndarray]], Any] = field(init=False)
    native: native_dispatch.NativeCall | None = None  # its native dispatcher, once made
    native_tried: bool = False

    def __post_init__(self) -> None:
        single = getattr(self.executable.native, "single_result_call", lambda: None)()
        changes = self.lowered.written or self.lowered.rebound
        simple = single is not None and self.out_tree is pytree.LEAF and not changes
        self.fast = single if simple else self  # type: ignore[assignment]

    def __call__(
        self,
        arrays: Sequence[np.ndarray],
        leaves: Sequence[Any] | None = None,
        trees: Sequence[Any] | None = None,
    ) -> Any:
        """Run on `arrays` (the inputs as compiled code takes them), then do to the caller's
        objects what the function did to its arguments: write `leaves` (default: `arrays`)
        in place, and replace entries of the containers `trees` (the non-static arguments)."""
        low = self.lowered
        targets = arrays if leaves is None else leaves
        if low.written:
            _check_writable(targets, low.written, self.signature.names, low.name)
        if low.rebound and trees is None:
            raise TesselError(
                f"{low.name}() replaces entries of its container arguments; call it through "
                "the jitted function, which can update the caller's containers"
            )
        outs = list(self.run_flat(arrays))
        extra = outs[len(outs) - len(low.written) - _results(low.rebound) :]
        del outs[len(outs) - len(extra) :]
        for i, value in zip(low.written, extra[: len(low.written)], strict=True):
            np.copyto(targets[i], value)
        for k, i in low.returned:
            outs[k] = targets[i]
        if low.rebound and trees is not None:
            slots = [slot for tree in trees for slot in pytree.leaf_slots(tree)]
            new = iter(extra[len(low.written) :])
            for i, how, what in low.rebound:
                container, key = slots[i]
                if how == "leaf":
                    container[key] = targets[what]
                else:
                    container[key] = what if how == "value" else next(new)
        if self.out_tree is pytree.LEAF:
            return outs[0]
        return pytree.unflatten(self.out_tree, outs)


def _results(rebound: tuple[tuple[int, str, Any], ...]) -> int:
    return sum(how == "result" for _, how, _ in rebound)


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays share an element; when that is too hard to prove either way, yes."""
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=10_000))  # type: ignore[arg-type]  # stubs: -1, 0
    except np.exceptions.TooHardError:
        return True


def _check_writable(
    targets: Sequence[Any], written: tuple[int, ...], names: tuple[str, ...], fn: str
) -> None:
    """Before any native call: every argument the function writes must take the write
    (NumPy would fail inside the function) and must not share memory with another argument
    (tessel traced them as separate arrays, so a write to one would not show in the other)."""
    for i in written:
        target = targets[i]
        if not target.flags.writeable:
            raise TesselError(
                f"{fn}() writes to its argument '{names[i]}', which is read-only (NumPy: "
                "'assignment destination is read-only'); pass a writable array or a copy",
                user_location(),
            )
        for j, other in enumerate(targets):
            if j != i and isinstance(other, np.ndarray) and _overlap(target, other):
                raise TesselError(
                    f"{fn}() writes to its argument '{names[i]}', which shares memory "
                    f"with argument '{names[j]}': compiled code treats them as separate "
                    "arrays, so the write would not show in the other one as it does in "
                    "NumPy; pass a copy of one of them",
                    user_location(),
                )


def jit(
    fn: Callable[..., Any] | None = None,
    *,
    target: str = "cpu",
    static_argnums: int | Sequence[int] = (),
    static_argnames: str | Sequence[str] = (),
    pipeline: str | None = None,
    dump_dir: str | os.PathLike[str] | None = None,
    verify: bool = False,
    cache: bool | None = None,
    cpu: str = "native",
    tpu: str = "tpu-v1",
    autograph: bool = True,
) -> Any:
    """Compile `fn` for `target` ("cpu", "interp", "tpu"); usable as `@jit` or `@jit(...)`.

    On the TPU, `tpu` names the chip; after a call, `f.tpu_report()` describes the last run.
    `autograph=False` traces Python loops and branches as they are (unrolled), without turning
    those on traced values into loop ops (docs/jit.md)."""
    targets.target(target).check(targets.TargetOptions(cpu=cpu, tpu=tpu))
    options = JitOptions(
        target,
        pipeline,
        verify,
        None if dump_dir is None else os.fspath(dump_dir),
        cache,
        cpu,
        tpu,
        autograph,
    )

    def wrap(f: Callable[..., Any]) -> JitFunction:
        return JitFunction(f, options, static_argnums, static_argnames)

    return wrap if fn is None else wrap(fn)


class JitFunction:
    def __init__(
        self,
        fn: Callable[..., Any],
        options: JitOptions,
        static_argnums: int | Sequence[int] = (),
        static_argnames: str | Sequence[str] = (),
    ) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name: str = getattr(fn, "__name__", "function")
        self.options = options
        self.signature = inspect.signature(fn)
        params = list(self.signature.parameters.values())
        nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        self.static = set(names) | {params[i].name for i in nums if i < len(params)}
        unknown = self.static - {p.name for p in params}
        if unknown:
            raise TesselError(f"static_argnames {sorted(unknown)} are not parameters of {fn}")
        self._simple = not self.static and all(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params
        )
        self._arity = len(params)
        self._fast: dict[Any, Callable[[Sequence[np.ndarray]], Any]] = {}
        self._entries: dict[Signature, Entry] = {}
        self._lock = threading.RLock()
        self._hits = 0
        self._misses = 0
        self._explanations: list[str] = []
        self._traced_fn: Callable[..., Any] | None = None  # fn as traced: see _tracing_fn
        self._natives: list[
            native_dispatch.NativeCall
        ] = []  # every native dispatcher made (for cache_info)

    # --- calling ---
    def dispatch(self, *args: Any, **kwargs: Any) -> Any:
        """A call on the Python path (what `f(...)` is, until compiled/native_dispatch.py gives
        the function a native `__call__` that comes here with whatever it does not serve)."""
        if not kwargs:
            # The short path: plain arrays whose types were seen before. The key holds all
            # that the compiled code assumes: exact ndarray, shape, dtype (byte order
            # included: a dtype's number is the same for '<f4' and '>f4'), C order, alignment.
            try:
                if len(args) == 1:
                    a = args[0]
                    key: Any = (a.shape, a.dtype, a.flags.num & _BEHAVED, type(a))
                elif len(args) == 2:
                    a, b = args
                    key = (a.shape, a.dtype, a.flags.num & _BEHAVED, type(a),
                           b.shape, b.dtype, b.flags.num & _BEHAVED, type(b))  # fmt: skip
                else:
                    key = tuple([(a.shape, a.dtype, a.flags.num & _BEHAVED, type(a)) for a in args])
            except AttributeError:  # a Python scalar, a container or a tracer
                key = None
            fast = self._fast.get(key)
            if fast is not None:
                self._hits += 1
                return fast(args)
        try:
            return self._call(args, kwargs)
        except TesselError as e:
            raise e.with_traceback(None) from None  # the user's frame, not tessel's internals

    __call__ = dispatch

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        bound = self._bind(args, kwargs)
        leaves, names, treedef = self._flatten(bound)
        if any(isinstance(v, Tracer) for v in leaves):
            return self._tracing_fn()(*args, **kwargs)  # called while tracing: inline
        sig = self._signature(bound, leaves, names, treedef)
        entry = self._entries.get(sig)
        fresh = entry is None
        if entry is None:
            entry = self._compile(sig, bound, names)
        else:
            self._hits += 1
        arrays = [
            _as_input(v, spec, n) for v, spec, n in zip(leaves, sig.leaves, names, strict=True)
        ]
        # A native dispatcher costs about 10 ms to build: a signature gets one when it is
        # called again, so that a first call takes no longer than it did without them.
        native = entry.fast is not entry and self._natively_servable(args, kwargs, leaves)
        if self._fast_path_applies(args, kwargs, leaves):
            keys = [(a.shape, a.dtype, _BEHAVED, np.ndarray) for a in args]
            key = sum(keys, ()) if len(keys) <= 2 else tuple(keys)  # as built in __call__
            self._fast[key] = self._on_repeat(entry, key) if native and fresh else entry.fast
        if native and not fresh:
            self._serve_natively(entry, args)
        trees = [v for n, v in bound.arguments.items() if n not in self.static]
        return entry(arrays, leaves, trees)

    def _on_repeat(self, entry: Entry, key: Any) -> Callable[[Sequence[np.ndarray]], Any]:
        """The short path's function for `key` until its first call, which makes `entry`
        served natively and leaves `entry.fast` in its place."""

        def repeated(arrays: Sequence[np.ndarray]) -> Any:
            self._fast[key] = entry.fast
            self._serve_natively(entry, tuple(arrays))
            return entry.fast(arrays)

        return repeated

    def _serve_natively(self, entry: Entry, args: tuple[Any, ...]) -> None:
        """Make `entry` the signature that `f(...)` runs in machine code (native_dispatch)."""
        with self._lock:
            if not entry.native_tried and native_dispatch.enabled():
                entry.native = native_dispatch.native_call(
                    self.name, entry.executable.native, args, self.dispatch
                )
                self._natives += [entry.native] if entry.native else []
            entry.native_tried = True
            if entry.native is None:
                return
            cls = type(self)
            if cls is JitFunction:  # a class of its own, whose __call__ can be replaced
                cls = type("JitFunction", (JitFunction,), {"__module__": __name__})
                self.__class__ = cls
            cls.__call__ = staticmethod(entry.native.function)  # type: ignore[method-assign]

    def _natively_servable(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], leaves: list[Any]
    ) -> bool:
        """Positional arguments, one per parameter: plain arrays and Python numbers."""
        return self._positional(args, kwargs, leaves) and all(
            type(a) in _NATIVE_NUMBERS or _plain_array(a) for a in args
        )

    def _fast_path_applies(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], leaves: list[Any]
    ) -> bool:
        """Plain positional arrays, one per parameter: the call's key is just their types."""
        return self._positional(args, kwargs, leaves) and all(map(_plain_array, args))

    def _positional(self, args: tuple[Any, ...], kwargs: dict[str, Any], leaves: list[Any]) -> bool:
        return self._simple and not kwargs and len(args) == self._arity == len(leaves)

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TesselError(f"{self.name}(): {e}", user_location()) from None
        return bound  # parameters left out keep their Python defaults: those are not traced

    def _flatten(
        self, bound: inspect.BoundArguments
    ) -> tuple[list[Any], list[str], tuple[pytree.TreeDef, ...]]:
        leaves: list[Any] = []
        names: list[str] = []
        trees = []
        for name, value in bound.arguments.items():
            if name in self.static:
                continue
            vs, tree = pytree.flatten(value)
            leaves += vs
            names += pytree.leaf_paths(tree, name)
            trees.append(tree)
        return leaves, names, tuple(trees)

    def _signature(
        self,
        bound: inspect.BoundArguments,
        leaves: list[Any],
        names: list[str],
        treedef: tuple[pytree.TreeDef, ...],
    ) -> Signature:
        specs = tuple(_leaf_spec(v, n) for v, n in zip(leaves, names, strict=True))
        statics = []
        for name in sorted(self.static):
            value = bound.arguments.get(name)
            try:
                hash(value)
            except TypeError:
                raise TesselError(
                    f"static argument '{name}' must be hashable, got {type(value).__name__}: "
                    "use a tuple instead of a list, or a frozen dataclass",
                    user_location(),
                ) from None
            statics.append((name, value))
        return Signature(treedef, specs, tuple(statics), self.options.environment(), tuple(names))

    # --- compiling ---
    def _compile(self, sig: Signature, bound: inspect.BoundArguments, names: list[str]) -> Entry:
        with self._lock:  # concurrent first calls compile once; the others find the entry
            entry = self._entries.get(sig)
            if entry is not None:
                self._hits += 1
                return entry
            reason = self._reason(sig)
            if _no_recompile.get():
                raise RecompileError(
                    f"{self.name} would compile inside no_recompile(): {reason}",
                    user_location(),
                )
            started = time.perf_counter()
            lowered = self._trace(sig, bound, names)
            entry = lowered.compile_entry(self.options, len(self._entries))
            self._entries[sig] = entry
            self._misses += 1
            elapsed = (time.perf_counter() - started) * 1e3
            done = "compiled {}" if entry.optimized is not None else "loaded {} from the disk cache"
            message = f"{done.format(self.name)} in {elapsed:.0f} ms ({reason})"
            if lowered.written:
                targets = ", ".join(f"'{sig.names[i]}'" for i in lowered.written)
                message += f"; it writes to argument(s) {targets}"
            if lowered.rebound:
                entries = ", ".join(sig.names[i] for i, _, _ in lowered.rebound)
                message += f"; it replaces {entries} in its container arguments"
            self._explanations.append(message)
            if os.environ.get("TESSEL_LOG_COMPILES", "") not in ("", "0"):
                log.warning("tessel: %s", message)
            return entry

    def _trace(self, sig: Signature, bound: inspect.BoundArguments, names: list[str]) -> Lowered:
        trace = Trace(_identifier(self.name))
        used: set[str] = set()
        tracers = [
            trace.param(
                _unique(_identifier(n), used), spec.dtype, spec.shape, spec.kind == "scalar"
            )
            for n, spec in zip(names, sig.leaves, strict=True)
        ]
        for tracer, spec in zip(tracers, sig.leaves, strict=True):
            tracer.mutable = spec.kind == "array"
        it = iter(tracers)
        args = dict(bound.arguments)
        for name, value in bound.arguments.items():
            if name not in self.static:
                _, tree = pytree.flatten(value)
                args[name] = pytree.unflatten(tree, [next(it) for _ in range(tree.num_leaves)])
        traced = {name: args[name] for name in bound.arguments if name not in self.static}
        slots = [pytree.leaf_slots(a) for a in traced.values()]
        call = inspect.BoundArguments(self.signature, args)
        with trace.active(), traced_constructors():
            try:
                result = self._tracing_fn()(*call.args, **call.kwargs)
            except ValueError as e:
                raise _numpy_refusal(e) from None
            outs, out_tree = pytree.flatten(result)
            nodes = [_result_node(trace, v, i) for i, v in enumerate(outs)]
            # NumPy leaves an argument the function wrote holding its last value: the compiled
            # code returns that value too, and the call copies it into the caller's array.
            written = tuple(i for i, t in enumerate(tracers) if t.version)
            nodes += [tracers[i].node for i in written]
            rebound = self._rebound(traced, slots, sig, tracers)
            for _, how, value in rebound:
                if how == "result":
                    nodes.append(_result_node(trace, value, len(nodes)))
            rebound = tuple((i, how, None if how == "result" else v) for i, how, v in rebound)
        returned = tuple(
            (k, i) for k, v in enumerate(outs) for i in written if v is tracers[i]
        )  # `return x` after writing x gives the caller's own array back, as NumPy does
        fn = trace.builder.build(nodes)
        return Lowered(Module((fn,), fn.name), out_tree, sig, self.name, written, returned, rebound)

    def _tracing_fn(self) -> Callable[..., Any]:
        """`fn` with its loops and branches on traced values converted to loop ops, once."""
        if self._traced_fn is None:
            fn, convert = self.fn, self.options.autograph
            self._traced_fn = convert_control_flow(fn) if convert else fn
        return self._traced_fn

    def _rebound(
        self,
        traced: dict[str, Any],
        slots: list[list[tuple[Any, Any]]],
        sig: Signature,
        tracers: list[Tracer],
    ) -> tuple[tuple[int, str, Any], ...]:
        """The entries of container arguments the function replaced (`params['w'] = ...`):
        (leaf, how, what), where `how` is "leaf" (an argument's array, `what` its leaf index),
        "result" (a traced value, `what` the tracer) or "value" (a Python object).
        A changed structure (an entry added or removed) cannot be mirrored: an error."""
        rebound: list[tuple[int, str, Any]] = []
        first = 0
        for (name, arg), tree, before in zip(traced.items(), sig.treedef, slots, strict=True):
            leaves, after = pytree.flatten(arg)
            now = pytree.leaf_slots(arg)
            if after != tree or [id(c) for c, _ in now] != [id(c) for c, _ in before]:
                code = self.fn.__code__
                line = linecache.getline(code.co_filename, code.co_firstlineno) or None
                raise TraceError(
                    f"{self.name}() changed the structure of its argument '{name}' (an entry "
                    "added, removed or replaced "
                    "by another container); the compiled function can replace entries of a "
                    "dict or list argument but not change its shape: return the new container",
                    Loc(code.co_filename, code.co_firstlineno, 1, line),
                )
            for k, leaf in enumerate(leaves):
                i = first + k
                if leaf is tracers[i]:
                    continue
                j = next((j for j, t in enumerate(tracers) if t is leaf), None)
                if j is not None:  # another argument's array: the caller's own object
                    rebound.append((i, "leaf", j))
                else:
                    rebound.append((i, "result" if isinstance(leaf, Tracer) else "value", leaf))
            first += len(leaves)
        return tuple(rebound)

    def _reason(self, sig: Signature) -> str:
        if not self._entries:
            return "first call"
        return "; ".join(_differences(list(self._entries), sig))

    # --- introspection ---
    def lower(self, *args: Any, **kwargs: Any) -> Lowered:
        bound = self._bind(args, kwargs)
        leaves, names, treedef = self._flatten(bound)
        return self._trace(self._signature(bound, leaves, names, treedef), bound, names)

    def compile(self, *args: Any, **kwargs: Any) -> Compiled:
        bound = self._bind(args, kwargs)
        leaves, names, treedef = self._flatten(bound)
        sig = self._signature(bound, leaves, names, treedef)
        entry = self._entries.get(sig) or self._compile(sig, bound, names)
        return Compiled(entry)

    def cache_info(self) -> CacheInfo:
        hits = self._hits + sum(n.hits for n in self._natives)
        return CacheInfo(hits, self._misses, None, len(self._entries))

    def cache_clear(self) -> None:
        with self._lock:
            if type(self) is not JitFunction:
                type(self).__call__ = JitFunction.dispatch  # type: ignore[method-assign]
            self._entries.clear()
            self._fast.clear()

    def tpu_report(self) -> str:
        """target="tpu": the simulated chip's report of the most recent call."""
        runs = [
            e.executable.native
            for e in self._entries.values()
            if e.executable.report is not None and e.executable.native.last.results
        ]
        if not runs:
            raise TesselError(f"{self.name}: no TPU run yet (target={self.options.target!r})")
        latest: Any = max(runs, key=lambda exe: exe.last.when)
        return str(latest.report())

    @property
    def explanations(self) -> list[str]:
        """One line per compile so far: compiled or loaded from the disk cache, how long it
        took, and why (the first call, or what changed since the signatures before)."""
        return list(self._explanations)

    def explain(self, file: TextIO | None = None) -> None:
        """Print `explanations` (to stdout by default), or that there has been no compile."""
        text = "\n".join(self._explanations) or f"{self.name} has not compiled yet"
        print(text, file=file or sys.stdout)

    def __repr__(self) -> str:
        return f"<tessel.jit {self.name} target={self.options.target}>"

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        return self if obj is None else functools.partial(self, obj)


@dataclass
class Lowered:
    """The traced graph IR of one signature, before any pass (`f.lower(*args)`)."""

    module: Module
    out_tree: pytree.TreeDef
    signature: Signature
    name: str
    written: tuple[int, ...] = ()  # argument leaves the function writes (x += 1, x[0] = 2)
    returned: tuple[tuple[int, int], ...] = ()  # (result, leaf): `return x` of a written x
    # container entries the function replaced: (leaf, "leaf" | "result" | "value", what)
    rebound: tuple[tuple[int, str, Any], ...] = ()
    _weights: dict[str, Any] = field(default_factory=dict)

    def as_text(self) -> str:
        return self.describe_results() + print_module(self.module)

    def describe_results(self) -> str:
        """Comment lines naming the results that are not the function's own: the final values
        of the arguments it writes, and the new entries of its container arguments."""
        count = len(self.module.functions[0].results)
        first = count - len(self.written) - _results(self.rebound)
        names = self.signature.names
        lines = []
        if self.written:
            which = ", ".join(f"{first + k}: '{names[i]}'" for k, i in enumerate(self.written))
            lines.append(f"# results written back into the arguments (in place): {which}\n")
        replaced = [i for i, how, _ in self.rebound if how == "result"]
        if replaced:
            start = first + len(self.written)
            which = ", ".join(f"{start + k}: {names[i]}" for k, i in enumerate(replaced))
            lines.append(f"# results stored into the container arguments: {which}\n")
        return "".join(lines)

    def compile(self) -> Compiled:
        return Compiled(self.compile_entry(JitOptions(), 0))

    def compile_entry(self, options: JitOptions, index: int) -> Entry:
        disk = target(options.target).disk_cache
        cached = diskcache.lookup(self.module, options) if disk else None
        if cached is not None:
            return self._entry(cached, None, options)
        popts = PipelineOptions(
            target=options.target,
            pipeline=options.pipeline,
            verify_each=options.verify,
            dump_dir=None if options.dump_dir is None else Path(options.dump_dir),
            name=_identifier(self.name) + (f".{index}" if index else ""),
            tpu=options.tpu,
            cpu=options.cpu,
        )
        optimized, ctx = optimize(self.module, popts)
        exe = prepare(
            options.target,
            optimized,
            None,
            TargetOptions(cpu=options.cpu, tpu=options.tpu),
            ctx.analyses,
        )
        if disk:
            diskcache.store(self.module, options, exe)
        return self._entry(exe, optimized, options)

    def _entry(self, exe: Executable, optimized: Module | None, options: JitOptions) -> Entry:
        run_unchecked = getattr(exe, "run_unchecked", None)
        return Entry(self.signature, exe, self.out_tree, optimized, self, run_unchecked or exe.run)


@dataclass
class Compiled:
    """The executable of one signature (`f.compile(*args)`): optimized IR, LLVM IR, assembly."""

    entry: Entry

    def as_text(self) -> str:
        if self.entry.optimized is None:
            raise TesselError(_FROM_CACHE)
        return self.entry.lowered.describe_results() + print_module(self.entry.optimized)

    def _artifact(self, kind: str) -> str:
        artifacts = self.entry.executable.artifacts()
        if kind in artifacts:
            return artifacts[kind]
        if self.entry.executable.native is not None:
            raise TesselError(_FROM_CACHE)
        raise TesselError("the interpreter target generates no code; use target='cpu'")

    def as_llvm(self, optimized: bool = False) -> str:
        return self._artifact("opt.ll" if optimized else "ll")

    def as_asm(self) -> str:
        return self._artifact("s")

    def __call__(self, *leaves: np.ndarray) -> Any:
        sig = self.entry.signature
        arrays = [
            _as_input(v, spec, f"argument {i}")
            for i, (v, spec) in enumerate(zip(leaves, sig.leaves, strict=True))
        ]
        return self.entry(arrays, leaves)


# --- helpers ------------------------------------------------------------------------------

_FROM_CACHE = (
    "this code was loaded from the on-disk cache, which keeps machine code only; compile "
    "with jit(..., cache=False) to see its optimized IR, LLVM IR and assembly"
)


def _leaf_spec(value: Any, name: str) -> LeafSpec:
    if isinstance(value, np.ndarray | np.generic):
        kind = "array" if isinstance(value, np.ndarray) else "numpy-scalar"
        try:
            return LeafSpec(kind, DType.from_numpy(value.dtype), tuple(value.shape))
        except ValueError:
            if not value.dtype.isnative:
                raise TesselError(
                    f"argument '{name}' has dtype {value.dtype.str}, the other byte order "
                    f"than this machine's; convert it with .astype({value.dtype.name!r})",
                    user_location(),
                ) from None
            raise TesselError(
                f"argument '{name}' has dtype {value.dtype}, which tessel does not support "
                f"(supported: {', '.join(str(t.np) for t in DType)})",
                user_location(),
            ) from None
    if type(value) in _PY_SCALARS:
        return LeafSpec("scalar", _PY_SCALARS[type(value)])
    raise TesselError(
        f"argument '{name}' is a {type(value).__name__}, which cannot be traced: pass a NumPy "
        f"array, a Python number, or a tuple/list/dict of those; or mark it static "
        f"(static_argnames=('{name.split('[')[0]}',)) if it configures the function",
        user_location(),
    )


def _as_input(value: Any, spec: LeafSpec, name: str) -> np.ndarray:
    if spec.kind == "scalar":
        if type(value) not in _PY_SCALARS:
            raise TesselError(
                f"argument '{name}' was traced as a Python number, got {type(value).__name__}"
            )
        return np.array(value, dtype=spec.dtype.np)
    arr = np.asarray(value)
    if arr.dtype != spec.dtype.np or arr.shape != spec.shape:
        raise TesselError(
            f"argument '{name}' has type {_leaf_spec(arr, name)}, but this executable was "
            f"compiled for {spec}"
        )
    return arr if arr.flags.num & _BEHAVED == _BEHAVED else arr.copy(order="C")


_STORE_REFUSED = "setting an array element with a sequence."


def _numpy_refusal(error: ValueError) -> Exception:
    """NumPy's own error where NumPy met a traced value it cannot hold (a traced number stored
    into an element of an array the function made with np.zeros), as a TraceError at the user's
    line; any other ValueError (the user's own) as it was."""
    if str(error) != _STORE_REFUSED or error.__traceback__ is None:
        return error
    tb = error.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    if code.co_code[tb.tb_lasti] != dis.opmap["STORE_SUBSCR"]:
        return error  # not `array[index] = value` failing (a raise statement, a library)
    loc = user_location(tb.tb_frame)
    if loc is None or loc.file != code.co_filename:
        return error
    return TraceError(
        "a traced value cannot be stored into a NumPy array: this array is NumPy's (made by "
        "a.copy(), np.array, or a constructor imported by name), and setting its elements "
        "needs concrete numbers (NumPy: 'setting an array element with a sequence'); make it "
        "with np.zeros/np.empty/np.full called through np (tessel traces those), "
        "np.zeros_like(x), or compute it whole (np.stack, np.concatenate, np.where)",
        loc,
    )


def _result_node(trace: Trace, value: Any, index: int) -> Any:
    if isinstance(value, Selection):
        raise TraceError(
            f"result {index} is x[mask], the elements a boolean mask selects: its length "
            "depends on the data, so it cannot be a result under @jit; return "
            "np.where(mask, x, 0), or a reduction of it (x[mask].sum())",
            value.loc,
        )
    if isinstance(value, Tracer):
        if value.trace is not trace:
            raise TraceError("the function returned a traced value from another trace")
        return value.node
    if isinstance(value, np.ndarray | np.generic | bool | int | float | complex):
        return lift(value).node  # a constant result
    raise TraceError(
        f"result {index} is a {type(value).__name__}; a jitted function returns arrays, "
        "numbers, or tuples/lists/dicts of those"
    )


def _differences(previous: list[Signature], new: Signature) -> list[str]:
    """What changed, against the earlier signature that differs least."""
    best: list[str] | None = None
    for old in previous:
        diffs = _compare_signatures(old, new)
        if best is None or len(diffs) < len(best):
            best = diffs
    return best or ["no visible difference"]


def _compare_signatures(old: Signature, new: Signature) -> list[str]:
    out: list[str] = []
    if old.treedef != new.treedef:
        out.append(
            "the arguments' structure changed: "
            + ", ".join(map(str, old.treedef))
            + " -> "
            + ", ".join(map(str, new.treedef))
        )
    else:
        for i, (a, b) in enumerate(zip(old.leaves, new.leaves, strict=True)):
            if a != b:
                what = "shape" if a.dtype == b.dtype and a.kind == b.kind else "type"
                out.append(f"argument '{new.names[i]}' changed {what}: {a} -> {b}")
    for (name, a), (_, b) in zip(old.statics, new.statics, strict=True):
        if a != b:
            out.append(f"static argument '{name}' changed: {a!r} -> {b!r}")
    for (name, a), (_, b) in zip(old.environment, new.environment, strict=True):
        if a != b:
            out.append(f"option {name} changed: {a!r} -> {b!r}")
    return out


def _identifier(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "arg"
    return name if not name[0].isdigit() else f"_{name}"


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 1
    while candidate in used:
        candidate, n = f"{name}_{n}", n + 1
    used.add(candidate)
    return candidate
