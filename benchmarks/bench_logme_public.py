"""LOGME's evidence against the public LogME implementations' published fixed-point iteration, with fewer rows than
feature dimensions (the paper's LOGME setting: 256 rows of 768-wide features).

`public_logme` below is a reimplementation, from their description and formulas, of the fixed point that
thuml/LogME (`LogME._fit_fixed_point`, at most 11 iterations) and hf-dataset-selector (`hfselect.logme`, at most
50) run: the SVD of the features (all min(N, D) singular values when N <= D), per label column
alpha = beta = 1, then t = alpha / beta, gamma = sum sigma / (sigma + t), |m|^2 = sum sigma x^2 / (t + sigma)^2,
|y - F m|^2 = sum x^2 / (1 + sigma / t)^2 + the part of y outside the span, alpha = gamma / (|m|^2 + 1e-5),
beta = (N - gamma) / (|y - F m|^2 + 1e-5), until t changes by at most 1e-3 (relative); then the evidence
D/2 log alpha + N/2 log beta - 1/2 sum_k log(alpha + beta sigma_k) - beta/2 |y - F m|^2 - alpha/2 |m|^2
- N/2 log 2 pi, per row, averaged over the classes 0..max(label). The log-determinant runs over the k = min(N, D)
non-zero singular values only: with N < D the D - k directions of A = alpha I + beta F^T F whose eigenvalue is
alpha are missing, (D - k)/2 log alpha too much. itsel_ray.selection.logme counts them, and takes the maximum
exactly (a direct maximisation of the Gaussian marginal likelihood, printed beside, agrees).

Printed: (1) the evidence per row of both and of a direct maximisation at several shapes and feature scales;
(2) how each moves when every feature is multiplied by c (the exact evidence cannot: c F with c^2 alpha is the
same model); (3) the Kendall tau between the source rankings of the two for seven sources whose features differ
in informativeness and in scale, at 128 x 768 (the public score rises with the features' scale, by
(D - N) / N * ln c per row, so it ranks by scale where the scales differ more than the information).

    python benchmarks/bench_logme_public.py
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize
from scipy.stats import kendalltau

from itsel_ray.selection.logme import logme


def public_logme(features: np.ndarray, labels: np.ndarray, *, max_iter: int = 11) -> float:
    """The public implementations' LogME (see the module docstring), classification labels 0..max."""
    f = np.asarray(features, dtype=np.float64)
    n, d = f.shape
    if n > d:  # via the D x D Gram matrix, singular values above 1e-10
        eigval, vecs = np.linalg.eigh(f.T @ f)
        s = np.sqrt(np.clip(eigval[::-1], 0, None))
        vecs = vecs[:, ::-1]
        k = int((s > 1e-10).sum())
        s, u = s[:k], (f @ vecs[:, :k]) / s[:k]
    else:
        u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s ** 2
    evidences = []
    for c in range(int(labels.max()) + 1):
        y = (labels == c).astype(np.float64)
        x2 = (u.T @ y) ** 2
        outside = float(y @ y - x2.sum())
        alpha = beta = 1.0
        for _ in range(max_iter):
            t = alpha / beta
            gamma = float((sigma / (sigma + t)).sum())
            m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
            res2 = float((x2 / (1 + sigma / t) ** 2).sum()) + outside
            alpha, beta = gamma / (m2 + 1e-5), (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - t) / t <= 1e-3:
                break
        evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - 0.5 * float(np.log(alpha + beta * sigma).sum())
                    - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * math.log(2 * math.pi))
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def direct_logme(features: np.ndarray, labels: np.ndarray) -> float:
    """max over (alpha, beta) of log N(y; 0, I / beta + F F^T / alpha) / N, by Nelder-Mead from several starts,
    averaged over the classes present (no SVD, no fixed point)."""
    f = np.asarray(features, dtype=np.float64)
    n = f.shape[0]
    gram = f @ f.T
    out = []
    for c in np.unique(labels):
        y = (labels == c).astype(np.float64)

        def neg(x):
            cov = np.eye(n) * np.exp(-x[1]) + gram * np.exp(-x[0])
            sign, logdet = np.linalg.slogdet(cov)
            return 0.5 * (logdet + y @ np.linalg.solve(cov, y) + n * math.log(2 * math.pi))

        best = min((minimize(neg, x0=np.array(x0), method="Nelder-Mead",
                             options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 4000})
                    for x0 in ((0.0, 0.0), (np.log(gram.trace() / n), 4.0))), key=lambda r: r.fun)
        out.append(-best.fun / n)
    return float(np.mean(out))


def features(n: int, d: int, labels: np.ndarray, signal: float, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Encoder-like features: shared noise, a class direction of strength `signal`, everything times `scale`."""
    directions = rng.normal(size=(int(labels.max()) + 1, d)) / math.sqrt(d)
    return scale * (rng.normal(size=(n, d)) / math.sqrt(d) + signal * directions[labels])


def main() -> None:
    rng = np.random.default_rng(0)
    print("(1) LogME per row: exact (itsel-ray), a direct maximisation, and the public iteration (11 / 50 "
          "iterations); two balanced classes, signal 1")
    print(f"  {'rows x dims':>12} {'scale':>6} | {'exact':>8} {'direct':>8} | {'public 11':>9} {'public 50':>9} | "
          f"{'public - exact':>14}")
    gaps = []
    for n, d in ((500, 64), (6, 10), (64, 768), (128, 768), (256, 768)):
        labels = np.arange(n) % 2
        for scale in (0.1, 1.0, 10.0):
            f = features(n, d, labels, 1.0, scale, rng)
            exact, pub11, pub50 = logme(f, labels), public_logme(f, labels), public_logme(f, labels, max_iter=50)
            direct = direct_logme(f, labels) if n <= 128 else float("nan")
            if n < d:
                gaps.append(pub50 - exact)
            print(f"  {f'{n} x {d}':>12} {scale:>6g} | {exact:8.3f} {direct:8.3f} | {pub11:9.3f} {pub50:9.3f} | "
                  f"{pub50 - exact:+14.3f}")
    print(f"  rows < dimensions: the public evidence is off by {min(gaps):+.2f} to {max(gaps):+.2f} nats per row")

    print("\n(2) the score when every feature is multiplied by c (256 x 768, two classes)")
    labels = np.arange(256) % 2
    f = features(256, 768, labels, 1.0, 1.0, rng)
    base_exact, base_pub = logme(f, labels), public_logme(f, labels, max_iter=50)
    for c in (0.1, 10.0, 100.0):
        print(f"  c = {c:>5g}: exact {logme(c * f, labels) - base_exact:+.2e}, public "
              f"{public_logme(c * f, labels, max_iter=50) - base_pub:+.3f} nats per row "
              f"((D - N) / N * ln c = {(768 - 256) / 256 * math.log(c):+.3f})")

    print("\n(3) seven sources at 128 x 768: informativeness rises from source 1 to 7 while the features' scale "
          "falls (/2 per source)")
    labels = np.arange(128) % 2
    signals = np.linspace(0.2, 1.4, 7)
    taus = []
    for draw in range(5):
        r = np.random.default_rng(100 + draw)
        feats = [features(128, 768, labels, s, 2.0 ** -i, r) for i, s in enumerate(signals)]
        exact = [logme(x, labels) for x in feats]
        pub = [public_logme(x, labels, max_iter=50) for x in feats]
        tau_true = kendalltau(signals, exact)[0]
        tau = kendalltau(exact, pub)[0]
        taus.append(tau)
        print(f"  draw {draw}: Kendall tau exact vs informativeness {tau_true:+.2f}; public vs exact {tau:+.2f}")
    print(f"  the public ranking against the exact one: tau {np.mean(taus):+.2f} on average")
    scales = np.exp(np.random.default_rng(7).uniform(np.log(0.25), np.log(4.0), size=(20, 7)))
    taus = []
    for draw, sc in enumerate(scales):
        r = np.random.default_rng(200 + draw)
        feats = [features(128, 768, labels, s, c, r) for s, c in zip(signals, sc)]
        taus.append(kendalltau([logme(x, labels) for x in feats],
                               [public_logme(x, labels, max_iter=50) for x in feats])[0])
    print(f"  with scales drawn at random (log-uniform, 0.25-4), 20 draws: tau public vs exact median "
          f"{np.median(taus):+.2f} (min {np.min(taus):+.2f})")


if __name__ == "__main__":
    main()
