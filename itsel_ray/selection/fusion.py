"""FUSION: reciprocal-rank fusion of other selectors (beyond the paper).

The paper's Table 3 shows prompt similarity winning on classification sources while SIZE wins Regret@1 on
multiple-choice and QA sources: the signals are complementary. Fusing ranks (not raw scores, whose scales differ)
hedges between them: score(s) = sum_c 1 / (fusion_k + rank_c(s)), rank 1-based under the project's tie rule.
"""

from __future__ import annotations

import numpy as np

from itsel_ray.metrics.ranking import rank_from_scores
from itsel_ray.selection.base import SELECTORS, SelectionInput, SelectorOptions, register_selector


def _parts(opts: SelectorOptions) -> tuple[str, ...]:
    return tuple(opts.fusion)


@register_selector("fusion", label="FUSION", parts=_parts)
def rank_fusion(inp: SelectionInput, opts: SelectorOptions) -> np.ndarray:
    """Reciprocal-rank fusion of the selectors named in `opts.fusion`.

    A source that some part leaves unscored (NaN, e.g. a missing probe score) gets NaN, a missing score; the
    others are ranked among themselves in every part.
    """
    parts = []
    for name in opts.fusion:
        part = SELECTORS.get(name)
        if part.uniform or part.parts is not None:
            raise ValueError(f"fusion cannot combine {name!r}: it has no single ranking or is itself a fusion")
        parts.append(part.scores(inp, opts))
    scored = np.all([np.isfinite(p) for p in parts], axis=0)
    names = tuple(n for n, ok in zip(inp.sources, scored) if ok)
    total = np.full(len(inp.sources), np.nan)
    total[scored] = 0.0
    for scores in parts:
        order = rank_from_scores(scores[scored], names)
        rank = np.empty(order.size)
        rank[order] = np.arange(1, order.size + 1)
        total[scored] += 1.0 / (opts.fusion_k + rank)
    return total
