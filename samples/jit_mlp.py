"""The MLP sample as a plain NumPy function, compiled with @jit.

    python samples/jit_mlp.py            # compile, check against eager NumPy, time both
    python samples/jit_mlp.py --ir       # also print the traced graph IR (a valid graph file)

The function below is ordinary NumPy: it runs as is without tessel. `@jit` traces it once per
input shape into tessel's graph IR, optimizes and compiles it with LLVM, and later calls run the
native code. The weights are a dict argument (a pytree), so new weights do not recompile.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from compiler import jit

WEIGHTS = Path(__file__).resolve().parent / "mlp.npz"


def mlp(x, params):
    h = np.maximum(x @ params["w1"] + params["b1"], 0)
    h = np.maximum(h @ params["w2"] + params["b2"], 0)
    logits = h @ params["w3"] + params["b3"]
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def median_seconds(fn, *args, repeats: int = 20) -> float:
    fn(*args)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ir", action="store_true", help="print the traced graph IR")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()

    with np.load(WEIGHTS) as archive:
        params = {k: archive[k] for k in archive.files}
    x = np.random.default_rng(0).standard_normal((args.batch, 784)).astype(np.float32)

    fast_mlp = jit(mlp)
    start = time.perf_counter()
    probs = fast_mlp(x, params)
    compile_ms = (time.perf_counter() - start) * 1e3
    expected = mlp(x, params)
    error = float(np.abs(probs - expected).max())

    print(f"output {probs.dtype}{list(probs.shape)}, first row sums to {probs[0].sum():.6f}")
    print(f"max |tessel - numpy| = {error:.2e}")
    print(f"first call (trace + compile + run): {compile_ms:.0f} ms")
    numpy_s = median_seconds(mlp, x, params)
    tessel_s = median_seconds(fast_mlp, x, params)
    print(f"median call: numpy {numpy_s * 1e3:.2f} ms, tessel {tessel_s * 1e3:.2f} ms "
          f"(numpy / tessel = {numpy_s / tessel_s:.2f}x)")  # fmt: skip
    fast_mlp.explain()
    if args.ir:
        print(fast_mlp.lower(x, params).as_text())
    return 0 if error < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
