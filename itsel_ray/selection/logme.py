"""LOGME: how well the frozen model's features of the target's training rows, under each source prompt, explain the
target's labels (You et al. 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning").

LogME fits a Bayesian linear model y = F w + noise, w ~ N(0, alpha^-1 I), noise ~ N(0, beta^-1 I), picks alpha
and beta by maximising the evidence p(y | F, alpha, beta) with MacKay's fixed-point updates, and reports the
maximum log evidence per row. Classification targets are one one-hot column per class (the mean over classes);
a regression target (STS-B-like) is the number itself. Everything is computed in the basis of the SVD of F, so one
decomposition serves every class and every iteration costs O(rank).

The features come from the engine's readout (`itsel_ray.engine.readout`: each source prompt's pooled features of a
fixed sample of the target's training rows); the selector only reads the precomputed scores, like PROBE. A source
without a score stays NaN (a missing score, never 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from itsel_ray.selection.base import SelectionInput, SelectorOptions, given_scores, register_selector
from itsel_ray.selection.model_inputs import Readout, register_model_input


@dataclass(frozen=True)
class SvdBasis:
    """F [N, D] = U diag(s) V^T, thin, with the numerically zero singular values dropped."""

    u: np.ndarray  # [N, k]
    s: np.ndarray  # [k]
    n: int
    d: int

    @classmethod
    def of(cls, features: np.ndarray) -> "SvdBasis":
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] < 2 or f.shape[1] < 1:
            raise ValueError(f"LogME needs a [rows >= 2, dims >= 1] feature matrix, got shape {f.shape}")
        if not np.isfinite(f).all():
            raise ValueError("LogME features contain NaN or infinite values")
        u, s, _ = np.linalg.svd(f, full_matrices=False)
        keep = s > (s[0] if s.size else 0.0) * max(f.shape) * np.finfo(np.float64).eps
        return cls(u[:, keep], s[keep], f.shape[0], f.shape[1])


@dataclass(frozen=True)
class Evidence:
    """The maximised evidence of one target column: log p(y | F, alpha, beta) / N and the maximiser."""

    per_row: float
    alpha: float
    beta: float
    iterations: int


def _terms(basis: SvdBasis, z: np.ndarray, outside: float, alpha: float, beta: float):
    """(gamma, |m|^2, |y - F m|^2, log evidence) at (alpha, beta), m the posterior mean of the weights.

    z = U^T y; outside = |y|^2 - |z|^2, the part of y no weight vector can reach."""
    sigma = basis.s ** 2
    denom = alpha + beta * sigma
    coef = beta * basis.s * z / denom  # m in the basis of the right singular vectors
    m2 = float(coef @ coef)
    resid = float(((z - basis.s * coef) ** 2).sum()) + outside
    gamma = float((beta * sigma / denom).sum())
    # log|A|, A = alpha I + beta F^T F [D, D]: the k non-zero directions, plus D - k directions with eigenvalue alpha.
    logdet = float(np.log(denom).sum()) + (basis.d - basis.s.size) * math.log(alpha)
    n, d = basis.n, basis.d
    log_ev = (0.5 * d * math.log(alpha) + 0.5 * n * math.log(beta) - 0.5 * beta * resid - 0.5 * alpha * m2
              - 0.5 * logdet - 0.5 * n * math.log(2.0 * math.pi))
    return gamma, m2, resid, log_ev


def log_evidence(basis: SvdBasis, y: np.ndarray, alpha: float, beta: float) -> float:
    """log p(y | F, alpha, beta) of the Bayesian linear model (not divided by N)."""
    y = np.asarray(y, dtype=np.float64)
    z = basis.u.T @ y
    return _terms(basis, z, max(float(y @ y) - float(z @ z), 0.0), alpha, beta)[3]


def maximise_evidence(basis: SvdBasis, y: np.ndarray, *, max_iter: int = 200, tol: float = 1e-8) -> Evidence:
    """MacKay's fixed point from alpha = beta = 1 (the paper's start): gamma = sum beta sigma / (alpha + beta sigma),
    alpha = gamma / |m|^2, beta = (N - gamma) / |y - F m|^2, until alpha / beta changes by less than `tol`
    (relative)."""
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (basis.n,) or not np.isfinite(y).all():
        raise ValueError(f"LogME target must be [{basis.n}] finite values, got shape {y.shape}")
    z = basis.u.T @ y
    outside = max(float(y @ y) - float(z @ z), 0.0)
    tiny = np.finfo(np.float64).tiny
    alpha = beta = 1.0
    for it in range(1, max_iter + 1):
        gamma, m2, resid, _ = _terms(basis, z, outside, alpha, beta)
        new_alpha = gamma / max(m2, tiny)
        new_beta = (basis.n - gamma) / max(resid, tiny)
        done = abs(new_alpha / new_beta - alpha / beta) <= tol * (alpha / beta)
        alpha, beta = min(max(new_alpha, tiny), 1e300), min(max(new_beta, tiny), 1e300)
        if done:
            break
    return Evidence(_terms(basis, z, outside, alpha, beta)[3] / basis.n, alpha, beta, it)


def logme(features: np.ndarray, labels: np.ndarray, *, regression: bool = False) -> float:
    """LogME of features [N, D] for labels [N]: class indices (the mean evidence over the one-hot column of each
    class present), or numbers with `regression` (one column). Higher = the features explain the labels better."""
    labels = np.asarray(labels)
    basis = SvdBasis.of(features)
    if labels.shape != (basis.n,):
        raise ValueError(f"{labels.shape[0] if labels.ndim else 0} labels for {basis.n} feature rows")
    if regression:
        columns = [labels.astype(np.float64)]
    else:
        classes = np.unique(labels)
        if classes.size < 2:
            raise ValueError(f"LogME needs at least two classes among the labels, got {classes.tolist()}")
        columns = [(labels == c).astype(np.float64) for c in classes]
    return float(np.mean([maximise_evidence(basis, y).per_row for y in columns]))


@register_model_input("logme", description="LogME scores of the frozen model's features of the target's training "
                                           "rows under each source prompt")
def logme_input(readout: Readout) -> dict[str, float]:
    """{source: LogME of its features against the sampled rows' labels (or numbers, as a regression)}."""
    labels, regression = readout.targets()
    return {source: logme(f, labels, regression=regression) for source, f in readout.features().items()}


@register_selector("logme", label="LOGME", needs=("logme",))
def logme_scores(inp: SelectionInput, opts: SelectorOptions) -> np.ndarray:
    """The cell's precomputed LogME scores as given (higher = the source prompt's features fit the target better)."""
    return given_scores("logme", inp)
