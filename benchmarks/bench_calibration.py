"""Are Table 3's intervals and tests calibrated? Simulated studies with a known truth, analysed with the project's
own interval and test functions (itsel_ray/analysis/uncertainty.py).

A simulated study has T targets x R seeds x S sources. Each target has a true quality per source, z (standardised
over its sources), scaled by the target's spread; a transfer score per seed adds seed noise:
    score[t, r, s] = 70 + spread_t * z[t, s] + noise_t * e[t, r, s]
At the paper's shape (10 x 3 x 13) the spreads follow the paper's Table 7: the seed-mean scores of one target
spread by 0.14-2.5 points over its sources (sd), seeds by 0.1-2 points, so spread_t is log-uniform on [0.2, 2.5]
and noise_t = spread_t x U(0.5, 1.5). At the demo's shapes (4 x 3 x 6 as it was, 8 x 2 x 6 as sweeps/demo.yaml
runs it now) the sources differ by tens of accuracy points and seeds by a few: spread_t on [4, 12],
noise_t = spread_t x U(0.2, 0.4).

A selector scores each source as lambda * z[t, s] + u, u standard normal noise that is
    per-target:  the same for every seed of a target (SIZE, SEMB, PROBE, LOGME read no target prompt),
    mixed:       half shared by the target's seeds, half per seed,
    independent: drawn per seed (a prompt selector whose target prompts differ from seed to seed).
nDCG (the authors' 2^score - 1 gain, checked against itsel_ray.metrics.ranking) per cell; the truth of a selector
is its mean nDCG over 50,000 simulated targets (150,000 cells), which depends on lambda only. Printed per shape and kind:

- type-I error at alpha 0.05: two selectors of the same lambda (a true difference of 0) under the default test
  between selectors and the per-cell sign flip; a selector with lambda 0 (a random order) against RANDOM's exact
  expectation under the default test against RANDOM, the per-target sign flip and the per-cell sign flip;
- coverage of the 95 % interval of a selector's mean (lambda 1): the default (bootstrap-t) and the older
  two-stage percentile bootstrap;
- power: a selector whose true nDCG is 5 or 10 points above RANDOM's, and 5 or 10 points above another
  selector's (one 3 points above RANDOM), under the default tests.

With fewer targets than a per-target test needs to reach alpha (the demo's 4: smallest p 0.125), the analysis
prints no p-values, and neither does this table.

    python benchmarks/bench_calibration.py [--studies 2000] [--shapes paper demo-4x3 demo] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from itsel_ray.analysis.analysis_file import UncertaintyConfig
from itsel_ray.analysis.uncertainty import INTERVALS, PAIRED_TESTS, smallest_p
from itsel_ray.metrics.ranking import expected_ndcg_random, ndcg

KINDS = {"per-target": 1.0, "mixed": 0.5, "independent": 0.0}  # share of a selector's noise shared by seeds
ALPHA = 0.05


@dataclass(frozen=True)
class Shape:
    name: str
    targets: int
    seeds: int
    sources: int
    spread: tuple[float, float]  # range of a target's source spread (log-uniform), score points
    noise: tuple[float, float]  # seed noise as a multiple of the spread (uniform)


SHAPES = {
    "paper": Shape("paper", 10, 3, 13, (0.2, 2.5), (0.5, 1.5)),
    "demo-4x3": Shape("demo-4x3", 4, 3, 6, (4.0, 12.0), (0.2, 0.4)),  # the demo before it had 8 targets
    "demo": Shape("demo", 8, 2, 6, (4.0, 12.0), (0.2, 0.4)),  # sweeps/demo.yaml
}


def truth(shape: Shape, n_targets: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(z [T, S] standardised source quality, scores [T, R, S])."""
    spread = np.exp(rng.uniform(np.log(shape.spread[0]), np.log(shape.spread[1]), size=n_targets))
    noise = spread * rng.uniform(*shape.noise, size=n_targets)
    z = rng.normal(size=(n_targets, shape.sources))
    z = (z - z.mean(axis=1, keepdims=True)) / z.std(axis=1, keepdims=True)
    e = rng.normal(size=(n_targets, shape.seeds, shape.sources))
    return z, 70.0 + spread[:, None, None] * z[:, None, :] + noise[:, None, None] * e


def selector(z: np.ndarray, seeds: int, kind: str, lam: float, rng: np.random.Generator) -> np.ndarray:
    """[T, R, S] selector scores."""
    shared = KINDS[kind]
    t, s = z.shape
    u = np.sqrt(shared) * rng.normal(size=(t, 1, s)) + np.sqrt(1 - shared) * rng.normal(size=(t, seeds, s))
    return lam * z[:, None, :] + u


def _gains(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    top = y.max(axis=-1, keepdims=True)
    g = np.expm1((y - top) * np.log(2.0)) + (1.0 - np.exp2(-top))  # (2^y - 1) / 2^top, as ranking.exp2_raw_gain
    disc = 1.0 / np.log2(np.arange(y.shape[-1]) + 2.0)
    ideal = (np.sort(g, axis=-1)[..., ::-1] * disc).sum(axis=-1)
    return g, disc, ideal


def ndcg_cells(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """[T, R] nDCG of ranking by `scores` (vectorised itsel_ray.metrics.ranking.ndcg)."""
    g, disc, ideal = _gains(y)
    order = np.argsort(-scores, axis=-1, kind="stable")
    return (np.take_along_axis(g, order, axis=-1) * disc).sum(axis=-1) / ideal


def random_cells(y: np.ndarray) -> np.ndarray:
    """[T, R] RANDOM's exact expected nDCG (vectorised expected_ndcg_random)."""
    g, disc, ideal = _gains(y)
    return g.sum(axis=-1) * disc.mean() / ideal


def check_against_the_project(shape: Shape) -> None:
    rng = np.random.default_rng(1)
    z, y = truth(shape, 3, rng)
    s = selector(z, shape.seeds, "mixed", 1.0, rng)
    mine, rnd = ndcg_cells(y, s), random_cells(y)
    for t in range(3):
        for r in range(shape.seeds):
            order = np.argsort(-s[t, r], kind="stable")
            assert abs(mine[t, r] - ndcg(y[t, r], order)) < 1e-12
            assert abs(rnd[t, r] - expected_ndcg_random(y[t, r])) < 1e-12


def true_ndcg(shape: Shape, lams: np.ndarray, n_targets: int = 50_000) -> np.ndarray:
    """The population mean nDCG of a selector at each lambda (per cell the kind does not matter), and of RANDOM
    at lambda = nan."""
    rng = np.random.default_rng(12345)
    z, y = truth(shape, n_targets, rng)
    out = []
    for lam in lams:
        out.append(random_cells(y).mean() if np.isnan(lam) else
                   ndcg_cells(y, selector(z, shape.seeds, "independent", lam, rng)).mean())
    return np.array(out)


def lambda_for(shape: Shape, target: float, grid: np.ndarray, values: np.ndarray) -> float:
    """The lambda whose true nDCG is `target` (interpolated on the monotone grid)."""
    if not values[0] <= target <= values[-1]:
        raise ValueError(f"{shape.name}: a true nDCG of {target:.3f} is outside [{values[0]:.3f}, {values[-1]:.3f}]")
    return float(np.interp(target, values, grid))


def rate(hits: list[bool]) -> str:
    return f"{100 * np.mean(hits):5.1f} %"


def run_shape(shape: Shape, studies: int, seed: int, cfg: UncertaintyConfig) -> None:
    check_against_the_project(shape)
    t0 = time.perf_counter()
    grid = np.concatenate([np.linspace(0.0, 2.0, 21), [2.5, 3.0, 4.0, 6.0]])
    values = true_ndcg(shape, grid)
    random_mean = float(true_ndcg(shape, np.array([np.nan]))[0])
    mid = 1.0
    mid_truth = float(np.interp(mid, grid, values))
    base = lambda_for(shape, random_mean + 0.03, grid, values)  # a weak selector, 3 points above RANDOM
    base_truth = random_mean + 0.03
    lam_r = {d: lambda_for(shape, random_mean + d / 100, grid, values) for d in (5, 10)}
    lam_b = {d: lambda_for(shape, base_truth + d / 100, grid, values) for d in (5, 10)}
    interval = INTERVALS.get(cfg.interval)
    old_interval = INTERVALS.get("bootstrap")
    test, random_test = PAIRED_TESTS.get(cfg.test), PAIRED_TESTS.get(cfg.random_test)
    sign_flip, per_cell = PAIRED_TESTS.get("cluster-sign-flip"), PAIRED_TESTS.get("sign-flip")
    testable = 2.0 / 2 ** shape.targets <= ALPHA
    print(f"\n{shape.name}: {shape.targets} targets x {shape.seeds} seeds x {shape.sources} sources, {studies} "
          f"studies per kind; true nDCG x100: RANDOM {100 * random_mean:.1f}, lambda 1 {100 * mid_truth:.1f}, "
          f"the weak selector {100 * base_truth:.1f}")
    if not testable:
        print(f"  {shape.targets} targets: the smallest per-target p-value is {2 / 2 ** shape.targets:.3g} > "
              f"{ALPHA}: no per-target test can reach the level, so the analysis prints no p-values (shown: n/a)")
    header = (f"  {'kind':<12} | {'type-I vs selector':^21} | {'type-I vs RANDOM':^32} | {'95 % coverage':^19} | "
              f"{'power vs RANDOM':^15} | {'power vs selector':^15}")
    print(header)
    print(f"  {'':<12} | {'default':>9} {'per-cell':>11} | {'default':>9} {'per-target':>11} {'per-cell':>10} | "
          f"{'default':>9} {'2-stage':>9} | {'+5':>7} {'+10':>7} | {'+5':>7} {'+10':>7}")
    for kind in KINDS:
        rng = np.random.default_rng(seed)
        hit = {k: [] for k in ("ab", "ab_cell", "r", "r_sf", "r_cell", "cov", "cov_old", "pr5", "pr10", "pb5",
                               "pb10")}
        for i in range(studies):
            z, y = truth(shape, shape.targets, rng)
            pick = lambda lam: ndcg_cells(y, selector(z, shape.seeds, kind, lam, rng))  # noqa: E731
            a, b, r0, rnd = pick(mid), pick(mid), pick(0.0), random_cells(y)
            kw = dict(permutations=cfg.permutations, seed=i)
            if testable:
                hit["ab"].append(test(a, b, **kw) < ALPHA)
                hit["r"].append(random_test(r0, rnd, **kw) < ALPHA)
                hit["r_sf"].append(sign_flip(r0, rnd, **kw) < ALPHA)
                for d in (5, 10):
                    hit[f"pr{d}"].append(random_test(pick(lam_r[d]), rnd, **kw) < ALPHA)
                    hit[f"pb{d}"].append(test(pick(lam_b[d]), pick(base), **kw) < ALPHA)
            hit["ab_cell"].append(per_cell(a, b, **kw) < ALPHA)
            hit["r_cell"].append(per_cell(r0, rnd, **kw) < ALPHA)
            ci = interval(a, level=cfg.level, resamples=cfg.resamples, seed=i, bounds=(-np.inf, 1.0))
            hit["cov"].append(ci.low <= mid_truth <= ci.high)
            old = old_interval(a, level=cfg.level, resamples=cfg.resamples, seed=i)
            hit["cov_old"].append(old.low <= mid_truth <= old.high)
        show = lambda k: rate(hit[k]) if hit[k] else "    n/a"  # noqa: E731
        print(f"  {kind:<12} | {show('ab'):>9} {show('ab_cell'):>11} | {show('r'):>9} {show('r_sf'):>11} "
              f"{show('r_cell'):>10} | {show('cov'):>9} {show('cov_old'):>9} | {show('pr5'):>7} {show('pr10'):>7} | "
              f"{show('pb5'):>7} {show('pb10'):>7}")
    print(f"  defaults: interval {cfg.interval}, test between selectors {cfg.test}, against RANDOM "
          f"{cfg.random_test}; per-cell = sign-flip over cells, 2-stage = the percentile bootstrap over targets "
          f"then seeds ({time.perf_counter() - t0:.0f} s)")
    assert smallest_p(cfg.test, np.ones((shape.targets, 1)), np.zeros((shape.targets, 1)),
                      permutations=cfg.permutations) == 2.0 / 2 ** shape.targets


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--studies", type=int, default=2000, help="simulated studies per shape and selector kind")
    p.add_argument("--shapes", nargs="+", default=["paper", "demo-4x3", "demo"], choices=sorted(SHAPES))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    cfg = UncertaintyConfig()
    print(f"alpha {ALPHA}, interval level {cfg.level}, {cfg.resamples} interval resamples, {cfg.permutations} "
          "sign patterns / test resamples (the analysis defaults)")
    for name in args.shapes:
        run_shape(SHAPES[name], args.studies, args.seed, cfg)


if __name__ == "__main__":
    main()
