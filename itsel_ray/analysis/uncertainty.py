"""How sure a Table 3 number is: a bootstrap interval over (target, seed) cells and a paired test between two
selectors. Pure numpy; every method is a registry entry chosen by name in the analysis file.

The interval asks how the mean would move over other targets and seeds of the same kind. The seeds of one target
share the target (its sources, its spread of transfer scores), so it resamples targets with replacement and,
inside each drawn target, its scored seeds with replacement (a two-stage bootstrap). The paired test asks
whether two selectors differ on these cells: `sign-flip` flips the sign of each cell's difference, and
`cluster-sign-flip` that of each target's summed difference (all its seeds together), the conservative choice
when a target's seeds are strongly correlated. A metric's values arrive as a [T, R] array, NaN where the cell is
not scored (missing or undefined): such a cell is in no mean, no resample and no test.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from itsel_ray.registry import Registry


def _scored(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"cell values must be [targets, seeds], got shape {values.shape}")
    return values[np.isfinite(values).any(axis=1)]  # a target without any scored cell cannot be drawn


def cell_mean(values: np.ndarray) -> float:
    """The point estimate: the mean over scored cells (NaN when none)."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else float("nan")


def bootstrap_means(values: np.ndarray, *, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """[resamples] means over the cells of two-stage resamples: targets with replacement, then each drawn target's
    scored seeds with replacement (as many as it has). The mean runs over every resampled cell."""
    v = _scored(values)
    n_t = v.shape[0]
    if n_t == 0:
        return np.full(resamples, np.nan)
    ok = np.isfinite(v)
    counts = ok.sum(axis=1)  # [T] scored seeds per target
    packed = np.full_like(v, np.nan)  # each target's scored values first
    for t in range(n_t):
        packed[t, : counts[t]] = v[t, ok[t]]
    width = v.shape[1]
    drawn = rng.integers(0, n_t, size=(resamples, n_t))  # [B, T] target draws
    n_drawn = counts[drawn]  # [B, T]
    seeds = (rng.random((resamples, n_t, width)) * n_drawn[..., None]).astype(np.int64)  # [B, T, W]
    keep = np.arange(width)[None, None, :] < n_drawn[..., None]
    picked = np.where(keep, packed[drawn[..., None], seeds], 0.0)
    return picked.sum(axis=(1, 2)) / keep.sum(axis=(1, 2))


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def percentile_bootstrap(values: np.ndarray, *, level: float, resamples: int, seed: int) -> Interval:
    """The (1 - level) / 2 and (1 + level) / 2 quantiles of the two-stage bootstrap means. Seeded: the same
    values, level, resamples and seed give the same interval."""
    means = bootstrap_means(values, resamples=resamples, rng=np.random.default_rng(seed))
    if not np.isfinite(means).all():
        return Interval(float("nan"), float("nan"))
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Interval(float(low), float(high))


@functools.lru_cache(maxsize=32)
def _signs(units: int, permutations: int, seed: int) -> tuple[np.ndarray, bool]:
    """([patterns, units] signs, exact?): every pattern when 2^units <= permutations, else `permutations` seeded
    random ones. Cached: a table's tests share them (read-only)."""
    if 2 ** units <= permutations:
        signs, exact = np.array(list(itertools.product((1.0, -1.0), repeat=units))), True
    else:
        signs, exact = np.random.default_rng(seed).choice((1.0, -1.0), size=(permutations, units)), False
    signs.flags.writeable = False
    return signs, exact


def _sign_flip(units: np.ndarray, n: int, *, permutations: int, seed: int) -> float:
    """p-value of |sum(units)| / n under independent random signs of the units: the share of all 2^U patterns
    (exact, the identity included) or of `permutations` random ones ((1 + hits) / (1 + draws)) at least as far
    from 0 as the observed sum."""
    observed = abs(units.sum()) / n
    tol = 1e-12 * max(1.0, float(np.abs(units).sum()) / n)
    signs, exact = _signs(units.size, permutations, seed)
    hits = int((np.abs(signs @ units) / n >= observed - tol).sum())
    return hits / len(signs) if exact else (1 + hits) / (1 + permutations)


def _differences(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"cell values must be [targets, seeds], got shape {d.shape}")
    return d, np.isfinite(d)


def cell_sign_flip(a: np.ndarray, b: np.ndarray, *, permutations: int, seed: int) -> float:
    """Two-sided p-value of "a and b have the same mean" over the cells both score ([T, R] each).

    The statistic is |mean of a - b| over the paired cells; under the null each cell's difference is as likely
    negated. No difference at all gives p = 1; NaN when no cell is paired.
    """
    d, paired = _differences(a, b)
    n = int(paired.sum())
    return _sign_flip(d[paired], n, permutations=permutations, seed=seed) if n else float("nan")


def cluster_sign_flip(a: np.ndarray, b: np.ndarray, *, permutations: int, seed: int) -> float:
    """As `cell_sign_flip`, but the signs flip per target (all its seeds together): valid when the seeds of a
    target are strongly correlated, at the price of power (with T targets no p-value is below 2 / 2^T)."""
    d, paired = _differences(a, b)
    n = int(paired.sum())
    if not n:
        return float("nan")
    sums = np.where(paired, d, 0.0).sum(axis=1)[paired.any(axis=1)]  # [T'] per-target summed difference
    return _sign_flip(sums, n, permutations=permutations, seed=seed)


IntervalFn = Callable[..., Interval]
TestFn = Callable[..., float]
INTERVALS: Registry[IntervalFn] = Registry("interval method")
INTERVALS.add("bootstrap", percentile_bootstrap)
PAIRED_TESTS: Registry[TestFn] = Registry("paired test")
PAIRED_TESTS.add("sign-flip", cell_sign_flip)
PAIRED_TESTS.add("cluster-sign-flip", cluster_sign_flip)
