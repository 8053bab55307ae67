"""The T5 engine (`engine: t5`; `torch` is its older name): prompt tuning of a frozen T5-family model (T5 v1.0 and
v1.1, Flan-T5, mT5; any Hub id or local folder, or a random T5 from `model.config`) with the prompt in front of the
encoder input, as the paper.

A sweep names its engine rather than having it guessed from the model's config: the engine decides more than the
model class (where the prompt goes, how a target is scored, what memory a trial needs), the stand-in engine has no
model at all, and a randomly initialised backbone has no config.json to read a type from. A model of another
family is refused with a one-line error naming `model.name`, before any trial starts.

Only the model-specific parts live in this package (`shapes.py`, `memory.py`, `cost.py`, `model.py`); the trial loop
and the rest are shared with every prompt-tuning engine (`engine/tuning.py`).
"""

from __future__ import annotations

from itsel_ray.engine.base import MemoryEstimate, ModelInfo
from itsel_ray.engine.tuning import PromptTuningEngine
from itsel_ray.trial_config import ModelConfig, TrialConfig


class T5Engine(PromptTuningEngine):
    name = "t5"

    def describe_model(self, model: ModelConfig) -> ModelInfo:
        from itsel_ray.engine.t5.shapes import resolve_shape

        r = resolve_shape(model.name, model.config, model.tokenizer)
        label = "model.config" if model.config is not None else model.name
        return ModelInfo(name=label, family=r.family, d_model=r.shape.d_model, vocab_size=r.vocab_size,
                         parameters=r.shape.parameter_count(), source=r.source)

    def predict_memory(self, cfg: TrialConfig, *, device: str = "cuda",
                       bf16_capable: bool = True) -> MemoryEstimate:
        from itsel_ray.engine.t5.memory import trial_memory

        return trial_memory(cfg, device=device, bf16_capable=bf16_capable)

    def trial_cost(self, cfg: TrialConfig, lengths):
        from itsel_ray.engine.t5.cost import trial_cost

        return trial_cost(cfg, lengths)

    def check_model(self, model: ModelConfig) -> None:
        if model.config is not None:
            from itsel_ray.engine.t5.model import check_t5_fields

            check_t5_fields(model.config)

    def build_model(self, model: ModelConfig, *, vocab_size: int):
        from itsel_ray.engine.t5.model import build_model

        return build_model(model, vocab_size=vocab_size)

    def prompted(self, backbone, prompt):
        from itsel_ray.engine.t5.model import PromptedT5

        return PromptedT5(backbone, prompt)


T5 = T5Engine()
