"""The frozen T5-family backbone with its soft prompt: loading a checkpoint or building a random T5, and how a T5
scores a target (`PromptedT5`, the T5 engine's `PromptedModel`).

The prompt is prepended to the *encoder* input embeddings only (the paper and the authors' code), and the attention
mask grows by the prompt length; the decoder sees only the target.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from itsel_ray.engine.objectives import Batch, LabelSet
from itsel_ray.engine.prompt import PromptedModel
from itsel_ray.engine.t5.shapes import FAMILIES, OTHER_ENGINES, resolve_shape
from itsel_ray.schema import ConfigError
from itsel_ray.trial_config import ModelConfig


@lru_cache(maxsize=1)
def t5_config_fields() -> frozenset[str]:
    """Every field name `transformers.T5Config` knows: its arguments and the attributes a default config holds."""
    import inspect

    from transformers import T5Config

    params = set(inspect.signature(T5Config.__init__).parameters) - {"self", "args", "kwargs"}
    return frozenset(params | set(T5Config().to_dict()) | {"bos_token_id", "decoder_start_token_id",
                                                           "tie_word_embeddings"})


def check_t5_fields(config: Mapping[str, Any]) -> None:
    """A typo in `model.config` would silently become an unused attribute of a default-shaped backbone."""
    kind = config.get("model_type", "t5")
    if kind not in FAMILIES:
        raise ConfigError(f"model.config.model_type {kind!r} is not a T5-family model ({', '.join(FAMILIES)}) "
                          f"that this engine runs{OTHER_ENGINES}")
    known = t5_config_fields()
    for key in config:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"model.config.{key} is not a T5Config field{hint}")


def build_model(model: ModelConfig, *, vocab_size: int):
    """A T5-family model from `model.name` (a Hub id or folder, by its config's family), or a T5 randomly
    initialised from `model.config` under `model.init_seed`, its embedding table grown to `vocab_size` rows."""
    import transformers

    if model.config is None:
        family = resolve_shape(model.name, None).family
        return getattr(transformers, FAMILIES[family][1]).from_pretrained(model.name)
    fields = {"decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1, **model.config}
    fields["vocab_size"] = max(int(fields.get("vocab_size", 0)), vocab_size)
    fork_devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=fork_devices):  # the trial's own RNG stream stays untouched
        torch.manual_seed(model.init_seed)
        return transformers.T5ForConditionalGeneration(transformers.T5Config(**fields))


def shift_right(ids: torch.Tensor, start_id: int = 0) -> torch.Tensor:
    out = ids.new_full(ids.shape, start_id)
    out[:, 1:] = ids[:, :-1]
    return out


class PromptedT5(PromptedModel):
    """A frozen T5 with a trainable [P, H] soft prompt in front of every encoder input."""

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

    def decode_logits(self, enc: torch.Tensor, mask: torch.Tensor, decoder_input_ids: torch.Tensor,
                      decoder_mask: torch.Tensor | None = None) -> torch.Tensor:
        """fp32 LM logits [B, T, V] for given decoder inputs and encoder states; `decoder_mask` replaces the causal
        self-attention mask ([1, 1, T, T], True = attend, as `packed_self_mask` builds it).

        The head runs outside autocast: in bf16, logits near 30 are spaced 0.125 apart, coarser than the gaps
        between the label scores that rank classification compares.
        """
        out = self.backbone.decoder(input_ids=decoder_input_ids, attention_mask=decoder_mask,
                                    encoder_hidden_states=enc, encoder_attention_mask=mask, use_cache=False)
        hidden = out.last_hidden_state
        cfg = self.backbone.config
        if getattr(cfg, "scale_decoder_outputs", getattr(cfg, "tie_word_embeddings", True)):
            hidden = hidden * (cfg.d_model ** -0.5)
        with torch.autocast(hidden.device.type, enabled=False):
            return F.linear(hidden.float(), self.backbone.get_output_embeddings().weight.float())

    # ------------------------------------------------------------------ PromptedModel
    def sequence_loss(self, batch: Batch, pad_id: int) -> torch.Tensor:
        enc, mask = self.encode(batch.input_ids, batch.attention_mask)
        logits = self.decode_logits(enc, mask, shift_right(batch.target_ids))
        targets = batch.target_ids.masked_fill(~batch.targets(pad_id), -100)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)

    def label_scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: LabelSet) -> torch.Tensor:
        enc, mask = self.encode(input_ids, attention_mask)
        return label_scores(self, enc, mask, labels)

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int) -> torch.Tensor:
        """Greedy decoding on a key/value cache that grows one layer at a time: the cache transformers builds by
        default is sized by the config's encoder layer count, so a T5 with more decoder than encoder layers would
        fail with an IndexError."""
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache
        from transformers.modeling_outputs import BaseModelOutput

        enc, mask = self.encode(input_ids, attention_mask)
        return self.backbone.generate(encoder_outputs=BaseModelOutput(last_hidden_state=enc), attention_mask=mask,
                                      max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                      cache=EncoderDecoderCache(DynamicCache(), DynamicCache()))

    def features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The mean encoder state over each row's input tokens (EOS included). The prompt shapes every input state
        through self-attention, which is what is measured; its own positions would add a nearly constant block,
        the same for every row whatever its label (100 positions against a few dozen input tokens in the paper's
        setting), which dilutes the features and, since LogME's linear model has no intercept, acts as a large
        bias feature rather than information about the labels."""
        states, _ = self.encode(input_ids, attention_mask)
        weights = attention_mask.to(states.dtype).unsqueeze(-1)
        summed = (states[:, self.prompt.shape[0]:, :] * weights).sum(dim=1)
        return (summed / weights.sum(dim=1).clamp(min=1)).float()


def label_scores(model: PromptedT5, enc: torch.Tensor, mask: torch.Tensor, labels: LabelSet) -> torch.Tensor:
    """[B, K] summed log-probabilities of each label sequence given each encoded input, in one decoder pass.

    Single-token labels share the decoder input: one position per example. Longer labels are packed into one
    decoder sequence per example (`PackedLabels`), each label's tokens attending only to themselves (a
    block-diagonal causal mask; T5's relative position bias depends only on distances within a block, so every
    label sees exactly what it would see alone). The encoder states, and each layer's cross-attention keys and
    values, are then computed once per example instead of once per label.
    """
    if labels.ids.shape[1] == 1:  # single-token labels share the decoder input: one row per example suffices
        start = labels.ids.new_zeros(enc.shape[0], 1)
        logp = model.decode_logits(enc, mask, start)[:, 0].float().log_softmax(dim=-1)
        return logp[:, labels.ids[:, 0]]
    packed = PackedLabels.of(labels)
    self_mask = packed_self_mask(packed.block, model.backbone.config._attn_implementation)
    if self_mask is None:  # an attention implementation without 4D masks: one decoder row per (example, label)
        return _label_scores_by_row(model, enc, mask, labels)
    batch = enc.shape[0]
    logits = model.decode_logits(enc, mask, packed.inputs.expand(batch, -1), self_mask)
    logp = logits.float().log_softmax(dim=-1).gather(-1, packed.targets.expand(batch, -1).unsqueeze(-1)).squeeze(-1)
    scores = logp.new_zeros(batch, labels.ids.shape[0])
    return scores.index_add(1, packed.block, logp)


class PackedLabels:
    """A label set's tokens as one decoder sequence: `inputs` [1, S] (each label's tokens shifted right behind the
    start token), `targets` [1, S] and `block` [S] (the label each position belongs to)."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, block: torch.Tensor):
        self.inputs, self.targets, self.block = inputs, targets, block

    _cache: dict[int, tuple[LabelSet, "PackedLabels"]] = {}

    @classmethod
    def of(cls, labels: LabelSet) -> "PackedLabels":
        """The packed form of `labels`, built once per label set (a trial scores the same set at every step)."""
        hit = cls._cache.get(id(labels))
        if hit is not None and hit[0] is labels:
            return hit[1]
        if len(cls._cache) > 16:
            cls._cache.clear()
        packed = cls._build(labels)
        cls._cache[id(labels)] = (labels, packed)
        return packed

    @classmethod
    def _build(cls, labels: LabelSet) -> "PackedLabels":
        lengths = labels.mask.sum(dim=1).tolist()
        targets = torch.cat([labels.ids[j, :n] for j, n in enumerate(lengths)])
        inputs = torch.cat([shift_right(labels.ids[j : j + 1, :n])[0] for j, n in enumerate(lengths)])
        block = torch.repeat_interleave(torch.arange(len(lengths), device=labels.ids.device),
                                        torch.tensor(lengths, device=labels.ids.device))
        return cls(inputs.unsqueeze(0), targets.unsqueeze(0), block)


def packed_self_mask(block: torch.Tensor, attn_implementation: str) -> torch.Tensor | None:
    """[1, 1, S, S] causal attention within each label's block, in the form the attention implementation adds to
    its scores (sdpa: boolean, True = attend; eager: additive float); None for an implementation it does not know."""
    n = block.shape[0]
    allowed = (block[:, None] == block[None, :]) & torch.ones(n, n, dtype=torch.bool, device=block.device).tril()
    allowed = allowed[None, None]
    if attn_implementation == "sdpa":
        return allowed
    if attn_implementation == "eager":
        return torch.zeros(allowed.shape, device=block.device).masked_fill(~allowed, torch.finfo(torch.float32).min)
    return None


def _label_scores_by_row(model: PromptedT5, enc: torch.Tensor, mask: torch.Tensor, labels: LabelSet) -> torch.Tensor:
    """Each label in its own decoder row, the encoder states repeated per label (the general path)."""
    batch, k = enc.shape[0], labels.ids.shape[0]
    enc_rep = enc.repeat_interleave(k, dim=0)  # row b*k + j = input b, label j
    mask_rep = mask.repeat_interleave(k, dim=0)
    targets = labels.ids.repeat(batch, 1)
    tmask = labels.mask.repeat(batch, 1)
    logits = model.decode_logits(enc_rep, mask_rep, shift_right(targets))
    logp = logits.float().log_softmax(dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (logp * tmask).sum(dim=-1).view(batch, k)
