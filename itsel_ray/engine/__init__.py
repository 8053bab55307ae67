"""The prompt-tuning engine: a frozen T5, a trainable soft prompt, and `run_trial` (no Ray)."""

from itsel_ray.engine.backbone import Backbone, load_backbone, word_tokenizer
from itsel_ray.engine.prompt import PROMPT_INITS, PromptedT5, initial_prompt
from itsel_ray.engine.trial import TrialError, TrialResult, evaluate, run_trial, validate_config

__all__ = [
    "Backbone", "PROMPT_INITS", "PromptedT5", "TrialError", "TrialResult", "evaluate", "initial_prompt",
    "load_backbone", "run_trial", "validate_config", "word_tokenizer",
]
