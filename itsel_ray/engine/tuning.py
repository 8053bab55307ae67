"""`PromptTuningEngine`: the engine contract for soft-prompt tuning of a frozen torch model, minus the model family.

What every prompt-tuning engine shares lives here and in the modules it calls: the trial loop, checkpoint and resume
(`engine/trial.py`), batches, optimisers, precisions, losses and evaluation modes (`engine/objectives.py`), the
trial's data and labels, and the zero-shot readouts (`engine/readout.py`). A model family subclasses it with:

- `describe_model(model)` and `predict_memory(cfg, ...)` from the contract (pure, no torch);
- `build_model(model, *, vocab_size)`: the frozen torch model (from a checkpoint, or randomly initialised from
  `model.config`), its embedding table at least `vocab_size` rows;
- `prompted(backbone, prompt)`: that model with a trainable prompt, a `PromptedModel` (`engine/prompt.py`);
- optionally `check_model(model)`: refuse `model.*` options the family cannot build (ConfigError naming the key).

Nothing here imports torch until a method runs, so the registry can hold the engine on the driver.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Mapping

import numpy as np

from itsel_ray.artifacts import TrialResult
from itsel_ray.engine.base import Engine, Report
from itsel_ray.trial_config import ModelConfig, TrialConfig


class PromptTuningEngine(Engine):
    """Soft-prompt tuning of a frozen model; subclasses bring the model family (see the module docstring)."""

    has_model = True

    # ------------------------------------------------------------------ the family's part
    @abstractmethod
    def build_model(self, model: ModelConfig, *, vocab_size: int):
        """The frozen torch model `model` describes, its embedding table at least `vocab_size` rows."""

    @abstractmethod
    def prompted(self, backbone, prompt):
        """`backbone` (the built model) with the trainable [P, H] `prompt`: a `PromptedModel`."""

    def check_model(self, model: ModelConfig) -> None:
        """Refuse `model.*` options this family cannot build; describe_model has already checked the model."""

    # ------------------------------------------------------------------ the contract
    def validate_config(self, cfg: TrialConfig) -> None:
        info = self.describe_model(cfg.model)  # an unknown or unsupported model fails first, naming model.name
        self.check_model(cfg.model)
        from itsel_ray.engine.trial import validate_options

        validate_options(cfg, info)

    def run_trial(self, cfg: TrialConfig, work_dir: str | Path, *, report: Report | None = None,
                  init_prompt: np.ndarray | None = None) -> TrialResult:
        from itsel_ray.engine.trial import run_trial

        return run_trial(cfg, work_dir, engine=self, report=report, init_prompt=init_prompt)

    def recover_record(self, cfg: TrialConfig, work_dir: str | Path) -> dict | None:
        from itsel_ray.engine.trial import recover_record

        return recover_record(cfg, work_dir)

    def readout(self, cfg: TrialConfig, prompts: Mapping[str, np.ndarray], *, max_examples: int,
                batch_size: int = 64):
        from itsel_ray.engine.readout import PromptReadout

        return PromptReadout(self, cfg, prompts, max_examples=max_examples, batch_size=batch_size)

    # ------------------------------------------------------------------ shared helpers
    def backbone(self, model: ModelConfig, device: str = "auto"):
        """The frozen `Backbone` (model, tokenizer, device) for `model`, built once per process."""
        from itsel_ray.engine.backbone import load_backbone

        return load_backbone(self, model, device)
