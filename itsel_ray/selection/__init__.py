"""Intermediate-task selectors: each scores every candidate source for a target (higher = better), by name.

Registered selectors: random, random-draw, size, semb-b, semb-r, feature, unigram, max (the paper) and max-topk,
mmd, fusion, probe, logme (beyond it). `rank_from_scores` applies the project's tie rule (ties ordered by source name).
Model-backed selector inputs (probe, logme) are declared once in MODEL_INPUTS (`model_inputs.py`).
"""

from itsel_ray.metrics.ranking import rank_from_scores
from itsel_ray.selection import baselines as _baselines  # noqa: F401  (registers random, random-draw, size)
from itsel_ray.selection import fusion as _fusion  # noqa: F401  (fusion)
from itsel_ray.selection import logme as _logme  # noqa: F401  (logme)
from itsel_ray.selection import probe as _probe  # noqa: F401  (probe)
from itsel_ray.selection import prompt_sim as _prompt_sim  # noqa: F401  (feature, unigram, max)
from itsel_ray.selection import semb as _semb  # noqa: F401  (semb-b, semb-r)
from itsel_ray.selection import token_sets as _token_sets  # noqa: F401  (max-topk, mmd)
from itsel_ray.selection.base import (
    MAX_DIRECTIONS,
    SELECTORS,
    PromptPair,
    SelectionInput,
    Selector,
    SelectorOptions,
    register_selector,
    unit_tokens,
)
from itsel_ray.selection.baselines import paper_draws
from itsel_ray.selection.model_inputs import MODEL_INPUTS, ModelInput, Readout, register_model_input


def get_selector(name: str) -> Selector:
    """The selector called `name`; an unknown name raises UnknownNameError listing the valid names."""
    return SELECTORS.get(name)


__all__ = [
    "MAX_DIRECTIONS", "MODEL_INPUTS", "SELECTORS", "ModelInput", "PromptPair", "Readout", "SelectionInput", "Selector",
    "SelectorOptions", "get_selector", "paper_draws", "rank_from_scores", "register_model_input", "register_selector",
    "unit_tokens",
]
