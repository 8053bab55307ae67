"""Per-cell evaluation: source groups, missing transfer scores (skipped or ranked over present sources), and
the headline-step summary."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from itsel_ray.analysis import PAPER_TASKS, Study, analysis_config_from_dict
from itsel_ray.analysis.cells import ALL, CellRunner
from itsel_ray.analysis.run import build_context, collect
from itsel_ray.analysis.tables import selector_summary

SOURCES = ("mnli", "qqp", "record", "squad")  # SIZE order: mnli > qqp > record > squad


def study():
    # target cb; seed 28 complete, seed 52 has no qqp score
    transfer = np.array([[[80.0, 81.0]], [[85.0, np.nan]], [[90.0, 88.0]], [[70.0, 75.0]]])  # [S, T=1, R=2]
    return Study(sources=SOURCES, targets=("cb",), seeds=(28, 52), transfer=transfer,
                 baseline=np.array([[82.0, 83.0]]), meta=PAPER_TASKS)


def rows_for(missing):
    cfg = analysis_config_from_dict({"selectors": ["size", "random"], "metrics": ["ndcg", "regret@1"],
                                     "ranking": {"missing": missing}, "table4_selectors": ["size"],
                                     "step_selectors": []})
    ctx, cells, _ = build_context(study(), cfg)
    results = [CellRunner(ctx)(c) for c in cells]
    return collect(results, study())[0]


def test_groups_and_missing_skip():
    tidy = rows_for("skip")
    get = lambda sel, seed, group, col: tidy[(tidy.selector == sel) & (tidy.seed == seed)  # noqa: E731
                                             & (tidy.group == group)][col].item()
    # ALL at seed 28: SIZE picks mnli (80); the best is record (90)
    assert get("SIZE", 28, ALL, "regret@1") == pytest.approx((90 - 80) / 90 * 100)
    # classification = {mnli, qqp}: SIZE picks mnli (80), best qqp (85)
    assert get("SIZE", 28, "classification", "regret@1") == pytest.approx((85 - 80) / 85 * 100)
    # multiple choice = {record}: one source, a perfect ranking
    assert get("SIZE", 28, "multiple_choice", "ndcg") == 1.0
    # seed 52 lacks qqp: ALL and classification are missing, never scored with 0
    assert get("SIZE", 52, ALL, "status") == "missing" and math.isnan(get("SIZE", 52, ALL, "regret@1"))
    assert get("RANDOM", 52, "classification", "status") == "missing"
    assert get("SIZE", 52, "multiple_choice", "status") == "ok"
    summary = selector_summary(tidy, ["ndcg", "regret@1"], None)
    s = summary[(summary.selector == "SIZE") & (summary.group == ALL)].iloc[0]
    assert (s.n_cells, s.n_missing) == (1, 1)
    assert s["regret@1"] == pytest.approx((90 - 80) / 90 * 100)  # the mean over scored cells only


def test_missing_present_ranks_the_present_sources():
    tidy = rows_for("present")
    row = tidy[(tidy.selector == "SIZE") & (tidy.seed == 52) & (tidy.group == ALL)].iloc[0]
    # present: mnli 81, record 88, squad 75; SIZE picks mnli -> (88 - 81)/88 * 100
    assert row.status == "ok" and bool(row.partial) and row.n_sources == 3
    assert row["regret@1"] == pytest.approx((88 - 81) / 88 * 100)
    # RANDOM over 3 present sources: E[top-1] = (81 + 88 + 75)/3
    rnd = tidy[(tidy.selector == "RANDOM") & (tidy.seed == 52) & (tidy.group == ALL)].iloc[0]
    assert rnd["regret@1"] == pytest.approx((88 - (81 + 88 + 75) / 3) / 88 * 100)


def test_seed_mean_relevance():
    cfg = analysis_config_from_dict({"selectors": ["size"], "metrics": ["regret@1"], "table4_selectors": ["size"],
                                     "step_selectors": [], "ranking": {"relevance": "seed_mean"}})
    s = study()
    s.transfer[1, 0, 1] = 86.0  # complete the study
    ctx, cells, _ = build_context(s, cfg)
    row = next(r for r in CellRunner(ctx)(cells[0]).rows if r["group"] == ALL)
    # seed means: mnli 80.5, qqp 85.5, record 89, squad 72.5 -> (89 - 80.5)/89 * 100
    assert row["regret@1"] == pytest.approx((89 - 80.5) / 89 * 100)


def test_report_for_prompt_free_selectors_with_default_table_lists(tmp_path):
    # table4_selectors / step_selectors keep their defaults (FEATURE, MAX, ...), which are not configured here
    from itsel_ray.analysis import run_analysis

    s = study()
    cfg = analysis_config_from_dict({"selectors": ["size", "random"], "metrics": ["ndcg", "regret@1"]})
    result = run_analysis(s, cfg, tmp_path)
    t4 = result.files["table4"].read_text()
    assert "SIZE" in t4 and "RANDOM" in t4 and "FEATURE" not in t4
    assert not (tmp_path / "figures" / "fig5_ndcg_by_step.png").exists()  # no prompt selectors, no Fig. 5


def test_a_selector_that_raises_on_a_cell_leaves_it_failed_and_the_rest_scored(tmp_path, monkeypatch):
    from itsel_ray.analysis import analysis_config_from_dict, run_analysis
    from itsel_ray.analysis.synthetic import synthetic_study
    from itsel_ray.selection import SELECTORS

    study = synthetic_study(n_sources=4, n_targets=3, seeds=(28, 52), steps=(10,), tokens=2, dim=3)
    size = SELECTORS.get("size")
    original = size.fn

    def flaky(inp, opts):
        if inp.target == study.targets[1]:
            raise FloatingPointError("no sizes for this one")
        return original(inp, opts)

    monkeypatch.setitem(SELECTORS._items, "size", dataclasses.replace(size, fn=flaky))
    cfg = analysis_config_from_dict({"selectors": ["random", "size"], "metrics": ["ndcg", "regret@1"],
                                     "step_selectors": [], "table4_selectors": [], "groups": [],
                                     "uncertainty": {"resamples": 200, "reference": "size"}})
    result = run_analysis(study, cfg, tmp_path)
    rows = result.tidy[result.tidy.selector == "SIZE"]
    failed = rows[rows.status == "failed"]
    assert set(failed.target) == {study.targets[1]} and len(failed) == 2
    assert (failed.error == "FloatingPointError: no sizes for this one").all() and failed.ndcg.isna().all()
    assert (rows[rows.target != study.targets[1]].status == "ok").all()
    assert (result.tidy[result.tidy.selector == "RANDOM"].status == "ok").all()
    counts = pd.read_csv(tmp_path / "cell_counts.csv", index_col=0)
    assert (counts.loc["SIZE", "ALL scored"], counts.loc["SIZE", "ALL failed"]) == (4, 2)
    assert "SIZE failed on 2 cells, which are unscored: FloatingPointError: no sizes" in result.report.read_text()
