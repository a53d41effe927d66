"""Random choices for the fuzzers, on a seeded `numpy.random.Generator`.

Every case is generated from its own Generator, seeded with (campaign seed, kind, case number),
so any single case can be generated again without the ones before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def case_rng(seed: int, kind: str, index: int) -> np.random.Generator:
    """The generator of case `index` of fuzzer `kind` in the campaign with `seed`."""
    # the kind enters as bytes so that adding a fuzzer never changes another one's cases
    salt = int.from_bytes(kind.encode()[:8].ljust(8, b"\0"), "little")
    return np.random.default_rng([seed & (2**63 - 1), salt, index])


class Draw:
    """Small helpers over a Generator: inclusive integer ranges, flags, picks, subsets."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        """A uniform integer in [lo, hi], both included."""
        return int(self.rng.integers(lo, hi + 1))

    def flag(self, p: float = 0.5) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, options: Iterable[T]) -> T:
        seq = list(options)
        if not seq:
            raise ValueError("pick from an empty sequence")
        return seq[int(self.rng.integers(len(seq)))]

    def weighted(self, options: Sequence[tuple[T, float]]) -> T:
        """One of the options, with probability proportional to its weight."""
        weights = np.array([w for _, w in options], dtype=np.float64)
        i = int(self.rng.choice(len(options), p=weights / weights.sum()))
        return options[i][0]

    def permutation(self, items: Sequence[T]) -> list[T]:
        return [items[int(i)] for i in self.rng.permutation(len(items))]

    def subset(self, items: Sequence[T], max_size: int | None = None) -> list[T]:
        """A random subset, in the order of `items`."""
        limit = len(items) if max_size is None else min(max_size, len(items))
        size = self.integer(0, limit)
        chosen = sorted(int(i) for i in self.rng.choice(len(items), size=size, replace=False))
        return [items[i] for i in chosen]

    def side(self, big: bool = True) -> int:
        """One dimension: mostly tiny (0, 1 and odd sizes), sometimes past a vector width, so
        kernels meet their remainder loops and empty and unit dimensions alike."""
        kind = self.weighted(
            [
                ("zero", 0.06),
                ("one", 0.24),
                ("small", 0.5),
                ("odd", 0.14),
                ("big", 0.06 if big else 0.0),
            ]
        )
        if kind == "zero":
            return 0
        if kind == "one":
            return 1
        if kind == "small":
            return self.integer(2, 5)
        if kind == "odd":
            return self.pick([7, 9, 13, 17])
        return self.pick([31, 33, 65])
