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
