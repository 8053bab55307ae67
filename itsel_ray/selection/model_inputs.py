"""Model-backed selector inputs, each declared once: a name, what it measures, and how to compute one score per
source prompt from a `Readout` of the frozen model.

A selector that reads the model (PROBE, LOGME) names its input in `needs=`; the rest follows from this registry:
the sweep's analyze stage writes one results table per input its analysis needs (`runs/model_tables.py`, through
the sweep's engine), the analysis reads `<name>.parquet|csv` back into `SelectionInput.model_scores[name]`, and
`rank --selector ...` computes it for one target through the engine of `--sweep`. So a new one is one
`register_model_input` beside its selector, in the package or in a user's module.

Pure: no torch, no engine import. The engine hands in the `Readout` (`Engine.readout`); a compute function only does
arithmetic on what it reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol

import numpy as np

from itsel_ray.registry import Registry


class Readout(Protocol):
    """The frozen model of a sweep with each source prompt in front of a fixed sample of one target task's training
    rows (never its validation rows), dropout off, no gradients. Each method computes on first call.

    target: the target task. rows: how many training rows are in the sample. objective: the target runs' training
    loss (`train.loss`), which `losses` uses.
    """

    target: str
    rows: int
    objective: str

    def losses(self) -> Mapping[str, float]:
        """{source: the mean training loss of the target's objective over the sample, with that source's prompt}."""

    def features(self) -> Mapping[str, np.ndarray]:
        """{source: [rows, H] one pooled feature vector per sampled row under that source's prompt}."""

    def targets(self) -> tuple[np.ndarray, bool]:
        """([rows] the sampled rows' targets, regression?): class indices, or the numbers their targets spell; raises
        naming the task when they are neither (free text)."""


@dataclass(frozen=True)
class ModelInput:
    """A model-backed selector input: `compute(readout) -> {source: score}` (NaN for a source it cannot score).

    description: one line for the report and rank's notes. examples: training rows read by default.
    """

    name: str
    description: str
    compute: Callable[[Readout], Mapping[str, float]]
    examples: int = 256

    def scores(self, readout: Readout) -> dict[str, float]:
        return {str(k): float(v) for k, v in self.compute(readout).items()}


MODEL_INPUTS: Registry[ModelInput] = Registry("model-backed selector input")
# The inputs every study has, and the results folder's own tables: a model-backed input may not take their names.
RESERVED = ("prompts", "sizes", "texts", "draw", "results")
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def register_model_input(name: str, *, description: str, examples: int = 256):
    """Decorator: register `fn(readout) -> {source: score}` as model-backed input `name` (also the requirement a
    selector names in `needs=`, and the results table's file stem)."""

    if not NAME.fullmatch(name) or name in RESERVED:
        raise ValueError(f"model-backed input {name!r}: a name is lowercase letters, digits, '_' and '-' (it names "
                         f"the results table), and not one of {', '.join(RESERVED)}")

    def deco(fn: Callable[[Readout], Mapping[str, float]]):
        MODEL_INPUTS.add(name, ModelInput(name=name, description=description, compute=fn, examples=examples))
        return fn

    return deco
