"""Measured memory of one causal-LM prompt-tuning step (`engine/memory_probe.py`'s three numbers), to check and
calibrate the pure model in `engine/causal/memory.py`: a randomly initialised, frozen GPT-2- or Llama-layout model
with a trainable prompt.
"""

from __future__ import annotations

import torch

from itsel_ray.engine.memory_probe import StepMemory, measure


def build_prompted(model_config: dict, *, prompt_tokens: int, device: str = "cpu", seed: int = 0):
    """A frozen random causal LM of `model_config["model_type"]` in training mode with a random [P, H] prompt."""
    import transformers

    from itsel_ray.engine.causal.model import PromptedCausalLM, SequenceFormat
    from itsel_ray.engine.causal.shapes import FAMILIES

    fields = dict(model_config)
    family = fields.pop("model_type")
    torch.manual_seed(seed)
    config = getattr(transformers, FAMILIES[family][1])(**{"bos_token_id": 1, "eos_token_id": 1, "pad_token_id": 0,
                                                           **fields})
    backbone = getattr(transformers, FAMILIES[family][2])(config).requires_grad_(False).to(device)
    backbone.train()
    prompt = torch.randn(prompt_tokens, backbone.get_input_embeddings().weight.shape[1]) * 0.5
    return PromptedCausalLM(backbone, prompt.to(device), SequenceFormat(eos_id=1, pad_id=0, separator=(2,)))


def step_batch(vocab: int, *, batch: int, text_tokens: int, target_tokens: int, device: str = "cpu", seed: int = 0):
    """Random inputs of `text_tokens` - 1 tokens (the separator makes `text_tokens`; the first row padded to half
    its length, as batches of unequal rows are) and targets of `target_tokens` (EOS last)."""
    from itsel_ray.engine.objectives import Batch

    gen = torch.Generator().manual_seed(seed)
    n = text_tokens - 1
    ids = torch.randint(3, vocab, (batch, n), generator=gen)
    mask = torch.ones_like(ids)
    if batch > 1:
        mask[0, n // 2 :] = 0
        ids[0, n // 2 :] = 0
    targets = torch.randint(3, vocab, (batch, target_tokens), generator=gen)
    targets[:, -1] = 1
    return Batch(ids.to(device), mask.to(device), targets.to(device), None, torch.ones_like(targets).to(device))


def measure_step(model_config: dict, *, batch: int, input_tokens: int, target_tokens: int, precision: str,
                 activation_checkpointing: bool = False, prompt_tokens: int = 10, device: str = "cpu") -> StepMemory:
    """Memory of one sequence-loss step at `input_tokens` positions before the target (prompt and separator
    included) and `target_tokens` target positions."""
    model = build_prompted(model_config, prompt_tokens=prompt_tokens, device=device)
    data = step_batch(model.backbone.config.vocab_size, batch=batch, text_tokens=input_tokens - prompt_tokens,
                      target_tokens=target_tokens, device=device)
    return measure(model, data, precision=precision, activation_checkpointing=activation_checkpointing,
                   device=device)
