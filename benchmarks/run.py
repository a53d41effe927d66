"""Run the benchmark suite: tessel against NumPy, JAX, ONNX Runtime and Numba, in one process.

    python -m benchmarks                      # full suite, table on stdout, benchmarks/results.json
    python -m benchmarks --quick              # tiny sizes, a few seconds
    python -m benchmarks --only matmul-1024 --threads 1 --repeats 9 --json out.json

Every engine runs with the same number of threads (see `configure_threads`), gets a warm-up
call that is also checked against a float64 NumPy reference, and is timed as the median of
`--repeats` samples. The headline is the ratio peer time / tessel time: above 1.0, tessel is
faster. Rows where tessel runs a NumPy function under `@jit` also show the same computation
through the graph-text path ("jit/graph": @jit time / graph time). This module imports only the
standard library at the top, so the thread settings are in the environment before NumPy,
OpenBLAS or XLA read them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python benchmarks/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results.json"
Cell = dict[str, Any]  # one engine on one workload: status, times, check
ENGINE_ORDER = ("tessel", "numpy", "jax", "ort", "numba")
BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


TPU_SIM = "tpu-sim"  # not an engine comparison: how fast the TPU simulator itself runs


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (smoke test)")
    p.add_argument("--only", action="append", metavar="NAME", help="run only this workload "
                   "(repeatable; a prefix such as 'matmul' selects every size)")  # fmt: skip
    p.add_argument("--threads", type=int, default=available_cores(),
                   help="threads for every engine (default: the available cores)")  # fmt: skip
    p.add_argument("--repeats", type=int, default=None, help="timed samples (default 7, quick 3)")
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                   help="time budget per engine and workload; slow cells take fewer samples "
                   "(default 20, quick 1)")  # fmt: skip
    p.add_argument("--engines", default=",".join(ENGINE_ORDER),
                   help=f"comma-separated subset of {','.join(ENGINE_ORDER)}")  # fmt: skip
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results")
    args = p.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(args.engines) - set(ENGINE_ORDER)
    if unknown or "tessel" not in args.engines:
        p.error(f"--engines must include tessel and be among {', '.join(ENGINE_ORDER)}")
    if args.threads < 1:
        p.error("--threads must be at least 1")
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.budget = args.budget if args.budget is not None else (1.0 if args.quick else 20.0)
    return args


def configure_threads(threads: int) -> dict[str, str]:
    """Make every engine use `threads` threads; returns how, for the JSON record.

    - all: with fewer threads than cores, the process is pinned to that many cores, which
      bounds every pool, including XLA's (it sizes itself from the affinity mask);
    - tessel: TESSEL_NUM_THREADS and CpuExecutable(threads=N);
    - NumPy/OpenBLAS: OMP/OPENBLAS/MKL_NUM_THREADS before NumPy is imported, and threadpoolctl
      when it is installed (it also works if NumPy was imported earlier);
    - JAX: XLA:CPU has no flag for "N intra-op threads"; with 1 thread we also pass
      --xla_cpu_multi_thread_eigen=false, otherwise the affinity mask is the bound;
    - ONNX Runtime: SessionOptions.intra_op_num_threads = N, inter-op 1, sequential.
    """
    how: dict[str, str] = {}
    cores = available_cores()
    if threads < cores and hasattr(os, "sched_setaffinity"):
        keep = sorted(os.sched_getaffinity(0))[:threads]
        os.sched_setaffinity(0, keep)
        how["affinity"] = f"pinned to cpus {keep}"
    os.environ["TESSEL_NUM_THREADS"] = str(threads)
    for var in BLAS_ENV:
        os.environ[var] = str(threads)
    how["numpy"] = f"{'/'.join(BLAS_ENV)}={threads}"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
        how["jax"] = "--xla_cpu_multi_thread_eigen=false"
    else:
        how["jax"] = "bounded by the cpu affinity mask (no per-count XLA flag)"
    how["ort"] = f"intra_op_num_threads={threads}, inter_op_num_threads=1"
    how["tessel"] = f"CpuExecutable(threads={threads})"
    how["numba"] = "njit without parallel=True: one thread (measured on dispatch only)"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
        how["numpy"] += " + threadpoolctl"
    except ImportError:
        pass
    return how


# ---- timing ------------------------------------------------------------------------------------


def measure(
    thunk: Callable[[], Any],
    first: float,
    repeats: int,
    budget: float,
    min_sample: float,
    min_calls: int = 1,
    reset: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Median per-call time over `repeats` samples of `number` calls each (timeit's autorange).

    `first` is the duration of the checked first call. Fast calls are batched so that a sample
    lasts at least `min_sample` seconds and `min_calls` calls; slow ones take fewer samples to
    stay within `budget`. With `reset`, every call is a sample of its own, and `reset` runs
    before it, untimed.
    """

    def once() -> float:
        if reset is not None:
            reset()
        start = time.perf_counter()
        thunk()
        return time.perf_counter() - start

    if first < budget / 4:  # one more warm-up, and a better estimate than the first call
        first = once()
    per_call = max(first, 1e-7)
    number = 1 if reset else max(min_calls, math.ceil(min_sample / per_call))
    samples_n = max(1, min(repeats, int(budget / (per_call * number))))
    samples = []
    for _ in range(samples_n):
        if reset is not None:
            samples.append(once())
            continue
        start = time.perf_counter()
        for _ in range(number):
            thunk()
        samples.append((time.perf_counter() - start) / number)
    return {"median_s": statistics.median(samples), "samples_s": samples, "number": number}


def _short(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".splitlines()[0]
    return text[:200]


def run_cell(engine: Any, w: Any, inputs: Any, ref: Any, args: argparse.Namespace) -> Cell:
    """One engine on one workload: prepare, check, time. Never raises."""
    import numpy as np

    from benchmarks.peers import NotAvailable

    try:
        thunk = engine.prepare(w, inputs)
        reset = getattr(thunk, "reset", None)  # a ColdCall
        if reset is not None:
            reset()
        start = time.perf_counter()
        out = thunk()
        first = time.perf_counter() - start
    except NotAvailable as e:
        return {"status": "n/a", "reason": str(e)}
    except Exception as e:
        return {"status": "error", "reason": _short(e)}
    cell: dict[str, Any] = {"status": "ok", "checked": False}
    if w.returns_result:
        got = np.asarray(out, dtype=np.float64)
        scale = max(1.0, float(np.abs(ref).max()))
        good = got.shape == ref.shape and np.allclose(got, ref, rtol=w.rtol, atol=w.atol * scale)
        cell["checked"] = True
        cell["max_abs_err"] = float(np.abs(got - ref).max()) if got.shape == ref.shape else None
        if not good:
            cell["status"] = "FAIL"
    try:
        min_sample = 0.002 if args.quick else 0.05
        cell |= measure(thunk, first, args.repeats, args.budget, min_sample, w.min_calls, reset)
    except Exception as e:
        return {"status": "error", "reason": _short(e)}
    if w.flops and cell["median_s"] > 0:
        cell["gflops"] = w.flops / cell["median_s"] / 1e9
    return cell


def ratios(cells: dict[str, Cell]) -> dict[str, float | None]:
    """peer time / tessel time per peer: above 1.0 means tessel is faster."""
    base = cells.get("tessel", {})
    out: dict[str, float | None] = {}
    for name, cell in cells.items():
        if name == "tessel":
            continue
        ok = base.get("status") == "ok" and cell.get("status") == "ok"
        out[name] = cell["median_s"] / base["median_s"] if ok and base["median_s"] > 0 else None
    return out


def jit_over_graph(jitted: Cell, graph: Cell) -> float | None:
    """tessel's @jit time / its graph-text time on the same computation: 1.0 means they match."""
    ok = jitted.get("status") == "ok" and graph.get("status") == "ok"
    return jitted["median_s"] / graph["median_s"] if ok and graph["median_s"] > 0 else None


# ---- reporting ---------------------------------------------------------------------------------


def _ms(cell: Cell, unit: str = "ms") -> str:
    """The median in milliseconds; with unit "us", in microseconds and marked so."""
    if cell.get("status") in ("ok", "FAIL") and "median_s" in cell:
        value = cell["median_s"] * (1e6 if unit == "us" else 1e3)
        text = f"{value:.0f}" if value >= 100 else f"{value:.3g}"
        text += "us" if unit == "us" else ""
        return text if cell["status"] == "ok" else f"FAIL {text}"
    return str(cell.get("status", "n/a"))


def table(results: list[dict[str, Any]], engines: Sequence[str], meta: dict[str, Any]) -> str:
    peers = [e for e in engines if e != "tessel"]
    head = ["workload", "check", *(f"{e} ms" for e in engines), *(f"x {p}" for p in peers)]
    twins = any("graph" in r for r in results)
    if twins:
        head += ["graph ms", "jit/graph"]
    rows = [head]
    for r in results:
        cells, unit = r["engines"], r.get("unit", "ms")
        tessel = cells["tessel"]
        check = tessel["status"] if tessel.get("checked") or tessel["status"] != "ok" else "-"
        times = [_ms(cells[e], unit) for e in engines]
        rat = [f"{x:.3g}" if x is not None else "n/a" for x in (r["ratios"][p] for p in peers)]
        row = [r["workload"], check, *times, *rat]
        if twins and "graph" in r:
            x = r["jit_over_graph"]
            row += [_ms(r["graph"], unit), f"{x:.3g}" if x is not None else "n/a"]
        elif twins:
            row += ["", ""]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        f"tessel benchmarks  threads={meta['threads']}  commit={meta['commit']}  {meta['date']}",
        f"CPU: {meta['cpu']}",
        "'x PEER' = PEER time / tessel time (median of repeats): > 1.0 means tessel is faster",
    ]
    if twins:
        lines.append(
            "'graph ms' = tessel through the graph text on @jit rows; 'jit/graph' = @jit time / "
            "graph time (1.0: they match); 'us' = microseconds"
        )
    lines.append("")
    for i, row in enumerate(rows):
        first = row[0].ljust(widths[0])
        rest = [c.rjust(widths[j + 1]) for j, c in enumerate(row[1:])]
        lines.append("  ".join([first, *rest]).rstrip())  # rows without a graph twin
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = sorted(
        {
            f"{e}: {r['engines'][e]['reason']}"
            for r in results
            for e in engines
            if r["engines"][e].get("reason") and r["engines"][e]["status"] != "n/a"
        }
    )
    notes += sorted(
        {
            f"{r['workload']} / {e}: {r['engines'][e]['reason']}"
            for r in results
            for e in engines
            if r["engines"][e]["status"] == "n/a" and e == "tessel"
        }
    )
    return "\n".join(lines + ([""] if notes else []) + [f"note: {n}" for n in notes])


def _cpu_summary() -> str:
    """The processor and what tessel's kernels use of it (ratios depend on both; TESSEL_CPU may
    hold the kernels to a lower level than the host's)."""
    from codegen.cpu_caps import detected_caps, host_caps

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name
            )
    except OSError:
        pass
    used = host_caps()
    level = "" if used == detected_caps() else f"; kernels held to {used.level}"
    return f"{name}: {detected_caps().summary()}{level}"


def git_commit() -> str:
    try:
        proc = subprocess.run(
            ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(HERE.parent), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        return proc.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _progress(w: Any, engine: str, cell: Cell) -> None:
    print(f"  {w.name:<20} {engine:<7} {_ms(cell, w.unit)}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    how = configure_threads(args.threads)

    import numpy as np  # only now: the BLAS thread settings are in the environment

    from benchmarks.peers import ENGINES
    from benchmarks.workloads import suite

    workloads = suite(args.quick)
    with_tpu_sim = not args.only or any(TPU_SIM.startswith(o) for o in args.only)
    if args.only:
        chosen = [w for w in workloads if any(w.name.startswith(o) for o in args.only)]
        if not chosen and not with_tpu_sim:
            known = ", ".join([*(w.name for w in workloads), TPU_SIM])
            print(f"error: no workload matches {args.only}; choose from {known}", file=sys.stderr)
            return 2
        workloads = chosen
    names = [e for e in ENGINE_ORDER if e in args.engines]
    engines = {name: ENGINES[name](args.threads) for name in names}
    graph_engine = ENGINES["tessel-graph"](args.threads)
    meta = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "threads": args.threads,
        "cores": available_cores(),
        "quick": args.quick,
        "repeats": args.repeats,
        "budget_s": args.budget,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": _cpu_summary(),
        "versions": {name: e.version() for name, e in engines.items()},
        "thread_control": how,
        "ratio": "peer median time / tessel median time; > 1.0 means tessel is faster",
    }
    results: list[dict[str, Any]] = []
    for w in workloads:
        inputs = w.inputs(np.random.default_rng(0))
        ref = w.reference(inputs)
        cells: dict[str, Cell] = {}
        graph: Cell | None = None
        for name, engine in engines.items():
            cells[name] = run_cell(engine, w, inputs, ref, args)
            _progress(w, name, cells[name])
            # the graph twin goes right after tessel: a peer's pool can keep spinning after its
            # last call (ONNX Runtime's does), which would slow whatever runs next on few cores
            if name == "tessel" and w.compares_graph:
                graph = run_cell(graph_engine, w, inputs, ref, args)
                _progress(w, "graph", graph)
        result: dict[str, Any] = {
            "workload": w.name,
            "kind": w.kind,
            "description": w.description,
            "params": w.params,
            "flops": w.flops,
            "unit": w.unit,
            "engines": cells,
            "ratios": ratios(cells),
        }
        if graph is not None:
            result["graph"] = graph
            result["jit_over_graph"] = jit_over_graph(cells["tessel"], graph)
        results.append(result)
    print(table(results, names, meta))
    report: dict[str, Any] = {"meta": meta, "results": results}
    if with_tpu_sim:
        from benchmarks import tpu_speed

        report[TPU_SIM] = tpu_speed.run(args.quick)
        print("\n" + tpu_speed.table(report[TPU_SIM]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    failed = any(
        cell["status"] == "FAIL"
        for r in results
        for cell in (r["engines"]["tessel"], r.get("graph", {"status": "ok"}))
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
