"""The paper's figures as PNG files (matplotlib, Agg backend).

Fig. 3: relative transfer per target (violins), targets by training-set size. Fig. 4: t-SNE of prompt tokens.
Fig. 5 / 7: nDCG against checkpoint step (mean / per target). Fig. 6: transfer gain against training-set size.
Plus a heatmap of the transfer matrix (relative gain of the mean over seeds).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Callable, Sequence

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


def _target_colours(n: int) -> list:
    return list(plt.cm.tab10(np.arange(n) % 10)) if n <= 10 else list(plt.cm.tab20(np.arange(n) % 20))


def _plain_log_axis(ax) -> None:
    """A log x axis labelled at 1, 2 and 5 times the powers of ten in plain numbers (matplotlib's default also
    labels 3x10^2, 4x10^2, ..., which collide)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def fig6_gain_vs_size(study: Study, path: Path) -> Path:
    """Left: every run's relative transfer against the target's training-set size, one colour per target (legend),
    with the trend of the per-target means. Right: the share of runs that beat the no-transfer baseline, one bar
    per target in size order, coloured alike."""
    rel = relative_per_run(study)
    sizes = np.array([study.meta[t].train_size for t in study.targets], dtype=float)
    order = targets_by_size(study)[::-1]  # smallest first, as on the left panel's axis
    colours = _target_colours(len(study.targets))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.25, 1]})
    means, ups, totals = [], [], []
    for i, t in enumerate(study.targets):
        d = rel[:, i, :].ravel()
        d = d[~np.isnan(d)]
        ax.scatter(np.full(d.size, sizes[i]), d, s=10, alpha=0.6, color=colours[i],
                   label=f"{t} ({int(sizes[i]):,} rows)")
        means.append(d.mean() if d.size else np.nan)
        ups.append(int((d > 0).sum()))
        totals.append(d.size)
    means = np.array(means)
    ok = ~np.isnan(means) & (sizes > 0)
    if ok.sum() >= 2 and np.ptp(np.log10(sizes[ok])) > 0:
        slope, icpt = np.polyfit(np.log10(sizes[ok]), means[ok], 1)
        xs = np.logspace(np.log10(sizes[ok].min()), np.log10(sizes[ok].max()), 50)
        ax.plot(xs, slope * np.log10(xs) + icpt, color="k", lw=1, label=f"mean trend ({slope:+.2f} %/decade)")
    _plain_log_axis(ax)
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("target training-set size (log scale)")
    ax.set_ylabel("relative transfer (%)")
    ax.set_title("Relative transfer of every run")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="target", title_fontsize=7)
    share = [100.0 * ups[i] / totals[i] if totals[i] else 0.0 for i in order]
    bars = ax2.bar(range(len(order)), share, color=[colours[i] for i in order])
    for bar, i in zip(bars, order):
        ax2.annotate(f"{ups[i]}/{totals[i]}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                     ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax2.set_xticks(range(len(order)), [study.targets[i] for i in order], rotation=90, fontsize=8)
    ax2.set_ylim(0, 112)
    ax2.set_ylabel("runs above the baseline (%)")
    ax2.set_title("Improved transfers per target (smallest target first)")
    fig.suptitle("Transfer gain against training-set size")
    fig.tight_layout()
    return _save(fig, path)


def heatmap_norm(values: np.ndarray):
    """A diverging colour scale centred on 0 for `values` [sources, targets], symmetric in +-max|value|. When the
    largest magnitude is over 10x that of a typical column (the median of the columns' largest magnitudes), the
    scale is linear up to the typical column's extent and logarithmic beyond it, so an outlier column keeps its
    extreme colour without washing every other column out to white."""
    from matplotlib.colors import Normalize, SymLogNorm

    values = np.asarray(values, dtype=np.float64)
    mag = np.where(np.isfinite(values), np.abs(values), np.nan)
    lim = float(np.nanmax(mag)) if np.isfinite(mag).any() and np.nanmax(mag) > 0 else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
        column_max = np.nanmax(mag.reshape(mag.shape[0], -1), axis=0)
    column_max = column_max[np.isfinite(column_max) & (column_max > 0)]
    typical = float(np.median(column_max)) if column_max.size else lim
    if lim <= 10 * typical:
        return Normalize(vmin=-lim, vmax=lim)
    return SymLogNorm(linthresh=typical, linscale=2.0, vmin=-lim, vmax=lim, base=10)


def heatmap(study: Study, path: Path) -> Path:
    tm, _, bm, _ = study.mean_std()
    rel = relative_transfer(tm, bm[None, :]) * 100.0
    fig, ax = plt.subplots(figsize=(1.5 + 0.75 * len(study.targets), 1 + 0.4 * len(study.sources)))
    norm = heatmap_norm(rel)
    im = ax.imshow(rel, cmap="RdBu", norm=norm, aspect="auto")
    for (i, j), v in np.ndenumerate(rel):
        dark = np.isfinite(v) and abs(float(norm(v)) - 0.5) > 0.35  # white text on the darkest cells
        ax.text(j, i, "-" if np.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=7,
                color="white" if dark else "black")
    ax.set_xticks(range(len(study.targets)), study.targets, rotation=30, ha="right")
    ax.set_yticks(range(len(study.sources)), study.sources)
    fig.colorbar(im, ax=ax, label="relative gain of the mean over seeds (%)")
    ax.set_title("Transfer matrix (source rows, target columns; blue = gain, red = loss)")
    return _save(fig, path)


def _step_rows(tidy: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    return tidy[(tidy["group"] == ALL) & (tidy["status"] == "ok") & tidy["step"].notna()
                & tidy["selector"].isin(labels)]


def _step_curves(tidy: pd.DataFrame, labels: Sequence[str], by: list[str]) -> pd.DataFrame:
    """Mean nDCG per (by..., selector, step), with the min and max over the cells behind each mean."""
    rows = _step_rows(tidy, labels)
    return (rows.groupby([*by, "selector", "step"])["ndcg"].agg(ndcg="mean", lo="min", hi="max").reset_index())


Band = Callable[[np.ndarray], tuple[float, float]]


def step_bands(tidy: pd.DataFrame, labels: Sequence[str], band: Band) -> pd.DataFrame:
    """selector, step, low, high: `band` ([targets, seeds] nDCG values -> an interval of their mean) at every step."""
    rows = _step_rows(tidy, labels)
    out = []
    for (selector, step), part in rows.groupby(["selector", "step"]):
        grid = part.pivot_table(index="target", columns="seed", values="ndcg", aggfunc="mean")
        low, high = band(grid.to_numpy(dtype=np.float64))
        out.append({"selector": selector, "step": step, "low": low, "high": high})
    return pd.DataFrame(out, columns=["selector", "step", "low", "high"])


MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*", "h", "<", ">")
LINESTYLES = ("-", "--", "-.", ":")


def _merged_curves(curves: pd.DataFrame, labels: Sequence[str]) -> list[tuple[str, pd.DataFrame]]:
    """(legend label, curve) per distinct curve: selectors whose curves coincide share one line, "A = B"."""
    out: list[tuple[list[str], pd.DataFrame]] = []
    for label in labels:
        c = curves[curves["selector"] == label].sort_values("step")
        if c.empty:
            continue
        for names, other in out:
            if np.array_equal(other["step"].to_numpy(), c["step"].to_numpy()) and np.allclose(
                    other["ndcg"].to_numpy(), c["ndcg"].to_numpy(), rtol=0, atol=1e-12):
                names.append(label)
                break
        else:
            out.append(([label], c))
    return [(" = ".join(names), c) for names, c in out]


def _plot_curves(ax, curves: pd.DataFrame, labels: Sequence[str], *, marker_size: float = 8.0,
                 merge: bool = True, bands: pd.DataFrame | None = None) -> None:
    """One line per curve (per distinct curve with `merge`), each with its own marker and dash pattern and a
    hollow marker that shrinks from line to line, so lines that overlap stay visible one inside the other.
    Without `merge` a selector keeps the same style in every panel. `bands` (selector, step, low, high) shade
    each line's band in its colour."""
    if merge:
        lines = _merged_curves(curves, labels)
    else:
        lines = [(label, curves[curves["selector"] == label].sort_values("step")) for label in labels]
    for k, (name, c) in enumerate(lines):
        if c.empty:
            continue
        colour = plt.cm.tab10(k % 10)
        if bands is not None:
            b = bands[bands["selector"] == name.split(" = ")[0]].sort_values("step")
            if len(b):
                ax.fill_between(b["step"].astype(float), b["low"] * 100, b["high"] * 100, color=colour, alpha=0.12,
                                lw=0, zorder=1)
        ax.plot(c["step"], c["ndcg"] * 100, marker=MARKERS[k % len(MARKERS)], ls=LINESTYLES[k % len(LINESTYLES)],
                ms=max(3.0, marker_size - 1.1 * k), mfc="none", mew=1.4, lw=1.6, alpha=0.9, label=name,
                color=colour, zorder=3 + k)


def fig5_ndcg_by_step(tidy: pd.DataFrame, labels: Sequence[str], references: Sequence[str], path: Path, *,
                      band: Band | None = None, level: float = 0.95) -> Path:
    """Mean nDCG (x100) over all cells against the target checkpoint step, each line with a shaded `level`
    interval of its mean (`band`: [targets, seeds] values -> (low, high), the analysis' interval method);
    `references` (prompt-free selectors) as horizontal lines. Coinciding lines are drawn once ("A = B")."""
    curves = _step_curves(tidy, labels, [])
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    bands = step_bands(tidy, labels, band) if band is not None else None
    _plot_curves(ax, curves, labels, bands=bands)
    flat = tidy[(tidy["group"] == ALL) & (tidy["status"] == "ok") & tidy["step"].isna()]
    levels: dict[float, list[str]] = {}
    for label in references:
        v = flat.loc[flat["selector"] == label, "ndcg"].mean()
        if np.isfinite(v):
            levels.setdefault(round(float(v) * 100, 9), []).append(label)
    shades = plt.cm.Dark2(np.arange(len(levels)) % 8)
    for k, ((value, names), shade) in enumerate(zip(sorted(levels.items(), reverse=True), shades)):
        ax.axhline(value, ls=(0, (2 + k % 3, 1.5 + k % 2)), lw=1.3, color=shade,
                   label=f"{' = '.join(names)} (no target prompt)", zorder=2)
    ax.set_xlabel("target prompt checkpoint step")
    ax.set_ylabel("nDCG (x100), mean over targets and seeds")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    n_targets = tidy.loc[tidy["step"].notna(), "target"].nunique()
    ax.set_title("Task prediction against training steps" + (
        f"\n(shaded: {level:.0%} interval of each mean over {n_targets} targets)" if bands is not None else ""),
        fontsize=10)
    return _save(fig, path)


def fig7_ndcg_by_step_per_target(tidy: pd.DataFrame, labels: Sequence[str], targets: Sequence[str],
                                 path: Path, *, rows_of: dict[str, int] | None = None) -> Path:
    """One panel per target, in the given order (the report passes Figure 3's: training-set size, largest
    first): the mean nDCG (x100) over the target's seeds against the checkpoint step, shaded from the lowest to
    the highest seed. One y-axis for every panel, so the panels compare."""
    curves = _step_curves(tidy, labels, ["target"])
    n = len(targets)
    cols = min(5, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.7 * rows), squeeze=False, sharex=True, sharey=True)
    for k, target in enumerate(targets):
        ax = axes[k // cols][k % cols]
        part = curves[curves["target"] == target]
        spread = part.rename(columns={"lo": "low", "hi": "high"})[["selector", "step", "low", "high"]]
        _plot_curves(ax, part, labels, marker_size=6.0, merge=False, bands=spread)
        size = f" ({rows_of[target]:,} rows)" if rows_of and target in rows_of else ""
        ax.set_title(f"({chr(97 + k)}) {target}{size}", fontsize=9)
        ax.grid(True, alpha=0.3)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
        axes[(k - cols) // cols][k % cols].xaxis.set_tick_params(labelbottom=True)  # no panel below it
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="lower center", ncol=min(len(names), 6), fontsize=8)
    fig.supxlabel("target prompt checkpoint step", fontsize=9, y=0.07)
    fig.supylabel("nDCG (x100)", fontsize=9)
    fig.suptitle("nDCG against target checkpoint step, per target (line: mean over seeds; shaded: lowest to "
                 "highest seed)", fontsize=10)
    fig.tight_layout(rect=(0.01, 0.08, 1, 0.95))
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
