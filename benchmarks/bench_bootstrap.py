"""The cost of Table 3's uncertainty at the paper's size: an interval and two paired tests for every selector,
group and metric (the defaults: bootstrap-t interval, per-target sign flip, per-target bootstrap-t against RANDOM).

The paper's size: 13 sources in 3 groups (+ ALL), 10 targets x 3 seeds, the paper's selectors (SEMB left out: it
needs the tasks' texts) at one checkpoint step, Table 3's metrics (Regret@1, nDCG, Regret@3). Prints the median
seconds of `table3_uncertainty` for several resample counts (the default first), the share of the whole analysis
(cells, tables, figures, report) it takes at the default, the same at 10x the targets, and the cost of one
interval and one test.

    python benchmarks/bench_bootstrap.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from itsel_ray.analysis import analysis_config_from_dict, run_analysis
from itsel_ray.analysis.cells import CellRunner
from itsel_ray.analysis.run import build_context, collect
from itsel_ray.analysis.synthetic import synthetic_study
from itsel_ray.analysis.tables_uncertainty import table3_uncertainty
from itsel_ray.analysis.uncertainty import bootstrap_t, cluster_bootstrap_t, cluster_sign_flip

SELECTORS = ["random", "random-draw", "size", "feature", "unigram", "max",
             {"selector": "max", "label": "MAX-SRC", "options": {"max_direction": "source_centric"}},
             "max-topk", "mmd", "fusion", "probe", "logme"]


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


CFG = analysis_config_from_dict({"selectors": SELECTORS, "metrics": ["ndcg", "regret@1", "regret@3"],
                                 "table4_selectors": ["max"], "step_selectors": ["max"], "tsne_targets": []})


def prepared(n_targets: int):
    """(study, the uncertainty table as a function of the resample count) for a study of `n_targets` targets."""
    study = synthetic_study(n_sources=13, n_targets=n_targets, seeds=(28, 52, 112), steps=(20000,), tokens=100,
                            dim=64, probe=True, logme=True)
    ctx, cells, headline = build_context(study, CFG)
    tidy, _, _ = collect([CellRunner(ctx)(c) for c in cells], study)
    labels = [e.label for e in ctx.entries]

    def uncertainty(resamples: int):
        u = dataclasses.replace(CFG.uncertainty, resamples=resamples)
        return table3_uncertainty(tidy, selectors=labels, groups=list(ctx.groups), metric_labels=["ndcg", "regret@1",
                                  "regret@3"], targets=study.targets, seeds=study.seeds, step=headline, cfg=u,
                                  random_label="RANDOM", reference_label="FEATURE")

    return study, ctx, uncertainty


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    cfg = CFG
    study, ctx, uncertainty = prepared(10)
    labels = [e.label for e in ctx.entries]

    default = cfg.uncertainty.resamples
    rows = len(uncertainty(default))
    print(f"paper size: {len(labels)} selectors x {len(ctx.groups)} groups x 3 metrics = {rows} intervals and "
          f"{2 * rows} paired tests over {len(study.targets)} targets x {len(study.seeds)} seeds; "
          f"{cfg.uncertainty.permutations} sign patterns per test")
    for resamples in (default, 1000, 10000):
        s = median_seconds(lambda: uncertainty(resamples), args.repeats)
        print(f"  resamples {resamples:>6}{' (default)' if resamples == default else '':<10}: {s:6.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        whole = median_seconds(lambda: run_analysis(study, cfg, Path(tmp) / "a"), max(1, args.repeats - 1))
    part = median_seconds(lambda: uncertainty(default), args.repeats)
    print(f"the whole analysis at the default: {whole:.2f} s, of which the uncertainty {part:.2f} s "
          f"({100 * part / whole:.0f} %)")
    _, _, tenfold = prepared(100)
    big = median_seconds(lambda: tenfold(default), args.repeats)
    print(f"10x the targets (100 x 3 cells): {big:.2f} s at the default, {big / part:.1f}x the paper's size")
    values = np.random.default_rng(0).uniform(50, 95, size=(10, 3))
    one_ci = median_seconds(lambda: bootstrap_t(values, level=0.95, resamples=default, seed=0), 20)
    one_test = median_seconds(lambda: cluster_sign_flip(values, values[::-1], permutations=10000, seed=0), 20)
    one_random = median_seconds(lambda: cluster_bootstrap_t(values, values[::-1], permutations=10000, seed=0), 20)
    print(f"one interval (bootstrap-t, {default} resamples): {one_ci * 1000:.2f} ms; one test between selectors "
          f"(10 targets, 1,024 sign patterns): {one_test * 1000:.2f} ms; one test against RANDOM (bootstrap-t, "
          f"10,000 resamples): {one_random * 1000:.2f} ms")


if __name__ == "__main__":
    main()
