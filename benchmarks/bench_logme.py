"""LOGME on the offline demo, against MAX and PROBE: ranking quality and cost.

Takes a finished demo sweep's storage folder (`python -m itsel_ray.sweep transfer --storage DIR --no-dashboard`),
computes the LogME table through the engine's readout and the `logme` model-backed input (every source's best
prompt on every target's fixed training sample, the transfer-stage settings at the first target seed, as the
sweep's analyze stage makes it), adds it to the study read from the results folder and prints, over every (target,
seed) cell: nDCG x100, Regret@1 and the pairwise AUC of related vs unrelated sources (the planted relatedness of
itsel_ray/tasks/synthetic.py) of LOGME, MAX and PROBE, with RANDOM's exact expectation and the paired p-values
against MAX; then the seconds per (source, target) pair: the whole pass (encoder features + LogME), LogME's fit
alone, and PROBE's pass over the same rows for comparison.

    python benchmarks/bench_logme.py --storage /tmp/demo-store [--examples 256] [--logme-csv out.csv]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from itsel_ray.analysis import analysis_config_from_dict, run_analysis, study_from_sweep
from itsel_ray.analysis.tables_uncertainty import p_text
from itsel_ray.analysis.from_sweep import source_library_from_sweep
from itsel_ray.engine import get_engine
from itsel_ray.selection import MODEL_INPUTS
from itsel_ray.selection.logme import logme
from itsel_ray.runs.sweep_file import load_sweep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_check import selector_auc  # noqa: E402  (the demo's AUC of related vs unrelated sources)

SELECTORS = ["random", "max", "probe", "logme"]


def model_input(engine, name: str, cfg, library: dict, examples: int) -> tuple[dict, int, object]:
    """({source: score}, rows read, the readout) of model-backed input `name` on one target."""
    readout = engine.readout(cfg, library, max_examples=examples)
    return MODEL_INPUTS.get(name).scores(readout), readout.rows, readout


def logme_table(sweep, sources, prompts, examples: int) -> tuple[pd.DataFrame, dict]:
    """The logme table (target, source, score, examples) and the timings per target."""
    rows, per_pair, probe_pair, fit_only = [], [], [], []
    library = dict(zip(sources, prompts))
    engine = get_engine(sweep.spec.engine)
    for target in sweep.grid.targets:
        cfg = sweep.trial_config("transfer", task=target, seed=sweep.grid.target_seeds[0])
        for name in ("logme", "probe"):  # warm: data and model loaded once
            model_input(engine, name, cfg, {sources[0]: prompts[0]}, examples)
        t0 = time.perf_counter()
        scores, n, readout = model_input(engine, "logme", cfg, library, examples)
        per_pair.append((time.perf_counter() - t0) / len(sources))
        t0 = time.perf_counter()
        model_input(engine, "probe", cfg, library, examples)  # PROBE's pass over the same rows, for comparison
        probe_pair.append((time.perf_counter() - t0) / len(sources))
        rows += [{"target": target, "source": s, "score": v, "examples": n} for s, v in scores.items()]
        fit_only.append(_fit_seconds(readout, sources[0]))
    return pd.DataFrame(rows), {"pair_s": statistics.median(per_pair), "fit_s": statistics.median(fit_only),
                                "probe_s": statistics.median(probe_pair)}


def _fit_seconds(readout, source: str, repeats: int = 5) -> float:
    """Median seconds of LogME's fit alone on one pair's features."""
    labels, regression = readout.targets()
    feats = readout.features()[source]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        logme(feats, labels, regression=regression)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", type=Path, required=True, help="the demo sweep's --storage folder")
    p.add_argument("--sweep", default="demo")
    p.add_argument("--examples", type=int, default=256, help="target training rows per pair (the probe's 256)")
    p.add_argument("--logme-csv", type=Path, help="also write the logme table here")
    args = p.parse_args()
    torch.set_num_threads(1)
    results = args.storage / args.sweep / "results"
    sweep = load_sweep(args.sweep)
    sources, prompts = source_library_from_sweep(results)
    with threadpool_limits(1):  # one thread for torch and BLAS alike, as a Ray worker with one CPU has
        table, timing = logme_table(sweep, sources, prompts, args.examples)
    if args.logme_csv:
        table.to_csv(args.logme_csv, index=False)
    study = study_from_sweep(results)
    grid = table.pivot(index="target", columns="source", values="score")
    logme_grid = grid.reindex(index=list(study.targets), columns=list(study.sources)).to_numpy()
    study = dataclasses.replace(study, model_scores={**study.model_scores, "logme": logme_grid})
    cfg = analysis_config_from_dict({"selectors": SELECTORS, "metrics": ["ndcg", "regret@1"], "groups": [],
                                     "table4_selectors": ["max"], "step_selectors": ["max"], "tsne_targets": [],
                                     "uncertainty": {"reference": "max"}})
    with tempfile.TemporaryDirectory() as tmp:
        run_analysis(study, cfg, Path(tmp) / "analysis")
        t3 = pd.read_csv(Path(tmp) / "analysis" / "table3.csv", index_col=0)
        auc = selector_auc(pd.read_csv(Path(tmp) / "analysis" / "selector_scores.csv"), None)
    cells = int(t3["ALL nDCG cells"].iloc[0])
    print(f"demo ({results}): {len(sources)} sources x {len(study.targets)} targets, {cells} (target, seed) cells; "
          f"prompt selectors at the last saved step; LogME on up to {args.examples} training rows per target")
    print(f"{'selector':<9}{'nDCG x100 [95% CI]':>24}{'Regret@1 [95% CI]':>24}{'AUC':>7}"
          f"{'p(nDCG) vs RANDOM':>19}{'vs MAX':>8}")
    for label in ["RANDOM", "MAX", "PROBE", "LOGME"]:
        r = t3.loc[label]
        nd = f"{r['ALL nDCG']:.1f} [{r['ALL nDCG low']:.1f}, {r['ALL nDCG high']:.1f}]"
        rg = f"{r['ALL R@1']:.1f} [{r['ALL R@1 low']:.1f}, {r['ALL R@1 high']:.1f}]"
        a = 0.5 if label == "RANDOM" else auc.get(label, float("nan"))
        print(f"{label:<9}{nd:>24}{rg:>24}{a:>7.3f}{p_text(r['ALL nDCG p_random']):>19}"
              f"{p_text(r['ALL nDCG p_reference']):>8}")
    print(f"cost per (source, target) pair (median over targets, 1 thread): LOGME {timing['pair_s']:.3f} s "
          f"(encoder features + LogME; the fit alone {timing['fit_s'] * 1000:.1f} ms), PROBE {timing['probe_s']:.3f} s "
          f"(encoder + decoder loss): {timing['pair_s'] / timing['probe_s']:.2f}x")


if __name__ == "__main__":
    main()
