"""Measured memory of one T5 prompt-tuning step (`engine/memory_probe.py`'s three numbers), to check and calibrate
the pure model in `engine/t5/memory.py`: a randomly initialised, frozen T5 with a trainable prompt.
"""

from __future__ import annotations

import torch

from itsel_ray.engine.memory_probe import StepMemory, measure


def build_prompted(model_config: dict, *, prompt_tokens: int, device: str = "cpu", seed: int = 0):
    """A frozen, randomly initialised T5 in training mode with a random [P, H] prompt."""
    from transformers import T5Config, T5ForConditionalGeneration

    from itsel_ray.engine.t5.model import PromptedT5

    torch.manual_seed(seed)
    fields = {"decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1, **model_config}
    backbone = T5ForConditionalGeneration(T5Config(**fields)).requires_grad_(False).to(device)
    backbone.train()
    prompt = torch.randn(prompt_tokens, backbone.config.d_model) * 0.5
    return PromptedT5(backbone, prompt.to(device))


def step_batch(vocab: int, *, batch: int, text_tokens: int, target_tokens: int, device: str = "cpu", seed: int = 0):
    """Random inputs (the first row padded to half its length, as batches of unequal rows are) and targets."""
    from itsel_ray.engine.objectives import Batch

    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, text_tokens), generator=gen)
    mask = torch.ones_like(ids)
    if batch > 1:
        mask[0, text_tokens // 2 :] = 0
        ids[0, text_tokens // 2 :] = 0
    targets = torch.randint(3, vocab, (batch, target_tokens), generator=gen)
    targets[:, -1] = 1
    return Batch(ids.to(device), mask.to(device), targets.to(device), None)


def measure_step(model_config: dict, *, batch: int, input_tokens: int, target_tokens: int, precision: str,
                 activation_checkpointing: bool = False, prompt_tokens: int = 10, device: str = "cpu") -> StepMemory:
    """Memory of one sequence-loss step at `input_tokens` encoder positions (the prompt's included)."""
    model = build_prompted(model_config, prompt_tokens=prompt_tokens, device=device)
    data = step_batch(model.backbone.config.vocab_size, batch=batch, text_tokens=input_tokens - prompt_tokens,
                      target_tokens=target_tokens, device=device)
    return measure(model, data, precision=precision, activation_checkpointing=activation_checkpointing,
                   device=device)
