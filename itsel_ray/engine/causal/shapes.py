"""Decoder-only shapes as data: the config fields that size a causal-LM trial, read from the checkpoint's own
config.json, for the families the causal engine runs.

Pure (no torch, no transformers): the planner, `--dry-run` and `validate_config` read a model's shape on the driver
without building it. `model.name` is a Hub id or local folder of a checkpoint of one of `FAMILIES` (`model_type` in
its config.json); `model.config` instead describes a randomly initialised model by its family's config fields,
`model_type` naming the family.

Two layouts cover the families: GPT-2's (learned positions, LayerNorm with biases, a GELU MLP, biases on every
projection, a tied head) and Llama's (rotary positions, RMSNorm, a gated SiLU MLP, grouped-query attention), which
Mistral, Qwen2 (biases on q, k, v) and Qwen3 (RMSNorm on each head's q and k) follow. Other families are refused
by name: the memory model and the parameter count are written for these two layouts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Mapping

from itsel_ray.hub import ModelNotFound, read_config
from itsel_ray.schema import ConfigError

# config.json `model_type` -> (its layout, the transformers config class, the causal-LM class)
FAMILIES: Mapping[str, tuple[str, str, str]] = {
    "gpt2": ("gpt2", "GPT2Config", "GPT2LMHeadModel"),
    "llama": ("llama", "LlamaConfig", "LlamaForCausalLM"),
    "mistral": ("llama", "MistralConfig", "MistralForCausalLM"),
    "qwen2": ("llama", "Qwen2Config", "Qwen2ForCausalLM"),
    "qwen3": ("llama", "Qwen3Config", "Qwen3ForCausalLM"),
}
T5_TYPES = ("t5", "mt5", "umt5")


@dataclass(frozen=True)
class CausalShape:
    """What memory and parameters depend on, in one vocabulary for both layouts (defaults: LlamaConfig's)."""

    family: str = "llama"
    layout: str = "llama"
    vocab_size: int = 32000
    hidden: int = 4096
    layers: int = 32
    heads: int = 32
    kv_heads: int = 32
    head_dim: int = 128
    intermediate: int = 11008
    activation: str = "silu"
    positions: int = 2048  # GPT-2: rows of the learned position table; Llama: max_position_embeddings
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    dropout: float = 0.0  # GPT-2: resid/embd dropout; the Llama layout has none outside attention
    attention_dropout: float = 0.0

    @property
    def gated(self) -> bool:
        return self.layout == "llama"

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    def layer_weights(self) -> int:
        """Elements of one block's matrices (what matrix products read)."""
        attn = self.hidden * (self.q_width + 2 * self.kv_width) + self.q_width * self.hidden
        return attn + self.hidden * self.intermediate * (3 if self.gated else 2)

    def parameter_count(self) -> int:
        h = self.hidden
        if self.layout == "gpt2":  # LayerNorm weight + bias, a bias on every projection, learned positions
            per_layer = self.layer_weights() + 4 * h + (3 * h + h) + (self.intermediate + h)
            return self.vocab_size * h + self.positions * h + self.layers * per_layer + 2 * h
        biases = (self.q_width + 2 * self.kv_width) * self.qkv_bias + h * self.o_bias
        biases += (2 * self.intermediate + h) * self.mlp_bias
        per_layer = self.layer_weights() + biases + 2 * h + 2 * self.head_dim * self.qk_norm
        head = 0 if self.tie_word_embeddings else self.vocab_size * h
        return self.vocab_size * h + self.layers * per_layer + h + head


def _gpt2(c: Mapping) -> CausalShape:
    h = int(c.get("n_embd", 768))
    return CausalShape(
        family="gpt2", layout="gpt2", vocab_size=int(c.get("vocab_size", 50257)), hidden=h,
        layers=int(c.get("n_layer", 12)), heads=int(c.get("n_head", 12)), kv_heads=int(c.get("n_head", 12)),
        head_dim=h // int(c.get("n_head", 12)), intermediate=int(c.get("n_inner") or 4 * h),
        activation=str(c.get("activation_function", "gelu_new")), positions=int(c.get("n_positions", 1024)),
        tie_word_embeddings=True, qkv_bias=True, o_bias=True, mlp_bias=True,
        dropout=float(max(c.get("resid_pdrop", 0.1), c.get("embd_pdrop", 0.1))),
        attention_dropout=float(c.get("attn_pdrop", 0.1)))


def _llama(c: Mapping, family: str) -> CausalShape:
    defaults = {"llama": (32000, 4096, 11008, 2048, False), "mistral": (32000, 4096, 14336, 131072, False),
                "qwen2": (151936, 4096, 22016, 32768, False), "qwen3": (151936, 4096, 22016, 32768, False)}
    vocab, hidden, inter, positions, tie = defaults[family]
    h = int(c.get("hidden_size", hidden))
    heads = int(c.get("num_attention_heads", 32))
    kv = c.get("num_key_value_heads")
    head_dim = c.get("head_dim")
    bias = bool(c.get("attention_bias", False))
    return CausalShape(
        family=family, layout="llama", vocab_size=int(c.get("vocab_size", vocab)), hidden=h,
        layers=int(c.get("num_hidden_layers", 32)), heads=heads, kv_heads=int(kv if kv is not None else heads),
        head_dim=int(head_dim if head_dim else h // heads), intermediate=int(c.get("intermediate_size", inter)),
        activation=str(c.get("hidden_act", "silu")), positions=int(c.get("max_position_embeddings", positions)),
        tie_word_embeddings=bool(c.get("tie_word_embeddings", tie)),
        qkv_bias=True if family == "qwen2" else bias, o_bias=False if family == "qwen2" else bias,
        mlp_bias=bool(c.get("mlp_bias", False)), qk_norm=family == "qwen3",
        attention_dropout=float(c.get("attention_dropout", 0.0)))


def shape_from_config(config: Mapping, family: str | None = None) -> CausalShape:
    """A CausalShape from a config.json (or `model.config`) of family `family` (default: its `model_type`)."""
    family = family or config.get("model_type")
    if family not in FAMILIES:
        raise ConfigError(unsupported(family))
    try:
        return _gpt2(config) if FAMILIES[family][0] == "gpt2" else _llama(config, family)
    except (TypeError, ValueError) as err:  # a field of the wrong kind (a list for hidden_size, ...)
        raise ConfigError(f"its {family} fields do not describe a model ({err})") from None


def unsupported(kind) -> str:
    hint = " (engine: t5 runs the T5 family)" if kind in T5_TYPES else ""
    return (f"a {kind or 'untyped'} model is not a decoder-only family the causal engine runs "
            f"({', '.join(FAMILIES)}){hint}")


@dataclass(frozen=True)
class ResolvedShape:
    """A model's shape, where it was read, and its embedding rows (None: the tokenizer decides)."""

    shape: CausalShape
    source: str
    vocab_size: int | None


def resolve_shape(name: str, config: Mapping | None, tokenizer: str | None = None) -> ResolvedShape:
    """The shape of `model.name` (its config.json) or of `model.config` (a random model of the family its
    `model_type` names, whose tokenizer is `tokenizer`, default `name`); ConfigError naming the key otherwise."""
    if config is not None:
        return _random_init(dict(config), tokenizer or name)
    return _pretrained(name)


def _random_init(config: dict, tokenizer: str) -> ResolvedShape:
    from itsel_ray.data.tokenizers import WORD_VOCAB, word_vocab_size

    kind = config.get("model_type")
    if kind is None:
        raise ConfigError(f"model.config.model_type must name the family of the random model ({', '.join(FAMILIES)})")
    if kind not in FAMILIES:
        raise ConfigError(f"model.config.model_type: {unsupported(kind)}")
    try:
        shape = shape_from_config(config)
    except ConfigError as err:
        raise ConfigError(f"model.config: {err}") from None
    # The backbone grows its embedding table to its tokenizer's size, known here for a word-level tokenizer only.
    vocab = None
    if tokenizer.startswith(WORD_VOCAB):
        vocab = max(int(config.get("vocab_size", 0)), word_vocab_size(tokenizer))
        shape = replace(shape, vocab_size=vocab)
    return ResolvedShape(shape, f"model.config: a randomly initialised {kind}", vocab)


@lru_cache(maxsize=32)
def _pretrained(name: str) -> ResolvedShape:
    try:
        config, where = read_config(name)
    except ModelNotFound as err:
        raise ConfigError(f"model.name {name!r}: no config.json found: {err}; give a local folder or a Hub id in "
                          "the local Hugging Face cache, or run once with network access") from None
    kind = config.get("model_type")
    if kind not in FAMILIES:
        raise ConfigError(f"model.name {name!r} (config.json from {where}): {unsupported(kind)}")
    try:
        shape = shape_from_config(config)
    except ConfigError as err:
        raise ConfigError(f"model.name {name!r}: {err}") from None
    return ResolvedShape(shape, f"config.json from {where}", shape.vocab_size)
