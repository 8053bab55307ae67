"""LOGME: how well the frozen model's features of the target's training rows, under each source prompt, explain the
target's labels (You et al. 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning").

LogME fits a Bayesian linear model y = F w + noise, w ~ N(0, alpha^-1 I), noise ~ N(0, beta^-1 I), picks alpha
and beta by maximising the evidence p(y | F, alpha, beta) (at the point MacKay's fixed-point updates converge to,
found more robustly, see `maximise_evidence`), and reports the
maximum log evidence per row. Classification targets are one one-hot column per class (the mean over classes);
a regression target (STS-B-like) is the number itself. Everything is computed in the basis of the SVD of F, so one
decomposition serves every class and every iteration costs O(rank).

The evidence is exact also with fewer rows than feature dimensions (N < D, the usual case: 256 rows of 768-wide
features): log|A| counts the D - k null directions of F, which the public implementations (thuml/LogME,
hf-dataset-selector) leave out, and where the maximum lies on the boundary of (alpha, beta) (a noise-free fit, which
N < D allows, or no signal at all) its closed-form limit is taken instead of iterating towards it
(`benchmarks/bench_logme_public.py` measures both against a direct maximisation).

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
    """The maximised evidence of one target column: log p(y | F, alpha, beta) / N and the maximiser.

    limit: "" for an interior maximum, else the boundary where the supremum lies:
    "noise-free" (beta -> infinity; only when the rows of F are linearly independent, k = N, so that F w can fit
    any y exactly) or "no-signal" (alpha -> infinity, w = 0: y is pure noise). There the value is the limit in
    closed form and the infinite parameter is reported as math.inf."""

    per_row: float
    alpha: float
    beta: float
    evaluations: int
    limit: str = ""


def _log_evidence(basis: SvdBasis, z: np.ndarray, outside: float, alpha: float, beta: float) -> float:
    """log p(y | F, alpha, beta) from z = U^T y and outside = |y|^2 - |z|^2 (the part of y no weight vector
    reaches), with m the posterior mean of the weights; every term a sum of non-negative parts."""
    sigma = basis.s ** 2
    t = alpha / beta
    m2 = float(((basis.s * z / (t + sigma)) ** 2).sum())  # |m|^2
    resid = float(((z * (t / (t + sigma))) ** 2).sum()) + outside  # |y - F m|^2
    # log|A|, A = alpha I + beta F^T F [D, D]: the k non-zero directions, plus D - k directions with eigenvalue alpha.
    logdet = float(np.log(alpha + beta * sigma).sum()) + (basis.d - basis.s.size) * math.log(alpha)
    n, d = basis.n, basis.d
    return (0.5 * d * math.log(alpha) + 0.5 * n * math.log(beta) - 0.5 * beta * resid - 0.5 * alpha * m2
            - 0.5 * logdet - 0.5 * n * math.log(2.0 * math.pi))


def _projection(basis: SvdBasis, y: np.ndarray) -> tuple[np.ndarray, float]:
    """(z = U^T y, |y|^2 - |z|^2): with k = N the columns of U span every y, so the outside part is exactly 0."""
    z = basis.u.T @ y
    outside = 0.0 if basis.s.size == basis.n else max(float(y @ y) - float(z @ z), 0.0)
    return z, outside


def log_evidence(basis: SvdBasis, y: np.ndarray, alpha: float, beta: float) -> float:
    """log p(y | F, alpha, beta) of the Bayesian linear model (not divided by N)."""
    y = np.asarray(y, dtype=np.float64)
    return _log_evidence(basis, *_projection(basis, y), alpha, beta)


def _limits(basis: SvdBasis, y: np.ndarray, z: np.ndarray) -> list[Evidence]:
    """The evidence's suprema on the boundary, in closed form, each maximised over the remaining parameter.

    no-signal (alpha -> inf): y ~ N(0, I / beta), best at beta = N / |y|^2. noise-free (beta -> inf, k = N only):
    y ~ N(0, F F^T / alpha), log|F F^T / alpha| = sum log sigma - N log alpha, best at alpha = N / q with
    q = y^T (F F^T)^-1 y = sum z^2 / sigma."""
    n, out = basis.n, []
    yy = float(y @ y)
    if yy > 0:
        out.append(Evidence((-0.5 * n * math.log(2.0 * math.pi * yy / n) - 0.5 * n) / n, math.inf, n / yy, 0,
                            "no-signal"))
    if basis.s.size == n:
        q = float((z ** 2 / basis.s ** 2).sum())
        if q > 0:
            alpha = n / q
            log_ev = (-0.5 * n * math.log(2.0 * math.pi) - float(np.log(basis.s).sum()) + 0.5 * n * math.log(alpha)
                      - 0.5 * n)
            out.append(Evidence(log_ev / n, alpha, math.inf, 0, "noise-free"))
    return out


def _profile(basis: SvdBasis, z: np.ndarray, outside: float, u: float) -> tuple[float, float]:
    """(log evidence maximised over beta at t = alpha / beta = e^u, that beta). With t fixed,
    y ~ N(0, (I + F F^T / t) / beta): q = y^T (I + F F^T / t)^-1 y = sum z^2 t / (t + sigma) + outside, the best
    beta is N / q, and log p = -N/2 log(2 pi q / N) - N/2 - 1/2 sum log(1 + sigma / t)."""
    t = math.exp(u)
    sigma = basis.s ** 2
    q = float((z ** 2 * (t / (t + sigma))).sum()) + outside
    n = basis.n
    if not q > 0:
        return -math.inf, math.nan
    return (-0.5 * n * math.log(2.0 * math.pi * q / n) - 0.5 * n - 0.5 * float(np.log1p(sigma / t).sum()),
            n / q)


def _slope(basis: SvdBasis, z: np.ndarray, outside: float, u: float) -> float:
    """d/du of `_profile` at t = e^u: (gamma - N t q'(t) / q) / 2, gamma = sum sigma / (t + sigma),
    q'(t) = sum z^2 sigma / (t + sigma)^2. Zero where MacKay's fixed-point equations hold."""
    t = math.exp(u)
    sigma = basis.s ** 2
    share = sigma / (t + sigma)
    q = float((z ** 2 * (t / (t + sigma))).sum()) + outside
    return 0.5 * float(share.sum()) - 0.5 * basis.n * float((z ** 2 * share * (t / (t + sigma))).sum()) / q


def _bisect(fn, lo: float, hi: float) -> float:
    """A root of `fn` in [lo, hi], where fn(lo) > 0 > fn(hi), to the last bit of the argument."""
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if not lo < mid < hi:
            break
        if fn(mid) > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def maximise_evidence(basis: SvdBasis, y: np.ndarray, *, grid: int = 241) -> Evidence:
    """The maximum of log p(y | F, alpha, beta) / N over alpha, beta > 0.

    beta is maximised in closed form for each ratio t = alpha / beta (`_profile`), and t by a grid over log t
    that spans the singular values' range by e^30 on either side, refined by bisection on the slope between the
    best grid point's neighbours. The boundaries, where the supremum may lie (see `Evidence.limit`), are taken in closed form.
    At an interior maximum this is the fixed point of MacKay's updates (gamma = sum sigma / (t + sigma),
    alpha = gamma / |m|^2, beta = (N - gamma) / |y - F m|^2), the LogME paper's algorithm; the search reaches it
    without the iteration's failure modes: no convergence within its iterations near a boundary, a slow drift
    towards one, and a division by zero when N - gamma rounds to 0."""
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (basis.n,) or not np.isfinite(y).all():
        raise ValueError(f"LogME target must be [{basis.n}] finite values, got shape {y.shape}")
    z, outside = _projection(basis, y)
    best = max(_limits(basis, y, z), key=lambda e: e.per_row, default=None)
    if basis.s.size:
        sigma = basis.s ** 2
        us = np.linspace(math.log(sigma.min()) - 30.0, math.log(sigma.max()) + 30.0, grid)
        t = np.exp(us)[:, None]  # the profile at every grid point at once, as in `_profile`
        q = (z ** 2 * (t / (t + sigma))).sum(axis=1) + outside
        with np.errstate(divide="ignore"):
            values = -0.5 * basis.n * np.log(q) - 0.5 * np.log1p(sigma / t).sum(axis=1)
        i = int(np.argmax(values))
        lo, hi = float(us[max(i - 1, 0)]), float(us[min(i + 1, grid - 1)])
        slope = lambda v: _slope(basis, z, outside, v)  # noqa: E731
        u = _bisect(slope, lo, hi) if slope(lo) > 0 > slope(hi) else float(us[i])
        value, beta = _profile(basis, z, outside, u)
        # The limit wins ties within rounding: a maximum at the edge of the grid is the boundary's value.
        if math.isfinite(value) and (best is None or value / basis.n > best.per_row + 1e-12 * max(
                1.0, abs(best.per_row))):
            best = Evidence(value / basis.n, math.exp(u) * beta, beta, grid)
    if best is None:  # y = 0: every model explains it equally; no evidence either way
        raise ValueError("LogME target is all zeros")
    return best


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
