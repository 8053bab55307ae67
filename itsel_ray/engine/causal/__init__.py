"""The causal-LM engine (`engine: causal`): prompt tuning of a frozen decoder-only language model (GPT-2, Llama,
Mistral, Qwen2, Qwen3; any Hub id or local folder of those families, or a random one from `model.config`), the
prompt in front of "input -> target", as PEFT's prompt tuning does for causal LMs.

Chosen by the sweep's `engine:`, not guessed from the model's config, for the reasons the T5 engine gives
(`engine/t5/__init__.py`): the engine decides more than the model class (where the prompt goes, how a target is
scored, what memory a trial needs), and a random backbone has no config.json to read a type from. A model of
another family is refused with a one-line error naming `model.name` (a T5 one with a pointer to `engine: t5`),
before any trial starts.

Only the model-specific parts live in this package (`shapes.py`, `memory.py`, `cost.py`, `model.py`); the trial
loop, the losses, the evaluation modes and the readouts are the shared ones (`engine/tuning.py`).
"""

from __future__ import annotations

from itsel_ray.engine.base import MemoryEstimate, ModelInfo, TrialError
from itsel_ray.engine.tuning import PromptTuningEngine
from itsel_ray.trial_config import ModelConfig, TrialConfig


class CausalEngine(PromptTuningEngine):
    name = "causal"

    def describe_model(self, model: ModelConfig) -> ModelInfo:
        from itsel_ray.engine.causal.shapes import resolve_shape

        r = resolve_shape(model.name, model.config, model.tokenizer)
        label = "model.config" if model.config is not None else model.name
        return ModelInfo(name=label, family=r.shape.family, d_model=r.shape.hidden, vocab_size=r.vocab_size,
                         parameters=r.shape.parameter_count(), source=r.source)

    def predict_memory(self, cfg: TrialConfig, *, device: str = "cuda",
                       bf16_capable: bool = True) -> MemoryEstimate:
        from itsel_ray.engine.causal.memory import trial_memory

        return trial_memory(cfg, device=device, bf16_capable=bf16_capable)

    def trial_cost(self, cfg: TrialConfig, lengths):
        from itsel_ray.engine.causal.cost import trial_cost

        return trial_cost(cfg, lengths)

    def check_model(self, model: ModelConfig) -> None:
        if model.config is not None:
            from itsel_ray.engine.causal.model import check_config_fields

            check_config_fields(model.config)

    def validate_config(self, cfg: TrialConfig) -> None:
        super().validate_config(cfg)
        check_positions(cfg)

    def build_model(self, model: ModelConfig, *, vocab_size: int):
        from itsel_ray.engine.causal.model import build_model

        return build_model(model, vocab_size=vocab_size)

    def prompted(self, backbone, prompt):
        from itsel_ray.engine.causal.model import PromptedCausalLM

        return PromptedCausalLM(backbone, prompt)


def check_positions(cfg: TrialConfig) -> None:
    """The longest sequence a trial builds (prompt, input, separator, target) must fit the model's positions:
    GPT-2's learned position table has no row beyond them, and a rotary model was not trained past them."""
    from itsel_ray.engine.causal.model import SEPARATOR_BOUND
    from itsel_ray.engine.causal.shapes import resolve_shape
    from itsel_ray.tasks import get_task

    task = get_task(cfg.task)
    shape = resolve_shape(cfg.model.name, cfg.model.config, cfg.model.tokenizer).shape
    need = cfg.prompt.length + task.max_source_length + SEPARATOR_BOUND + task.max_target_length
    if need > shape.positions:
        raise TrialError(
            f"task {task.name}: prompt.length {cfg.prompt.length} + max_source_length {task.max_source_length} + "
            f"separator + max_target_length {task.max_target_length} = up to {need} positions, more than the "
            f"{shape.positions} of {'model.config' if cfg.model.config is not None else cfg.model.name!r}; shorten "
            "the prompt or use a model with more positions")


CAUSAL = CausalEngine()
