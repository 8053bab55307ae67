"""PROBE: each source prompt's zero-shot fit to the target, measured through the frozen model (beyond the paper).

The weight-similarity selectors compare two separately trained prompts and hope that similar weights mean a
similar effect; PROBE measures the effect itself: minus the target objective's mean training loss with the source
prompt in front of a fixed sample of the target's *training* rows, before any target training. The losses come
from the engine's readout (one forward pass per source, `itsel_ray.engine.readout`); the selector only reads the
scores, so it is as cheap and pure as SIZE. A source without a score stays NaN: the analysis treats it like a
missing transfer score (its `ranking.missing` policy), never as 0.
"""

from __future__ import annotations

import numpy as np

from itsel_ray.selection.base import SelectionInput, SelectorOptions, given_scores, register_selector
from itsel_ray.selection.model_inputs import Readout, register_model_input


@register_model_input("probe", description="zero-shot probe scores (minus the target's training loss with each "
                                           "source prompt)")
def probe_input(readout: Readout) -> dict[str, float]:
    """{source: minus the mean training loss} (higher = the source prompt fits the target better)."""
    return {source: -loss for source, loss in readout.losses().items()}


@register_selector("probe", label="PROBE", needs=("probe",))
def probe_scores(inp: SelectionInput, opts: SelectorOptions) -> np.ndarray:
    """The cell's probe scores as given (higher = lower zero-shot loss = predicted better)."""
    return given_scores("probe", inp)
