"""Training losses and evaluation modes, each a registry entry, for any engine's `PromptedModel`.

The entries say what is computed; the prompted model says how its family computes it (`engine/prompt.py`). The
label scores are shared by the label-restricted loss and rank classification: every label word is scored by its
summed token log-likelihood, so training and evaluation rank labels the same way. The closing EOS is left out of
the score (unless one label's tokens are a prefix of another's), so for single-token labels rank classification
picks exactly the label greedy decoding produces whenever that decoding is a valid label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from itsel_ray.engine.batching import pad
from itsel_ray.engine.prompt import PromptedModel
from itsel_ray.registry import Registry


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    target_ids: torch.Tensor  # [B, T], pad = tokenizer pad id
    labels: torch.Tensor | None  # [B] label indices, closed label sets only
    target_mask: torch.Tensor | None = None  # [B, T] 1 on target tokens; None: every id but the pad id

    def targets(self, pad_id: int) -> torch.Tensor:
        """[B, T] bool: the real target tokens. From the mask, so a pad id equal to EOS (GPT-2, Llama, whose
        tokenizers have no pad token) never hides a target's closing EOS."""
        if self.target_mask is not None:
            return self.target_mask.bool()
        return self.target_ids != pad_id


@dataclass(frozen=True)
class LabelSet:
    """The label words as padded token ids, for label scoring."""

    words: tuple[str, ...]
    ids: torch.Tensor  # [K, T]
    mask: torch.Tensor  # [K, T]

    @classmethod
    def build(cls, words: Sequence[str], sequences: list[list[int]], pad_id: int, device) -> "LabelSet":
        """`sequences` end with EOS; it is dropped when no label's tokens are a prefix of another's.

        Two equal words or two equal sequences raise: rank scoring could never pick the second, and the label loss
        would push one row up and down at once.
        """
        if len(words) != len(sequences):
            raise ValueError(f"{len(words)} label words but {len(sequences)} token sequences")
        for kind, items in (("word", [str(w) for w in words]), ("token sequence", [tuple(s) for s in sequences])):
            dupes = sorted({str(words[i]) for i, x in enumerate(items) if items.index(x) != i})
            if dupes:
                raise ValueError(f"label set {list(words)}: the {kind} of {dupes} repeats an earlier label's")
        bare = [s[:-1] if len(s) > 1 else s for s in sequences]
        prefix_clash = any(a != b and b[: len(a)] == a for a in bare for b in bare)
        ids, mask = pad(sequences if prefix_clash else bare, pad_id)
        return cls(tuple(words), ids.to(device), mask.to(device))


# ------------------------------------------------------------------------------------------------- losses

LossFn = Callable[[PromptedModel, Batch, "LabelSet | None", int], torch.Tensor]


@dataclass(frozen=True)
class Loss:
    """A training objective: `fn` gives the mean over a batch's units, `units` how many units a batch holds.

    The units are what the mean runs over (target tokens for the sequence loss, examples for the label loss), so
    micro-batch losses weighted by units / total units add up to the full batch's loss and gradient.
    """

    fn: LossFn
    units: Callable[[Batch, int], int]

    def __call__(self, model: PromptedModel, batch: Batch, labels: LabelSet | None, pad_id: int) -> torch.Tensor:
        return self.fn(model, batch, labels, pad_id)


LOSSES: Registry[Loss] = Registry("loss")


def sequence_loss(model: PromptedModel, batch: Batch, labels: LabelSet | None, pad_id: int) -> torch.Tensor:
    """Token cross-entropy over the whole target sequence, averaged over target tokens (the paper's objective)."""
    return model.sequence_loss(batch, pad_id)


def target_tokens(batch: Batch, pad_id: int) -> int:
    return int(batch.targets(pad_id).sum())


def label_loss(model: PromptedModel, batch: Batch, labels: LabelSet | None, pad_id: int) -> torch.Tensor:
    """Cross-entropy over the label words' scores only: the model need not first learn to avoid other words."""
    if labels is None or batch.labels is None:
        raise ValueError("the 'label' loss needs a task with a closed label set")
    return F.cross_entropy(model.label_scores(batch.input_ids, batch.attention_mask, labels), batch.labels)


def examples(batch: Batch, pad_id: int) -> int:
    return int(batch.input_ids.shape[0])


LOSSES.add("sequence", Loss(sequence_loss, units=target_tokens))
LOSSES.add("label", Loss(label_loss, units=examples))


# ------------------------------------------------------------------------------------------------- evaluation

# predict(model, input_ids, attention_mask, labels, tokenizer, max_new_tokens) -> predicted strings
Predict = Callable[..., list[str]]
EVAL_MODES: Registry[Predict] = Registry("evaluation mode")


@EVAL_MODES.register("rank")
def predict_rank(model, input_ids, attention_mask, *, labels: LabelSet | None, tokenizer, max_new_tokens: int):
    """The label word with the highest score."""
    if labels is None:
        raise ValueError("rank evaluation needs a task with a closed label set")
    best = model.label_scores(input_ids, attention_mask, labels).argmax(dim=-1).tolist()
    return [labels.words[i] for i in best]


@EVAL_MODES.register("generate")
def predict_generate(model, input_ids, attention_mask, *, labels: LabelSet | None, tokenizer, max_new_tokens: int):
    """Greedy decoding, then the decoded text (the metric parses it; the paper's evaluation)."""
    return decode_texts(tokenizer, model.generate(input_ids, attention_mask, max_new_tokens=max_new_tokens))


def decode_texts(tokenizer, ids) -> list[str]:
    """Token ids -> stripped text without special tokens: how predictions are read, and free-text golds are
    written back (`labels.as_generated`), so both sides of a comparison pass through the same decoding."""
    return [s.strip() for s in tokenizer.batch_decode(ids, skip_special_tokens=True)]
