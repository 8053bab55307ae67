"""Ranking metrics for intermediate-task selection, and their exact values under a uniformly random ranking.

Pure numpy. A *ranking* is an index array over the candidate sources, best first (a permutation of
``range(n)``); ``relevance`` is each source's ground-truth transfer score (0-100 in the paper), in the same source
order. Every metric is a `RankingMetric` in `RANKING_METRICS`, and every nDCG gain a function in `GAINS`, so a metric is
chosen by name ("ndcg", "ndcg@5", "regret@1", "spearman", "kendall").

Tie rule (`rank_from_scores`): sources are ordered by descending score; equal scores are ordered by source name
(ascending, Python string order) when names are given, else by position. Ordering by name makes a ranking
independent of the order in which the sources happen to be listed.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from itsel_ray.registry import Registry

# ----------------------------------------------------------------------------------------------- tie rule


def rank_from_scores(scores: np.ndarray, names: Sequence[str] | None = None) -> np.ndarray:
    """Turn selector scores into a ranking (higher score = ranked earlier).

    Args:
        scores: [n] finite floats.
        names: [n] source names; equal scores are ordered by name (ascending). Without names, by position.
    Returns:
        [n] int64 indices, best first.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D [n_sources], got shape {scores.shape}")
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        where = [names[i] for i in bad] if names is not None else bad.tolist()
        raise ValueError(f"scores must be finite; not finite for {where}")
    if names is None:
        tiekey = np.arange(scores.size)
    else:
        if len(names) != scores.size:
            raise ValueError(f"{len(names)} names for {scores.size} scores")
        tiekey = np.argsort(np.argsort(np.asarray(names, dtype=object), kind="stable"), kind="stable")
    return np.lexsort((tiekey, -scores)).astype(np.int64)


# -------------------------------------------------------------------------------------------------- gains

GAINS: Registry[Callable[[np.ndarray], np.ndarray]] = Registry("gain")


@GAINS.register("exp2_raw")
def exp2_raw_gain(rel: np.ndarray) -> np.ndarray:
    """2^rel - 1 on the raw score (the authors' code), divided by 2^max(rel).

    nDCG is a ratio of two sums of the same gains, so a common positive factor cancels; factoring out 2^max keeps
    every term <= 1 in float64 even for scores far above 1000.
    """
    top = float(np.max(rel))
    if top <= 1000.0:  # expm1 keeps tiny scores' gains positive (2^1e-300 - 1 is not 0)
        return np.expm1(rel * np.log(2.0)) * np.exp2(-top)
    return np.exp2(rel - top) - np.exp2(-top)


@GAINS.register("linear")
def linear_gain(rel: np.ndarray) -> np.ndarray:
    """The relevance itself (sklearn's `ndcg_score` convention)."""
    return np.asarray(rel, dtype=np.float64)


def _minmax(rel: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(rel)), float(np.max(rel))
    if hi == lo:
        return np.zeros_like(rel, dtype=np.float64)
    return (rel - lo) / (hi - lo)


@GAINS.register("minmax")
def minmax_gain(rel: np.ndarray) -> np.ndarray:
    """Relevance rescaled to [0, 1] within the list (worst source 0, best 1): scale-free across targets."""
    return _minmax(rel)


@GAINS.register("exp2_minmax")
def exp2_minmax_gain(rel: np.ndarray) -> np.ndarray:
    """2^x - 1 on the min-max rescaled relevance."""
    return np.exp2(_minmax(rel)) - 1.0


@functools.lru_cache(maxsize=64)
def discounts(n: int) -> np.ndarray:
    """[n] position discounts 1 / log2(i + 2), i = 0 for the first position (read-only, cached)."""
    out = 1.0 / np.log2(np.arange(n, dtype=np.float64) + 2.0)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=64)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays of all pairs i < j of n items (cached)."""
    return np.triu_indices(n, 1)


def _cut(n: int, k: int | None) -> int:
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return n if k is None else min(k, n)


def _check(rel: np.ndarray, order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    rel = np.asarray(rel, dtype=np.float64)
    if rel.ndim != 1 or rel.size == 0:
        raise ValueError(f"relevance must be 1-D and non-empty, got shape {rel.shape}")
    if not np.all(np.isfinite(rel)):
        raise ValueError("relevance has missing (NaN) or infinite values; drop or flag the cell instead")
    if order is not None:
        order = np.asarray(order, dtype=np.int64)
        if order.shape != rel.shape or not np.array_equal(np.sort(order), np.arange(rel.size)):
            raise ValueError(f"order must be a permutation of range({rel.size}), got {order.tolist()}")
    return rel, order


# ---------------------------------------------------------------------------------------------- metrics


def ndcg(relevance: np.ndarray, order: np.ndarray, *, gain: str = "exp2_raw", k: int | None = None) -> float:
    """Normalised DCG of a ranking: sum_i gain(rel_(i)) / log2(i + 2) over the first k positions, divided by the
    same sum for the ideal (descending relevance) order. NaN when the ideal DCG is <= 0 (nothing to rank for)."""
    rel, order = _check(relevance, order)
    g, disc, ideal = _gains_and_ideal(rel, gain, k)
    if not ideal > 0:
        return math.nan
    return float(g[order][: disc.size] @ disc) / ideal


def _gains_and_ideal(rel: np.ndarray, gain: str, k: int | None) -> tuple[np.ndarray, np.ndarray, float]:
    """Gains [n], discounts of the first min(k, n) positions, and the ideal DCG."""
    g = GAINS.get(gain)(rel)
    disc = discounts(_cut(rel.size, k))
    return g, disc, float(np.sort(g)[::-1][: disc.size] @ disc)


def expected_ndcg_random(relevance: np.ndarray, *, gain: str = "exp2_raw", k: int | None = None) -> float:
    """Exact mean nDCG over all n! orderings: each source sits at each position with probability 1/n, so
    E[DCG] = sum(gains) * mean(discount over all n positions, 0 beyond k)."""
    rel, _ = _check(relevance)
    g, disc, ideal = _gains_and_ideal(rel, gain, k)
    if not ideal > 0:
        return math.nan
    return float(g.sum() * disc.sum() / rel.size) / ideal


def regret_at_k(relevance: np.ndarray, order: np.ndarray, *, k: int) -> float:
    """(best score - best score among the top k) / best score * 100. NaN when the best score is <= 0."""
    rel, order = _check(relevance, order)
    best = float(rel.max())
    if not best > 0:
        return math.nan
    return (best - float(rel[order[: _cut(rel.size, k)]].max())) / best * 100.0


def expected_best_of_random_k(values: np.ndarray, *, k: int) -> float:
    """Exact mean of max(values over a uniformly random k-subset).

    With values sorted descending, the j-th (0-based) is the subset's maximum when it is drawn and none of the j
    better ones are: C(n - 1 - j, k - 1) / C(n, k).
    """
    v, _ = _check(values)
    n, m = v.size, _cut(v.size, k)
    v = np.sort(v)[::-1]
    prob = np.array([math.comb(n - 1 - j, m - 1) for j in range(n)], dtype=np.float64) / math.comb(n, m)
    return float(prob @ v)


def expected_regret_random(relevance: np.ndarray, *, k: int) -> float:
    """Exact mean Regret@k over all orderings (regret is linear in the top-k maximum)."""
    rel, _ = _check(relevance)
    best = float(rel.max())
    if not best > 0:
        return math.nan
    return (best - expected_best_of_random_k(rel, k=k)) / best * 100.0


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x (ascending), ties sharing their mean rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    sx = x[order]
    first = np.r_[True, sx[1:] != sx[:-1]]  # the first of each run of equal values
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], x.size]
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(first) - 1]
    return ranks


def _predicted_strength(order: np.ndarray) -> np.ndarray:
    """[n] n - position: larger = ranked earlier; no ties (the tie rule already decided)."""
    pos = np.empty(order.size, dtype=np.float64)
    pos[order] = np.arange(order.size)
    return order.size - pos


def spearman(relevance: np.ndarray, order: np.ndarray) -> float:
    """Spearman's rho between the relevance (ties: average ranks) and the ranking. NaN for constant relevance."""
    rel, order = _check(relevance, order)
    a = average_ranks(rel)
    b = _predicted_strength(order)
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else math.nan


def kendall(relevance: np.ndarray, order: np.ndarray) -> float:
    """Kendall's tau-b between the relevance and the ranking (the ranking has no ties). NaN for constant
    relevance or a single source."""
    rel, order = _check(relevance, order)
    pred = _predicted_strength(order)
    i, j = _pairs(rel.size)
    dr = np.sign(rel[i] - rel[j])
    dp = np.sign(pred[i] - pred[j])
    pairs = dr.size
    untied = np.count_nonzero(dr)
    den = math.sqrt(float(untied) * float(pairs))
    return float(dr @ dp) / den if den > 0 else math.nan


def expected_correlation_random(relevance: np.ndarray) -> float:
    """Exact mean Spearman / Kendall over all orderings: 0 (each source is equally likely at every position),
    NaN where the correlation is undefined (constant relevance)."""
    rel, _ = _check(relevance)
    return 0.0 if rel.size > 1 and np.ptp(rel) > 0 else math.nan


def relative_transfer(transfer, baseline):
    """(M_s->t - M_t) / M_t as a fraction (x100 for percent); broadcasts; NaN where M_t is 0 or missing."""
    transfer = np.asarray(transfer, dtype=np.float64)
    baseline = np.asarray(baseline, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (transfer - baseline) / baseline
    return np.where(baseline == 0, np.nan, out)


# ------------------------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class RankingMetric:
    """A ranking metric: its value for one ranking, and its exact mean over all orderings (the RANDOM baseline).

    takes_k: whether the metric has a cutoff ("@k"); needs_k: whether the cutoff is required (Regret@k).
    """

    name: str
    value: Callable[..., float]
    expected: Callable[..., float]
    lower_is_better: bool = False
    takes_k: bool = False
    needs_k: bool = False
    takes_gain: bool = False


RANKING_METRICS: Registry[RankingMetric] = Registry("ranking metric")
RANKING_METRICS.add("ndcg", RankingMetric("ndcg", ndcg, expected_ndcg_random, takes_k=True, takes_gain=True))
RANKING_METRICS.add("regret", RankingMetric("regret", regret_at_k, expected_regret_random, lower_is_better=True,
                                    takes_k=True, needs_k=True))
RANKING_METRICS.add("spearman", RankingMetric("spearman", spearman, expected_correlation_random))
RANKING_METRICS.add("kendall", RankingMetric("kendall", kendall, expected_correlation_random))

_SPEC = re.compile(r"^([a-z_]+)(?:@(\d+))?$")


@dataclass(frozen=True)
class MetricSpec:
    """One metric column: a registered metric, its cutoff and (for nDCG) its gain. `label` is the column name."""

    label: str
    metric: RankingMetric
    k: int | None = None
    gain: str = "exp2_raw"

    def _kwargs(self) -> dict:
        kw = {}
        if self.metric.takes_k:
            kw["k"] = self.k
        if self.metric.takes_gain:
            kw["gain"] = self.gain
        return kw

    def value(self, relevance: np.ndarray, order: np.ndarray) -> float:
        return self.metric.value(relevance, order, **self._kwargs())

    def expected(self, relevance: np.ndarray) -> float:
        return self.metric.expected(relevance, **self._kwargs())


def parse_metric(spec: str, *, gain: str = "exp2_raw") -> MetricSpec:
    """"ndcg", "ndcg@5", "regret@1", "spearman", "kendall" -> MetricSpec; unknown names list the valid ones."""
    match = _SPEC.match(str(spec).strip().lower())
    name = match.group(1) if match else str(spec)
    metric = RANKING_METRICS.get(name)  # raises UnknownNameError with the valid names
    GAINS.get(gain)
    k = int(match.group(2)) if match.group(2) else None
    if k is not None and not metric.takes_k:
        raise ValueError(f"metric {name!r} takes no cutoff; write {name!r}, not {spec!r}")
    if k is None and metric.needs_k:
        raise ValueError(f"metric {name!r} needs a cutoff, e.g. '{name}@1' or '{name}@3'")
    if k is not None and k < 1:
        raise ValueError(f"metric {spec!r}: the cutoff must be >= 1")
    return MetricSpec(label=f"{name}@{k}" if k else name, metric=metric, k=k, gain=gain)
