"""How sure a Table 3 number is: the two-stage bootstrap interval and the paired sign-flip tests (hand-computed
cases and properties), their place in Table 3 and the report, the per-target view and the cell counts."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itsel_ray.analysis import PAPER_TASKS, Study, analysis_config_from_dict, run_analysis
from itsel_ray.analysis.synthetic import synthetic_study
from itsel_ray.analysis.uncertainty import (
    bootstrap_means,
    cell_mean,
    cell_sign_flip,
    cluster_sign_flip,
    percentile_bootstrap,
)

# ----------------------------------------------------------------------------------------- the statistics


def test_bootstrap_of_two_targets_by_hand():
    # two targets of one cell each, values 0 and 1: a resample is (0, 0), a mix, or (1, 1): means 0, 1/2, 1 with
    # probabilities 1/4, 1/2, 1/4
    means = bootstrap_means(np.array([[0.0], [1.0]]), resamples=20000, rng=np.random.default_rng(0))
    freq = [np.mean(means == v) for v in (0.0, 0.5, 1.0)]
    assert freq == pytest.approx([0.25, 0.5, 0.25], abs=0.015)
    ci = percentile_bootstrap(np.array([[0.0], [1.0]]), level=0.9, resamples=2000, seed=0)
    assert (ci.low, ci.high) == (0.0, 1.0)


def test_bootstrap_resamples_only_scored_cells():
    # target 0 has no scored cell (never drawn); target 1 has one scored seed of two
    values = np.array([[np.nan, np.nan], [2.0, np.nan], [4.0, 6.0]])
    means = bootstrap_means(values, resamples=5000, rng=np.random.default_rng(1))
    assert np.isfinite(means).all()
    # a draw of target 1 adds one cell (2); a draw of target 2 two cells, each 4 or 6: targets (1, 1) give 2,
    # (1, 2) give (2 + 8, 10 or 12) / 3, (2, 2) give (16 .. 24) / 4
    possible = {2.0, 10 / 3, 12 / 3, 14 / 3, 4.0, 4.5, 5.0, 5.5, 6.0}
    assert set(np.round(means, 9)) <= {round(v, 9) for v in possible}
    assert cell_mean(values) == pytest.approx(4.0)
    assert np.isnan(percentile_bootstrap(np.full((2, 2), np.nan), level=0.95, resamples=100, seed=0).low)


cells = st.integers(3, 10).flatmap(lambda t: st.integers(1, 3).flatmap(lambda r: st.lists(
    st.floats(0, 100, allow_nan=False), min_size=t * r, max_size=t * r).map(lambda v: np.array(v).reshape(t, r))))


@settings(max_examples=40, deadline=None)
@given(cells, st.integers(0, 1000))
def test_the_interval_contains_the_point_estimate(values, seed):
    ci = percentile_bootstrap(values, level=0.95, resamples=500, seed=seed)
    assert ci.low - 1e-9 <= cell_mean(values) <= ci.high + 1e-9


@settings(max_examples=20, deadline=None)
@given(cells.filter(lambda v: np.ptp(v.mean(axis=1)) > 1.0))
def test_the_interval_shrinks_with_more_targets(values):
    few = percentile_bootstrap(values, level=0.95, resamples=2000, seed=3)
    many = percentile_bootstrap(np.tile(values, (9, 1)), level=0.95, resamples=2000, seed=3)  # 9x the targets
    assert many.high - many.low < few.high - few.low


def test_the_interval_is_seeded():
    values = np.random.default_rng(0).uniform(50, 90, size=(10, 3))
    a = percentile_bootstrap(values, level=0.95, resamples=1000, seed=7)
    assert a == percentile_bootstrap(values, level=0.95, resamples=1000, seed=7)
    assert a != percentile_bootstrap(values, level=0.95, resamples=1000, seed=8)
    wide = percentile_bootstrap(values, level=0.99, resamples=1000, seed=7)
    assert wide.low <= a.low and wide.high >= a.high


@settings(max_examples=30, deadline=None)
@given(cells)
def test_a_selector_against_itself_has_p_one(values):
    for test in (cell_sign_flip, cluster_sign_flip):
        assert test(values, values.copy(), permutations=10000, seed=0) == 1.0
        assert test(values, values.copy(), permutations=100, seed=0) == 1.0  # the Monte Carlo path too


def test_sign_flip_by_hand():
    # differences 1, 2, 3 over three cells: 8 sign patterns, |sum| = 6 only for (+,+,+) and (-,-,-): p = 2/8
    a, b = np.array([[1.0], [2.0], [3.0]]), np.zeros((3, 1))
    assert cell_sign_flip(a, b, permutations=10000, seed=0) == 0.25
    # one target of two cells: with per-cell flips |1 + 2| is reached by 2 of 4 patterns; per target 2 of 2
    assert cell_sign_flip(np.array([[1.0, 2.0]]), np.zeros((1, 2)), permutations=10000, seed=0) == 0.5
    assert cluster_sign_flip(np.array([[1.0, 2.0]]), np.zeros((1, 2)), permutations=10000, seed=0) == 1.0
    # targets [1, 3] and [-1] (a NaN cell is not paired): per target the sums 4 and -1, |4 - 1| = 3 is reached by
    # (4, -1) and (-4, 1) and beaten by (4, 1), (-4, -1): p = 1. Per cell, |sum| >= 3 for all but the patterns
    # summing to +-1 (-1 + 3 - 1 and 1 - 3 + 1): p = 6/8
    a = np.array([[1.0, 3.0], [-1.0, np.nan]])
    assert cluster_sign_flip(a, np.zeros((2, 2)), permutations=10000, seed=0) == 1.0
    assert cell_sign_flip(a, np.zeros((2, 2)), permutations=10000, seed=0) == pytest.approx(6 / 8)
    assert math.isnan(cell_sign_flip(np.full((2, 1), np.nan), np.zeros((2, 1)), permutations=100, seed=0))


def test_sign_flip_is_symmetric_and_detects_a_shift():
    rng = np.random.default_rng(0)
    base = rng.uniform(60, 90, size=(10, 3))
    better = base + rng.normal(3.0, 1.0, size=base.shape)
    p = cell_sign_flip(better, base, permutations=10000, seed=0)  # 30 cells: 10,000 random patterns
    assert p == cell_sign_flip(base, better, permutations=10000, seed=0) and p < 0.001
    assert cluster_sign_flip(better, base, permutations=10000, seed=0) == pytest.approx(2 / 1024)  # exact, 2^10


# ------------------------------------------------------------------------------------- in the analysis


def cfg(**overrides):
    data = {"selectors": ["random", "size", "feature", "max"], "metrics": ["ndcg", "regret@1"],
            "table4_selectors": ["size"], "step_selectors": ["max"], "groups": [], "tsne_targets": [],
            "uncertainty": {"resamples": 500}}
    data.update(overrides)
    return analysis_config_from_dict(data)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    out = tmp_path_factory.mktemp("unc")
    study = synthetic_study(n_sources=6, n_targets=5, seeds=(28, 52, 112), steps=(10,), tokens=4, dim=6)
    return run_analysis(study, cfg(), out), out


def test_table3_has_intervals_and_tests(analysed):
    result, out = analysed
    t3 = pd.read_csv(out / "table3.csv", index_col=0)
    assert list(t3.columns)[:2] == ["ALL R@1", "ALL nDCG"]  # the point columns first, as before
    for col in ("ALL R@1", "ALL nDCG"):
        assert (t3[f"{col} low"] <= t3[col] + 1e-9).all() and (t3[col] <= t3[f"{col} high"] + 1e-9).all()
        assert (t3[f"{col} cells"] == 15).all()
        assert t3.loc["RANDOM", f"{col} p_random"] == 1.0 and t3.loc["FEATURE", f"{col} p_reference"] == 1.0
        assert 0 < t3.loc["MAX", f"{col} p_random"] <= 1
    md = (out / "table3.md").read_text()
    assert "Paired p-values (vs RANDOM / vs FEATURE)" in md
    row = next(line for line in md.splitlines() if line.startswith("| FEATURE |"))
    assert f"{t3.loc['FEATURE', 'ALL nDCG']:.2f} [{t3.loc['FEATURE', 'ALL nDCG low']:.2f}, " in row
    report = result.report.read_text()
    assert "How to read the brackets and p-values" in report and "## Per target" in report


def test_the_same_analysis_twice_gives_the_same_intervals(analysed):
    from itsel_ray.analysis.tables_uncertainty import table3_uncertainty

    result, _ = analysed
    c = cfg()
    kw = dict(selectors=["RANDOM", "SIZE", "FEATURE", "MAX"], groups=["all"], metric_labels=["ndcg", "regret@1"],
              targets=sorted(set(result.tidy.target)), seeds=(28, 52, 112), step=10, cfg=c.uncertainty,
              random_label="RANDOM", reference_label="FEATURE")
    first, again = table3_uncertainty(result.tidy, **kw), table3_uncertainty(result.tidy, **kw)
    pd.testing.assert_frame_equal(first, again)
    assert first["low"].notna().all()


def test_per_target_table_by_hand(analysed):
    result, out = analysed
    pt = pd.read_csv(out / "per_target.csv")
    tidy = result.tidy
    target = pt.target.iloc[0]
    cellsel = tidy[(tidy.selector == "MAX") & (tidy.target == target) & (tidy.group == "all")
                   & (tidy.step == 10)]
    row = pt[(pt.target == target) & (pt.selector == "MAX") & (pt.metric == "ndcg")].iloc[0]
    assert row["mean"] == pytest.approx(cellsel["ndcg"].mean() * 100)
    assert row["std"] == pytest.approx(cellsel["ndcg"].std(ddof=0) * 100)
    assert (row.scored, row.unscored) == (3, 0)
    counts = pd.read_csv(out / "cell_counts.csv", index_col=0)
    assert counts.loc["MAX", "ALL scored"] == 15 and counts.loc["MAX", "ALL undefined"] == 0


def test_a_cell_with_an_undefined_metric_is_unscored(tmp_path):
    # target cb at seed 52: every source scores 0, so Regret@1 and nDCG (2^0 - 1 = 0 gains) are undefined
    transfer = np.array([[[80.0, 0.0]], [[85.0, 0.0]], [[90.0, 0.0]]])
    study = Study(sources=("mnli", "qqp", "qnli"), targets=("cb",), seeds=(28, 52), transfer=transfer,
                  baseline=np.array([[82.0, 83.0]]), meta=PAPER_TASKS)
    result = run_analysis(study, cfg(selectors=["random", "size"], step_selectors=[],
                                     uncertainty={"resamples": 200, "reference": "size"}), tmp_path)
    tidy = result.tidy
    row = tidy[(tidy.selector == "SIZE") & (tidy.seed == 52)].iloc[0]
    assert row.status == "undefined" and row.undefined == "ndcg regret@1"
    s = result.summary[(result.summary.selector == "SIZE")].iloc[0]
    assert (s.n_cells, s.n_undefined, s.n_missing) == (1, 1, 0)
    assert s["regret@1"] == pytest.approx((90 - 80) / 90 * 100)  # seed 28 alone
    all_metrics = pd.read_csv(tmp_path / "table3_all_metrics.csv", index_col=0)
    assert (all_metrics.loc["SIZE", "cells"], all_metrics.loc["SIZE", "undefined"]) == (1, 1)
    assert pd.read_csv(tmp_path / "table3.csv", index_col=0).loc["SIZE", "ALL R@1 cells"] == 1


@pytest.mark.parametrize("key,value,match", [
    ("interval", "jackknife", "unknown interval method 'jackknife'"),
    ("test", "t-test", "unknown paired test 't-test'"),
    ("reference", "nearest", "uncertainty.reference: 'nearest'"),
    ("level", 95, "uncertainty.level"),
    ("resamples", 10, "uncertainty.resamples"),
])
def test_bad_uncertainty_settings_fail_at_load_time(tmp_path, key, value, match):
    from itsel_ray.analysis import load_analysis_config
    from itsel_ray.schema import ConfigError

    path = tmp_path / "a.yaml"
    path.write_text(f"uncertainty: {{{key}: {value}}}\n")
    with pytest.raises(ConfigError, match=match) as err:
        load_analysis_config(path)
    assert "a.yaml" in str(err.value)
