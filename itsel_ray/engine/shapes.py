"""T5 shapes as data: the T5Config fields that size a trial, and the original checkpoints' values.

Pure (no torch, no transformers): the memory model and `validate_config` read shapes without building a model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping


@dataclass(frozen=True)
class T5Shape:
    """The T5Config fields memory depends on (defaults: T5Config's)."""

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
        return self.feed_forward_proj.startswith("gated")

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


# The original T5 checkpoints (T5 v1.0: ReLU FFN, tied embeddings), so the planner needs no download.
_T5_V1 = {
    "t5-small": T5Shape(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8),
    "t5-base": T5Shape(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12),
    "t5-large": T5Shape(d_model=1024, d_kv=64, d_ff=4096, num_layers=24, num_heads=16),
}
KNOWN_SHAPES: Mapping[str, T5Shape] = {**_T5_V1, **{f"google-t5/{k}": v for k, v in _T5_V1.items()}}
_FIELDS = {f.name for f in fields(T5Shape)}


def model_shape(model_config: Mapping | str | T5Shape) -> T5Shape:
    """A T5Shape from T5Config fields, a known checkpoint name, or a folder / file holding a config.json."""
    if isinstance(model_config, T5Shape):
        return model_config
    if isinstance(model_config, Mapping):
        return T5Shape(**{k: v for k, v in model_config.items() if k in _FIELDS})
    if model_config in KNOWN_SHAPES:
        return KNOWN_SHAPES[model_config]
    path = Path(model_config).expanduser()
    path = path / "config.json" if path.is_dir() else path
    if path.is_file():
        return model_shape(json.loads(path.read_text(encoding="utf-8")))
    raise ValueError(f"unknown model {model_config!r}: not one of {', '.join(sorted(_T5_V1))} and no config.json "
                     "there; pass the T5Config fields instead")


def known_vocab_size(model_config: Mapping | str) -> int | None:
    """Rows of the embedding table when known without loading: a known checkpoint's, or at least the `vocab_size`
    given in T5Config fields (a randomly initialised backbone grows it to its tokenizer's size)."""
    if isinstance(model_config, Mapping):
        return int(model_config["vocab_size"]) if "vocab_size" in model_config else None
    shape = KNOWN_SHAPES.get(model_config)
    return shape.vocab_size if shape else None
