"""Table 3 with its uncertainty, and the per-target view behind it (pure; `report.py` writes them).

`table3_uncertainty`: for every selector, group and Table 3 metric, the mean over scored cells, its interval, and
paired p-values against RANDOM's exact expectation and against a reference selector (targets as the unit; optionally
Holm-adjusted within a family of comparisons; none where too few targets let no test reach the level).
`per_target`: each target's seed mean and spread of nDCG and Regret@1 per selector. `cell_counts`: scored,
undefined, missing and failed cells per selector and group.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from itsel_ray.analysis.analysis_file import UncertaintyConfig
from itsel_ray.analysis.cells import ALL
from itsel_ray.analysis.markdown import fmt, md_table
from itsel_ray.analysis.tables import PERCENT_METRICS, at_step, group_label, metric_label, table3_metrics
from itsel_ray.analysis.uncertainty import INTERVALS, PAIRED_TESTS, cell_mean, holm, smallest_p

UNCERTAINTY_COLUMNS = ("low", "high", "cells", "targets", "p_random", "p_reference")
P_COLUMNS = ("p_random", "p_reference")
# The range of each metric's values (before the x100 of Table 3), to which an interval is clipped: nDCG <= 1 (the
# ideal order's DCG bounds every order's), Regret >= 0.
METRIC_BOUNDS = {"ndcg": (-np.inf, 1.0), "regret": (0.0, np.inf)}


def _scale(metric: str) -> float:
    return 100.0 if metric.split("@")[0] in PERCENT_METRICS else 1.0


def cell_values(rows: pd.DataFrame, metrics: Sequence[str], targets: Sequence[str],
                seeds: Sequence[int]) -> dict[str, np.ndarray]:
    """metric -> [T, R] values in `rows` (one selector and group), NaN where a cell is not scored."""
    ok = rows[rows["status"] == "ok"].set_index(["target", "seed"])
    full = pd.MultiIndex.from_product([list(targets), list(seeds)], names=["target", "seed"])
    table = ok[list(metrics)].reindex(full)
    return {m: table[m].to_numpy(dtype=np.float64).reshape(len(targets), len(seeds)) for m in metrics}


def table3_uncertainty(tidy: pd.DataFrame, *, selectors: Sequence[str], groups: Sequence[str],
                       metric_labels: Sequence[str], targets: Sequence[str], seeds: Sequence[int],
                       step: int | None, cfg: UncertaintyConfig, random_label: str | None,
                       reference_label: str | None) -> pd.DataFrame:
    """Long table: selector, group, metric, mean, low, high (the interval), cells and targets (scored), p_random,
    p_reference (Holm-adjusted within their family under `correction: holm`; NaN where that comparison is not
    made, e.g. a selector against itself, or where no p-value could reach `alpha`), p_random_raw,
    p_reference_raw and min_p (the smallest p-value the row's tests could give on its cells), in the Table 3
    scale (nDCG x100)."""
    rows = at_step(tidy, step)
    interval = INTERVALS.get(cfg.interval)
    metrics = table3_metrics(metric_labels)
    grids = {key: cell_values(part, metrics, targets, seeds)
             for key, part in rows.groupby(["selector", "group"], sort=False)}
    out = []
    for group in groups:
        for metric in metrics:
            values = {s: grids[(s, group)][metric] for s in selectors if (s, group) in grids}
            bounds = METRIC_BOUNDS.get(metric.split("@")[0], (-np.inf, np.inf))

            def against(selector, label, v, name):
                if label is None or label not in values or label == selector:
                    return np.nan, np.nan
                return (PAIRED_TESTS.get(name)(v, values[label], permutations=cfg.permutations, seed=cfg.seed),
                        smallest_p(name, v, values[label], permutations=cfg.permutations))

            for selector, v in values.items():
                ci = interval(v, level=cfg.level, resamples=cfg.resamples, seed=cfg.seed, bounds=bounds)
                scale = _scale(metric)
                p_r, min_r = against(selector, random_label, v, cfg.random_test)
                p_ref, min_ref = against(selector, reference_label, v, cfg.test)
                out.append({"selector": selector, "group": group, "metric": metric, "mean": cell_mean(v) * scale,
                            "low": ci.low * scale, "high": ci.high * scale, "cells": int(np.isfinite(v).sum()),
                            "targets": int(np.isfinite(v).any(axis=1).sum()), "p_random_raw": p_r,
                            "p_reference_raw": p_ref, "min_p": np.nanmin([min_r, min_ref, np.inf])})
    columns = ["selector", "group", "metric", "mean", "low", "high", "cells", "targets", *P_COLUMNS,
               "p_random_raw", "p_reference_raw", "min_p"]
    unc = pd.DataFrame(out, columns=[c for c in columns if c not in P_COLUMNS])
    return adjust_p_values(unc, cfg)[columns]


def adjust_p_values(unc: pd.DataFrame, cfg: UncertaintyConfig) -> pd.DataFrame:
    """p_random and p_reference from the raw p-values: Holm-adjusted within each family (`cfg.family`: one Table 3
    column, or the whole table) under `correction: holm`; left empty (NaN) on every row whose tests could not
    reach `alpha` on their cells at all."""
    unc = unc.copy()
    unc["min_p"] = unc["min_p"].replace(np.inf, np.nan)
    for raw, column in (("p_random_raw", "p_random"), ("p_reference_raw", "p_reference")):
        unc[column] = unc[raw]
    if cfg.correction == "holm" and len(unc):
        families = unc.groupby(["group", "metric"], sort=False) if cfg.family == "column" else [(None, unc)]
        for _, part in families:
            stacked = np.concatenate([part["p_random_raw"].to_numpy(), part["p_reference_raw"].to_numpy()])
            adjusted = holm(stacked)
            unc.loc[part.index, "p_random"] = adjusted[: len(part)]
            unc.loc[part.index, "p_reference"] = adjusted[len(part):]
    if cfg.correction == "holm":  # the smallest p after Holm: the family's size times the smallest raw p
        sizes = (unc[["p_random_raw", "p_reference_raw"]].notna().sum(axis=1)
                 .groupby([unc["group"], unc["metric"]] if cfg.family == "column" else np.zeros(len(unc)))
                 .transform("sum"))
        unc["min_p"] = np.minimum(1.0, unc["min_p"] * sizes.clip(lower=1))
    unreachable = ~(unc["min_p"] <= cfg.alpha)
    unc.loc[unreachable, list(P_COLUMNS)] = np.nan
    return unc


def unreachable_note(unc: pd.DataFrame, cfg: UncertaintyConfig, n_targets: int) -> str | None:
    """A sentence for the report when no test in Table 3 can reach `alpha` (too few targets), else None."""
    smallest = unc["min_p"].dropna()
    if smallest.empty or (smallest <= cfg.alpha).any():
        return None
    holm_text = (f" and Holm's correction multiplies it by the number of comparisons in its "
                 f"{'column' if cfg.family == 'column' else 'table'}" if cfg.correction == "holm" else "")
    return (f"No p-values: with {n_targets} targets, the smallest p-value a per-target test can give is "
            f"{2.0 / 2 ** n_targets:.3g} (each of the 2^{n_targets} sign patterns of the targets' differences is "
            f"as likely under the null){holm_text}: {smallest.min():.3g} at best, above alpha = {cfg.alpha:g}, so no "
            f"difference in this table can be shown significant. More targets are needed "
            f"({_targets_needed(cfg)} for a single per-target test to reach p < {cfg.alpha:g}); the intervals "
            "still show how far each mean may move.")


def _targets_needed(cfg: UncertaintyConfig) -> int:
    t = 1
    while 2.0 / 2 ** t > cfg.alpha:
        t += 1
    return t


def table3_with_uncertainty(t3: pd.DataFrame, unc: pd.DataFrame) -> pd.DataFrame:
    """Table 3 (wide) with, after its point columns, "<column> low|high|cells|targets|p_random|p_reference" columns
    (the p-values as reported: adjusted under a correction) and "<column> p_random_raw|p_reference_raw"."""
    out = t3.copy()
    extra = {}
    for _, r in unc.iterrows():
        column = f"{group_label(r['group'])} {metric_label(r['metric'])}"
        for name in (*UNCERTAINTY_COLUMNS, "p_random_raw", "p_reference_raw"):
            extra.setdefault(f"{column} {name}", {})[r["selector"]] = r[name]
    for column, values in extra.items():
        out[column] = pd.Series(values).reindex(out.index)
    return out


def per_target(tidy: pd.DataFrame, *, selectors: Sequence[str], targets: Sequence[str], step: int | None,
               metrics: Sequence[str] = ("ndcg", "regret@1")) -> pd.DataFrame:
    """Over ALL sources: target, selector, metric, mean and std (ddof 0) over the target's scored seeds (Table 3
    scale), scored and unscored (missing or undefined) seed counts."""
    rows = at_step(tidy, step)
    rows = rows[rows["group"] == ALL]
    out = []
    for metric in [m for m in metrics if m in rows.columns]:
        for target in targets:
            for selector in selectors:
                part = rows[(rows["target"] == target) & (rows["selector"] == selector)]
                if part.empty:
                    continue
                v = part.loc[part["status"] == "ok", metric].to_numpy(dtype=np.float64) * _scale(metric)
                out.append({"target": target, "selector": selector, "metric": metric,
                            "mean": float(v.mean()) if v.size else np.nan,
                            "std": float(v.std()) if v.size else np.nan,
                            "scored": int(v.size), "unscored": int(len(part) - v.size)})
    return pd.DataFrame(out, columns=["target", "selector", "metric", "mean", "std", "scored", "unscored"])


def cell_counts(summary: pd.DataFrame, selectors: Sequence[str], groups: Sequence[str]) -> pd.DataFrame:
    """Rows: selectors; columns "<GROUP> scored|undefined|missing|failed" (cells at the headline step)."""
    out = pd.DataFrame(index=pd.Index(list(selectors), name="selector"))
    for group in groups:
        part = summary[summary["group"] == group].set_index("selector").reindex(out.index)
        for name, column in (("scored", "n_cells"), ("undefined", "n_undefined"), ("missing", "n_missing"),
                             ("failed", "n_failed")):
            out[f"{group_label(group)} {name}"] = part[column].astype("Int64")
    return out


def p_text(p: float) -> str:
    """A p-value for a table: "-" when not computed, "<0.001", else three decimals ("1" for exactly 1)."""
    if not np.isfinite(p):
        return "-"
    if p == 1:
        return "1"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _wide(unc: pd.DataFrame, selectors: Sequence[str], cell) -> tuple[list[str], list[list[str]]]:
    columns, rows = [], {s: [] for s in selectors}
    for (group, metric), part in unc.groupby(["group", "metric"], sort=False):
        columns.append(f"{group_label(group)} {metric_label(metric)}")
        by_selector = part.set_index("selector")
        for s in selectors:
            rows[s].append(cell(by_selector.loc[s]) if s in by_selector.index else "-")
    return columns, [[s, *cells] for s, cells in rows.items()]


def table3_md(unc: pd.DataFrame, selectors: Sequence[str]) -> str:
    """Table 3 with each mean followed by its interval: "81.85 [79.90, 83.60]"."""
    columns, rows = _wide(unc, selectors, lambda r: f"{fmt(r['mean'])} [{fmt(r['low'])}, {fmt(r['high'])}]")
    return md_table(["selector", *columns], rows)


def table3_tests_md(unc: pd.DataFrame, selectors: Sequence[str]) -> str:
    """The paired p-values in Table 3's layout: "p vs RANDOM / p vs the reference"."""
    columns, rows = _wide(unc, selectors, lambda r: f"{p_text(r['p_random'])} / {p_text(r['p_reference'])}")
    return md_table(["selector", *columns], rows)


def per_target_md(pt: pd.DataFrame, metric: str, selectors: Sequence[str], targets: Sequence[str], *,
                  expectations: Sequence[str] = ()) -> str:
    """Rows: targets; columns: selectors; cells "seed mean ± std" (and "(k of n)" where seeds are unscored). The
    `expectations` (RANDOM: an exact expected value, not a draw) show the seed mean alone, marked "(exp.)"."""
    part = pt[pt["metric"] == metric].set_index(["target", "selector"])
    rows = []
    for target in targets:
        cells = []
        for s in selectors:
            if (target, s) not in part.index:
                cells.append("-")
                continue
            r = part.loc[(target, s)]
            text = f"{fmt(r['mean'])} (exp.)" if s in expectations else f"{fmt(r['mean'])} ± {fmt(r['std'])}"
            if r["unscored"]:
                text += f" ({int(r['scored'])} of {int(r['scored'] + r['unscored'])})"
            cells.append(text)
        rows.append([target, *cells])
    return md_table(["target", *selectors], rows)
