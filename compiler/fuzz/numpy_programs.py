"""Random NumPy functions that update arrays in place, run by NumPy and under @jit.

A case is the source of a function `f(a, b, s)`: a few statements drawn from what in-place
NumPy code does (assignment through basic indices and boolean masks, augmented operators on
arrays and on views of them, aliases, `out=`, `np.copyto`, `fill`, arrays made with
np.zeros) and a return of a few values. The worker runs it on copies of the same arguments in
NumPy and compiled for the interpreter and the CPU. The contract (docs/jit.md): the compiled
call gives NumPy's results and leaves the arguments as NumPy leaves them, or raises a located
`TesselError`; where NumPy raises, tessel must raise too. A generated statement may well be
invalid in NumPy (a shape that does not broadcast): that case then checks the refusal.
"""

from __future__ import annotations

import linecache
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from compiler.fuzz.draw import Draw
from compiler.fuzz.kind import Budget, Case, Fuzzer, Rerun, same_failure
from compiler.fuzz.outcome import Outcome, from_exception
from compiler.fuzz.shrink import Trial, shrink_list

DTYPES = ("float32", "float64", "int32")
TARGETS = ("interp", "cpu")
# NumPy errors that depend on a value, not on the program: the compiled code, which cannot see
# values while tracing, stores the defined conversion instead (docs/jit.md, "Types")
_VALUE_ERRORS = re.compile(r"cannot convert float (NaN|infinity) to integer")
OPS = {"float": ("+", "-", "*", "/"), "int": ("+", "-", "*", "//", "%")}


class _Writer:
    """Draws statements over the arrays in scope, tracking each one's shape."""

    def __init__(self, d: Draw, shape: tuple[int, ...], kind: str) -> None:
        self.d = d
        self.kind = kind
        self.arrays: dict[str, tuple[int, ...]] = {"a": shape, "b": shape}
        self.lines: list[str] = []
        self.views = 0

    def index(self, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
        d, items = self.d, []
        for n in shape:
            choice = d.integer(0, 5)
            if choice == 0 and n:
                items.append(str(d.integer(-n, n - 1)))
            elif choice == 1:
                lo, hi = d.integer(-n - 1, n + 1), d.integer(-n - 1, n + 1)
                items.append(f"{lo}:{hi}:{d.pick([1, 2, 3, -1, -2])}")
            elif choice == 2:
                items.append(f"{d.integer(0, max(n, 1))}:")
            else:
                items.append(":")
        if items and d.flag(0.15):
            items = ["...", *items[d.integer(1, len(items)) :]]
        text = ", ".join(items) or "..."
        try:
            result = np.empty(shape)[eval(f"np.s_[{text}]")].shape  # the text drawn above
        except IndexError:
            result = ()
        return text, result

    def value(self, shape: tuple[int, ...]) -> str:
        d = self.d
        choice = d.integer(0, 5)
        if choice == 0:
            return "s"
        if choice == 1:
            number = d.integer(-4, 4)
            return repr(number / 2) if self.kind == "float" else str(number // 2)
        same = [n for n, sh in self.arrays.items() if sh == shape]
        if choice <= 3 and same:
            return f"{d.pick(same)} * {d.integer(-2, 2)}"
        name = d.pick(sorted(self.arrays))
        text, _ = self.index(self.arrays[name])
        return f"{name}[{text}]"  # often the wrong shape: then both must refuse

    def statement(self) -> None:
        d, kind = self.d, self.kind
        name = d.pick(sorted(self.arrays))
        shape = self.arrays[name]
        op = d.pick(OPS[kind])
        choice = d.integer(0, 9)
        if choice <= 2:
            text, sub = self.index(shape)
            eq = "=" if choice == 0 else f"{op}="
            self.lines.append(f"{name}[{text}] {eq} {self.value(sub)}")
        elif choice == 3:
            text, sub = self.index(shape)
            if sub:  # a view, not a scalar
                view = f"v{self.views}"
                self.views += 1
                self.lines.append(f"{view} = {name}[{text}]")
                self.arrays[view] = sub
        elif choice == 4:
            self.lines.append(f"{name} {op}= {self.value(shape)}")
        elif choice == 5:
            threshold = d.integer(-1, 1)
            other = d.pick([n for n, sh in self.arrays.items() if sh == shape])
            rhs = self.value(()) if d.flag() else f"{other}[{other} > {threshold}]"
            eq = d.pick(["=", f"{op}="])
            self.lines.append(f"{name}[{other} > {threshold}] {eq} {rhs}")
        elif choice == 6:
            self.lines.append(
                d.pick(
                    [
                        f"np.copyto({name}, {self.value(shape)})",
                        f"{name}.fill({self.value(())})",
                        f"np.add({name}, {self.value(shape)}, out={name})",
                    ]
                )
            )
        elif choice == 7:
            alias = f"v{self.views}"
            self.views += 1
            made = d.pick([f"np.zeros_like({name})", f"np.zeros({shape}, np.{d.pick(DTYPES)})",
                           name, f"{name}.copy()"])  # fmt: skip
            self.lines.append(f"{alias} = {made}")
            self.arrays[alias] = shape
        else:
            self.lines.append(f"{name} = {name} {op} {self.value(shape)}")  # rebinds only

    def result(self) -> str:
        names = self.d.subset(sorted(self.arrays), 3) or ["a"]
        parts = [f"{n} + 0" if self.d.flag() else f"{n}.sum()" for n in names]
        return f"return ({', '.join(parts)},)"


class NumpyProgramsFuzzer(Fuzzer):
    kind = "numpy"
    timeout = 120.0

    def generate(self, rng: np.random.Generator) -> Case:
        d = Draw(rng)
        dtype = d.pick(DTYPES)
        shape = tuple(d.integer(0, 5) if d.flag(0.1) else d.integer(1, 5)
                      for _ in range(d.integer(1, 3)))  # fmt: skip
        writer = _Writer(d, shape, "int" if dtype.startswith("int") else "float")
        for _ in range(d.integer(1, 8)):
            writer.statement()
        return {
            "dtype": dtype,
            "shape": list(shape),
            "body": writer.lines,
            "result": writer.result(),
            "seed": d.integer(0, 2**31 - 1),
        }

    def minimize(self, case: Case, outcome: Outcome, rerun: Rerun, budget: Budget) -> Case:
        """The fewest statements that still give the failure."""

        def test(lines: list[str]) -> bool:
            return same_failure(outcome, rerun({**case, "body": lines}))

        return {**case, "body": shrink_list(list(case["body"]), Trial(budget, test))}

    def save(self, case: Case, outcome: Outcome, folder: Path) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "case.py").write_text(source(case))
        return [f"# f(a, b, s) with a, b: {case['dtype']}{case['shape']}; see case.py"]


def source(case: Case) -> str:
    body = "".join(f"    {line}\n" for line in case["body"])
    return f"def f(a, b, s):\n{body}    {case['result']}\n"


def _function(case: Case, scratch: Path) -> Any:
    """`f`, compiled from a file so that errors can show the user's line."""
    path = scratch / f"numpy_case_{case['seed']}.py"
    text = source(case)
    path.write_text(text)
    linecache.checkcache(str(path))
    namespace: dict[str, Any] = {"np": np}
    exec(compile(text, str(path), "exec"), namespace)  # the generated case
    return namespace["f"]


def _arguments(case: Case) -> list[Any]:
    rng = np.random.default_rng(case["seed"])
    shape, dtype = tuple(case["shape"]), np.dtype(case["dtype"])
    if dtype.kind == "f":
        a, b = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
        return [a, b, float(rng.integers(-3, 4)) / 2]
    a, b = (rng.integers(-5, 6, shape).astype(dtype) for _ in range(2))
    return [a, b, int(rng.integers(-3, 4))]


def _copies(args: list[Any]) -> list[Any]:
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def _same(got: Any, want: Any) -> bool:
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return False
    if want.dtype.kind != "f":
        return bool(np.array_equal(got, want))
    tol = 1e-4 if want.dtype == np.float32 else 1e-9
    return bool(np.allclose(got, want, rtol=tol, atol=tol, equal_nan=True))


def execute(case: Case, ctx: Any) -> Outcome:
    from compiler import jit  # the worker's side only
    from ir.diagnostics import TesselError

    fn = _function(case, ctx.scratch)
    numpy_args = _copies(_arguments(case))
    with np.errstate(all="warn"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            want: Any = fn(*numpy_args)
        except Exception as e:  # the program's own error: tessel must raise too
            want = e
    if any("invalid value encountered in cast" in str(w.message) for w in caught):
        # a NaN or an out-of-range float made an integer: NumPy gives what the CPU's
        # conversion does, tessel the graph language's defined value (docs/jit.md, "Types")
        return Outcome("ok", "unspecified")
    for target in TARGETS:
        stage = f"jit-{target}"
        ctx.progress(stage)
        ours = _copies(_arguments(case))
        try:
            got = jit(fn, target=target)(*ours)
        except TesselError as e:
            if not isinstance(want, Exception) and e.loc is None:
                return Outcome("wrong", stage, f"an error without a location: {e}")
            continue  # a located refusal (or NumPy refused too)
        except Exception as e:
            if isinstance(want, Exception):
                continue  # the program's own error, passed through
            return from_exception(stage, e)
        bad = _judge(stage, want, got, ours, numpy_args)
        if bad is not None:
            return bad
    return Outcome("rejected" if isinstance(want, Exception) else "ok", "done")


def _judge(
    stage: str, want: Any, got: Any, ours: list[Any], numpy_args: list[Any]
) -> Outcome | None:
    """What is wrong with a compiled call that returned, if anything."""
    if isinstance(want, Exception):
        if _VALUE_ERRORS.search(str(want)):
            return None  # NumPy refused a value, not the program (docs/jit.md)
        return Outcome("wrong", stage, f"NumPy raised {type(want).__name__}: {want}; "
                       "the compiled function returned")  # fmt: skip
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if not _same(g, w):
            return Outcome("wrong", stage, f"result {i}: {g!r} instead of {w!r}",
                           {"key": f"result {i}"})  # fmt: skip
    for name, g, w in zip("ab", ours, numpy_args, strict=False):
        if not _same(g, w):
            return Outcome("wrong", stage, f"argument {name} after the call: {g!r} "
                           f"instead of {w!r}", {"key": f"argument {name}"})  # fmt: skip
    return None
