"""The engine contract: what the sweep, the planner, the analysis and `rank` may ask of a trial engine.

An engine is one object registered in `itsel_ray.engine.ENGINES` (a sweep names it with `engine:`). Nothing outside
an engine branches on its name or on the model's: whatever differs between a T5, a causal LM or the stand-in lives
behind these methods. Importing an engine object is cheap (no torch): the driver, `--dry-run` and `status` hold
engine objects without loading a model, and each method imports what it needs when called.

The methods (all take the trial's `TrialConfig`, or its `ModelConfig`):

- `validate_config(cfg)`: refuse, before any trial starts and without loading weights, every option the engine
  cannot run: names from its registries, option combinations the task cannot use, a model it does not support. A
  bad option raises ConfigError (or another ValueError / TrialError) whose one line names the key.
- `run_trial(cfg, work_dir, *, report, init_prompt)`: train in `work_dir` (the `TrialFiles` layout), resuming from
  the state there; `report(metrics, checkpointed)` after each evaluation; `init_prompt` ([P, H]) starts a transfer.
  Returns a `TrialResult`; a failure is recorded as failed in result.json and raised.
- `recover_record(cfg, work_dir)`: result.json rebuilt from the resume state alone (None when none reads).
- `describe_model(model)`: the backbone's `ModelInfo` (prompt width, vocabulary, parameters) read from the
  checkpoint's own config, not from the weights. An unknown or unsupported model raises ConfigError naming
  `model.name`.
- `predict_memory(cfg, *, device, bf16_capable)`: the bytes one trial holds on a device (`MemoryEstimate`), which
  the planner packs GPUs by and `--dry-run` prints; None for an engine without a model.
- `readout(cfg, prompts, *, max_examples)`: the frozen model under each source prompt on a fixed sample of the
  target task's training rows, as the `Readout` that model-backed selector inputs (PROBE's zero-shot losses,
  LOGME's features, `itsel_ray.selection.model_inputs`) are computed from.

- `trial_cost(cfg, lengths)`: the FLOPs of one trial's training and evaluation on data of `lengths` (a
  `TaskLengths`, itsel_ray/engine/cost.py), as a `TrialCost`; beside `predict_memory` and with its conventions (pure
  arithmetic on the driver, no model load); None for an engine without a model, or one without a FLOP model, which
  `--dry-run` then says.

Attributes: `name` (its registry name) and `has_model`: False for an engine that runs no model on the tasks' data
(the stand-in), so the sweep prepares no data, predicts no memory and computes no model-backed inputs for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from itsel_ray.artifacts import TrialResult
from itsel_ray.trial_config import ModelConfig, TrialConfig

GIB = 2**30

# report(metrics, checkpointed): called after every evaluation, once the resume state for that step is on disk
Report = Callable[[dict, bool], None]


class TrialError(RuntimeError):
    """A trial that cannot go on (NaN loss, a config that does not fit the task)."""


@dataclass(frozen=True)
class ModelInfo:
    """A backbone as its own config describes it.

    family: the config's model type as the engine names it (e.g. "t5", "mt5"). d_model: the prompt width (H of
    [P, H] prompts). vocab_size: rows of the input embedding table (None: known only once the tokenizer is loaded).
    parameters: frozen parameters. source: where the description came from (a folder's config.json, the Hugging
    Face cache, `model.config`, a built-in table), for `--dry-run`.
    """

    name: str
    family: str
    d_model: int
    vocab_size: int | None
    parameters: int
    source: str

    def line(self) -> str:
        vocab = f"vocab {self.vocab_size:,}" if self.vocab_size else "vocab from its tokenizer"
        return (f"{self.name}: {self.family}, d_model {self.d_model}, {vocab}, {self.parameters / 1e6:.1f}M "
                f"parameters ({self.source})")


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one trial on one device. total = weights + optimizer_state + max(train peak, eval peak)."""

    weights: int
    activations: int  # kept for the backward pass of one micro-batch (autocast's weight copies included)
    optimizer_state: int  # the prompt, its gradient and the optimiser's state
    workspace: int  # transient at the training peak: the logits' gradients, a recomputed block, ...
    eval_peak: int  # evaluation's transient (no gradients)
    total: int
    details: Mapping[str, int] = field(default_factory=dict)

    def gib(self) -> dict[str, float]:
        return {k: round(getattr(self, k) / GIB, 3) for k in
                ("weights", "activations", "optimizer_state", "workspace", "eval_peak", "total")}


class Engine(ABC):
    """A trial engine (see the module docstring for the contract)."""

    name: str = ""
    has_model: bool = True

    @abstractmethod
    def validate_config(self, cfg: TrialConfig) -> None:
        """Raise (one line, naming the key) for any option this engine cannot run; no model load."""

    @abstractmethod
    def run_trial(self, cfg: TrialConfig, work_dir: str | Path, *, report: Report | None = None,
                  init_prompt: np.ndarray | None = None) -> TrialResult:
        """Train `cfg` in `work_dir`, resuming from the state there."""

    @abstractmethod
    def recover_record(self, cfg: TrialConfig, work_dir: str | Path) -> dict | None:
        """result.json rebuilt from the resume state (None when no state reads)."""

    @abstractmethod
    def describe_model(self, model: ModelConfig) -> ModelInfo:
        """The backbone's shape from its own config; ConfigError naming model.name when unknown or unsupported."""

    @abstractmethod
    def predict_memory(self, cfg: TrialConfig, *, device: str = "cuda",
                       bf16_capable: bool = True) -> MemoryEstimate | None:
        """Predicted bytes of one trial on `device` ("cuda" or "cpu"); None without a model."""

    def trial_cost(self, cfg: TrialConfig, lengths):
        """FLOPs of one trial on data of `lengths` (a `TrialCost`, itsel_ray/engine/cost.py); None: not modelled."""
        return None

    @abstractmethod
    def readout(self, cfg: TrialConfig, prompts: Mapping[str, np.ndarray], *, max_examples: int):
        """A `Readout` (itsel_ray.selection.model_inputs) of task `cfg.task` under each [P, H] prompt."""

    def __repr__(self) -> str:
        return f"<engine {self.name!r}>"
