"""The frozen decoder-only backbone with its soft prompt: loading a checkpoint or building a random one, and how a
causal LM scores a target (`PromptedCausalLM`, the causal engine's `PromptedModel`).

A task's example is read as one text, "input -> target": the prompt's P embeddings, then the input's tokens, then
the separator's, then the target's (ending with EOS, `data.encoded.encode_targets`). The prompt goes in front of
everything, where PEFT's prompt tuning puts it, so every input and target token attends to it. The loss, the label
scores and generation read only the target's positions: the prompt, the input and the separator are context.

The same prepared data serves the T5 and the causal engine (inputs and targets are tokenised apart), so this module
joins them per batch, from the masks: an input's closing EOS (T5's and the word-level tokenizers write one) is
dropped, since to a causal LM an EOS ends the document, and `SEPARATOR` is put in its place. Batches are right-padded
with explicit position ids, so padding never shifts a row's positions (GPT-2 reads learned absolute positions) and
no query row is ever fully masked.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from itsel_ray.engine.causal.shapes import FAMILIES, resolve_shape
from itsel_ray.engine.objectives import Batch, LabelSet
from itsel_ray.engine.prompt import PromptedModel
from itsel_ray.schema import ConfigError
from itsel_ray.trial_config import ModelConfig

# Between an input and its target, as in "sst2 sentence: a fine film -> positive". A vocabulary without pieces
# for it (a word-level one) marks the boundary with its EOS instead.
SEPARATOR = " ->"
# Positions the separator may take beyond its characters (a leading-space piece), for the length check.
SEPARATOR_BOUND = len(SEPARATOR.encode()) + 1


@dataclass(frozen=True)
class SequenceFormat:
    """The token ids a prompted causal LM joins an example with, read from its tokenizer."""

    eos_id: int
    pad_id: int
    separator: tuple[int, ...]


def sequence_format(tokenizer, name: str = "the tokenizer") -> SequenceFormat:
    """The tokenizer's EOS, pad and separator ids; ConfigError when it has no EOS (a target could never end)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ConfigError(f"model.tokenizer {name!r} has no EOS token: a causal LM's targets end with one")
    sep = list(tokenizer(SEPARATOR, add_special_tokens=False)["input_ids"])
    unk = tokenizer.unk_token_id
    if not sep or (unk is not None and unk in sep):
        sep = [eos]
    pad = tokenizer.pad_token_id
    return SequenceFormat(int(eos), int(eos if pad is None else pad), tuple(int(i) for i in sep))


# ------------------------------------------------------------------------------------------------- building


@lru_cache(maxsize=8)
def config_fields(family: str) -> frozenset[str]:
    """Every field name the family's transformers config class knows: its arguments and a default config's keys."""
    import transformers

    cls = getattr(transformers, FAMILIES[family][1])
    params = set(inspect.signature(cls.__init__).parameters) - {"self", "args", "kwargs"}
    return frozenset(params | set(cls().to_dict()) | {"model_type", "bos_token_id", "eos_token_id", "pad_token_id",
                                                      "tie_word_embeddings"})


def check_config_fields(config: Mapping[str, Any]) -> None:
    """A typo in `model.config` would silently become an unused attribute of a default-shaped backbone."""
    family = config.get("model_type")
    if family not in FAMILIES:
        return  # describe_model has refused it already
    known = config_fields(family)
    for key in config:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"model.config.{key} is not a {FAMILIES[family][1]} field{hint}")


def build_model(model: ModelConfig, *, vocab_size: int):
    """A causal LM from `model.name` (a Hub id or folder, fp32 whatever its checkpoint's dtype, as the T5 engine's
    precision options assume), or randomly initialised from `model.config` under `model.init_seed` with its
    embedding table grown to `vocab_size` rows, its special ids the tokenizer's. The `SequenceFormat` of its
    tokenizer rides along as `.sequence_format`, for `PromptedCausalLM`."""
    import transformers

    from itsel_ray.data.tokenizers import build_tokenizer

    spec = model.tokenizer or model.name
    tokenizer = build_tokenizer(spec)
    fmt = sequence_format(tokenizer, spec)
    if model.config is None:
        family = resolve_shape(model.name, None).shape.family
        lm = getattr(transformers, FAMILIES[family][2]).from_pretrained(model.name, dtype=torch.float32)
        rows = lm.get_input_embeddings().weight.shape[0]
        if vocab_size > rows:
            raise ConfigError(f"model.tokenizer {spec!r} has {vocab_size} tokens, more than the {rows} embedding rows "
                              f"of model.name {model.name!r}")
    else:
        fields = dict(model.config)
        family = fields.pop("model_type")
        ids = {"bos_token_id": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else fmt.eos_id,
               "eos_token_id": fmt.eos_id, "pad_token_id": fmt.pad_id}
        fields = {**ids, **fields, "vocab_size": max(int(fields.get("vocab_size", 0)), vocab_size)}
        config = getattr(transformers, FAMILIES[family][1])(**fields)
        fork_devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=fork_devices):  # the trial's own RNG stream stays untouched
            torch.manual_seed(model.init_seed)
            lm = getattr(transformers, FAMILIES[family][2])(config)
    lm.sequence_format = fmt
    return lm


# ------------------------------------------------------------------------------------------------- sequences


def join(parts: Sequence[tuple[torch.Tensor, torch.Tensor]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                                       list[torch.Tensor]]:
    """Rows made of ragged segments, right-padded: ids [B, N], mask [B, N] and each segment's start column [B].

    parts: (ids [B, Li], lengths [B]) per segment; row b of a segment is ids[b, :lengths[b]].
    """
    batch = parts[0][0].shape[0]
    device = parts[0][0].device
    total = sum(lengths for _, lengths in parts)
    width = max(int(total.max()), 1)
    ids = torch.full((batch, width), pad_id, dtype=torch.long, device=device)
    offset = torch.zeros(batch, dtype=torch.long, device=device)
    starts = []
    for seg, lengths in parts:
        starts.append(offset.clone())
        cols = torch.arange(seg.shape[1], device=device)
        valid = cols.unsqueeze(0) < lengths.unsqueeze(1)
        rows, js = valid.nonzero(as_tuple=True)
        ids[rows, offset[rows] + js] = seg[rows, js].long()
        offset = offset + lengths
    mask = (torch.arange(width, device=device).unsqueeze(0) < total.unsqueeze(1)).long()
    return ids, mask, starts


def positions_of(starts: torch.Tensor, mask: torch.Tensor, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, columns) of a right-padded segment's tokens (mask [B, T]) that start at column `starts` [B] + shift."""
    rows, js = mask.bool().nonzero(as_tuple=True)
    return rows, starts[rows] + shift + js


@lru_cache(maxsize=8)
def _cache_names(forward) -> tuple[str, str]:
    """(the forward's cache argument, the output's cache field): `cache` from transformers 5.25 on, before that
    `past_key_values`."""
    return ("cache", "cache") if "cache" in inspect.signature(forward).parameters else ("past_key_values",) * 2


class PromptedCausalLM(PromptedModel):
    """A frozen decoder-only LM with a trainable [P, H] soft prompt in front of every sequence."""

    def __init__(self, backbone, prompt: torch.Tensor, fmt: SequenceFormat | None = None):
        super().__init__(backbone, prompt)
        fmt = fmt or getattr(backbone, "sequence_format", None)
        if fmt is None:
            raise ValueError("a causal backbone needs its tokenizer's SequenceFormat (build it with build_model)")
        self.fmt = fmt

    # -------------------------------------------------------------- building blocks
    def _input_lengths(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B] tokens of each input, a closing EOS left out."""
        lengths = attention_mask.sum(dim=1)
        last = input_ids.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        return lengths - ((last == self.fmt.eos_id) & (lengths > 0)).long()

    def _prefix(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """The input and separator segments of each row: [(ids, lengths), (ids, lengths)]."""
        batch = input_ids.shape[0]
        sep = torch.tensor(self.fmt.separator, dtype=torch.long, device=input_ids.device).expand(batch, -1)
        sep_len = torch.full((batch,), sep.shape[1], dtype=torch.long, device=input_ids.device)
        return [(input_ids, self._input_lengths(input_ids, attention_mask)), (sep, sep_len)]

    def _call(self, embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache=None,
              use_cache: bool = False):
        base = self.backbone.base_model
        arg, field = _cache_names(type(base).forward)
        out = base(inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=use_cache,
                   **({arg: cache} if cache is not None else {}))
        return out.last_hidden_state, getattr(out, field, None)

    def hidden(self, ids: torch.Tensor, mask: torch.Tensor, *, use_cache: bool = False):
        """Last-layer states [B, P+N, H] (and the KV cache) of the prompt followed by right-padded rows `ids`."""
        embeds = self.backbone.get_input_embeddings()(ids)
        batch, p = ids.shape[0], self.prompt.shape[0]
        prompt = self.prompt.to(embeds.dtype).unsqueeze(0).expand(batch, -1, -1)
        full_mask = torch.cat([mask.new_ones(batch, p), mask], dim=1)
        positions = torch.arange(p + ids.shape[1], device=ids.device).unsqueeze(0).expand(batch, -1)
        return self._call(torch.cat([prompt, embeds], dim=1), full_mask, positions, use_cache=use_cache)

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """fp32 LM logits [..., V] of final states, the head outside autocast (as the T5 engine's: bf16 logits are
        coarser than the gaps between the label scores that rank classification compares)."""
        with torch.autocast(states.device.type, enabled=False):
            return F.linear(states.float(), self.backbone.get_output_embeddings().weight.float())

    def _segment_logprobs(self, parts, target: torch.Tensor, target_mask: torch.Tensor):
        """log p of each target token (the last segment, `target` [B, T] with `target_mask`) given what precedes it,
        reading the head only at the positions that predict a target token: ([n], rows [n])."""
        ids, mask, starts = join([*parts, (target, target_mask.sum(dim=1))], self.fmt.pad_id)
        states, _ = self.hidden(ids, mask)
        rows, cols = positions_of(starts[-1], target_mask, self.prompt.shape[0])
        logp = self.logits(states[rows, cols - 1]).log_softmax(dim=-1)
        gold = target[target_mask.bool()]
        return logp.gather(-1, gold.unsqueeze(-1)).squeeze(-1), rows

    # -------------------------------------------------------------- PromptedModel
    def sequence_loss(self, batch: Batch, pad_id: int) -> torch.Tensor:
        """Cross-entropy of the target tokens (EOS included), averaged over them; the prompt, the input and the
        separator are context only."""
        targets = batch.targets(pad_id)
        logp, _ = self._segment_logprobs(self._prefix(batch.input_ids, batch.attention_mask), batch.target_ids,
                                         targets)
        return -logp.mean()

    def label_scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: LabelSet) -> torch.Tensor:
        """[B, K] summed log-likelihood of each label's tokens after the input and separator. Single-token labels
        share one pass (the next-token distribution after the separator); longer ones run a row per label."""
        batch, k = input_ids.shape[0], labels.ids.shape[0]
        parts = self._prefix(input_ids, attention_mask)
        if labels.ids.shape[1] == 1:
            ids, mask, starts = join(parts, self.fmt.pad_id)
            states, _ = self.hidden(ids, mask)
            last = self.prompt.shape[0] + mask.sum(dim=1) - 1
            logp = self.logits(states[torch.arange(batch, device=ids.device), last]).log_softmax(dim=-1)
            return logp[:, labels.ids[:, 0]]
        parts = [(ids.repeat_interleave(k, dim=0), n.repeat_interleave(k, dim=0)) for ids, n in parts]
        logp, rows = self._segment_logprobs(parts, labels.ids.repeat(batch, 1), labels.mask.repeat(batch, 1))
        return torch.zeros(batch * k, device=logp.device).index_add(0, rows, logp).view(batch, k)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int) -> torch.Tensor:
        """Greedy continuation [B, T] of input + separator, one token per step on the KV cache; each row stops at
        its EOS (what follows it is padding) and all stop once every row has.

        The prefix is right-padded, so each row's continuation starts at its own length: the new tokens take the
        position ids length, length + 1, ... while the padding between stays masked out of attention.
        """
        ids, mask, _ = join(self._prefix(input_ids, attention_mask), self.fmt.pad_id)
        batch, p = ids.shape[0], self.prompt.shape[0]
        states, cache = self.hidden(ids, mask, use_cache=True)
        position = p + mask.sum(dim=1)  # [B] the first new token's position
        full_mask = torch.cat([mask.new_ones(batch, p), mask], dim=1)
        nxt = self.logits(states[torch.arange(batch, device=ids.device), position - 1]).argmax(dim=-1)
        out = []
        done = torch.zeros(batch, dtype=torch.bool, device=ids.device)
        for step in range(max_new_tokens):
            out.append(torch.where(done, torch.full_like(nxt, self.fmt.pad_id), nxt))
            done = done | (nxt == self.fmt.eos_id)
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            full_mask = torch.cat([full_mask, full_mask.new_ones(batch, 1)], dim=1)
            embeds = self.backbone.get_input_embeddings()(nxt.unsqueeze(1))
            states, cache = self._call(embeds, full_mask, (position + step).unsqueeze(1), cache=cache,
                                       use_cache=True)
            nxt = self.logits(states[:, -1]).argmax(dim=-1)
        return torch.stack(out, dim=1) if out else ids.new_zeros(batch, 0)

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, H] float32: the last-layer state at each row's last position (the separator's last token).

        Last-token pooling, not a mean: in a decoder-only model the state at a position has read only what lies to
        its left, so the last one is the only state that has read the prompt and the whole input, and it is the
        state the LM head answers from (the label scores are its next-token distribution). LogME on it measures how
        well the labels can be read out where the prompted model reads them; a mean would mix in the states of the
        first input tokens, which have seen the prompt and a word or two, and say little about the label.
        """
        ids, mask, _ = join(self._prefix(input_ids, attention_mask), self.fmt.pad_id)
        states, _ = self.hidden(ids, mask)
        last = self.prompt.shape[0] + mask.sum(dim=1) - 1
        return states[torch.arange(ids.shape[0], device=ids.device), last].float()
