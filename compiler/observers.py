"""Calibration observers: each watches one activation across batches and proposes its range.

`bound()` is the symmetric range (the largest |x| to represent, for int8 with zero point 0);
`range()` is the signed range (lo, hi) that asymmetric u8 activations map onto [0, 255].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ir.diagnostics import TesselError

OBSERVERS_HELP = "minmax, moving-average[:MOMENTUM], percentile:P or kl"


class Observer:
    """Watches one value across calibration batches and proposes its range."""

    def add(self, values: np.ndarray) -> None:
        raise NotImplementedError

    def bound(self) -> float:
        raise NotImplementedError

    def range(self) -> tuple[float, float]:
        raise NotImplementedError


class MinMax(Observer):
    def __init__(self) -> None:
        self.lo = 0.0
        self.hi = 0.0

    def add(self, values: np.ndarray) -> None:
        if values.size:
            self.lo = min(self.lo, float(np.min(values)))
            self.hi = max(self.hi, float(np.max(values)))

    def bound(self) -> float:
        return max(-self.lo, self.hi)

    def range(self) -> tuple[float, float]:
        return self.lo, self.hi


class MovingAverage(Observer):
    """The per-batch extremes, averaged with momentum (outlier batches count less)."""

    def __init__(self, momentum: float = 0.9) -> None:
        self.momentum = momentum
        self.average: tuple[float, float, float] | None = None  # peak |x|, min, max

    def add(self, values: np.ndarray) -> None:
        if not values.size:
            return
        lo, hi = float(np.min(values)), float(np.max(values))
        batch = (max(-lo, hi), lo, hi)
        if self.average is None:
            self.average = batch
        else:
            m = self.momentum
            avg = self.average
            self.average = (
                m * avg[0] + (1 - m) * batch[0],
                m * avg[1] + (1 - m) * batch[1],
                m * avg[2] + (1 - m) * batch[2],
            )

    def bound(self) -> float:
        return self.average[0] if self.average else 0.0

    def range(self) -> tuple[float, float]:
        return (self.average[1], self.average[2]) if self.average else (0.0, 0.0)


class _Collecting(Observer):
    """Keeps every value seen (calibration sets are small) for order statistics."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def add(self, values: np.ndarray) -> None:
        self.seen.append(values.astype(np.float64).reshape(-1))

    def values(self) -> np.ndarray:
        return np.concatenate(self.seen) if self.seen else np.zeros(0)


class Percentile(_Collecting):
    """A percentile of |x| over every value seen: clips rare outliers for finer steps."""

    def __init__(self, percent: float) -> None:
        super().__init__()
        if not 0 < percent <= 100:
            raise TesselError(f"observer percentile:{percent}: the percentile must be in (0, 100]")
        self.percent = percent

    def bound(self) -> float:
        values = np.abs(self.values())
        return float(np.percentile(values, self.percent)) if values.size else 0.0

    def range(self) -> tuple[float, float]:
        values = self.values()
        if not values.size:
            return 0.0, 0.0
        lo, hi = np.percentile(values, [100 - self.percent, self.percent])
        return float(lo), float(hi)


class KLDivergence(_Collecting):
    """The clipping threshold whose 128-level quantization of the |x| histogram loses the least
    information (smallest KL divergence), as TensorRT's entropy calibration chooses it."""

    BINS = 2048
    LEVELS = 128  # the magnitudes int8 has on one side of zero

    def bound(self) -> float:
        return kl_threshold(np.abs(self.values()), self.BINS, self.LEVELS)

    def range(self) -> tuple[float, float]:
        values = self.values()
        if not values.size:
            return 0.0, 0.0
        t = self.bound()
        return max(float(np.min(values)), -t), min(float(np.max(values)), t)


def kl_threshold(magnitudes: np.ndarray, bins: int, levels: int) -> float:
    """For each candidate threshold (a bin edge from `levels` bins up), compare the histogram
    clipped there (outliers added to its last bin) with its quantization to `levels` levels
    (each level spreads its count evenly over its non-empty bins), and return the threshold
    with the smallest KL divergence."""
    if not magnitudes.size or float(np.max(magnitudes)) == 0.0:
        return 0.0
    hist, edges = np.histogram(magnitudes, bins=bins, range=(0.0, float(np.max(magnitudes))))
    hist = hist.astype(np.float64)
    tail = np.cumsum(hist[::-1])[::-1]  # tail[i]: the count in bins i and above
    best, best_kl = bins, np.inf
    for i in range(levels, bins + 1):
        p = hist[:i].copy()
        if i < bins:
            p[i - 1] += tail[i]
        starts = (np.arange(levels) * i) // levels
        used = hist[:i] > 0
        sums = np.add.reduceat(hist[:i], starts)
        counts = np.add.reduceat(used.astype(np.float64), starts)
        widths = np.diff(np.append(starts, i))
        q = np.repeat(sums / np.maximum(counts, 1), widths) * used
        kl = _kl(p, q)
        if kl < best_kl:
            best, best_kl = i, kl
    return float(edges[best])


def _kl(p: np.ndarray, q: np.ndarray, eps: float = 1e-4) -> float:
    """KL(p || q) of two histograms; empty bins of q where p has mass get `eps` of a count,
    taken from the non-empty bins, so an unrepresented bin costs a finite, large amount."""
    p = p / p.sum()
    total = q.sum()
    if total == 0:
        return np.inf
    q = q / total
    holes = (q == 0) & (p > 0)
    if holes.any():
        filled = q > 0
        q = q - filled * eps * holes.sum() / max(filled.sum(), 1)
        q = np.where(holes, eps, q)
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def observer_factory(spec: str) -> Callable[[], Observer]:
    """`minmax`, `moving-average[:momentum]`, `percentile:P` or `kl`."""
    name, _, arg = spec.partition(":")
    try:
        if name == "minmax" and not arg:
            return MinMax
        if name == "moving-average":
            momentum = float(arg) if arg else 0.9
            return lambda: MovingAverage(momentum)
        if name == "percentile":
            percent = float(arg or "99.99")
            Percentile(percent)  # checks the range now, not at the first batch
            return lambda: Percentile(percent)
        if name == "kl" and not arg:
            return KLDivergence
    except ValueError:
        pass
    raise TesselError(f"unknown observer {spec!r}: use {OBSERVERS_HELP}")
