"""The offline demo's planted-structure check: run the demo sweep end to end and report what it shows.

    python benchmarks/demo_check.py                      # runs `python -m itsel_ray.sweep transfer --sweep demo`
    python benchmarks/demo_check.py --existing runs/demo # only reads a finished demo sweep
    python benchmarks/demo_check.py --sweep demo-causal  # the same demo on a tiny causal LM

Prints the wall time and peak memory of the whole command (the sum of the proportional set sizes of every process
on the machine above the idle baseline, sampled every second: Ray's processes included), the transfer gap between
related and unrelated sources (the planted ground truth in itsel_ray/tasks/synthetic.py), and every selector's
nDCG / Regret@1 next to RANDOM's exact expectation, plus each selector's pairwise AUC: the share of (related,
unrelated) source pairs it orders correctly, over every (target, seed) cell.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from itsel_ray.tasks.synthetic import ANTI_RELATED, RELATED


def total_pss_bytes() -> int:
    total = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            total += int(line.split()[1]) * 1024
                            break
            except OSError:
                continue
    return total


def run_demo(storage: Path, extra: list[str], sweep: str = "demo") -> dict:
    baseline, peak, done = total_pss_bytes(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], total_pss_bytes())
            time.sleep(1.0)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.time()
    cmd = [sys.executable, "-m", "itsel_ray.sweep", "transfer", "--sweep", sweep, "--storage", str(storage),
           "--quiet", *extra]
    code = subprocess.call(cmd)
    wall = time.time() - t0
    done.set()
    thread.join()
    if code != 0:
        raise SystemExit(f"the demo exited with status {code}")
    return {"wall_s": wall, "peak_mib": (peak[0] - baseline) / 2**20}


def transfer_gap(results: pd.DataFrame) -> dict:
    tr = results[(results.stage == "transfer") & (results.status == "done")]
    related = tr[[s in RELATED[t] for s, t in zip(tr.source, tr.target)]]
    # a "more" rule reads its second group with a negative sign: that source is neither related nor a fair
    # "unrelated" there
    unrelated = tr[[s not in RELATED[t] and s not in ANTI_RELATED[t] for s, t in zip(tr.source, tr.target)]]
    base = results[(results.stage == "tune") & (results.role == "target") & (results.status == "done")]
    return {"related": related.score.mean(), "unrelated": unrelated.score.mean(), "no_transfer": base.score.mean(),
            "gap": related.score.mean() - unrelated.score.mean(),
            "best_related_beats_best_unrelated": _best_related_wins(tr)}


def _best_related_wins(tr: pd.DataFrame) -> str:
    wins = cells = 0
    for (target, seed), cell in tr.groupby(["target", "seed"]):
        rel = cell[cell.source.isin(RELATED[target])].score.max()
        unrel = cell[~cell.source.isin([*RELATED[target], *ANTI_RELATED[target]])].score.max()
        wins, cells = wins + int(rel > unrel), cells + 1
    return f"{wins}/{cells}"


def selector_auc(scores: pd.DataFrame, step: float | None) -> pd.Series:
    """Per selector: the share of (related, unrelated) pairs with related scored higher (ties count half)."""
    out = {}
    for selector, rows in scores.groupby("selector"):
        if rows.step.notna().any():
            rows = rows[rows.step == (step if step is not None else rows.step.max())]
        pairs = []
        for (target, seed), cell in rows.groupby(["target", "seed"]):
            related = set(RELATED.get(target, ()))
            s = dict(zip(cell.source, cell.score))
            excluded = set(ANTI_RELATED.get(target, ()))
            for r in related & set(s):
                for u in set(s) - related - excluded:
                    pairs.append(1.0 if s[r] > s[u] else 0.5 if s[r] == s[u] else 0.0)
        out[selector] = np.mean(pairs) if pairs else float("nan")
    return pd.Series(out, name="AUC")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--existing", type=Path, help="a finished demo sweep folder (<storage>/demo) to read only")
    ap.add_argument("--storage", type=Path, default=Path("runs-demo-check"))
    ap.add_argument("--sweep", default="demo", help="a demo sweep with the synthetic tasks (demo, demo-causal)")
    args, extra = ap.parse_known_args(argv)
    if args.existing is None:
        stats = run_demo(args.storage, extra, args.sweep)
        root = args.storage / args.sweep
        print(f"demo: wall {stats['wall_s'] / 60:.1f} min, peak memory {stats['peak_mib']:.0f} MiB (PSS, all processes)")
    else:
        root = args.existing
    results = pd.read_csv(root / "results" / "results.csv")
    print("status:", results.groupby(["stage", "status"]).size().to_dict())
    gap = transfer_gap(results)
    print(f"transfer accuracy: related {gap['related']:.1f}, unrelated {gap['unrelated']:.1f}, "
          f"no transfer {gap['no_transfer']:.1f}; gap related - unrelated {gap['gap']:+.1f} points; "
          f"best related source beats best unrelated in {gap['best_related_beats_best_unrelated']} cells")
    metrics = pd.read_csv(root / "analysis" / "table3_all_metrics.csv").set_index("selector")
    auc = selector_auc(pd.read_csv(root / "analysis" / "selector_scores.csv"), None)
    table = metrics[["nDCG", "Spearman", "R@1", "R@3", "cells"]].join(auc)
    rnd = metrics.loc["RANDOM"]
    print(f"RANDOM (exact expectation): nDCG {rnd['nDCG']:.1f}, R@1 {rnd['R@1']:.2f}, Spearman 0, AUC 0.50")
    print(table.round(3).to_string())
    better = [s for s in table.index if table.loc[s, "nDCG"] > rnd["nDCG"] and table.loc[s, "R@1"] < rnd["R@1"]
              and s not in ("RANDOM", "RANDOM (draw)")]
    print("beat RANDOM on both nDCG and Regret@1:", ", ".join(better) or "none")
    print(uncertainty_table(root).to_string())


def uncertainty_table(root: Path) -> pd.DataFrame:
    """Per selector at the headline step: nDCG x100 and Spearman, each with the analysis' 95 % interval over
    targets (itsel_ray.analysis.uncertainty.bootstrap_t) and the per-target bootstrap-t p-value against RANDOM's
    exact expectation (Spearman's is 0)."""
    from itsel_ray.analysis.uncertainty import bootstrap_t, cluster_bootstrap_t

    tidy = pd.read_csv(root / "analysis" / "selector_metrics.csv")
    tidy = tidy[(tidy.group == "all") & (tidy.status == "ok")]
    last = tidy.step.max()
    tidy = tidy[tidy.step.isna() | (tidy.step == last)]
    grid = lambda rows, m: rows.pivot_table(index="target", columns="seed", values=m).to_numpy()  # noqa: E731
    random_ndcg = grid(tidy[tidy.selector == "RANDOM"], "ndcg")
    out = {}
    for selector, rows in tidy.groupby("selector", sort=False):
        row = {}
        for m, scale, null in (("ndcg", 100, random_ndcg), ("spearman", 1, None)):
            v = grid(rows, m)
            ci = bootstrap_t(v, level=0.95, resamples=2000, seed=0, bounds=(-1.0, 1.0))
            null = np.zeros_like(v) if null is None else null
            p = cluster_bootstrap_t(v, null, permutations=10000, seed=0) if selector != "RANDOM" else np.nan
            row[m] = f"{np.nanmean(v) * scale:.2f} [{ci.low * scale:.2f}, {ci.high * scale:.2f}]"
            row[f"p {m}"] = "-" if np.isnan(p) else f"{p:.4f}"
        out[selector] = row
    return pd.DataFrame(out).T


if __name__ == "__main__":
    main()
