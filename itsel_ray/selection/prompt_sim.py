"""The paper's prompt-based task embeddings: FEATURE (eq. 3), UNIGRAM (sec. 6.1) and MAX (eq. 4).

Each compares the target prompt [Q, H] with every source prompt [P, H] of a cell at once (vectorised over sources
and over the target's seeds when several are given; their similarities are averaged).
"""

from __future__ import annotations

import numpy as np

from itsel_ray.selection.base import SelectionInput, SelectorOptions, cosine_rows, register_selector


@register_selector("feature", label="FEATURE", needs=("prompts",))
def feature_similarity(inp: SelectionInput, opts: SelectorOptions) -> np.ndarray:
    """cos(mean_i e_i^source, mean_j e_j^target): the token mean as an R^H task embedding (SPoT)."""
    src, tgt = inp.prompts.tokens(opts.normalize)
    return cosine_rows(tgt.mean(axis=1), src.mean(axis=1)).mean(axis=0)


@register_selector("unigram", label="UNIGRAM", needs=("prompts",))
def unigram_similarity(inp: SelectionInput, opts: SelectorOptions) -> np.ndarray:
    """cos of the per-token feature means, an R^P embedding; token i of the source meets token i of the target,
    so both prompts need the same length."""
    src, tgt = inp.prompts.tokens(opts.normalize)
    if src.shape[1] != tgt.shape[1]:
        raise ValueError(
            f"UNIGRAM compares prompts position by position; source prompts have {src.shape[1]} tokens, "
            f"the target prompt {tgt.shape[1]}"
        )
    return cosine_rows(tgt.mean(axis=2), src.mean(axis=2)).mean(axis=0)


def directional_mean(per_pair: np.ndarray, direction: str, reduce) -> np.ndarray:
    """Reduce [R, S, P, Q] token-pair similarities to [S].

    target_centric: for each target token j reduce over source tokens i, then average over j (eq. 4);
    source_centric: for each source token reduce over target tokens, average over source tokens (authors' code);
    symmetric: the mean of both.
    """
    target_centric = reduce(per_pair, axis=2).mean(axis=-1)
    source_centric = reduce(per_pair, axis=3).mean(axis=-1)
    by_direction = {
        "target_centric": target_centric,
        "source_centric": source_centric,
        "symmetric": 0.5 * (target_centric + source_centric),
    }
    return by_direction[direction].mean(axis=0)


@register_selector("max", label="MAX", needs=("prompts",))
def max_similarity(inp: SelectionInput, opts: SelectorOptions) -> np.ndarray:
    """Mean of the best token-to-token cosine (maximum inner product search of unit tokens), eq. 4 by default."""
    return directional_mean(inp.prompts.token_cos, opts.max_direction, np.max)
