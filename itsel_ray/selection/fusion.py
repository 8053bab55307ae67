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
    """Reciprocal-rank fusion of the selectors named in `opts.fusion`."""
    total = np.zeros(len(inp.sources))
    for name in opts.fusion:
        part = SELECTORS.get(name)
        if part.uniform or part.parts is not None:
            raise ValueError(f"fusion cannot combine {name!r}: it has no single ranking or is itself a fusion")
        order = rank_from_scores(part.scores(inp, opts), inp.sources)
        rank = np.empty(order.size)
        rank[order] = np.arange(1, order.size + 1)
        total += 1.0 / (opts.fusion_k + rank)
    return total
