"""Embedding-free selectors: RANDOM (its exact expectation, and the authors' seeded single draw) and SIZE."""

from __future__ import annotations

import random
from typing import Hashable, Iterable

import numpy as np

from itsel_ray.selection.base import SelectionInput, SelectorOptions, register_selector


@register_selector("random", label="RANDOM", uniform=True)
def random_expected(inp: SelectionInput, opts: SelectorOptions) -> np.ndarray:
    """All orderings equally likely: the scores are all equal and the metrics report their exact mean over the
    n! orderings (see `RankingMetric.expected`), not one draw."""
    return np.zeros(len(inp.sources))


@register_selector("random-draw", label="RANDOM (draw)", needs=("draw",))
def random_draw(inp: SelectionInput, opts: SelectorOptions) -> np.ndarray:
    """The cell's single seeded shuffle (see `paper_draws`), as the authors scored RANDOM."""
    return np.asarray(inp.draw, dtype=np.float64)


@register_selector("size", label="SIZE", needs=("sizes",))
def size_scores(inp: SelectionInput, opts: SelectorOptions) -> np.ndarray:
    """Training-set size: bigger source data is predicted to transfer better."""
    return np.asarray(inp.sizes, dtype=np.float64)


def paper_draws(cells: Iterable[Hashable], n_sources: int, *, seed: int = 5) -> dict[Hashable, np.ndarray]:
    """One shuffle of [1..n] per cell from one `random.Random(seed)`, its state carried from cell to cell in the
    order given (the authors: `random.seed(5)` once, then a shuffled 1..13 list as the similarity of each cell).

    Returns cell -> [n_sources] scores; score i belongs to the i-th source of the study's source order.
    """
    rng = random.Random(seed)
    out = {}
    for cell in cells:
        draw = list(range(1, n_sources + 1))
        rng.shuffle(draw)
        out[cell] = np.asarray(draw, dtype=np.float64)
    return out
