"""The soft prompt: its initialisation strategies and the frozen T5 it is prepended to.

The prompt is the only trainable tensor. It is prepended to the *encoder* input embeddings only (the paper and the
authors' code), and the attention mask grows by the prompt length.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from itsel_ray.artifacts import check_prompt_shape, load_prompt
from itsel_ray.trial_config import PromptConfig
from itsel_ray.registry import Registry

# init(cfg, embeddings [V, H], generator) -> [P, H]
PromptInit = Callable[[PromptConfig, torch.Tensor, torch.Generator], torch.Tensor]
PROMPT_INITS: Registry[PromptInit] = Registry("prompt init strategy")


@PROMPT_INITS.register("vocab_sample")
def _vocab_sample(cfg: PromptConfig, emb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Rows of token ids drawn uniformly from [start, start + population) (Lester et al.; SPoT's top-5K init)."""
    lo = min(cfg.population_start, emb.shape[0] - 1)
    hi = min(lo + cfg.population, emb.shape[0])
    ids = torch.randint(lo, hi, (cfg.length,), generator=gen)
    return emb[ids].clone()


@PROMPT_INITS.register("random")
def _random(cfg: PromptConfig, emb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(cfg.length, emb.shape[1], generator=gen) * cfg.init_std


@PROMPT_INITS.register("first_ids")
def _first_ids(cfg: PromptConfig, emb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Rows 0..length-1 of the embedding table (what the authors' code copies)."""
    if cfg.length > emb.shape[0]:
        raise ValueError(f"prompt.length {cfg.length} exceeds the vocabulary size {emb.shape[0]}")
    return emb[: cfg.length].clone()


@PROMPT_INITS.register("from_file")
def _from_file(cfg: PromptConfig, emb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.from_numpy(load_prompt(cfg.path, shape=(cfg.length, emb.shape[1])))


def initial_prompt(
    cfg: PromptConfig, embeddings: torch.Tensor, *, seed: int, init_prompt: np.ndarray | None = None
) -> torch.Tensor:
    """The [P, H] float32 starting prompt: `init_prompt` when given (transfer), else the configured strategy."""
    shape = (cfg.length, int(embeddings.shape[1]))
    if init_prompt is not None:
        arr = np.asarray(init_prompt, dtype=np.float32)
        check_prompt_shape(arr, shape, name="the source prompt")
        return torch.from_numpy(arr.copy())
    gen = torch.Generator().manual_seed(int(seed))
    out = PROMPT_INITS.get(cfg.init)(cfg, embeddings.detach().float().cpu(), gen)
    return out.float().contiguous()


class PromptedT5(nn.Module):
    """A frozen T5 with a trainable [P, H] soft prompt in front of every encoder input."""

    def __init__(self, backbone: nn.Module, prompt: torch.Tensor):
        super().__init__()
        self.backbone = backbone
        self.prompt = nn.Parameter(prompt)

    def encoder_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """Input embeddings [B, P+L, H] and attention mask [B, P+L] with the prompt prepended."""
        embeds = self.backbone.get_input_embeddings()(input_ids)
        batch = input_ids.shape[0]
        prompt = self.prompt.to(embeds.dtype).unsqueeze(0).expand(batch, -1, -1)
        ones = attention_mask.new_ones(batch, self.prompt.shape[0])
        return torch.cat([prompt, embeds], dim=1), torch.cat([ones, attention_mask], dim=1)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """Encoder states [B, P+L, H] and the extended mask."""
        embeds, mask = self.encoder_inputs(input_ids, attention_mask)
        out = self.backbone.get_encoder()(inputs_embeds=embeds, attention_mask=mask)
        return out.last_hidden_state, mask

    def decode_logits(self, enc: torch.Tensor, mask: torch.Tensor, decoder_input_ids: torch.Tensor) -> torch.Tensor:
        """LM logits [B, T, V] for given decoder inputs and encoder states."""
        from transformers.modeling_outputs import BaseModelOutput

        out = self.backbone(
            encoder_outputs=BaseModelOutput(last_hidden_state=enc),
            attention_mask=mask,
            decoder_input_ids=decoder_input_ids,
            use_cache=False,
        )
        return out.logits
