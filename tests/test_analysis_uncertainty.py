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
from itsel_ray.analysis.tables_uncertainty import table3_uncertainty
from itsel_ray.analysis.uncertainty import (
    bootstrap_means,
    bootstrap_t,
    holm,
    smallest_p,
    target_means,
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


def test_target_means_weigh_each_target_by_its_scored_seeds():
    values = np.array([[1.0, 3.0, np.nan], [np.nan, np.nan, np.nan], [5.0, 5.0, 8.0]])
    means, weights = target_means(values)
    np.testing.assert_allclose(means, [2.0, 6.0])
    np.testing.assert_allclose(weights, [2.0, 3.0])


def test_bootstrap_t_by_hand():
    # Three targets of one seed, means 0, 0 and 3: estimate 1, se = sd / sqrt(3) = 1. A resample holds k copies
    # of the 3 (k = 0..3, probabilities 8, 12, 6, 1 of 27): estimate k and, for k = 1 or 2, se* = 1, so t* is
    # 0 or 1; k = 0 and k = 3 have se* = 0, floored at se / 3, so t* = -3 and +6. The 5 % and 95 % quantiles of
    # t* are -3 (8/27 > 5 %) and 1 (26/27 > 95 %): the interval [1 - 1 * 1, 1 + 3 * 1] = [0, 4].
    values = np.array([[0.0], [0.0], [3.0]])
    ci = bootstrap_t(values, level=0.9, resamples=4000, seed=1)
    assert (ci.low, ci.high) == (0.0, 4.0)
    # the metric's range cuts it
    cut = bootstrap_t(values, level=0.9, resamples=4000, seed=1, bounds=(-5.0, 2.0))
    assert (cut.low, cut.high) == (0.0, 2.0)
    # 2.5 % / 97.5 % of a symmetric sample: t* spread both ways, the interval around the mean
    sym = bootstrap_t(np.array([[0.0], [1.0], [2.0], [3.0], [4.0]]), level=0.95, resamples=4000, seed=0)
    assert sym.low < 2.0 < sym.high and sym.high - 2.0 == pytest.approx(2.0 - sym.low, rel=0.25)


def test_bootstrap_t_stays_finite_when_most_targets_sit_at_the_bound():
    # the demo's PROBE: nDCG 1 on 7 of 8 targets; a resample of only those has se* = 0, which without the floor
    # sent the lower end to -2.7e6
    values = np.array([[0.647, 0.636]] + [[1.0, 1.0]] * 6 + [[1.0, 0.969]])
    ci = bootstrap_t(values, level=0.95, resamples=2000, seed=0, bounds=(-np.inf, 1.0))
    assert 0.75 < ci.low < cell_mean(values) and ci.high == 1.0


def test_bootstrap_t_edge_cases():
    assert np.isnan(bootstrap_t(np.array([[1.0, 2.0]]), level=0.95, resamples=200, seed=0).low)  # one target
    assert np.isnan(bootstrap_t(np.full((3, 2), np.nan), level=0.95, resamples=200, seed=0).high)
    same = bootstrap_t(np.array([[1.0, 3.0], [2.0, 2.0]]), level=0.95, resamples=200, seed=0)  # means 2 and 2
    assert (same.low, same.high) == (2.0, 2.0)


@settings(max_examples=40, deadline=None)
@given(cells, st.integers(0, 1000))
def test_bootstrap_t_contains_the_estimate_and_is_seeded(values, seed):
    ci = bootstrap_t(values, level=0.95, resamples=500, seed=seed)
    assert ci.low - 1e-9 <= cell_mean(values) <= ci.high + 1e-9
    assert ci == bootstrap_t(values, level=0.95, resamples=500, seed=seed)
    wide = bootstrap_t(values, level=0.99, resamples=500, seed=seed)
    assert wide.low <= ci.low + 1e-9 and wide.high >= ci.high - 1e-9


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 of m = 3: 3 x 0.01 = 0.03; 2 x 0.03 = 0.06; 1 x 0.04 = 0.04 -> raised to 0.06
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03, np.nan])), [0.03, 0.06, 0.06, np.nan])
    np.testing.assert_allclose(holm(np.array([0.5, 0.6])), [1.0, 1.0])
    assert holm(np.array([np.nan])).size == 1 and np.isnan(holm(np.array([np.nan]))[0])


def test_cluster_bootstrap_t_by_hand_and_its_properties():
    from itsel_ray.analysis.uncertainty import cluster_bootstrap_t

    # differences per target 1, 2, 3 (one cell each): estimate 2, se = 1 / sqrt(3); t = 2 sqrt(3) = 3.46. A
    # resample beats it only as (1, 1, 1) or (3, 3, 3) (se* = 0, t* = -inf / +inf) or (1, 1, 2)-like draws...
    a, b = np.array([[1.0], [2.0], [3.0]]), np.zeros((3, 1))
    p = cluster_bootstrap_t(a, b, permutations=20000, seed=0)
    rng = np.random.default_rng(0)
    x = np.array([1.0, 2.0, 3.0])[rng.integers(0, 3, size=(20000, 3))]
    se = x.std(axis=1, ddof=1) / np.sqrt(3)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, (x.mean(axis=1) - 2.0) / se, np.where(x.mean(axis=1) == 2.0, 0.0, np.inf))
    assert p == (1 + int((np.abs(t) >= 2 * np.sqrt(3) * (1 - 1e-12)).sum())) / 20001
    assert p == cluster_bootstrap_t(b, a, permutations=20000, seed=0)  # symmetric
    assert cluster_bootstrap_t(a, a.copy(), permutations=100, seed=0) == 1.0
    assert cluster_bootstrap_t(np.full((3, 2), 5.0), np.ones((3, 2)), permutations=999, seed=0) == 1 / 1000
    assert math.isnan(cluster_bootstrap_t(np.full((2, 1), np.nan), np.zeros((2, 1)), permutations=100, seed=0))


def test_the_smallest_p_value_follows_the_number_of_units():
    a, b = np.ones((4, 3)), np.zeros((4, 3))
    assert smallest_p("cluster-sign-flip", a, b, permutations=10000) == 0.125  # 4 targets: 2 / 16
    assert cluster_sign_flip(a, b, permutations=10000, seed=0) == 0.125  # ...and it is reached
    assert smallest_p("sign-flip", a, b, permutations=10000) == 2 / 2 ** 12
    assert smallest_p("sign-flip", np.ones((10, 3)), np.zeros((10, 3)), permutations=10000) == 1 / 10001
    b[1] = np.nan  # target 1 has no paired cell
    assert smallest_p("cluster-sign-flip", a, b, permutations=10000) == 0.25


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
    study = synthetic_study(n_sources=6, n_targets=6, seeds=(28, 52, 112), steps=(10,), tokens=4, dim=6)
    return run_analysis(study, cfg(), out), out


def test_table3_has_intervals_and_tests(analysed):
    result, out = analysed
    t3 = pd.read_csv(out / "table3.csv", index_col=0)
    assert list(t3.columns)[:2] == ["ALL R@1", "ALL nDCG"]  # the point columns first, as before
    for col in ("ALL R@1", "ALL nDCG"):
        assert (t3[f"{col} low"] <= t3[col] + 1e-9).all() and (t3[col] <= t3[f"{col} high"] + 1e-9).all()
        assert (t3[f"{col} cells"] == 18).all() and (t3[f"{col} targets"] == 6).all()
        # a selector is not compared with itself (no p-value, and not in Holm's family)
        assert np.isnan(t3.loc["RANDOM", f"{col} p_random"]) and np.isnan(t3.loc["FEATURE", f"{col} p_reference"])
        assert 0 < t3.loc["MAX", f"{col} p_random"] <= 1
        assert (t3[f"{col} p_random"].dropna() == t3[f"{col} p_random_raw"].dropna()).all()  # no correction
    kw = dict(selectors=["RANDOM", "SIZE", "FEATURE", "MAX"], groups=["all"], metric_labels=["ndcg"],
              targets=sorted(set(result.tidy.target)), seeds=(28, 52, 112), step=10, random_label="RANDOM",
              reference_label="FEATURE")
    plain = table3_uncertainty(result.tidy, cfg=cfg().uncertainty, **kw)
    assert (plain.min_p == 2 / 2 ** 6).all()  # 6 targets, exact per-target sign flips
    # Holm over the column's 5 comparisons (SIZE, FEATURE, MAX vs RANDOM; RANDOM, SIZE, MAX vs FEATURE, less the
    # ones not made: 3 + 3 = 6): 6 x 2 / 64 > 0.05, so no p-value can reach alpha and none is shown...
    holm_cfg = cfg(uncertainty={"resamples": 500, "correction": "holm"}).uncertainty
    strict = table3_uncertainty(result.tidy, cfg=holm_cfg, **kw)
    assert strict.p_random.isna().all() and (strict.min_p == 6 * 2 / 2 ** 6).all()
    # ...while at a looser alpha they are the Holm-adjusted raw p-values, each at least its raw p
    loose = table3_uncertainty(result.tidy, cfg=cfg(uncertainty={"resamples": 500, "correction": "holm",
                                                                 "alpha": 0.5}).uncertainty, **kw)
    raw = np.concatenate([loose.p_random_raw, loose.p_reference_raw])
    np.testing.assert_allclose(np.concatenate([loose.p_random, loose.p_reference]), holm(raw), equal_nan=True)
    assert (np.nan_to_num(holm(raw)) >= np.nan_to_num(raw)).all()
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
    assert counts.loc["MAX", "ALL scored"] == 18 and counts.loc["MAX", "ALL undefined"] == 0


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
    ("random_test", "z-test", "unknown paired test 'z-test'"),
    ("correction", "bonferroni", "uncertainty.correction: 'bonferroni' is not one of none, holm"),
    ("family", "row", "uncertainty.family: 'row'"),
    ("alpha", 5, "uncertainty.alpha"),
])
def test_bad_uncertainty_settings_fail_at_load_time(tmp_path, key, value, match):
    from itsel_ray.analysis import load_analysis_config
    from itsel_ray.schema import ConfigError

    path = tmp_path / "a.yaml"
    path.write_text(f"uncertainty: {{{key}: {value}}}\n")
    with pytest.raises(ConfigError, match=match) as err:
        load_analysis_config(path)
    assert "a.yaml" in str(err.value)


def test_with_four_targets_the_report_says_no_test_can_reach_the_level(tmp_path):
    study = synthetic_study(n_sources=6, n_targets=4, seeds=(28, 52, 112), steps=(10,), tokens=4, dim=6)
    result = run_analysis(study, cfg(), tmp_path)
    t3 = pd.read_csv(tmp_path / "table3.csv", index_col=0)
    assert t3["ALL nDCG p_random"].isna().all() and t3["ALL nDCG p_reference"].isna().all()
    assert t3.loc["MAX", "ALL nDCG p_random_raw"] >= 0.125  # computed, but no p-value below 2 / 2^4 exists
    md = (tmp_path / "table3.md").read_text()
    assert "Paired p-values" not in md
    assert "No p-values: with 4 targets, the smallest p-value a per-target test can give is 0.125" in md
    assert "(6 for a single per-target test to reach p < 0.05)" in result.report.read_text()


def test_the_per_target_table_shows_randoms_expectation_without_a_spread(analysed):
    _, out = analysed
    ndcg_table = (out / "per_target.md").read_text().split("\n\n")[1]  # after "nDCG x100, ...:"
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in ndcg_table.splitlines()]
    col = rows[0].index("RANDOM")
    cells = [r[col] for r in rows[2:]]
    assert len(cells) == 6 and all(c.endswith("(exp.)") and "±" not in c for c in cells)
    assert all("±" in r[rows[0].index("MAX")] for r in rows[2:])  # the other selectors keep their spread
