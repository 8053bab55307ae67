"""The paper's tables as DataFrames (pure; writing them to disk is `report.py`'s job).

Table 3: selector quality (nDCG, Regret@k, rank correlations) per source group and ALL.
Table 4: the score reached by the best of each selector's top-k picks, against no transfer.
Table 7: the transfer matrix, mean and std over seeds, with the no-transfer baseline row.
Table 8: the top-n sources per target and seed, with task types and relative gain.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from itsel_ray.analysis.cells import ALL
from itsel_ray.analysis.meta import CATEGORY_LABELS
from itsel_ray.analysis.study import Study, seed_label
from itsel_ray.metrics.ranking import expected_best_of_random_k, rank_from_scores, relative_transfer

# Metrics shown as percentages (x100) in the tables.
PERCENT_METRICS = ("ndcg",)


def at_step(tidy: pd.DataFrame, step: int | None) -> pd.DataFrame:
    """Rows of prompt-free selectors, plus rows of prompt selectors at `step`."""
    steps = tidy["step"]
    return tidy[steps.isna() | (steps == step)] if step is not None else tidy[steps.isna()]


def group_label(group: str) -> str:
    return "ALL" if group == ALL else CATEGORY_LABELS.get(group, group.upper())


def selector_summary(tidy: pd.DataFrame, metric_labels: Sequence[str], step: int | None) -> pd.DataFrame:
    """Long summary: (selector, group) -> mean of each metric over scored cells, plus cell counts.

    Columns: selector, group, <metrics...>, n_cells (scored), n_partial, n_undefined (a metric is undefined there,
    e.g. the best score is 0: not scored), n_missing (missing scores: not scored), n_failed (the selector raised
    there: not scored).
    """
    rows = at_step(tidy, step)
    counts = rows.groupby(["selector", "group"], sort=False).agg(
        n_cells=("status", lambda s: int((s == "ok").sum())),
        n_partial=("partial", lambda s: int(s.astype(bool).sum())),
        n_undefined=("status", lambda s: int((s == "undefined").sum())),
        n_missing=("status", lambda s: int((s == "missing").sum())),
        n_failed=("status", lambda s: int((s == "failed").sum())),
    )
    ok = rows[rows["status"] == "ok"]
    means = ok.groupby(["selector", "group"], sort=False)[list(metric_labels)].mean()
    # keep the selectors and groups in the order they were evaluated (config order)
    return means.reindex(counts.index).join(counts).reset_index()


def table3_metrics(metric_labels: Sequence[str]) -> list[str]:
    """The metrics of Table 3 in its column order: the first Regret@k, nDCG, then the other Regret@k."""
    regrets = [m for m in metric_labels if m.startswith("regret")]
    return regrets[:1] + [m for m in metric_labels if m.startswith("ndcg")] + regrets[1:]


def table3(summary: pd.DataFrame, selectors: Sequence[str], groups: Sequence[str],
           metric_labels: Sequence[str]) -> pd.DataFrame:
    """Wide Table 3: one row per selector; columns "<GROUP> <metric>" for the regret and nDCG metrics, groups in
    `groups` order then ALL. nDCG as a percentage."""
    out = pd.DataFrame(index=pd.Index(list(selectors), name="selector"))
    for group in (*groups, ALL):
        part = summary[summary["group"] == group].set_index("selector")
        for metric in table3_metrics(metric_labels):
            scale = 100.0 if metric.split("@")[0] in PERCENT_METRICS else 1.0
            out[f"{group_label(group)} {metric_label(metric)}"] = part[metric].reindex(out.index) * scale
    return out


def correlations_table(summary: pd.DataFrame, selectors: Sequence[str], metric_labels: Sequence[str]) -> pd.DataFrame:
    """Every metric over ALL sources (the rank correlations included), one row per selector."""
    part = summary[summary["group"] == ALL].set_index("selector").reindex(list(selectors))
    out = part[list(metric_labels)].copy()
    for metric in metric_labels:
        if metric.split("@")[0] in PERCENT_METRICS:
            out[metric] = out[metric] * 100.0
    out.columns = [metric_label(m) for m in metric_labels]
    out["cells"] = part["n_cells"].astype("Int64")
    out["undefined"] = part["n_undefined"].astype("Int64")
    out["missing"] = part["n_missing"].astype("Int64")
    out.index.name = "selector"
    return out


def metric_label(metric: str) -> str:
    name, _, k = metric.partition("@")
    return {"ndcg": "nDCG", "regret": "R", "spearman": "Spearman", "kendall": "Kendall"}.get(name, name) + (
        f"@{k}" if k else "")


def complete_cells(study: Study) -> list[tuple[str, int]]:
    """(target, seed) cells with every transfer score and the baseline present."""
    return [(t, r) for ti, t in enumerate(study.targets) for ri, r in enumerate(study.seeds)
            if not np.isnan(study.transfer[:, ti, ri]).any() and not np.isnan(study.baseline[ti, ri])]


def table4(study: Study, scores: Mapping[tuple[str, str, int, int | None], np.ndarray],
           selectors: Sequence[tuple[str, bool, int | None]], ks: Sequence[int]) -> pd.DataFrame:
    """Best-of-top-k transfer score of each selector against no transfer, over the complete cells.

    Args:
        scores: (label, target, seed, step) -> [S] selector scores.
        selectors: (label, uniform, step) rows to show; `uniform` selectors use the exact expectation. A selector
            without a finite score for every source of every complete cell is left out: its mean would run over
            other cells than the rest of the table's.
    Returns: rows "NO TRANSFER", each (selector, k), and "ORACLE"; columns abs (mean gain, points),
        rel (abs / mean baseline x 100, as the paper), rel_cells (mean per-cell relative gain, %), avg_score,
        cells.
    """
    cells = complete_cells(study)
    base = np.array([study.baseline_of(t, r) for t, r in cells])
    truth = [study.transfer[:, study.targets.index(t), study.seeds.index(r)] for t, r in cells]
    rows = [("NO TRANSFER", None, base)]
    for label, uniform, step in selectors:
        for k in ks:
            best = []
            for (t, r), rel in zip(cells, truth):
                if uniform:
                    best.append(expected_best_of_random_k(rel, k=k))
                    continue
                s = scores.get((label, t, r, step))
                if s is None or not np.isfinite(s).all():
                    best = None
                    break
                best.append(float(rel[rank_from_scores(s, study.sources)[:k]].max()))
            if best is not None:
                rows.append((label, k, np.array(best)))
    rows.append(("ORACLE", None, np.array([rel.max() for rel in truth])))
    out = []
    for label, k, best in rows:
        gain = best - base
        out.append({"selector": label, "k": k, "abs": float(gain.mean()) if cells else np.nan,
                    "rel": float(gain.mean() / base.mean() * 100) if cells else np.nan,
                    "rel_cells": float(np.mean(relative_transfer(best, base)) * 100) if cells else np.nan,
                    "avg_score": float(best.mean()) if cells else np.nan, "cells": len(cells)})
    df = pd.DataFrame(out)
    df.loc[df["selector"] == "NO TRANSFER", ["abs", "rel", "rel_cells"]] = np.nan
    df["k"] = df["k"].astype("Int64")
    return df


def table7(study: Study) -> pd.DataFrame:
    """Rows: "no transfer" then the sources; columns "<target>" (mean over seeds) and "<target>_std"."""
    tm, ts, bm, bs = study.mean_std()
    index = ["no transfer", *study.sources]
    data = {}
    for ti, t in enumerate(study.targets):
        data[t] = np.concatenate([[bm[ti]], tm[:, ti]])
        data[f"{t}_std"] = np.concatenate([[bs[ti]], ts[:, ti]])
    return pd.DataFrame(data, index=pd.Index(index, name="source"))


def table8(study: Study, top_n: int = 3) -> pd.DataFrame:
    """The top `top_n` score levels per (target, seed): sources sharing a score share a rank ("A/B").

    Columns: target, seed, rank, sources, task_types, score, rel_pct (vs the baseline at that seed),
    same_type (some source of the level has the target's task type), same_type_sources (those sources, "/"-joined).
    """
    rows = []
    for ti, t in enumerate(study.targets):
        t_type = study.meta[t].task_type
        for ri, r in enumerate(study.seeds):
            col = study.transfer[:, ti, ri]
            levels = np.unique(col[~np.isnan(col)])[::-1][:top_n]
            for rank, level in enumerate(levels, start=1):
                names = [s for s, v in zip(study.sources, col) if v == level]
                types = [study.meta[s].task_type for s in names]
                same = [bool(t_type) and ty == t_type for ty in types]
                rows.append({
                    "target": t, "seed": seed_label(r), "rank": rank, "sources": "/".join(names),
                    "task_types": "/".join(types), "score": float(level),
                    "rel_pct": float(relative_transfer(level, study.baseline[ti, ri]) * 100),
                    "same_type": any(same), "same_type_sources": "/".join(n for n, m in zip(names, same) if m),
                })
    return pd.DataFrame(rows)
