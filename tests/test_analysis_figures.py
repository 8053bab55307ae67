"""Figures like the paper's: no overlapping labels, a legend for every colour, a diverging heatmap scale that an
outlier column cannot wash out, and overlapping Figure 5 lines that stay visible."""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from itsel_ray.analysis import figures
from itsel_ray.analysis.synthetic import synthetic_study


@pytest.fixture()
def captured(monkeypatch):
    """The figure objects instead of their PNGs (still closed by the caller)."""
    figs = []

    def keep(fig, path):
        fig.canvas.draw()
        figs.append(fig)
        return Path(path)

    monkeypatch.setattr(figures, "_save", keep)
    yield figs
    for fig in figs:
        figures.plt.close(fig)


def _overlaps(labels) -> bool:
    boxes = [t.get_window_extent() for t in labels if t.get_visible() and t.get_text()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_fig6_has_a_legend_for_every_target_and_no_overlapping_labels(captured, tmp_path):
    study = synthetic_study(n_sources=13, n_targets=10, seeds=(28, 52, 112), steps=(10,), tokens=2, dim=3)
    figures.fig6_gain_vs_size(study, tmp_path / "f.png")
    left, right = captured[0].axes[:2]
    legend = [t.get_text() for t in left.get_legend().get_texts()]
    assert all(any(text.startswith(f"{t} (") for text in legend) for t in study.targets)
    assert not _overlaps(left.get_xticklabels()) and not _overlaps(right.get_xticklabels())
    assert [t.get_text() for t in right.get_xticklabels()] == [study.targets[i] for i in
                                                               figures.targets_by_size(study)[::-1]]


def test_the_heatmap_scale_is_centred_and_survives_an_outlier_column():
    plain = np.array([[2.0, -1.5], [0.5, 3.0]])
    norm = figures.heatmap_norm(plain)
    assert norm(0.0) == pytest.approx(0.5) and norm(3.0) == pytest.approx(1.0) and norm(-3.0) == pytest.approx(0.0)
    # nine columns within +-5 % and one from -50 % to +400 %
    rng = np.random.default_rng(0)
    outlier = np.column_stack([rng.uniform(-5, 5, size=(13, 9)), np.linspace(-50, 400, 13)])
    norm = figures.heatmap_norm(outlier)
    assert norm(0.0) == pytest.approx(0.5) and norm(400.0) == pytest.approx(1.0)
    assert abs(float(norm(2.0)) - 0.5) > 0.1  # a linear scale to 400 would leave 2 % at 0.5025, white
    assert abs(float(norm(-2.0)) - 0.5) == pytest.approx(abs(float(norm(2.0)) - 0.5))


def test_the_heatmap_draws_with_an_outlier_column(captured, tmp_path):
    study = synthetic_study(n_sources=5, n_targets=3, seeds=(28,), steps=(10,), tokens=2, dim=3)
    transfer = study.transfer.copy()
    transfer[:, 2, :] = study.baseline[None, 2, :] * 3  # +200 % everywhere in one column
    figures.heatmap(dataclasses.replace(study, transfer=transfer), tmp_path / "h.png")
    image = captured[0].axes[0].images[0]
    assert image.norm(0.0) == pytest.approx(0.5) and image.norm.vmax == pytest.approx(200.0)


def test_coinciding_fig5_lines_share_one_legend_entry_and_the_rest_differ(captured, tmp_path):
    rows = []
    for selector, values in (("MAX", [0.8, 0.9]), ("MAX-TOPK", [0.8, 0.9]), ("FEATURE", [0.6, 0.7])):
        for step, v in zip((10, 20), values):
            rows.append({"selector": selector, "group": "all", "status": "ok", "step": step, "ndcg": v,
                         "target": "t", "seed": 1})
    for selector, v in (("RANDOM", 0.5), ("SIZE", 0.5), ("SEMB", 0.4)):
        rows.append({"selector": selector, "group": "all", "status": "ok", "step": None, "ndcg": v,
                     "target": "t", "seed": 1})
    tidy = pd.DataFrame(rows)
    tidy["step"] = tidy["step"].astype("Int64")
    figures.fig5_ndcg_by_step(tidy, ["MAX", "MAX-TOPK", "FEATURE"], ["RANDOM", "SIZE", "SEMB"], tmp_path / "5.png")
    ax = captured[0].axes[0]
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert names == ["MAX = MAX-TOPK", "FEATURE", "RANDOM = SIZE (no target prompt)", "SEMB (no target prompt)"]
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 2 or line.get_marker() not in ("None", "")]
    assert len({(line.get_marker(), line.get_linestyle()) for line in lines}) == len(lines)
    assert all(line.get_markerfacecolor() == "none" for line in lines)


def _tidy_by_step(rng):
    rows = []
    for selector, level in (("MAX", 0.8), ("FEATURE", 0.6)):
        for target in ("a", "b", "c", "d", "e", "f"):
            for seed in (1, 2, 3):
                for step in (10, 20, 30):
                    rows.append({"selector": selector, "group": "all", "status": "ok", "step": step, "target": target,
                                 "seed": seed, "ndcg": min(1.0, level + step / 300 + rng.normal(0, 0.05))})
    tidy = pd.DataFrame(rows)
    tidy["step"] = tidy["step"].astype("Int64")
    return tidy


def test_fig5_shades_each_line_with_its_interval(captured, tmp_path):
    from itsel_ray.analysis.uncertainty import bootstrap_t

    tidy = _tidy_by_step(np.random.default_rng(0))
    def band(v):
        ci = bootstrap_t(v, level=0.95, resamples=500, seed=0, bounds=(-np.inf, 1.0))
        return ci.low, ci.high

    figures.fig5_ndcg_by_step(tidy, ["MAX", "FEATURE"], [], tmp_path / "5.png", band=band)
    ax = captured[0].axes[0]
    assert len(ax.collections) == 2  # one band per line
    bands = figures.step_bands(tidy, ["MAX", "FEATURE"], band)
    at = bands[(bands.selector == "MAX") & (bands.step == 20)].iloc[0]
    cells = tidy[(tidy.selector == "MAX") & (tidy.step == 20)].pivot(index="target", columns="seed", values="ndcg")
    assert (at.low, at.high) == tuple(band(cells.to_numpy()))
    assert at.low < cells.to_numpy().mean() < at.high
    assert "interval of each mean over 6 targets" in ax.get_title()


def test_fig7_shares_its_y_axis_labels_its_axes_and_shades_the_seed_spread(captured, tmp_path):
    tidy = _tidy_by_step(np.random.default_rng(1))
    order = ["c", "a", "b", "f", "e", "d"]
    figures.fig7_ndcg_by_step_per_target(tidy, ["MAX", "FEATURE"], order, tmp_path / "7.png",
                                         rows_of={t: 100 for t in order})
    fig = captured[0]
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    assert [ax.get_title().split(") ")[1] for ax in panels] == [f"{t} (100 rows)" for t in order]
    assert len({ax.get_ylim() for ax in panels}) == 1  # one y-axis for all
    assert fig.get_supxlabel() == "target prompt checkpoint step" and fig.get_supylabel() == "nDCG (x100)"
    first = panels[0]
    assert len(first.collections) == 2  # a seed-spread band per selector
    edge = first.collections[0].get_paths()[0].vertices[:, 1]
    for step in (10, 20, 30):
        seeds = tidy[(tidy.selector == "MAX") & (tidy.target == "c") & (tidy.step == step)].ndcg * 100
        assert np.isclose(edge, seeds.min()).any() and np.isclose(edge, seeds.max()).any()
