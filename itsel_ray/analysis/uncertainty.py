"""How sure a Table 3 number is: an interval for a selector's mean and a paired test between two selectors, both
with the *target* as the unit the study samples. Pure numpy; every method is a registry entry chosen by name in
the analysis file.

Why targets: the seeds of one target share its sources and its spread of transfer scores, and a selector that reads
no target prompt (SIZE, SEMB, PROBE, LOGME) ranks every seed of a target the same way, so a target's cells move
together. Methods that treat the cells as independent understate the doubt: simulated at the paper's shape
(`benchmarks/bench_calibration.py`), a per-cell sign-flip test rejects a true null up to 15 % of the time at
alpha 0.05, and the two-stage percentile bootstrap covers the true mean 90-92 % of the time at level 0.95.

The defaults: `bootstrap-t`, a studentized bootstrap over targets (each target's mean over its scored seeds;
targets resampled with replacement, the t statistic's quantiles turned into the interval: it follows the skew of
a few targets' means, where a percentile or normal interval is too narrow); between two selectors
`cluster-sign-flip`, a sign-flip test of each target's summed difference (exact over all 2^T sign patterns: under
the null the two selectors are exchangeable, so each target's difference is symmetric about 0); against RANDOM's
exact expectation `cluster-bootstrap-t`, the interval's bootstrap inverted into a test, since there the
difference is skewed and the sign flip rejects a true null too often. The older per-cell methods stay as
options (`bootstrap`, `sign-flip`) for comparison. A metric's values arrive as a [T, R] array, NaN where the cell
is not scored (missing, undefined or failed): such a cell is in no mean, no resample and no test.
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


def percentile_bootstrap(values: np.ndarray, *, level: float, resamples: int, seed: int,
                         bounds: tuple[float, float] = (-np.inf, np.inf)) -> Interval:
    """The (1 - level) / 2 and (1 + level) / 2 quantiles of the two-stage bootstrap means. Seeded: the same
    values, level, resamples and seed give the same interval. (Too narrow with few targets: it covers the true
    mean 90-92 % of the time at level 0.95 with 10 targets, 81-88 % with 4; `bootstrap-t` is the default.)"""
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


def target_means(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([T'] each target's mean over its scored seeds, [T'] its number of scored seeds), targets without any
    scored cell left out."""
    v = _scored(values)
    ok = np.isfinite(v)
    counts = ok.sum(axis=1).astype(np.float64)
    return np.where(ok, v, 0.0).sum(axis=1) / counts, counts


def _weighted(means: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(estimate, cluster-robust standard error) over the last axis: the mean over cells (targets weighted by
    their scored seeds) and sqrt(T / (T - 1) * sum w^2 (m - est)^2) / sum w, which is sd(m) / sqrt(T) when
    every target has as many seeds."""
    total = weights.sum(axis=-1)
    est = (weights * means).sum(axis=-1) / total
    t = means.shape[-1]
    dev = (weights * (means - est[..., None])) ** 2
    se = np.sqrt(t / max(t - 1, 1) * dev.sum(axis=-1)) / total
    return est, se


SE_FLOOR = 1.0 / 3.0  # of the study's standard error, for a resample's (see bootstrap_t)


def bootstrap_t(values: np.ndarray, *, level: float, resamples: int, seed: int,
                bounds: tuple[float, float] = (-np.inf, np.inf)) -> Interval:
    """The studentized bootstrap interval of the mean over cells, with targets as the resampled unit.

    Each resample draws T targets with replacement (each with its mean over its scored seeds and its weight)
    and computes t* = (estimate* - estimate) / se*; the interval is [estimate - q_hi se, estimate - q_lo se]
    with q the (1 -+ level) / 2 quantiles of t*. se* is floored at SE_FLOOR (a third) of the study's se: a
    resample of a few repeated targets, or of targets at the metric's bound (the demo's PROBE has nDCG 1 on 7 of
    8 targets), has se* near 0, and its t* would carry the interval off to infinity; the floor leaves the
    coverage at the paper's shape as it was (bench_calibration.py). Clipped to the metric's `bounds` (nDCG <= 1,
    Regret >= 0). NaN with fewer than two scored targets. Seeded."""
    means, weights = target_means(values)
    n_t = means.size
    if n_t < 2:
        return Interval(float("nan"), float("nan"))
    est, se = _weighted(means, weights)
    if not se > 0:  # every target has the same mean: nothing to resample
        return Interval(float(est), float(est))
    drawn = np.random.default_rng(seed).integers(0, n_t, size=(resamples, n_t))
    est_b, se_b = _weighted(means[drawn], weights[drawn])
    t_b = (est_b - est) / np.maximum(se_b, SE_FLOOR * se)
    q_lo, q_hi = np.quantile(t_b, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    low, high = float(est - q_hi * se), float(est - q_lo * se)
    low, high = max(low, bounds[0]), min(high, bounds[1])
    return Interval(low if np.isfinite(low) else bounds[0], high if np.isfinite(high) else bounds[1])


def cluster_bootstrap_t(a: np.ndarray, b: np.ndarray, *, permutations: int, seed: int) -> float:
    """Two-sided p-value of "a and b have the same mean" from the studentized bootstrap over targets (the
    interval's method, inverted): t = estimate / se of the paired differences' mean (targets weighted by their
    paired cells), p = (1 + #{|t*| >= |t|}) / (1 + B) over B = `permutations` resamples of the targets, with
    t* = (estimate* - estimate) / se*, se* floored as in `bootstrap_t`. Used against RANDOM's exact expectation, where a target's difference is
    not symmetric about 0 (a random order's nDCG is high only when the best source happens to come first), so
    a sign-flip test rejects a true null too often (5.7-6.9 % at alpha 0.05 with 10 targets, simulated); this
    one stays below 5 %. NaN when no cell is paired; 1 for no difference at all."""
    d, paired = _differences(a, b)
    if not paired.any():
        return float("nan")
    means, weights = target_means(np.where(paired, d, np.nan))
    est, se = _weighted(means, weights)
    if not se > 0:  # every target differs by the same amount
        return 1.0 if est == 0 else 1.0 / (1 + permutations)
    drawn = np.random.default_rng(seed).integers(0, means.size, size=(permutations, means.size))
    est_b, se_b = _weighted(means[drawn], weights[drawn])
    t_b = (est_b - est) / np.maximum(se_b, SE_FLOOR * se)  # as in the interval
    hits = int((np.abs(t_b) >= abs(est / se) * (1 - 1e-12)).sum())
    return (1 + hits) / (1 + permutations)


def smallest_p(test: str, a: np.ndarray, b: np.ndarray, *, permutations: int) -> float:
    """The smallest p-value `test` can give on these cells. A sign flip: 2 / 2^units when exact (the observed
    pattern and its negation), 1 / (1 + permutations) when it samples patterns. A per-target test, any kind:
    2 / 2^targets, the limit of any test that assumes no more than each target's difference being as likely
    negated, and the level below which the report shows no p-values (with 4 targets 0.125; 6 targets are needed
    for 0.05). A bootstrap over so few targets is no better founded: it resamples 4 values."""
    _, paired = _differences(a, b)
    unit = PAIRED_TESTS.get(test).unit
    units = int(paired.any(axis=1).sum()) if unit == "target" else int(paired.sum())
    if units == 0:
        return float("nan")
    exact = 2.0 / 2 ** units
    return exact if 2 ** units <= permutations else max(exact, 1.0 / (1 + permutations))  # sampled patterns


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries are not in the family and stay NaN):
    the i-th smallest becomes max over j <= i of (m - j + 1) p_(j), capped at 1. Controls the chance of any false
    rejection in the family at the nominal level, under any dependence between the tests."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    if idx.size:
        order = idx[np.argsort(p[idx], kind="stable")]
        m = order.size
        adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
        out[order] = adjusted
    return out


@dataclass(frozen=True)
class PairedTest:
    """A paired test `fn(a, b, *, permutations, seed) -> p`; unit: what its signs flip ("target" or "cell"),
    which sets the smallest p it can reach."""

    fn: Callable[..., float]
    unit: str

    def __call__(self, a: np.ndarray, b: np.ndarray, *, permutations: int, seed: int) -> float:
        return self.fn(a, b, permutations=permutations, seed=seed)


CORRECTIONS = ("none", "holm")
FAMILIES = ("column", "table")
IntervalFn = Callable[..., Interval]
INTERVALS: Registry[IntervalFn] = Registry("interval method")
INTERVALS.add("bootstrap-t", bootstrap_t)
INTERVALS.add("bootstrap", percentile_bootstrap)
PAIRED_TESTS: Registry[PairedTest] = Registry("paired test")
PAIRED_TESTS.add("cluster-sign-flip", PairedTest(cluster_sign_flip, "target"))
PAIRED_TESTS.add("cluster-bootstrap-t", PairedTest(cluster_bootstrap_t, "target"))
PAIRED_TESTS.add("sign-flip", PairedTest(cell_sign_flip, "cell"))
