"""T5-family shapes as data: the config fields that size a trial, read from the checkpoint's own config.json.

Pure (no torch, no transformers): the planner, `--dry-run` and `validate_config` read a model's shape on the driver
without building it. `model.name` is a Hub id or a local folder of any T5-family checkpoint (t5-*, google/t5-v1_1-*,
google/flan-t5-*, google/mt5-*); its config.json comes from the folder, the local Hugging Face cache, or the Hub
when that is allowed and reachable (`itsel_ray.hub.read_config`). `model.config` instead describes a randomly
initialised T5 by its T5Config fields.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Mapping

from itsel_ray.hub import ModelNotFound, read_config
from itsel_ray.schema import ConfigError

# config.json `model_type` -> the transformers classes that load it. Other encoder-decoders (BART, UMT5, whose
# layers each hold their own position bias) are refused: the prompt placement and the memory model are T5's.
FAMILIES: Mapping[str, tuple[str, str]] = {
    "t5": ("T5Config", "T5ForConditionalGeneration"),
    "mt5": ("MT5Config", "MT5ForConditionalGeneration"),
}


# where a model of another family goes instead, for the refusals' hint
OTHER_ENGINES = " (engine: causal runs decoder-only models: GPT-2, Llama, Mistral, Qwen)"


@dataclass(frozen=True)
class T5Shape:
    """The T5Config fields memory and parameters depend on (defaults: T5Config's)."""

    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_decoder_layers: int | None = None
    num_heads: int = 8
    feed_forward_proj: str = "relu"
    dropout_rate: float = 0.1
    tie_word_embeddings: bool = True
    relative_attention_num_buckets: int = 32

    @property
    def decoder_layers(self) -> int:
        return self.num_layers if self.num_decoder_layers is None else self.num_decoder_layers

    @property
    def inner(self) -> int:
        return self.num_heads * self.d_kv

    @property
    def gated(self) -> bool:
        """T5 v1.1, Flan-T5 and mT5: act(wi_0 x) * wi_1 x in the FFN (T5 v1.0: act(wi x))."""
        return self.feed_forward_proj.startswith("gated")

    @property
    def activation(self) -> str:
        """The FFN's activation as T5Config names it: "relu", "gelu_new" (T5's `gated-gelu`), ..."""
        act = self.feed_forward_proj.split("-")[-1]
        return "gelu_new" if act == "gelu" else act

    def linear_weights(self) -> tuple[int, int]:
        """(elements per encoder layer, per decoder layer) of the weights that matrix products read."""
        ff = self.d_model * self.d_ff * (3 if self.gated else 2)
        return 4 * self.d_model * self.inner + ff, 8 * self.d_model * self.inner + ff

    def parameter_count(self) -> int:
        enc, dec = self.linear_weights()
        emb = self.vocab_size * self.d_model * (1 if self.tie_word_embeddings else 2)
        norms = self.d_model * (2 * self.num_layers + 3 * self.decoder_layers + 2)
        bias = 2 * self.relative_attention_num_buckets * self.num_heads
        return emb + self.num_layers * enc + self.decoder_layers * dec + norms + bias


_FIELDS = {f.name for f in fields(T5Shape)}


def shape_from_config(config: Mapping) -> T5Shape:
    """A T5Shape from T5Config fields (a config.json or `model.config`); other fields are ignored here. A size that
    is not a positive integer (`d_model: 0`) or a dropout outside [0, 1) is a ValueError naming the field: such a
    model cannot be built, and the memory model would plan it as free."""
    shape = T5Shape(**{k: v for k, v in config.items() if k in _FIELDS})
    for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
                 "relative_attention_num_buckets"):
        value = getattr(shape, name)
        if value is None and name == "num_decoder_layers":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    rate = shape.dropout_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"dropout_rate must be a number in [0, 1), got {rate!r}")
    return shape


# Offline fallback for the original checkpoints only (T5 v1.0: ReLU FFN, tied embeddings), used when their
# config.json is neither a folder nor in the local cache, so the paper sweep plans on a fresh offline machine. Any
# other name needs its config.json.
_T5_V1 = {
    "t5-small": T5Shape(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8),
    "t5-base": T5Shape(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12),
    "t5-large": T5Shape(d_model=1024, d_kv=64, d_ff=4096, num_layers=24, num_heads=16),
}
BUILTIN_SHAPES: Mapping[str, T5Shape] = {**_T5_V1, **{f"google-t5/{k}": v for k, v in _T5_V1.items()}}


@dataclass(frozen=True)
class ResolvedShape:
    """A model's shape and family, where it was read, and its embedding rows (None: the tokenizer decides)."""

    shape: T5Shape
    family: str
    source: str
    vocab_size: int | None


def resolve_shape(name: str, config: Mapping | None, tokenizer: str | None = None) -> ResolvedShape:
    """The shape of `model.name` (its config.json) or of `model.config` (a random T5 whose tokenizer is `tokenizer`,
    default `name`); ConfigError naming the key when the model is unknown, unreadable or not of the T5 family."""
    if config is not None:
        return _random_init(dict(config), tokenizer or name)
    return _pretrained(name)


def _random_init(config: dict, tokenizer: str) -> ResolvedShape:
    from dataclasses import replace

    from itsel_ray.data.tokenizers import WORD_VOCAB, word_vocab_size

    try:
        shape = shape_from_config(config)
    except (TypeError, ValueError) as err:  # a field of the wrong kind or size (a list or 0 for d_model, ...)
        raise ConfigError(f"model.config: {err}") from None
    # The backbone grows its embedding table to its tokenizer's size, which is known here for a word-level tokenizer
    # only; with a Hub tokenizer the rows are known once it is loaded (the shape keeps `vocab_size` or T5's default).
    vocab = None
    if tokenizer.startswith(WORD_VOCAB):
        vocab = max(int(config.get("vocab_size", 0)), word_vocab_size(tokenizer))
        shape = replace(shape, vocab_size=vocab)
    return ResolvedShape(shape, "t5", "model.config: a randomly initialised T5", vocab)


@lru_cache(maxsize=32)
def _pretrained(name: str) -> ResolvedShape:
    try:
        config, where = read_config(name)
    except ModelNotFound as err:
        if name in BUILTIN_SHAPES:
            return ResolvedShape(BUILTIN_SHAPES[name], "t5", "built-in shape of the original checkpoint; its "
                                 "config.json is not in the local cache", BUILTIN_SHAPES[name].vocab_size)
        raise ConfigError(f"model.name {name!r}: no config.json found: {err}; give a local folder or a Hub id in "
                          "the local Hugging Face cache, or run once with network access") from None
    kind = config.get("model_type")
    if kind not in FAMILIES:
        raise ConfigError(f"model.name {name!r} is a {kind or 'untyped'} model (config.json model_type "
                          f"{kind!r}, from {where}), not a T5-family model ({', '.join(FAMILIES)}) that this "
                          f"engine runs{OTHER_ENGINES}")
    try:
        shape = shape_from_config(config)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"model.name {name!r}: its config.json does not describe a T5 ({err})") from None
    return ResolvedShape(shape, kind, f"config.json from {where}", shape.vocab_size)
