"""The soft prompt: its initialisation strategies, and `PromptedModel`, what every engine's prompted backbone offers
the shared trial loop, losses, evaluation and readout.

The prompt is the only trainable tensor; where it goes and how a target is scored depend on the model family (the
T5 engine prepends it to the encoder input only, as the paper and the authors' code do: `engine/t5/model.py`).
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


class PromptedModel(nn.Module):
    """A frozen backbone with a trainable [P, H] soft prompt. An engine subclasses it for its model family.

    The methods are what the shared code calls (`engine/objectives.py`, `engine/trial.py`, `engine/readout.py`), so
    a loss, an evaluation mode or a model-backed selector input works with every engine that implements them.
    Scores and losses come back in fp32 whatever the autocast precision.
    """

    def __init__(self, backbone: nn.Module, prompt: torch.Tensor):
        super().__init__()
        self.backbone = backbone
        self.prompt = nn.Parameter(prompt)

    def sequence_loss(self, batch, pad_id: int) -> torch.Tensor:
        """Token cross-entropy over every target token of `batch` (an `objectives.Batch`), averaged over them."""
        raise NotImplementedError

    def label_scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels) -> torch.Tensor:
        """[B, K] summed log-probabilities of each label word's tokens (`objectives.LabelSet`) given each input."""
        raise NotImplementedError

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int) -> torch.Tensor:
        """Greedy continuation token ids [B, T] of each input (its target, not its input)."""
        raise NotImplementedError

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, H] float32: one vector per row, pooled over the row's own input tokens (prompt and padding left out)
        of the prompted model's hidden states (the LOGME selector's input)."""
        raise NotImplementedError
