"""Bad arguments for `@jit` functions: wrong dtypes, byte order, layouts, shapes, objects.

A case spoils one argument of one program (compiler/fuzz/programs.py) after the function was
compiled for the right arguments, so the short path of a repeated call is exercised as well as
the tracing one. The answer must be a clean `TesselError`, or what eager NumPy computes from the
same arguments (same shape, dtype and values); the arguments must not be modified.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from compiler.fuzz import programs
from compiler.fuzz.outcome import Outcome
from ir.diagnostics import TesselError


class ArrayLike:
    """Not an ndarray, but convertible to one."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.a if dtype is None else self.a.astype(dtype)


class Sub(np.ndarray):
    """An ndarray subclass that changes nothing."""


def _strided(a: np.ndarray) -> np.ndarray:
    big = np.zeros(tuple(2 * d for d in a.shape), a.dtype)
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    return view


def _unaligned(a: np.ndarray) -> np.ndarray:
    buffer = bytearray(a.nbytes + 1)
    out = np.frombuffer(buffer, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    return out


def _readonly(a: np.ndarray) -> np.ndarray:
    out = a.copy()
    out.flags.writeable = False
    return out


def _with_specials(a: np.ndarray) -> np.ndarray:
    out = a.copy()
    if out.dtype.kind == "f":
        specials = np.resize(np.array([np.nan, np.inf, -np.inf, -0.0], out.dtype), out.size)
        out.reshape(-1)[::2] = specials[::2]
    return out


def _first(a: np.ndarray) -> Any:
    return a.reshape(-1)[0] if a.size else np.zeros((), a.dtype)[()]


# variant -> how it changes a well-formed argument
VARIANTS: dict[str, Callable[[np.ndarray], Any]] = {
    "f64": lambda a: a.astype(np.float64),
    "f32": lambda a: a.astype(np.float32),
    "f16": lambda a: a.astype(np.float16),
    "i32": lambda a: a.astype(np.int32),
    "i64": lambda a: a.astype(np.int64),
    "u8": lambda a: a.astype(np.uint8),
    "bool": lambda a: a.astype(bool),
    "complex": lambda a: a.astype(np.complex64),
    "object": lambda a: a.astype(object),
    "str": lambda a: a.astype(str),
    "datetime": lambda a: np.zeros(a.shape, "datetime64[s]"),
    "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "fortran": np.asfortranarray,
    "strided": _strided,
    "negative-strides": lambda a: np.flip(np.flip(a).copy()),
    "unaligned": _unaligned,
    "readonly": _readonly,
    "broadcast-view": lambda a: np.broadcast_to(_first(a), a.shape),
    "extra-dim": lambda a: a[None],
    "missing-dim": lambda a: a[0] if a.ndim else a,
    "zero-size": lambda a: a[:0] if a.ndim else a,
    "transposed": lambda a: np.ascontiguousarray(a.T),
    "scalar-array": lambda a: np.asarray(_first(a)),
    "python-float": lambda a: float(_first(a)),
    "python-int": lambda a: int(_first(a)),
    "python-bool": lambda a: True,
    "none": lambda a: None,
    "string": lambda a: "abc",
    "nested-list": lambda a: a.tolist(),
    "dict": lambda a: {"a": a},
    "array-like": ArrayLike,
    "subclass": lambda a: a.view(Sub),
    "specials": _with_specials,
}


def bad_args(case: dict[str, Any]) -> list[Any]:
    """The program's well-formed arguments with argument `arg` changed by `variant`."""
    args: list[Any] = programs.good_args(case["program"], np.random.default_rng(case["seed"]))
    args[case["arg"]] = VARIANTS[case["variant"]](args[case["arg"]])
    return args


def _compiled(ctx: Any, name: str) -> Any:
    """The worker's @jit function for `name`, already called once with good arguments."""
    from compiler import jit

    functions = ctx.state.setdefault("jit", {})
    if name not in functions:
        fn = jit(programs.JIT_PROGRAMS[name][0])
        fn(*programs.good_args(name, np.random.default_rng(0)))  # compile; install short path
        functions[name] = fn
    return functions[name]


def _snapshot(args: list[Any]) -> list[Any]:
    return [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in args]


def compare_answers(
    expected: Sequence[Any], got: Sequence[Any], stage: str, key: str
) -> Outcome | None:
    """None if every output is NumPy's (as many outputs, each as `compare_answer` says)."""
    if len(got) != len(expected):
        return Outcome(
            "wrong", stage, f"{len(got)} outputs where NumPy gives {len(expected)}", {"key": key}
        )
    for e, g in zip(expected, got, strict=True):
        bad = compare_answer(e, g, stage, key)
        if bad is not None:
            return bad
    return None


def compare_answer(expected: Any, got: Any, stage: str, key: str) -> Outcome | None:
    """None if `got` is NumPy's `expected` (same shape and dtype, close values)."""
    e, g = np.asarray(expected), np.asarray(got)
    if e.shape != g.shape or e.dtype != g.dtype:
        return Outcome(
            "wrong",
            stage,
            f"{g.dtype}{list(g.shape)} where NumPy gives {e.dtype}{list(e.shape)}",
            {"key": key},
        )
    if e.dtype.kind in "biu":
        bad = e != g
    else:
        e64, g64 = e.astype(np.float64), g.astype(np.float64)
        finite = np.abs(e64[np.isfinite(e64)])
        tol = 1e-4 * (1 + float(finite.max(initial=0.0))) if e.dtype != np.float64 else 1e-9
        with np.errstate(invalid="ignore"):
            bad = ~((np.abs(e64 - g64) <= tol) | (e64 == g64) | (np.isnan(e64) & np.isnan(g64)))
    if bad.any():
        where = tuple(int(k) for k in np.argwhere(bad)[0])
        return Outcome(
            "wrong",
            stage,
            f"{int(bad.sum())} of {e.size} elements differ from "
            f"NumPy's; first at {list(where)}: expected {e[where]!r}, got {g[where]!r}",
            {"key": key},
        )
    return None


def execute(case: dict[str, Any], ctx: Any) -> Outcome:
    import warnings

    key = f"jit:{case['variant']}"
    fn = programs.JIT_PROGRAMS[case["program"]][0]
    ctx.progress("compile")
    jitted = _compiled(ctx, case["program"])
    ctx.progress("eager")
    args = bad_args(case)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            expected: Any = fn(*bad_args(case))
    except Exception as e:  # NumPy refuses these arguments too
        expected = e
    before = _snapshot(args)
    for stage in ("jit", "jit-again"):  # the second call may take the short path
        ctx.progress(stage)
        try:
            got = jitted(*args)
        except TesselError as e:
            return Outcome("rejected", stage, e.message, {"key": key})
        except Exception as e:
            if type(e) is type(expected):  # the function's own error, as NumPy raises it
                return Outcome("rejected", stage, f"{type(e).__name__}: {e}", {"key": key})
            raise
        if isinstance(expected, Exception):
            return Outcome(
                "wrong",
                stage,
                f"answered where NumPy raises {type(expected).__name__}: {expected}",
                {"key": key},
            )
        bad = compare_answer(expected, got, stage, key)
        if bad is not None:
            return bad
        for i, (a, b) in enumerate(zip(args, before, strict=True)):
            if b is not None and not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
                return Outcome("wrong", stage, f"argument {i} was modified", {"key": key})
    return Outcome("ok", "jit-again")
