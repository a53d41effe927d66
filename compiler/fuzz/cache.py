"""The cache-corruption campaign: damaged files under $TESSEL_CACHE_DIR must cost a compile,
never a wrong answer, an exception or a crash.

The worker fills a pristine cache once (TESSEL_CACHE_DIR pointing at it): the @jit disk cache
(entries/*.json, objects/*.o, compiler/diskcache.py) and the GEMM library cache
(lib/gemm-*.json and .o, codegen/gemm_lib.py). A case copies it, damages one to three of its
files (bytes, JSON documents, missing files, folders in their place, another file's contents),
points TESSEL_CACHE_DIR at the copy and calls a fresh `@jit` function twice: both answers must
be NumPy's. Warnings (CacheWarning) are allowed: they are how a bad entry is reported.

A new process is what normally meets a damaged cache. Within the worker the same code paths
run again because each case uses a new @jit function (its disk-cache lookup) and clears
`gemm_lib.library_object`'s per-process memo (the library's disk lookup); both are reset after
the case, so other cases never see the damaged copies.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from compiler.fuzz import damage, programs
from compiler.fuzz.draw import Draw
from compiler.fuzz.kind import Budget, Case, Fuzzer, Rerun, same_failure
from compiler.fuzz.outcome import Outcome
from compiler.fuzz.shrink import Trial, shrink_list

PATTERNS = ("entries/*.json", "objects/*.o", "lib/gemm-*.json", "lib/gemm-*.o")
DAMAGE = {
    ".json": (*damage.JSON_DAMAGE, "swap"),
    ".o": (*damage.BYTES_DAMAGE, "missing", "directory", "swap"),
}


class CacheFuzzer(Fuzzer):
    kind = "cache"
    timeout = 180.0

    def generate(self, rng: np.random.Generator) -> Case:
        d = Draw(rng)
        damages = []
        for _ in range(d.integer(1, 3)):
            pattern = d.pick(PATTERNS)
            how = d.pick(DAMAGE[Path(pattern).suffix])
            # each damage has its own seed: dropping one while minimizing leaves the others as
            # they were
            damages.append(
                {
                    "pattern": pattern,
                    "pick": d.integer(0, 99),
                    "how": how,
                    "seed": d.integer(0, 2**31 - 1),
                }
            )
        return {
            "program": d.pick(sorted(programs.JIT_PROGRAMS)),
            "damage": damages,
            "seed": d.integer(0, 2**31 - 1),
        }

    def minimize(self, case: Case, outcome: Outcome, rerun: Rerun, budget: Budget) -> Case:
        """The fewest damaged files that still give the failure."""

        def test(items: list[dict[str, Any]]) -> bool:
            return bool(items) and same_failure(outcome, rerun({**case, "damage": items}))

        return {**case, "damage": shrink_list(list(case["damage"]), Trial(budget, test))}

    def save(self, case: Case, outcome: Outcome, folder: Path) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        damaged = "; ".join(f"{d['pattern']} #{d['pick']}: {d['how']}" for d in case["damage"])
        return [f"# fills a cache, damages it ({damaged}), calls @jit {case['program']} twice"]


# --- the worker side ----------------------------------------------------------------------


class _CacheDir:
    """TESSEL_CACHE_DIR set to `path`, with the in-process GEMM library memo cleared on entry
    and on exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.before: str | None = None

    def __enter__(self) -> _CacheDir:
        from codegen import gemm_lib

        self.before = os.environ.get("TESSEL_CACHE_DIR")
        os.environ["TESSEL_CACHE_DIR"] = str(self.path)
        gemm_lib.library_object.cache_clear()
        return self

    def __exit__(self, *exc: Any) -> None:
        from codegen import gemm_lib

        if self.before is None:
            os.environ.pop("TESSEL_CACHE_DIR", None)
        else:
            os.environ["TESSEL_CACHE_DIR"] = self.before
        gemm_lib.library_object.cache_clear()


def _pristine(ctx: Any) -> tuple[Path, dict[str, list[str]]]:
    """A cache holding every program's entry and the GEMM library, filled once per worker,
    and its files per pattern in the order the programs made them. Cases pick files by that
    order: the names are hashes of tessel's sources, so sorting them would make a case damage
    another program's files after any edit."""
    from compiler import jit

    folder: Path = ctx.scratch / "cache-pristine"
    if ctx.state.get("cache", (None,))[0] != folder:
        shutil.rmtree(folder, ignore_errors=True)
        order: dict[str, list[str]] = {p: [] for p in PATTERNS}
        with _CacheDir(folder):
            for name, (fn, _) in sorted(programs.JIT_PROGRAMS.items()):
                jit(fn)(*programs.good_args(name, np.random.default_rng(0)))
                for pattern, seen in order.items():
                    new = sorted(str(f.relative_to(folder)) for f in folder.glob(pattern))
                    seen += [f for f in new if f not in seen]
        missing = [p for p, files in order.items() if not files]
        if missing:
            raise RuntimeError(f"the pristine cache has no {', '.join(missing)}")
        ctx.state["cache"] = (folder, order)
    result: tuple[Path, dict[str, list[str]]] = ctx.state["cache"]
    return result


def _json(path: Path) -> Any:
    """The file's JSON document, None if an earlier damage left it unreadable (the damage
    then falls back to bytes)."""
    try:
        return json.loads(path.read_bytes())
    except ValueError:
        return None


def _apply(root: Path, order: dict[str, list[str]], item: dict[str, Any]) -> str:
    rng = np.random.default_rng(item["seed"])
    files = order[item["pattern"]]
    path = root / files[item["pick"] % len(files)]
    if not path.is_file():  # an earlier item of the case removed it or put a folder there
        return f"{path.relative_to(root)}: already replaced"
    how = item["how"]
    what = f"{path.relative_to(root)}: {how}"
    if how == "swap":  # another file of the same kind in its place
        same_kind = [root / f for files in order.values() for f in files]
        others = [f for f in same_kind if f.suffix == path.suffix and f != path and f.is_file()]
        if others:
            damage.replace_file(path, others[int(rng.integers(0, len(others)))].read_bytes())
        return what
    special = damage.special_file(how)
    if special != "bytes":
        damage.replace_file(path, special)  # type: ignore[arg-type]
    elif path.suffix == ".json" and how.startswith("json-") and _json(path) is not None:
        data, change = damage.json_bytes(_json(path), how, rng)
        path.write_bytes(data)
        what += f" ({change})"
    else:
        path.write_bytes(damage.damage_bytes(path.read_bytes(), how, rng))
    return what


def execute(case: Case, ctx: Any) -> Outcome:
    import warnings

    from compiler import jit
    from compiler.fuzz.inputs_jit import compare_answer

    ctx.progress("fill")
    pristine, order = _pristine(ctx)
    folder = Path(tempfile.mkdtemp(prefix="cache-", dir=ctx.scratch)) / "cache"
    try:
        ctx.progress("damage")
        shutil.copytree(pristine, folder)
        done = [_apply(folder, order, item) for item in case["damage"]]
        key = "; ".join(f"{i['pattern']}: {i['how']}" for i in case["damage"])
        fn = programs.JIT_PROGRAMS[case["program"]][0]
        args = programs.good_args(case["program"], np.random.default_rng(case["seed"]))
        expected = fn(*args)
        with _CacheDir(folder), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # CacheWarning is the expected report
            jitted = jit(fn)
            for stage in ("call", "call-again"):
                ctx.progress(stage)
                bad = compare_answer(expected, jitted(*args), stage, key)
                if bad is not None:
                    bad.detail += f" (damage: {'; '.join(done)})"
                    return bad
        return Outcome("ok", "call-again", "; ".join(done))
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)
