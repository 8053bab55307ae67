"""The frozen backbone and its tokenizer, built once per process by an engine's `build_model`.

Trials that share a Ray actor (`reuse_actors`) or a test session reuse the same frozen model: only the soft prompt
trains, so the backbone is never modified and loading it once saves seconds per trial.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache

import torch

from itsel_ray.data.tokenizers import build_tokenizer
from itsel_ray.trial_config import ModelConfig


@dataclass(frozen=True)
class Backbone:
    model: "torch.nn.Module"  # the frozen model (e.g. a T5ForConditionalGeneration)
    tokenizer: object  # a transformers PreTrainedTokenizerFast
    device: torch.device

    @property
    def d_model(self) -> int:
        """The prompt width: the input embeddings' size."""
        return int(self.model.get_input_embeddings().weight.shape[1])

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[0])


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device is {name!r} but no CUDA device is available")
    return torch.device(name)


def load_backbone(engine, cfg: ModelConfig, device: str = "auto") -> Backbone:
    """The frozen backbone that `engine.build_model` makes for `cfg`, on `device`, cached per process."""
    dev = resolve_device(device)
    return _load_cached(engine, json.dumps(asdict(cfg), sort_keys=True), str(dev))


@lru_cache(maxsize=2)
def _load_cached(engine, key: str, device: str) -> Backbone:
    cfg = ModelConfig(**json.loads(key))
    tokenizer = build_tokenizer(cfg.tokenizer or cfg.name)
    model = engine.build_model(cfg, vocab_size=len(tokenizer))
    model.requires_grad_(False)
    model.to(device)
    model.eval()
    return Backbone(model=model, tokenizer=tokenizer, device=torch.device(device))


def set_activation_checkpointing(model, enabled: bool) -> None:
    """Recompute each transformer block in the backward pass (`enabled`) or keep its activations.

    Set at every trial start, since trials in one process share the cached backbone. Non-reentrant checkpointing
    carries the gradient through the frozen blocks to the prompt (the reentrant form needs an input that requires
    grad) and replays the RNG state, so dropout masks and gradients match the plain pass.
    """
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x renamed the gradient_* methods
        if enabled:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.activation_checkpointing_disable()
    elif enabled:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_disable()
