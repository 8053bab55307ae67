"""The paper's figures as PNG files (matplotlib, Agg backend).

Fig. 3: relative transfer per target (violins), targets by training-set size. Fig. 4: t-SNE of prompt tokens.
Fig. 5 / 7: nDCG against checkpoint step (mean / per target). Fig. 6: transfer gain against training-set size.
Plus a heatmap of the transfer matrix (relative gain of the mean over seeds).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from itsel_ray.analysis.cells import ALL  # noqa: E402
from itsel_ray.analysis.study import Study  # noqa: E402
from itsel_ray.artifacts import atomic_write_bytes  # noqa: E402
from itsel_ray.metrics.ranking import relative_transfer  # noqa: E402


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def relative_per_run(study: Study) -> np.ndarray:
    """[S, T, R] relative transfer in percent (NaN where missing)."""
    return relative_transfer(study.transfer, study.baseline[None, :, :]) * 100.0


def targets_by_size(study: Study) -> list[int]:
    """Target indices by training-set size, largest first (ties by name)."""
    return sorted(range(len(study.targets)), key=lambda i: (-study.meta[study.targets[i]].train_size,
                                                            study.targets[i]))


def fig3_violin(study: Study, path: Path) -> Path:
    rel = relative_per_run(study)
    order = targets_by_size(study)
    data = [rel[:, i, :].ravel()[~np.isnan(rel[:, i, :].ravel())] for i in order]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(order)), 4))
    keep = [j for j, d in enumerate(data) if d.size > 0]
    if keep:
        ax.violinplot([data[j] for j in keep], positions=keep, showmedians=True)
    rng = np.random.default_rng(0)
    for j, d in enumerate(data):
        ax.scatter(j + rng.uniform(-0.12, 0.12, d.size), d, s=6, alpha=0.6, color="k")
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(order)), [study.targets[i] for i in order], rotation=30)
    ax.set_ylabel("relative transfer (%)")
    ax.set_title("Relative transfer per target (targets by training-set size, largest first)")
    return _save(fig, path)


def fig6_gain_vs_size(study: Study, path: Path) -> Path:
    """Left: every run's relative transfer against the target's training-set size, with the trend of the
    per-target means. Right: how many runs beat the no-transfer baseline, per target."""
    rel = relative_per_run(study)
    sizes = np.array([study.meta[t].train_size for t in study.targets], dtype=float)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    means, ups, totals = [], [], []
    for i in range(len(study.targets)):
        d = rel[:, i, :].ravel()
        d = d[~np.isnan(d)]
        ax.scatter(np.full(d.size, sizes[i]), d, s=8, alpha=0.5)
        means.append(d.mean() if d.size else np.nan)
        ups.append(int((d > 0).sum()))
        totals.append(d.size)
    means = np.array(means)
    ok = ~np.isnan(means) & (sizes > 0)
    if ok.sum() >= 2 and np.ptp(np.log10(sizes[ok])) > 0:
        slope, icpt = np.polyfit(np.log10(sizes[ok]), means[ok], 1)
        xs = np.logspace(np.log10(sizes[ok].min()), np.log10(sizes[ok].max()), 50)
        ax.plot(xs, slope * np.log10(xs) + icpt, color="k", lw=1, label=f"mean trend ({slope:+.2f} %/decade)")
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("target training-set size")
    ax.set_ylabel("relative transfer (%)")
    ax.set_title("Relative transfer of every run")
    ax2.scatter(sizes, ups, color="tab:blue")
    for i, t in enumerate(study.targets):
        ax2.annotate(f"{t} ({ups[i]}/{totals[i]})", (sizes[i], ups[i]), fontsize=7, xytext=(3, 3),
                     textcoords="offset points")
    ax2.set_xscale("log")
    ax2.set_xlabel("target training-set size")
    ax2.set_ylabel("runs above the baseline")
    ax2.set_title("Improved transfers per target")
    fig.suptitle("Transfer gain against training-set size")
    return _save(fig, path)


def heatmap(study: Study, path: Path) -> Path:
    tm, _, bm, _ = study.mean_std()
    rel = relative_transfer(tm, bm[None, :]) * 100.0
    fig, ax = plt.subplots(figsize=(1 + 0.75 * len(study.targets), 1 + 0.4 * len(study.sources)))
    lim = np.nanmax(np.abs(rel)) if np.isfinite(rel).any() else 1.0
    im = ax.imshow(rel, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for (i, j), v in np.ndenumerate(rel):
        ax.text(j, i, "-" if np.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(study.targets)), study.targets, rotation=30)
    ax.set_yticks(range(len(study.sources)), study.sources)
    fig.colorbar(im, ax=ax, label="relative gain of the mean over seeds (%)")
    ax.set_title("Transfer matrix (source rows, target columns)")
    return _save(fig, path)


def _step_curves(tidy: pd.DataFrame, labels: Sequence[str], by: list[str]) -> pd.DataFrame:
    rows = tidy[(tidy["group"] == ALL) & (tidy["status"] == "ok") & tidy["step"].notna()
                & tidy["selector"].isin(labels)]
    return rows.groupby([*by, "selector", "step"])["ndcg"].mean().reset_index()


def fig5_ndcg_by_step(tidy: pd.DataFrame, labels: Sequence[str], references: Sequence[str], path: Path) -> Path:
    """Mean nDCG (x100) over all cells against the target checkpoint step; `references` (prompt-free selectors)
    as horizontal lines."""
    curves = _step_curves(tidy, labels, [])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label in labels:
        c = curves[curves["selector"] == label]
        if len(c):
            ax.plot(c["step"], c["ndcg"] * 100, marker="o", label=label)
    flat = tidy[(tidy["group"] == ALL) & (tidy["status"] == "ok") & tidy["step"].isna()]
    shades = plt.cm.Greys(np.linspace(0.35, 0.9, max(1, len(references))))
    for label, style, shade in zip(references, [":", "--", "-."] * len(references), shades):
        v = flat.loc[flat["selector"] == label, "ndcg"].mean()
        if np.isfinite(v):
            ax.axhline(v * 100, ls=style, lw=1.2, color=shade, label=f"{label} (no target prompt)")
    ax.set_xlabel("target prompt checkpoint step")
    ax.set_ylabel("nDCG (x100), mean over targets and seeds")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title("Task prediction against training steps")
    return _save(fig, path)


def fig7_ndcg_by_step_per_target(tidy: pd.DataFrame, labels: Sequence[str], targets: Sequence[str],
                                 path: Path) -> Path:
    curves = _step_curves(tidy, labels, ["target"])
    n = len(targets)
    cols = min(5, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.6 * rows), squeeze=False, sharex=True)
    for k, target in enumerate(targets):
        ax = axes[k // cols][k % cols]
        for label in labels:
            c = curves[(curves["target"] == target) & (curves["selector"] == label)]
            if len(c):
                ax.plot(c["step"], c["ndcg"] * 100, marker=".", label=label)
        ax.set_title(f"({chr(97 + k)}) {target}", fontsize=9)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8)
    fig.suptitle("nDCG (x100) against target checkpoint step, per target")
    return _save(fig, path)


def fig4_tsne(study: Study, target: str, seed: int, step: int, path: Path, *, random_state: int = 0) -> Path:
    """t-SNE of the prompt tokens of the best, 2nd-best and worst source (mean transfer over seeds) and the
    target's own prompt at (seed, step)."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    t = study.targets.index(target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(study.transfer[:, t, :], axis=1)
    ranked = [i for i in np.argsort(-np.nan_to_num(mean, nan=-np.inf), kind="stable") if not np.isnan(mean[i])]
    picks = [("best", ranked[0]), ("2nd best", ranked[1]), ("worst", ranked[-1])]
    groups = [(f"{role}: {study.sources[i]}", study.source_prompts[i]) for role, i in picks]
    groups.append((f"target: {target}", study.target_prompts[(target, seed, step)]))
    tokens = np.concatenate([g for _, g in groups]).astype(np.float64)
    perplexity = float(min(30.0, max(2.0, (len(tokens) - 1) / 3.0)))
    # One thread: t-SNE's OpenMP loop is tiny per iteration, and on a shared machine extra threads spin and
    # slow it down by an order of magnitude.
    with threadpool_limits(1):
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca",
                  random_state=random_state).fit_transform(tokens)
    fig, ax = plt.subplots(figsize=(5, 5))
    start = 0
    for (name, g), color in zip(groups, ("tab:green", "tab:blue", "tab:brown", "tab:red")):
        ax.scatter(xy[start:start + len(g), 0], xy[start:start + len(g), 1], s=10, color=color, label=name,
                   alpha=0.7)
        start += len(g)
    ax.legend(fontsize=8)
    ax.set_title(f"t-SNE of prompt tokens: {target} (seed {seed}, step {step})")
    return _save(fig, path)
