"""LogME: hand-computed evidence on a 4x2 feature matrix, agreement with a direct D x D fixed-point implementation
and with a numerical maximisation of the Gaussian marginal likelihood, and the selector's contract."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.stats import multivariate_normal

from itsel_ray.selection import SELECTORS, SelectionInput, SelectorOptions
from itsel_ray.selection.logme import SvdBasis, log_evidence, logme, maximise_evidence

F4 = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
Y4 = np.array([1.0, 0.0, 1.0, 0.0])  # the one-hot column of class 0 for labels [0, 1, 0, 1]


def test_evidence_at_alpha_beta_one_by_hand():
    # y ~ N(0, I / beta + F F^T / alpha) = N(0, diag(5, 2, 1, 1)): y^T C^-1 y = 1/5 + 1 = 1.2, log det C = log 10
    expected = -0.5 * 1.2 - 0.5 * math.log(10.0) - 2.0 * math.log(2.0 * math.pi)
    assert log_evidence(SvdBasis.of(F4), Y4, 1.0, 1.0) == pytest.approx(expected, rel=1e-12)


def test_fixed_point_solves_the_hand_derived_equations():
    # sigma = (4, 1), z = U^T y = (1, 0), the part of y outside F's column space: |y|^2 - |z|^2 = 1. With t = a / b:
    # m = (2 / (t + 4), 0), gamma = 4 / (t + 4) + 1 / (t + 1), |y - F m|^2 = (t / (t + 4))^2 + 1.
    ev = maximise_evidence(SvdBasis.of(F4), Y4)
    a, b = ev.alpha, ev.beta
    t = a / b
    gamma = 4 / (t + 4) + 1 / (t + 1)
    assert a == pytest.approx(gamma / (4 / (t + 4) ** 2), rel=1e-8)
    assert b == pytest.approx((4 - gamma) / ((t / (t + 4)) ** 2 + 1), rel=1e-8)
    cov = np.eye(4) / b + F4 @ F4.T / a
    assert ev.per_row == pytest.approx(multivariate_normal(np.zeros(4), cov).logpdf(Y4) / 4, rel=1e-10)


def direct_fixed_point(f, y, iters=500):
    """The textbook form, written independently: A = alpha I + beta F^T F, m = beta A^-1 F^T y, no SVD."""
    n, d = f.shape
    alpha, beta = 1.0, 1.0
    eig = np.linalg.eigvalsh(f.T @ f)
    for _ in range(iters):
        a = alpha * np.eye(d) + beta * f.T @ f
        m = beta * np.linalg.solve(a, f.T @ y)
        gamma = np.sum(beta * eig / (alpha + beta * eig))
        alpha, beta = gamma / (m @ m), (n - gamma) / np.sum((y - f @ m) ** 2)
    a = alpha * np.eye(d) + beta * f.T @ f
    m = beta * np.linalg.solve(a, f.T @ y)
    ev = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - beta / 2 * np.sum((y - f @ m) ** 2) - alpha / 2 * m @ m
          - np.linalg.slogdet(a)[1] / 2 - n / 2 * np.log(2 * np.pi))
    return ev / n, alpha, beta


def marginal_likelihood_max(f, y, x0=(0.0, 0.0)):
    """max over (alpha, beta) of log N(y; 0, I / beta + F F^T / alpha) / N, by a generic optimiser over
    (log alpha, log beta) started at x0."""
    n = len(y)

    gram = f @ f.T

    def neg(x):
        cov = np.eye(n) * np.exp(-x[1]) + gram * np.exp(-x[0])
        return 0.5 * (np.linalg.slogdet(cov)[1] + y @ np.linalg.solve(cov, y) + n * np.log(2 * np.pi))

    best = minimize(neg, x0=np.asarray(x0, dtype=float), method="Nelder-Mead",
                    options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 8000})
    return -best.fun / n


@pytest.mark.parametrize("n,d", [(40, 5), (12, 30), (25, 25)])
def test_agrees_with_direct_and_numerical_maximisation(n, d):
    rng = np.random.default_rng(n * d)
    f = rng.normal(size=(n, d))
    y = f[:, 0] * 0.7 + rng.normal(scale=0.5, size=n)
    ev = maximise_evidence(SvdBasis.of(f), y)
    ref, alpha, beta = direct_fixed_point(f, y, iters=2000)
    assert ev.per_row == pytest.approx(ref, rel=1e-7)
    assert (ev.alpha, ev.beta) == pytest.approx((alpha, beta), rel=1e-5)
    assert ev.per_row == pytest.approx(marginal_likelihood_max(f, y), abs=1e-7)


def test_rank_deficient_features_count_the_null_directions():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(30, 3))
    f = np.hstack([base, base @ rng.normal(size=(3, 4))])  # D = 7, rank 3
    y = base[:, 1] + rng.normal(scale=0.3, size=30)
    assert SvdBasis.of(f).s.size == 3
    assert logme(f, y, regression=True) == pytest.approx(direct_fixed_point(f, y, iters=3000)[0], rel=1e-7)


def _sts_like_draw(seed):
    """6 rows of 10 uncentred features and STS-B-like scores in [0, 5]: fewer rows than dimensions."""
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 1.0, size=(6, 10)), rng.uniform(0, 5, size=6).round(1)


@pytest.mark.parametrize("seed", [0, 9, 11, 24, 26, 1, 2])
def test_fewer_rows_than_dimensions_regression_reaches_the_true_maximum(seed):
    # Seeds 0, 9, 11, 24 and 26 (5 of the first 40 draws) raised ZeroDivisionError before: the maximum lies at
    # beta -> infinity, where N - gamma, formed as a difference, rounds to 0. Seeds 1 and 2 have an interior one.
    f, y = _sts_like_draw(seed)
    ev = maximise_evidence(SvdBasis.of(f), y)
    starts = [(0.0, 0.0), (0.0, 10.0), (3.0, 5.0)]
    best = max(marginal_likelihood_max(f, y, x0=x0) for x0 in starts)
    assert ev.per_row == pytest.approx(best, abs=1e-8)
    assert ev.limit == ("noise-free" if seed in (0, 9, 11, 24, 26) else "")
    assert logme(f, y, regression=True) == ev.per_row


def test_no_draw_of_the_small_regression_fails():
    for seed in range(40):
        assert np.isfinite(logme(*_sts_like_draw(seed), regression=True))


@pytest.mark.parametrize("n,d", [(6, 10), (40, 5)])
def test_the_scale_of_the_features_does_not_change_the_score(n, d):
    # y ~ N(0, I / beta + F F^T / alpha) is the same model for c F and c^2 alpha, so the maximum is the same; the
    # public implementations' evidence moves by (D - N) / N * log(c) per row when N < D.
    rng = np.random.default_rng(n)
    f = rng.normal(size=(n, d))
    labels = np.arange(n) % 2
    for c in (1e-3, 0.1, 10.0, 1e3):
        assert logme(c * f, labels) == pytest.approx(logme(f, labels), abs=1e-9)


def test_classification_is_the_mean_over_one_hot_columns():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=50)
    f = rng.normal(size=(50, 6)) + np.eye(6)[labels] * 2.0
    basis = SvdBasis.of(f)
    per_class = [maximise_evidence(basis, (labels == c).astype(float)).per_row for c in range(3)]
    assert logme(f, labels) == pytest.approx(np.mean(per_class), rel=1e-12)


def test_informative_features_score_higher():
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1], 64)
    noise = rng.normal(size=(128, 16))
    informative = noise + np.outer(labels * 2.0 - 1.0, np.ones(16)) * 0.8
    assert logme(informative, labels) > logme(noise, labels)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000))
def test_row_order_does_not_matter_and_the_fixed_point_is_a_maximum(seed):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(20, 4))
    labels = rng.integers(0, 2, size=20)
    labels[:2] = [0, 1]
    perm = rng.permutation(20)
    assert logme(f[perm], labels[perm]) == pytest.approx(logme(f, labels), rel=1e-9)
    y = (labels == 1).astype(float)
    basis = SvdBasis.of(f)
    ev = maximise_evidence(basis, y)
    # where the labels carry no signal the supremum lies at alpha -> infinity (ev.limit "no-signal", alpha inf)
    grid = [(a, b) for a in np.logspace(-3, 6, 10) for b in np.logspace(-3, 3, 7)]
    if not ev.limit:
        grid += [(ev.alpha * da, ev.beta * db) for da, db in ((1.1, 1), (0.9, 1), (1, 1.1), (1, 0.9))]
    for a, b in grid:
        assert log_evidence(basis, y, a, b) / 20 <= ev.per_row + 1e-9


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="two classes"):
        logme(np.ones((4, 2)) + np.eye(4, 2), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        logme(np.full((4, 2), np.nan), np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="3 labels for 4"):
        logme(F4, np.array([0, 1, 0]))


def test_selector_reads_the_scores_and_needs_them():
    sel = SELECTORS.get("logme")
    assert sel.label == "LOGME" and sel.requirements(SelectorOptions()) == {"logme"}
    inp = SelectionInput(target="t", sources=("a", "b"), model_scores={"logme": np.array([-0.3, np.nan])})
    np.testing.assert_array_equal(sel.scores(inp, SelectorOptions()), [-0.3, np.nan])
    with pytest.raises(ValueError, match="logme"):
        sel.scores(SelectionInput(target="t", sources=("a", "b")), SelectorOptions())
