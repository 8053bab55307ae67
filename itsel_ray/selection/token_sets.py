"""Selectors beyond the paper that treat a prompt as a *set* of tokens, like MAX, but use more than one match.

MAX-TOPK: for each target token, the mean of its k best cosines to source tokens (k = 1 is MAX). A single best
match among 100 tokens is a noisy extreme value; averaging the k best keeps MAX's token-level matching while
lowering the variance that the paper sees across steps and seeds.

MMD: the negative maximum mean discrepancy between the two token sets under an RBF kernel on unit tokens. It uses
every token pair, so it measures whether the two prompts occupy the same region of embedding space as a whole
(FEATURE compares only the means; MAX only nearest neighbours).
"""

from __future__ import annotations

import numpy as np

from itsel_ray.selection.base import SelectionInput, SelectorOptions, register_selector
from itsel_ray.selection.prompt_sim import directional_mean


def _topk_mean(k: int):
    def reduce(x: np.ndarray, axis: int) -> np.ndarray:
        kk = min(k, x.shape[axis])
        part = np.partition(x, x.shape[axis] - kk, axis=axis)
        top = np.take(part, np.arange(x.shape[axis] - kk, x.shape[axis]), axis=axis)
        return top.mean(axis=axis)

    return reduce


@register_selector("max-topk", label="MAX-TOPK", needs=("prompts",))
def max_topk_similarity(inp: SelectionInput, opts: SelectorOptions) -> np.ndarray:
    """MAX with the top-`opts.topk` mean instead of the max, in `opts.max_direction`."""
    return directional_mean(inp.prompts.token_cos, opts.max_direction, _topk_mean(opts.topk))


def _gram(x: np.ndarray) -> np.ndarray:
    """[B, N, H] -> [B, N, N] token cosines of unit tokens; one 2-D BLAS product per prompt (numpy's batched
    matmul with a transposed operand does not reach BLAS and is an order of magnitude slower)."""
    return np.stack([m @ m.T for m in x])


def _rbf_from_cos(cos: np.ndarray, gamma: float) -> np.ndarray:
    # For unit vectors |a - b|^2 = 2 - 2 cos(a, b).
    return np.exp(-gamma * (2.0 - 2.0 * cos))


@register_selector("mmd", label="MMD", needs=("prompts",))
def mmd_similarity(inp: SelectionInput, opts: SelectorOptions) -> np.ndarray:
    """-MMD^2 = -(mean k(s, s') + mean k(t, t') - 2 mean k(s, t)) over all token pairs (biased estimate, the
    diagonal included), k(a, b) = exp(-gamma |a - b|^2) on unit tokens; averaged over the target's seeds."""
    pair = inp.prompts
    gamma = opts.mmd_gamma
    k_st = _rbf_from_cos(pair.token_cos, gamma).mean(axis=(2, 3))  # [R, S]

    def source_self() -> np.ndarray:
        u = pair.unit_sources
        return _rbf_from_cos(_gram(u), gamma).mean(axis=(1, 2))

    k_ss = pair.cached(f"mmd_self_{gamma!r}", source_self)  # [S]
    ut = pair.unit_targets
    k_tt = _rbf_from_cos(_gram(ut), gamma).mean(axis=(1, 2))  # [R]
    mmd2 = k_ss[None, :] + k_tt[:, None] - 2.0 * k_st
    return -mmd2.mean(axis=0)
