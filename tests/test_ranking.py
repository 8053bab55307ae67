"""Ranking metrics: hand-computed values, properties (hypothesis), sklearn/scipy agreement, exact RANDOM."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import ndcg_score

from itsel_ray.metrics.ranking import (
    average_ranks,
    expected_best_of_random_k,
    expected_ndcg_random,
    expected_regret_random,
    kendall,
    ndcg,
    parse_metric,
    rank_from_scores,
    regret_at_k,
    relative_transfer,
    spearman,
)
from itsel_ray.registry import UnknownNameError

LOG3 = math.log2(3)

# ------------------------------------------------------------------------------------------- hand cases


def test_ndcg_linear_by_hand():
    # rel = [3, 2, 0]; order [1, 0, 2] puts rel 2 first, then 3, then 0.
    # DCG = 2/log2(2) + 3/log2(3) + 0 = 2 + 1.892789 ; IDCG = 3 + 2/log2(3) = 4.261860
    expected = (2 + 3 / LOG3) / (3 + 2 / LOG3)
    assert ndcg([3, 2, 0], [1, 0, 2], gain="linear") == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.913402, abs=1e-6)


def test_ndcg_exp2_by_hand():
    # gains 2^rel - 1 = [7, 3, 0]; DCG = 3 + 7/log2(3) ; IDCG = 7 + 3/log2(3)
    expected = (3 + 7 / LOG3) / (7 + 3 / LOG3)
    assert ndcg([3, 2, 0], [1, 0, 2]) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.833991, abs=1e-6)


def test_ndcg_cutoff_by_hand():
    # k = 1: only the first position counts: gain(2)/gain(3) = 3/7 with exp2, 2/3 linear
    assert ndcg([3, 2, 0], [1, 0, 2], k=1) == pytest.approx(3 / 7)
    assert ndcg([3, 2, 0], [1, 0, 2], gain="linear", k=1) == pytest.approx(2 / 3)


def test_ndcg_minmax_gain_by_hand():
    # rel [90, 80, 85] -> minmax [1, 0, 0.5]; order [2, 0, 1]: DCG = 0.5 + 1/log2(3); IDCG = 1 + 0.5/log2(3)
    expected = (0.5 + 1 / LOG3) / (1 + 0.5 / LOG3)
    assert ndcg([90, 80, 85], [2, 0, 1], gain="minmax") == pytest.approx(expected)
    # exp2 of minmax: gains [1, 0, 2^0.5 - 1]
    g = math.sqrt(2) - 1
    assert ndcg([90, 80, 85], [2, 0, 1], gain="exp2_minmax") == pytest.approx((g + 1 / LOG3) / (1 + g / LOG3))


def test_exp2_raw_on_0_100_scores_matches_python_floats():
    # The authors' formula on raw scores, written out with Python floats (2^100 is fine in a float).
    rel = [87.5, 88.25, 86.0, 60.0, 99.9]
    order = [1, 0, 4, 2, 3]
    dcg = sum((2 ** rel[j] - 1) / math.log2(i + 2) for i, j in enumerate(order))
    idcg = sum((2 ** r - 1) / math.log2(i + 2) for i, r in enumerate(sorted(rel, reverse=True)))
    assert ndcg(rel, order) == pytest.approx(dcg / idcg, rel=1e-12)


def test_exp2_raw_does_not_overflow_beyond_float_range():
    # 2^1100 overflows a float; factoring out 2^max keeps the ratio: gains ~ [1, 1/2] (the -1 is negligible)
    value = ndcg([1100.0, 1099.0], [1, 0])
    assert value == pytest.approx((0.5 + 1 / LOG3) / (1 + 0.5 / LOG3), rel=1e-12)


def test_regret_by_hand():
    rel, order = [80, 90, 85], [0, 2, 1]
    assert regret_at_k(rel, order, k=1) == pytest.approx((90 - 80) / 90 * 100)  # 11.11
    assert regret_at_k(rel, order, k=2) == pytest.approx((90 - 85) / 90 * 100)  # 5.56
    assert regret_at_k(rel, order, k=3) == 0.0
    assert regret_at_k(rel, order, k=10) == 0.0


def test_expected_best_of_random_k_by_hand():
    # k = 2 of [3, 2, 1]: subsets {3,2}, {3,1}, {2,1} -> maxima 3, 3, 2 -> mean 8/3
    assert expected_best_of_random_k([3, 2, 1], k=2) == pytest.approx(8 / 3)
    assert expected_best_of_random_k([3, 2, 1], k=1) == pytest.approx(2.0)
    # Regret@1 expectation: (3 - 2) / 3 * 100
    assert expected_regret_random([3, 2, 1], k=1) == pytest.approx(100 / 3)


def test_expected_ndcg_by_hand():
    # 2 sources, linear gains [2, 1]: orders (0,1) and (1,0) -> DCG 2 + 1/log2(3) and 1 + 2/log2(3)
    ideal = 2 + 1 / LOG3
    expected = ((2 + 1 / LOG3) + (1 + 2 / LOG3)) / 2 / ideal
    assert expected_ndcg_random([2, 1], gain="linear") == pytest.approx(expected)


def test_relative_transfer():
    assert relative_transfer(66.0, 60.0) == pytest.approx(0.1)
    np.testing.assert_allclose(relative_transfer([55.0, 60.0], [50.0, 0.0]), [0.1, np.nan])


def test_spearman_kendall_by_hand():
    # rel [3, 1, 2]; order [0, 1, 2] -> predicted strength [3, 2, 1]
    # Spearman: ranks of rel [3, 1, 2] vs [3, 2, 1]: d = [0, -1, 1], rho = 1 - 6*2/(3*8) = 0.5
    assert spearman([3, 1, 2], [0, 1, 2]) == pytest.approx(0.5)
    # Kendall: pairs (0,1) concordant, (0,2) concordant, (1,2) discordant -> (2 - 1)/3
    assert kendall([3, 1, 2], [0, 1, 2]) == pytest.approx(1 / 3)


# ---------------------------------------------------------------------------------------------- tie rule


def test_rank_from_scores_breaks_ties_by_name():
    scores = [1.0, 2.0, 1.0, 2.0]
    names = ["delta", "charlie", "alpha", "bravo"]
    # 2.0: bravo before charlie; 1.0: alpha before delta
    assert rank_from_scores(scores, names).tolist() == [3, 1, 2, 0]
    assert rank_from_scores(scores).tolist() == [1, 3, 0, 2]  # without names: by position


def test_rank_from_scores_rejects_nan_and_names_the_source():
    with pytest.raises(ValueError, match="qqp"):
        rank_from_scores([1.0, np.nan], ["mnli", "qqp"])


def test_missing_relevance_is_an_error_not_a_zero():
    with pytest.raises(ValueError, match="missing"):
        ndcg([80.0, np.nan], [0, 1])


def test_parse_metric():
    assert parse_metric("regret@3").k == 3
    assert parse_metric("ndcg").k is None
    assert parse_metric("NDCG@5", gain="linear").label == "ndcg@5"
    with pytest.raises(UnknownNameError, match="kendall"):
        parse_metric("precision@1")
    with pytest.raises(ValueError, match="cutoff"):
        parse_metric("regret")
    with pytest.raises(ValueError, match="no cutoff"):
        parse_metric("spearman@2")
    with pytest.raises(UnknownNameError, match="exp2_raw"):
        parse_metric("ndcg", gain="cubic")


# -------------------------------------------------------------------------------------------- properties

scores_0_100 = st.lists(st.floats(0, 100, allow_nan=False), min_size=2, max_size=13)


@st.composite
def rel_and_order(draw, elements=st.floats(0, 100, allow_nan=False)):
    rel = draw(st.lists(elements, min_size=1, max_size=13))
    order = draw(st.permutations(list(range(len(rel)))))
    return np.array(rel), np.array(order)


@settings(max_examples=150, deadline=None)
@given(rel_and_order(), st.sampled_from(["exp2_raw", "linear", "minmax", "exp2_minmax"]))
def test_ndcg_in_unit_interval_and_one_for_ideal(case, gain):
    rel, order = case
    value = ndcg(rel, order, gain=gain)
    ideal = np.argsort(-rel, kind="stable")
    if math.isnan(value):  # only when no source has a positive gain: every order is as good
        assert math.isnan(ndcg(rel, ideal, gain=gain))
        assert np.ptp(rel) == 0 or gain == "linear"
        return
    assert -1e-12 <= value <= 1 + 1e-12
    assert ndcg(rel, ideal, gain=gain) == pytest.approx(1.0)


@settings(max_examples=100, deadline=None)
@given(rel_and_order(), st.randoms(use_true_random=False))
def test_ndcg_invariant_to_relabelling(case, rnd):
    rel, order = case
    perm = list(range(len(rel)))
    rnd.shuffle(perm)
    perm = np.array(perm)  # new label j holds old source perm[j]
    inverse = np.argsort(perm)
    assert ndcg(rel[perm], inverse[order]) == pytest.approx(ndcg(rel, order), abs=1e-12, nan_ok=True)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 10, allow_nan=False), min_size=2, max_size=13, unique=True),
       st.data())
def test_ndcg_linear_equals_sklearn(rel, data):
    rel = np.array(rel)
    scores = np.array(data.draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=len(rel),
                                         max_size=len(rel), unique=True)))
    if rel.max() <= 0:
        return
    ours = ndcg(rel, rank_from_scores(scores), gain="linear")
    assert ours == pytest.approx(ndcg_score([rel], [scores]), abs=1e-9)
    k = data.draw(st.integers(1, len(rel)))
    assert ndcg(rel, rank_from_scores(scores), gain="linear", k=k) == pytest.approx(
        ndcg_score([rel], [scores], k=k), abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(rel_and_order(st.floats(0.01, 100, allow_nan=False)))
def test_regret_properties(case):
    rel, order = case
    values = [regret_at_k(rel, order, k=k) for k in range(1, len(rel) + 1)]
    assert all(0 <= v <= 100 for v in values)
    assert all(a >= b for a, b in zip(values, values[1:]))  # non-increasing in k
    best = int(np.argmax(rel))
    k_best = int(np.flatnonzero(order == best)[0]) + 1
    assert values[k_best - 1] == 0.0  # zero once the best source is in the top k
    assert values[-1] == 0.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=3, max_size=12), st.randoms(use_true_random=False))
def test_rank_correlations_match_scipy(rel, rnd):
    rel = np.array(rel, dtype=float)
    if np.ptp(rel) == 0:
        return
    order = list(range(len(rel)))
    rnd.shuffle(order)
    order = np.array(order)
    strength = np.empty(len(rel))
    strength[order] = -np.arange(len(rel))
    assert spearman(rel, order) == pytest.approx(stats.spearmanr(rel, strength)[0], abs=1e-9)
    assert kendall(rel, order) == pytest.approx(stats.kendalltau(rel, strength)[0], abs=1e-9)
    np.testing.assert_allclose(average_ranks(rel), stats.rankdata(rel))


# --------------------------------------------------------------------------------- exact RANDOM vs Monte Carlo


def test_random_expectation_exact_by_enumeration():
    rel = np.array([70.0, 72.5, 71.0, 69.0, 73.0])
    orders = [np.array(p) for p in itertools.permutations(range(5))]
    for k in (None, 2):
        brute = np.mean([ndcg(rel, o, k=k) for o in orders])
        assert expected_ndcg_random(rel, k=k) == pytest.approx(brute, rel=1e-12)
    for k in (1, 3):
        brute = np.mean([regret_at_k(rel, o, k=k) for o in orders])
        assert expected_regret_random(rel, k=k) == pytest.approx(brute, rel=1e-12)


def test_random_expectation_against_monte_carlo():
    rng = np.random.default_rng(0)
    rel = rng.uniform(60, 80, size=13)
    draws = [rng.permutation(13) for _ in range(5000)]
    for name, exact, sample in (
        ("ndcg", expected_ndcg_random(rel), [ndcg(rel, o) for o in draws]),
        ("regret@1", expected_regret_random(rel, k=1), [regret_at_k(rel, o, k=1) for o in draws]),
        ("regret@3", expected_regret_random(rel, k=3), [regret_at_k(rel, o, k=3) for o in draws]),
        ("spearman", 0.0, [spearman(rel, o) for o in draws]),
        ("kendall", 0.0, [kendall(rel, o) for o in draws]),
    ):
        sample = np.asarray(sample)
        sem = sample.std(ddof=1) / math.sqrt(sample.size)
        assert abs(sample.mean() - exact) < 4 * sem + 1e-12, name
