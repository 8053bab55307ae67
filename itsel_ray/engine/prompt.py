"""The soft prompt: its initialisation strategies and the frozen T5 it is prepended to.

The prompt is the only trainable tensor. It is prepended to the *encoder* input embeddings only (the paper and the
authors' code), and the attention mask grows by the prompt length.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from itsel_ray.artifacts import check_prompt_shape, load_prompt
from itsel_ray.trial_config import PromptConfig
from itsel_ray.registry import Registry

# init(cfg, embeddings [V, H], generator) -> [P, H]
PromptInit = Callable[[PromptConfig, torch.Tensor, torch.Generator], torch.Tensor]
PROMPT_INITS: Registry[PromptInit] = Registry("prompt init strategy")


@PROMPT_INITS.register("vocab_sample")
def _vocab_sample(cfg: PromptConfig, emb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Rows of `length` token ids drawn from [start, start + population), clipped to the vocabulary (Lester et
    al.; SPoT's top-5K init).

    Distinct ids by default, as `from_sample_of_embeddings` samples; `sample_with_replacement` draws each row
    independently (as runs made before the option existed did; a repeated id starts two prompt tokens equal).
    """
    n = population_size(cfg, emb.shape[0])
    lo = cfg.population_start
    if cfg.sample_with_replacement:
        ids = torch.randint(lo, lo + n, (cfg.length,), generator=gen)
    else:
        ids = lo + torch.randperm(n, generator=gen)[: cfg.length]
    return emb[ids].clone()


def population_size(cfg: PromptConfig, vocab_rows: int) -> int:
    """The ids vocab_sample draws from: `population` from `population_start`, clipped to `vocab_rows` ids; raises
    when the range is empty or too small to draw `length` distinct ids."""
    if cfg.population_start >= vocab_rows:
        raise ValueError(f"prompt.population_start {cfg.population_start} is outside the vocabulary of {vocab_rows} "
                         "token ids")
    n = min(cfg.population, vocab_rows - cfg.population_start)
    if not cfg.sample_with_replacement and n < cfg.length:
        raise ValueError(f"prompt.length {cfg.length} distinct ids cannot come from the {n} ids from "
                         f"prompt.population_start {cfg.population_start} in a vocabulary of {vocab_rows}; lower "
                         "prompt.length or set prompt.sample_with_replacement")
    return n


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
        """fp32 LM logits [B, T, V] for given decoder inputs and encoder states.

        The head runs outside autocast: in bf16, logits near 30 are spaced 0.125 apart, coarser than the gaps
        between the label scores that rank classification compares.
        """
        out = self.backbone.decoder(input_ids=decoder_input_ids, encoder_hidden_states=enc,
                                    encoder_attention_mask=mask, use_cache=False)
        hidden = out.last_hidden_state
        cfg = self.backbone.config
        if getattr(cfg, "scale_decoder_outputs", getattr(cfg, "tie_word_embeddings", True)):
            hidden = hidden * (cfg.d_model ** -0.5)
        with torch.autocast(hidden.device.type, enabled=False):
            return F.linear(hidden.float(), self.backbone.get_output_embeddings().weight.float())
