"""Regenerate the weights of the sample graphs: `samples/{mlp,cnn,attention}.npz`.

Every array comes from a fixed seed, so running this again gives the same numbers, and the
archives are written with fixed timestamps, so it gives the same bytes too (no git churn).
Initial scales follow the usual rules so the samples compute something non-degenerate on random
inputs: He (std = sqrt(2 / fan_in)) before a relu, Glorot (std = sqrt(2 / (fan_in + fan_out)))
elsewhere, and small random biases so that a dropped bias shows up in the tests.

    python samples/make_weights.py            # all samples, next to this script
    python samples/make_weights.py mlp cnn    # only some
    python samples/make_weights.py --check    # exit 1 if a committed archive is out of date

Only NumPy is needed; the script does not import tessel.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

Arrays = dict[str, np.ndarray]
HERE = Path(__file__).resolve().parent


def he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)


def glorot(
    rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int
) -> np.ndarray:
    return (rng.standard_normal(shape) * math.sqrt(2.0 / (fan_in + fan_out))).astype(np.float32)


def bias(rng: np.random.Generator, n: int) -> np.ndarray:
    return (0.1 * rng.standard_normal(n)).astype(np.float32)


def mlp() -> Arrays:
    """784 -> 512 -> 512 -> 10; dense weights are [in, out]."""
    rng = np.random.default_rng(784_512_10)
    return {
        "w1": he(rng, (784, 512), 784),
        "b1": bias(rng, 512),
        "w2": he(rng, (512, 512), 512),
        "b2": bias(rng, 512),
        "w3": glorot(rng, (512, 10), 512, 10),
        "b3": bias(rng, 10),
    }


def cnn() -> Arrays:
    """Two 3x3 convolutions (HWIO filters, 1 -> 16 -> 32 channels), then dense 7*7*32 -> 10."""
    rng = np.random.default_rng(28_28_1)
    return {
        "conv1_w": he(rng, (3, 3, 1, 16), 3 * 3 * 1),
        "conv1_b": bias(rng, 16),
        "conv2_w": he(rng, (3, 3, 16, 32), 3 * 3 * 16),
        "conv2_b": bias(rng, 32),
        "dense_w": glorot(rng, (7 * 7 * 32, 10), 7 * 7 * 32, 10),
        "dense_b": bias(rng, 10),
    }


def attention(model: int = 128) -> Arrays:
    """Query, key, value and output projections of one attention block, each [model, model]."""
    rng = np.random.default_rng(64_128_4)
    out: Arrays = {}
    for name in ("q", "k", "v", "o"):
        out[f"w{name}"] = glorot(rng, (model, model), model, model)
        out[f"b{name}"] = bias(rng, model)
    return out


SAMPLES: dict[str, Callable[[], Arrays]] = {"mlp": mlp, "cnn": cnn, "attention": attention}


def npz_bytes(arrays: Arrays) -> bytes:
    """An `.npz` archive (deflate-compressed) whose bytes depend only on the arrays."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def same_arrays(path: Path, arrays: Arrays) -> bool:
    """Whether `path` holds exactly these arrays (compared by value, not by compressed bytes)."""
    if not path.is_file():
        return False
    with np.load(path, allow_pickle=False) as npz:
        return sorted(npz.files) == sorted(arrays) and all(
            npz[k].dtype == a.dtype and np.array_equal(npz[k], a) for k, a in arrays.items()
        )


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, then rename it over `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"{', '.join(SAMPLES)} (default: all)"
    )
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where to write the archives")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if an archive does not hold the arrays it would get",
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in SAMPLES]
    if unknown:
        parser.error(f"unknown sample {unknown[0]!r} (samples: {', '.join(SAMPLES)})")
    stale = []
    for name in args.names or SAMPLES:
        path = args.out_dir / f"{name}.npz"
        arrays = SAMPLES[name]()
        if args.check:
            if not same_arrays(path, arrays):
                stale.append(str(path))
            continue
        data = npz_bytes(arrays)
        write_atomic(path, data)
        count = sum(a.size for a in arrays.values())
        print(f"wrote {path} ({count:,} parameters, {len(data):,} bytes)")
    if stale:
        print("out of date (run samples/make_weights.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
